"""Start-up of the four commands on one tiny input, as whole processes, beyond `python -c "import torch"`.

Run from the repository root:

    python bench/bench_startup.py [--rounds 3] [--models HSENET,CONVFORMERSR] [--scripts deploy,test_only]

For every registered network at its published size (a randomly initialised network saved as an official-format
state_dict, the file a user downloads), on real pixels (a crop of the embedded Sample):
- deploy:     demo_deploy.py --pre_train FILE --dir_data in.png      (one 16x16 LR image)
- test_only:  demo_train.py --test_only --pre_train FILE             (a dataset of one 96x96 HR test image)
- export:     export_onnx.py --pre_train FILE --tile 16 (TransENet: 48)   (trace, onnxruntime check, write)
- metric:     calculate_PSNR_SSIM.py on BICUBIC's deploy output       (the same for every network)
Each command runs --rounds times, interleaved with `python -c "import torch"` (once per round); the first table
gives the medians beyond that import. The second gives each phase, timed in-process in a fresh process per
network and command (median of the rounds): imports, configuration (option.parse_args: every layer and the network
check), checkpoint read (the first read; configuration and the network share it), network build (with its
weights), first tile (the first forward on the input), and for export the export itself.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODES = REPO / "codes"
sys.path.insert(0, str(CODES))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import imageio.v3 as iio  # noqa: E402
import torch  # noqa: E402

from bench_common import SCALES, load_average  # noqa: E402

SAMPLE_HR = REPO / "datasets" / "Sample" / "test" / "HR"
HR_SIDE, LR_SIDE = 96, 16  # the test pair's HR (a multiple of 3 and 4), the deploy input
SCRIPTS = ("deploy", "test_only", "export", "metric")

# One phase-timed run in a fresh process: the same library calls the scripts make, in their order.
PHASES = r"""
import json, sys, time
sys.path.insert(0, {codes!r}); sys.path.insert(0, {metric_dir!r})
start = time.perf_counter()
import cpu_runtime  # noqa
import torch
after_torch = time.perf_counter()
script, argv, purpose, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
phases = {{}}
def mark(name, since):
    now = time.perf_counter(); phases[name] = now - since; return now
t = after_torch
if script == "metric":
    import calculate_PSNR_SSIM
    t = mark("imports", t)
    calculate_PSNR_SSIM.main(argv)
    t = mark("scoring", t)
else:
    import importlib
    importlib.import_module(script)
    import checkpoint, option
    from model import Model
    t = mark("imports", t)
    path = argv[argv.index("--pre_train") + 1] if "--pre_train" in argv else None
    if path:
        checkpoint.read(path)
    t = mark("checkpoint read", t)
    cfg = option.parse_args(argv, purpose=purpose)
    t = mark("configuration", t)
    model = Model(cfg, torch.device("cpu"))
    model.eval()
    t = mark("network build", t)
    if script == "export_onnx":
        import export_onnx
        export_onnx.main(argv)
        t = mark("export", t)
    else:
        import image_io
        from radiometry import Radiometry
        lr = image_io.read_image({lr_path!r})
        radiometry = Radiometry.of(lr.dtype, None, cfg.rgb_range)
        model.inference_fn(radiometry=radiometry)(radiometry.to_network(lr)[None])
        t = mark("first tile", t)
json.dump(phases, open(out, "w"))
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each command, interleaved")
    parser.add_argument("--models", default="", help="comma list of networks (default: every registered one)")
    parser.add_argument("--scripts", default=",".join(SCRIPTS), help=f"comma list of {', '.join(SCRIPTS)}")
    parser.add_argument("--no_phases", action="store_true", help="whole processes only")
    return parser.parse_args()


def make_inputs(work):
    """The deploy input (16x16 LR), a dataset of one test pair at x3 and x4, and its root."""
    import imresize

    hr = iio.imread(sorted(SAMPLE_HR.iterdir())[0])[:HR_SIDE, :HR_SIDE]
    root = work / "Tiny"
    for split in ("train", "val", "test"):
        (root / split / "HR").mkdir(parents=True)
        iio.imwrite(root / split / "HR" / "t.png", hr)
        for scale in (2, 3, 4):
            (root / split / f"LR_x{scale}").mkdir()
            iio.imwrite(root / split / f"LR_x{scale}" / "t.png", imresize.imresize_keep_dtype(hr, 1 / scale))
    lr = work / "in.png"
    iio.imwrite(lr, imresize.imresize_keep_dtype(hr, 1 / 4)[:LR_SIDE, :LR_SIDE])
    return lr, root


def official_file(work, name, scale):
    """A published-size network with random weights, saved as the official code saves its state_dict."""
    import option
    from model import network_spec

    spec = network_spec(name)
    if spec.parameter_free:
        return None
    cfg = option.parse_args([f"--model={name}", f"--scale={scale}", "--dataset=UCMerced"], purpose="none")
    path = work / f"{name.lower()}_x{scale}.pt"
    torch.save(spec.make_model(cfg).state_dict(), path)
    return path


