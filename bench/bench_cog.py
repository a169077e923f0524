"""Benchmark GeoTiffWindowWriter on a whole x4 scene: plain tiled GeoTIFF (cog=False) against COG (cog=True).

Run from the repository root:  python bench/bench_cog.py [--size 2000] [--scale 4] [--cache_mib 64]

Writes a size x size 16-bit 3-band GeoTIFF (a crop of the real Landsat-8 scene in ../shared/data/registry,
mirror-padded to the size; a synthetic scene when ../shared is absent), then, in a fresh subprocess per variant,
upsamples it x scale with a cheap bilinear stand-in for a network (numpy, one 256-row output strip at a time, as the
deploy streams strips) and writes the strips through GeoTiffWindowWriter. GDAL's block cache is capped at
--cache_mib, as demo_deploy caps it around its writer. Prints, per variant, the wall time (with the part spent
finishing the file: the COG rewrite), the peak RSS of the subprocess (and of its finishing phase alone, where Linux
lets VmHWM be reset), the output file size, and the size ratio.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LANDSAT = REPO_ROOT.parent / "shared" / "data" / "registry" / "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
sys.path.insert(0, str(REPO_ROOT / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import numpy as np  # noqa: E402
import rasterio  # noqa: E402

import geotiff  # noqa: E402
import image_io  # noqa: E402

STRIP_ROWS = geotiff.GEOTIFF_BLOCK  # whole block rows, as demo_deploy's AlignedRows hands them over
VARIANTS = {"plain": False, "cog": True}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2000, help="LR scene side in pixels")
    parser.add_argument("--scale", type=int, default=4, help="upsampling factor")
    parser.add_argument("--cache_mib", type=int, default=64, help="GDAL_CACHEMAX around the writer (MiB)")
    parser.add_argument("--workdir", default=None,
                        help="keep the scene and outputs here (default: a temp folder, deleted at the end)")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)  # one variant, in a subprocess
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------------------- scene
def landsat_scene(size):
    """A size x size crop of the real scene (blue, green, red as stored), mirror-padded where it is smaller."""
    array, meta = image_io.read_image_with_meta(LANDSAT)
    array = array[:size, :size]
    pad = ((0, max(size - array.shape[0], 0)), (0, max(size - array.shape[1], 0)), (0, 0))
    return np.pad(array, pad, mode="reflect"), image_io.window_meta(meta, 0, 0, size, size)


def synthetic_scene(size):
    """Smooth fields plus noise, uint16 in a Landsat-like range, in a made-up UTM frame."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    bands = [6000 + 3000 * np.sin(2 * np.pi * (k + 1) * x) * np.cos(2 * np.pi * (3 - k) * y) for k in range(3)]
    array = np.clip(np.stack(bands, axis=2) + rng.normal(0, 200, (size, size, 3)), 0, 65535).astype(np.uint16)
    geo = {"crs": rasterio.crs.CRS.from_epsg(32621),
           "transform": rasterio.transform.Affine(30.0, 0.0, 717345.0, 0.0, -30.0, -2776995.0)}
    return array, image_io.ImageMeta(array.dtype, 3, size, size, geo)


def write_scene(workdir, size):
    array, meta = landsat_scene(size) if LANDSAT.is_file() else synthetic_scene(size)
    source = "Landsat-8 scene (../shared)" if LANDSAT.is_file() else "synthetic"
    path = workdir / "scene.tif"
    image_io.write_image(path, array, meta)
    print(f"scene: {size}x{size}x3 uint16 from the {source}")
    return path


