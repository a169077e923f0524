"""Cross-sensor pairs: an LR scene of one sensor put on an HR scene's grid, co-registered, masked and compared
radiometrically. prepare_dataset.py --lr_src makes training pairs with it; demo_deploy.py --align_to warps its input
with the same grid rule and the same resampling.

The LR grid. It has the HR scene's CRS, `scale` x the HR pixel, and its corners on the HR grid at whole multiples of
`scale` HR pixels from the HR origin. An LR tile of t pixels then covers exactly the HR tile of scale x t pixels.

The displacement convention (dataset.json pairing.displacement_hr_px): the LR content at a point shows what the HR
shows at that point plus (x, y) HR pixels; x to the east (columns), y to the south (rows). It is corrected by moving
the LR by (x, y) before it is resampled onto the grid.

The estimator. Each measurement compares the LR with the HR averaged down to the LR grid, over pixels valid on both
sides. A search over whole LR pixels (correlation) gives the start. Gauss-Newton steps on
LR = a * HR_low(p + d) + b (cubic-spline resampling, gain and offset solved with the shift) then refine it to a
fraction of a pixel. Phase correlation alone snaps towards whole pixels on tiles this small.
"""
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from consistency import grown
from errors import UserError

WARP_RESAMPLING = "cubic"  # of the LR onto its grid: prepare_dataset.py and demo_deploy.py --align_to alike
WARP_HALO = 2  # LR pixels next to an invalid source pixel that the cubic kernel reaches: left out as well
SEARCH_LR_PX = 3  # the whole-pixel search reaches +-3 LR pixels (90 m for Landsat-8 onto Sentinel-2)
MEASURE_CONTEXT_LR = 8  # LR pixels of context around a tile when its displacement is measured
# The scene's displacement is the median over at most this many tiles, spread evenly (each pass costs ~10 ms a tile);
# the final pass measures every tile, for its rejection.
SCENE_SAMPLE_TILES = 256
MIN_MEASURE_PIXELS = 64  # fewer valid pixels than this in a window: no measurement
REFINE_STEPS = 30
REFINE_TOLERANCE = 1e-4  # LR pixels: a Gauss-Newton step this small ends the refinement
# The radiometric fit compares means of square blocks of LR pixels: the largest of FIT_BLOCKS that gives
# MIN_FIT_BLOCKS whole valid blocks. On raw pixels the two sensors' different sharpness and noise attenuate the slope
# (by 5-18 % for LR blurs of 0.7-1.5 LR pixels); block means keep the scene's contrast and average those out (16-pixel
# blocks: within 0.02, tests/test_cross_sensor.py).
FIT_BLOCKS = (16, 8, 4)
MIN_FIT_BLOCKS = 16
UNIT_GAIN_LIMITS = (0.5, 2.0)  # gains outside: the two sides are most likely in different units
HARMONIZE_MODES = ("none", "linear")
SCALE_TOLERANCE = 0.02  # LR pixel / HR pixel may differ from the scale by 2% (e.g. 30 m vs 10 m is 3 exactly)


# ----------------------------------------------------------------------------------------------------------- grids
@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: CRS, affine transform, size."""

    crs: object
    transform: object
    height: int
    width: int

    def record(self):
        t = self.transform
        return {"crs": self.crs.to_string(), "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
                "width": self.width, "height": self.height}


def scene_grid(meta):
    """The Grid of a georeferenced image's meta; a one-line error when it has no CRS or a rotated transform."""
    geo = meta.geo or {}
    if geo.get("crs") is None or geo.get("transform") is None:
        raise UserError(f"{meta.path} has no CRS or geotransform: cross-sensor pairs and --align_to need "
                        f"georeferenced GeoTIFFs")
    transform = geo["transform"]
    if transform.b or transform.d or transform.a <= 0 or transform.e >= 0:
        raise UserError(f"{meta.path} has a rotated or flipped geotransform: warp it north-up first (gdalwarp)")
    return Grid(geo["crs"], transform, meta.height, meta.width)


def bounds_in(grid, crs):
    """(left, bottom, right, top) of `grid`'s footprint in `crs` (edges densified, so a zone change's curvature is
    inside)."""
    from rasterio.warp import transform_bounds

    t = grid.transform
    left, top = t.c, t.f
    right, bottom = t.c + t.a * grid.width, t.f + t.e * grid.height
    if grid.crs == crs:
        return left, bottom, right, top
    return transform_bounds(grid.crs, crs, left, bottom, right, top, densify_pts=21)


