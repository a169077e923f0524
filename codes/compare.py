"""Comparison figures for deploy's --compare HR_DIR: LR (nearest-upscaled) | bicubic | SR | HR, side by side.

One PNG per SR output, under <dir_out>/compare/ with the output's relative path. The panels are the same crop (the
centre, at most CROP HR pixels a side) of each image, shown pixel for pixel (small crops enlarged by an integer
nearest-neighbour factor). The captions give the PSNR (pooled over the bands: `psnr_rgb`, not the papers' channel
mean) of the bicubic baseline and of the SR against the HR, over the whole image (crop_border = scale, the HR
mod-cropped to the scale), computed with the project's metrics and MATLAB bicubic; for --model BICUBIC the SR panel
is the bicubic one and is shown once. 8-bit images with up to 3 bands are shown as they are; others (16-bit,
multispectral) show red/green/blue when --bands names them, else the first 3 bands, each stretched between its 2nd
and 98th percentile in the HR crop (the same stretch on all panels, so they compare).
"""
import math
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import image_files
import image_io
import imresize
import metrics
from errors import UserError
from radiometry import bicubic_baseline, to_dtype

CROP = 256  # HR pixels per panel side, at most
MIN_PANEL = 192  # smaller crops are enlarged (nearest, integer factor) to at least this width
GAP = 8  # white pixels between panels
CAPTION = 40  # caption rows above the panels (two lines of text)
STRETCH_PERCENTILES = (2, 98)
RGB_NAMES = ("red", "green", "blue")


def write_figures(cfg, source, records, out_dir, written):
    """A figure per deployed image (a manifest record) whose HR is found in --compare; returns manifest records.
    Problems are notes. `written` records the figures as the output folder's files (none replaces a foreign file)."""
    hr_dir, figures = Path(cfg.compare), []
    source, out_dir = Path(source), Path(out_dir)
    stems = Counter(Path(record["output"]).stem for record in records)
    for record in records:
        rel = Path(record["output"])
        lr_path = source if source.is_file() else source / record["input"]
        try:
            hr_path = find_hr(hr_dir, rel, unique_name=stems[rel.stem] == 1)
            figures.append(write_figure(cfg, lr_path, out_dir / rel, hr_path, rel, out_dir, record, written))
        except UserError as err:
            print(f"compare: no figure for {rel}: {err}", file=sys.stderr)
    print(f"compare: {len(figures)} figure{'' if len(figures) == 1 else 's'} in {Path(out_dir) / 'compare'}")
    return figures


def find_hr(hr_dir, rel, unique_name):
    """The HR of `rel` in hr_dir, with any image extension: at the same relative path, else (an input of a
    --recursive sub-folder whose name no other input has: `unique_name`) of the same name in hr_dir."""
    folders = [hr_dir / rel.parent] + ([hr_dir] if unique_name and rel.parent != Path(".") else [])
    for folder in folders:
        found = image_files.find_image(folder, rel.stem)
        if found:
            return found
    shared = "" if unique_name else f"; inputs of other folders share its name, so {hr_dir} itself is not searched"
    raise UserError(f"no HR image {rel.stem}.<ext> in {hr_dir / rel.parent}{shared}")


def write_figure(cfg, lr_path, sr_path, hr_path, rel, out_dir, record, written):
    s = cfg.scale
    lr, sr = image_io.read_image(lr_path), image_io.read_image(sr_path)
    hr = imresize.modcrop(image_io.read_image(hr_path), s)
    if hr.shape != sr.shape:
        raise UserError(f"{hr_path} is {hr.shape[1]}x{hr.shape[0]}x{hr.shape[2]} after mod-crop to x{s}, the SR is "
                        f"{sr.shape[1]}x{sr.shape[0]}x{sr.shape[2]}: give the HR images the LR were made from")
    data_range = record["radiometry"]["white"]  # the peak deploy used for this image
    comparison = Comparison(lr, sr, hr, s, data_range, cfg.model, cfg.bands)
    canvas = compose(comparison.panels, comparison.captions)
    figure = (Path("compare") / rel).with_suffix(".png")
    if os.path.lexists(out_dir / figure) and figure not in written:
        raise UserError(f"{out_dir / figure} exists and was not written by demo_deploy.py: move it away")
    written.add(figure)
    path = out_dir / figure
    image_io.write_image(path, canvas)
    return {"figure": path.relative_to(out_dir).as_posix(), "hr": str(hr_path.resolve()),
            "psnr_bicubic": finite_or_none(comparison.psnr_bicubic), "psnr_sr": finite_or_none(comparison.psnr_sr),
            "crop": list(comparison.box)}


