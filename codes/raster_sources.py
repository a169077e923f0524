"""Inputs stay where the user pointed: what GDAL may open when the toolbox reads a raster.

GDAL opens a file by its content, not its name: a `scene.tif` may be a VRT, an XML file whose bands read other files
(raw bytes of any file as pixels, a file in another folder, a URL through /vsicurl/). So before GDAL opens an input:
- GDAL may use only the driver of the format the file's first bytes show (driver_for), one the toolbox reads;
- a VRT may read only files inside its own folder (VRT mosaics there keep working), through no virtual file system
  or connection string, and never as raw bytes (VRTRawRasterBand) or through pixel functions (VRTDerivedRasterBand);
  a VRT among its sources is checked the same way;
- GDAL itself is configured to refuse raw-raster bands (GDAL_CONFIG), should a check ever miss one.
A refusal is one line naming the input and the source.
"""
import os
import re
from pathlib import Path

from errors import UserError

# The GDAL driver an input is opened with, by its first bytes: only the formats the toolbox reads (else GTiff, which
# then refuses what is not a TIFF).
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"))
GDAL_CONFIG = {"GDAL_VRT_ENABLE_RAWRASTERBAND": "NO", "GDAL_VRT_ENABLE_PYTHON": "NO"}
VRT_MARK = b"<VRTDataset"
HEAD_BYTES = 4096  # a VRT's root element is near its start (after an XML declaration and comments at most)
MAX_VRT_BYTES = 16 * 2**20  # a mosaic of thousands of sources is a few MB
MAX_VRT_DEPTH = 4  # VRTs of VRTs
SOURCE_TAGS = ("SourceFilename", "SourceDataset")  # every way a VRT names another raster (simple, complex, warped...)
UNSAFE_BANDS = ("VRTRawRasterBand", "VRTDerivedRasterBand")
WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def head(path):
    try:
        with open(path, "rb") as f:
            return f.read(HEAD_BYTES)
    except OSError:
        return b""  # the reader reports the unreadable file itself


def is_vrt(path):
    return VRT_MARK in head(path)


def driver_for(path):
    """The one GDAL driver that may open `path`: VRT, PNG, JPEG or BMP by their first bytes, else GTiff."""
    start = head(path)
    if VRT_MARK in start:
        return "VRT"
    return next((driver for signature, driver in SIGNATURES if start.startswith(signature)), "GTiff")


def checked_driver(path):
    """driver_for(path), after check_vrt when it is a VRT: what opened_raster may open `path` with."""
    driver = driver_for(path)
    if driver == "VRT":
        check_vrt(Path(path))
    return driver


def check_vrt(path, depth=0):
    """Refuse, in one line, the VRT at `path` when it reads anything but rasters inside its own folder (see the module
    docstring); a VRT among its sources is checked the same way."""
    if depth > MAX_VRT_DEPTH:
        raise UserError(f"{path}: VRTs nested more than {MAX_VRT_DEPTH} deep; flatten the mosaic")
    if os.path.getsize(path) > MAX_VRT_BYTES:
        raise UserError(f"{path} is a VRT of more than {MAX_VRT_BYTES // 2**20} MB: not one the toolbox reads")
    root = parsed(path)
    for band in root.iter("VRTRasterBand"):
        if band.get("subClass") in UNSAFE_BANDS:
            raise UserError(f"{path} is a VRT with a {band.get('subClass')}, which reads bytes or runs code instead of "
                            f"rasters: give the raster itself")
    folder = path.resolve().parent
    for element in root.iter():
        if element.tag not in SOURCE_TAGS:
            continue
        name = (element.text or "").strip()
        source = source_path(path, name, element.get("relativeToVRT") == "1")
        if not source.is_relative_to(folder):
            raise UserError(f"{path} is a VRT that reads {name}, outside its folder {folder}: the toolbox reads only "
                            f"the files you point it to; copy the source beside the VRT")
        if is_vrt(source):
            check_vrt(source, depth + 1)


def parsed(path):
    import xml.etree.ElementTree as ElementTree

    try:
        return ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as err:
        raise UserError(f"{path} looks like a VRT but is not valid XML ({err})") from None


def source_path(vrt, name, relative):
    """The resolved file a VRT source names; a virtual file system, a URL or a driver's connection string (GDAL's
    '/vsi...', 'http://', 'NETCDF:...') is refused."""
    if not name or name.startswith("/vsi") or ":" in (WINDOWS_DRIVE.sub("", name)):
        raise UserError(f"{vrt} is a VRT that reads {name or 'an unnamed source'}: not a file beside it (a virtual "
                        f"file system, a URL or a connection string); the toolbox reads local files only")
    return ((vrt.parent / name) if relative else Path(name)).resolve()
