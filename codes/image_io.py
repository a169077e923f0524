"""The one place that reads and writes images: PNG/JPG/BMP, plain TIFF, GeoTIFF and Cloud-Optimized GeoTIFF.

Images are numpy arrays (H, W, C), always 3-D (C = bands, 1..N), in their native dtype (uint8, uint16, int16,
float32, ...). 3-band PNG/JPG are in R, G, B order. Every write is atomic: a temp file in the same folder, then
os.replace, so an interrupted run never leaves a half-written image under the final name.

GeoTIFF and COG writing (band semantics, the RSSR_* resolution tags, window-by-window writes) is geotiff.py's; PNG
at the byte level png16.py's; finding images image_files.py's. rasterio (GDAL), tifffile and geotiff.py are imported at
the first TIFF or 16-bit PNG read or write: loading GDAL is a part of a second that a start on PNG or JPEG images
does not need.
"""
import contextlib
import logging
import math
import sys
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

import budget
from atomic import atomic_target
from errors import UserError, output_error
from image_files import IMAGE_EXTENSIONS, TIFF_EXTENSIONS
from png16 import PNG_SIGNATURE, encode_png16, png_chunk_data
from radiometry import as_hwc, invalid_pixels

# The pixel budget is ours (check_pixel_budget, from the header, before any decode); Pillow's own bomb check would
# otherwise refuse large scenes below it with an exception of its own.
Image.MAX_IMAGE_PIXELS = None
# tifffile logs each tag it cannot parse in a damaged file, then raises; the raise is what the user gets, in one line
logging.getLogger("tifffile").setLevel(logging.CRITICAL)

EXIF_ORIENTATION = 0x0112
EXIF_QUARTER_TURNS = (5, 6, 7, 8)  # orientations that swap width and height
# What imageio/Pillow and tifffile raise on a corrupt or unsupported file (Pillow's errors are OSErrors); rasterio's
# RasterioError joins them once rasterio is imported (read_errors).
PLAIN_READ_ERRORS = (OSError, ValueError, SyntaxError, RuntimeError, KeyError, IndexError, zlib.error)


def read_errors():
    """What a failed read raises: rasterio's RasterioError too once rasterio is imported (nothing else raises it)."""
    errors = sys.modules.get("rasterio.errors")
    return PLAIN_READ_ERRORS + ((errors.RasterioError,) if errors else ())


def rasterio_error():
    from rasterio.errors import RasterioError

    return RasterioError


@contextlib.contextmanager
def opened_raster(path):
    """rasterio's dataset of `path`, open for reading, with GDAL's "not georeferenced" warning silenced (plain TIFFs
    and PNGs carry no georeferencing). It reads only what the user pointed to (raster_sources.py): the formats the
    toolbox reads, and a VRT only when its sources lie in its own folder."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    import raster_sources

    driver = raster_sources.checked_driver(path)
    with warnings.catch_warnings(), rasterio.Env(**raster_sources.GDAL_CONFIG):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, driver=driver) as src:
            yield src


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
        if not self.geo:
            return None
        import geotiff

        return geotiff.pixel_size(self.geo)

    @property
    def gsd_metres(self):
        """(x, y) pixel size in metres (a geographic CRS's degrees converted at the image's centre), or None."""
        if not self.geo:
            return None
        import geotiff

        return geotiff.pixel_size_metres(self.geo, self.height, self.width)

    @property
    def gsd_unit(self):
        """The CRS's linear unit name ("metre", "degree", ...), or None."""
        if not self.geo:
            return None
        import geotiff

        return geotiff.crs_unit(self.geo.get("crs"))


# ----------------------------------------------------------------------------------------------------------- pixels
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
    except read_errors() as err:
        raise UserError(f"cannot read image {path}: {_root_cause(err)} (is it a complete, valid image?)") from None


def header_orientation(path, image):
    """The EXIF orientation of an image opened by Pillow, without decoding it. Pillow's getexif() decodes a PNG whose
    eXIf chunk follows the pixel data, so a PNG's chunks are walked instead (a seek per chunk)."""
    if image.format != "PNG":
        return image.getexif().get(EXIF_ORIENTATION)
    data = image.info.get("exif") or png_chunk_data(path, b"eXIf")
    if not data:
        return None
    exif = Image.Exif()
    exif.load(data)
    return exif.get(EXIF_ORIENTATION)


