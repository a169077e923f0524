"""Every registered network at its published size on CUDA: the output of a random batch against the CPU's (fp32),
and bf16 autocast against fp32, with the fused kernels CUDA picks. A network that fails on CUDA, or whose output
moves more than a float rounding, shows here before a user's deploy meets it.

    python bench/bench_cuda.py                 # x4, batch 2 of 64x64 LR (TransENet: its fixed input)
    python bench/bench_cuda.py --scale 3 --batch 4
    python bench/bench_cuda.py --train         # and the training img/s of the networks gpu_session.sh trains

--train times the training step (forward, L1 backward, Adam) of HSENet x4 and ConvFormerSR x3 at their preset batch
and patch, fp32 and bf16 autocast, and prints the iterations and samples that --minutes of training (default 6: half
of a 12-minute gpu_session.sh, which gives each network half) would add. --device cpu runs the same on the CPU.
"""
import argparse
import sys
import time
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
    p.add_argument("--train", action="store_true", help="also time the training step of gpu_session.sh's networks")
    p.add_argument("--minutes", type=float, default=6.0, help="training minutes per network to project (--train)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps (--train), after 3 of warm-up")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="--train on the CPU too")
    return p.parse_args(argv)


# What gpu_session.sh trains, at the batch and LR patch of the model presets (template.MODEL_PRESETS).
TRAINED = (("HSENET", 4, 4, 48), ("CONVFORMERSR", 3, 8, 64))  # (model, scale, batch, LR patch)


def training_rate(name, scale, batch, patch, device, bf16, steps):
    """Training samples per second (forward, L1 backward, Adam step) of a network at its published size."""
    spec = network_spec(name)
    cfg = network_args(name, scale=scale)
    torch.manual_seed(0)
    net = spec.make_model(cfg).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    lr = torch.rand(batch, cfg.n_colors, patch, patch, device=device)
    hr = torch.rand(batch, cfg.n_colors, patch * scale, patch * scale, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = net(lr)
        torch.nn.functional.l1_loss(out.float(), hr).backward()
        optimizer.step()

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def print_training_rates(args):
    print(f"\ntraining step on {args.device} ({args.steps} steps after 3 of warm-up); what {args.minutes:g} minutes "
          f"add")
    print(f"{'model':14s}{'batch x LR':>12s}{'precision':>10s}{'img/s':>9s}{'iterations':>12s}{'samples':>10s}")
    for name, scale, batch, patch in TRAINED:
        for bf16 in (False, True):
            rate = training_rate(name, scale, batch, patch, args.device, bf16, args.steps)
            samples = rate * args.minutes * 60
            print(f"{name:14s}{f'{batch} x {patch}':>12s}{'bf16' if bf16 else 'fp32':>10s}{rate:9.1f}"
                  f"{samples / batch:12.0f}{samples:10.0f}", flush=True)


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
    if args.train and args.device == "cpu":
        print_training_rates(args)
        return
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark compares CUDA with the CPU")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}; x{args.scale}, batch {args.batch}, "
          f"outputs in [0, 1] units (--rgb_range 1)")
    print(f"{'model':14s}{'output':>22s}{'|CUDA - CPU|':>15s}{'|bf16 - fp32|':>15s}  finite")
    for name in [m.strip().upper() for m in args.models.split(",") if m.strip()]:
        shape, cuda_cpu, bf16_fp32, finite = compare(name, args)
        print(f"{name:14s}{str(shape):>22s}{cuda_cpu:15.2e}{bf16_fp32:15.2e}  {finite}", flush=True)
    if args.train:
        print_training_rates(args)


if __name__ == "__main__":
    main()
