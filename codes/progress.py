"""Progress: a tqdm bar on a terminal; plain, periodic lines when the output goes to a log or a pipe.

A tqdm bar redraws itself with carriage returns, which litter a log file with every refresh. So the bar is shown only
when stderr is a terminal; otherwise a loop that runs long prints one plain line every PLAIN_EVERY_S seconds.
"""
import sys
import time

from tqdm import tqdm

PLAIN_EVERY_S = 30.0


def on_terminal():
    return sys.stderr.isatty()


def bar(iterable, desc, total=None, min_items=0, unit="it", leave=False):
    """Iterate `iterable` with progress shown as described above; loops of fewer than `min_items` show nothing."""
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    quiet = total is not None and total < min_items
    if on_terminal():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True, disable=quiet)
    return PlainBar(iterable, desc, total, unit, quiet)


class PlainBar:
    """bar() when stderr is not a terminal: the items, with a plain line every PLAIN_EVERY_S seconds (none when
    quiet). It has tqdm's methods that callers use (set_postfix), as no-ops, so callers need no probe."""

    def __init__(self, iterable, desc, total, unit, quiet):
        self.iterable, self.desc, self.total, self.unit, self.quiet = iterable, desc, total, unit, quiet

    def __iter__(self):
        if self.quiet:
            yield from self.iterable
            return
        start = last = time.monotonic()
        for done, item in enumerate(self.iterable, 1):
            yield item
            now = time.monotonic()
            if now - last >= PLAIN_EVERY_S:
                last = now
                of = f"/{self.total}" if self.total else ""
                print(f"{self.desc}: {done}{of} {self.unit} ({now - start:.0f} s)", file=sys.stderr, flush=True)

    def set_postfix(self, **values):
        """tqdm shows these beside the bar; a log gets the trainer's own lines instead."""


class Counter:
    """A progress count to `update()` by hand (e.g. tiles of one scene), shown as `bar` shows loops."""

    def __init__(self, total, desc, min_items=0, unit="it"):
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.quiet = total < min_items
        self.tqdm = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                         disable=self.quiet) if on_terminal() else None
        self.start = self.last = time.monotonic()

    def update(self, n=1):
        self.done += n
        if self.tqdm is not None:
            self.tqdm.update(n)
        elif not self.quiet and time.monotonic() - self.last >= PLAIN_EVERY_S:
            self.last = time.monotonic()
            print(f"{self.desc}: {self.done}/{self.total} {self.unit} ({self.last - self.start:.0f} s)",
                  file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.tqdm is not None:
            self.tqdm.close()
        return False


def write(line, file=None):
    """Print a line without breaking a bar that is on screen."""
    tqdm.write(line, file=file or sys.stdout)


def counts_text(counts):
    """{reason: count} as '3 constant, 1 nodata pixels' (the non-zero ones), or 'none': how a summary line says what
    was skipped."""
    return ", ".join(f"{n} {reason}" for reason, n in counts.items() if n) or "none"
