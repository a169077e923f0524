"""MATLAB-bicubic imresize: hand-derived pixels, invariants, and a slow line-by-line transcription of imresize.m.

Hand derivation used below (MATLAB's contributions() for scale 1/2, antialiasing on):
  h(x) = 1/2 * cubic(x/2), kernel width 4 / (1/2) = 8, taps P = ceil(8) + 2 = 10.
  Output pixel x (1-based) has centre u = x/s + (1 - 1/s)/2 = 2x - 1/2 and left = floor(u - 4) = 2x - 5,
  so the tap distances u - ind are 4.5, 3.5, ..., -4.5. cubic(2.25) = 0 (MATLAB drops those two taps), and
    cubic(0.25) = 1.5/64 - 2.5/16 + 1            = 222/256
    cubic(0.75) = 1.5*27/64 - 2.5*9/16 + 1       =  58/256
    cubic(1.25) = -0.5*125/64 + 2.5*25/16 - 5 + 2 = -18/256
    cubic(1.75) = -0.5*343/64 + 2.5*49/16 - 7 + 2 =  -6/256
  Times 1/2 these are the weights [-3, -9, 29, 111, 111, 29, -9, -3] / 256 (they sum to exactly 1, so the
  normalisation changes nothing), applied to 0-based inputs 2j-3 .. 2j+4 for 0-based output j.
  Out-of-range inputs are mirrored with the edge pixel repeated (MATLAB's aux = [1:n, n:-1:1]): -1 -> 0, -2 -> 1,
  -3 -> 2 and n -> n-1, n+1 -> n-2.
All these numbers are dyadic with small numerators, so float64 computes them exactly and the tests assert equality.
"""
import math

import numpy as np
import pytest
import tifffile

import imresize as R

HALF_SCALE_WEIGHTS = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256
SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 4]


# ---------------------------------------------------------------------------------------------------------------
# An independent, deliberately slow transcription of MATLAB's imresize.m (bicubic), scalar Python loops only.
# ---------------------------------------------------------------------------------------------------------------
def slow_cubic(x):
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax ** 3 - 2.5 * ax ** 2 + 1
    if ax <= 2:
        return -0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2
    return 0.0


def slow_contributions(in_length, out_length, scale):
    """contributions() line by line: a list, per output pixel, of (weight, 0-based input index)."""
    kernel_width = 4.0
    if scale < 1:
        def h(x):
            return scale * slow_cubic(scale * x)
        kernel_width = kernel_width / scale
    else:
        h = slow_cubic
    aux = list(range(1, in_length + 1)) + list(range(in_length, 0, -1))
    rows = []
    for x in range(1, out_length + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - kernel_width / 2)
        taps = math.ceil(kernel_width) + 2
        weights = [h(u - (left + p)) for p in range(taps)]
        total = sum(weights)
        # Python's % with a positive divisor is MATLAB's mod.
        rows.append([(w / total, aux[(left + p - 1) % len(aux)] - 1) for p, w in enumerate(weights)])
    return rows


def slow_round(value, lo, hi):
    """MATLAB's cast to an integer class: round half away from zero, then saturate."""
    rounded = math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)
    return min(max(rounded, lo), hi)


def slow_matlab_imresize(img, scale=None, output_shape=None, integer_dtype=None):
    """imresize(img, scale, 'bicubic'); with integer_dtype, rounded+saturated after each pass like imresizemex."""
    img = np.asarray(img, dtype=np.float64)
    squeeze = img.ndim == 2
    data = (img[:, :, None] if squeeze else img).tolist()
    in_shape = [len(data), len(data[0])]
    bands = len(data[0][0])
    if scale is not None:
        scales = [scale, scale]
        out_shape = [math.ceil(scale * n) for n in in_shape]
    else:
        out_shape = list(output_shape)
        scales = [out_shape[0] / in_shape[0], out_shape[1] / in_shape[1]]
    for dim in sorted(range(2), key=lambda d: scales[d]):  # MATLAB: [~, order] = sort(scale), stable
        rows = slow_contributions(in_shape[dim], out_shape[dim], scales[dim])
        new_shape = list(in_shape)
        new_shape[dim] = out_shape[dim]
        out = [[[0.0] * bands for _ in range(new_shape[1])] for _ in range(new_shape[0])]
        for r in range(new_shape[0]):
            for c in range(new_shape[1]):
                for b in range(bands):
                    acc = 0.0
                    for w, i in rows[r if dim == 0 else c]:
                        acc += w * (data[i][c][b] if dim == 0 else data[r][i][b])
                    if integer_dtype is not None:
                        info = np.iinfo(integer_dtype)
                        acc = slow_round(acc, int(info.min), int(info.max))
                    out[r][c][b] = acc
        data, in_shape = out, new_shape
    result = np.array(data)
    result = result[:, :, 0] if squeeze else result
    return result.astype(integer_dtype) if integer_dtype is not None else result


