"""Finding images: the extensions the toolbox reads, the images of a folder in a stable order, the file of a given
name (stem) whatever its extension, and the check that no two images of a folder share a stem (their outputs would
collide)."""
import os
from pathlib import Path

from errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
TIFF_EXTENSIONS = (".tif", ".tiff")  # read and written through rasterio (GDAL)


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
            raise UserError(f"{folder} holds two images named {path.stem!r} ({shown_in(other, folder)} and "
                            f"{shown_in(path, folder)}): images are matched by name, so keep one")
    return paths


def shown_in(path, folder):
    """`path` relative to `folder` where it lies inside it (sub-folders show), else as it is."""
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return str(path)


def find_image(folder, stem):
    """The image `<stem>.<ext>` in folder (any supported extension, either case), or None; two of one stem (a.png
    and a.tif) are check_unique_stems' one-line error naming both, since either could be meant."""
    found = {}
    for ext in IMAGE_EXTENSIONS:
        for candidate in (Path(folder) / f"{stem}{ext}", Path(folder) / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                identity = os.stat(candidate)
                found.setdefault((identity.st_dev, identity.st_ino), candidate)  # one file on a case-blind disk
    return next(iter(check_unique_stems(list(found.values()), folder)), None)
