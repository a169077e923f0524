"""cpu_runtime: every entry script imports it before anything that loads torch; OpenMP's spin count (the user's own
OMP_WAIT_POLICY or GOMP_SPINCOUNT wins) and glibc's heap (large blocks reused without new page faults, unless the user
tuned malloc)."""
import ast
import os
import platform
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

ENTRY_SCRIPTS = [
    "codes/demo_train.py", "codes/demo_deploy.py", "codes/quickstart.py", "codes/export_onnx.py",
    "metric_scripts/calculate_PSNR_SSIM.py", "codes/data_scripts/prepare_dataset.py",
    "codes/data_scripts/make_sample.py", "codes/data_scripts/prepare_div2k.py",
    *sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "bench").glob("*.py")),
]


def first_non_stdlib_import(path):
    """The first module a script imports at top level that is not in the standard library."""
    for node in ast.parse(path.read_text()).body:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            if name.split(".")[0] not in sys.stdlib_module_names:
                return name
    return None


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_each_entry_script_sets_the_wait_policy_before_torch_can_load(script):
    assert first_non_stdlib_import(REPO_ROOT / script) == "cpu_runtime"


def spin_count_seen_by_a_script(env):
    code = "import demo_deploy, os, sys; print(os.environ.get('GOMP_SPINCOUNT', '-'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT / "codes", env=env, capture_output=True,
                         text=True, check=True).stdout
    return out.split()


def test_a_short_spin_is_the_default_and_the_users_setting_wins():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    assert spin_count_seen_by_a_script(env) == ["30000", "True"]
    assert spin_count_seen_by_a_script({**env, "GOMP_SPINCOUNT": "5"}) == ["5", "True"]
    assert spin_count_seen_by_a_script({**env, "OMP_WAIT_POLICY": "PASSIVE"}) == ["-", "True"]


# In a script that imports cpu_runtime first, a 256 MiB tensor is allocated and freed, then one of 128 MiB, which fits
# in the freed block: the page faults of the second allocation and its fill, and whether the module applied its
# setting.
SECOND_BLOCK_FAULTS = """
import resource, cpu_runtime, torch
first = torch.ones(64 * 2**20)
del first
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
second = torch.ones(32 * 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, cpu_runtime.HEAP_KEPT)
"""
BLOCK_PAGES = 128 * 2**20 // 4096


def second_block_faults(env):
    out = subprocess.run([sys.executable, "-c", SECOND_BLOCK_FAULTS], cwd=REPO_ROOT / "codes", env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), out[1] == "True"


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_a_freed_large_block_is_reused_without_page_faults_unless_the_user_tuned_malloc():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    faults, kept = second_block_faults(env)
    assert kept and faults < BLOCK_PAGES // 20  # the heap hands the freed pages back: (almost) no fault
    # glibc's own behaviour, which the user's setting keeps: the block is mapped afresh and every page faults in
    faults, kept = second_block_faults({**env, "MALLOC_MMAP_MAX_": "65536"})
    assert not kept and faults >= BLOCK_PAGES * 0.9