# ---------------------------------------------------------------------------------------------------------------
# Hand-derived values
# ---------------------------------------------------------------------------------------------------------------
def test_half_scale_weights_and_mirrored_indices_are_matlabs():
    weights, indices = R.contributions(12, 6, 0.5)
    np.testing.assert_array_equal(weights, np.tile(HALF_SCALE_WEIGHTS, (6, 1)))
    assert indices[2].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]          # interior: 2j-3 .. 2j+4
    assert indices[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]          # -3,-2,-1 mirrored to 2,1,0
    assert indices[5].tolist() == [7, 8, 9, 10, 11, 11, 10, 9]      # 12,13,14 mirrored to 11,10,9


def test_interior_and_border_pixels_by_hand():
    """A[r, c] = g[r] + f[c]; each pass's weights sum to exactly 1, so out[i, j] = (W g)[i] + (W f)[j].

    f = 3 1 4 1 5 9 2 6 5 3 5 8 (12 columns), g = 2 7 1 8 2 8 1 8 2 8 (10 rows).
    (W f)[2] (interior, inputs f[1..8] = 1 4 1 5 9 2 6 5):
        (-3*1 - 9*4 + 29*1 + 111*5 + 111*9 + 29*2 - 9*6 - 3*5) / 256 = 1533/256
    (W f)[0] (border, inputs f[2,1,0,0,1,2,3,4] = 4 1 3 3 1 4 1 5):
        (-3*4 - 9*1 + 29*3 + 111*3 + 111*1 + 29*4 - 9*1 - 3*5) / 256 = 602/256
    (W g)[0] (border, inputs g[2,1,0,0,1,2,3,4] = 1 7 2 2 7 1 8 2):
        (-3*1 - 9*7 + 29*2 + 111*2 + 111*7 + 29*1 - 9*8 - 3*2) / 256 = 942/256
    (W g)[2] (interior, inputs g[1..8] = 7 1 8 2 8 1 8 2):
        (-3*7 - 9*1 + 29*8 + 111*2 + 111*8 + 29*1 - 9*8 - 3*2) / 256 = 1263/256
    (W g)[4] (border, inputs g[5,6,7,8,9,9,8,7] = 8 1 8 2 8 8 2 8):
        (-3*8 - 9*1 + 29*8 + 111*2 + 111*8 + 29*8 - 9*2 - 3*8) / 256 = 1499/256
    """
    f = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8])
    g = np.array([2, 7, 1, 8, 2, 8, 1, 8, 2, 8])
    out = R.imresize(g[:, None] + f[None, :], 0.5)
    assert out.shape == (5, 6)
    assert out[2, 2] == (1263 + 1533) / 256
    assert out[0, 0] == (942 + 602) / 256
    assert out[0, 2] == (942 + 1533) / 256
    assert out[4, 0] == (1499 + 602) / 256


