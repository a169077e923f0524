"""Writing GeoTIFF and Cloud-Optimized GeoTIFF (through rasterio and GDAL's COG driver), whole or window by window,
and the GDAL settings every write runs under.

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
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError  # what GDAL errors are raised as; no public name
from rasterio.enums import ColorInterp
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError
from rasterio.shutil import copy as gdal_copy
from rasterio.transform import Affine
from rasterio.windows import Window

from atomic import TEMP_MARK, atomic_target
from errors import OUTPUT_ADVICE, UserError
from image_files import TIFF_EXTENSIONS
from radiometry import as_hwc, to_dtype

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


def pixel_size(geo):
    """The (x, y) pixel size of a georeferenced image's `geo` in CRS units, or None without georeferencing."""
    transform = geo.get("transform") if geo else None
    if transform is None or transform == Affine.identity():
        return None  # GDAL's identity transform means "no georeferencing", not 1-unit pixels
    return (math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e))


def crs_unit(crs):
    """The CRS's linear unit name ("metre", "degree", ...), or None."""
    if crs is None:
        return None
    try:
        name = crs.units_factor[0]
    except CRSError:  # a CRS without a linear or angular unit (e.g. some engineering CRSs)
        return None
    return name if name and name != "unknown" else None


# Metres per degree on the WGS84 ellipsoid, to first order: along a parallel at latitude phi it is the equator's value
# times cos(phi); along a meridian it varies by 1 % between the equator and the poles, so its mean is used.
METRES_PER_DEGREE_EQUATOR = 111_320.0
METRES_PER_DEGREE_MERIDIAN = 111_132.0


def pixel_size_metres(geo, height, width):
    """The (x, y) pixel size in metres of a georeferenced image of `height` x `width` pixels: a projected CRS's size
    times its unit's length in metres; a geographic CRS's size in degrees converted at the image's centre latitude
    (the x size shrinks with cos(latitude)). None when the image is not georeferenced or its unit is neither."""
    size = pixel_size(geo)
    crs = geo.get("crs") if geo else None
    if size is None or crs is None:
        return None
    try:
        unit, factor = crs.units_factor
    except CRSError:
        return None
    if crs.is_projected and factor:
        return size[0] * factor, size[1] * factor
    if crs.is_geographic and unit == "degree":
        _, latitude = geo["transform"] @ (width / 2, height / 2)
        if not -90 <= latitude <= 90:
            return None
        return size[0] * METRES_PER_DEGREE_EQUATOR * math.cos(math.radians(latitude)), \
            size[1] * METRES_PER_DEGREE_MERIDIAN
    return None


def output_compression(geo):
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
    gsd = pixel_size(meta_geo)
    if gsd is None:
        return {}
    tags = {
        "RSSR_INPUT_GSD": " ".join(_number_text(v) for v in gsd),
        "RSSR_OUTPUT_GSD": " ".join(_number_text(v / scale) for v in gsd),
        "RSSR_SCALE": _number_text(scale),
    }
    unit = crs_unit(meta_geo.get("crs"))
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
def gdal_env(capture=None):
    """GDAL's settings for our writes, and its C-level messages held back: libtiff prints a full disk straight to
    stderr (`_tiffWriteProc: No space left on device.`) and GDAL then raises only "Write failed". Such a message
    becomes the OSError it names (so the one-line error gives the cause); after a block that succeeds the messages
    are shown (they were warnings). `capture`: a temporary file to hold them in, reused by a writer for all its
    windows (else one is made for the block)."""
    held = _Held()
    try:
        # No .aux.xml side files next to the temp name: everything must live inside the TIFF that gets renamed.
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), _held_c_stderr(held, capture):
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
def _held_c_stderr(held, capture=None):
    """Redirect file descriptor 2 to a temp file (`capture`, emptied first, else a new one) for the block; its text
    goes to `held.text`."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to hold
        yield
        return
    with contextlib.ExitStack() as stack:
        if capture is None:
            capture = stack.enter_context(tempfile.TemporaryFile())
        capture.seek(0)
        capture.truncate()
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
    with gdal_env(), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", **profile)
        try:
            _write_band_semantics(dst, geo, colours, scale)
        except BaseException:
            dst.close()
            raise
    return dst


def write_geotiff(path, array, geo, scale, compression):
    height, width, bands = array.shape
    tiled = height >= GEOTIFF_BLOCK and width >= GEOTIFF_BLOCK
    dst = _open_geotiff(path, height, width, bands, array.dtype, geo, scale, tiled, compression)
    with gdal_env(), dst:
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
    with gdal_env(), rasterio.Env(GDAL_CACHEMAX=COG_REWRITE_CACHE_BYTES), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        gdal_copy(source, target, driver="COG", **cog_options(dtype))


def _scratch_next_to(target):
    """A new hidden temp file in target's folder, for an intermediate that must never outlive the write."""
    # TEMP_MARK: a killed process's intermediate is removed at the folder's next use (atomic.remove_stale_temps)
    fd, name = tempfile.mkstemp(dir=Path(target).parent, prefix=f".{Path(target).name}{TEMP_MARK}", suffix=".part.tif")
    os.close(fd)
    return Path(name)


