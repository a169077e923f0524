"""User-facing errors: one line, non-zero exit, no traceback.

Every output the toolbox writes (checkpoints, caches, images, GeoTIFFs, CSVs, manifests, plots) goes through the one
error path here: an OSError on an output becomes a UserError that names the path, the cause and what to do.
"""
import argparse
import errno
import os
import signal
import sys
import threading
import warnings
from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input or environment (a flag, a file, a folder, a full disk). Its message says what
    to do."""


# What to do about the errors an output can meet: the machine's state, not a bug of ours.
OUTPUT_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: write elsewhere or fix the permissions",
    errno.EPERM: "operation not permitted: write elsewhere or fix the permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder: pick another path",
    errno.EEXIST: "a file is in the way where a folder is needed: pick another path",
    errno.EISDIR: "it is a folder, not a file: pick another path",
    errno.ENAMETOOLONG: "the path is too long: pick a shorter one",
    errno.ELOOP: "the path loops through symbolic links: pick another path",
}


def output_error(path, err):
    """The UserError for an OSError met while writing `path` (names the path, the cause and what to do). A writer
    that reports a short write without an errno (numpy, GDAL) on a full disk is recognised by the free space."""
    code = getattr(err, "errno", None)
    if type(err).__module__.startswith("rasterio"):
        code = None  # rasterio puts GDAL's error class there (1 = CPLE_AppDefined), not an OS error number
    cause = getattr(err, "strerror", None) or str(err) or type(err).__name__
    if code is None and disk_is_full(path):
        code, cause = errno.ENOSPC, f"No space left on device ({cause})"
    advice = OUTPUT_ADVICE.get(code)
    return UserError(f"cannot write {path}: {cause}" + (f" ({advice})" if advice else ""))


def disk_is_full(path, spare=64 * 1024):
    """True when the file system holding `path` (or its nearest existing parent) has less than `spare` bytes free."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < spare


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a training loop (which saves and stops on its own, see stopping.py): unwinds like Ctrl-C, so
    that every cleanup runs, and ends in one line with exit code 143."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (prog: error: ...) and exits 2, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def flags(self):
        """{dest: argparse action} of every flag but --help: what configuration code and tests read of the flags
        (kind, default, help, option strings), without reaching into argparse's private list themselves."""
        return {action.dest: action for action in self._actions if action.dest != "help"}


def one_line_warning(message, category, filename, lineno, line=None):
    """A warning as one clean line (`warning: ...`), like the scripts' own notes, not Python's two with the source."""
    return f"warning: {message}\n"


def run_cli(main, argv=None):
    """Run `main(argv)`; a UserError becomes a one-line message on stderr and exit code 2.

    An OSError that escaped the write paths (they convert their own) is the environment's, not a bug: it is reported
    the same way, in one line with the path when it has one. Under torchrun every rank raises the same error
    (distributed.agree) and only rank 0 prints it.
    """
    interrupted = watch_interrupts()
    warnings.formatwarning = one_line_warning
    try:
        code = main(argv)
        if interrupted:  # a Ctrl-C that landed where Python only reports it (a finaliser, a C callback)
            raise KeyboardInterrupt
    except UserError as err:
        fail(f"error: {err}")
    except OSError as err:
        if err.errno not in OUTPUT_ADVICE:
            raise
        fail(f"error: {output_error(err.filename or '(unnamed file)', err)}")
    except MemoryError:
        fail(OUT_OF_MEMORY)
    except RuntimeError as err:  # torch's allocators raise RuntimeErrors (OutOfMemoryError on CUDA)
        if not is_out_of_memory(err):
            raise
        fail(OUT_OF_MEMORY)
    except Terminated:
        # a deploy keeps its finished outputs (its manifest lists them); a preparation, pack or export is written
        # whole or not at all, so nothing of it is left
        print("stopped by SIGTERM: only finished outputs are kept (a deploy's manifest lists them)", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


OUT_OF_MEMORY = ("error: out of memory: use a smaller --tile (deploy, export), --batch_size or --patch_size "
                 "(training), or a smaller --max_pixels")


def is_out_of_memory(err):
    """torch's out-of-memory errors: OutOfMemoryError (CUDA) and the CPU allocator's RuntimeError."""
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text


def watch_interrupts():
    """Record every SIGINT while raising KeyboardInterrupt as usual, and keep Python from printing a traceback for
    one it cannot raise (inside a finaliser or a C callback it is only reported, and the script would go on to exit
    0). Returns the record: run_cli exits 130 when it is not empty."""
    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    def unraisable(info):
        if issubclass(info.exc_type, KeyboardInterrupt):
            return  # recorded by on_sigint; the exit code says it
        default_unraisable(info)

    def on_sigterm(signum, frame):
        raise Terminated

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is \
            signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)
        default_unraisable = sys.unraisablehook
        sys.unraisablehook = unraisable
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, on_sigterm)
    return interrupted


def fail(line):
    if os.environ.get("RANK", "0") == "0":
        print(line, file=sys.stderr)
    sys.exit(2)
