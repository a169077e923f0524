"""Accuracy of cross-sensor pairing against known truth: simulated pairs (codes/data_scripts/simulate_pair.py, from the
real SampleMS scene) with several content displacements, prepared with prepare_dataset.py --lr_src as a user does.

    python bench/bench_pairing.py [--shifts 4.2,-2.7 0.5,0.5 -6,3.3 1.5,1.5 0,0] [--blur 1.2]

Prints, per shift: the measured scene displacement, its error in HR and LR pixels (the misregistration left in the
written pairs, which are corrected by the measured displacement), the largest gain error over the bands and the
tiles kept; then the largest of each.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CODES = Path(__file__).resolve().parents[1] / "codes"
sys.path.insert(0, str(CODES))
import cpu_runtime  # noqa: E402, F401  (first, as in every entry script: the scripts it runs import it as well)

SCALE, TILE = 3, 48


def run(script, *args):
    done = subprocess.run([sys.executable, str(CODES / "data_scripts" / script), *map(str, args)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{script} failed: {done.stderr.strip().splitlines()[-1]}")


def measure(shift, blur, work):
    scenes, dataset = work / "scenes", work / "dataset"
    run("simulate_pair.py", "--dst", scenes, f"--shift={shift}", "--blur", blur, "--scale", SCALE)
    run("prepare_dataset.py", "--src", scenes / "hr.tif", "--lr_src", scenes / "lr.tif", "--lr_mask",
        scenes / "lr_cloud_mask.tif", "--scales", SCALE, "--tile", TILE, "--dst", dataset)
    truth = json.loads((scenes / "truth.json").read_text())
    record = json.loads((dataset / "dataset.json").read_text())["pairing"]
    measured = record["pairs"][0]["displacement_hr_px"]
    error = max(abs(m - t) for m, t in zip(measured, truth["displacement_hr_px"]))
    gain_error = max(abs(record["radiometry"][band]["gain"] - gain) for band, gain in truth["gains"].items())
    return measured, error, gain_error, len(record["tiles"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shifts", nargs="+", default=["4.2,-2.7", "0.5,0.5", "-6,3.3", "1.5,1.5", "0,0"])
    p.add_argument("--blur", type=float, default=1.2, help="the LR sensor's Gaussian sigma, HR pixels")
    args = p.parse_args()
    print(f"{'shift (HR px)':>14} {'measured':>18} {'error HR px':>12} {'error LR px':>12} {'gain error':>11} "
          f"{'tiles':>6}")
    worst = [0.0, 0.0]
    for shift in args.shifts:
        with tempfile.TemporaryDirectory() as work:
            measured, error, gain_error, tiles = measure(shift, args.blur, Path(work))
        worst = [max(worst[0], error), max(worst[1], gain_error)]
        print(f"{shift:>14} {measured[0]:>8.3f},{measured[1]:>8.3f} {error:>12.3f} {error / SCALE:>12.3f} "
              f"{gain_error:>11.3f} {tiles:>6}")
    print(f"largest: displacement error {worst[0]:.3f} HR px = {worst[0] / SCALE:.3f} LR px; gain error "
          f"{worst[1]:.3f}")


if __name__ == "__main__":
    main()