class Comparison:
    """The panels of one comparison: LR (nearest) | bicubic | SR | HR central crops as uint8 RGB, their captions
    and the two PSNRs (whole image, crop_border = scale). Used by --compare figures and the run's summary.png."""

    def __init__(self, lr, sr, hr, scale, data_range, model, band_names):
        s = scale
        bicubic = bicubic_baseline(lr, s)
        self.psnr_bicubic = metrics.calculate_psnr(bicubic, hr, crop_border=s, data_range=data_range)
        self.psnr_sr = metrics.calculate_psnr(sr, hr, crop_border=s, data_range=data_range)
        self.box = top, left, height, width = crop_box(hr.shape, s)
        window = (slice(top, top + height), slice(left, left + width))
        nearest = nearest_upscale(lr[top // s:(top + height) // s, left // s:(left + width) // s], s)
        panels = [nearest, bicubic[window], sr[window], hr[window]]
        pooled = "pooled RGB" if hr.shape[2] == 3 else "pooled bands"  # calculate_psnr: one MSE over all bands
        self.captions = [("LR", f"nearest x{s}"), ("bicubic", f"PSNR {format_db(self.psnr_bicubic)} ({pooled})"),
                         (f"SR {model}", f"PSNR {format_db(self.psnr_sr)} ({pooled})"), ("HR", "reference")]
        if model == "BICUBIC":  # its SR is the bicubic panel: show it once
            del panels[2], self.captions[2]
        bands = display_bands(band_names, hr.shape[2])
        limits = stretch_limits(hr[window][..., bands], STRETCH_PERCENTILES) if needs_stretch(hr) else None
        self.panels = [to_display(p[..., bands], limits) for p in panels]


def format_db(value):
    return "inf dB" if math.isinf(value) else f"{value:.2f} dB"


def finite_or_none(value):
    return round(value, 4) if math.isfinite(value) else None  # JSON has no infinity


def crop_box(shape, scale):
    """(top, left, height, width) of the central crop, on the LR grid (multiples of the scale)."""
    height = min(shape[0], CROP) // scale * scale
    width = min(shape[1], CROP) // scale * scale
    top = (shape[0] - height) // 2 // scale * scale
    left = (shape[1] - width) // 2 // scale * scale
    return top, left, height, width


def nearest_upscale(image, factor):
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def display_bands(band_names, n_bands):
    """Indices of the bands to show: red, green, blue by name, else the first three, else the first one."""
    if band_names and all(name in band_names for name in RGB_NAMES):
        return [band_names.index(name) for name in RGB_NAMES]
    return [0, 1, 2] if n_bands >= 3 else [0]


def needs_stretch(image):
    return image.dtype != np.uint8 or image.shape[2] > 3


def to_display(image, limits):
    """(H, W, 1 or 3) -> uint8 RGB: stretched between `limits`, or as is (8-bit) when limits is None."""
    if limits is None:
        rgb = image.astype(np.uint8)
    else:
        rgb = stretch_to_uint8(image, *limits)
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb


def compose(panels, captions):
    """Panels side by side (enlarged to MIN_PANEL wide if small) under two-line captions, on white."""
    zoom = max(1, math.ceil(MIN_PANEL / panels[0].shape[1]))
    panels = [nearest_upscale(p, zoom) for p in panels]
    height, width = panels[0].shape[:2]
    canvas = np.full((CAPTION + height, len(panels) * width + (len(panels) - 1) * GAP, 3), 255, np.uint8)
    for k, panel in enumerate(panels):
        canvas[CAPTION:, k * (width + GAP):k * (width + GAP) + width] = panel
    image = Image.fromarray(canvas)
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=14)
    for k, (title, detail) in enumerate(captions):
        draw.text((k * (width + GAP) + 2, 2), title, fill=(0, 0, 0), font=font)
        draw.text((k * (width + GAP) + 2, 2 + CAPTION // 2), detail, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def stretch_limits(image, percentiles=(2, 98), valid=None):
    """Per-band (low, high) percentiles of an (H, W, C) image, over the `valid` (H, W) pixels when given."""
    pixels = image[valid] if valid is not None else image.reshape(-1, image.shape[2])
    low, high = np.percentile(pixels.astype(np.float64), percentiles, axis=0)
    return low, np.maximum(high, low + 1e-6)  # a flat band must not divide by zero


def stretch_to_uint8(image, low, high):
    """Linear per-band stretch of [low, high] onto 0..255, rounded half away from zero and saturated."""
    return to_dtype((image.astype(np.float64) - low) * (255.0 / (high - low)), np.uint8)