def check_scale(scale, lr_meta, hr_grid, what="--scales"):
    """The scale must be the ratio of the pixel sizes on both axes, the LR's measured in the HR grid's CRS (its
    central pixel's edges transformed there): the ratio the warp resamples by, whatever the LR's own CRS (another UTM
    zone, Web Mercator, degrees)."""
    lr_size = pixel_size_in(scene_grid(lr_meta), hr_grid.crs)
    ratios = (lr_size[0] / hr_grid.transform.a, lr_size[1] / -hr_grid.transform.e)
    if any(not abs(ratio / scale - 1) <= SCALE_TOLERANCE for ratio in ratios):
        ratio = max(ratios, key=lambda r: abs(r / scale - 1))
        other = f"{what} {round(ratio)} or " if round(ratio) not in (scale, 0, 1) else ""
        raise UserError(f"{what} {scale} disagrees with the pixel sizes: in the HR grid's CRS a pixel of "
                        f"{lr_meta.path} spans {ratios[0]:.3g} x {ratios[1]:.3g} HR pixels, a ratio of {ratio:.3g}; "
                        f"give {other}the matching scenes")


def pixel_size_in(grid, crs):
    """(x, y) size of `grid`'s central pixel in `crs` units: the lengths of its two edges transformed there."""
    from rasterio.warp import transform

    t = grid.transform
    col, row = grid.width / 2, grid.height / 2
    corners = [t @ (col, row), t @ (col + 1, row), t @ (col, row + 1)]
    xs, ys = transform(grid.crs, crs, [c[0] for c in corners], [c[1] for c in corners])
    return math.hypot(xs[1] - xs[0], ys[1] - ys[0]), math.hypot(xs[2] - xs[0], ys[2] - ys[0])


def lr_grid(hr_grid, scale, bounds, inward):
    """The LR grid over `bounds` (in the HR CRS): scale x the HR pixel, corners on the HR grid at multiples of
    `scale` HR pixels from its origin. inward: only whole LR pixels inside `bounds` (else every pixel touching them).
    Returns (Grid, (row, col) of its origin in HR pixels), or None when no LR pixel fits."""
    from rasterio.transform import Affine

    t = hr_grid.transform
    step_x, step_y = t.a * scale, -t.e * scale
    left, bottom, right, top = bounds
    first, last = (math.ceil, math.floor) if inward else (math.floor, math.ceil)
    eps = 1e-6
    col0 = first((left - t.c) / step_x - (eps if inward else -eps))
    col1 = last((right - t.c) / step_x + (eps if inward else -eps))
    row0 = first((t.f - top) / step_y - (eps if inward else -eps))
    row1 = last((t.f - bottom) / step_y + (eps if inward else -eps))
    if col1 <= col0 or row1 <= row0:
        return None
    transform = Affine(step_x, 0, t.c + col0 * step_x, 0, -step_y, t.f - row0 * step_y)
    return Grid(hr_grid.crs, transform, row1 - row0, col1 - col0), (row0 * scale, col0 * scale)


def overlap_grid(hr_grid, lr_full_grid, scale):
    """The LR grid over the part of the HR scene that the LR scene covers, or None when they do not overlap."""
    left, bottom, right, top = bounds_in(lr_full_grid, hr_grid.crs)
    h_left, h_bottom, h_right, h_top = bounds_in(hr_grid, hr_grid.crs)
    common = max(left, h_left), max(bottom, h_bottom), min(right, h_right), min(top, h_top)
    if common[0] >= common[2] or common[1] >= common[3]:
        return None
    return lr_grid(hr_grid, scale, common, inward=True)


# ----------------------------------------------------------------------------------------------------------- warping
def resampling(name):
    from rasterio.enums import Resampling

    return getattr(Resampling, name)


