"""Run folders (their names and places are in paths.py): their lock, the record of what a run wrote, --reset, the log
and metrics.csv.

Promises (see docs/deploy.md, "What the toolbox promises"):
- One writer per folder: an OS file lock (`.lock`, released when the process dies, however it dies); a second
  writer gets a one-line error naming the holder's PID.
- Every file a run writes is recorded in `written_files.json` before it is written. `--reset` deletes exactly those
  files, never through a symlink and never outside the run folder, and only after every flag and the data were
  checked. A file the toolbox did not write is never replaced: a run folder that holds a foreign config.txt, log.txt,
  ... is refused.
- Temp files of atomic writes that a killed process left behind are removed at the next start.
"""
import contextlib
import datetime
import fcntl
import json
import os
import stat
from pathlib import Path

import atomic
import bounded
from errors import UserError, output_error
from paths import run_dir

LOCK_FILE = ".lock"
WRITTEN_FILES = "written_files.json"
# The files a training run writes at fixed names (validation images under results/ are recorded as they come).
RUN_FILES = ("config.txt", "log.txt", "metrics.csv", "loss.png", "psnr.png", "ssim.png", "summary.png",
             "model/model_latest.pt", "model/model_best.pt")


class FolderLock:
    """An exclusive, non-blocking flock on <folder>/.lock (or <folder>/`name`) that holds the owner's PID; the OS
    releases it when the process exits or is killed."""

    def __init__(self, folder, what, name=LOCK_FILE, subject=None, removed=False):
        self.folder, self.what, self.name = Path(folder), what, name
        self.subject = subject or self.folder  # what the refusal names as in use
        self.removed = removed  # the lock file goes on release (it lies in a folder that is not ours)
        self.fd = None

    @classmethod
    def beside(cls, target, what):
        """The lock of a folder that is built elsewhere and renamed into place (atomic.staging_dir): a file next to
        it, `.<name>.lock`, in the user's folder, so it is removed on release."""
        target = Path(target)
        return cls(target.parent, what, name=f".{target.name}.lock", subject=target, removed=True)

    def acquire(self):
        path = atomic.ensure_dir(self.folder) / self.name
        fd = self.locked(path)
        while self.removed and not self.is_file_at(fd, path):
            os.close(fd)  # locked a file its holder removed on release: lock the one at the path now
            fd = self.locked(path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def locked(self, path):
        """A descriptor of the lock file at `path`, flocked; a lock held elsewhere is one line naming its PID."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise output_error(path, err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{self.subject} is in use by another {self.what} (PID {holder}): wait for it to finish, "
                            f"or pick another folder") from None
        return fd

    @staticmethod
    def is_file_at(fd, path):
        try:
            return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def holder(folder):
        """The PID of the process that holds <folder>/.lock, or None when no process holds it (nothing is created)."""
        try:
            fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)  # closing drops a lock this probe took
        return None

    def release(self):
        if self.fd is not None:
            if self.removed:  # while it is held: a process that opened it meanwhile sees it gone and retries
                with contextlib.suppress(OSError):
                    os.unlink(self.folder / self.name)
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def folder_kind(folder):
    """'run' (a training run's folder), 'results' (a deploy's) or None, from what the folder's written-files record
    holds: a run writes its RUN_FILES, a deploy its manifest.json."""
    record = WrittenFiles(folder) if (Path(folder) / WRITTEN_FILES).is_file() else None
    if record is None:
        return None
    if any(name in record for name in RUN_FILES):
        return "run"
    return "results" if "manifest.json" in record else None


def enclosing_folder(folder, kind):
    """`folder` itself or its nearest parent folder (links resolved) of `kind` ('run' or 'results'), or None: a run
    and a deploy's results never nest in each other."""
    resolved = Path(folder).resolve()
    return next((f for f in (resolved, *resolved.parents) if folder_kind(f) == kind), None)


class WrittenFiles:
    """The set of files (relative paths) written into a folder by the toolbox, kept in written_files.json."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / WRITTEN_FILES
        self.names = self._read()

    def _read(self):
        if not self.path.is_file():
            return set()
        try:
            names = bounded.read_json(self.path)["files"]
        except (OSError, ValueError, KeyError, TypeError):
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self.damaged("it is not a list of the files written")
        escaping = next((n for n in names if outside(n)), None)
        if escaping is not None:  # the toolbox records paths inside the folder only
            raise self.damaged(f"it lists {escaping!r:.120}, which is not inside {self.folder}")
        return set(names)

    def damaged(self, why):
        return UserError(f"{self.path} is damaged ({why}): without it the toolbox cannot tell its files from yours; "
                         f"move the folder's contents elsewhere, or pick another folder (--save for a training run, "
                         f"--dir_out for a deploy)")

    def obstacles(self):
        """The paths that stand in the way of deleting the recorded files (symlinks, things that are not files)."""
        found = (obstacle(self.folder, rel) for rel in sorted(self.names))
        return [path for path in found if path not in (None, "missing")]

    def add(self, rel):
        rel = Path(rel).as_posix()
        if rel not in self.names:
            self.names.add(rel)
            self._write()

    def _write(self):
        atomic.write_text(self.path, json.dumps({"files": sorted(self.names)}, indent=1) + "\n")

    def __contains__(self, rel):
        return Path(rel).as_posix() in self.names

    def delete_except(self, keep):
        """Delete the recorded files not in `keep` (relative paths) as delete_all does; returns the count deleted."""
        deleted = 0
        for rel in sorted(self.names - {Path(k).as_posix() for k in keep}):
            if unlink_inside(self.folder, rel) in ("deleted", "missing"):
                deleted += 1
                self.names.discard(rel)
        self._write()
        return deleted

    def delete_all(self):
        """Delete every recorded file that is a regular file reached without symlinks, inside the folder; returns
        (deleted count, the paths left because a symlink or a non-file stands in the way)."""
        deleted, left, kept = 0, [], set()
        for rel in sorted(self.names):
            outcome = unlink_inside(self.folder, rel)
            if outcome == "deleted":
                deleted += 1
            elif outcome != "missing":
                left.append(outcome)
                kept.add(rel)  # still ours, still recorded
        if kept != self.names:
            self.names = kept
            self._write()
        return deleted, left


def obstacle(folder, rel):
    """None when folder/rel is a regular file reached without symlinks, inside folder; else "missing", or the path
    that stands in the way of deleting it (a symlink, or something not a file)."""
    parts = Path(rel).parts
    current = Path(folder)
    for part in parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return "missing"
        last = current == Path(folder).joinpath(*parts)
        if not (stat.S_ISREG(mode) if last else stat.S_ISDIR(mode)):  # a symlink where a folder or file should be
            return current
    return None


def unlink_inside(folder, rel):
    """Unlink folder/rel only if rel stays inside folder, no component is a symlink, and it is a regular file.
    Returns "deleted", "missing", or the path that stands in the way (a symlink, or something not a file)."""
    if outside(rel):
        return Path(folder) / rel
    current = Path(folder).joinpath(*Path(rel).parts)
    blocked = obstacle(folder, rel)
    if blocked is not None:
        return blocked
    try:
        os.unlink(current)
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        raise UserError(f"--reset: cannot delete {current}: {err.strerror}") from None
    return "deleted"


def outside(rel):
    """Whether a recorded relative path is empty, absolute or climbs out of its folder."""
    parts = Path(rel).parts
    return not parts or Path(rel).is_absolute() or ".." in parts


def remove_empty_dir(folder):
    try:
        if stat.S_ISDIR(os.lstat(folder).st_mode) and not any(os.scandir(folder)):
            os.rmdir(folder)
    except OSError:
        pass


class RunFolder:
    """experiment/<save>/ of a training run: locked while in use, every written file recorded.

    Opened only after every flag and the data were validated (demo_train.py), so --reset never loses a run to a typo.
    """

    def __init__(self, cfg, lock=True):
        self.dir = run_dir(cfg.save, cfg.dir_experiment)
        results = enclosing_folder(self.dir, "results")  # before the lock makes the folder
        if results is not None:
            where = "" if results == self.dir.resolve() else f" is inside {results}, which"
            raise UserError(f"{self.dir}{where} holds a deploy's results (its manifest.json), not a training run: "
                            f"pick another --save")
        self.lock = FolderLock(self.dir, "training") if lock else None
        if self.lock:
            self.lock.acquire()
        try:
            self.open(cfg)
        except BaseException:
            self.close()  # a refused start leaves the folder free
            raise

    def open(self, cfg):
        if self.lock:  # only the folder's writer: a reader (--test_only) must not take a live writer's temp files
            for folder in (self.dir, self.dir / "model"):
                atomic.remove_stale_temps(folder)
        self.written = WrittenFiles(self.dir)
        if cfg.reset:
            self.reset()
        self.check_no_links()
        self.check_foreign_files()
        latest = self.path("model", "model_latest.pt")
        if cfg.purpose == "train" and latest.is_file():
            raise UserError(f"{self.dir} already holds a run: add --resume to continue it, --reset to start it "
                            f"over, or pick another --save")

    def path(self, *parts):
        return self.dir.joinpath(*parts)

    def reset(self):
        blocked = self.written.obstacles()
        if blocked:  # checked before anything is deleted: a reset is whole or not at all
            raise UserError(f"--reset: {blocked[0]} is a symbolic link or not a regular file where this run wrote a "
                            f"file (the toolbox never deletes through a link), so nothing was deleted: remove it "
                            f"yourself, or pick another --save")
        deleted, left = self.written.delete_all()
        for name in ("results", "model"):
            remove_empty_dir(self.path(name))
        print(f"--reset: deleted the {deleted} files this run had written in {self.dir}")
        if left:
            raise UserError(f"--reset: {len(left)} files of this run were left because {left[0]} is a symbolic link "
                            f"or not a regular file (the toolbox never deletes through a link): remove it yourself, "
                            f"or pick another --save")

    def check_no_links(self):
        """A file or folder of this run that has become a symbolic link is refused, as --reset refuses it: writing or
        appending through it would change a file outside the run."""
        for rel in sorted({*self.written.names, *RUN_FILES, "model", "model/model_latest.pt", "model/model_best.pt"}):
            current = self.dir
            for part in Path(rel).parts:
                current = current / part
                if current.is_symlink():
                    raise UserError(f"{current} is a symbolic link; this run writes only its own files, never through "
                                    f"a link: replace the link by the file itself, or pick another --save")

    def check_foreign_files(self):
        for rel in RUN_FILES:
            if os.path.lexists(self.path(rel)) and rel not in self.written:
                raise UserError(f"{self.path(rel)} was not written by this toolbox (it is not in {WRITTEN_FILES}), "
                                f"and a run would replace it: move it away or pick another --save")

    def target(self, *parts):
        """The path of a file this run is about to write, recorded first (so a crash never leaves an unrecorded
        file of ours behind)."""
        path = self.path(*parts)
        self.written.add(path.relative_to(self.dir))
        return path

    def write_config(self, cfg):
        """config.txt: one section per start (train, resume, test), with where each value came from."""
        previous = self.path("config.txt").read_text() if self.path("config.txt").is_file() else ""
        section = f"# {datetime.datetime.now():%Y-%m-%d %H:%M:%S} {cfg.purpose}\n{cfg.describe()}\n\n"
        atomic.write_text(self.target("config.txt"), previous + section)

    def log(self, line, echo=True):
        if echo:
            print(line, flush=True)
        path = self.target("log.txt")
        try:
            # O_NOFOLLOW: a log that became a link after the start is an error, never a write to the link's target
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666), "a") as f:
                f.write(line + "\n")
        except OSError as err:
            raise output_error(path, err) from None

    def close(self):
        if self.lock:
            self.lock.release()


class Bystander:
    """The run folder as seen by a rank other than 0 under torchrun: it knows the paths, writes nothing."""

    def __init__(self, cfg):
        self.dir = run_dir(cfg.save, cfg.dir_experiment)

    def path(self, *parts):
        return self.dir.joinpath(*parts)

    def log(self, line, echo=True):
        pass

    def write_config(self, cfg):
        pass

    def close(self):
        pass
