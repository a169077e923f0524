"""Radiometry: how the values in the files map to the values a network sees, and back.

Three numbers decide it: the files' dtype, their white level (the file value of full white: `--data_range`, by
default the dtype's nominal peak) and the network's range (`--rgb_range`: full white is this value inside the net).

- In: file values x (net_range / white). Nothing is clipped, so reflectance above white (clouds, snow) and negative
  values of signed data reach the network as they are.
- Out: network values x (white / net_range), rounded half away from zero and saturated to what the output dtype can
  hold (0..255 for uint8, -32768..32767 for int16, nothing for floats), never clipped at the white level.
- Float files are expected in [0, 1]; other float data need `--data_range` (checked per image).
- NaN/Inf pixels (in any band) are invalid: deploy treats them as nodata, training refuses them.

One Radiometry is recorded in checkpoints and deploy manifests (`record()`), so deploy and the metric script use the
white level the model was trained and run with.
"""
from dataclasses import dataclass

import numpy as np
import torch

import imresize
from bounded import number_problem
from errors import UserError

# The white levels a file may have (--data_range, dataset.json, manifests): from float data scaled to tiny values up to
# 32-bit integers. The network's own range (--rgb_range) stays where float32 keeps every 16-bit level distinct.
FILE_WHITE_LEVELS = (1e-6, 2.0**32)
NETWORK_WHITE_LEVELS = (1e-3, 1e5)


def white_level_problem(value):
    """Why a white level read from a file (dataset.json, a manifest) is not one, or None."""
    return number_problem(value, FILE_WHITE_LEVELS)


def default_white(dtype):
    """Nominal peak of a dtype: 255 for uint8, 65535 for uint16, 32767 for int16, 1.0 for floats."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return 1.0
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    raise UserError(f"unsupported image dtype {dtype}: use 8/16-bit integer or float images")


def to_dtype(array, dtype):
    """Convert to `dtype`: integers are rounded half away from zero (not numpy's half-to-even) and saturated to the
    dtype's limits; float targets keep their values (no nominal range to clip to)."""
    dtype = np.dtype(dtype)
    array = np.asarray(array)
    if np.issubdtype(dtype, np.floating):
        return array.astype(dtype)
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(array, info.min, info.max).astype(dtype)
    return imresize.round_and_saturate(np.nan_to_num(array.astype(np.float64), nan=0.0), dtype)


def invalid_pixels(array):
    """Bool (H, W): pixels with a NaN or Inf in any band (always False for integer images)."""
    if not np.issubdtype(array.dtype, np.floating):
        return np.zeros(array.shape[:2], dtype=bool)
    return ~np.isfinite(array).all(axis=2)


@dataclass(frozen=True)
class Radiometry:
    dtype: np.dtype
    white: float
    net_range: float

    @classmethod
    def of(cls, dtype, data_range, rgb_range):
        """The radiometry of files of `dtype`: `data_range` (None: the dtype's default) and the network's range."""
        white = float(data_range) if data_range else default_white(dtype)
        return cls(np.dtype(dtype), white, float(rgb_range))

    @classmethod
    def from_record(cls, record, where):
        """The radiometry a file records (`record()`: a checkpoint's training data, a manifest's), validated like the
        flags it stands for; a one-line error naming `where` otherwise."""
        if not isinstance(record, dict):
            raise UserError(f"{where}: the recorded radiometry {record!r:.80} is not a record of dtype, white and "
                            f"net_range; use a file this toolbox wrote")
        dtype, problems = record.get("dtype"), []
        try:
            known = np.dtype(dtype) if isinstance(dtype, str) else None
        except TypeError:
            known = None
        if known is None or known.kind not in "uif":
            problems.append(f"dtype {dtype!r:.40} is not an image dtype")
        for key, limits in (("white", FILE_WHITE_LEVELS), ("net_range", NETWORK_WHITE_LEVELS)):
            problem = number_problem(record.get(key), limits)
            if problem:
                problems.append(f"{key} {problem}")
        if problems:
            raise UserError(f"{where}: the recorded radiometry is damaged ({'; '.join(problems)}); use a file this "
                            f"toolbox wrote, e.g. another checkpoint")
        return cls(known, float(record["white"]), float(record["net_range"]))

    def record(self):
        return {"dtype": self.dtype.name, "white": self.white, "net_range": self.net_range}

    def to_network(self, array, fill=None):
        """(H, W, C) file values -> (C, H, W) float32 tensor in network units (nothing clipped). `fill` (H, W): the
        pixels that are not data (nodata, NaN made finite); they take their band's mean over the other pixels, so
        that no fill value leaks into the valid pixels next to them through the network."""
        values = np.ascontiguousarray(np.asarray(array).transpose(2, 0, 1)).astype(np.float32)
        tensor = torch.from_numpy(values).mul_(self.net_range / self.white)
        if fill is not None and fill.any():
            valid = ~fill
            means = [float(band[valid].mean()) if valid.any() else 0.0 for band in tensor]
            tensor[:, torch.from_numpy(fill)] = torch.tensor(means, dtype=torch.float32)[:, None]
        return tensor

    def from_network(self, tensor):
        """(C, H, W) network output -> (H, W, C) array of the files' dtype (rounded, saturated to the dtype)."""
        values = (tensor.detach().float().cpu() * (self.white / self.net_range)).numpy().transpose(1, 2, 0)
        return to_dtype(values, self.dtype)

    def check_values(self, array, path, data_range_given, valid=None):
        """Float files must lie in [0, 1] unless --data_range says where white is (one-line error naming the file).
        `valid` (H, W) limits the check to valid pixels (nodata and NaN excluded)."""
        if data_range_given or not np.issubdtype(self.dtype, np.floating):
            return
        values = array[valid] if valid is not None else array[np.isfinite(array)]
        if values.size == 0:
            return
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            raise UserError(f"{path}: float values span [{low:g}, {high:g}], outside [0, 1]: pass --data_range "
                            f"with the file value of full white (e.g. --data_range 10000 for reflectance x 10000, "
                            f"--data_range 1 to keep values as they are)")


def bicubic_baseline(lr, scale, fill=None):
    """The BICUBIC model's output for an (H, W, C) LR array: MATLAB imresize on the values as doubles, rounded once
    to the LR's dtype. The baseline of the training curves and the comparison figures. `fill` (H, W): the pixels
    that are not data; they take their band's mean over the others first, as the network input does (to_network)."""
    values = np.asarray(lr, dtype=np.float64)
    if fill is not None and fill.any() and not fill.all():
        values = values.copy()
        values[fill] = values[~fill].mean(axis=0)
    return to_dtype(imresize.imresize(values, scale), np.asarray(lr).dtype)


def default_band_names(count):
    """The names of bands that no file, flag or record names: red, green, blue for 3 bands (the official networks and
    the shipped models are RGB), else b1..bN."""
    return ["red", "green", "blue"] if count == 3 else [f"b{k}" for k in range(1, count + 1)]


def as_hwc(array):
    """An image array as (H, W, C): a 2-D one gets one band."""
    array = np.asarray(array)
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"expected an image array (H, W) or (H, W, C), got shape {array.shape}")
    return array