def warp_lr(array, invalid, source, grid, shift_hr_px=(0.0, 0.0), hr_transform=None):
    """(float32 (H, W, C) on `grid`, bool invalid (H, W)) of an LR scene (`source`: its Grid) moved by `shift_hr_px`
    (the displacement convention; HR pixels of `hr_transform`) and resampled (WARP_RESAMPLING). Invalid: what its
    invalid pixels reach (with the kernel's halo) and what the scene does not cover."""
    from rasterio.transform import Affine
    from rasterio.warp import reproject

    transform = source.transform
    if any(shift_hr_px):
        step = hr_transform if hr_transform is not None else grid.transform
        transform = Affine.translation(shift_hr_px[0] * step.a, shift_hr_px[1] * step.e) @ transform
    data = np.moveaxis(array.astype(np.float32, copy=True), -1, 0)
    data[:, invalid] = np.nan
    out = np.full((data.shape[0], grid.height, grid.width), np.nan, dtype=np.float32)
    reproject(data, out, src_transform=transform, src_crs=source.crs, src_nodata=np.nan,
              dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan,
              resampling=resampling(WARP_RESAMPLING))
    touched = warp_mask(invalid, Grid(source.crs, transform, source.height, source.width), grid)
    out_invalid = grown(touched, WARP_HALO) | np.isnan(out).any(axis=0)
    return np.moveaxis(out, 0, -1), out_invalid


def warp_mask(mask, source, grid):
    """Bool on `grid`: True where any True pixel of `mask` (on `source`) falls, however small its share."""
    from rasterio.warp import reproject

    out = np.zeros((grid.height, grid.width), dtype=np.uint8)
    if mask.any():
        reproject(mask.astype(np.uint8), out, src_transform=source.transform, src_crs=source.crs,
                  dst_transform=grid.transform, dst_crs=grid.crs, resampling=resampling("max"), init_dest_nodata=False)
    return out > 0


def block_mean(array, block):
    """(H // block, W // block, C) means of block x block pixels (the rest cut off)."""
    h, w = array.shape[0] // block, array.shape[1] // block
    cut = array[:h * block, :w * block].astype(np.float64)
    return cut.reshape(h, block, w, block, -1).mean(axis=(1, 3))


def block_any(mask, block):
    h, w = mask.shape[0] // block, mask.shape[1] // block
    return mask[:h * block, :w * block].reshape(h, block, w, block).any(axis=(1, 3))


# ----------------------------------------------------------------------------------------------------------- shifts
def standardized_sum(array, valid):
    """One band for the shift estimate: each band scaled to zero mean and unit deviation over `valid`, summed."""
    out = np.zeros(array.shape[:2])
    for band in np.moveaxis(array, -1, 0):
        values = band[valid]
        spread = values.std() if values.size else 0.0
        if spread > 0:
            out += (band - values.mean()) / spread
    out[~valid] = 0.0
    return out


def correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def best_whole_shift(ref, mov, valid, reach):
    """(dx, dy, corr) over whole-pixel shifts within +-reach: mov(p) against ref(p + d)."""
    h, w = ref.shape
    best = (0, 0, -2.0)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            rows, cols = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
            shifted = (slice(rows.start + dy, rows.stop + dy), slice(cols.start + dx, cols.stop + dx))
            both = valid[rows, cols] & valid[shifted]
            if both.sum() < MIN_MEASURE_PIXELS:
                continue
            r = correlation(mov[rows, cols][both], ref[shifted][both])
            if r > best[2]:
                best = (dx, dy, r)
    return best


def measure_shift(ref, mov, valid, reach=SEARCH_LR_PX):
    """(dx, dy, corr) in pixels with mov(p) ~ a * ref(p + d) + b over `valid` (2-D arrays on one grid), or None when
    too few pixels are valid. corr: the correlation of mov with the shifted ref at the estimate."""
    from scipy.ndimage import map_coordinates

    if valid.sum() < MIN_MEASURE_PIXELS:
        return None
    dx, dy, corr = best_whole_shift(ref, mov, valid, reach)
    if corr < -1:
        return None
    filled = np.where(valid, ref, ref[valid].mean())
    grad_y, grad_x = np.gradient(filled)
    rows, cols = np.mgrid[0:ref.shape[0], 0:ref.shape[1]].astype(np.float64)
    blocked = grown(~valid, 2)
    d = np.array([float(dx), float(dy)])
    for _ in range(REFINE_STEPS):
        at = [rows + d[1], cols + d[0]]
        inside = ((at[0] >= 1) & (at[0] <= ref.shape[0] - 2) & (at[1] >= 1) & (at[1] <= ref.shape[1] - 2))
        near = np.rint(np.clip(at[0], 0, ref.shape[0] - 1)).astype(int), np.rint(
            np.clip(at[1], 0, ref.shape[1] - 1)).astype(int)
        use = valid & inside & ~blocked[near]
        if use.sum() < MIN_MEASURE_PIXELS:
            return None
        sampled = map_coordinates(filled, at, order=3, mode="nearest")
        gx, gy = (map_coordinates(g, at, order=1, mode="nearest") for g in (grad_x, grad_y))
        design = np.stack([sampled[use], np.ones(use.sum()), gx[use], gy[use]], axis=1)
        (gain, _, cx, cy), *_ = np.linalg.lstsq(design, mov[use], rcond=None)
        if gain <= 0:
            break
        step = np.array([cx, cy]) / gain
        d += step
        if np.abs(d).max() > reach + 1:
            return dx, dy, corr
        if np.abs(step).max() < REFINE_TOLERANCE:
            break
    sampled = map_coordinates(filled, [rows + d[1], cols + d[0]], order=3, mode="nearest")
    return float(d[0]), float(d[1]), correlation(mov[use], sampled[use])


