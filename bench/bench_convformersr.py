"""Benchmark ConvFormerSR: official-style ('naive') vs 'fast' window attention, on the same weights.

Run from the repository root:  python bench/bench_convformersr.py [--threads 2] [--repeats 5] [--embed_dim 96]

Prints parameter counts, then inference (one LR image, default 64x64 at x3) and one training step (forward +
backward, default batch 2 of 48x48 patches) for both attention paths, with medians over interleaved repeats (the two
paths alternate, so load from other processes hits both alike). With CUDA it also times inference in fp32 vs bf16
autocast (img/s, peak memory).
"""
import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from model.convformersr import make_model  # noqa: E402
from option import network_args  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path (after one warm-up)")
    parser.add_argument("--embed_dim", type=int, default=96)
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="LR side for inference")
    parser.add_argument("--batch", type=int, default=2, help="training batch")
    parser.add_argument("--patch", type=int, default=48, help="LR training patch side")
    parser.add_argument("--cuda_batch", type=int, default=8, help="batch for the CUDA fp32/bf16 comparison")
    return parser.parse_args(argv)


def model_args(scale, embed_dim, n_colors=3):
    return network_args("CONVFORMERSR", scale=scale, n_colors=n_colors, rgb_range=1.0, embed_dim=embed_dim)


def count_parameters(scale, embed_dim):
    with torch.device("meta"):
        return sum(p.numel() for p in make_model(model_args(scale, embed_dim)).parameters())


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(steps, repeats, device):
    """Median (wall, process CPU) seconds of each named step; one warm-up each, then the steps alternate.

    Process CPU time is reported too because wall time on a shared machine mostly measures the other tenants.
    """
    times = {name: [] for name in steps}
    for rep in range(repeats + 1):
        for name, step in steps.items():
            sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            sync(device)
            if rep:
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: tuple(statistics.median(column) for column in zip(*t)) for name, t in times.items()}


def inference_step(model, mode, x):
    def step():
        model.set_attention(mode)
        with torch.inference_mode():
            model(x)
    return step


def training_step(model, mode, lr, hr):
    def step():
        model.set_attention(mode)
        torch.manual_seed(0)  # same stochastic-depth draws for both paths
        model.zero_grad(set_to_none=True)
        F.l1_loss(model(lr), hr).backward()
    return step


def report(title, medians):
    print(title)
    for column, label in ((0, "wall"), (1, "cpu ")):
        naive, fast = medians["naive"][column], medians["fast"][column]
        print(f"  {label}: naive {naive * 1e3:8.1f} ms | fast {fast * 1e3:8.1f} ms | naive/fast {naive / fast:5.2f}x")


def bench_cpu(opts):
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = make_model(model_args(opts.scale, opts.embed_dim))
    x = torch.rand(1, 3, opts.size, opts.size)
    model.eval()
    steps = {mode: inference_step(model, mode, x) for mode in ("naive", "fast")}
    report(f"CPU inference 1x3x{opts.size}x{opts.size} x{opts.scale}", interleaved_medians(steps, opts.repeats, device))
    lr = torch.rand(opts.batch, 3, opts.patch, opts.patch)
    hr = torch.rand(opts.batch, 3, opts.patch * opts.scale, opts.patch * opts.scale)
    model.train()
    steps = {mode: training_step(model, mode, lr, hr) for mode in ("naive", "fast")}
    report(f"CPU train step {opts.batch}x3x{opts.patch}x{opts.patch} fwd+bwd",
           interleaved_medians(steps, opts.repeats, device))


def bf16_autocast():
    return torch.autocast("cuda", dtype=torch.bfloat16)


def bench_cuda_precision(opts):
    """fp32 vs bf16 autocast inference throughput and peak memory, fast attention."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = make_model(model_args(opts.scale, opts.embed_dim)).to(device).eval()
    x = torch.rand(opts.cuda_batch, 3, opts.size, opts.size, device=device)
    for label, precision in (("fp32", contextlib.nullcontext), ("bf16", bf16_autocast)):
        def step(precision=precision):
            with torch.inference_mode(), precision():
                model(x)
        torch.cuda.reset_peak_memory_stats(device)
        seconds = interleaved_medians({label: step}, opts.repeats, device)[label][0]
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"CUDA inference {label}: {opts.cuda_batch / seconds:8.1f} img/s | peak {peak:8.1f} MiB")


def precision_accuracy(opts, device):
    """Accuracy loss of autocast against fp32 on real pixels (a Sample test LR), same weights: max |diff| and the
    PSNR of the low-precision output against the fp32 output, in 8-bit levels."""
    import numpy as np

    import image_io
    import metrics

    torch.manual_seed(0)
    model = make_model(model_args(opts.scale, opts.embed_dim)).to(device).eval()
    lr_dir = Path(__file__).resolve().parents[1] / "datasets" / "Sample" / "test" / f"LR_x{opts.scale}"
    lr = image_io.read_image(sorted(lr_dir.iterdir())[0])
    x = torch.from_numpy(lr.transpose(2, 0, 1).astype(np.float32) / 255)[None].to(device)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16} if device.type == "cuda" else {"bf16": torch.bfloat16}
    with torch.inference_mode():
        reference = model(x).float().clamp(0, 1) * 255
        for label, dtype in dtypes.items():
            with torch.autocast(device.type, dtype=dtype):
                out = model(x).float().clamp(0, 1) * 255
            mse = float(((out - reference) ** 2).mean())
            psnr = metrics.psnr_from_mse(mse, 255)
            print(f"{device.type.upper()} autocast {label} vs fp32 on {lr.shape[1]}x{lr.shape[0]} real LR: max |diff| "
                  f"{float((out - reference).abs().max()):.3f} levels, PSNR {psnr:.2f} dB")


def main(argv=None):
    opts = parse_args(argv)
    torch.set_num_threads(opts.threads)
    print(f"torch {torch.__version__}, {opts.threads} CPU threads, embed_dim {opts.embed_dim}")
    for scale in (2, 3, 4):
        print(f"parameters x{scale} (3 bands): {count_parameters(scale, opts.embed_dim) / 1e6:.2f} M")
    bench_cpu(opts)
    if torch.cuda.is_available():
        bench_cuda_precision(opts)
        precision_accuracy(opts, torch.device("cuda"))
    else:
        print("CUDA not available: skipping the fp32/bf16 throughput comparison; accuracy measured with CPU autocast")
        precision_accuracy(opts, torch.device("cpu"))


if __name__ == "__main__":
    main()
