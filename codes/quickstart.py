"""The main job on the embedded Sample, end to end: train a model briefly, deploy it and bicubic on the Sample's
test LR, and print their PSNR/SSIM side by side.

    python codes/quickstart.py [--model BASIC] [--scale 4] [extra demo_train.py flags...]

Each step is the same code as the used-by commands (demo_train.py, demo_deploy.py, calculate_PSNR_SSIM.py).
"""
import argparse
import csv
import sys

import demo_deploy
import demo_train
from errors import run_cli
from paths import EXPERIMENT_DIR, REPO_ROOT, RESULTS_DIR

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM  # noqa: E402


def average_row(csv_path):
    with open(csv_path, newline="") as f:
        return next(r for r in csv.DictReader(f) if r["image"] == "average")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="BASIC")
    parser.add_argument("--scale", type=int, default=4)
    known, extra = parser.parse_known_args(argv)
    common = [f"--model={known.model}", f"--scale={known.scale}", "--dataset=Sample"]
    save = f"quickstart_{known.model}x{known.scale}"
    print(f"== 1/3 train {known.model} x{known.scale} on the Sample ==")
    demo_train.main(common + [f"--save={save}", "--reset"] + extra)
    checkpoint = EXPERIMENT_DIR / save / "model" / "model_best.pt"
    rows = {}
    for model in ("BICUBIC", known.model):
        print(f"== 2/3 deploy {model} on the Sample test LR ==")
        demo_deploy.main([f"--model={model}", f"--scale={known.scale}", "--dataset=Sample"]
                         + ([f"--pre_train={checkpoint}"] if model != "BICUBIC" else [])
                         + [f for f in extra if f == "--cpu"])  # the checkpoint brings its own size flags
        sr_dir = RESULTS_DIR / f"{model}x{known.scale}_Sample"
        print(f"== 3/3 evaluate {model} ==")
        calculate_PSNR_SSIM.main(["--sr", str(sr_dir)])
        rows[model] = average_row(sr_dir / "psnr_ssim.csv")
    print_comparison(rows)
    return 0


def print_comparison(rows):
    columns = calculate_PSNR_SSIM.BASE_COLUMNS
    print("\nSample test set, averages (MATLAB-equivalent metrics, crop = scale):")
    print("model".ljust(14) + "".join(c.rjust(13) for c in columns))
    for model, row in rows.items():
        print(model.ljust(14) + "".join(f"{float(row[c]):13.4f}" for c in columns))


if __name__ == "__main__":
    run_cli(main)
