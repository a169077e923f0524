"""Every registered network at its published size on CUDA: the output of a random batch against the CPU's (fp32),
and bf16 autocast against fp32, with the fused kernels CUDA picks. A network that fails on CUDA, or whose output
moves more than a float rounding, shows here before a user's deploy meets it.

    python bench/bench_cuda.py                 # x4, batch 2 of 64x64 LR (TransENet: its fixed input)
    python bench/bench_cuda.py --scale 3 --batch 4
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import torch  # noqa: E402

from model import REGISTRY, network_spec  # noqa: E402
from option import network_args  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=4, choices=[2, 3, 4])
    p.add_argument("--batch", type=int, default=2, help="a batch above 1 merges batch and windows in attention")
    p.add_argument("--size", type=int, default=64, help="LR side (a network of fixed input size takes its own)")
    p.add_argument("--models", default=",".join(sorted(REGISTRY)), help="comma list (default: all)")
    return p.parse_args(argv)


def compare(name, args):
    """(output shape, max |CUDA - CPU| in fp32, max |bf16 autocast - fp32| on CUDA, all finite) of one network."""
    spec = network_spec(name)
    cfg = network_args(name, scale=args.scale, drop_path_rate=0.0)
    side = spec.fixed_input_size_of(cfg) or args.size
    if spec.pre_upsampled:  # the network itself takes the LR upsampled to the HR size
        side *= args.scale
    torch.manual_seed(0)
    net = spec.make_model(cfg).eval()
    x = torch.rand(args.batch, cfg.n_colors, side, side)
    with torch.no_grad():
        cpu = net(x)
        net = net.cuda()
        gpu = net(x.cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = net(x.cuda()).float()
    gpu, bf16 = gpu.cpu(), bf16.cpu()
    finite = bool(torch.isfinite(gpu).all() and torch.isfinite(bf16).all())
    return tuple(gpu.shape), float((gpu - cpu).abs().max()), float((bf16 - gpu).abs().max()), finite


def main(argv=None):
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark compares CUDA with the CPU")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}; x{args.scale}, batch {args.batch}, "
          f"outputs in [0, 1] units (--rgb_range 1)")
    print(f"{'model':14s}{'output':>22s}{'|CUDA - CPU|':>15s}{'|bf16 - fp32|':>15s}  finite")
    for name in [m.strip().upper() for m in args.models.split(",") if m.strip()]:
        shape, cuda_cpu, bf16_fp32, finite = compare(name, args)
        print(f"{name:14s}{str(shape):>22s}{cuda_cpu:15.2e}{bf16_fp32:15.2e}  {finite}", flush=True)


if __name__ == "__main__":
    main()
