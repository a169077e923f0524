"""Speed on the CPU: every network of the registry in fp32 and in bf16, against this machine's measured peak and
onnxruntime, and the accuracy of bf16 on trained weights.

Run from the repository root:

    python bench/bench_speed.py                 # everything (tens of minutes on 2 idle cores)
    python bench/bench_speed.py --quick         # 64x64 only, 1 repeat, small training batches, 10 training steps
    python bench/bench_speed.py --models HSENET,CONVFORMERSR --compile
    python bench/bench_speed.py --deploy-tile --skip-training --skip-accuracy   # inference at the deploy tiles

What it measures, in one process, each comparison interleaved (A, B, A, B, ...) so that load from other processes
hits both alike, medians of --repeats runs after warm-up rounds (more than one while the heap still grows):

- the peak: a 2048^2 matmul and a 3x3 64-channel channels-last conv (fp32 and bf16), the roofline the networks are
  held against (their GFLOP/s as a percentage of the conv's);
- the kernels the networks spend their time in, alone at the networks' shapes (HSENet's non-local attention, 3x3
  convs of 32 to 256 channels, ConvFormerSR's and SwinIR's linears, LGCNet's 5x5 conv): torch fp32, torch bf16 and
  onnxruntime fp32 GFLOP/s, which tells a kernel's gap from a whole graph's (skipped with --skip-onnx);
- per network (HSENet x4, ConvFormerSR x3, the others x4, their preset sizes): inference of one 64x64 and one
  128x128 LR image in fp32 and in bf16 (--precision bf16: autocast with the networks' fp32 regions), its GFLOP
  (counted by torch's FlopCounterMode, attention included), and onnxruntime on the same graph (torch.onnx.export of
  the fp32 network, CPU session with as many threads); a training step (forward, L1 loss, backward, Adam) at the
  preset batch and LR patch in fp32 and bf16 (synthetic data; the batch is reduced, and said so, when a step would
  exceed --max-train-gflop);
- the bf16 accuracy on trained weights: HSENet x4 and ConvFormerSR x3 trained briefly in fp32 on real UC Merced tiles
  (../shared/data/ucmerced_dev, prepared with prepare_dataset.py into a temporary folder), then the bf16 SR of the
  test tiles against the fp32 SR, both as 8-bit images (PSNR, identical pixels, largest difference);
- with --compile: torch.compile (inductor, freezing) for inference at the deploy tile size, compile time included,
  against eager on a 1000x1000 LR scene tiled as deploy tiles it.

The load average (uptime) is printed at the start and the end: on a shared machine the absolute times move, the
interleaved ratios much less.
"""
import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))
import cpu_runtime  # noqa: E402  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402

import model as model_package  # noqa: E402
import option  # noqa: E402
from data import Data  # noqa: E402
from loss import Loss  # noqa: E402
from model import Model, common, network_spec  # noqa: E402

# isort: split
from bench_common import (  # noqa: E402
    SCALES,
    count_gflop,
    eight_bit,
    input_sizes,
    load_average,
    model_config,
    synthetic_batch,
    training_batch,
    training_step,
)

