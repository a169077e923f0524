"""Run folders, logs, CSV, plots, atomic checkpoint writes, seeding and RNG state."""
import csv
import datetime
import random
from pathlib import Path

import numpy as np
import torch

import image_io
from atomic import atomic_target
from errors import UserError
from paths import EXPERIMENT_DIR

# Everything a run writes into experiment/<save>/; --reset removes exactly these and nothing else.
RUN_FILES = ("config.txt", "log.txt", "metrics.csv", "loss.png", "psnr.png", "ssim.png",
             "model/model_latest.pt", "model/model_best.pt")
RUN_DIRS = ("results", "model")


def run_dir(save, experiment_dir=EXPERIMENT_DIR):
    """experiment/<save>, refusing a --save that escapes experiment/ (absolute paths, '..', the folder itself)."""
    root = Path(experiment_dir).resolve()
    target = (root / save).resolve()
    if root not in target.parents or (target.parent == root and target.name in ("results", "cache")):
        raise UserError(f"--save {save!r} must name a folder inside {root} (no absolute path, no '..', "
                        f"not 'results' or 'cache')")
    return target


def atomic_torch_save(obj, path):
    """torch.save to a temp file in the same folder, then rename: a crash never leaves a half-written file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


class RunFolder:
    """experiment/<save>/: config.txt, log.txt, metrics.csv, plots, model/model_{latest,best}.pt."""

    def __init__(self, args):
        self.dir = run_dir(args.save, args.dir_experiment)
        if args.reset:
            self.clear()
        latest = self.dir / "model" / "model_latest.pt"
        if args.resume and not latest.is_file():
            raise UserError(f"--resume: {latest} does not exist; train without --resume first")
        if not args.resume and not args.reset and not args.test_only and latest.is_file():
            raise UserError(f"{self.dir} already holds a run: add --resume to continue it, --reset to start it "
                            f"over, or pick another --save")
        (self.dir / "model").mkdir(parents=True, exist_ok=True)
        self.write_config(args)

    def path(self, *parts):
        return self.dir.joinpath(*parts)

    def clear(self):
        """--reset: delete only the files a run writes here (never a whole tree), then the emptied folders."""
        for name in RUN_FILES:
            self.path(name).unlink(missing_ok=True)
        results = self.path("results")
        if results.is_dir():
            for f in results.iterdir():
                if f.is_file():
                    f.unlink()
        for name in RUN_DIRS:
            d = self.path(name)
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()

    def write_config(self, args):
        mode = "a" if self.path("config.txt").exists() else "w"
        with open(self.path("config.txt"), mode) as f:
            f.write(f"# {datetime.datetime.now():%Y-%m-%d %H:%M:%S}\n")
            for key, value in sorted(vars(args).items()):
                f.write(f"{key}: {value}\n")
            f.write("\n")

    def log(self, line, echo=True):
        if echo:
            print(line, flush=True)
        with open(self.path("log.txt"), "a") as f:
            f.write(line + "\n")

    def append_csv(self, row):
        """One row per epoch; the header is written with the first row."""
        path = self.path("metrics.csv")
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def read_csv(self):
        path = self.path("metrics.csv")
        if not path.exists():
            return []
        with open(path, newline="") as f:
            return list(csv.DictReader(f))

    def plot(self):
        """loss.png, psnr.png, ssim.png from metrics.csv (so a resumed run plots its whole history)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.read_csv()
        if not rows:
            return
        epochs = [int(r["epoch"]) for r in rows]
        for key, label in (("loss", "training loss"), ("psnr", "validation PSNR (dB)"),
                           ("ssim", "validation SSIM")):
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(epochs, [float(r[key]) for r in rows], marker="o" if len(rows) < 30 else None)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.set_title(f"{self.dir.name}: {label}")
            ax.grid(True, alpha=0.3)
            fig.tight_layout()
            fig.savefig(self.path(f"{key}.png"), dpi=100)
            plt.close(fig)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state():
    """All RNG states as weights_only-loadable values (tensors, lists, numbers)."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
             "numpy_pos": int(np_state[2]), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((state["python_version"], tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def tensor_to_image(t, rgb_range, data_range, dtype):
    """(C, H, W) float in [0, rgb_range] -> (H, W, C) array of `dtype`, rounded (not truncated) to its levels."""
    array = (t.detach().float().cpu().clamp(0, rgb_range) * (data_range / rgb_range)).numpy().transpose(1, 2, 0)
    return image_io.to_dtype(array, dtype)
