"""Metrics against values derived by hand (derivations in the docstrings), skimage, and slow references."""
import math

import numpy as np
import pytest
import tifffile
from scipy import signal
from skimage.metrics import structural_similarity

import imresize
import metrics as M
from errors import UserError

SIGMA = 1.5


def fspecial_gaussian_11():
    """MATLAB fspecial('gaussian', 11, 1.5): exp(-(x^2 + y^2) / (2 sigma^2)) on x, y = -5..5, divided by its sum
    (no entry is below eps * max: the corner is exp(-50/4.5) = 1.5e-5 of the centre)."""
    x = np.arange(-5, 6, dtype=np.float64)
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * SIGMA ** 2))
    return window / window.sum()


def slow_ssim_index(band, band2, data_range):
    """ssim_index.m line by line with the 2-D window and filter2(window, x, 'valid') = correlate2d 'valid'."""
    window = fspecial_gaussian_11()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    band, band2 = np.asarray(band, np.float64), np.asarray(band2, np.float64)

    def filter2(x):
        return signal.correlate2d(x, window, mode='valid')

    mu1, mu2 = filter2(band), filter2(band2)
    sigma1_sq = filter2(band * band) - mu1 * mu1
    sigma2_sq = filter2(band2 * band2) - mu2 * mu2
    sigma12 = filter2(band * band2) - mu1 * mu2
    ssim = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim.mean()