ACCURACY_MODELS = ("HSENET", "CONVFORMERSR")
UC_MERCED_DEV = REPO.parent / "shared" / "data" / "ucmerced_dev"
SCENE_SIDE = 1000  # LR side of the whole-scene deploy that torch.compile must pay for itself on
TARGETS = {"bf16_inference": 1.8, "bf16_training": 1.5, "psnr": 55.0, "identical": 0.99, "peak_share": 0.75,
           "onnx_ratio": 1.0}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="reduced run: 64x64 only, 1 repeat, small training")
    p.add_argument("--models", default="", help="comma list (default: every model of the registry)")
    p.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 3; quick 1)")
    p.add_argument("--sizes", default=None, help="LR sides for inference (default 64,128; quick 64)")
    p.add_argument("--max-train-gib", type=float, default=12.0,
                   help="largest memory a training step may keep for its backward pass (default 12, which keeps the "
                        "HSENet and ConvFormerSR presets; smaller batches beyond)")
    p.add_argument("--max-train-gflop", type=float, default=None,
                   help="largest training step measured (forward+backward GFLOP); bigger presets use a smaller "
                        "batch (default 4000, which keeps the HSENet and ConvFormerSR presets; quick 300)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="steps of the short accuracy training (default 60; quick 10)")
    p.add_argument("--deploy-tile", action="store_true",
                   help="time inference at each network's default deploy tile instead of --sizes")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-onnx", action="store_true")
    p.add_argument("--json", default="", help="also write the results so far to this file after each network")
    p.add_argument("--report", nargs="+", default=None, metavar="JSON",
                   help="measure nothing: print the tables of --json files (runs that ended early, joined)")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    p.add_argument("--profile", action="store_true",
                   help="print the top operators (torch.profiler) of HSENet and ConvFormerSR inference and training")
    args = p.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (1 if quick else 3)
    args.sizes = [int(s) for s in (args.sizes or ("64" if quick else "64,128")).split(",")]
    args.max_train_gflop = args.max_train_gflop or (300.0 if quick else 4000.0)
    args.train_steps = args.train_steps or (10 if quick else 60)
    return args


# ---------------------------------------------------------------------------------------------------------- timing
MAX_WARM_UP_ROUNDS = 6
SETTLED_PAGE_FAULTS = 1024  # 4 MiB of fresh pages in a whole round: the heap has stopped growing
# One quiet round did not always do: a run timed LGCNet's deploy tile at 3.56 s, settled it takes 2.09-2.10 s.
QUIET_ROUNDS = 2


def page_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def interleaved(functions, repeats, warm=()):
    """{name: median seconds} of each function, run in turns after warm-up rounds.

    Warm-up rounds go on (up to MAX_WARM_UP_ROUNDS) until QUIET_ROUNDS rounds in a row fault in few fresh pages:
    with onnxruntime's arena and PyTorch's tensors in one glibc heap, deploy-tile sizes took two or three rounds to
    stop (a process running one backend does not meet this), and the timed runs are of the settled state. A function
    that still faults in its timed runs is named in a printed note.

    `warm`: the names whose timed call follows an untimed one, so that it finds its operands in the cache, as an
    operator inside a network finds what the one before it has just written. A single operator timed in turns with
    others otherwise reloads them from memory: a 96->96 3x3 conv at 64x64 runs about 10 % slower in turns with
    onnxruntime or with a 64 MB multiply than back to back."""
    quiet = 0
    for _ in range(MAX_WARM_UP_ROUNDS):
        before = page_faults()
        for fn in functions.values():
            fn()
        quiet = quiet + 1 if page_faults() - before <= SETTLED_PAGE_FAULTS else 0
        if quiet == QUIET_ROUNDS:
            break
    times = {name: [] for name in functions}
    faults = dict.fromkeys(functions, 0)
    for _ in range(repeats):
        for name, fn in functions.items():
            if name in warm:
                fn()
            before = page_faults()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            faults[name] += page_faults() - before
    for name, count in faults.items():
        if count > SETTLED_PAGE_FAULTS:
            print(f"  note: {name} faulted in {count} fresh pages during its timed runs", flush=True)
    return {name: statistics.median(values) for name, values in times.items()}


def ratio(slow, fast):
    return slow / fast if fast else float("nan")


# ------------------------------------------------------------------------------------------------------------ peak
PEAK_CONV_FLOP = 2 * 9 * 64 * 64 * 128 * 128


def peak_conv(dtype=torch.float32):
    """The roofline probe: a 3x3 64->64 channels-last conv on a 128x128 image (PEAK_CONV_FLOP per call)."""
    x = torch.randn(1, 64, 128, 128).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, padding=1)
    return run


def measure_peak(repeats):
    """GFLOP/s of a 2048^2 matmul and of the peak_conv probe, fp32 and bf16."""
    a = torch.randn(2048, 2048)
    matmul_flop = 2 * 2048**3
    peak = {}
    with torch.no_grad():
        for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            am = a.to(dtype)
            probes = {"matmul": lambda am=am: am @ am, "conv": peak_conv(dtype)}
            times = interleaved(probes, max(repeats, 5), warm=probes)
            peak[label] = {"matmul": matmul_flop / times["matmul"] / 1e9, "conv": PEAK_CONV_FLOP / times["conv"] / 1e9}
    return peak


# --------------------------------------------------------------------------------------------------------- kernels
class Attention(torch.nn.Module):
    """HSENet's non-local product as one module, so that onnxruntime runs it too: softmax(q k^T) v, scale 1."""

    def forward(self, q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0)


