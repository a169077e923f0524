"""When training stops before --epochs: a signal or the --time_budget.

- SIGTERM and SIGUSR1 (what Slurm sends before a time limit or a preemption, e.g. `#SBATCH --signal=USR1@120`) and
  SIGINT (Ctrl-C) ask the trainer to stop after the batch in progress; it saves a checkpoint that --resume continues
  exactly, mid-epoch, and exits with 128 + the signal's number. A second Ctrl-C stops at once.
- `--time_budget MINUTES`, counted from the start of the command, stops training while there is still time for the
  next batch or validation and the checkpoint (each estimated from what it took, with a safety factor); the command
  then ends normally (exit 0) and says how to continue.

Under torchrun the ranks agree on every decision (distributed.any_rank), so all of them stop after the same batch.
"""
import os
import signal
import time
from pathlib import Path

import distributed


def process_start():
    """time.monotonic() at this process's start (a Slurm time limit counts from there, the interpreter's start and
    imports included); where /proc cannot tell, now."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return time.monotonic()
    return time.monotonic() - max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


STARTED = process_start()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
SAFETY = 1.5  # estimates of what is left to do are multiplied by this before they are compared with the budget


class Stopper:
    """Catches the stop signals while training runs (a context manager) and answers `stop(ctx, seconds_needed)`."""

    def __init__(self, budget_minutes=None):
        self.deadline = STARTED + budget_minutes * 60 if budget_minutes else None
        self.signal = None
        self.previous = {}

    def __enter__(self):
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._caught)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False

    def _caught(self, signum, frame):
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal = signal.Signals(signum)

    def seconds_left(self):
        return None if self.deadline is None else self.deadline - time.monotonic()

    def reason(self, ctx, seconds_needed=0.0):
        """Why training must stop now ('SIGTERM', ..., 'time budget'), or None; the same answer on every rank."""
        code = 0
        if self.signal is not None:
            code = int(self.signal)
        elif self.deadline is not None and SAFETY * seconds_needed > self.seconds_left():
            code = -1
        code = distributed.max_over_ranks(ctx, code)
        if code == 0:
            return None
        return "time budget" if code < 0 else signal.Signals(code).name

    @staticmethod
    def exit_code(reason):
        """0 when the time budget ended the run (it ended as asked), 128 + the signal's number otherwise."""
        return 0 if reason == "time budget" else 128 + int(signal.Signals[reason])