def commands(name, scale, weights, lr, root, work):
    """{script: (script file, argv, purpose)} for one network."""
    from model import network_spec

    model = [f"--model={name}", f"--scale={scale}", "--cpu"] + (["--pre_train", str(weights)] if weights else [])
    runs = ["--dir_experiment", str(work / "experiment")]
    export_tile = [] if network_spec(name).fixed_input_size else ["--tile", "16"]  # TransENet: its one size
    return {
        "deploy": ("demo_deploy.py", [*model, *runs, "--dir_data", str(lr), "--dir_out", str(work / "out" / name)],
                   "deploy"),
        "test_only": ("demo_train.py", [*model, *runs, "--test_only", "--dataset", "Tiny", "--dir_data", str(root),
                                        "--save", f"test_{name}"], "test"),
        "export": ("export_onnx.py", [*model, *runs, "--dataset", "Tiny", "--dir_data", str(root), *export_tile,
                                      "--out", str(work / "onnx" / f"{name}.onnx")], "export"),
    }


def timed(argv, cwd):
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return seconds


def main():
    args = parse_args()
    import model as networks

    names = args.models.split(",") if args.models else list(networks.REGISTRY)
    scripts = args.scripts.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lr, root = make_inputs(work)
        runs = {}  # (name, script) -> (cwd, argv)
        for name in names:
            scale = SCALES.get(name, 4)
            weights = official_file(work, name, scale)
            for script, (file, argv, purpose) in commands(name, scale, weights, lr, root, work).items():
                if script in scripts:
                    runs[name, script] = (file, argv, purpose)
        metric_out = work / "out" / "BICUBIC"
        metric_argv = ["--sr", str(metric_out), "--gt", str(work / "gt"), "--scale", "4"]
        if "metric" in scripts:
            (work / "gt").mkdir()
            iio.imwrite(work / "gt" / "in.png", iio.imread(root / "test" / "HR" / "t.png")[:4 * LR_SIDE, :4 * LR_SIDE])
            cmd = commands("BICUBIC", 4, None, lr, root, work)["deploy"]
            timed([sys.executable, cmd[0], *cmd[1]], CODES)
        print(f"{len(runs)} commands x {args.rounds} rounds, interleaved with `import torch`; {load_average()}",
              flush=True)
        seconds = {key: [] for key in [*runs, ("-", "metric")] if key[1] in scripts}
        baseline = []
        for _ in range(args.rounds):
            baseline.append(timed([sys.executable, "-c", "import torch"], CODES))
            for key, (file, argv, _) in runs.items():
                seconds[key].append(timed([sys.executable, file, *argv], CODES))
            if "metric" in scripts:
                seconds["-", "metric"].append(timed([sys.executable, "calculate_PSNR_SSIM.py", *metric_argv],
                                                    REPO / "metric_scripts"))
        torch_s = statistics.median(baseline)
        print(f"\n`python -c \"import torch\"`: median {torch_s:.2f} s ({', '.join(f'{s:.2f}' for s in baseline)})")
        print("\n| network | " + " | ".join(f"{s} (s beyond import torch)" for s in scripts) + " |")
        print("| --- |" + " --- |" * len(scripts))
        worst = 0.0
        for name in names:
            cells = []
            for script in scripts:
                key = ("-", "metric") if script == "metric" else (name, script)
                extra = statistics.median(seconds[key]) - torch_s
                worst = max(worst, extra)
                cells.append(f"{extra:+.2f}")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print(f"\nlargest: {worst:+.2f} s beyond import torch; {load_average()}")
        if not args.no_phases:
            print_phases(runs, args.rounds, lr, work, metric_argv if "metric" in scripts else None)


def print_phases(runs, rounds, lr, work, metric_argv):
    code = PHASES.format(codes=str(CODES), metric_dir=str(REPO / "metric_scripts"), lr_path=str(lr))
    script_of = {"demo_deploy.py": "demo_deploy", "demo_train.py": "demo_train", "export_onnx.py": "export_onnx"}
    jobs = {key: (script_of[file], argv, purpose) for key, (file, argv, purpose) in runs.items()}
    if metric_argv:
        jobs["-", "metric"] = ("metric", metric_argv, "none")
    table = {}
    for key, (script, argv, purpose) in jobs.items():
        samples = []
        for index in range(rounds):
            out = work / f"phases_{index}.json"
            subprocess.run([sys.executable, "-c", code, script, json.dumps(argv), purpose, str(out)], cwd=CODES,
                           check=True, capture_output=True, env=dict(os.environ))
            samples.append(json.loads(out.read_text()))
        table[key] = {phase: statistics.median(s[phase] for s in samples) for phase in samples[0]}
    phases = list(dict.fromkeys(phase for row in table.values() for phase in row))
    print("\nPhases, in-process (median s; the interpreter and `import torch` are not in them):\n")
    print("| network | command | " + " | ".join(phases) + " |")
    print("| --- | --- |" + " --- |" * len(phases))
    for (name, script), row in table.items():
        print(f"| {name} | {script} | " + " | ".join(f"{row[p]:.3f}" if p in row else "" for p in phases) + " |")


if __name__ == "__main__":
    main()
