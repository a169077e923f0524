"""Small helpers shared by the CLI tests."""
import contextlib
import importlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import torch

import errors
from conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "datasets" / "Sample"
SAMPLE_MS = REPO_ROOT / "datasets" / "SampleMS"
CODES = REPO_ROOT / "codes"

# A tiny BASIC that trains in seconds on 2 cores.
TINY_BASIC = ["--model=BASIC", "--n_feats=8", "--n_resblocks=1", "--patch_size=24", "--batch_size=4",
              "--test_every=2", "--cpu"]


def isolated(tmp_path):
    """Flags that keep a run's files inside tmp_path."""
    return ["--dir_experiment", str(tmp_path / "experiment"), "--dir_cache", str(tmp_path / "cache")]


def copy_dataset(src, dst, splits=("train", "val", "test"), scales=(2, 3, 4), limit=None):
    """Copy (part of) an embedded dataset, so a test may modify files."""
    for split in splits:
        for sub in ["HR"] + [f"LR_x{s}" for s in scales]:
            files = sorted((src / split / sub).iterdir())[:limit]
            (dst / split / sub).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy2(f, dst / split / sub / f.name)
    return dst


def run_script(script, *args, cwd=None):
    """Run a CLI the way a user does; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd or Path(script).parent,
                          capture_output=True, text=True, timeout=600)


def call_script(script, *args, cwd=None):
    """`run_script` in this process: the script's main() under errors.run_cli, as `python SCRIPT ARGS` runs it, in
    the same folder, with the exit code, stdout and stderr a subprocess gives (a traceback included, and what C
    libraries such as GDAL write to the file descriptors), but without an interpreter start and `import torch`
    (about 2 s each on 2 busy cores). For tests of what a command does; tests of the process itself (signals, kills,
    its memory, its exit at interpreter shutdown) and the commands run as typed (test_readme.py, test_user_path.py)
    start a real one."""
    script, argv = Path(script), [str(arg) for arg in args]
    module = script_module(script)
    folder, argv0, threads, unraisable = os.getcwd(), sys.argv, torch.get_num_threads(), sys.unraisablehook
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}  # run_cli sets them
    code = 0
    try:
        os.chdir(cwd or script.parent)
        sys.argv = [str(script), *argv]  # argparse's prog, as the script's own process has it
        with captured_output() as output:
            try:
                errors.run_cli(module.main, argv)
            except SystemExit as exit_:
                code = exit_status(exit_.code)
            except BaseException:  # a bug: what the interpreter prints, and its exit code
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(folder)
        sys.argv, sys.unraisablehook = argv0, unraisable
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess([sys.executable, str(script), *argv], code, *output)


def script_module(script):
    """The imported module of a script file (codes/data_scripts/x.py as data_scripts.x, as the tests import it)."""
    script = script.resolve()
    if script.is_relative_to(CODES):
        name = ".".join(script.relative_to(CODES).with_suffix("").parts)
    else:
        if str(script.parent) not in sys.path:
            sys.path.insert(0, str(script.parent))
        name = script.stem
    return importlib.import_module(name)


def exit_status(code):
    """The process exit status of SystemExit(code), as the interpreter sets it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def captured_output():
    """Yields [stdout, stderr], filled on exit: what Python printed, then what was written to file descriptors 1
    and 2 (C libraries)."""
    result = ["", ""]
    python_out, python_err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryFile() as fd_out, tempfile.TemporaryFile() as fd_err:
        kept = [os.dup(1), os.dup(2)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd_out.fileno(), 1)
        os.dup2(fd_err.fileno(), 2)
        try:
            with contextlib.redirect_stdout(python_out), contextlib.redirect_stderr(python_err):
                yield result
        finally:
            os.dup2(kept[0], 1)
            os.dup2(kept[1], 2)
            for fd in kept:
                os.close(fd)
            for i, (python, fd_file) in enumerate(((python_out, fd_out), (python_err, fd_err))):
                fd_file.seek(0)
                result[i] = python.getvalue() + fd_file.read().decode(errors="replace")


def assert_one_line_error(proc, *fragments):
    """Exit code 2, no traceback, and one 'error:' line that contains every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
