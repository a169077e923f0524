"""The one place that reads and writes images: PNG/JPG/BMP, plain TIFF, GeoTIFF and Cloud-Optimized GeoTIFF.

Images are numpy arrays (H, W, C), always 3-D (C = bands, 1..N), in their native dtype (uint8, uint16, int16,
float32, ...). 3-band PNG/JPG are in R, G, B order. Every write is atomic: a temp file in the same folder, then
os.replace, so an interrupted run never leaves a half-written image under the final name.

GeoTIFF band semantics travel from reader to writer in ImageMeta.geo: CRS, transform, nodata, band descriptions,
colour interpretation, scale/offset (e.g. Sentinel-2 L2A and Landsat Collection-2 reflectance stored as scaled
integers), units, dataset and band tags. PHOTOMETRIC=RGB is used only for 3 bands read as red, green, blue; any other
GeoTIFF is MINISBLACK, each band keeping the input's colour interpretation, so no band becomes an alpha mask.

Resolution record: every georeferenced TIFF written here carries these dataset tags (numbers as text, x then y):
  RSSR_INPUT_GSD   pixel size (ground sample distance) of the input the meta was read from, in CRS units
  RSSR_OUTPUT_GSD  pixel size of this file: the input's divided by the scale
  RSSR_SCALE       that scale (4 for an x4 SR output, 0.25 for an image downsampled by 4)
  RSSR_GSD_UNIT    the CRS's linear unit ("metre"; "degree" for a geographic CRS), absent when unknown
e.g. RSSR_INPUT_GSD="30 30", RSSR_OUTPUT_GSD="7.5 7.5", RSSR_SCALE="4", RSSR_GSD_UNIT="metre".

cog=True (write_image, GeoTiffWindowWriter) writes a Cloud-Optimized GeoTIFF through GDAL's COG driver: 512x512
tiles, overviews, DEFLATE with predictor 2 (integers) or 3 (floats), BigTIFF when needed.
"""
import contextlib
import math
import os
import struct
import sys
import tempfile
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import rasterio
import tifffile
from PIL import Image
from rasterio._err import CPLE_BaseError  # what GDAL errors are raised as; no public name
from rasterio.enums import ColorInterp
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError
from rasterio.shutil import copy as gdal_copy
from rasterio.transform import Affine
from rasterio.windows import Window

from atomic import TEMP_MARK, atomic_target
from errors import OUTPUT_ADVICE, UserError, output_error
from radiometry import to_dtype

# The pixel budget is ours (check_pixel_budget, from the header, before any decode); Pillow's own bomb check would
# otherwise refuse large scenes below it with an exception of its own.
Image.MAX_IMAGE_PIXELS = None

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
EXIF_ORIENTATION = 0x0112
EXIF_QUARTER_TURNS = (5, 6, 7, 8)  # orientations that swap width and height
TIFF_EXTENSIONS = (".tif", ".tiff")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Compressions GDAL writes losslessly; a lossy source compression (JPEG, WEBP) becomes DEFLATE so pixels survive.
LOSSLESS_COMPRESSIONS = {"lzw", "deflate", "zstd", "packbits", "lzma"}
GEOTIFF_BLOCK = 256
COG_BLOCK = 512
# The COG intermediate is written once and read once: favour speed over size.
COG_INTERMEDIATE_COMPRESSION = {"compress": "zstd", "zstd_level": 1}
# GDAL block cache during the COG rewrite, which streams blocks: a larger cache only costs memory (measured on an
# 8000x8000x3 uint16 scene: 1 GiB of cache took the same time and 686 MiB of peak RSS instead of 245 MiB).
COG_REWRITE_CACHE_BYTES = 64 * 2**20
RGB_COLOURS = ("red", "green", "blue")
# What imageio/Pillow, tifffile and rasterio raise on a corrupt or unsupported file (Pillow's errors are OSErrors).
READ_ERRORS = (OSError, ValueError, SyntaxError, RuntimeError, KeyError, IndexError, RasterioError, zlib.error)