def test_uint8_step_edge_rounds_and_saturates_by_hand():
    """Columns 0..5 are 0, 6..11 are 255. Output j reads inputs 2j-3..2j+4 with weights
    [-3 -9 29 111 111 29 -9 -3]/256, so it is 255/256 times the sum of the weights on inputs >= 6:
    j=1: input 6 only, -3                      -> -765/256  =  -2.988 -> saturates to 0
    j=2: inputs 6..8, 29-9-3 = 17              -> 4335/256  =  16.934 -> 17
    j=3: inputs 6..10, 111+111+29-9-3 = 239    -> 60945/256 = 238.066 -> 238
    j=4: inputs 6..12 (12 mirrors to 11), 259  -> 66045/256 = 257.988 -> saturates to 255
    """
    row = np.array([0] * 6 + [255] * 6, dtype=np.uint8)
    img = np.tile(row, (4, 1))
    expected_float = np.array([0, -765, 4335, 60945, 66045, 255 * 256]) / 256
    np.testing.assert_array_equal(R.imresize(img, 0.5), np.tile(expected_float, (2, 1)))
    small = R.bicubic_downsample(img, 2)
    assert small.dtype == np.uint8
    np.testing.assert_array_equal(small, np.tile([0, 0, 17, 238, 255, 255], (2, 1)))

    img16 = np.tile(np.array([0] * 6 + [65535] * 6, dtype=np.uint16), (4, 1))
    small16 = R.bicubic_downsample(img16, 2)
    assert small16.dtype == np.uint16
    # 65535 * [17, 239, 259] / 256 = 4351.93, 61183.07, 66302.99 -> 4352, 61183, saturated 65535
    np.testing.assert_array_equal(small16, np.tile([0, 0, 4352, 61183, 65535, 65535], (2, 1)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_rounds_half_away_from_zero_like_matlab(dtype):
    """One column of 128 at position 6: output j gets 128 * (its weight on input 6) / 256:
    j=1: -3 -> -1.5, j=2: 29 -> 14.5, j=3: 111 -> 55.5, j=4: -9 -> -4.5. MATLAB rounds 14.5 to 15 (numpy's
    round-half-to-even would give 14); on signed int16 with -128 it gives -15 and -56, and +1.5 -> 2, +4.5 -> 5."""
    sign = -1 if dtype == np.int16 else 1
    row = np.zeros(12, dtype=dtype)
    row[6] = sign * 128
    img = np.tile(row, (4, 1))
    np.testing.assert_array_equal(R.imresize(img, 0.5)[0], sign * np.array([0, -1.5, 14.5, 55.5, -4.5, 0]))
    expected = [0, 0, 15, 56, 0, 0] if sign > 0 else [0, 2, -15, -56, 5, 0]
    out = R.bicubic_downsample(img, 2)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[0], expected)
    # The largest double below 0.5 must round to 0 (floor(x + 0.5) would give 1).
    edge = R.round_and_saturate(np.array([0.49999999999999994, 2.5, -2.5, 1e6]), dtype)
    info = np.iinfo(dtype)
    np.testing.assert_array_equal(edge, [0, 3, max(-3, info.min), info.max])


def test_uint8_is_rounded_after_each_pass_like_imresizemex():
    """imresize.m calls imresizemex once per dimension and it returns its input's class, so uint8 is rounded
    twice. A[r, c] = g[r] + f[c] with g[3] = f[3] = 30 (else 0): output (2, 2) reads inputs 1..8 on each axis,
    where index 3 has weight 29/256, so (W g)[2] = (W f)[2] = 870/256 = 3.3984. Rounded once at the end:
    round(6.797) = 7; rounded after rows then columns: round(3 + 3.398) = 6."""
    g = np.zeros(12, dtype=np.uint8)
    g[3] = 30
    img = g[:, None] + g[None, :]
    assert round(R.imresize(img, 0.5)[2, 2]) == 7
    assert R.bicubic_downsample(img, 2)[2, 2] == 6


# ---------------------------------------------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
def test_constant_image_stays_constant(scale):
    img = np.full((13, 10, 2), 0.37)
    np.testing.assert_allclose(R.imresize(img, scale), 0.37, rtol=1e-13)
    as_uint8 = np.full((13, 10), 200, dtype=np.uint8)
    resized = R.bicubic_downsample(as_uint8, 1 / scale) if scale < 1 else R.bicubic_upsample(as_uint8, scale)
    assert resized.dtype == np.uint8 and np.all(resized == 200)


@pytest.mark.parametrize("scale", SCALES)
def test_linear_ramp_is_reproduced_in_the_interior(scale):
    """Keys' cubic reproduces linear functions; the antialiased taps are symmetric about the centre, so an
    interior output equals the ramp at its centre u0 = (j+1)/s + (1-1/s)/2 - 1 (0-based input coordinates).
    Interior: the kernel support (half-width 2/s when shrinking, else 2) stays inside the image."""
    rows, cols = (40, 37) if scale < 1 else (12, 11)
    r, c = np.mgrid[0:rows, 0:cols]
    out = R.imresize(3.0 * r + 2.0 * c + 5.0, scale)

    def centres_and_interior(n_in, n_out):
        centre = (np.arange(n_out) + 1) / scale + 0.5 * (1 - 1 / scale) - 1
        half_width = 2 / scale if scale < 1 else 2
        return centre, (centre - half_width >= 0) & (centre + half_width <= n_in - 1)

    row_centre, row_inside = centres_and_interior(rows, out.shape[0])
    col_centre, col_inside = centres_and_interior(cols, out.shape[1])
    assert row_inside.sum() >= 2 and col_inside.sum() >= 2
    expected = 3.0 * row_centre[:, None] + 2.0 * col_centre[None, :] + 5.0
    inside = row_inside[:, None] & col_inside[None, :]
    np.testing.assert_allclose(out[inside], expected[inside], rtol=0, atol=1e-10)
    # At the border the mirror bends the ramp: this must fail there, or the interior test above checks nothing.
    assert not np.allclose(out[~inside], expected[~inside], atol=1e-6)


def test_output_shape_follows_matlab_ceil():
    img = np.zeros((255, 101, 3))
    assert R.imresize(img, 1 / 2).shape == (128, 51, 3)
    assert R.imresize(img, 1 / 3).shape == (85, 34, 3)
    assert R.imresize(img, 1 / 4).shape == (64, 26, 3)
    assert R.bicubic_downsample(img[:, :, 0], 3).shape == (85, 34)
    assert R.bicubic_upsample(img, 3).shape == (765, 303, 3)
    assert R.imresize(img, output_shape=(50, 60)).shape == (50, 60, 3)


def test_multiband_equals_band_by_band():
    rng = np.random.default_rng(1)
    img = rng.random((31, 29, 7)) * 1000
    for scale in (1 / 3, 2):
        stacked = R.imresize(img, scale)
        by_band = np.stack([R.imresize(img[:, :, b], scale) for b in range(7)], axis=2)
        np.testing.assert_array_equal(stacked, by_band)
    img16 = rng.integers(0, 65536, (31, 29, 4), dtype=np.uint16)
    stacked = R.bicubic_downsample(img16, 4)
    np.testing.assert_array_equal(stacked, np.stack([R.bicubic_downsample(img16[:, :, b], 4) for b in range(4)], 2))


def test_float32_stays_float32_and_bad_arguments_are_refused():
    img = np.ones((8, 8, 3), dtype=np.float32)
    assert R.bicubic_downsample(img, 2).dtype == np.float32
    assert R.imresize(img, 0.5).dtype == np.float64
    with pytest.raises(ValueError):
        R.imresize(img, 0.5, output_shape=(4, 4))
    with pytest.raises(ValueError):
        R.imresize(img)
    with pytest.raises(ValueError):
        R.imresize(np.ones((2, 2, 2, 2)), 0.5)


# ---------------------------------------------------------------------------------------------------------------
# Against the slow transcription
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
def test_matches_slow_transcription_on_random_images(scale):
    rng = np.random.default_rng(round(scale * 12))
    shape = (23, 18, 2) if scale < 1 else (9, 7, 2)
    img = rng.random(shape) * 255
    np.testing.assert_allclose(R.imresize(img, scale), slow_matlab_imresize(img, scale), rtol=0, atol=1e-10)

    img8 = rng.integers(0, 256, shape, dtype=np.uint8)
    fast = R.bicubic_downsample(img8, round(1 / scale)) if scale < 1 else R.bicubic_upsample(img8, scale)
    np.testing.assert_array_equal(fast, slow_matlab_imresize(img8, scale, integer_dtype=np.uint8))


def test_unequal_scales_resize_the_smaller_scale_first():
    """Rows x0.5 and columns x1.5: MATLAB shrinks the rows first. With uint8 rounding between passes the order
    changes values, so the transcription (which sorts the scales) pins it."""
    rng = np.random.default_rng(7)
    img = rng.random((20, 14)) * 255
    np.testing.assert_allclose(R.imresize(img, output_shape=(10, 21)),
                               slow_matlab_imresize(img, output_shape=(10, 21)), rtol=0, atol=1e-10)
    img8 = rng.integers(0, 256, (20, 14), dtype=np.uint8)
    expected = slow_matlab_imresize(img8, output_shape=(10, 21), integer_dtype=np.uint8)
    fast = R.imresize_keep_dtype(img8, output_shape=(10, 21))
    np.testing.assert_array_equal(fast, expected)


def test_real_tile_matches_slow_transcription(shared_dir):
    tile = tifffile.imread(shared_dir / "data/ucmerced_dev/agricultural/agricultural00.tif")[:64, :64]
    assert tile.dtype == np.uint8 and tile.shape == (64, 64, 3)
    small = R.bicubic_downsample(tile, 4)
    np.testing.assert_array_equal(small, slow_matlab_imresize(tile, 1 / 4, integer_dtype=np.uint8))
    np.testing.assert_array_equal(R.bicubic_upsample(small, 4),
                                  slow_matlab_imresize(small, 4, integer_dtype=np.uint8))
    np.testing.assert_allclose(R.imresize(tile, 1 / 3), slow_matlab_imresize(tile, 1 / 3), rtol=0, atol=1e-10)
