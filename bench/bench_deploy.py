"""Benchmark demo_deploy.py on a whole scene: peak memory (RSS) and speed, tiled and whole-image, per backend.

Run from the repository root:

    python bench/bench_deploy.py [--size 2000] [--scale 4] [--whole auto|yes|no]
    python bench/bench_deploy.py --model LGCNET --size 512 --backends torch,onnxruntime --whole no --rounds 2

Writes a size x size 16-bit RGB GeoTIFF (a crop of the real Landsat-8 scene in ../shared/data/registry, bands
reordered blue,green,red -> red,green,blue and mirror-padded to the size; a synthetic scene when ../shared is absent),
saves a randomly initialised network as a checkpoint (BASIC --n_feats 16 --n_resblocks 2 by default; another --model
at its published preset), and runs `demo_deploy.py --cpu` on the scene in a fresh subprocess per setting: tiled with
each --backends (onnxruntime exports the checkpoint in the run, which is timed too), --rounds times in turns, then
whole-image. Prints, per setting, the wall time, the peak RSS of the subprocess (torch itself included) and the
output megapixels per second.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CODES = REPO_ROOT / "codes"
LANDSAT = REPO_ROOT.parent / "shared" / "data" / "registry" / "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
sys.path.insert(0, str(CODES))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402

import image_io  # noqa: E402
import option  # noqa: E402
from model import Model  # noqa: E402

BASIC_FLAGS = ["--n_feats=16", "--n_resblocks=2"]
# Rough peak bytes of a whole-image BASIC x4 forward per LR pixel (n_feats 16): the 64-channel conv outputs at 2x and
# the 16-channel pixel-shuffled map at 4x, alive together, in float32.
WHOLE_BYTES_PER_LR_PIXEL = 4 * (4 * 64 + 16 * 16 + 16 * 4 + 3 * 16)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2000, help="LR scene side in pixels")
    parser.add_argument("--model", default="BASIC", help="network (BASIC: a small one; others: their preset)")
    parser.add_argument("--backends", default="torch", help="comma list of deploy --backend values to time, tiled")
    parser.add_argument("--rounds", type=int, default=1, help="tiled runs per backend, in turns")
    parser.add_argument("--scale", type=int, default=4, choices=[2, 3, 4])
    parser.add_argument("--tile", type=int, default=-1, help="LR tile (-1: the model's default)")
    parser.add_argument("--tile_overlap", type=int, default=-1, help="LR overlap (-1: the model's default)")
    parser.add_argument("--whole", default="auto", choices=["auto", "yes", "no"],
                        help="also run --tile 0 (auto: BASIC only, when its estimated peak fits in half the free "
                             "memory)")
    parser.add_argument("--workdir", default=None,
                        help="keep the scene, outputs and logs here (default: a temp folder, deleted at the end)")
    return parser.parse_args(argv)


def landsat_rgb(size):
    """A size x size crop of the real scene in R, G, B order, mirror-padded where the scene is smaller."""
    scene = image_io.read_image_with_meta(LANDSAT)
    array, meta = scene[0][:size, :size, ::-1], scene[1]  # the file holds blue, green, red
    pad = ((0, max(size - array.shape[0], 0)), (0, max(size - array.shape[1], 0)), (0, 0))
    return np.ascontiguousarray(np.pad(array, pad, mode="reflect")), meta


def synthetic_rgb(size):
    """Smooth fields plus noise, uint16 in a Landsat-like range."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    bands = [6000 + 3000 * np.sin(2 * np.pi * (k + 1) * x) * np.cos(2 * np.pi * (3 - k) * y) for k in range(3)]
    array = np.stack(bands, axis=2) + rng.normal(0, 200, (size, size, 3))
    return np.clip(array, 0, 65535).astype(np.uint16), None


def write_scene(workdir, size):
    array, meta = landsat_rgb(size) if LANDSAT.is_file() else synthetic_rgb(size)
    source = "Landsat-8 scene (../shared)" if meta is not None else "synthetic"
    if meta is not None:
        meta = image_io.window_meta(meta, 0, 0, size, size)
    path = workdir / "scene.tif"
    image_io.write_image(path, array, meta)
    print(f"scene: {path} {size}x{size} RGB uint16 from the {source}")
    return path