@dataclass(frozen=True)
class ImageMeta:
    """What a writer needs to reproduce an image's format: dtype, size and (for GeoTIFF) its georeferencing.

    `geo` is None for plain images, else a dict:
      crs, transform (affine.Affine), nodata, compress (lower-case GDAL name or None),
      descriptions, colorinterp (rasterio ColorInterp names: "red", "gray", "undefined", ...), scales, offsets,
      units: tuples with one entry per band (None where a description or unit is unset),
      tags (dict, the dataset's default-domain metadata), band_tags (tuple of dicts, one per band).
    `gsd` is the image's pixel size (x, y) in CRS units (None without georeferencing), `gsd_unit` that unit's name.
    """

    dtype: np.dtype
    bands: int
    height: int
    width: int
    geo: dict | None = None
    path: Path | None = None

    @property
    def nodata(self):
        return self.geo.get("nodata") if self.geo else None

    @property
    def gsd(self):
        """(x, y) pixel size in CRS units (ground sample distance), or None when not georeferenced."""
        return _gsd(self.geo)

    @property
    def gsd_unit(self):
        """The CRS's linear unit name ("metre", "degree", ...), or None."""
        return _crs_unit(self.geo.get("crs")) if self.geo else None


def _gsd(geo):
    transform = geo.get("transform") if geo else None
    if transform is None or transform == Affine.identity():
        return None  # GDAL's identity transform means "no georeferencing", not 1-unit pixels
    return (math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e))


def _crs_unit(crs):
    if crs is None:
        return None
    try:
        name = crs.units_factor[0]
    except CRSError:  # a CRS without a linear or angular unit (e.g. some engineering CRSs)
        return None
    return name if name and name != "unknown" else None


# ----------------------------------------------------------------------------------------------------------- listing
def is_image_file(path):
    """True for a visible file with a supported image extension (case-insensitive)."""
    path = Path(path)
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder, recursive=False):
    """Image paths in `folder`, sorted by relative path; hidden files and folders (our temp files, .git) are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist (or is not a folder): check the path")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    relative = [p.relative_to(folder) for p in candidates if is_image_file(p)]
    visible = [r for r in relative if not any(part.startswith(".") for part in r.parts)]
    return [folder / r for r in sorted(visible, key=lambda r: r.as_posix())]


def check_unique_stems(paths, folder):
    """Images are matched by name without extension: two files with one stem (x.png, x.tif) are ambiguous."""
    seen = {}
    for path in paths:
        other = seen.setdefault(path.stem, path)
        if other != path:
            raise UserError(f"{folder} holds two images named {path.stem!r} ({other.name} and {path.name}): images "
                            f"are matched by name, so keep one")
    return paths


def find_image(folder, stem, prefer=None):
    """The image `<stem>.<ext>` in folder (any supported extension, either case; `prefer` first), or None."""
    exts = [e for e in (prefer,) if e] + [e for e in IMAGE_EXTENSIONS if e != prefer]
    for ext in exts:
        for candidate in (Path(folder) / f"{stem}{ext}", Path(folder) / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


# ----------------------------------------------------------------------------------------------------------- pixels
def stretch_limits(image, percentiles=(2, 98), valid=None):
    """Per-band (low, high) percentiles of an (H, W, C) image, over the `valid` (H, W) pixels when given."""
    pixels = image[valid] if valid is not None else image.reshape(-1, image.shape[2])
    low, high = np.percentile(pixels.astype(np.float64), percentiles, axis=0)
    return low, np.maximum(high, low + 1e-6)  # a flat band must not divide by zero


def stretch_to_uint8(image, low, high):
    """Linear per-band stretch of [low, high] onto 0..255, rounded half away from zero and saturated."""
    return to_dtype((image.astype(np.float64) - low) * (255.0 / (high - low)), np.uint8)


def modcrop(img, scale):
    """Crop the bottom/right so that height and width are multiples of `scale` (the SR convention for HR)."""
    height, width = img.shape[0], img.shape[1]
    return img[: height - height % scale, : width - width % scale]


def _as_hwc(array):
    array = np.asarray(array)
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"expected an image array (H, W) or (H, W, C), got shape {array.shape}")
    return array


# ----------------------------------------------------------------------------------------------------------- reading
DEFAULT_MAX_PIXELS = 2**28  # the default of --max_pixels (option.py): a 16384 x 16384 scene


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Read an image as an (H, W, C) array in its native dtype; UserError naming the file if it cannot be read."""
    return read_image_with_meta(path, max_pixels)[0]