# More bands than any sensor the toolbox meets (spaceborne hyperspectral imagers record 220 to 250): a header that
# declares more is refused before GDAL opens the file (opening parses every band's metadata: minutes for 65535).
MAX_BANDS = 256


def _tiff_band_count(path):
    """The band count the first image of a TIFF declares (its SamplesPerPixel, or for a planar multi-page file the
    page count), read with tifffile without decoding; None when tifffile cannot parse it (GDAL may)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            return max(page.samplesperpixel, len(tif.pages) if page.samplesperpixel == 1 else 1)
    except Exception:  # tifffile's errors come in many types; GDAL gets its own say next
        return None


def _rasterio_header(path):
    declared = _tiff_band_count(path) if path.suffix.lower() in TIFF_EXTENSIONS else None
    if declared is not None and declared > MAX_BANDS:
        raise UserError(f"{path} declares {declared} bands, more than the {MAX_BANDS} any sensor has: it is damaged "
                        f"or crafted; give another image")
    try:
        with opened_raster(path) as src:
            if src.count == 1 and src.colorinterp[0].name == "palette":
                return src.height, src.width, 3, np.dtype(np.uint8)  # read as RGB (_expanded_palette)
            return src.height, src.width, src.count, np.dtype(src.dtypes[0])
    except rasterio_error():
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            bands = page.samplesperpixel
            return page.imagelength, page.imagewidth, bands, np.dtype(page.dtype)


def check_pixel_budget(path, max_pixels):
    """Refuse, from the header, an image larger than `max_pixels` (a 74-byte PNG may declare 10^10 pixels)."""
    height, width, bands, dtype = image_header(path)
    if bands > MAX_BANDS:
        raise UserError(f"{path} declares {bands} bands, more than the {MAX_BANDS} any sensor has: it is damaged or "
                        f"crafted; give another image")
    if height * width > max_pixels:
        gigabytes = height * width * bands * dtype.itemsize / 2**30
        raise UserError(f"{path} declares {width}x{height} pixels ({height * width / 1e6:.0f} MP, {gigabytes:.1f} GB "
                        f"decoded), more than --max_pixels {max_pixels}: raise --max_pixels if it is a real image "
                        f"and memory allows, or cut it into smaller scenes")
    budget.check(height * width * bands * dtype.itemsize, f"{path} ({width}x{height} pixels, {bands} bands of "
                 f"{dtype.name}, declared in its header)", "cut it into smaller scenes, or lower --max_pixels to skip "
                 "such images")


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
            array, geo = as_hwc(iio.imread(path, plugin="pillow", rotate=True)), None
    except UserError:
        raise
    except read_errors() as err:
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
            with opened_raster(path) as src:
                from rasterio.windows import Window

                return np.moveaxis(src.read(window=Window(0, first, src.width, last - first)), 0, -1)
        except rasterio_error() as err:
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
    except rasterio_error() as gdal_error:
        import tifffile

        try:
            array = as_hwc(tifffile.imread(path))
        except ValueError as err:
            if "imagecodecs" not in str(err):
                raise
            raise gdal_error from None  # a compression only GDAL decodes: GDAL's reason (a truncated file) is the one
        return array, None


def _read_with_rasterio(path):
    with opened_raster(path) as src:
        array = np.moveaxis(src.read(), 0, -1)
        if src.count == 1 and src.colorinterp[0].name == "palette":  # indices into a colour table, not values
            return _expanded_palette(src, array), _geo_from_dataset(src, palette_expanded=True)
        return array, _geo_from_dataset(src)


def _expanded_palette(src, indices):
    """The RGB pixels of a palette image (its colour table applied): interpolating the indices would blend
    unrelated colours."""
    table = src.colormap(1)
    lut = np.zeros((max(table) + 1 if table else 1, 3), np.uint8)
    for index, colour in table.items():
        lut[index] = colour[:3]
    if indices.max(initial=0) >= len(lut):
        raise UserError(f"{src.name}: a pixel refers to colour {int(indices.max())}, beyond its colour table")
    return lut[indices[:, :, 0]]


def _geo_from_dataset(src, palette_expanded=False):
    """The georeferencing bits of an open dataset, or None when it carries no CRS, transform or nodata (for a palette
    image expanded to RGB: three bands of red, green, blue)."""
    from rasterio.transform import Affine

    has_transform = src.transform != Affine.identity()
    if src.crs is None and not has_transform and src.nodata is None:
        return None
    compress = src.profile.get("compress")
    geo = {
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
    if palette_expanded:  # the nodata index names no colour of the RGB bands
        geo.update(nodata=None, descriptions=(None,) * 3, colorinterp=("red", "green", "blue"), scales=(1.0,) * 3,
                   offsets=(0.0,) * 3, units=(None,) * 3, band_tags=({},) * 3)
    return geo


def nodata_mask(array, meta):
    """Bool (H, W), True where every band equals the nodata value; None when the image declares no nodata."""
    nodata = meta.nodata if meta is not None else None
    return None if nodata is None else fill_mask(array, nodata)


def fill_mask(array, value):
    """Bool (H, W), True where every band equals the fill value `value` (NaN: where every band is NaN)."""
    array = as_hwc(array)
    if isinstance(value, float) and math.isnan(value):
        return np.isnan(array).all(axis=2)
    return (array == value).all(axis=2)


def unusable_pixels(array, meta):
    """Bool (H, W), True at nodata pixels (nodata_mask) and at pixels with a NaN or Inf in any band."""
    unusable = invalid_pixels(array)
    nodata = nodata_mask(array, meta)
    return unusable if nodata is None else unusable | nodata


def with_band_names(meta, names):
    """The meta with `names` as the band descriptions a georeferenced output gets (what QGIS and GDAL show instead
    of "Band 1..n"), when the input has none of its own and there is one name per band; else the meta as it is."""
    geo = meta.geo
    if geo is None or not names or len(names) != meta.bands or any(geo.get("descriptions") or ()):
        return meta
    return replace(meta, geo=dict(geo, descriptions=tuple(names)))


def band_names(meta):
    """The image's band names (GeoTIFF band descriptions, lower case), or None unless every band has one."""
    names = [str(d).strip().lower() for d in ((meta.geo or {}).get("descriptions") or ()) if d]
    return names if len(names) == meta.bands else None