def write_cog(target, array, geo, scale):
    scratch = _scratch_next_to(target)
    try:
        write_geotiff(scratch, array, geo, scale, COG_INTERMEDIATE_COMPRESSION)
        _translate_to_cog(scratch, target, array.dtype)
    finally:
        scratch.unlink(missing_ok=True)


class AlignedRows:
    """Buffers image rows and hands them to a GeoTiffWindowWriter in whole TIFF block rows, so that every
    (compressed) block is written once, complete: never re-read, re-compressed or left waiting in GDAL's cache."""

    def __init__(self, writer, block_rows=GEOTIFF_BLOCK):
        self.writer, self.block_rows = writer, block_rows
        self.pending, self.row = [], 0  # rows not yet written, and the image row of the first of them

    def add(self, rows):
        self.pending.append(rows)
        held = sum(part.shape[0] for part in self.pending)
        ready = held - held % self.block_rows
        if ready:
            block = np.concatenate(self.pending, axis=0) if len(self.pending) > 1 else self.pending[0]
            self.writer.write(block[:ready], self.row, 0)
            self.pending = [block[ready:].copy()] if ready < held else []  # a copy frees the big block
            self.row += ready

    def flush(self):
        if self.pending:
            self.writer.write(np.concatenate(self.pending, axis=0), self.row, 0)
            self.row += sum(part.shape[0] for part in self.pending)
            self.pending = []


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
        self._capture = None  # one file holds GDAL's messages of every window (gdal_env)

    def __enter__(self):
        if self.path.suffix.lower() not in TIFF_EXTENSIONS:
            raise UserError(f"cannot write {self.path} window by window: use a .tif output")
        self._target = atomic_target(self.path)
        self._tmp = self._target.__enter__()
        self._capture = tempfile.TemporaryFile()
        height, width, bands = self.shape
        try:
            if self.cog:
                self._scratch = _scratch_next_to(self._tmp)
            destination = self._scratch or self._tmp
            compression = COG_INTERMEDIATE_COMPRESSION if self.cog else output_compression(self.geo)
            self._dataset = _open_geotiff(destination, height, width, bands, self.dtype, self.geo, self.scale,
                                          tiled=True, compression=compression)
        except BaseException as err:
            self._discard_scratch()
            self._capture.close()
            self._target.__exit__(type(err), err, None)
            raise
        return self

    def write(self, array_hwc, row, col):
        """Write `array_hwc` with its top-left pixel at (row, col); floats are rounded/saturated to the dtype."""
        array = as_hwc(array_hwc)
        height, width, bands = array.shape
        if bands != self.shape[2] or row < 0 or col < 0 or row + height > self.shape[0] or col + width > self.shape[1]:
            raise ValueError(f"window {array.shape} at ({row}, {col}) does not fit the output {self.shape}")
        if array.dtype != self.dtype:
            array = to_dtype(array, self.dtype)
        with gdal_env(self._capture):
            self._dataset.write(np.moveaxis(array, -1, 0), window=Window(col, row, width, height))

    def __exit__(self, exc_type, exc, tb):
        try:
            with gdal_env():
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
                self._capture.close()
        return False

    def _discard_scratch(self):
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)