def tile_shifts(hr_low, lr, valid, tiles, size):
    """{(row, col): (dx, dy, corr) or None} in LR pixels for each LR tile (its top-left corner on the grid, `size`
    pixels), each measured on the tile with MEASURE_CONTEXT_LR pixels of context."""
    ref, mov = standardized_sum(hr_low, valid), standardized_sum(lr, valid)
    out = {}
    for row, col in tiles:
        window = (slice(max(0, row - MEASURE_CONTEXT_LR), row + size + MEASURE_CONTEXT_LR),
                  slice(max(0, col - MEASURE_CONTEXT_LR), col + size + MEASURE_CONTEXT_LR))
        out[row, col] = measure_shift(ref[window], mov[window], valid[window])
    return out


# ----------------------------------------------------------------------------------------------------------- radiometry
def fit_points(hr_low, lr, valid):
    """(hr, lr) arrays of (N, C) for the radiometric fit: means of the largest FIT_BLOCKS blocks of which at least
    MIN_FIT_BLOCKS are wholly valid, else the valid pixels themselves."""
    for block in FIT_BLOCKS:
        whole = ~block_any(~valid, block)
        if whole.sum() >= MIN_FIT_BLOCKS:
            return block_mean(hr_low, block)[whole], block_mean(lr, block)[whole]
    return hr_low[valid].astype(np.float64), lr[valid].astype(np.float64)


def fit_radiometry(hr_low, lr, valid, names):
    """{band: {gain, offset, r}} of LR ~ gain * HR + offset per band, fitted on the block means of fit_points. Also
    returns those points, (hr, lr) arrays of (N, C), for the report."""
    x, y = fit_points(hr_low, lr, valid)
    fits = {}
    for k, name in enumerate(names):
        if len(x) < 2 or x[:, k].std() == 0:
            fits[name] = {"gain": None, "offset": None, "r": None}
            continue
        gain, offset = np.polyfit(x[:, k], y[:, k], 1)
        fits[name] = {"gain": round(float(gain), 6), "offset": round(float(offset), 6),
                      "r": round(correlation(x[:, k], y[:, k]), 6)}
    return fits, (x, y)


def harmonized(lr, names, radiometry):
    """LR in the HR's units: (LR - offset) / gain per band (`radiometry`: {band: {gain, offset}})."""
    out = np.empty(lr.shape, dtype=np.float32)
    for k, name in enumerate(names):
        fit = radiometry[name]
        out[..., k] = (lr[..., k] - fit["offset"]) / fit["gain"]
    return out


def unit_warning(radiometry, where):
    """One line when a gain is far from 1: the two sides are most likely in different units."""
    low, high = UNIT_GAIN_LIMITS
    far = {band: fit["gain"] for band, fit in radiometry.items() if fit["gain"] and not low <= fit["gain"] <= high}
    if not far:
        return None
    listed = ", ".join(f"{band} {gain:.3g}" for band, gain in far.items())
    return (f"warning: {where}: LR/HR gains far from 1 ({listed}): the two sides are most likely in different units "
            f"(e.g. Landsat Collection-2 scaling vs Sentinel-2 L2A / 10000); convert them, or use --harmonize linear")


# A fitted LR-vs-HR gain between sensors: a ratio of units (8 vs 16 bit: about 1/256), never near 0 or infinity.
GAIN_MAGNITUDES = (1e-6, 1e6)


