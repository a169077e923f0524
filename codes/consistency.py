"""How far to trust an SR output without an HR: its LR consistency, and whether its input suits the model (GSD).

LR consistency: how well an SR output, downsampled again, reproduces its own input. No HR is needed.

The SR is downsampled by the scale with the MATLAB bicubic that makes the training LR (imresize.bicubic_downsample)
and compared with the input over its valid pixels: PSNR at the data's white level, the mean difference per band
(bias, in file units) and, with more than one band, the spectral angle (SAM, degrees). A model that shifts the
scene's radiometry shows a bias; one that invents structure the input cannot support lowers the PSNR.

The output is read back in row windows with a halo of HALO LR rows (the bicubic kernel of a downsample by s spans 2s
HR pixels each side), so memory stays bounded by a window whatever the scene's size, and every kept LR row is
exactly what a whole-image downsample gives.
"""
import math

import numpy as np

import image_io
import metrics
from image_files import TIFF_EXTENSIONS
from imresize import bicubic_downsample

HALO = 4  # LR rows read beyond a window on each side
WINDOW_ROWS = 128  # LR rows per window of a tiled output


def grown(mask, pixels):
    """`mask` grown by `pixels` in the 4-neighbourhood (scipy.ndimage.binary_dilation's default cross, iterated):
    numpy shifts, so that deploy starts without importing scipy.ndimage."""
    out = mask.copy()
    for _ in range(pixels):
        step = out.copy()
        step[1:] |= out[:-1]
        step[:-1] |= out[1:]
        step[:, 1:] |= out[:, :-1]
        step[:, :-1] |= out[:, 1:]
        out = step
    return out


def lr_consistency(sr_path, lr, mask, scale, white):
    """{psnr, bias (per band), sam (None for one band)} of the output at `sr_path` against its input `lr` (H, W, C);
    `mask`: True at the input's nodata pixels (None: all valid). LR pixels within 2 pixels of nodata are left out:
    their downsample mixes in the nodata blocks of the SR."""
    height, bands = lr.shape[0], lr.shape[2]
    valid = np.ones(lr.shape[:2], bool) if mask is None else ~grown(mask, 2)
    tiled = sr_path.suffix.lower() in TIFF_EXTENSIONS
    step = WINDOW_ROWS if tiled else height
    squared, difference, angles, count = 0.0, np.zeros(bands), 0.0, 0
    for first in range(0, height, step):
        last = min(first + step, height)
        top = max(first - HALO, 0)
        sr = image_io.read_rows(sr_path, top * scale, min(last + HALO, height) * scale)
        down = bicubic_downsample(sr, scale)[first - top:last - top].astype(np.float64)
        ref = lr[first:last].astype(np.float64)
        keep = valid[first:last] & np.isfinite(down).all(axis=2) & np.isfinite(ref).all(axis=2)
        n = int(keep.sum())
        if n == 0:
            continue
        error = down[keep] - ref[keep]
        squared += float(np.sum(error ** 2))
        difference += error.sum(axis=0)
        if bands > 1:
            angles += metrics.calculate_sam(down[keep][:, None], ref[keep][:, None]) * n
        count += n
    if count == 0:
        return {"psnr": None, "bias": None, "sam": None}
    psnr = metrics.psnr_from_mse(squared / (count * bands), white)
    return {"psnr": round(psnr, 4) if math.isfinite(psnr) else None,
            "bias": [round(float(v), 6) for v in difference / count],
            "sam": round(angles / count, 6) if bands > 1 else None}


def summary_line(records):
    """One line over a deploy's images: the mean and the lowest PSNR, the largest |bias|, the mean SAM."""
    scored = [r for r in records if (r.get("lr_consistency") or {}).get("psnr") is not None]
    if not scored:
        return None
    psnrs = [r["lr_consistency"]["psnr"] for r in scored]
    worst = min(scored, key=lambda r: r["lr_consistency"]["psnr"])
    bias = max(abs(b) for r in scored for b in r["lr_consistency"]["bias"])
    sams = [r["lr_consistency"]["sam"] for r in scored if r["lr_consistency"]["sam"] is not None]
    text = (f"LR consistency (the SR downsampled again vs its input): PSNR mean {np.mean(psnrs):.2f} dB, lowest "
            f"{worst['lr_consistency']['psnr']:.2f} dB ({worst['input']}); largest band bias {bias:.4g}")
    return text + (f"; SAM mean {np.mean(sams):.3f} deg" if sams else "")


def gsd_warning(name, meta, training_gsd, scale, input_gsd=None):
    """One line when the input's pixel size is far from what the model learned: a model that makes HR at GSD g from
    LR at g*s suits inputs within [g/2, 2*g*s]. The input's size comes from its georeferencing (in metres, a
    geographic CRS's converted), else `input_gsd` (the deployed dataset's LR pixel size). None when it suits, or when
    either GSD is unknown."""
    gsd = meta.gsd_metres or ((input_gsd, input_gsd) if input_gsd else None)
    if not training_gsd or not gsd:
        return None
    low, high = training_gsd / 2, 2 * training_gsd * scale
    if low <= gsd[0] <= high:
        return None
    return (f"warning: {name} has {gsd[0]:g} m pixels, but the model learned to make {training_gsd:g} m pixels from "
            f"{training_gsd * scale:g} m ones (x{scale}); it suits inputs of {low:g} to {high:g} m, and on this one "
            f"it adds detail of a scale it never saw (a model trained on this sensor's own data is the remedy)")
