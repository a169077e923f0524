"""Image-quality metrics for super-resolution, pure numpy (float64), MATLAB-compatible where MATLAB defines them.

Images are numpy (H, W) or (H, W, C) arrays of any dtype; `img` is the result (SR) and `img2` the reference (HR).
`data_range` is the peak value: 255 for 8-bit, 65535 for 16-bit, e.g. 10000 for scaled reflectance.
PSNR/SSIM follow BasicSR's / ESRGAN's calculate_PSNR_SSIM.py (MATLAB `ssim_index`, pooled-MSE PSNR, MATLAB's
rgb2ycbcr Y), plus the HSENet paper's channel-mean PSNR and the usual multispectral metrics.
"""
import math
from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from errors import UserError

SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_WINDOW_SIZE, SSIM_SIGMA = 11, 1.5
# Index name -> (band a, band b) of the normalised difference (a - b) / (a + b).
SPECTRAL_INDICES = {'NDVI': ('nir', 'red'), 'NDWI': ('green', 'nir'), 'NDBI': ('swir1', 'nir')}


# --------------------------------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------------------------------
def as_hwc_float(img):
    """A float64 (H, W, C) view of an (H, W) or (H, W, C) image."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        return img[:, :, None]
    if img.ndim != 3:
        raise UserError(f"expected an image of shape (H, W) or (H, W, C), got shape {img.shape}")
    return img


def crop_border_pixels(img, crop_border):
    """Drop `crop_border` pixels from each edge (SR convention: the scale, as the border is unreliable)."""
    if crop_border == 0:
        return img
    cropped = img[crop_border:-crop_border, crop_border:-crop_border, ...]
    if cropped.size == 0:
        raise UserError(f"crop_border={crop_border} leaves nothing of an image of shape {img.shape}; "
                        "use a smaller crop_border")
    return cropped


def prepare_pair(img, img2, crop_border):
    """Check the shapes match, convert both to float64 HWC and crop the border."""
    if np.shape(img) != np.shape(img2):
        raise UserError(f"the images differ in shape: {np.shape(img)} vs {np.shape(img2)}; compare an SR image with "
                        "the HR image it was made from (mod-crop HR to a multiple of the scale)")
    return crop_border_pixels(as_hwc_float(img), crop_border), crop_border_pixels(as_hwc_float(img2), crop_border)


def rgb2ycbcr_y(img, data_range=255):
    """Y of MATLAB's rgb2ycbcr on RGB scaled to [0, 1], returned in the input's scale, unrounded, shape (H, W)."""
    img = as_hwc_float(img)
    if img.shape[2] != 3:
        raise UserError(f"the Y channel needs a 3-band RGB image, got {img.shape[2]} bands")
    rgb = img / data_range
    y = 16.0 / 255 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255
    return y * data_range


def _to_y_if_asked(img, img2, test_y_channel, data_range):
    """Y for RGB; a single band already is the luminance (BasicSR only converts 3-band images too)."""
    if not test_y_channel or img.shape[2] == 1:
        return img, img2
    return rgb2ycbcr_y(img, data_range)[..., None], rgb2ycbcr_y(img2, data_range)[..., None]


# --------------------------------------------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------------------------------------------
def psnr_from_mse(mse, data_range):
    """10 log10(peak^2 / mse); inf for identical images."""
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range ** 2 / mse)


def calculate_psnr(img, img2, crop_border, test_y_channel=False, data_range=255):
    """PSNR of one MSE pooled over all pixels and channels (BasicSR)."""
    img, img2 = prepare_pair(img, img2, crop_border)
    img, img2 = _to_y_if_asked(img, img2, test_y_channel, data_range)
    return psnr_from_mse(np.mean((img - img2) ** 2), data_range)


def per_band_psnr(img, img2, crop_border, data_range=255):
    """PSNR of each band separately."""
    img, img2 = prepare_pair(img, img2, crop_border)
    return [psnr_from_mse(np.mean((img[..., b] - img2[..., b]) ** 2), data_range) for b in range(img.shape[2])]


def calculate_psnr_chmean(img, img2, crop_border, data_range=255):
    """The HSENet paper script's RGB PSNR: the mean of the per-channel PSNRs."""
    return float(np.mean(per_band_psnr(img, img2, crop_border, data_range)))


# --------------------------------------------------------------------------------------------------------------
# SSIM (MATLAB ssim_index)
# --------------------------------------------------------------------------------------------------------------
def gaussian_window(size=SSIM_WINDOW_SIZE, sigma=SSIM_SIGMA):
    """MATLAB fspecial('gaussian', size, sigma): exp(-(x^2+y^2)/(2 sigma^2)), tiny values zeroed, normalised."""
    half = (size - 1) / 2
    x, y = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1))
    window = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    window[window < np.finfo(np.float64).eps * window.max()] = 0
    return window / window.sum()


