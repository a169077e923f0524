"""Small helpers shared by the CLI tests."""
import shutil
import subprocess
import sys
from pathlib import Path

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


def assert_one_line_error(proc, *fragments):
    """Exit code 2, no traceback, and one 'error:' line that contains every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
