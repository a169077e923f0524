"""README command 1, the newcomer's first run on the embedded Sample, end to end:

1. train BASIC x4 briefly (experiment/quickstart_BASICx4) and HSENet x4 on its light Sample preset
   (experiment/HSENETx4_Sample: the model that the used-by command `demo_deploy.py --model=HSENET --scale=4` deploys);
2. deploy BICUBIC, BASIC and HSENet on the Sample's test LR (experiment/results/<MODEL>x4_Sample);
3. score each with the metric script and print them side by side.

    python codes/quickstart.py [--scale 4] [--cpu] [--reset]

Each step is the same code as the used-by commands (demo_train.py, demo_deploy.py, calculate_PSNR_SSIM.py). A model
already trained by an earlier quickstart is reused (--reset trains it again).
"""
import cpu_runtime  # noqa: F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import argparse
import csv
import sys

import demo_train
import deploy
import option
import paths
from errors import run_cli
from paths import EXPERIMENT_DIR, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM  # noqa: E402

# (model, run folder): BASIC in a quickstart folder of its own; HSENet where the used-by deploy looks for it
TRAINED = (("BASIC", "quickstart_BASICx{scale}"), ("HSENET", "HSENETx{scale}_Sample"))


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=4, choices=[2, 3, 4])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when CUDA is available")
    parser.add_argument("--reset", action="store_true", help="train the quickstart's models again")
    return parser.parse_args(argv)


def train_models(scale, cpu=False, reset=False, experiment_dir=EXPERIMENT_DIR):
    """Train the quickstart's models on the Sample (skipping one an earlier quickstart finished); their checkpoints."""
    checkpoints = {}
    for model, save in TRAINED:
        save = save.format(scale=scale)
        best = paths.run_dir(save, experiment_dir) / "model" / "model_best.pt"
        flags = [f"--model={model}", f"--scale={scale}", "--dataset=Sample", f"--save={save}",
                 f"--dir_experiment={experiment_dir}"] + (["--cpu"] if cpu else [])
        if best.is_file() and not reset:
            print(f"-- {model} x{scale}: {best} exists (an earlier quickstart); --reset trains it again")
        else:
            print(f"-- train {model} x{scale} on the Sample ({save})")
            demo_train.main(flags + (["--reset"] if best.parent.parent.is_dir() else []))
        checkpoints[model] = best
    return checkpoints


def main(argv=None):
    args = parse(argv)
    print(f"== 1/3 train on the embedded Sample (x{args.scale}) ==")
    checkpoints = train_models(args.scale, args.cpu, args.reset)
    models = ["BICUBIC", *checkpoints]
    print(f"== 2/3 deploy {', '.join(models)} on the Sample's test LR ==")
    for model in models:
        flags = ([f"--model={model}", f"--scale={args.scale}", "--dataset=Sample"]
                 + ([f"--pre_train={checkpoints[model]}"] if model in checkpoints else [])
                 + (["--cpu"] if args.cpu else []))
        deploy.run(option.parse_args(flags, purpose="deploy"))
    print("== 3/3 evaluate (calculate_PSNR_SSIM.py) ==")
    rows = {}
    for model in models:
        sr_dir = paths.results_dir(EXPERIMENT_DIR, model, args.scale, "Sample")
        calculate_PSNR_SSIM.main(["--sr", str(sr_dir)])
        rows[model] = average_row(sr_dir / "psnr_ssim.csv")
    print_comparison(rows)
    return 0


def average_row(csv_path):
    with open(csv_path, newline="") as f:
        return next(r for r in csv.DictReader(f) if r["image"] == "average")


def print_comparison(rows):
    columns = calculate_PSNR_SSIM.BASE_COLUMNS
    print("\nSample test set, averages (MATLAB-equivalent metrics, crop = scale):")
    print("model".ljust(14) + "".join(c.rjust(13) for c in columns))
    for model, row in rows.items():
        print(model.ljust(14) + "".join(f"{float(row[c]):13.4f}" for c in columns))


if __name__ == "__main__":
    run_cli(main)