def kernel_cases():
    """(label, module, inputs): the operators the networks spend their time in, at the shapes they run them."""
    def conv(cin, cout, k, side):
        return torch.nn.Conv2d(cin, cout, k, padding=k // 2), (torch.randn(1, cin, side, side),)
    seq = torch.randn(1, 1, 64 * 64, 32)
    return [
        ("HSENet non-local attention, 64² LR (4096 positions × 32)", Attention(), (seq, seq.clone(), seq.clone())),
        ("HSENet, RCAN 3×3 conv 64→64 on 64²", *conv(64, 64, 3, 64)),
        ("EDSR 3×3 conv 256→256 on 64²", *conv(256, 256, 3, 64)),
        ("ConvFormerSR 3×3 conv 96→96 on 64²", *conv(96, 96, 3, 64)),
        ("ConvFormerSR conv branch 3×3 96→32 on 64²", *conv(96, 32, 3, 64)),
        ("ConvFormerSR MLP linear 96→384, 4096 tokens", common.Linear(96, 384), (torch.randn(1, 4096, 96),)),
        ("SwinIR attention qkv linear 180→540, 4096 tokens", common.Linear(180, 540), (torch.randn(1, 4096, 180),)),
        ("LGCNet 3×3 conv 32→32 on 256² (x4 of 64²)", *conv(32, 32, 3, 256)),
        ("LGCNet 5×5 conv 96→64 on 256²", *conv(96, 64, 5, 256)),
        ("SRCNN 5×5 conv 64→32 on 256²", *conv(64, 32, 5, 256)),
    ]


def bench_kernels(repeats, folder, threads):
    """GFLOP/s of each kernel case in torch fp32 (convs channels-last, as the networks run them), torch bf16, and
    onnxruntime fp32 (the graph of the op, and its nodes alone), interleaved, operands in cache: where the networks'
    gaps to the peak and to onnxruntime come from."""
    rows = []
    for label, module, inputs in kernel_cases():
        module.eval()
        gflop = count_gflop(lambda args, m=module: m(*args), inputs)
        is_conv = isinstance(module, torch.nn.Conv2d)
        layout = torch.channels_last if is_conv else torch.contiguous_format
        fp32_in = tuple(t.contiguous(memory_format=layout) for t in inputs)
        fp32_module = copy.deepcopy(module).to(memory_format=layout) if is_conv else module
        bf16_module = copy.deepcopy(fp32_module).to(torch.bfloat16)
        bf16_in = tuple(t.to(torch.bfloat16) for t in fp32_in)
        functions = {"fp32": lambda m=fp32_module, a=fp32_in: m(*a)}
        if model_package.cpu_supports_bf16():
            functions["bf16"] = lambda m=bf16_module, a=bf16_in: m(*a)
        graph = export_graph(module, inputs, folder)
        functions["onnx"] = OnnxRun(graph, threads)
        profiled = functions["onnx_kernel"] = OnnxRun(graph, threads, profile=True)
        turns = max(repeats, 5)
        with torch.no_grad():
            times = interleaved(functions, turns, warm=functions)
        # The runs end with the turns' pairs of an untimed and a timed call: the median of the timed ones.
        times["onnx_kernel"] = statistics.median(profiled.kernel_seconds()[-2 * turns:][1::2])
        rows.append({"kernel": label, "gflop": gflop, **{k: gflop / v for k, v in times.items()}})
        print(f"  {label}: " + ", ".join(f"{k} {gflop / v:.0f} GFLOP/s" for k, v in times.items()), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------------- models
def model_pair(name, state=None):
    """(fp32 Model, bf16 Model) with the same weights (the bf16 one is None without native bf16)."""
    torch.manual_seed(0)
    fp32 = Model(model_config(name)).eval()
    if state is not None:
        fp32.net.load_state_dict(state)
    bf16 = None
    if model_package.cpu_supports_bf16():
        bf16 = Model(model_config(name, "bf16")).eval()
        bf16.net.load_state_dict(fp32.net.state_dict())
    return fp32, bf16


# ------------------------------------------------------------------------------------------------------------ onnx
# onnxruntime's conversions to and from its blocked NCHWc layout. A network's graph pays them where it enters and
# leaves that layout (once for LGCNet, at each transformer boundary for ConvFormerSR), a graph of one conv at each
# call: without them its node time is the conv kernel's as it runs inside a network.
LAYOUT_REORDERS = ("ReorderInput", "ReorderOutput")


def export_graph(net, x, folder):
    """(path, inputs): net exported as an fp32 ONNX graph at x's shape (x a tensor or a tuple of them) into folder.
    The name may be reused by the next export: a session has read its graph by then."""
    inputs = x if isinstance(x, tuple) else (x,)
    path = Path(folder) / f"{type(net).__name__}_{'x'.join(map(str, inputs[0].shape))}.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, inputs, str(path), dynamo=False, opset_version=18)
    return path, inputs


class OnnxRun:
    """An onnxruntime CPU session of an exported graph (`export_graph`), called like the torch functions (no
    spinning threads, which would steal the cores from the interleaved torch runs). With `profile`, onnxruntime
    records each node's time, for `kernel_seconds`."""

    def __init__(self, graph, threads, profile=False):
        import onnxruntime as ort

        path, inputs = graph
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if profile:
            options.enable_profiling = True
            options.profile_file_prefix = str(path.with_name(path.stem + "_profile"))
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.feed = {node.name: t.numpy() for node, t in zip(self.session.get_inputs(), inputs)}

    def __call__(self):
        return self.session.run(None, self.feed)

    def kernel_seconds(self):
        """Seconds each run so far spent in the graph's nodes but the layout reorders, in order (ends profiling)."""
        events = json.loads(Path(self.session.end_profiling()).read_text())
        runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
        nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                 and e.get("args", {}).get("op_name") not in LAYOUT_REORDERS]
        return [sum(n["dur"] for n in nodes if r["ts"] <= n["ts"] <= r["ts"] + r["dur"]) / 1e6 for r in runs]


# ------------------------------------------------------------------------------------------------------- inference
def bench_inference(name, cfg, fp32, bf16, sizes, args, folder):
    rows = []
    radiometry = eight_bit(cfg)
    for side in sizes:
        x = torch.rand(1, cfg.n_colors, side, side) * cfg.rgb_range
        net_input = fp32.prepare(x, radiometry)  # the LR itself, or its upsampling for a pre-upsampled network
        # The conv probe runs in the same turns, so the percentage of the peak compares like with like under load.
        functions = {"fp32": lambda x=x: fp32.inference_fn(False, radiometry)(x), "peak": peak_conv()}
        if bf16 is not None:
            functions["bf16"] = lambda x=x: bf16.inference_fn(False, radiometry)(x)
        note = ""
        if not args.skip_onnx:
            try:
                functions["onnx"] = OnnxRun(export_graph(fp32.net, net_input, folder), torch.get_num_threads())
            except Exception as err:  # noqa: BLE001 - an export failure is a result to report, not a crash
                note = f"onnx export failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}"
        times = interleaved(functions, args.repeats, warm=("peak",))  # the peak: the probe's best, operands in cache
        gflop = count_gflop(fp32.net, net_input)
        rows.append({"side": side, "gflop": gflop, **times, "peak_gflops": PEAK_CONV_FLOP / times.pop("peak") / 1e9,
                     "note": note})
        print(f"  {name} {side}x{side}: " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items())
              + f", {gflop:.1f} GFLOP {note}", flush=True)
    return rows