def check_radiometry_record(radiometry, bands, where):
    """A pairing's recorded radiometry, read from dataset.json, validated like a flag: one finite, non-zero gain
    and a finite offset for each of `bands`."""
    if not isinstance(radiometry, dict):
        raise UserError(f"{where}: 'pairing.radiometry' must map each band to its gain and offset")
    for band in bands:
        fit = radiometry.get(band)
        values = [fit.get(key) if isinstance(fit, dict) else None for key in ("gain", "offset")]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        if not numbers or not GAIN_MAGNITUDES[0] <= abs(values[0]) <= GAIN_MAGNITUDES[1]:
            raise UserError(f"{where}: 'pairing.radiometry' has no usable gain and offset for band {band} (a gain "
                            f"of magnitude {GAIN_MAGNITUDES[0]:g} to {GAIN_MAGNITUDES[1]:g}); prepare the dataset "
                            f"again")
    return radiometry


def check_pairing_record(record, where):
    """dataset.json's `pairing`, validated like a flag before deploy uses it: a dict whose harmonize is one of
    HARMONIZE_MODES and whose pairs are a list of dicts."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: 'pairing' must be the record prepare_dataset.py --lr_src writes; prepare the "
                        f"dataset again")
    if record.get("harmonize", "none") not in HARMONIZE_MODES:
        raise UserError(f"{where}: 'pairing.harmonize' {record.get('harmonize')!r:.40} is not one of "
                        f"{', '.join(HARMONIZE_MODES)}; prepare the dataset again")
    pairs = record.get("pairs", [])
    if not isinstance(pairs, list) or not all(isinstance(pair, dict) for pair in pairs):
        raise UserError(f"{where}: 'pairing.pairs' must be a list of pair records; prepare the dataset again")
    return record


# ----------------------------------------------------------------------------------------------------------- bands
def common_bands(hr_names, lr_names, hr_path, lr_path):
    """The bands both sides hold, in the HR order; a note line for each side's bands the other lacks; a one-line
    error when none is common."""
    common = [name for name in hr_names if name in lr_names]
    if not common:
        raise UserError(f"{lr_path} (bands {','.join(lr_names)}) and {hr_path} (bands {','.join(hr_names)}) have no "
                        f"band name in common: name the bands with --lr_bands / --bands, e.g. the Landsat-8 OLI "
                        f"B2,B3,B4,B5,B6,B7 as blue,green,red,nir,swir1,swir2 (docs/datasets.md)")
    notes = [f"note: {path} band(s) {','.join(left)} have no match on the other side: left out"
             for path, names in ((hr_path, hr_names), (lr_path, lr_names))
             if (left := [n for n in names if n not in common])]
    return common, notes


# ----------------------------------------------------------------------------------------------------------- pairs
@dataclass
class PairPlan:
    """What pairing one LR scene with one HR scene found: the LR grid over their overlap, the displacement, the
    tiles kept (LR grid (row, col) -> record) and dropped (reason -> count), the radiometry."""

    grid: Grid
    hr_origin: tuple
    displacement: tuple = (0.0, 0.0)
    kept: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    radiometry: dict = field(default_factory=dict)
    shifts: dict = field(default_factory=dict)
    fit_points: tuple = ()


DROP_REASONS = ("LR nodata or mask", "HR nodata or mask", "constant", "low correlation", "displacement off")


def hr_low_on(grid_plan, hr, hr_invalid, scale):
    """The HR averaged down to the LR grid (s x s blocks), and the blocks holding an invalid HR pixel."""
    grid, (row0, col0) = grid_plan
    rows, cols = slice(row0, row0 + grid.height * scale), slice(col0, col0 + grid.width * scale)
    return block_mean(hr[rows, cols], scale), block_any(hr_invalid[rows, cols], scale)


def pair_scenes(found, hr, hr_invalid, hr_grid, lr, lr_invalid, lr_source_grid, scale, tile, min_corr, max_shift,
                names):
    """Pair one LR scene (bands already in the order of `names`, the HR's common bands) with one HR scene on `found`,
    their overlap_grid: displacement (measured per tile, the scene's the median of the tiles that correlate), the
    corrected warp's tiles and radiometry. Returns (PairPlan, corrected LR on the grid, its invalid mask), or None
    when the overlap holds no tile."""
    size = tile // scale
    if found[0].height < size or found[0].width < size:
        return None
    grid, origin = found
    plan = PairPlan(grid, origin)
    hr_low, hr_low_invalid = hr_low_on(found, hr, hr_invalid, scale)
    tiles = [(r, c) for r in range(0, grid.height - size + 1, size) for c in range(0, grid.width - size + 1, size)]
    displacement = np.zeros(2)
    sample = tiles[::max(1, len(tiles) // SCENE_SAMPLE_TILES)]
    for _ in range(3):  # measure, correct, measure the remainder (twice at most)
        warped, warped_invalid = warp_lr(lr, lr_invalid, lr_source_grid, grid, tuple(displacement), hr_grid.transform)
        valid = ~warped_invalid & ~hr_low_invalid
        shifts = tile_shifts(hr_low, warped, valid, sample, size)
        good = [s[:2] for s in shifts.values() if s is not None and s[2] >= min_corr]
        if not good:
            break
        remainder = np.median(np.array(good), axis=0) * scale
        displacement += remainder
        if np.abs(remainder).max() < 0.05 * scale:
            break
    warped, warped_invalid = warp_lr(lr, lr_invalid, lr_source_grid, grid, tuple(displacement), hr_grid.transform)
    valid = ~warped_invalid & ~hr_low_invalid
    shifts = tile_shifts(hr_low, warped, valid, tiles, size)  # every tile's remainder, for its rejection
    plan.displacement = tuple(round(float(v), 4) for v in displacement)
    plan.shifts = shifts
    plan.dropped = dict.fromkeys(DROP_REASONS, 0)
    for row, col in tiles:
        reason = tile_problem(row, col, size, scale, origin, hr, hr_invalid, warped_invalid, shifts[row, col],
                              min_corr, max_shift)
        if reason:
            plan.dropped[reason] += 1
            continue
        dx, dy, corr = shifts[row, col]
        plan.kept[row, col] = {"shift_hr_px": [round(plan.displacement[0] + dx * scale, 4),
                                               round(plan.displacement[1] + dy * scale, 4)],
                               "corr": round(corr, 4)}
    plan.radiometry, plan.fit_points = fit_radiometry(hr_low, warped, valid, names)
    return plan, warped, warped_invalid


def tile_problem(row, col, size, scale, origin, hr, hr_invalid, lr_invalid, shift, min_corr, max_shift):
    """Why an LR tile (and its HR tile) is not kept, or None."""
    if lr_invalid[row:row + size, col:col + size].any():
        return "LR nodata or mask"
    hr_rows = slice(origin[0] + row * scale, origin[0] + (row + size) * scale)
    hr_cols = slice(origin[1] + col * scale, origin[1] + (col + size) * scale)
    if hr_invalid[hr_rows, hr_cols].any():
        return "HR nodata or mask"
    window = hr[hr_rows, hr_cols].reshape(-1, hr.shape[2])
    if (window.max(axis=0) == window.min(axis=0)).all():
        return "constant"
    if shift is None or shift[2] < min_corr:
        return "low correlation"
    if math.hypot(shift[0], shift[1]) * scale > max_shift:
        return "displacement off"
    return None


def median_radiometry(fits, names):
    """The per-band median gain and offset over several scene pairs' fits (r: the smallest)."""
    out = {}
    for name in names:
        usable = [fit[name] for fit in fits if fit[name]["gain"] is not None]
        if not usable:
            out[name] = {"gain": None, "offset": None, "r": None}
            continue
        out[name] = {key: round(float(np.median([f[key] for f in usable])), 6) for key in ("gain", "offset")}
        out[name]["r"] = min(f["r"] for f in usable)
    return out


# ----------------------------------------------------------------------------------------------------------- deploy
def holds_value(dtype, value):
    """Whether `dtype` holds `value` exactly (rasterio gives every nodata as a float: -32768.0 for int16 data)."""
    if dtype.kind == "f":
        return True
    info = np.iinfo(dtype)
    return math.isfinite(value) and float(value).is_integer() and info.min <= value <= info.max


def raster_meta(path, flag):
    """The ImageMeta of a raster (`flag` names where it was given) read from its header: dtype, size, grid."""
    from image_io import ImageMeta, opened_raster, rasterio_error

    if not Path(path).is_file():  # a FIFO or a device would block the read, a folder is no raster
        raise UserError(f"{flag} {path}: not a raster file; give a GeoTIFF")
    try:
        with opened_raster(path) as src:
            crs, transform, height, width, dtype = src.crs, src.transform, src.height, src.width, src.dtypes[0]
    except rasterio_error() as err:
        raise UserError(f"{flag} {path}: cannot read it as a raster ({err})") from None
    return ImageMeta(np.dtype(dtype), 1, height, width, {"crs": crs, "transform": transform}, path)


def raster_grid(path):
    """(Grid, dtype) of a raster given by --align_to, read from its header."""
    meta = raster_meta(path, "--align_to")
    return scene_grid(meta), meta.dtype


def check_input_scales(paths, scale, target):
    """--align_to: every input's pixel (from its header) is `scale` x the target grid's, before any output exists (a
    target of finer pixels would make a huge grid and only zoom the input)."""
    for path in paths:
        check_scale(scale, raster_meta(path, "--dir_data"), target, what="--scale")  # georeferenced, or one line


def known_dtype(name, where):
    """A dtype name read from a file (checkpoint, dataset.json), validated like a flag; None stays None."""
    if name is None:
        return None
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "uif":
        raise UserError(f"{where}: the recorded dtype {name!r} is not an image dtype; prepare or train again")
    return dtype


def checked_displacement(value, where):
    """A displacement read from dataset.json, validated like a flag: two finite numbers of HR pixels."""
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and math.isfinite(v) and abs(v) < 1e4 for v in value)):
        raise UserError(f"the dataset.json pairing of {where} has no usable displacement_hr_px; prepare it again")
    return tuple(float(v) for v in value)