def textured_pair(shape=(40, 36, 3), seed=0):
    """A smooth pattern plus noise, and a noisier, slightly darker copy (uint8-range floats)."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:shape[0], 0:shape[1]]
    base = 120 + 60 * np.sin(r / 5.0)[..., None] * np.cos(c / 7.0)[..., None] + rng.normal(0, 10, shape)
    return np.clip(base, 0, 255), np.clip(0.95 * base + rng.normal(0, 8, shape), 0, 255)


# ---------------------------------------------------------------------------------------------------------------
# PSNR
# ---------------------------------------------------------------------------------------------------------------
def test_psnr_of_images_differing_by_one():
    """MSE = 1, so PSNR = 10 log10(255^2) = 48.1308036086791 dB; at 16 bits 20 log10(65535) = 96.329466075305."""
    img = np.full((8, 8, 3), 100.0)
    assert abs(M.calculate_psnr(img + 1, img, 0) - 48.130803608679) < 1e-10
    assert abs(M.calculate_psnr_chmean(img + 1, img, 0) - 48.130803608679) < 1e-10
    assert abs(M.calculate_psnr(img + 1, img, 0, data_range=65535) - 96.329466075305) < 1e-10
    assert M.calculate_psnr(img, img, 0) == math.inf


def test_channel_mean_psnr_differs_from_pooled_psnr():
    """Channel errors 1, 2, 4 -> MSEs 1, 4, 16. Pooled: MSE 7 -> 48.1308 - 10 log10 7 = 39.6798 dB.
    Channel mean: 48.1308 - 10 log10(4) * (0 + 1 + 2) / 3 = 48.1308 - 6.0206 = 42.1102 dB."""
    ref = np.full((6, 6, 3), 50.0)
    out = ref + np.array([1.0, 2.0, 4.0])
    assert abs(M.calculate_psnr(out, ref, 0) - (48.1308036086791 - 10 * math.log10(7))) < 1e-10
    assert abs(M.calculate_psnr_chmean(out, ref, 0) - (48.1308036086791 - 10 * math.log10(4))) < 1e-10
    np.testing.assert_allclose(M.per_band_psnr(out, ref, 0), 48.1308036086791 - 10 * np.log10([1, 4, 16]),
                               rtol=0, atol=1e-10)


def test_y_channel_of_pure_colours():
    """Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1], in 8-bit units."""
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(M.rgb2ycbcr_y(pixels)[0], [81.481, 144.553, 40.966, 235.0, 16.0],
                               rtol=0, atol=1e-12)
    red16 = np.array([[[65535, 0, 0]]])
    assert abs(M.rgb2ycbcr_y(red16, data_range=65535)[0, 0] - 81.481 / 255 * 65535) < 1e-9


def test_y_psnr_uses_the_y_difference():
    """Adding 1 to red only changes Y by 65.481/255, so MSE_Y = (65.481/255)^2."""
    ref = np.full((5, 5, 3), 100.0)
    out = ref.copy()
    out[..., 0] += 1
    expected = 10 * math.log10(255 ** 2 / (65.481 / 255) ** 2)
    assert abs(M.calculate_psnr(out, ref, 0, test_y_channel=True) - expected) < 1e-9


def test_crop_border_ignores_the_border():
    ref = np.full((20, 20, 3), 80.0)
    out = ref.copy()
    out[:3, :, :] += 50   # damage only the top 3 rows
    assert M.calculate_psnr(out, ref, 3) == math.inf
    assert M.calculate_psnr(out, ref, 2) < 30
    big_ref = np.full((40, 40), 80.0)
    big_out = big_ref.copy()
    big_out[-4:, :] = 0
    assert M.calculate_ssim(big_out, big_ref, 4) == 1.0
    assert M.calculate_ssim(big_out, big_ref, 3) < 0.999  # one damaged row, seen by the windows' edge taps


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(UserError, match=r"\(8, 8, 3\) vs \(8, 9, 3\)"):
        M.calculate_psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)), 0)
    with pytest.raises(UserError, match="smaller crop_border"):
        M.calculate_psnr(np.zeros((8, 8)), np.zeros((8, 8)), 4)


# ---------------------------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------------------------
def test_gaussian_window_is_fspecial():
    np.testing.assert_allclose(M.gaussian_window(), fspecial_gaussian_11(), rtol=1e-15, atol=0)
    # The separable factor used for filtering reproduces the 2-D window to rounding.
    taps = M.gaussian_taps()
    np.testing.assert_allclose(np.outer(taps, taps), fspecial_gaussian_11(), rtol=1e-14, atol=0)
    # Centre value: 1 / (sum_x exp(-x^2 / 4.5))^2.
    one_d_sum = sum(math.exp(-x * x / 4.5) for x in range(-5, 6))
    assert abs(fspecial_gaussian_11()[5, 5] - 1 / one_d_sum ** 2) < 1e-16


def test_separable_filter_equals_filter2_valid():
    """filter2(w, x, 'valid') correlates with the 11x11 window: the output is (H-10) x (W-10)."""
    band = textured_pair((23, 31, 1))[0][..., 0]
    filtered = M.filter_valid(band, M.gaussian_taps())
    assert filtered.shape == (13, 21)
    np.testing.assert_allclose(filtered, signal.correlate2d(band, fspecial_gaussian_11(), mode='valid'),
                               rtol=1e-13, atol=0)
    assert M.ssim_map(band, band + 1).shape == (13, 21)


def test_ssim_of_identical_images_is_one():
    img = textured_pair()[0]
    assert abs(M.calculate_ssim(img, img, 0) - 1.0) < 1e-15


@pytest.mark.parametrize("mu1, mu2, data_range", [(100.0, 120.0, 255), (40.0, 200.0, 255), (3000.0, 2500.0, 10000)])
def test_ssim_of_constant_images(mu1, mu2, data_range):
    """Constant images have zero local variances and covariance, so SSIM = (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1)
    with C1 = (0.01 L)^2 (the contrast-structure factor is C2 / C2 = 1)."""
    c1 = (0.01 * data_range) ** 2
    expected = (2 * mu1 * mu2 + c1) / (mu1 ** 2 + mu2 ** 2 + c1)
    ssim = M.calculate_ssim(np.full((16, 16), mu1), np.full((16, 16), mu2), 0, data_range=data_range)
    assert abs(ssim - expected) < 1e-12


def test_ssim_of_a_ramp_and_its_scaled_copy():
    """x[r, c] = a + b c and y = k x. A symmetric window reproduces a linear function, so the local mean at valid
    column j (window centre c = j + 5) is mu = a + b (j + 5), and the local variance is constant:
    sigma_x^2 = b^2 m2 with m2 = sum_k g_k k^2 (g the normalised 1-D Gaussian; the 2-D window's marginal).
    With mu_y = k mu, sigma_y^2 = k^2 sigma_x^2, sigma_xy = k sigma_x^2:
      SSIM_j = (2 k mu^2 + C1)(2 k b^2 m2 + C2) / (((1 + k^2) mu^2 + C1)((1 + k^2) b^2 m2 + C2)),
    averaged over the 22 valid columns (all 6 valid rows are equal)."""
    a, b, k = 10.0, 2.0, 0.8
    x = a + b * np.tile(np.arange(32.0), (16, 1))
    offsets = np.arange(-5, 6)
    g = np.exp(-offsets ** 2 / (2 * SIGMA ** 2))
    m2 = np.sum(g / g.sum() * offsets ** 2)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu = a + b * (np.arange(22) + 5)
    var = b * b * m2
    per_column = (((2 * k * mu ** 2 + c1) * (2 * k * var + c2))
                  / (((1 + k * k) * mu ** 2 + c1) * ((1 + k * k) * var + c2)))
    assert abs(M.calculate_ssim(x, k * x, 0) - per_column.mean()) < 1e-10


def test_ssim_multiband_is_the_mean_of_band_ssims():
    img, img2 = textured_pair((30, 30, 4))
    bands = [M.calculate_ssim(img[..., i], img2[..., i], 0) for i in range(4)]
    assert abs(M.calculate_ssim(img, img2, 0) - np.mean(bands)) < 1e-15
    assert M.per_band_ssim(img, img2, 0) == pytest.approx(bands, abs=1e-15)
    assert len(set(np.round(bands, 8))) == 4  # the bands really differ, so the mean is not trivially one band


@pytest.mark.parametrize("data_range", [255, 1000])
def test_ssim_matches_skimage(data_range):
    """skimage (gaussian_weights, sigma 1.5 -> truncate 3.5 -> an 11-tap filter, population covariance) filters
    the whole image with 'reflect' padding, then averages its SSIM map cropped by (11-1)/2 = 5 pixels per side.
    That crop is exactly filter2's 'valid' region, where the padding never reaches, so the means agree."""
    img, img2 = textured_pair()
    img, img2 = img * data_range / 255, img2 * data_range / 255
    ours = M.calculate_ssim(img, img2, 0, data_range=data_range)
    theirs = structural_similarity(img, img2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=data_range, channel_axis=2)
    assert abs(ours - theirs) < 1e-12
    _, full_map = structural_similarity(img[..., 0], img2[..., 0], gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=data_range, full=True)
    np.testing.assert_allclose(M.ssim_map(img[..., 0], img2[..., 0], data_range), full_map[5:-5, 5:-5],
                               rtol=0, atol=1e-12)
    assert 0.3 < ours < 0.99


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(UserError, match="at least 11x11"):
        M.calculate_ssim(np.zeros((14, 14)), np.zeros((14, 14)), 2)


# ---------------------------------------------------------------------------------------------------------------
# Multispectral metrics and spectral indices
# ---------------------------------------------------------------------------------------------------------------
def test_sam_angles():
    """[1,0,0,0] vs [0,1,0,0]: 90 deg; vs [1,1,0,0]: 45 deg; vs [3,0,0,0]: 0 deg; pixels with a zero vector are
    skipped, so the mean over a pixel of each kind plus a zero pixel is (90 + 45 + 0) / 3 = 45."""
    e1 = np.array([1.0, 0, 0, 0])
    img = np.array([[e1, e1, e1, np.zeros(4)]])
    img2 = np.array([[[0.0, 1, 0, 0], [1.0, 1, 0, 0], [3.0, 0, 0, 0], [5.0, 5, 5, 5]]])
    assert M.calculate_sam(img[:, :1], img2[:, :1]) == 90.0
    assert abs(M.calculate_sam(img[:, 1:2], img2[:, 1:2]) - 45.0) < 1e-12
    assert M.calculate_sam(img[:, 2:3], img2[:, 2:3]) == 0.0
    assert abs(M.calculate_sam(img, img2) - 45.0) < 1e-12


def test_ergas_of_a_known_case():
    """Reference band means 100 and 50; SR offsets 10 and 10 -> RMSE/mean = 0.1 and 0.2.
    ERGAS = 100/4 * sqrt((0.01 + 0.04) / 2) = 25 * sqrt(0.025) = 3.952847075210474.
    (With the SR's own means, 110 and 60, it would be 25 * sqrt(((1/11)^2 + (1/6)^2) / 2) = 3.35: the reference
    choice matters.)"""
    ref = np.stack([np.full((6, 6), 100.0), np.full((6, 6), 50.0)], axis=2)
    assert abs(M.calculate_ergas(ref + 10, ref, 4) - 3.952847075210474) < 1e-12


def test_rmse_and_cc():
    ref, _ = textured_pair((20, 20, 4))
    assert abs(M.calculate_rmse(ref + 3, ref) - 3.0) < 1e-12
    assert abs(M.calculate_cc(2 * ref + 7, ref) - 1.0) < 1e-12
    flipped = ref.copy()
    flipped[..., 0] = -ref[..., 0]
    assert abs(M.calculate_cc(flipped, ref) - 0.5) < 1e-12   # bands: -1, 1, 1, 1


def test_spectral_index_bands_and_error():
    """NDVI = (nir - red) / (nir + red + eps). SR: nir 0.6, red 0.2 -> 0.4 / (0.8 + eps);
    HR: nir 0.5, red 0.3 -> 0.2 / (0.8 + eps); error 0.2 / (0.8 + 1e-6)."""
    bands = ['blue', 'green', 'red', 'nir']
    assert M.index_bands('NDVI', bands) == (3, 2)
    assert M.index_bands('ndwi', bands) == (1, 3)
    sr = np.tile(np.array([0.1, 0.15, 0.2, 0.6]), (4, 4, 1))
    hr = np.tile(np.array([0.1, 0.15, 0.3, 0.5]), (4, 4, 1))
    assert abs(M.calculate_index_error(sr, hr, 'NDVI', bands) - 0.2 / (0.8 + 1e-6)) < 1e-12
    assert M.calculate_index_error(sr, hr, 'NDWI', bands) > 0
    with pytest.raises(UserError, match="NDBI.*'swir1'"):
        M.index_bands('NDBI', bands)
    with pytest.raises(UserError, match="unknown spectral index 'EVI'"):
        M.index_bands('EVI', bands)


# ---------------------------------------------------------------------------------------------------------------
# evaluate_pair
# ---------------------------------------------------------------------------------------------------------------
def test_evaluate_pair_rgb_single_band_and_multiband():
    img, img2 = textured_pair((40, 40, 4))
    rgb = M.evaluate_pair(img[..., :3], img2[..., :3], scale=2, crop_border=2)
    assert list(rgb) == ['psnr_chmean', 'psnr_rgb', 'psnr_y', 'ssim_rgb', 'ssim_y']
    assert rgb['psnr_y'] == M.calculate_psnr(img[..., :3], img2[..., :3], 2, test_y_channel=True)
    assert rgb['ssim_rgb'] == M.calculate_ssim(img[..., :3], img2[..., :3], 2)

    single = M.evaluate_pair(img[..., 0], img2[..., 0], scale=2, crop_border=2)
    assert single['psnr_y'] == single['psnr_rgb'] == single['psnr_chmean']
    assert single['ssim_y'] == single['ssim_rgb']

    multi = M.evaluate_pair(img, img2, scale=2, crop_border=2, data_range=255,
                            bands=['blue', 'green', 'red', 'nir'], indices=('NDVI',))
    # the Y metrics do not apply to 4 bands: left out, not NaN
    assert list(multi)[:7] == ['psnr_chmean', 'psnr_rgb', 'ssim_rgb', 'sam', 'ergas', 'rmse', 'cc']
    assert multi['psnr_b4'] == M.per_band_psnr(img, img2, 2)[3]
    assert multi['ssim_b1'] == M.per_band_ssim(img, img2, 2)[0]
    assert multi['ergas'] == M.calculate_ergas(img, img2, 2, 2)
    assert multi['ndvi_err'] == M.calculate_index_error(img, img2, 'NDVI', ['blue', 'green', 'red', 'nir'], 2)
    assert list(multi)[-1] == 'ndvi_err' and 'psnr_b5' not in multi
    with pytest.raises(UserError, match="one name per band"):
        M.evaluate_pair(img, img2, 2, 2, indices=('NDVI',))


# ---------------------------------------------------------------------------------------------------------------
# Real pixels
# ---------------------------------------------------------------------------------------------------------------
def test_real_tile_bicubic_round_trip(shared_dir):
    """A UC Merced tile vs its MATLAB-bicubic x4 round trip (uint8 like the benchmark LR/baselines)."""
    hr = tifffile.imread(shared_dir / 'data/ucmerced_dev/agricultural/agricultural00.tif')
    assert hr.shape == (256, 256, 3) and hr.dtype == np.uint8
    sr = imresize.bicubic_upsample(imresize.bicubic_downsample(hr, 4), 4)
    row = M.evaluate_pair(sr, hr, scale=4, crop_border=4)
    assert all(math.isfinite(v) for v in row.values())
    assert 18 < row['psnr_rgb'] < 35 and 0.05 < row['ssim_rgb'] < 0.95
    # Y averages the channels' errors with weights summing to 219/255 < 1, so its PSNR is higher here.
    assert row['psnr_y'] > row['psnr_rgb']
    # By Jensen, the mean of per-channel log terms is at least the log of the mean MSE.
    assert row['psnr_chmean'] >= row['psnr_rgb']

    # Slow references: exact integer MSE, the Y formula per pixel, ssim_index with the 2-D window, skimage.
    hr_c, sr_c = hr[4:-4, 4:-4].astype(np.int64), sr[4:-4, 4:-4].astype(np.int64)
    squared_error = sum(int(d) * int(d) for d in (sr_c - hr_c).ravel().tolist())
    assert abs(row['psnr_rgb'] - 10 * math.log10(255 ** 2 * hr_c.size / squared_error)) < 1e-10

    def y_of(pixels):
        return np.array([[16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255 for r, g, b in line]
                         for line in pixels.tolist()])
    y_hr, y_sr = y_of(hr_c), y_of(sr_c)
    assert abs(row['psnr_y'] - 10 * math.log10(255 ** 2 / np.mean((y_sr - y_hr) ** 2))) < 1e-9
    assert abs(row['ssim_y'] - slow_ssim_index(y_sr, y_hr, 255)) < 1e-12
    slow_rgb = np.mean([slow_ssim_index(sr_c[..., b], hr_c[..., b], 255) for b in range(3)])
    assert abs(row['ssim_rgb'] - slow_rgb) < 1e-12
    skimage_rgb = structural_similarity(sr_c.astype(float), hr_c.astype(float), gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=255, channel_axis=2)
    assert abs(row['ssim_rgb'] - skimage_rgb) < 1e-12