# -------------------------------------------------------------------------------------------------------- training
def bench_training(name, args):
    cfg = model_config(name)
    batch, patch, gflop, note = training_batch(name, cfg, args.max_train_gflop, args.max_train_gib)
    lr, hr = synthetic_batch(cfg, batch, patch)
    steps = {}
    for precision in ("fp32", "bf16") if model_package.cpu_supports_bf16() else ("fp32",):
        torch.manual_seed(0)
        wrapper = Model(model_config(name, precision)).train()
        steps[precision] = training_step(wrapper, Loss(cfg), lr, hr, eight_bit(cfg))
    times = interleaved(steps, args.repeats)
    print(f"  {name} training step, batch {batch}, LR patch {patch}: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()) + f" {note}", flush=True)
    return {"batch": batch, "patch": patch, "gflop": gflop, "note": note, **times}


# -------------------------------------------------------------------------------------------------------- accuracy
def prepare_uc_merced(folder):
    """The UC Merced dev tiles as a dataset (train 48 / val 16 / test 16, LR x3 and x4), or None without them."""
    if not UC_MERCED_DEV.is_dir():
        return None
    root = Path(folder) / "ucmerced"
    script = REPO / "codes" / "data_scripts" / "prepare_dataset.py"
    subprocess.run([sys.executable, str(script), "--src", str(UC_MERCED_DEV), "--dst", str(root), "--scales", "3,4",
                    "--split", "0.6,0.2,0.2", "--seed", "0"], check=True, capture_output=True, text=True)
    return root


def short_training(name, root, folder, steps, log_every):
    """fp32 weights after `steps` Adam steps (lr 5e-4, LR patch 32, batch 4) on the prepared tiles, through the
    project's training loader (augmentation included)."""
    cfg = option.parse_args([f"--model={name}", f"--scale={SCALES[name]}", "--cpu", "--dataset=UCMercedDev",
                             f"--dir_data={root}", "--ext=img", f"--patch_size={32 * SCALES[name]}", "--batch_size=4",
                             f"--dir_cache={folder}/cache"], purpose="none")
    torch.manual_seed(0)
    wrapper = Model(cfg).train()
    loss, data = Loss(cfg), Data(cfg)
    optimizer = torch.optim.Adam(wrapper.parameters(), lr=5e-4)
    done, epoch, values = 0, 0, []
    while done < steps:
        epoch += 1
        data.set_epoch(epoch)
        for lr, hr, _ in data.loader("train", train=True):
            optimizer.zero_grad(set_to_none=True)
            value = loss(wrapper(lr), hr)
            value.backward()
            optimizer.step()
            values.append(value.item())
            done += 1
            if done % log_every == 0 or done == steps:
                print(f"  {name} short training: step {done}/{steps}, L1 {np.mean(values[-log_every:]):.4f}",
                      flush=True)
            if done == steps:
                break
    return wrapper.net.state_dict(), data.loader("test").dataset, values


def bf16_accuracy(name, state, dataset):
    """bf16 SR of every test tile against the fp32 SR, as 8-bit images: pooled PSNR, identical pixels, largest
    difference; and the fp32 SR's own PSNR against HR (the weights are trained: it should approach bicubic)."""
    fp32, bf16 = model_pair(name, state)
    differences, sr_psnr = [], []
    for index in range(len(dataset)):
        lr, hr = dataset.load_pair(index)
        x = dataset.radiometry.to_network(lr).unsqueeze(0)
        images = [dataset.radiometry.from_network(m.inference_fn(False)(x)[0]).astype(int) for m in (fp32, bf16)]
        differences.append(np.abs(images[1] - images[0]).ravel())
        sr_psnr.append(psnr(images[0], hr))
    difference = np.concatenate(differences)
    mse = float((difference.astype(float) ** 2).mean())
    return {"tiles": len(dataset), "psnr": 10 * np.log10(255**2 / mse) if mse else float("inf"),
            "identical": float((difference == 0).mean()), "max": int(difference.max()),
            "fp32_psnr": float(np.mean(sr_psnr))}


def psnr(sr, hr):
    mse = ((sr.astype(float) - hr[:sr.shape[0], :sr.shape[1]].astype(float)) ** 2).mean()
    return 10 * np.log10(255**2 / mse)


# --------------------------------------------------------------------------------------------------------- profile
def top_operators(step, rows=8):
    """The operators that take the most time in one call of `step` (after a warm-up call), as text lines."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    return [f"{e.key[:52]:52s} {100 * e.self_cpu_time_total / total:5.1f} %  {e.self_cpu_time_total / 1e3:8.1f} ms"
            f"  x{e.count}" for e in events[:rows]]


def print_profiles(name, state, args):
    fp32, bf16 = model_pair(name, state)
    x = torch.rand(1, 3, 64, 64)
    steps = {"fp32 inference 64x64": lambda: fp32.inference_fn(False)(x)}
    if bf16 is not None:
        steps["bf16 inference 64x64"] = lambda: bf16.inference_fn(False)(x)
        cfg = model_config(name)
        batch, patch, _, _ = training_batch(name, cfg, args.max_train_gflop, args.max_train_gib)
        wrapper = Model(model_config(name, "bf16")).train()
        lr, hr = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, patch * cfg.scale, patch * cfg.scale)
        steps[f"bf16 training step, batch {batch}, patch {patch}"] = training_step(wrapper, Loss(cfg), lr, hr)
    for label, step in steps.items():
        print(f"  profile {name} {label}:")
        for line in top_operators(step):
            print("    " + line)


# --------------------------------------------------------------------------------------------------------- compile
def bench_compile(name, state, args):
    """Eager against torch.compile (inductor, frozen weights) for inference at the deploy tile size, the whole-scene
    cost including the compile time; and for an fp32 training step (compile time, then steps)."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    fp32, _ = model_pair(name, state)
    plan = fp32.tile_plan
    x = torch.rand(1, 3, plan.tile, plan.tile)
    torch._dynamo.reset()
    compiled = torch.compile(fp32.net, dynamic=False)
    start = time.perf_counter()
    with torch.no_grad():
        compiled(x)
    compile_s = time.perf_counter() - start
    def run_compiled():
        with torch.no_grad():
            return compiled(x)
    times = interleaved({"eager": lambda: fp32.inference_fn(False)(x), "compiled": run_compiled}, args.repeats)
    tiles = plan.count(SCENE_SIDE, SCENE_SIDE)
    eager_scene, compiled_scene = tiles * times["eager"], compile_s + tiles * times["compiled"]
    print(f"  {name} torch.compile at tile {plan.tile}: compile {compile_s:.1f} s, eager {times['eager']:.3f} s, "
          f"compiled {times['compiled']:.3f} s per tile; {SCENE_SIDE}x{SCENE_SIDE} scene ({tiles} tiles): eager "
          f"{eager_scene:.0f} s, compiled {compiled_scene:.0f} s", flush=True)
    inductor_config.freezing = False  # freezing is for inference graphs
    cfg = model_config(name)
    batch, patch, _, _ = training_batch(name, cfg, args.max_train_gflop, args.max_train_gib)
    lr, hr = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, patch * cfg.scale, patch * cfg.scale)
    eager, compiled_model = Model(cfg).train(), Model(cfg).train()
    torch._dynamo.reset()
    compiled_model.model = torch.compile(compiled_model.model, dynamic=False)
    compiled_step = training_step(compiled_model, Loss(cfg), lr, hr)
    start = time.perf_counter()
    compiled_step()
    train_compile_s = time.perf_counter() - start
    train = interleaved({"eager": training_step(eager, Loss(cfg), lr, hr), "compiled": compiled_step}, args.repeats)
    gain = train["eager"] - train["compiled"]
    break_even = f"{train_compile_s / gain:.0f} steps" if gain > 0 else "never"
    print(f"  {name} torch.compile training step (batch {batch}, patch {patch}): compile {train_compile_s:.1f} s, "
          f"eager {train['eager']:.2f} s, compiled {train['compiled']:.2f} s; pays off after {break_even}", flush=True)
    return {"tile": plan.tile, "compile_s": compile_s, **times, "tiles": tiles, "eager_scene": eager_scene,
            "compiled_scene": compiled_scene, "train_compile_s": train_compile_s, "train": train,
            "break_even": break_even}