def select_bands(path, array, meta, wanted, names=None):
    """(array, meta) with the bands named `wanted`, in that order, taken by name from an image whose bands are named
    (`names` in file order, else the file's band descriptions): a 6-band scene gives an RGB model its red, green and
    blue. The image as it is when its bands have no names or are exactly `wanted`. A wanted band the image lacks is
    a one-line error naming it and the image's bands."""
    names = [str(n).lower() for n in names] if names and len(names) == meta.bands else band_names(meta)
    if not wanted or names is None or names == list(wanted):
        return array, meta
    missing = [band for band in wanted if band not in names]
    if missing:
        raise UserError(f"{path} has no band named {missing[0]} (its bands: {','.join(names)}); the model takes "
                        f"{','.join(wanted)}: give an image with those bands, or name its bands in the file")
    index = [names.index(band) for band in wanted]
    geo = {key: (tuple(value[i] for i in index) if isinstance(value, tuple) and len(value) == meta.bands else value)
           for key, value in (meta.geo or {}).items()} or None
    return array[:, :, index], replace(meta, bands=len(index), geo=geo)


def window_meta(meta, row, col, height, width):
    """Meta of a (row, col, height, width) crop: same format, georeferencing shifted to the crop's corner."""
    geo = meta.geo
    if geo is not None:
        from rasterio.transform import Affine

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
    array = as_hwc(array)
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
        if suffix in TIFF_EXTENSIONS and (cog or geo is not None):
            import geotiff

            if cog:
                geotiff.write_cog(tmp, array, geo, scale)
            else:
                geotiff.write_geotiff(tmp, array, geo, scale, geotiff.output_compression(geo))
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
    import tifffile

    # metadata=None: no tifffile JSON description, so the bytes depend on the pixels only (reproducible datasets)
    tifffile.imwrite(path, data, photometric=photometric, planarconfig=planar, compression="zlib", metadata=None)