def gaussian_taps(size=SSIM_WINDOW_SIZE, sigma=SSIM_SIGMA):
    """The 1-D factor g of the Gaussian window: outer(g, g) equals gaussian_window() to rounding (~1e-17)."""
    half = (size - 1) / 2
    x = np.arange(-half, half + 1)
    taps = np.exp(-(x * x) / (2 * sigma * sigma))
    return taps / taps.sum()


def filter_valid(band, taps):
    """MATLAB filter2(outer(taps, taps), band, 'valid'), done as two 1-D float64 correlations (separable, 5x
    fewer operations). Each is a product of the windows of every output pixel, a strided view of the band without a
    copy, with the taps: as exact as scipy.ndimage.correlate1d (4e-16 apart), twice as fast on a 2000 x 2000 band,
    and without that import (0.15 s of a --test_only start)."""
    size = len(taps)
    rows_done = sliding_window_view(np.asarray(band, dtype=np.float64), size, axis=0) @ taps
    return sliding_window_view(rows_done, size, axis=1) @ taps


def ssim_map(band, band2, data_range=255):
    """MATLAB ssim_index's SSIM map of two 2-D bands, over the 'valid' region (H-10, W-10)."""
    band = np.asarray(band, dtype=np.float64)
    band2 = np.asarray(band2, dtype=np.float64)
    if min(band.shape) < SSIM_WINDOW_SIZE:
        raise UserError(f"SSIM needs images of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} pixels after "
                        f"cropping the border, got {band.shape[0]}x{band.shape[1]}; use a smaller crop_border")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    taps = gaussian_taps()
    mu1, mu2 = filter_valid(band, taps), filter_valid(band2, taps)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = filter_valid(band * band, taps) - mu1_sq
    sigma2_sq = filter_valid(band2 * band2, taps) - mu2_sq
    sigma12 = filter_valid(band * band2, taps) - mu1_mu2
    return ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))


def per_band_ssim(img, img2, crop_border, data_range=255):
    """SSIM of each band separately."""
    img, img2 = prepare_pair(img, img2, crop_border)
    return [float(np.mean(ssim_map(img[..., b], img2[..., b], data_range))) for b in range(img.shape[2])]


def calculate_ssim(img, img2, crop_border, test_y_channel=False, data_range=255):
    """MATLAB ssim_index (11x11 Gaussian, sigma 1.5, 'valid', K = 0.01, 0.03); multi-band: mean of band SSIMs."""
    img, img2 = prepare_pair(img, img2, crop_border)
    img, img2 = _to_y_if_asked(img, img2, test_y_channel, data_range)
    return float(np.mean([np.mean(ssim_map(img[..., b], img2[..., b], data_range)) for b in range(img.shape[2])]))


# --------------------------------------------------------------------------------------------------------------
# Multispectral metrics
# --------------------------------------------------------------------------------------------------------------
def calculate_rmse(img, img2, crop_border=0):
    """Root-mean-square error over all pixels and bands, in the images' units."""
    img, img2 = prepare_pair(img, img2, crop_border)
    return float(np.sqrt(np.mean((img - img2) ** 2)))


def calculate_sam(img, img2, crop_border=0):
    """Spectral angle mapper: mean angle (degrees) between the pixels' band vectors; zero vectors are skipped."""
    img, img2 = prepare_pair(img, img2, crop_border)
    norm, norm2 = np.linalg.norm(img, axis=2), np.linalg.norm(img2, axis=2)
    valid = (norm > 0) & (norm2 > 0)
    if not valid.any():
        return math.nan
    unit = img[valid] / norm[valid, None]
    unit2 = img2[valid] / norm2[valid, None]
    # 2 atan2(|u - v|, |u + v|) is the angle, and unlike arccos(u . v) it stays accurate near 0 degrees.
    angles = 2 * np.arctan2(np.linalg.norm(unit - unit2, axis=1), np.linalg.norm(unit + unit2, axis=1))
    return float(np.degrees(np.mean(angles)))


def calculate_ergas(img, img2, scale, crop_border=0):
    """ERGAS = 100/scale * sqrt(mean_b (RMSE_b / mean_b)^2), with the reference (img2) band means."""
    img, img2 = prepare_pair(img, img2, crop_border)
    band_rmse = np.sqrt(np.mean((img - img2) ** 2, axis=(0, 1)))
    band_mean = np.mean(img2, axis=(0, 1))
    with np.errstate(divide='ignore', invalid='ignore'):
        return float(100.0 / scale * np.sqrt(np.mean((band_rmse / band_mean) ** 2)))


