"""The zoo table: every network of the toolbox at x4 on a 64x64 LR, on this CPU.

    python bench/bench_zoo.py [--models EDSR,RCAN] [--steps 2] [--threads 2]

For each network at its full published size (its model preset, as on UC Merced): parameters (with the mean-shift
values, as the official code counts them), GFLOPs of one 64x64 forward (bench_speed's counter: convolutions, matrix
products and the fused attention kernels), inference seconds (median of 3 after a warm-up), peak RAM of the
process, and the seconds of one training step (forward, backward, Adam) at the preset's batch and LR patch (a smaller
batch, said so, where the preset's would not fit in memory). Each network runs in a process of its own, so the peak
RAM is its own (importing torch alone takes about 0.5 GB of it). Random weights: speed does not depend on them.
Timing is not asserted anywhere; the numbers are what this machine measured in this run.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split

LR_SIZE = 64
SCALE = 4


def parameter_count(model):
    """Parameters plus the mean-shift weights and biases (buffers here, parameters in the official code)."""
    from model import common

    shifts = sum(b.numel() for m in model.modules() if isinstance(m, common.MeanShift) for b in m.buffers())
    return sum(p.numel() for p in model.parameters()) + shifts


def median_seconds(fn, runs):
    from export_onnx import median_seconds as median_of

    fn()  # warm-up (oneDNN primitive creation, caches)
    return median_of(fn, runs)


def batch_that_fits(model, batch, lr, radiometry):
    """The preset's batch, or the largest whose saved tensors take at most a quarter of this machine's memory (SwinIR's
    preset batch of 32 would need about 31 GiB by that count, and its step takes about twice what it counts)."""
    from bench_common import saved_gib_per_sample

    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    per_sample = saved_gib_per_sample(model.net.train(), model.prepare(lr, radiometry))
    return max(1, min(batch, int(memory_gib / 4 // per_sample)))


def measure(name, steps):
    """One network's row (run in a child process)."""
    import numpy as np
    import torch

    from bench_common import count_gflop
    from model import Model
    from option import parse_args
    from radiometry import Radiometry

    cfg = parse_args([f"--model={name}", f"--scale={SCALE}", "--dataset=UCMerced", "--cpu"], purpose="none")
    torch.manual_seed(0)
    model = Model(cfg).eval()
    radiometry = Radiometry.of(np.uint8, None, cfg.rgb_range)
    size = model.tile_plan.tile if model.tile_plan.fixed else LR_SIZE  # TransENet takes its fixed size only
    x = torch.rand(1, cfg.n_colors, size, size)
    forward = model.inference_fn(radiometry=radiometry)
    row = {"model": name, "params": parameter_count(model.model), "lr_size": size,
           "gflop": count_gflop(forward, x), "infer_s": median_seconds(lambda: forward(x), runs=3)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    if trainable:
        patch = cfg.lr_patch  # the LR patch (--patch_size is the HR patch)
        batch = batch_that_fits(model, cfg.batch_size, torch.rand(1, cfg.n_colors, patch, patch), radiometry)
        lr_batch = torch.rand(batch, cfg.n_colors, patch, patch)
        hr_batch = torch.rand(batch, cfg.n_colors, patch * SCALE, patch * SCALE)
        optimizer = torch.optim.Adam(trainable, lr=1e-4)
        model.train()

        def step():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.l1_loss(model(lr_batch, radiometry=radiometry), hr_batch).backward()
            optimizer.step()
        row.update(train_s=median_seconds(step, runs=steps), batch=batch, preset_batch=cfg.batch_size, patch=patch)
    row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return row


def main():
    from model import known_models

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(known_models()), help="comma list (default: all)")
    p.add_argument("--steps", type=int, default=2, help="timed training steps per network (after a warm-up)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print("ROW " + json.dumps(measure(args.child, args.steps)))
        return
    print(f"x{SCALE}, LR {LR_SIZE}x{LR_SIZE} (TransENet: its fixed input), CPU, {args.threads} threads, full-size "
          f"presets, random weights; load {os.getloadavg()[0]:.1f} at the start")
    header = (f"{'model':<13}{'params':>12}{'GFLOP':>9}{'infer s':>9}{'train s':>9}{'batch':>7}{'patch':>7}"
              f"{'peak RAM':>10}")
    print(header)
    for name in args.models.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(args.steps), "--threads",
                               str(args.threads)], capture_output=True, text=True)
        rows = [line for line in proc.stdout.splitlines() if line.startswith("ROW ")]
        if proc.returncode != 0 or not rows:
            print(f"{name:<13} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        r = json.loads(rows[0][4:])
        train = f"{r['train_s']:9.2f}{r['batch']:7d}{r['patch']:7d}" if "train_s" in r else f"{'-':>9}{'-':>7}{'-':>7}"
        reduced = f"  (batch {r['batch']} of the preset's {r['preset_batch']}: memory)" if r.get(
            "preset_batch", r.get("batch")) != r.get("batch") else ""
        print(f"{r['model']:<13}{r['params']:>12,}{r['gflop']:9.1f}{r['infer_s']:9.3f}{train}"
              f"{r['peak_rss_gib']:8.2f} GiB{reduced}", flush=True)


if __name__ == "__main__":
    main()
