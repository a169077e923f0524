"""The shipped models' table, rebuilt from pretrained/index.json, and shipping a trained run.

    python pretrained_zoo.py table --src UCMerced_LandUse/Images     # prepare (the index's protocol and seed) if
                                                                      # datasets/UCMerced is absent, deploy every
                                                                      # shipped model and BICUBIC on its test split,
                                                                      # score them (crop = scale), print the table
    python pretrained_zoo.py table --write                            # ... and record the scores in the index
    python pretrained_zoo.py ship --run ../experiment/BASICx4_UCMerced --name basic_x4_ucmerced16 \\
        --data "UC Merced Land Use, 16-class public mirror" --classes 16 --gsd 0.3

`ship` writes pretrained/<name>.pt from the run's model_best.pt (weights, configuration and radiometry: no optimizer)
and its index entry: the training as the run's checkpoint records it (iterations, batch, patch, precision, wall time)
with the share of the paper's schedule, and this machine. `table` scores with the metric script's functions, so its
numbers are the ones calculate_PSNR_SSIM.py prints.
"""
import cpu_runtime  # noqa: F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import argparse
import csv
import json
import os
import platform
import sys
from pathlib import Path

import atomic
import checkpoint
import deploy
import image_files
import option
import paths
import pretrained
import template
from errors import UserError, run_cli
from paths import EXPERIMENT_DIR, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "codes" / "data_scripts"))
import prepare_dataset  # noqa: E402

# UC Merced's training split under the ucmerced protocol (45 of each class's 100 images, 21 classes): the paper
# schedules are stated in epochs over it.
PAPER_TRAIN_IMAGES = 945
TABLE_COLUMNS = ("psnr_chmean", "ssim_rgb")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="deploy and score every shipped model on its test split; print the table")
    table.add_argument("--src", type=Path, default=None, help="the UC Merced Images folder, to prepare the split "
                       "when the dataset root does not exist yet")
    table.add_argument("--dir_data", type=Path, default=paths.dataset_root(None, "UCMerced"),
                       help="the prepared dataset root")
    table.add_argument("--dir_out", type=Path, default=EXPERIMENT_DIR / "results" / "pretrained",
                       help="where the SR images and their scores go")
    table.add_argument("--write", action="store_true", help="record the scores in pretrained/index.json")
    table.add_argument("--cpu", action="store_true")
    ship = sub.add_parser("ship", help="pretrained/<name>.pt and its index entry from a run's model_best.pt")
    ship.add_argument("--run", type=Path, required=True, help="the run folder (experiment/<save>)")
    ship.add_argument("--name", required=True, help="the name --pre_train will know it by")
    ship.add_argument("--data", required=True, help="what it was trained on, in words")
    ship.add_argument("--classes", type=int, required=True, help="the class count of the source")
    ship.add_argument("--gsd", type=float, required=True, help="ground sample distance of the training HR, metres")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------------------ ship
def ship(args):
    if not pretrained.NAME.match(args.name):
        raise UserError(f"--name {args.name!r}: use lower-case letters, digits and underscores")
    source = checkpoint.read(args.run / "model" / checkpoint.BEST)
    source.verify()
    payload = {key: source.payload[key] for key in ("model", "config", "radiometry")}
    target = pretrained.PRETRAINED_DIR / f"{args.name}.pt"
    checkpoint.save(target, payload)
    latest = checkpoint.read(args.run / "model" / checkpoint.LATEST).payload
    split = split_of(payload["config"], args.classes)
    entry = {"name": args.name, "model": payload["config"]["model"], "scale": payload["config"]["scale"],
             "file": target.name, "sha256": pretrained.file_digest(target), "dataset": args.data,
             "split": split, "bands": payload["config"]["bands"], "gsd": args.gsd,
             "training": training_of(payload["config"], source.payload, latest, split["train"])}
    entries = [e for e in pretrained.read_index() if e["name"] != args.name] + [entry]
    write_index(entries)
    print(f"shipped {target} ({target.stat().st_size / 1e6:.2f} MB), best of epoch {source.payload['best_epoch']}")
    return 0


def split_of(config, classes):
    root = paths.dataset_root(config["dir_data"], config["dataset"])
    counts = {split: len(image_files.list_images(root / split / "HR")) for split in ("train", "val", "test")}
    return {"protocol": "ucmerced", "seed": 0, "classes": classes, **counts}


