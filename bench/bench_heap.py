"""glibc's heap kept for reuse (codes/cpu_runtime.py) against glibc's default, which maps every large block afresh.

Run from the repository root:

    python bench/bench_heap.py [--models SRCNN,LGCNET,VDSR,BASIC,HSENET] [--rounds 2] [--repeats 2]

Each measurement runs in a fresh process, since the setting holds for a whole process: the two settings alternate
(default, kept, default, kept, ...) so that load from other processes hits both alike. glibc's default is had by
setting MALLOC_MMAP_MAX_ to its default value, which cpu_runtime takes as the user's own choice and leaves alone.
Per network: fp32 inference of one deploy tile (the network's default tile, random weights) and a training step at
the preset batch and LR patch (bench_speed's, at most 4 GiB kept for the backward pass); the median time over the
rounds, the page faults per run and the process's peak memory.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "codes")]
import cpu_runtime  # noqa: E402  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import torch  # noqa: E402

import bench_common  # noqa: E402
from loss import Loss  # noqa: E402
from model import Model  # noqa: E402

GLIBC_DEFAULT = {"MALLOC_MMAP_MAX_": "65536"}  # glibc's own value: cpu_runtime leaves a user's MALLOC_* setting alone
TRAIN_GIB = 4.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="SRCNN,LGCNET,VDSR,BASIC,HSENET")
    p.add_argument("--rounds", type=int, default=2, help="processes per setting and task")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per process, after a warm-up run")
    p.add_argument("--child", nargs=2, metavar=("TASK", "MODEL"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def task_function(task, name):
    """(what, function) of one deploy-tile inference or one training step of `name`."""
    cfg = bench_common.model_config(name)
    torch.manual_seed(0)
    net = Model(cfg)  # fp32 only: a bf16 twin (bench_common.model_pair) would only add to the peak memory
    radiometry = bench_common.eight_bit(cfg)
    if task == "infer":
        (side,), _ = bench_common.input_sizes(name, cfg, (), deploy_tile=True)
        x = torch.rand(1, cfg.n_colors, side, side) * cfg.rgb_range
        run = net.eval().inference_fn(False, radiometry)
        return f"inference, tile {side}", lambda: run(x)
    batch, patch, _, _ = bench_common.training_batch(name, cfg, float(2**40), TRAIN_GIB)
    lr, hr = bench_common.synthetic_batch(cfg, batch, patch)
    return f"training step, {batch} x {patch}²", bench_common.training_step(net.train(), Loss(cfg), lr, hr, radiometry)


def child(task, name, repeats):
    what, run = task_function(task, name)
    run()
    times, start = [], resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    end = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"what": what, "kept": cpu_runtime.HEAP_KEPT, "seconds": statistics.median(times),
                      "faults": (end.ru_minflt - start.ru_minflt) / repeats, "peak_gib": end.ru_maxrss / 2**20}))


def measure(task, name, env, repeats):
    out = subprocess.run([sys.executable, __file__, "--child", task, name, "--repeats", str(repeats)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(*args.child, args.repeats)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    settings = {"glibc default": {**base, **GLIBC_DEFAULT}, "heap kept": base}
    print(f"{bench_common.load_average()}; {args.rounds} processes per setting, median of {args.repeats} runs each")
    print("| model | task | glibc default s | heap kept s | speed-up | page faults per run | peak memory GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in [n.strip().upper() for n in args.models.split(",") if n.strip()]:
        for task in ("infer", "train"):
            runs = {label: [] for label in settings}
            for _ in range(args.rounds):
                for label, env in settings.items():
                    runs[label].append(measure(task, name, env, args.repeats))
            old, new = runs["glibc default"], runs["heap kept"]
            if not all(r["kept"] for r in new) or any(r["kept"] for r in old):
                print(f"{name}: the heap setting did not apply as asked (not glibc?): nothing to compare")
                return 1
            t_old = statistics.median(r["seconds"] for r in old)
            t_new = statistics.median(r["seconds"] for r in new)
            print(f"| {name} | {new[0]['what']} | {t_old:.3f} | {t_new:.3f} | {t_old / t_new:.2f}× | "
                  f"{max(r['faults'] for r in old):,.0f} -> {max(r['faults'] for r in new):,.0f} | "
                  f"{max(r['peak_gib'] for r in old):.2f} -> {max(r['peak_gib'] for r in new):.2f} |", flush=True)
    print(bench_common.load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())
