"""The newcomer's path: the used-by commands as typed, in the design card's order, on a copy of the repository; clean
logs when the output is redirected; the hints a newcomer meets."""
import csv
import shutil
import subprocess
import sys

import pytest

import demo_deploy
import quickstart
from conftest import REPO_ROOT
from errors import UserError
from helpers import SAMPLE, copy_dataset, isolated


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory):
    """The repository as a fresh clone has it: the code, the metric script and the embedded datasets."""
    root = tmp_path_factory.mktemp("clone") / "repo"
    for part in ("codes", "metric_scripts", "datasets"):
        shutil.copytree(REPO_ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "experiment").mkdir()
    return root


def typed(command, cwd):
    """A command as a user types it (`python X.py --flag=...`), from its folder, output redirected to a log."""
    proc = subprocess.run([sys.executable, *command.split()[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, (command, proc.stderr[-3000:])
    return proc


def test_the_used_by_commands_work_as_typed_in_order_after_the_quickstart(fresh_copy):
    """README command 1 trains the HSENet x4 the deploy needs (quickstart.train_models, as the quickstart runs it);
    then the three used-by commands, exactly as the design card types them."""
    quickstart.train_models(4, cpu=True, experiment_dir=fresh_copy / "experiment")
    codes, metric_scripts = fresh_copy / "codes", fresh_copy / "metric_scripts"
    train = typed("python demo_train.py --model=CONVFORMERSR --scale=3", codes)
    assert (fresh_copy / "experiment" / "CONVFORMERSRx3_Sample" / "model" / "model_best.pt").is_file()
    deploy = typed("python demo_deploy.py --model=HSENET --scale=4", codes)
    results = fresh_copy / "experiment" / "results" / "HSENETx4_Sample"
    assert "4 images ->" in deploy.stdout and len(list(results.glob("*.png"))) == 4
    score = typed("python calculate_PSNR_SSIM.py", metric_scripts)
    assert f"SR {results}" in score.stdout  # it scores what the deploy wrote, not an older folder
    with open(results / "psnr_ssim.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["image"] == "average" and 10 < float(rows[-1]["psnr_chmean"]) < 40
    for proc in (train, deploy, score):  # logs stay clean when the output is not a terminal
        assert "\r" not in proc.stdout + proc.stderr


def test_a_dataset_root_without_a_test_split_is_named_without_suggesting_recursive(tmp_path):
    root = copy_dataset(SAMPLE, tmp_path / "Mine", splits=("train", "val"), scales=(4,), limit=2)
    with pytest.raises(UserError, match="is a dataset root without a test/LR_x4 split") as err:
        demo_deploy.main(["--model=BICUBIC", f"--dir_data={root}", *isolated(tmp_path)])
    assert "--recursive" not in str(err.value)