def align_input(path, lr, meta, target, scale, max_pixels, radiometry=None, dtype=None, shift_hr_px=(0.0, 0.0)):
    """(array, meta, record) of an LR input warped onto the LR grid of `target` (the HR raster's Grid): scale x its
    pixel, corners on its grid, covering the input's footprint, moved by `shift_hr_px` (the displacement
    convention). `radiometry` ({band: {gain, offset}}, in the input's band order) converts it to the HR's units when
    given. `dtype`: the training tiles' (prepare_dataset.py writes the LR in the HR's dtype; None: the input's).
    Pixels outside the input or next to its invalid pixels are nodata (the input's, else 0 for integers and NaN for
    floats). `record`: what the manifest says of the warp. The grid is held to --max_pixels before it is allocated
    (check_input_scales has checked the input's pixel size against it)."""
    from dataclasses import replace

    from image_io import unusable_pixels
    from radiometry import to_dtype

    source = scene_grid(meta)
    found = lr_grid(target, scale, bounds_in(source, target.crs), inward=False)
    if found is None:
        raise UserError(f"{path}: its footprint gives no pixel on the --align_to grid")
    grid = found[0]
    if grid.height * grid.width > max_pixels:
        raise UserError(f"{path} on the --align_to grid is {grid.width}x{grid.height} LR pixels, more than "
                        f"--max_pixels {max_pixels}: cut the input into smaller scenes, or raise --max_pixels if "
                        f"memory allows")
    warped, warped_invalid = warp_lr(lr, unusable_pixels(lr, meta), source, grid, shift_hr_px, target.transform)
    if warped_invalid.all():
        raise UserError(f"{path}: no valid pixel of it falls on the --align_to grid")
    if radiometry:
        warped = harmonized(warped, list(radiometry), radiometry)
    dtype = np.dtype(dtype or lr.dtype)
    fill = np.nan if dtype.kind == "f" else 0
    if meta.nodata is not None and holds_value(dtype, meta.nodata):
        fill = meta.nodata
    values = np.where(warped_invalid[..., None], 0, warped)
    out = to_dtype(values, dtype)
    clipped = int((out != np.rint(values)).sum()) if dtype.kind in "iu" else 0
    if clipped:  # the model was trained on tiles of this dtype, so its range is the one to hold
        warnings.warn(f"{path}: {clipped} values fell outside {dtype.name}, the training tiles' dtype, on the "
                      f"--align_to grid and were clipped to it; give an input in the units of the training data",
                      stacklevel=2)
    out[warped_invalid] = fill
    geo = dict(meta.geo, crs=grid.crs, transform=grid.transform, nodata=fill)
    record = {"lr_grid": grid.record(), "resampling": WARP_RESAMPLING, "harmonized": bool(radiometry),
              "dtype": dtype.name}
    return out, replace(meta, dtype=dtype, height=grid.height, width=grid.width, geo=geo), record
