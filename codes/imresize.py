"""MATLAB's `imresize(img, scale, 'bicubic')` in pure numpy, and the OpenCV bicubic of the pre-upsampled networks.

A transcription of MATLAB's imresize.m for the bicubic method: the Keys cubic kernel (a = -0.5, width 4),
antialiasing when shrinking (the kernel is stretched by 1/scale), MATLAB's `contributions()` index computation
with symmetric (mirror) boundary handling, and the dimension with the smaller scale resized first.
SR benchmarks make their LR inputs and bicubic baselines with MATLAB, so the numbers only compare if we do the same.
Each axis is one sparse weight-matrix product, so a 2000x2000x4 image shrinks in well under a second.
"""
import math

import numpy as np

CUBIC_KERNEL_WIDTH = 4.0
KERNEL_REACH_LR = 2  # LR pixels on each side of its own that a downsampling bicubic kernel reaches (4 taps wide)


def cubic(x):
    """MATLAB's bicubic kernel (Keys, a = -0.5)."""
    absx = np.abs(x)
    absx2 = absx ** 2
    absx3 = absx ** 3
    return ((1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
            + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2)))


def contributions(in_length, out_length, scale, antialiasing=True):
    """MATLAB's `contributions()`: per output pixel, the weights and 0-based input indices it reads.

    Returns (weights, indices), both of shape (out_length, taps); the indices are already mirrored into range.
    """
    if scale < 1 and antialiasing:
        # Stretching the kernel by 1/scale low-pass filters before subsampling (antialiasing).
        def kernel(x):
            return scale * cubic(scale * x)
        kernel_width = CUBIC_KERNEL_WIDTH / scale
    else:
        kernel = cubic
        kernel_width = CUBIC_KERNEL_WIDTH
    # 1-based coordinates as in MATLAB, so that every floating-point operation is the same.
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre mapped into input coordinates
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps)
    weights = kernel(u[:, None] - indices)
    weights = weights / np.sum(weights, axis=1, keepdims=True)
    # Symmetric padding: 1..n, n..1 repeated, i.e. the edge pixel is duplicated.
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    used = np.any(weights != 0, axis=0)  # MATLAB drops taps that are zero for every output pixel
    return weights[:, used], indices[:, used]


def weight_matrix(weights, indices, in_length):
    """The (out_length, in_length) sparse matrix of one axis' resize; mirrored taps that hit one pixel are summed."""
    from scipy import sparse  # imported at the first resize: a part of a second that most starts do not need

    out_length, taps = weights.shape
    rows = np.repeat(np.arange(out_length), taps)
    return sparse.csr_matrix((weights.ravel(), (rows, indices.ravel())), shape=(out_length, in_length))


def resize_along_axis(img, axis, matrix, round_to=None):
    """Apply one axis' weight matrix to a float64 array.

    With `round_to` an integer dtype the result is rounded and saturated to it: MATLAB's imresizemex returns the
    class of its input, so on uint8/uint16 MATLAB rounds after each of the two passes, not only at the end.
    """
    moved = np.moveaxis(img, axis, 0)
    flat = np.ascontiguousarray(moved).reshape(moved.shape[0], -1)
    out = np.asarray(matrix @ flat).reshape((matrix.shape[0],) + moved.shape[1:])
    if round_to is not None:
        out = round_and_saturate(out, round_to).astype(np.float64)
    return np.moveaxis(out, 0, axis)


def round_and_saturate(values, dtype):
    """MATLAB's conversion to an integer class: saturate to the type's range, round half away from zero."""
    info = np.iinfo(dtype)
    magnitude = np.abs(np.clip(values, info.min, info.max))
    rounded = np.floor(magnitude)
    # Comparing the exact fraction avoids floor(x + 0.5), which rounds 0.49999999999999994 up.
    rounded += (magnitude - rounded) >= 0.5
    return np.copysign(rounded, values).astype(dtype)


def _scales_and_shape(in_shape, scale, output_shape):
    """MATLAB's rule: a scale gives ceil(scale * size); an output size gives the scale size_out / size_in."""
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale or output_shape")
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_shape = tuple(math.ceil(scale * n) for n in in_shape)
    else:
        out_shape = tuple(int(n) for n in output_shape)
        if len(out_shape) != 2 or min(out_shape) < 1:
            raise ValueError(f"imresize: output_shape must be two positive sizes, got {output_shape}")
        scales = tuple(o / n for o, n in zip(out_shape, in_shape))
    return scales, out_shape