def calculate_cc(img, img2, crop_border=0):
    """Mean over bands of the Pearson correlation coefficient (NaN for a constant band)."""
    img, img2 = prepare_pair(img, img2, crop_border)
    dev = img - img.mean(axis=(0, 1))
    dev2 = img2 - img2.mean(axis=(0, 1))
    with np.errstate(divide='ignore', invalid='ignore'):
        band_cc = (np.sum(dev * dev2, axis=(0, 1))
                   / np.sqrt(np.sum(dev ** 2, axis=(0, 1)) * np.sum(dev2 ** 2, axis=(0, 1))))
    return float(np.mean(band_cc))


# --------------------------------------------------------------------------------------------------------------
# Spectral indices
# --------------------------------------------------------------------------------------------------------------
def normalized_difference(a, b, eps=1e-6):
    """(a - b) / (a + b + eps); eps keeps all-zero pixels finite."""
    return (a - b) / (a + b + eps)


def index_bands(index_name, bands):
    """Positions of the two bands of a spectral index in a band-name list, e.g. ('NDVI', [..]) -> (nir, red)."""
    if index_name.upper() not in SPECTRAL_INDICES:
        raise UserError(f"unknown spectral index {index_name!r}; choose from {', '.join(SPECTRAL_INDICES)}")
    names = [str(name).lower() for name in bands]
    positions = []
    for needed in SPECTRAL_INDICES[index_name.upper()]:
        if needed not in names:
            raise UserError(f"{index_name.upper()} needs a {needed!r} band but the bands are {list(bands)}; "
                            f"name the bands so that {needed!r} is among them, or drop {index_name.upper()}")
        positions.append(names.index(needed))
    return tuple(positions)


def computable_indices(index_names, bands):
    """The indices among `index_names` whose bands are all named in `bands` (reported metrics skip the others:
    an RGB dataset has no NDVI)."""
    names = {str(name).lower() for name in bands or ()}
    return [i.upper() for i in index_names if set(SPECTRAL_INDICES.get(i.upper(), ("?",))) <= names]


def calculate_index_error(img, img2, index_name, bands, crop_border=0):
    """Mean absolute difference between the two images' maps of a spectral index (e.g. NDVI)."""
    img, img2 = prepare_pair(img, img2, crop_border)
    a, b = index_bands(index_name, bands)
    index_map = normalized_difference(img[..., a], img[..., b])
    index_map2 = normalized_difference(img2[..., a], img2[..., b])
    return float(np.mean(np.abs(index_map - index_map2)))


# --------------------------------------------------------------------------------------------------------------
# One CSV row
# --------------------------------------------------------------------------------------------------------------
def evaluate_pair(sr, hr, scale, crop_border, data_range=255, bands=None, indices=(), valid=None):
    """All metrics of one SR/HR pair as an ordered dict (one CSV row).

    Always psnr_chmean, psnr_rgb (pooled over all bands), ssim_rgb (mean band SSIM); psnr_y and ssim_y use MATLAB's
    Y for 3 bands and the band itself for 1 band, and are left out for other band counts (they do not apply). Images
    with more than 3 bands
    add sam, ergas, rmse, cc and psnr_b1, ssim_b1, ... (bands numbered from 1). Each name in `indices` adds
    '<index>_err' (lower case), which needs `bands` (the band names in order).

    `valid` (H, W): the pixels that count (None: all). The pixel metrics then pool over them alone, and SSIM averages
    the windows that hold only them (masked_band_ssim).
    """
    sr, hr = prepare_pair(sr, hr, crop_border)
    n_bands = sr.shape[2]
    if indices and (bands is None or len(bands) != n_bands):
        raise UserError(f"spectral-index errors ({', '.join(indices)}) need one name per band for the "
                        f"{n_bands}-band images, got bands={bands}")
    if valid is None:
        pixels = (sr, hr)
        band_ssim = per_band_ssim(sr, hr, 0, data_range)
    else:
        valid = crop_border_pixels(np.asarray(valid, dtype=bool), crop_border)
        pixels = valid_pixels_only(sr, hr, valid)
        band_ssim = masked_band_ssim(sr, hr, valid, data_range)
    band_psnr = per_band_psnr(*pixels, 0, data_range)
    row = OrderedDict()
    row['psnr_chmean'] = float(np.mean(band_psnr))
    row['psnr_rgb'] = calculate_psnr(*pixels, 0, data_range=data_range)
    if n_bands == 3:
        row['psnr_y'] = calculate_psnr(*pixels, 0, test_y_channel=True, data_range=data_range)
    elif n_bands == 1:
        row['psnr_y'] = band_psnr[0]
    row['ssim_rgb'] = float(np.mean(band_ssim))
    if n_bands == 3:
        row['ssim_y'] = luminance_ssim(sr, hr, valid, data_range)
    elif n_bands == 1:
        row['ssim_y'] = band_ssim[0]
    if n_bands > 3:
        row['sam'] = calculate_sam(*pixels)
        row['ergas'] = calculate_ergas(*pixels, scale)
        row['rmse'] = calculate_rmse(*pixels)
        row['cc'] = calculate_cc(*pixels)
        for b in range(n_bands):
            row[f'psnr_b{b + 1}'] = band_psnr[b]
            row[f'ssim_b{b + 1}'] = band_ssim[b]
    for index_name in indices:
        row[f'{index_name.lower()}_err'] = calculate_index_error(*pixels, index_name, bands)
    return row


