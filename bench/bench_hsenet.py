"""Benchmark HSENet's attention paths on the CPU: speed, peak memory and parameter counts.

Run from the repository root:  python bench/bench_hsenet.py [--threads N] [--repeats R] [--skip-memory]

Prints
- inference time of the official 'naive' attention and of the 'fast' one on the same weights (64x64, x4),
  and their ratio;
- peak RSS of a whole 300x300 LR image at x2 (inference, no tiling) and of one training step
  (batch 4, LR patch 48, x4, forward + backward), each in a fresh subprocess (ru_maxrss);
- parameter counts at x2/x3/x4, with and without the mean-shift convs (the official code counts them).
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import torch  # noqa: E402

from model import hsenet  # noqa: E402
from option import network_args  # noqa: E402

OFFICIAL_PARAMS_M = {2: 5.286, 3: 5.470, 4: 5.433}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per attention path")
    parser.add_argument("--speed-size", type=int, default=64, help="LR side of the speed test (x4)")
    parser.add_argument("--skip-speed", action="store_true", help="skip the naive/fast timing")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--memory-size", type=int, default=300, help="LR side of the x2 inference RSS test")
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-patch", type=int, default=48)
    parser.add_argument("--worker", choices=("infer", "train"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build(scale, attention="fast", n_colors=3):
    args = network_args("HSENET", scale=scale, n_colors=n_colors, rgb_range=255.0, attention=attention)
    return hsenet.make_model(args)


def randomise_nonlocal_outputs(net):
    """The official init zeroes the non-local W convs, which would hide any attention difference."""
    torch.manual_seed(1)
    for module in net.modules():
        if isinstance(module, hsenet.NonLocalBlock2D):
            torch.nn.init.normal_(module.W.weight, std=0.05)


def time_inference(net, x, repeats):
    with torch.no_grad():
        net(x)  # warm-up: allocator and oneDNN primitive caches
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = net(x)
            times.append(time.perf_counter() - start)
    return times, out


def speed(args):
    torch.manual_seed(0)
    naive = build(4, "naive").eval()
    randomise_nonlocal_outputs(naive)
    fast = build(4, "fast").eval()
    fast.load_state_dict(naive.state_dict(), strict=True)
    x = torch.rand(1, 3, args.speed_size, args.speed_size) * 255.0
    naive_times, naive_out = time_inference(naive, x, args.repeats)
    fast_times, fast_out = time_inference(fast, x, args.repeats)
    t_naive, t_fast = statistics.median(naive_times), statistics.median(fast_times)
    # The minimum is the least disturbed by other processes on a shared machine.
    min_naive, min_fast = min(naive_times), min(fast_times)
    print(f"speed: {args.speed_size}x{args.speed_size} LR, x4, n_feats 64, 10 modules, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"  naive  {t_naive:8.3f} s   (runs: {', '.join(f'{t:.3f}' for t in naive_times)})")
    print(f"  fast   {t_fast:8.3f} s   (runs: {', '.join(f'{t:.3f}' for t in fast_times)})")
    print(f"  ratio naive/fast  {t_naive / t_fast:.2f}x (medians), {min_naive / min_fast:.2f}x (minima)")
    print(f"  max |naive - fast| = {(naive_out - fast_out).abs().max().item():.3g} "
          f"(output range 0..255)")


def worker_infer(args):
    net = build(2).eval()
    x = torch.rand(1, 3, args.memory_size, args.memory_size) * 255.0
    start = time.perf_counter()
    with torch.no_grad():
        out = net(x)
    return {"seconds": time.perf_counter() - start, "out_shape": list(out.shape)}


def worker_train(args):
    net = build(4).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    size = args.train_patch
    lr = torch.rand(args.train_batch, 3, size, size) * 255.0
    hr = torch.rand(args.train_batch, 3, size * 4, size * 4) * 255.0
    start = time.perf_counter()
    loss = torch.nn.functional.l1_loss(net(lr), hr)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"seconds": time.perf_counter() - start, "loss": loss.item()}


def run_worker(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    baseline_mb = peak_rss_mb()
    result = worker_infer(args) if args.worker == "infer" else worker_train(args)
    result.update(peak_rss_mb=peak_rss_mb(), rss_before_mb=baseline_mb)
    print(json.dumps(result))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def measure_in_subprocess(worker, args):
    command = [sys.executable, __file__, "--worker", worker, "--memory-size", str(args.memory_size),
               "--train-batch", str(args.train_batch), "--train-patch", str(args.train_patch)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def memory(args):
    cases = [("infer", f"inference {args.memory_size}x{args.memory_size} LR, x2, whole image, no_grad"),
             ("train", f"training step, batch {args.train_batch}, LR patch {args.train_patch}, x4, fwd+bwd+Adam")]
    print("peak RSS ('fast' attention, full defaults; fresh subprocess each, incl. torch itself):")
    for worker, label in cases:
        result, error = measure_in_subprocess(worker, args)
        if result is None:
            print(f"  {label}: FAILED: {error[0]}")
            continue
        print(f"  {label}: peak {result['peak_rss_mb'] / 1024:.2f} GiB "
              f"(process before the run {result['rss_before_mb'] / 1024:.2f} GiB), {result['seconds']:.1f} s")


def parameter_counts():
    print("parameters (n_feats 64, 10 modules, RGB):")
    for scale in (2, 3, 4):
        net = build(scale)
        trainable = sum(p.numel() for p in net.parameters())
        mean_shift = sum(b.numel() for m in (net.sub_mean, net.add_mean) for b in m.buffers())
        print(f"  x{scale}: {trainable:,} trainable; {trainable + mean_shift:,} with the mean-shift convs "
              f"= {(trainable + mean_shift) / 1e6:.3f} M (official: {OFFICIAL_PARAMS_M[scale]:.3f} M)")


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    parameter_counts()
    if not args.skip_speed:
        speed(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