def _resize(img, scale, output_shape, round_to):
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize: expected an (H, W) or (H, W, C) array, got shape {img.shape}")
    scales, out_shape = _scales_and_shape(img.shape[:2], scale, output_shape)
    out = img.astype(np.float64)
    # MATLAB sorts the scales (stably) and resizes the more-shrunk dimension first: less work, and it changes values.
    for axis in np.argsort(scales, kind="stable"):
        weights, indices = contributions(img.shape[axis], out_shape[axis], scales[axis])
        out = resize_along_axis(out, axis, weight_matrix(weights, indices, img.shape[axis]), round_to)
    return out


def imresize(img, scale=None, output_shape=None):
    """MATLAB `imresize(img, scale, 'bicubic')` on double data: float64 result, no rounding.

    img: (H, W) or (H, W, C) array of any dtype and any number of bands. Give either `scale` (output size
    ceil(scale * size)) or `output_shape` (H_out, W_out).
    """
    return _resize(img, scale, output_shape, round_to=None)


def imresize_keep_dtype(img, scale=None, output_shape=None):
    """imresize with MATLAB's class behaviour: integer input is rounded and saturated after each pass and returned
    in its dtype (MATLAB on uint8/uint16); float input is returned in its float dtype; anything else as float64."""
    img = np.asarray(img)
    if np.issubdtype(img.dtype, np.integer):
        return round_and_saturate(_resize(img, scale, output_shape, round_to=img.dtype), img.dtype)
    out_dtype = img.dtype if np.issubdtype(img.dtype, np.floating) else np.float64
    return _resize(img, scale, output_shape, round_to=None).astype(out_dtype)


def bicubic_downsample(img, scale):
    """MATLAB `imresize(img, 1/scale, 'bicubic')`: output ceil(H/scale) x ceil(W/scale) (mod-crop HR for exact)."""
    return imresize_keep_dtype(img, 1 / scale)


def bicubic_downsample_filled(img, scale, fill, fill_value):
    """bicubic_downsample of an image whose pixels where `fill` (H, W) is True are not data (they hold
    `fill_value`), with `fill_value` in every LR pixel whose kernel reaches one of them: their bicubic value mixes the
    fill in. The HR is mod-cropped to the scale first, as make_lr does."""
    img, fill = modcrop(img, scale), modcrop(fill, scale)
    lr = bicubic_downsample(img, scale)
    lr[lr_pixels_reached(fill, scale)] = fill_value
    return lr


def lr_pixels_reached(hr_mask, scale):
    """Bool (H / scale, W / scale): the LR pixels whose MATLAB bicubic kernel reaches a True pixel of `hr_mask`. At
    1/scale the kernel spans 4 x scale HR pixels, so it reaches the LR pixel's own block and 2 blocks on every side."""
    height, width = hr_mask.shape[0] // scale, hr_mask.shape[1] // scale
    blocks = hr_mask[:height * scale, :width * scale].reshape(height, scale, width, scale).any(axis=(1, 3))
    padded, reached = np.pad(blocks, KERNEL_REACH_LR), np.zeros_like(blocks)
    for dy in range(2 * KERNEL_REACH_LR + 1):
        for dx in range(2 * KERNEL_REACH_LR + 1):
            reached |= padded[dy:dy + height, dx:dx + width]
    return reached


def bicubic_upsample(img, scale):
    """MATLAB `imresize(img, scale, 'bicubic')`: the bicubic baseline SR, output H*scale x W*scale."""
    return imresize_keep_dtype(img, scale)


def opencv_bicubic_upsample(image_hwc, scale):
    """OpenCV's bicubic upsampling by an integer `scale`: the input of the pre-upsampled networks (SRCNN, VDSR, LGCNet).

    What the official HSENet/TransENet `--cubic_input` pipeline feeds them: `cv2.resize(..., INTER_CUBIC)` on the
    image in its own dtype (uint8, uint16 and float32 are kept; integers are rounded and saturated by OpenCV). It is
    not MATLAB's bicubic (OpenCV's kernel uses a = -0.75). Note: the official code passes `(H, W)` where OpenCV expects
    `(width, height)`, which only works for square images; here the size is (W * scale, H * scale), the same on square
    images and right on the others.

    image_hwc: (H, W, C) array, any number of bands; returns (H * scale, W * scale, C) in the input dtype (OpenCV
    drops a single trailing band, which is put back).
    """
    image = np.ascontiguousarray(image_hwc)
    if image.ndim != 3:
        raise ValueError(f"opencv_bicubic_upsample: expected an (H, W, C) array, got shape {image.shape}")
    height, width, bands = image.shape
    import cv2  # imported here: only the pre-upsampled networks use it

    out = cv2.resize(image, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)
    return out.reshape(height * scale, width * scale, bands)


def modcrop(img, scale):
    """Crop the bottom/right so that height and width are multiples of `scale` (the SR convention for HR)."""
    height, width = img.shape[0], img.shape[1]
    return img[: height - height % scale, : width - width % scale]
