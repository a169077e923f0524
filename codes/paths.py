"""Every location the toolbox reads or writes by default, in one place, so no default depends on the working
directory:

    datasets/<dataset>/                        a dataset root (--dir_data overrides it)
    experiment/<save>/                         a training run (--save, default <MODEL>x<scale>_<dataset>)
    experiment/results/<MODEL>x<scale>_<name>/ a deploy's outputs (name: the dataset or the input's name)
    experiment/onnx/<MODEL>x<scale>_<dataset>.onnx  export_onnx.py's default output
    experiment/cache/                          --ext sep's binary cache (--dir_cache)
"""
from pathlib import Path

from errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = REPO_ROOT / "datasets"
EXPERIMENT_DIR = REPO_ROOT / "experiment"
CACHE_DIR = EXPERIMENT_DIR / "cache"
# Folders of experiment/ that are not runs.
NOT_RUNS = ("results", "cache", "onnx")


def dataset_root(dir_data, dataset):
    """--dir_data, else datasets/<dataset>."""
    return Path(dir_data) if dir_data else DATASETS_DIR / dataset


def run_name(model, scale, dataset):
    """The default name of a run folder, of a deploy's results folder and of an export."""
    return f"{model}x{scale}_{dataset}"


def run_dir(save, experiment_dir):
    """experiment/<save>, refusing a --save that escapes experiment/ (absolute paths, '..', symlinks out of it, the
    folder itself, or the results/ and cache/ folders)."""
    root = Path(experiment_dir).resolve()
    target = (root / save).resolve()
    if root not in target.parents or (target.parent == root and target.name in ("results", "cache")):
        raise UserError(f"--save {save!r} must name a folder inside {root} (no absolute path, no '..', no symlink "
                        f"out of it, not 'results' or 'cache')")
    return target


def results_root(experiment_dir):
    return Path(experiment_dir) / "results"


def results_dir(experiment_dir, model, scale, name):
    return results_root(experiment_dir) / run_name(model, scale, name)


def onnx_path(experiment_dir, model, scale, dataset):
    return Path(experiment_dir) / "onnx" / f"{run_name(model, scale, dataset)}.onnx"
