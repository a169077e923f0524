"""Atomic file writes: write to a temp file in the target's folder, then rename it onto the target.

A crash or an error never leaves a half-written file under the final name, and a reader never sees one.
"""
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


class atomic_target:
    """Context manager yielding a temp path next to `path`; renamed onto `path` on success, removed on failure."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return False
        os.chmod(self.tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(self.tmp, self.path)
        return False


def write_text(path, text):
    with atomic_target(path) as tmp:
        Path(tmp).write_text(text)
