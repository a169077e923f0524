"""Training steps per second with 1 and 2 CPU processes under torchrun (gloo), and N GPUs when CUDA is present.

    python bench/bench_ddp.py [--model BASIC] [--steps 20] [--batch_size 8] [--patch_size 32]

Each configuration runs the project's own pieces (option, Data, Model, Trainer.train_step, DistributedDataParallel
under torchrun) for --steps timed steps after 3 warm-up steps, at the same GLOBAL batch, and rank 0 prints the steps/s.

On a 2-core machine 2 ranks cannot be faster than 1 process: both already share the same 2 cores, and the ranks add
gradient all-reduces. What matters there is the equivalence (tests/test_distributed.py: 2 ranks give the weights of
one process up to float reduction order); the speed-up shows with one process per GPU.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split


def worker(args):
    """One process of a configuration: train --steps steps and report from rank 0."""
    import tempfile

    import torch

    import distributed
    from data import Data
    from loss import Loss
    from model import Model
    from option import parse_args
    from runs import Bystander
    from trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        flags = [f"--model={args.model}", "--scale=4", f"--batch_size={args.batch_size}",
                 f"--patch_size={args.patch_size * 4}", "--dir_experiment", f"{tmp}/experiment", "--dir_cache",
                 f"{tmp}/cache", *(["--cpu"] if args.cpu else [])]
        cfg = parse_args(flags, purpose="none")
        ctx = distributed.setup(cfg.cpu)
        data = Data(cfg, ctx.rank, ctx.world)
        model = Model(cfg, device=ctx.device)
        trainer = Trainer(cfg, data, model, Loss(cfg), Bystander(cfg), ctx)
        loader = data.loader(cfg.data_train, train=True)
        model.train()
        steps, start = 0, None
        while steps < args.steps + 3:
            data.set_epoch(steps)
            for lr_img, hr_img, _ in loader:
                if steps == 3:
                    distributed.barrier(ctx)
                    start = time.perf_counter()
                trainer.train_step(lr_img.to(ctx.device), hr_img.to(ctx.device))
                steps += 1
                if steps == args.steps + 3:
                    break
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        distributed.barrier(ctx)
        seconds = time.perf_counter() - start
        if ctx.main:
            print(f"RESULT {args.steps / seconds:.3f}")
        distributed.teardown(ctx)


def measure(args, processes, cpu, threads=None):
    """Steps/s of one configuration (a fresh torchrun, or one plain process)."""
    flags = [f"--model={args.model}", f"--steps={args.steps}", f"--batch_size={args.batch_size}",
             f"--patch_size={args.patch_size}", "--worker", *(["--cpu"] if cpu else [])]
    script = [str(Path(__file__).resolve()), *flags]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   *script]
    threads = threads or max(1, (os.cpu_count() or 1) // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if cpu else None
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    if proc.returncode != 0 or not results:
        raise SystemExit(f"{command}: failed\n{proc.stderr[-2000:]}")
    return float(results[0].split()[1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="BASIC")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch_size", type=int, default=8, help="the global batch (divides by the process counts)")
    p.add_argument("--patch_size", type=int, default=24, help="LR patch (the Sample LR is 30 pixels at x4)")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    import torch

    print(f"{args.model} x4, global batch {args.batch_size}, LR patch {args.patch_size}, {args.steps} timed steps; "
          f"{os.cpu_count()} CPU cores; load {os.getloadavg()[0]:.1f}")
    cores = os.cpu_count() or 1
    one = measure(args, 1, cpu=True)
    one_thread = measure(args, 1, cpu=True, threads=1)
    two = measure(args, 2, cpu=True)
    print(f"CPU, 1 process, {cores} threads: {one:.2f} steps/s")
    print(f"CPU, 1 process, 1 thread:  {one_thread:.2f} steps/s")
    print(f"CPU, 2 processes (gloo), {max(1, cores // 2)} thread(s) each: {two:.2f} steps/s ({two / one:.2f}x the "
          f"first row, {two / one_thread:.2f}x the second)")
    if cores <= 2:
        print("  On 2 cores, 2 ranks have no more compute than 1 process and add gradient all-reduces: they cannot "
              "really be faster. A ratio above 1 against the first row means that process's 2 OpenMP threads lost "
              "time waiting on each other (busy cores), not a parallel speed-up. The number that matters here is the "
              "equivalence (tests/test_distributed.py).")
    gpus = torch.cuda.device_count()
    if gpus:
        single = measure(args, 1, cpu=False)
        print(f"CUDA, 1 GPU: {single:.2f} steps/s")
        if gpus > 1:
            many = measure(args, gpus, cpu=False)
            print(f"CUDA, {gpus} GPUs (NCCL): {many:.2f} steps/s ({many / single:.2f}x one GPU)")
    else:
        print("no CUDA device: GPU rows skipped")


if __name__ == "__main__":
    main()
