"""OpenMP's spin count: every entry script imports cpu_threads before anything that loads torch, and the user's own
OMP_WAIT_POLICY or GOMP_SPINCOUNT wins."""
import ast
import os
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
    assert first_non_stdlib_import(REPO_ROOT / script) == "cpu_threads"


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
