"""Make a two-sensor scene pair with known truth from one real georeferenced scene, to check a pairing.

    python codes/data_scripts/simulate_pair.py --src scene.tif --dst sim/ --scale 3 --shift 4.2,-2.7
    python codes/data_scripts/simulate_pair.py --dst sim/      # from the embedded SampleMS tiles (5 m, 4 bands)

The HR scene is the source as it is. The LR scene shows the same ground through another sensor:
- its content displaced by --shift (HR pixels, x east, y south: the LR at a point shows the HR at that point plus the
  shift, the convention of dataset.json's pairing.displacement_hr_px);
- blurred (Gaussian, --blur HR pixels) and averaged down by --scale;
- resampled into the neighbouring UTM zone, on a grid of its own;
- per band: multiplied by --gains, plus --offsets, plus Gaussian noise (--noise), stored as uint16 with nodata 0;
- its bands in reverse order, named (band descriptions);
- a nodata gap, and a bright cloud that a mask raster (lr_cloud_mask.tif, 1 = cloud, on a coarser grid) marks.

Writes <dst>/hr.tif, <dst>/lr.tif, <dst>/lr_cloud_mask.tif and <dst>/truth.json (shift, gains, offsets, band names).
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import numpy as np  # noqa: E402

import atomic  # noqa: E402
from errors import OneLineParser, UserError, run_cli  # noqa: E402
from image_io import ImageMeta, read_image_with_meta, write_image  # noqa: E402
from paths import DATASETS_DIR  # noqa: E402

SAMPLE_MS = DATASETS_DIR / "SampleMS"
SAMPLE_MS_BANDS = ("blue", "green", "red", "nir")
LR_NODATA = 0
CLOUD_VALUE = 4000  # uint16 LR units: brighter than any simulated ground
MASK_CELLS = 2  # the cloud mask's pixel is this many LR pixels


DEFAULT_GAINS, DEFAULT_OFFSETS = (1.1, 0.9, 1.05, 0.95), (20, 35, 10, 50)


def parse_args(argv):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, default=None, help="the HR scene: a georeferenced GeoTIFF in a UTM zone "
                   "(default: the embedded SampleMS tiles put back together, 4 bands, 5 m)")
    p.add_argument("--bands", default=None, help="names of the source's bands (default: its band descriptions)")
    p.add_argument("--dst", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--scale", type=int, default=3, choices=(2, 3, 4), help="LR pixel / HR pixel (default 3)")
    p.add_argument("--shift", default="4.2,-2.7", help="content displacement x,y in HR pixels (default 4.2,-2.7)")
    p.add_argument("--blur", type=float, default=1.2, help="Gaussian sigma of the LR sensor, HR pixels (default 1.2)")
    p.add_argument("--gains", default=None, help="per-band gains, HR band order (default "
                   f"{','.join(map(str, DEFAULT_GAINS))} over the first bands, in turn; one value for all bands)")
    p.add_argument("--offsets", default=None, help="per-band offsets, HR band order (default "
                   f"{','.join(map(str, DEFAULT_OFFSETS))} over the first bands, in turn)")
    p.add_argument("--noise", type=float, default=1.0, help="noise deviation in LR units (default 1)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# What a simulated sensor may be: beyond these a scene is blurred flat, moved off itself or saturated (and a Gaussian
# of a huge sigma would run for hours); uint16 LR values.
MAX_BLUR_HR_PX, MAX_SHIFT_HR_PX, MAX_GAIN, LARGEST = 20.0, 100.0, 1000.0, 65535.0


def per_band(defaults, bands):
    """A default per-band value list for `bands` bands, the defaults taken in turn."""
    return ",".join(str(defaults[k % len(defaults)]) for k in range(bands))


def numbers(text, flag, count=None, limits=(-LARGEST, LARGEST), positive=False):
    """The comma-separated numbers of a flag: finite, within `limits` (above 0 with `positive`), `count` of them (one
    value stands for all)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{flag} {text!r}: give comma-separated numbers") from None
    if count and len(values) == 1:
        values *= count
    if count and len(values) != count:
        raise UserError(f"{flag} {text!r}: give {count} values, one per band")
    low, high = limits
    if not all(low <= v <= high and (v > 0 or not positive) for v in values):  # NaN fails too
        raise UserError(f"{flag} {text!r}: give {'positive ' if positive else ''}finite numbers from {low:g} to "
                        f"{high:g}")
    return np.array(values)


