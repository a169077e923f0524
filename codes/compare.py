"""Comparison figures for deploy's --compare HR_DIR: LR (nearest-upscaled) | bicubic | SR | HR, side by side.

One PNG per SR output, under <dir_out>/compare/ with the output's relative path. The panels are the same crop (the
centre, at most CROP HR pixels a side) of each image, shown pixel for pixel (small crops enlarged by an integer
nearest-neighbour factor). The captions give the PSNR of the bicubic baseline and of the SR against the HR, over the
whole image (crop_border = scale, the HR mod-cropped to the scale), computed with the project's metrics and MATLAB
bicubic. 8-bit images with up to 3 bands are shown as they are; others (16-bit, multispectral) show red/green/blue
when --bands names them, else the first 3 bands, each stretched between its 2nd and 98th percentile in the HR crop
(the same stretch on all four panels, so they compare).
"""
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import image_io
import imresize
import metrics
from errors import UserError

CROP = 256  # HR pixels per panel side, at most
MIN_PANEL = 192  # smaller crops are enlarged (nearest, integer factor) to at least this width
GAP = 8  # white pixels between panels
CAPTION = 40  # caption rows above the panels (two lines of text)
STRETCH_PERCENTILES = (2, 98)
RGB_NAMES = ("red", "green", "blue")


def write_figures(args, source, outputs, out_dir):
    """A figure per SR output whose HR is found in --compare; returns manifest records. Problems are notes."""
    hr_dir, figures = Path(args.compare), []
    for sr_path in outputs:
        rel = Path(sr_path).relative_to(out_dir)
        try:
            figures.append(write_figure(args, Path(source) / rel, Path(sr_path), hr_dir, rel, Path(out_dir)))
        except UserError as err:
            print(f"compare: no figure for {rel}: {err}", file=sys.stderr)
    print(f"compare: {len(figures)} figures in {Path(out_dir) / 'compare'}")
    return figures


def find_hr(hr_dir, rel):
    """The HR of `rel` in hr_dir: same relative path, else same name in hr_dir, with any image extension."""
    for folder in (hr_dir / rel.parent, hr_dir):
        found = image_io.find_image(folder, rel.stem, prefer=rel.suffix.lower())
        if found:
            return found
    raise UserError(f"no HR image {rel.stem}.<ext> in {hr_dir} (nor in {hr_dir / rel.parent})")


def write_figure(args, lr_path, sr_path, hr_dir, rel, out_dir):
    s = args.scale
    hr_path = find_hr(hr_dir, rel)
    lr, sr = image_io.read_image(lr_path), image_io.read_image(sr_path)
    hr = image_io.modcrop(image_io.read_image(hr_path), s)
    if hr.shape != sr.shape:
        raise UserError(f"{hr_path} is {hr.shape[1]}x{hr.shape[0]}x{hr.shape[2]} after mod-crop to x{s}, the SR is "
                        f"{sr.shape[1]}x{sr.shape[0]}x{sr.shape[2]}: give the HR images the LR were made from")
    # The BICUBIC model's definition: MATLAB imresize on the values as doubles, rounded once at the end.
    bicubic = image_io.to_dtype(imresize.imresize(lr.astype(np.float64), s), lr.dtype)
    data_range = args.data_range or image_io.dtype_max(hr.dtype)
    psnr_bicubic = metrics.calculate_psnr(bicubic, hr, crop_border=s, data_range=data_range)
    psnr_sr = metrics.calculate_psnr(sr, hr, crop_border=s, data_range=data_range)
    top, left, height, width = crop_box(hr.shape, s)
    window = (slice(top, top + height), slice(left, left + width))
    nearest = nearest_upscale(lr[top // s:(top + height) // s, left // s:(left + width) // s], s)
    panels = [nearest, bicubic[window], sr[window], hr[window]]
    captions = [("LR", f"nearest x{s}"), ("bicubic", f"PSNR {format_db(psnr_bicubic)}"),
                (f"SR {args.model}", f"PSNR {format_db(psnr_sr)}"), ("HR", "reference")]
    bands = display_bands(args.bands, hr.shape[2])
    limits = image_io.stretch_limits(hr[window][..., bands], STRETCH_PERCENTILES) if needs_stretch(hr) else None
    canvas = compose([to_display(p[..., bands], limits) for p in panels], captions)
    path = (out_dir / "compare" / rel).with_suffix(".png")
    image_io.write_image(path, canvas)
    return {"figure": path.relative_to(out_dir).as_posix(), "hr": str(hr_path.resolve()),
            "psnr_bicubic": finite_or_none(psnr_bicubic), "psnr_sr": finite_or_none(psnr_sr),
            "crop": [top, left, height, width]}


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
        rgb = image_io.stretch_to_uint8(image, *limits)
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
