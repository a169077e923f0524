"""Memory budgets: a size that a file or a flag declares is checked against the machine's memory before anything of
that size is allocated (a 1 KB checkpoint may declare a 360 GB tensor, a configuration 200000 features)."""
import os
from pathlib import Path

from errors import UserError

# The share of the memory available now that one declared object may take.
SHARE = 0.5


def available_memory():
    """Bytes of memory available now (MemAvailable on Linux, else the physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 2**40  # unknown: no limit but the allocation itself


def check(nbytes, what, advice):
    """UserError when `nbytes` is more than SHARE of the available memory. `what` names the object and where its size
    comes from; `advice` says what to do."""
    limit = available_memory() * SHARE
    if nbytes > limit:
        raise UserError(f"{what} needs {gigabytes(nbytes)} of memory, more than half of the {gigabytes(limit / SHARE)} "
                        f"available: {advice}")


def gigabytes(nbytes):
    if nbytes >= 2**40:
        return f"{nbytes / 2**40:,.0f} TB"
    return f"{nbytes / 2**30:.3g} GB" if nbytes >= 2**30 else f"{nbytes / 2**20:.3g} MB"