def sample_ms_scene():
    """The SampleMS tiles (all splits) put back into the 384 x 480 scene they were cut from."""
    tiles = sorted(SAMPLE_MS.glob("*/HR/*.tif"))
    if not tiles:
        raise UserError(f"{SAMPLE_MS} holds no tiles: give --src")
    first, meta = read_image_with_meta(tiles[0])
    corners = [tuple(int(part[1:]) for part in path.stem.split("_")[-2:]) for path in tiles]
    height, width = max(r for r, _ in corners) + first.shape[0], max(c for _, c in corners) + first.shape[1]
    scene = np.zeros((height, width, first.shape[2]), dtype=first.dtype)
    origin = None
    for path, (row, col) in zip(tiles, corners):
        array, tile_meta = read_image_with_meta(path)
        scene[row:row + array.shape[0], col:col + array.shape[1]] = array
        if (row, col) == (0, 0):
            origin = tile_meta
    return scene, ImageMeta(scene.dtype, scene.shape[2], height, width, origin.geo, SAMPLE_MS)


def neighbour_zone(crs):
    """The EPSG code of the next UTM zone east (west for zone 60) of a UTM CRS."""
    epsg = crs.to_epsg() or 0
    if not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        raise UserError(f"the source is in {crs}, not a UTM zone: give a UTM scene")
    return epsg + 1 if epsg % 100 < 60 else epsg - 1


