"""Atomic file writes: write to a temp file in the target's folder, then rename it onto the target.

A crash or an error never leaves a half-written file under the final name, and a reader never sees one; whatever was
there before stays intact until the rename. Temp files carry TEMP_MARK in their name, so a later start can remove
the ones a killed process left behind (`remove_stale_temps`) without touching anything else. Every OSError on the way
(full disk, read-only folder, a file where a folder should be) becomes one UserError naming the path.
"""
import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from errors import UserError, output_error

TEMP_MARK = ".rssr-tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


def ensure_dir(folder):
    """mkdir -p, with a one-line error naming the folder when the file system refuses."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:  # a file where the folder should be
        raise output_error(folder, err) from None
    except OSError as err:
        raise output_error(folder, err) from None
    return folder


class atomic_target:
    """Context manager yielding a temp path next to `path`; renamed onto `path` on success, removed on failure."""

    def __init__(self, path):
        self.path = Path(path)
        self.tmp = None

    def __enter__(self):
        ensure_dir(self.path.parent)
        try:
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}{TEMP_MARK}",
                                        suffix=self.path.suffix)
        except OSError as err:
            raise output_error(self.path, err) from None
        self.tmp = Path(name)
        try:
            os.close(fd)
        except BaseException:  # an interrupt right after the temp file was made: it goes with it
            self.tmp.unlink(missing_ok=True)
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                os.chmod(self.tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
                os.replace(self.tmp, self.path)
                return False
            except OSError as err:
                exc_type, exc = type(err), err
        cause = os_error_in(exc)
        # judged while the temp file still holds its bytes: a full disk is still full (a writer such as GDAL or
        # torch's zip writer may report it only as "write failed")
        error = output_error(self.path, cause) if cause is not None else None
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the original error is the one to report
        if error is not None:
            raise error from None
        return False


@contextlib.contextmanager
def staging_dir(target, replace=False):
    """A folder beside `target` to build a whole folder in (a dataset), swapped in as `target` only when the block
    completes: a failed or interrupted build leaves `target` as it was, and takes its staging folder with it. With
    `replace`, an existing `target` is swapped out by renames and deleted after the new one is in place; without, it
    must not exist. A killed build's staging folders carry TEMP_MARK and are cleared by the next build of the same
    target, so the caller must hold the target's lock (runs.FolderLock with `name`)."""
    target = Path(target)
    parent = ensure_dir(target.parent)
    for entry in os.scandir(parent):  # what a killed build of this target left
        if entry.name.startswith(f".{target.name}{TEMP_MARK}") and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
    try:
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}{TEMP_MARK}"))
    except OSError as err:
        raise output_error(target, err) from None
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders; give the usual permissions
        old = None
        if replace and (target.exists() or target.is_symlink()):
            if not stat.S_ISDIR(os.lstat(target).st_mode):
                raise UserError(f"{target} is not a folder: pick another destination")
            old = Path(f"{staging}-old")
            os.rename(target, old)
        try:
            os.rename(staging, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)  # the previous folder back in place
            raise
        if old is not None:
            shutil.rmtree(old)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise output_error(target, err) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def os_error_in(exc):
    """The OSError that caused `exc`: `exc` itself or one in its chain (torch reports a full disk met while closing
    its zip as a RuntimeError chained from the OSError). The one with an errno wins; None without any, and None for
    what is already a user's message (a UserError) or an interruption (not an Exception)."""
    if not isinstance(exc, Exception) or isinstance(exc, UserError):
        return None
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ if exc.__cause__ is not None or exc.__suppress_context__ else exc.__context__
    errors = [e for e in chain if isinstance(e, OSError)]
    with_errno = [e for e in errors if isinstance(e.errno, int) and not type(e).__module__.startswith("rasterio")]
    return (with_errno or errors or [None])[0]


def write_bytes(path, data):
    with atomic_target(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text(path, text):
    write_bytes(path, text.encode())


def remove_stale_temps(folder, target=None):
    """Delete the temp files that atomic writes of a killed process left directly in `folder` (only those of the
    file named `target`, when given); returns their names. Only files that carry TEMP_MARK (ours) and are regular
    files (not symlinks) are removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return removed
    prefix = f".{target}{TEMP_MARK}" if target else "."
    for entry in os.scandir(folder):
        if TEMP_MARK in entry.name and entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed.append(entry.name)
    return removed