def _check_readable(path):
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UserError(f"cannot read {path}: unsupported extension (use one of {', '.join(IMAGE_EXTENSIONS)})")
    if not path.is_file():
        raise UserError(f"image {path} does not exist: check the path")
    return path


def image_header(path):
    """(height, width, bands, dtype) from the file's header, without decoding the pixels."""
    path = _check_readable(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_EXTENSIONS or (suffix == ".png" and _png_bit_depth(path) == 16):
            return _rasterio_header(path)
        with Image.open(path) as image:  # opening reads the header only
            width, height = image.size
            if header_orientation(path, image) in EXIF_QUARTER_TURNS:  # decoded upright, as a viewer shows it
                width, height = height, width
            bands = len(image.getbands())
            dtype = np.uint16 if image.mode.startswith("I;16") else np.uint8
            return height, width, bands, np.dtype(dtype)
    except UserError:
        raise
    except READ_ERRORS as err:
        raise UserError(f"cannot read image {path}: {_root_cause(err)} (is it a complete, valid image?)") from None


def header_orientation(path, image):
    """The EXIF orientation of an image opened by Pillow, without decoding it. Pillow's getexif() decodes a PNG whose
    eXIf chunk follows the pixel data, so a PNG's chunks are walked instead (a seek per chunk)."""
    if image.format != "PNG":
        return image.getexif().get(EXIF_ORIENTATION)
    data = image.info.get("exif") or _png_chunk_data(path, b"eXIf")
    if not data:
        return None
    exif = Image.Exif()
    exif.load(data)
    return exif.get(EXIF_ORIENTATION)


def _png_chunk_data(path, kind):
    """The data of the first `kind` chunk of a PNG, or None; reads chunk headers only."""
    with open(path, "rb") as f:
        f.seek(len(PNG_SIGNATURE))
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            length, chunk = int.from_bytes(head[:4], "big"), head[4:]
            if chunk == kind:
                return f.read(length)
            if chunk == b"IEND":
                return None
            f.seek(length + 4, os.SEEK_CUR)  # the data and its CRC


def _rasterio_header(path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return src.height, src.width, src.count, np.dtype(src.dtypes[0])
    except RasterioError:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            bands = page.samplesperpixel
            return page.imagelength, page.imagewidth, bands, np.dtype(page.dtype)


def check_pixel_budget(path, max_pixels):
    """Refuse, from the header, an image larger than `max_pixels` (a 74-byte PNG may declare 10^10 pixels)."""
    height, width, bands, dtype = image_header(path)
    if height * width > max_pixels:
        gigabytes = height * width * bands * dtype.itemsize / 2**30
        raise UserError(f"{path} declares {width}x{height} pixels ({height * width / 1e6:.0f} MP, {gigabytes:.1f} GB "
                        f"decoded), more than --max_pixels {max_pixels}: raise --max_pixels if it is a real image "
                        f"and memory allows, or cut it into smaller scenes")


def read_image_with_meta(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Read an image and its ImageMeta (georeferencing included for GeoTIFFs), after checking the pixel budget.
    JPEG/PNG EXIF orientation is applied (the pixels come out as a viewer shows them)."""
    path = _check_readable(path)
    suffix = path.suffix.lower()
    check_pixel_budget(path, max_pixels)
    try:
        if suffix in TIFF_EXTENSIONS:
            array, geo = _read_tiff(path)
        elif suffix == ".png" and _png_bit_depth(path) == 16:
            array, geo = _read_with_rasterio(path)[0], None  # Pillow truncates 16-bit RGB(A) PNGs to 8 bits
        else:
            array, geo = _as_hwc(iio.imread(path, plugin="pillow", rotate=True)), None
    except UserError:
        raise
    except READ_ERRORS as err:
        raise UserError(f"cannot read image {path}: {_root_cause(err)} (is it a complete, valid image?)") from None
    except MemoryError:
        raise UserError(f"{path}: out of memory decoding it; lower --max_pixels to skip such images, or cut the "
                        f"scene into smaller ones") from None
    if array.size == 0:
        raise UserError(f"image {path} is empty ({array.shape[0]}x{array.shape[1]} pixels)")
    height, width, bands = array.shape
    return array, ImageMeta(array.dtype, bands, height, width, geo, path)


def read_rows(path, first, last):
    """Rows first..last-1 of an image as (h, W, C): a window read for TIFFs (nothing else is decoded), the whole
    image sliced otherwise."""
    path = Path(path)
    if path.suffix.lower() in TIFF_EXTENSIONS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    window = Window(0, first, src.width, last - first)
                    return np.moveaxis(src.read(window=window), 0, -1)
        except RasterioError as err:
            raise UserError(f"cannot read image {path}: {_root_cause(err)}") from None
    return read_image(path)[first:last]


def _root_cause(err):
    """The innermost exception's first line: imageio wraps Pillow's precise message in a generic one."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(err).splitlines()[0].strip() if str(err).strip() else ""
    return text or type(err).__name__


def _png_bit_depth(path):
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE):
        raise UserError(f"cannot read image {path}: not a PNG file (bad signature)")
    return head[24]


def _read_tiff(path):
    """Read any TIFF through rasterio (GDAL reads LZW/JPEG/GeoTIFF); tifffile is the fallback for what GDAL refuses."""
    try:
        return _read_with_rasterio(path)
    except RasterioError:
        array = _as_hwc(tifffile.imread(path))
        return array, None


def _read_with_rasterio(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            array = np.moveaxis(src.read(), 0, -1)
            return array, _geo_from_dataset(src)


def _geo_from_dataset(src):
    """The georeferencing bits of an open dataset, or None when it carries no CRS, transform or nodata."""
    has_transform = src.transform != Affine.identity()
    if src.crs is None and not has_transform and src.nodata is None:
        return None
    compress = src.profile.get("compress")
    return {
        "crs": src.crs,
        "transform": src.transform,
        "nodata": src.nodata,
        "descriptions": tuple(src.descriptions),
        "compress": compress.lower() if compress else None,
        "colorinterp": tuple(colour.name for colour in src.colorinterp),
        "scales": tuple(src.scales),
        "offsets": tuple(src.offsets),
        "units": tuple(unit or None for unit in src.units),
        "tags": src.tags(),
        "band_tags": tuple(src.tags(index) for index in src.indexes),
    }


def nodata_mask(array, meta):
    """Bool (H, W), True where every band equals the nodata value; None when the image declares no nodata."""
    nodata = meta.nodata if meta is not None else None
    if nodata is None:
        return None
    array = _as_hwc(array)
    if isinstance(nodata, float) and math.isnan(nodata):
        return np.isnan(array).all(axis=2)
    return (array == nodata).all(axis=2)


def with_band_names(meta, names):
    """The meta with `names` as the band descriptions a georeferenced output gets (what QGIS and GDAL show instead
    of "Band 1..n"), when the input has none of its own and there is one name per band; else the meta as it is."""
    geo = meta.geo
    if geo is None or not names or len(names) != meta.bands or any(geo.get("descriptions") or ()):
        return meta
    return replace(meta, geo=dict(geo, descriptions=tuple(names)))


def window_meta(meta, row, col, height, width):
    """Meta of a (row, col, height, width) crop: same format, georeferencing shifted to the crop's corner."""
    geo = meta.geo
    if geo is not None:
        geo = dict(geo, transform=geo["transform"] @ Affine.translation(col, row))
    return replace(meta, height=height, width=width, geo=geo)


# ----------------------------------------------------------------------------------------------------------- writing
def write_image(path, array, meta=None, scale=1, cog=False):
    """Write an (H, W, C) array; the format follows the extension.

    PNG: uint8/uint16 with 1, 3 or 4 bands. JPG: uint8 with 1 or 3 bands (quality 95). BMP: uint8 1 or 3 bands.
    TIFF: any bands and dtype; a GeoTIFF when `meta.geo` is set, keeping CRS, nodata and the band semantics (see the
    module docstring), with the pixel size divided by `scale` and the same origin (so an SR output covers the input's
    footprint; give scale=1/s for an image downsampled by s). cog=True: a Cloud-Optimized GeoTIFF (.tif only).
    """
    path = Path(path)
    array = _as_hwc(array)
    suffix = path.suffix.lower()
    _check_writable(path, array, suffix)
    if cog and suffix not in TIFF_EXTENSIONS:
        raise UserError(f"cannot write {path} as a Cloud-Optimized GeoTIFF: use a .tif output")
    geo = meta.geo if meta is not None else None
    try:
        _write_atomically(path, suffix, array, geo, scale, cog)
    except OSError as err:  # permissions, a full disk, a file where a folder should be (RasterioIOError included)
        raise output_error(path, err) from None


def _write_atomically(path, suffix, array, geo, scale, cog):
    with atomic_target(path) as tmp:
        if suffix in TIFF_EXTENSIONS and cog:
            _write_cog(tmp, array, geo, scale)
        elif suffix in TIFF_EXTENSIONS and geo is not None:
            _write_geotiff(tmp, array, geo, scale, _output_compression(geo))
        elif suffix in TIFF_EXTENSIONS:
            _write_plain_tiff(tmp, array)
        elif suffix == ".png" and array.dtype == np.uint16:
            tmp.write_bytes(encode_png16(array))
        else:  # encoded in memory, then one plain write: a full disk is that write's OSError, not a Pillow teardown
            tmp.write_bytes(_encode_with_pillow(array, suffix))


def _encode_with_pillow(array, suffix):
    options = {".png": {"compress_level": 9}, ".jpg": {"quality": 95}, ".jpeg": {"quality": 95}}.get(suffix, {})
    return iio.imwrite("<bytes>", _squeeze_single_band(array), plugin="pillow", extension=suffix, **options)


def _check_writable(path, array, suffix):
    """UserError for combinations a format cannot hold (e.g. 7 bands to PNG), saying which format can."""
    bands, dtype = array.shape[2], array.dtype
    if suffix not in IMAGE_EXTENSIONS:
        raise UserError(f"cannot write {path}: unsupported extension (use one of {', '.join(IMAGE_EXTENSIONS)})")
    if suffix == ".png":
        allowed_bands, allowed_dtypes = (1, 3, 4), (np.uint8, np.uint16)
    elif suffix in (".jpg", ".jpeg", ".bmp"):
        allowed_bands, allowed_dtypes = (1, 3), (np.uint8,)
    else:
        return
    if bands not in allowed_bands or dtype not in [np.dtype(d) for d in allowed_dtypes]:
        kinds = "/".join(np.dtype(d).name for d in allowed_dtypes)
        bands_text = ", ".join(str(b) for b in allowed_bands)
        raise UserError(
            f"cannot write {path}: {suffix} holds {kinds} images with {bands_text} bands, this one is "
            f"{dtype.name} with {bands} bands; use a .tif output instead"
        )


def _squeeze_single_band(array):
    return array[:, :, 0] if array.shape[2] == 1 else array


def _write_plain_tiff(path, array):
    photometric = "rgb" if array.shape[2] == 3 and array.dtype in (np.uint8, np.uint16) else "minisblack"
    data = _squeeze_single_band(array)
    planar = "contig" if data.ndim == 3 else None
    # metadata=None: no tifffile JSON description, so the bytes depend on the pixels only (reproducible datasets)
    tifffile.imwrite(path, data, photometric=photometric, planarconfig=planar, compression="zlib", metadata=None)


def encode_png16(array):
    """Encode a uint16 (H, W, 1|3|4) array as PNG; Pillow cannot write 16-bit RGB(A), PNG itself is simple."""
    height, width, bands = array.shape
    color_type = {1: 0, 3: 2, 4: 6}[bands]
    raw = np.ascontiguousarray(array.astype(">u2")).view(np.uint8).reshape(height, width * bands * 2)
    # PNG filter "Up" (type 2) on every row: byte minus the byte above, a cheap predictor that shrinks smooth images
    filtered = raw.copy()
    filtered[1:] = raw[1:] - raw[:-1]
    rows = np.concatenate([np.full((height, 1), 2, np.uint8), filtered], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# ----------------------------------------------------------------------------------------------------------- GeoTIFF
def _output_compression(geo):
    """Profile options: the source's compression when lossless, DEFLATE for a lossy one (JPEG, WEBP) or a plain
    image, none for an uncompressed source."""
    source = "deflate" if geo is None else geo.get("compress")
    if not source:
        return {}
    return {"compress": source if source in LOSSLESS_COMPRESSIONS else "deflate"}


def _geotiff_profile(height, width, bands, dtype, geo, scale, tiled, compression, photometric):
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": bands,
        "dtype": np.dtype(dtype).name,
        "interleave": "pixel",
        "photometric": photometric,
    }
    if tiled:
        profile.update(tiled=True, blockxsize=GEOTIFF_BLOCK, blockysize=GEOTIFF_BLOCK, BIGTIFF="IF_SAFER")
    profile.update(compression)
    if geo is not None:
        profile["crs"] = geo.get("crs")
        profile["transform"] = geo["transform"] @ Affine.scale(1.0 / scale)  # same origin, pixels `scale`x smaller
        if _nodata_fits(geo.get("nodata"), dtype):
            profile["nodata"] = geo["nodata"]
    return profile


def _nodata_fits(nodata, dtype):
    """A nodata value the output dtype can hold (e.g. -9999 cannot mark a uint8 output: it is then dropped)."""
    if nodata is None:
        return False
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return True
    info = np.iinfo(dtype)
    return float(nodata).is_integer() and info.min <= nodata <= info.max


def _per_band(geo, key, bands):
    """geo[key] when it holds one entry per output band, else None: a band count change (e.g. RGB out of 4 bands)
    makes the source's per-band names, colours and scalings meaningless."""
    values = geo.get(key) if geo else None
    return tuple(values) if values is not None and len(values) == bands else None


def _colour_plan(bands, dtype, geo):
    """(PHOTOMETRIC, per-band colour names or None) of an output.

    The input's colours where known. A plain (non-georeferenced) 3-band uint8/uint16 image is RGB, the toolbox's
    convention for PNG/JPG and _write_plain_tiff. Everything else is MINISBLACK, which GDAL reads as grey (band 1)
    and undefined (the others): never GDAL's default for 4-band uint8, RGB plus an alpha band that would mask out
    every pixel whose 4th band (NIR) is 0. Palette colours need a colour table, which SR output has no use for.
    """
    known = _per_band(geo, "colorinterp", bands)
    if known is not None and "palette" not in known:
        colours = known
    elif geo is None and bands == 3 and np.dtype(dtype) in (np.uint8, np.uint16):
        colours = RGB_COLOURS
    else:
        colours = None
    return ("RGB" if colours == RGB_COLOURS else "MINISBLACK"), colours


def _number_text(value):
    """4.0 -> '4', 7.5 -> '7.5': the shortest text that reads back as the same float."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def resolution_tags(meta_geo, scale):
    """The RSSR_* dataset tags (see the module docstring) of an output written from `meta_geo` at `scale`."""
    gsd = _gsd(meta_geo)
    if gsd is None:
        return {}
    tags = {
        "RSSR_INPUT_GSD": " ".join(_number_text(v) for v in gsd),
        "RSSR_OUTPUT_GSD": " ".join(_number_text(v / scale) for v in gsd),
        "RSSR_SCALE": _number_text(scale),
    }
    unit = _crs_unit(meta_geo.get("crs"))
    if unit:
        tags["RSSR_GSD_UNIT"] = unit
    return tags


def _write_band_semantics(dst, geo, colours, scale):
    """Colours, names, scale/offset, units and tags of the input onto an open output (PAM off: all inside the TIFF)."""
    bands = dst.count
    if colours is not None:
        dst.colorinterp = [ColorInterp[name] for name in colours]
    if geo is None:
        return
    for index, text in enumerate(_per_band(geo, "descriptions", bands) or (), start=1):
        if text:
            dst.set_band_description(index, text)
    scales, offsets = _per_band(geo, "scales", bands), _per_band(geo, "offsets", bands)
    if scales is not None and any(value != 1 for value in scales):
        dst.scales = scales
    if offsets is not None and any(value != 0 for value in offsets):
        dst.offsets = offsets
    units = _per_band(geo, "units", bands)
    if units is not None and any(units):
        dst.units = tuple(unit or "" for unit in units)
    for index, tags in enumerate(_per_band(geo, "band_tags", bands) or (), start=1):
        # statistics describe the input's pixels: GDAL would show them as the output's own
        kept = {key: value for key, value in tags.items() if not key.startswith("STATISTICS_")}
        if kept:
            dst.update_tags(index, **kept)
    dataset_tags = {**dict(geo.get("tags") or {}), **resolution_tags(geo, scale)}
    if dataset_tags:
        dst.update_tags(**dataset_tags)


@contextlib.contextmanager
def _gdal_env():
    """GDAL's settings for our writes, and its C-level messages held back: libtiff prints a full disk straight to
    stderr (`_tiffWriteProc: No space left on device.`) and GDAL then raises only "Write failed". Such a message
    becomes the OSError it names (so the one-line error gives the cause); after a block that succeeds the messages
    are shown (they were warnings)."""
    held = _Held()
    try:
        # No .aux.xml side files next to the temp name: everything must live inside the TIFF that gets renamed.
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), _held_c_stderr(held):
            yield
    except (RasterioError, CPLE_BaseError) as err:
        code = _os_error_named_in(held.text)
        if code is not None:
            raise OSError(code, os.strerror(code)) from err
        raise
    code = _os_error_named_in(held.text)
    if code is not None:  # GDAL may close a file it could not finish without raising: the message is the only sign
        raise OSError(code, os.strerror(code))
    if held.text:
        sys.stderr.write(held.text)


def _os_error_named_in(text):
    return next((code for code in OUTPUT_ADVICE if os.strerror(code) in text), None)


class _Held:
    text = ""


@contextlib.contextmanager
def _held_c_stderr(held):
    """Redirect file descriptor 2 to a temp file for the block; its text goes to `held.text`."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to hold
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            held.text = capture.read().decode("utf-8", "replace")


def _open_geotiff(path, height, width, bands, dtype, geo, scale, tiled, compression):
    """A GTiff opened for writing, carrying the input's georeferencing and band semantics (pixels to be written)."""
    photometric, colours = _colour_plan(bands, dtype, geo)
    profile = _geotiff_profile(height, width, bands, dtype, geo, scale, tiled, compression, photometric)
    with _gdal_env(), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", **profile)
        try:
            _write_band_semantics(dst, geo, colours, scale)
        except BaseException:
            dst.close()
            raise
    return dst


def _write_geotiff(path, array, geo, scale, compression):
    height, width, bands = array.shape
    tiled = height >= GEOTIFF_BLOCK and width >= GEOTIFF_BLOCK
    dst = _open_geotiff(path, height, width, bands, array.dtype, geo, scale, tiled, compression)
    with _gdal_env(), dst:
        dst.write(np.moveaxis(array, -1, 0))


# ----------------------------------------------------------------------------------------------------------- COG
def cog_options(dtype):
    """GDAL COG driver creation options: 512 px tiles, DEFLATE with the predictor that suits the dtype (horizontal
    differencing for integers, floating-point for floats), overviews down to one tile, BigTIFF past 4 GB."""
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    return {
        "BLOCKSIZE": COG_BLOCK,
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "FLOATING_POINT" if floating else "STANDARD",
        "BIGTIFF": "IF_SAFER",
        "OVERVIEWS": "AUTO",
        # the mean of the covered pixels: no ringing or values outside the data's range, and nodata-aware
        "OVERVIEW_RESAMPLING": "AVERAGE",
    }


def _translate_to_cog(source, target, dtype):
    """Rewrite the finished GeoTIFF `source` as a COG at `target` (GDAL streams it: memory stays bounded by the cache
    and a few full-width rows of blocks, whatever the scene's height)."""
    with _gdal_env(), rasterio.Env(GDAL_CACHEMAX=COG_REWRITE_CACHE_BYTES), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        gdal_copy(source, target, driver="COG", **cog_options(dtype))


def _scratch_next_to(target):
    """A new hidden temp file in target's folder, for an intermediate that must never outlive the write."""
    # TEMP_MARK: a killed process's intermediate is removed at the folder's next use (atomic.remove_stale_temps)
    fd, name = tempfile.mkstemp(dir=Path(target).parent, prefix=f".{Path(target).name}{TEMP_MARK}", suffix=".part.tif")
    os.close(fd)
    return Path(name)


def _write_cog(target, array, geo, scale):
    scratch = _scratch_next_to(target)
    try:
        _write_geotiff(scratch, array, geo, scale, COG_INTERMEDIATE_COMPRESSION)
        _translate_to_cog(scratch, target, array.dtype)
    finally:
        scratch.unlink(missing_ok=True)


class GeoTiffWindowWriter:
    """Write a large (GeoT)IFF window by window: `with GeoTiffWindowWriter(...) as w: w.write(tile, row, col)`.

    Georeferenced (and band semantics kept) like write_image when `meta.geo` is set, a plain tiled TIFF otherwise.
    The file appears under its final name only when the block exits without an exception.

    cog=True makes it a Cloud-Optimized GeoTIFF: the windows go to a hidden intermediate tiled GeoTIFF next to the
    output (so memory stays bounded by the windows, never the scene), which GDAL's COG driver rewrites when the
    block exits; the intermediate is removed on success and on failure. Needs disk room for both files meanwhile.
    """

    def __init__(self, path, height, width, bands, dtype, meta=None, scale=1, cog=False):
        self.path = Path(path)
        self.shape = (int(height), int(width), int(bands))
        self.dtype = np.dtype(dtype)
        self.geo = meta.geo if meta is not None else None
        self.scale = scale
        self.cog = cog
        self._target = None
        self._tmp = None
        self._scratch = None
        self._dataset = None

    def __enter__(self):
        if self.path.suffix.lower() not in TIFF_EXTENSIONS:
            raise UserError(f"cannot write {self.path} window by window: use a .tif output")
        self._target = atomic_target(self.path)
        self._tmp = self._target.__enter__()
        height, width, bands = self.shape
        try:
            if self.cog:
                self._scratch = _scratch_next_to(self._tmp)
            destination = self._scratch or self._tmp
            compression = COG_INTERMEDIATE_COMPRESSION if self.cog else _output_compression(self.geo)
            self._dataset = _open_geotiff(destination, height, width, bands, self.dtype, self.geo, self.scale,
                                          tiled=True, compression=compression)
        except BaseException as err:
            self._discard_scratch()
            self._target.__exit__(type(err), err, None)
            raise
        return self

    def write(self, array_hwc, row, col):
        """Write `array_hwc` with its top-left pixel at (row, col); floats are rounded/saturated to the dtype."""
        array = _as_hwc(array_hwc)
        height, width, bands = array.shape
        if bands != self.shape[2] or row < 0 or col < 0 or row + height > self.shape[0] or col + width > self.shape[1]:
            raise ValueError(f"window {array.shape} at ({row}, {col}) does not fit the output {self.shape}")
        if array.dtype != self.dtype:
            array = to_dtype(array, self.dtype)
        with _gdal_env():
            self._dataset.write(np.moveaxis(array, -1, 0), window=Window(col, row, width, height))

    def __exit__(self, exc_type, exc, tb):
        try:
            with _gdal_env():
                self._dataset.close()  # flushes the last blocks
            if self.cog and exc_type is None:
                _translate_to_cog(self._scratch, self._tmp, self.dtype)
        except BaseException as err:
            if exc_type is None:
                exc_type, exc = type(err), err
            raise
        finally:
            try:
                self._target.__exit__(exc_type, exc, tb)  # first: a full disk is judged with both files on it
            finally:
                self._discard_scratch()
        return False

    def _discard_scratch(self):
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)