def simulate(hr, meta, scale, shift, blur, gains, offsets, noise, seed):
    """(lr uint16 (H, W, C) in the LR CRS, its geo, cloud mask (h, w) uint8, its geo) of an HR scene."""
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, reproject
    from scipy.ndimage import gaussian_filter
    from scipy.ndimage import shift as move

    rng = np.random.default_rng(seed)
    ground = hr.astype(np.float64)
    # the LR at p shows the HR at p + shift: ndimage's output[p] = input[p - s], so s = -shift
    ground = np.stack([move(gaussian_filter(band, blur), (-shift[1], -shift[0]), order=3, mode="reflect")
                       for band in np.moveaxis(ground, -1, 0)], axis=-1)
    h, w = ground.shape[0] // scale, ground.shape[1] // scale
    coarse = ground[:h * scale, :w * scale].reshape(h, scale, w, scale, -1).mean(axis=(1, 3))
    t = meta.geo["transform"]
    coarse_transform = t @ Affine.scale(scale)
    lr_crs = CRS.from_epsg(neighbour_zone(meta.geo["crs"]))
    from rasterio.warp import calculate_default_transform

    left, top = coarse_transform.c, coarse_transform.f
    right, bottom = left + w * coarse_transform.a, top + h * coarse_transform.e
    guess, width, height = calculate_default_transform(meta.geo["crs"], lr_crs, w, h, left, bottom, right, top,
                                                       resolution=t.a * scale)
    # a grid of its own: the origin 1/3 of a pixel off any multiple of the pixel size
    lr_transform = Affine(guess.a, 0, guess.c + guess.a / 3, 0, guess.e, guess.f + guess.e / 3)
    sensed = np.full((coarse.shape[2], height, width), np.nan, dtype=np.float64)
    reproject(np.moveaxis(coarse, -1, 0), sensed, src_transform=coarse_transform, src_crs=meta.geo["crs"],
              dst_transform=lr_transform, dst_crs=lr_crs, src_nodata=np.nan, dst_nodata=np.nan,
              resampling=Resampling.cubic)
    sensed = np.moveaxis(sensed, 0, -1)
    outside = np.isnan(sensed).any(axis=2)
    sensed = sensed * gains + offsets + rng.normal(0, noise, sensed.shape)
    lr = np.clip(np.rint(np.nan_to_num(sensed, nan=LR_NODATA)), 1, 65535).astype(np.uint16)
    lr[outside] = LR_NODATA
    gap = (slice(height // 2, height // 2 + max(4, height // 10)), slice(width // 8, width // 3))
    lr[gap] = LR_NODATA
    cloud_rows = slice(height // 5, height // 5 + max(6, height // 8))
    cloud_cols = slice(width // 2, width // 2 + max(6, width // 8))
    lr[cloud_rows, cloud_cols] = CLOUD_VALUE
    mask = np.zeros((-(-height // MASK_CELLS), -(-width // MASK_CELLS)), dtype=np.uint8)
    mask[cloud_rows.start // MASK_CELLS:-(-cloud_rows.stop // MASK_CELLS),
         cloud_cols.start // MASK_CELLS:-(-cloud_cols.stop // MASK_CELLS)] = 1
    lr_geo = {"crs": lr_crs, "transform": lr_transform, "nodata": LR_NODATA}
    mask_geo = {"crs": lr_crs, "transform": lr_transform @ Affine.scale(MASK_CELLS), "nodata": None}
    return lr[:, :, ::-1], lr_geo, mask, mask_geo


def geo_meta(array, geo, names=None, path=None):
    geo = dict(geo, descriptions=tuple(names) if names else (None,) * array.shape[2], compress="deflate")
    return ImageMeta(array.dtype, array.shape[2], array.shape[0], array.shape[1], geo, path)


def main(argv=None):
    args = parse_args(argv)
    if args.dst.exists() and (not args.dst.is_dir() or any(args.dst.iterdir())):
        raise UserError(f"--dst {args.dst} exists and is not an empty folder: give a new folder")
    hr, meta = read_image_with_meta(args.src) if args.src else sample_ms_scene()
    names = ([b.strip().lower() for b in args.bands.split(",")] if args.bands else
             [str(d).lower() for d in meta.geo.get("descriptions") or ()] if args.src else list(SAMPLE_MS_BANDS))
    if len(names) != hr.shape[2] or not all(names) or "none" in names:
        raise UserError(f"name the {hr.shape[2]} bands of {meta.path} with --bands, e.g. --bands blue,green,red")
    shift = numbers(args.shift, "--shift", 2, limits=(-MAX_SHIFT_HR_PX, MAX_SHIFT_HR_PX))
    gains = numbers(args.gains or per_band(DEFAULT_GAINS, hr.shape[2]), "--gains", hr.shape[2], limits=(0, MAX_GAIN),
                    positive=True)
    offsets = numbers(args.offsets or per_band(DEFAULT_OFFSETS, hr.shape[2]), "--offsets", hr.shape[2])
    (blur,), (noise,) = (numbers(str(args.blur), "--blur", 1, limits=(0, MAX_BLUR_HR_PX)),
                         numbers(str(args.noise), "--noise", 1, limits=(0, LARGEST)))
    lr, lr_geo, mask, mask_geo = simulate(hr, meta, args.scale, shift, blur, gains, offsets, noise, args.seed)
    args.dst.mkdir(parents=True, exist_ok=True)
    write_image(args.dst / "hr.tif", hr, geo_meta(hr, meta.geo, names))
    write_image(args.dst / "lr.tif", lr, geo_meta(lr, lr_geo, names[::-1]))
    write_image(args.dst / "lr_cloud_mask.tif", mask[:, :, None], geo_meta(mask[:, :, None], mask_geo))
    truth = {"scale": args.scale, "displacement_hr_px": shift.tolist(), "hr_bands": names,
             "lr_bands": names[::-1], "gains": dict(zip(names, gains.tolist())),
             "offsets": dict(zip(names, offsets.tolist())), "lr_crs": lr_geo["crs"].to_string(),
             "hr_crs": meta.geo["crs"].to_string()}
    atomic.write_text(args.dst / "truth.json", json.dumps(truth, indent=2) + "\n")
    print(f"{args.dst}: hr.tif {hr.shape[1]}x{hr.shape[0]} ({meta.geo['crs']}), lr.tif {lr.shape[1]}x{lr.shape[0]} "
          f"({lr_geo['crs']}), lr_cloud_mask.tif; truth.json: shift {shift.tolist()} HR px")
    return 0


if __name__ == "__main__":
    run_cli(main)
