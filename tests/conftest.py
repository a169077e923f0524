"""Put codes/ on the import path (the scripts run from there) and expose shared paths."""
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
sys.path.insert(0, str(REPO_ROOT / "codes"))
import cpu_runtime  # noqa: E402, F401  (as the scripts do: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split

import pytest  # noqa: E402
import torch  # noqa: E402


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