def model_flags(model):
    """The flags that select the network: BASIC small, any other at its published preset (not the Sample's)."""
    return [f"--model={model}", "--cpu", *(BASIC_FLAGS if model == "BASIC" else ["--dataset=UCMerced"])]


def write_checkpoint(workdir, model, scale):
    """A random-init state_dict: deploy speed and memory do not depend on the weights."""
    torch.manual_seed(0)
    args = option.parse_args(model_flags(model) + [f"--scale={scale}"])
    path = workdir / f"{model.lower()}_x{scale}.pt"
    torch.save(Model(args).net.state_dict(), path)
    return path


def run_deploy(label, flags, log_path):
    """Run demo_deploy in a subprocess; (exit code, wall seconds, peak RSS in MiB) of that process alone."""
    command = [sys.executable, str(CODES / "demo_deploy.py"), *flags]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=CODES, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child only (not of earlier ones)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    peak_mib = usage.ru_maxrss / 1024  # Linux reports KiB
    print(f"{label}: exit {code}, {seconds:.1f} s, peak RSS {peak_mib:.0f} MiB")
    if code != 0:
        print("  " + "\n  ".join(Path(log_path).read_text().splitlines()[-5:]))
    return code, seconds, peak_mib


def available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def whole_image_fits(size, scale):
    estimate = WHOLE_BYTES_PER_LR_PIXEL * size * size * (scale / 4) ** 2 + 2e9
    return estimate < available_bytes() / 2, estimate


def report(label, result, out_megapixels):
    code, seconds, peak = result
    if code == 0:
        print(f"  {label}: {out_megapixels / seconds:.2f} MP/s output (end to end, incl. start-up and I/O), "
              f"peak RSS {peak / 1024:.2f} GiB")


def main(argv=None):
    args = parse_args(argv)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        return run_benchmark(args, Path(args.workdir))
    with tempfile.TemporaryDirectory(prefix="bench_deploy_") as workdir:  # the outputs are GBs: never leave them
        return run_benchmark(args, Path(workdir))


def run_benchmark(args, workdir):
    scene = write_scene(workdir, args.size)
    model = args.model.upper()
    checkpoint = write_checkpoint(workdir, model, args.scale)
    common = model_flags(model) + [f"--scale={args.scale}", "--pre_train", str(checkpoint), "--dir_data",
                                   str(scene), "--dir_experiment", str(workdir / "experiment")]
    out_megapixels = (args.size * args.scale) ** 2 / 1e6
    side = args.size * args.scale
    print(f"{model} x{args.scale}, threads: {torch.get_num_threads()}, output {side}x{side} ({out_megapixels:.0f} MP)")
    tiling = [f"--{flag}={value}" for flag, value in (("tile", args.tile), ("tile_overlap", args.tile_overlap))
              if value >= 0]  # -1: the model's default, which deploy takes when the flag is absent
    for round_ in range(args.rounds):
        for backend in args.backends.split(","):
            name = f"tiled_{backend}_{round_}"
            tiled = run_deploy(f"{model} tiled, --backend {backend} (--tile {args.tile} --tile_overlap "
                               f"{args.tile_overlap}; -1: model default)",
                               common + ["--dir_out", str(workdir / name), f"--backend={backend}", *tiling],
                               workdir / f"{name}.log")
            report("tiled", tiled, out_megapixels)
    fits, estimate = whole_image_fits(args.size, args.scale)
    if args.whole == "no":
        print("whole image (--tile 0): skipped (--whole no)")
    elif args.whole == "auto" and model != "BASIC":
        print("whole image (--tile 0): skipped, the memory estimate is BASIC's (--whole yes forces it)")
    elif args.whole == "yes" or (args.whole == "auto" and fits):
        whole = run_deploy("whole image (--tile 0)", common + ["--dir_out", str(workdir / "whole"), "--tile=0"],
                           workdir / "whole.log")
        report("whole", whole, out_megapixels)
    else:
        print(f"whole image (--tile 0): skipped, estimated peak {estimate / 2**30:.1f} GiB does not fit in half of "
              f"the {available_bytes() / 2**30:.1f} GiB available (--whole yes forces it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