def luminance_ssim(sr, hr, valid, data_range):
    """SSIM of MATLAB's Y of two RGB images, over the windows of `valid` pixels only (None: all)."""
    if valid is None:
        return calculate_ssim(sr, hr, 0, test_y_channel=True, data_range=data_range)
    return masked_band_ssim(rgb2ycbcr_y(sr, data_range), rgb2ycbcr_y(hr, data_range), valid, data_range)[0]


# --------------------------------------------------------------------------------------------------------------
# Over valid pixels, and shift-aware (scoring against a scene of another sensor)
# --------------------------------------------------------------------------------------------------------------
def valid_pixels_only(sr, hr, valid):
    """The pixels of `sr` and `hr` where `valid` (H, W) is True, each pair as an (N, 1, C) image: every metric that
    pools over pixels (all but SSIM) gives on them its value over the valid pixels."""
    return as_hwc_float(sr)[valid][:, None], as_hwc_float(hr)[valid][:, None]


def masked_psnr(sr, hr, valid, data_range=255):
    """(PSNR pooled over the bands, mean of the band PSNRs) over the pixels where `valid` (H, W) is True."""
    pixels = valid_pixels_only(sr, hr, valid)
    return calculate_psnr(*pixels, 0, data_range=data_range), float(np.mean(per_band_psnr(*pixels, 0, data_range)))


def whole_windows(valid):
    """Bool map of the SSIM windows (one per pixel of ssim_map's 'valid' region) that hold only `valid` pixels."""
    box = np.full(SSIM_WINDOW_SIZE, 1.0 / SSIM_WINDOW_SIZE)
    return filter_valid((~valid).astype(np.float64), box) < 1e-12  # no invalid pixel under the window


def masked_ssim(sr, hr, valid, data_range=255):
    """Mean band SSIM (MATLAB's windows) over the windows that hold only valid pixels; nan when none does."""
    return float(np.mean(masked_band_ssim(sr, hr, valid, data_range)))


def masked_band_ssim(sr, hr, valid, data_range=255):
    """Each band's SSIM (MATLAB's windows) over the windows that hold only valid pixels; nan when none does."""
    sr, hr = as_hwc_float(sr), as_hwc_float(hr)
    whole = whole_windows(valid)
    if not whole.any():
        return [float("nan")] * sr.shape[2]
    sr, hr = np.where(valid[..., None], sr, 0.0), np.where(valid[..., None], hr, 0.0)
    return [float(ssim_map(sr[..., b], hr[..., b], data_range)[whole].mean()) for b in range(sr.shape[2])]


def calculate_cpsnr(sr, hr, valid, max_shift, data_range=255):
    """PROBA-V's cPSNR: the best PSNR over whole-pixel shifts (dx, dy) within +-max_shift of the HR against the SR
    cropped by max_shift on each side, after removing the mean bias, over pixels valid in both. Returns (cPSNR,
    (dx, dy)): the SR at p matches the HR at p + (dx, dy) (x east, y south)."""
    sr, hr = as_hwc_float(sr), as_hwc_float(hr)
    k = max_shift
    height, width = sr.shape[0] - 2 * k, sr.shape[1] - 2 * k
    if height <= 0 or width <= 0:
        raise UserError(f"cPSNR with --max_shift {k} needs images larger than {2 * k}x{2 * k} pixels")
    core, core_valid = sr[k:k + height, k:k + width], valid[k:k + height, k:k + width]
    best = (-math.inf, (0, 0))
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            rows, cols = slice(k + dy, k + dy + height), slice(k + dx, k + dx + width)
            both = core_valid & valid[rows, cols]
            if not both.any():
                continue
            difference = hr[rows, cols][both] - core[both]
            value = psnr_from_mse(np.mean((difference - difference.mean()) ** 2), data_range)
            if value > best[0]:
                best = (value, (dx, dy))
    return best