def training_of(config, best, latest, train_images):
    """The training as the checkpoints record it, and its share of the paper's schedule (the model preset's epochs
    over the ucmerced protocol's 945 training images: samples seen against samples the paper saw). A run that
    fine-tuned a shipped model (--pre_train NAME) adds that model's training: its samples, iterations and wall time
    up to the weights it shipped."""
    history = latest["history"]
    batches = config["test_every"] or train_images // config["batch_size"]
    iterations, best_iteration = len(history) * batches, best["best_epoch"] * batches
    samples, best_samples = iterations * config["batch_size"], best_iteration * config["batch_size"]
    wall = sum(row["seconds"] for row in history)
    base = next((e for e in pretrained.read_index() if e["name"] == config.get("pre_train")), None)
    if base is not None:
        before = base["training"]
        shipped = before.get("best_samples", before["best_iteration"] * before["batch"])
        iterations, best_iteration = iterations + before["best_iteration"], best_iteration + before["best_iteration"]
        samples, best_samples = samples + shipped, best_samples + shipped
        wall += before["wall_seconds"]
    preset = template.MODEL_PRESETS.get(config["model"], {})
    paper_samples = preset.get("epochs", 0) * PAPER_TRAIN_IMAGES
    return {"iterations": iterations, "best_iteration": best_iteration, "batch": config["batch_size"],
            "samples": samples, "best_samples": best_samples,
            **({"fine_tuned_from": base["name"]} if base is not None else {}),
            "patch": config["patch_size"], "lr": config["lr"], "precision": config["precision"],
            "wall_seconds": round(wall), "machine": machine(),
            "paper_schedule_share": round(samples / paper_samples, 4) if paper_samples else None}


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    return f"{os.cpu_count()} cores, {cpu}, CPU only, 1 thread per training"


def write_index(entries):
    atomic.write_text(pretrained.INDEX, json.dumps({"models": entries}, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------------- table
def table(args):
    entries = pretrained.read_index()
    if not entries:
        raise UserError(f"{pretrained.INDEX} lists no model")
    prepare(args, entries[0]["split"])
    rows = []
    for entry in entries:
        scale = entry["scale"]
        scores = score(args, entry["name"], [f"--model={entry['model']}", f"--pre_train={entry['name']}"], scale)
        bicubic = score(args, f"bicubic_x{scale}", ["--model=BICUBIC"], scale)
        rows.append((entry, scores, bicubic))
        if args.write:
            entry["test"] = {**{k: round(scores[k], 4) for k in TABLE_COLUMNS},
                             **{f"bicubic_{k}": round(bicubic[k], 4) for k in TABLE_COLUMNS}}
    if args.write:
        write_index(entries)
    print_table(rows)
    return 0


def prepare(args, split):
    """The test split the index's entries were scored on: prepared from --src when the root does not exist."""
    if not args.dir_data.is_dir():
        if args.src is None:
            raise UserError(f"{args.dir_data} does not exist: pass --src UCMerced_LandUse/Images to prepare it")
        prepare_dataset.main(["--src", str(args.src), "--dst", str(args.dir_data), "--protocol", split["protocol"],
                              "--seed", str(split["seed"])])
    held = len(image_files.list_images(args.dir_data / "test" / "HR"))
    if held != split["test"]:
        raise UserError(f"{args.dir_data}/test holds {held} images, the shipped models were scored on {split['test']} "
                        f"({split['classes']} classes, --protocol {split['protocol']} --seed {split['seed']}): "
                        f"prepare that split into another --dir_data")


def score(args, name, model_flags, scale):
    """The test split's average scores of one model (deployed, then scored by the metric script)."""
    out = args.dir_out / name
    flags = [*model_flags, f"--scale={scale}", "--dataset=UCMerced", f"--dir_data={args.dir_data}", f"--dir_out={out}",
             *(["--cpu"] if args.cpu else [])]
    deploy.run(option.parse_args(flags, purpose="deploy"))
    calculate_PSNR_SSIM.main(["--sr", str(out), "--gt", str(args.dir_data / "test" / "HR"), "--scale", str(scale)])
    with open(out / "psnr_ssim.csv", newline="") as f:
        average = next(row for row in csv.DictReader(f) if row["image"] == "average")
    return {k: float(average[k]) for k in TABLE_COLUMNS}


def print_table(rows):
    print("\n| model | scale | psnr_chmean (dB) | ssim | bicubic psnr_chmean | bicubic ssim | gain (dB) | iterations "
          "(batch) | samples seen | share of the paper's schedule |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for entry, scores, bicubic in rows:
        training = entry.get("training", {})
        share = training.get("paper_schedule_share")
        samples = samples_seen(training)
        print(f"| {entry['name']} | ×{entry['scale']} | {scores['psnr_chmean']:.2f} | {scores['ssim_rgb']:.4f} | "
              f"{bicubic['psnr_chmean']:.2f} | {bicubic['ssim_rgb']:.4f} | "
              f"{scores['psnr_chmean'] - bicubic['psnr_chmean']:+.2f} | {training.get('iterations', '?')} "
              f"({training.get('batch', '?')}) | {f'{samples:,}' if samples else '?'} | "
              f"{f'{share:.1%}' if share is not None else '?'} |")


def samples_seen(training):
    """Training samples (patches) the run saw: recorded, else iterations x batch (entries shipped before the
    record)."""
    if "samples" in training:
        return training["samples"]
    iterations, batch = training.get("iterations"), training.get("batch")
    return iterations * batch if isinstance(iterations, int) and isinstance(batch, int) else None


def main(argv=None):
    args = parse(argv)
    return ship(args) if args.command == "ship" else table(args)


if __name__ == "__main__":
    run_cli(main)