# ----------------------------------------------------------------------------------------------------------- report
def fmt(value, spec=".2f", missing="–", suffix=""):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return missing
    return format(value, spec) + suffix


def kernel_table(kernels):
    head = ["kernel (where it runs)", "GFLOP", "torch fp32 GFLOP/s", "torch bf16 GFLOP/s", "bf16 speed-up",
            "ORT fp32 GFLOP/s, graph of the op", "ORT fp32 GFLOP/s, its nodes**", "torch vs ORT nodes"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in kernels:
        kernel = row.get("onnx_kernel", np.nan)  # absent from the JSON of runs before it was measured
        cells = [row["kernel"], fmt(row["gflop"], ".2f"), fmt(row["fp32"], ".0f"), fmt(row.get("bf16"), ".0f"),
                 fmt(ratio(row.get("bf16") or np.nan, row["fp32"]), suffix="×"), fmt(row["onnx"], ".0f"),
                 fmt(kernel, ".0f"), fmt(ratio(row["fp32"], kernel), suffix="×")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def inference_table(results):
    head = ["model", "x", "LR", "GFLOP", "fp32 s", "bf16 s", "bf16 speed-up", "fp32 GFLOP/s", "% of conv peak*",
            "ORT s", "torch vs ORT"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, result in results.items():
        if "skipped" in result:
            lines.append(f"| {name} | " + " | ".join([result["skipped"]] + [""] * (len(head) - 2)) + " |")
            continue
        for row in result["inference"]:
            rate = row["gflop"] / row["fp32"]
            cells = [name, str(result["scale"]), f"{row['side']}²", fmt(row["gflop"], ".1f"), fmt(row["fp32"], ".3f"),
                     fmt(row.get("bf16"), ".3f"), fmt(ratio(row["fp32"], row.get("bf16") or np.nan), suffix="×"),
                     fmt(rate, ".0f"), fmt(100 * rate / row["peak_gflops"], ".0f") + " %",
                     fmt(row.get("onnx"), ".3f"), fmt(ratio(row.get("onnx") or np.nan, row["fp32"]), suffix="×")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def training_table(results):
    head = ["model", "x", "batch × LR patch", "GFLOP/step", "fp32 s", "bf16 s", "bf16 speed-up", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, result in results.items():
        train = result.get("training")
        if not train:
            continue
        cells = [name, str(result["scale"]), f"{train['batch']} × {train['patch']}²", fmt(train["gflop"], ".0f"),
                 fmt(train["fp32"]), fmt(train.get("bf16")),
                 fmt(ratio(train["fp32"], train.get("bf16") or np.nan), suffix="×"), train["note"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else "(no training step measured)"


def accuracy_table(accuracy):
    head = ["model", "x", "test tiles", "PSNR bf16 vs fp32 (8-bit)", "identical 8-bit pixels", "max difference",
            "fp32 SR vs HR"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, acc in accuracy.items():
        cells = [name, str(SCALES[name]), str(acc["tiles"]), fmt(acc["psnr"]) + " dB",
                 fmt(100 * acc["identical"], ".3f") + " %", f"{acc['max']} level(s)", fmt(acc["fp32_psnr"]) + " dB"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(results, accuracy):
    """Each target of the speed issue, met or missed, for HSENet and ConvFormerSR (ORT: every network)."""
    lines = []

    def verdict(ok):
        return "met" if ok else "MISSED"
    for name in ACCURACY_MODELS:
        result = results.get(name)
        if not result or "inference" not in result:
            continue
        for row in result["inference"]:
            if row.get("bf16"):
                speedup = ratio(row["fp32"], row["bf16"])
                lines.append(f"{verdict(speedup >= TARGETS['bf16_inference'])}: {name} bf16 inference "
                             f"{row['side']}² {speedup:.2f}× (target ≥ {TARGETS['bf16_inference']}×)")
            share = row["gflop"] / row["fp32"] / row["peak_gflops"]
            lines.append(f"{verdict(share >= TARGETS['peak_share'])}: {name} fp32 {row['side']}² at "
                         f"{100 * share:.0f} % of the conv peak (target ≥ {100 * TARGETS['peak_share']:.0f} %)")
        train = result.get("training")
        if train and train.get("bf16"):
            speedup = ratio(train["fp32"], train["bf16"])
            lines.append(f"{verdict(speedup >= TARGETS['bf16_training'])}: {name} bf16 training step {speedup:.2f}× "
                         f"(target ≥ {TARGETS['bf16_training']}×){' (' + train['note'] + ')' if train['note'] else ''}")
        acc = accuracy.get(name)
        if acc:
            ok = acc["psnr"] >= TARGETS["psnr"] and acc["identical"] >= TARGETS["identical"] and acc["max"] <= 1
            lines.append(f"{verdict(ok)}: {name} bf16 accuracy {acc['psnr']:.1f} dB, {100 * acc['identical']:.2f} % "
                         f"identical, max {acc['max']} (targets ≥ 55 dB, ≥ 99 %, ≤ 1)")
    for name, result in results.items():
        for row in result.get("inference", []):
            if row.get("onnx"):
                speed = ratio(row["onnx"], row["fp32"])
                lines.append(f"{verdict(speed >= TARGETS['onnx_ratio'])}: {name} fp32 {row['side']}² torch "
                             f"{speed:.2f}× the speed of onnxruntime (target ≥ 1)")
    return lines


# -------------------------------------------------------------------------------------------------------------- main
def bench_model(name, args, folder, state=None):
    if network_spec(name).parameter_free:
        return {"skipped": "parameter-free: nothing to compare"}
    cfg = model_config(name)
    fp32, bf16 = model_pair(name, state)
    sizes, note = input_sizes(name, cfg, args.sizes, args.deploy_tile)
    if note:
        print(f"  {name}: {note}")
    result = {"scale": cfg.scale, "inference": bench_inference(name, cfg, fp32, bf16, sizes, args, folder)}
    del fp32, bf16
    result["training"] = None if args.skip_training else bench_training(name, args)
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip().upper() for n in args.models.split(",") if n.strip()] or model_package.known_models()
    bf16 = model_package.cpu_supports_bf16()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {bf16}, glibc heap kept for reuse: "
          f"{cpu_runtime.HEAP_KEPT}; {load_average()}", flush=True)
    peak = measure_peak(args.repeats)
    print("peak GFLOP/s: " + "; ".join(f"{k} matmul {v['matmul']:.0f}, 3x3 conv {v['conv']:.0f}"
                                       for k, v in peak.items()), flush=True)
    results, accuracy, compiled, states, kernels = {}, {}, {}, {}, []
    with tempfile.TemporaryDirectory() as folder:
        if not args.skip_onnx:
            print("kernels, at the networks' shapes:", flush=True)
            kernels = bench_kernels(args.repeats, folder, torch.get_num_threads())
        root = None if args.skip_accuracy else prepare_uc_merced(folder)
        if root is None and not args.skip_accuracy:
            print(f"accuracy skipped: {UC_MERCED_DEV} is absent")
        for name in ACCURACY_MODELS:
            if root is not None and name in names:
                states[name], dataset, _ = short_training(name, root, folder, args.train_steps,
                                                          max(1, args.train_steps // 5))
                if bf16:
                    accuracy[name] = bf16_accuracy(name, states[name], dataset)
                    print(f"  {name} bf16 vs fp32: {accuracy[name]}", flush=True)
        for name in names:
            print(f"{name}: {load_average()}", flush=True)
            try:
                results[name] = bench_model(name, args, folder, states.get(name))
            except Exception as err:  # noqa: BLE001 - one network's failure is reported, the others still run
                print(f"  {name} failed: {type(err).__name__}: {str(err).splitlines()[0][:160]}", flush=True)
                results[name] = {"skipped": f"failed: {type(err).__name__}"}
            if args.json:  # a run killed later (out of memory) keeps what it measured
                Path(args.json).write_text(json.dumps({"peak": peak, "kernels": kernels, "accuracy": accuracy,
                                                       "results": results}))
            if args.profile and name in ACCURACY_MODELS:
                print_profiles(name, states.get(name), args)
            if args.compile and name in ACCURACY_MODELS:
                try:
                    compiled[name] = bench_compile(name, states.get(name), args)
                except Exception as err:  # noqa: BLE001 - a compiler failure is a result to report
                    print(f"  {name} torch.compile failed: {type(err).__name__}: {str(err).splitlines()[0][:160]}")
    print(f"\nend: {load_average()}\n")
    print_report(results, accuracy, kernels)
    for name, c in compiled.items():
        pays = "pays off" if c["compiled_scene"] < c["eager_scene"] else "does not pay off"
        print(f"- torch.compile {name}: {SCENE_SIDE}x{SCENE_SIDE} LR scene in {c['tiles']} tiles of {c['tile']}: eager "
              f"{c['eager_scene']:.0f} s, compiled {c['compiled_scene']:.0f} s (compile {c['compile_s']:.0f} s): "
              f"{pays}; training: compile {c['train_compile_s']:.0f} s, step {c['train']['eager']:.2f} -> "
              f"{c['train']['compiled']:.2f} s, pays off after {c['break_even']}")
    return 0


def print_report(results, accuracy, kernels=()):
    if kernels:
        print(kernel_table(kernels))
        print("** onnxruntime's own profile of the same runs: the time in the graph's nodes without its layout "
              "reorders, as the op runs inside a network's graph\n")
    print(inference_table(results))
    print("* of the fp32 3x3-conv probe timed in the same interleaved turns as the network, its operands in cache\n")
    print(training_table(results), "\n")
    if accuracy:
        print(accuracy_table(accuracy), "\n")
    for line in target_lines(results, accuracy):
        print("- " + line)


def report(paths):
    """The tables of saved runs, joined in order (a later file's network replaces an earlier one's)."""
    results, accuracy, kernels = {}, {}, []
    for path in paths:
        saved = json.loads(Path(path).read_text())
        results.update({k: v for k, v in saved["results"].items() if "skipped" not in v or k not in results})
        accuracy.update(saved["accuracy"])
        kernels = saved.get("kernels") or kernels
        print(f"{path}: peak GFLOP/s " + "; ".join(f"{k} conv {v['conv']:.0f}" for k, v in saved["peak"].items()))
    print_report(results, accuracy, kernels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