# ----------------------------------------------------------------------------------------------------------- child
def bilinear_weights(out_size, in_size, scale):
    """Source indices (lo, hi) and the weight of hi for each output pixel (pixel-centre aligned, edges clamped)."""
    position = np.clip((np.arange(out_size) + 0.5) / scale - 0.5, 0, in_size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, (position - low).astype(np.float32)[:, None]


def upsampled_strips(lr, scale):
    """(row, strip) of the bilinear x scale image, STRIP_ROWS output rows at a time: never the whole output."""
    height, width = lr.shape[0] * scale, lr.shape[1] * scale
    col_low, col_high, col_weight = bilinear_weights(width, lr.shape[1], scale)
    row_low, row_high, row_weight = bilinear_weights(height, lr.shape[0], scale)
    for row in range(0, height, STRIP_ROWS):
        rows = slice(row, min(row + STRIP_ROWS, height))
        top = lr[row_low[rows]].astype(np.float32)
        bottom = lr[row_high[rows]].astype(np.float32)
        blended = top + (bottom - top) * row_weight[rows][:, :, None]  # (h, W_lr, C)
        left, right = blended[:, col_low], blended[:, col_high]
        strip = left + (right - left) * col_weight[None]
        # the deploy hands the writer strips in the input's dtype (it rounds them itself, in chunks)
        yield row, np.clip(np.rint(strip, out=strip), 0, 65535).astype(lr.dtype)


def peak_rss_mib():
    """This process's peak RSS so far (VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))


def reset_peak_rss():
    """Restart VmHWM from the current RSS (Linux clear_refs 5); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_child(args):
    lr, meta = image_io.read_image_with_meta(args.scene)
    height, width, bands = lr.shape[0] * args.scale, lr.shape[1] * args.scale, lr.shape[2]
    start = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=args.cache_mib * 2**20):
        writer = geotiff.GeoTiffWindowWriter(args.out, height, width, bands, lr.dtype, meta, args.scale,
                                              cog=VARIANTS[args.child])
        with writer:
            for row, strip in upsampled_strips(lr, args.scale):
                writer.write(strip, row, 0)
            del strip
            strips_peak = peak_rss_mib()
            finish_measured = reset_peak_rss()
            finishing = time.perf_counter()
    end = time.perf_counter()
    print(json.dumps({"strips_s": finishing - start, "finish_s": end - finishing, "strips_peak_mib": strips_peak,
                      "finish_peak_mib": peak_rss_mib() if finish_measured else None}))
    return 0


# ----------------------------------------------------------------------------------------------------------- parent
def run_variant(name, args, scene, workdir):
    """One variant in a fresh subprocess: its wall time, peak RSS (MiB), output size and the child's phase times."""
    out = workdir / f"{name}.tif"
    command = [sys.executable, __file__, "--child", name, "--scene", str(scene), "--out", str(out),
               f"--scale={args.scale}", f"--cache_mib={args.cache_mib}"]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child only
    seconds = time.perf_counter() - start
    output = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{output}")
    phases = json.loads(output.strip().splitlines()[-1])
    # resetting VmHWM for the finishing phase also lowers ru_maxrss: the whole run's peak is the larger phase's
    peak = max(usage.ru_maxrss / 1024, phases["strips_peak_mib"], phases["finish_peak_mib"] or 0)
    return {"wall_s": seconds, "peak_mib": peak, "bytes": out.stat().st_size, **phases}


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        return run_benchmark(args, Path(args.workdir))
    with tempfile.TemporaryDirectory(prefix="bench_cog_") as workdir:  # the outputs are hundreds of MB
        return run_benchmark(args, Path(workdir))


def run_benchmark(args, workdir):
    scene = write_scene(workdir, args.size)
    side = args.size * args.scale
    print(f"output: {side}x{side}x3 uint16 ({side * side * 3 * 2 / 2**20:.0f} MiB raw), strips of {STRIP_ROWS} "
          f"rows, GDAL_CACHEMAX {args.cache_mib} MiB")
    results = {name: run_variant(name, args, scene, workdir) for name in VARIANTS}
    for name, result in results.items():
        finish_peak = result["finish_peak_mib"]
        finish_text = f"{finish_peak:.0f} MiB" if finish_peak is not None else "not measurable here"
        print(f"{name:>5} (cog={VARIANTS[name]!s:>5}): wall {result['wall_s']:5.1f} s (strips {result['strips_s']:.1f} "
              f"s, finishing {result['finish_s']:.1f} s), peak RSS {result['peak_mib']:.0f} MiB (strips "
              f"{result['strips_peak_mib']:.0f} MiB, finishing {finish_text}), file {result['bytes'] / 2**20:.1f} MiB")
    ratio = results["cog"]["bytes"] / results["plain"]["bytes"]
    print(f"size ratio cog/plain: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
