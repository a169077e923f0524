"""How much faster an epoch's data loading is with the binary cache (--ext sep) than with decoding (--ext img).

    python bench/bench_data.py [--epochs 3] [--dataset-root DIR]

Times full passes of the training loader (random patches, augmentation, batching; no network) on the embedded Sample
and, when ../shared is present, on the 80 UC Merced dev tiles prepared into a temporary folder at x4. Prints seconds per
epoch for img, sep and ram, and the ratios. The first sep pass (which builds the cache) is reported separately.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split

from data import Data  # noqa: E402
from option import parse_args  # noqa: E402


def epoch_seconds(root, mode, cache_dir, epochs):
    args = parse_args(["--dir_data", str(root), "--ext", mode, "--dir_cache", str(cache_dir), "--scale", "4",
                       "--batch_size", "16", "--patch_size", "96", "--cpu"])
    start = time.perf_counter()
    data = Data(args)
    loader = data.loader("train", train=True)
    setup = time.perf_counter() - start
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for _batch in loader:
            pass
        times.append(time.perf_counter() - start)
    return setup, min(times), len(loader.dataset)


def prepare_ucmerced(shared, dst):
    src = shared / "data" / "ucmerced_dev"
    subprocess.run([sys.executable, str(REPO / "codes" / "data_scripts" / "prepare_dataset.py"), "--src", str(src),
                    "--dst", str(dst), "--scales", "4", "--split", "1,0,0"], check=True, capture_output=True)
    return dst


def report(name, root, epochs):
    with tempfile.TemporaryDirectory() as cache:
        cold_setup, _, n = epoch_seconds(root, "sep_reset", Path(cache), 1)
        rows = {mode: epoch_seconds(root, mode, Path(cache), epochs) for mode in ("img", "sep", "ram")}
    print(f"\n{name}: {n} training images per epoch, best of {epochs} epochs")
    print(f"  building the sep cache (first run): {cold_setup:.2f} s")
    for mode, (setup, seconds, _) in rows.items():
        print(f"  --ext {mode:4s}: {seconds:.3f} s/epoch (setup {setup:.2f} s)")
    img = rows["img"][1]
    print(f"  sep is {img / rows['sep'][1]:.1f}x faster than img per epoch; ram {img / rows['ram'][1]:.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    opts = parser.parse_args()
    report("Sample (PNG, 120x120 HR)", REPO / "datasets" / "Sample", opts.epochs)
    shared = Path(opts.shared)
    if (shared / "data" / "ucmerced_dev").is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            report("UC Merced dev (TIFF, 256x256 HR)", prepare_ucmerced(shared, Path(tmp) / "ucm"), opts.epochs)
    else:
        print(f"\n{shared}/data/ucmerced_dev not found: UC Merced part skipped")


if __name__ == "__main__":
    main()
