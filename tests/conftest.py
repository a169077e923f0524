"""Put codes/ on the import path (the scripts run from there), expose shared paths, and set up the workers of
`-n auto` (their number, the order of the files, one OpenMP thread per script)."""
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
sys.path.insert(0, str(REPO_ROOT / "codes"))
import cpu_runtime  # noqa: E402, F401  (as the scripts do: OpenMP's spin count and glibc's heap, before torch loads)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core (`-n auto`): a script run as a subprocess takes one OpenMP thread too, as the in-process
    # runs do (one_torch_thread below). With torch's default of a thread per core, two workers' scripts put four
    # threads on two cores, and OpenMP's barriers made a 24 s training test take 106 s.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# isort: split

import pytest  # noqa: E402
import torch  # noqa: E402

# The slowest test files, run first: `--dist loadfile --no-loadscope-reorder` gives each worker a whole file, in
# collection order, so a long file started last would run alone at the end while the other core idles.
SLOWEST_FIRST = ("test_readme.py", "test_user_path.py", "test_distributed.py", "test_stopping.py",
                 "test_faults_files.py", "test_cross_sensor.py", "test_faults.py")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core this process may run on (a CI job's or a container's share), not xdist's count
    of the host's cores (psutil's, where it is installed), which on a large host would start dozens of workers, each
    with torch in memory. PYTEST_XDIST_AUTO_NUM_WORKERS still wins."""
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    return int(chosen) if chosen and chosen.isdigit() else len(os.sched_getaffinity(0))


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)
    items.sort(key=rank)  # stable: the order within a file, and among the other files, is kept


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (a fresh clone): skipping tests that read it")
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests run tiny tensors, which gain nothing from threads; on a busy 2-core machine OpenMP barriers made
    them many times slower. (Scripts run as subprocesses keep torch's default.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_fs(tmp_path):
    """mount(size, read_only=False) -> a real tmpfs folder of that many bytes (skips where mounting is not allowed).
    The project's ENOSPC/EROFS handling is also tested without it, by patched writers."""
    mounted = []

    def mount(size, read_only=False):
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root); the patched-writer tests cover the same paths")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
