"""The UC Merced workflow end to end on real tiles: prepare_dataset.py (class folders, stratified split) ->
demo_train.py --dataset UCMerced (HSENet, the paper's layout) -> demo_deploy.py -> calculate_PSNR_SSIM.py."""
import csv
import shutil
import sys

import demo_deploy
import demo_train
from conftest import REPO_ROOT
from helpers import CODES, call_script, isolated

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM  # noqa: E402

CLASSES = ("agricultural", "harbor", "river")
SMALL_HSENET = ["--model=HSENET", "--n_feats=8", "--n_basic_modules=1", "--cpu"]


def test_prepare_train_deploy_evaluate(tmp_path, shared_dir):
    src = tmp_path / "Images"
    for name in CLASSES:  # UC Merced's own layout: Images/<class>/<class>NN.tif
        shutil.copytree(shared_dir / "data" / "ucmerced_dev" / name, src / name)
    root = tmp_path / "UCMerced"
    proc = call_script(CODES / "data_scripts" / "prepare_dataset.py", "--src", src, "--dst", root, "--scales", "3",
                      "--split", "0.6,0.2,0.2")
    assert proc.returncode == 0, proc.stderr
    for split, per_class in (("train", 3), ("val", 1), ("test", 1)):
        names = sorted(p.stem for p in (root / split / "HR").iterdir())
        assert len(names) == per_class * len(CLASSES)
        assert all(sum(n.startswith(c) for n in names) == per_class for c in CLASSES)  # stratified

    flags = SMALL_HSENET + ["--scale=3", "--dataset=UCMerced", f"--dir_data={root}", *isolated(tmp_path)]
    demo_train.main(flags + ["--epochs=1", "--batch_size=2", "--patch_size=48"])
    run = tmp_path / "experiment" / "HSENETx3_UCMerced"
    with open(run / "metrics.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert 10 < float(row["psnr_rgb"]) < 50

    demo_deploy.main(flags)
    results = tmp_path / "experiment" / "results" / "HSENETx3_UCMerced"
    outputs = sorted(results.glob("*.tif"))
    assert len(outputs) == len(CLASSES)
    calculate_PSNR_SSIM.main(["--dir_experiment", str(tmp_path / "experiment")])  # GT from the manifest
    with open(results / "psnr_ssim.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows][-1] == "average" and len(rows) == len(CLASSES) + 1
    assert all(5 < float(r["psnr_chmean"]) < 50 and 0 < float(r["ssim_rgb"]) < 1 for r in rows)  # 1 tiny epoch
