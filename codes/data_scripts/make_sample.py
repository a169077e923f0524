"""Build the two small datasets embedded in the repo, from the public-domain scenes in ../shared/data/registry.

    python codes/data_scripts/make_sample.py [--registry DIR] [--dst datasets/] [--overwrite]

- Sample/:   RGB uint8 PNG, 120x120 HR tiles of the Landsat-8 scene (bands 4/3/2 as R,G,B, 2-98 % stretch);
             32 train, 4 val, 4 test.
- SampleMS/: 4-band (blue, green, red, nir) uint8 GeoTIFF, 96x96 HR tiles of rgbn.tif, georeferenced;
             14 train, 3 val, 3 test.
LR_x2/x3/x4 come from prepare_dataset.write_sample (the same code path as any prepared dataset). Deterministic:
running it twice writes byte-identical files. See datasets/README.md for the provenance.
"""
import random
import sys
from dataclasses import replace
from pathlib import Path

# codes/ (the project's modules import top-level) and this folder (prepare_dataset), also when imported by tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import stretch_limits, stretch_to_uint8
from data.dataset_json import write_dataset_metadata
from errors import OneLineParser, UserError, run_cli
from image_io import read_image_with_meta, window_meta
from paths import DATASETS_DIR, REPO_ROOT
from prepare_dataset import SPLIT_NAMES, write_sample

LANDSAT_SCENE = "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
MULTISPECTRAL_SCENE = "rgbn.tif"
SCALES = (2, 3, 4)
SEED = 0
LANDSAT_TILE = 120  # divisible by 2, 3 and 4
LANDSAT_SPLIT = (32, 4, 4)
LANDSAT_BGR_TO_RGB = [2, 1, 0]  # the scene's bands are 2/3/4 = blue, green, red
STRETCH_PERCENTILES = (2, 98)
MULTISPECTRAL_TILE = 96
MULTISPECTRAL_SPLIT = (14, 3, 3)
MULTISPECTRAL_BANDS = ["blue", "green", "red", "nir"]
LANDSAT_GSD_M = 30.0
MULTISPECTRAL_GSD_M = 5.0


def parse_args(argv):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--registry", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "registry",
                   help="folder holding the two source scenes (default ../shared/data/registry)")
    p.add_argument("--dst", type=Path, default=DATASETS_DIR, help="where Sample/ and SampleMS/ go (default datasets/)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of existing Sample/ and SampleMS/")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------------------- tiles
def tile_grid(height, width, tile):
    """Top-left corners of the non-overlapping tiles that fit the scene, row-major."""
    return [(r, c) for r in range(0, height - tile + 1, tile) for c in range(0, width - tile + 1, tile)]


def textured_tiles(image, valid, tile, count):
    """The `count` corners whose tiles hold only valid pixels and have the largest std dev (most texture)."""
    candidates = [(r, c) for r, c in tile_grid(*image.shape[:2], tile) if valid[r : r + tile, c : c + tile].all()]
    if len(candidates) < count:
        raise UserError(f"the scene has only {len(candidates)} fully valid {tile}x{tile} tiles, {count} needed")
    texture = [float(image[r : r + tile, c : c + tile].astype(np.float64).std()) for r, c in candidates]
    ranked = sorted(zip(texture, candidates), key=lambda item: (-item[0], item[1]))
    return sorted(corner for _, corner in ranked[:count])


def assign_splits(corners, counts, seed=SEED):
    """{split: corners}: a seeded shuffle cut into train/val/test by the fixed counts."""
    shuffled = list(corners)
    random.Random(seed).shuffle(shuffled)
    splits, start = {}, 0
    for name, count in zip(SPLIT_NAMES, counts):
        splits[name] = sorted(shuffled[start : start + count])
        start += count
    return splits


def write_tiles(image, meta, splits, tile, dst, prefix, ext):
    for split, corners in splits.items():
        for r, c in corners:
            hr = image[r : r + tile, c : c + tile]
            name = f"{prefix}_r{r:04d}_c{c:04d}"
            write_sample(dst / split, name, hr, window_meta(meta, r, c, tile, tile), SCALES, ext)


# ----------------------------------------------------------------------------------------------------------- datasets
def make_landsat_rgb(registry, dst):
    """Sample/: 8-bit RGB PNG tiles; tiles touching the scene's zero fill are skipped."""
    scene, meta = read_image_with_meta(registry / LANDSAT_SCENE)
    scene = scene[:, :, LANDSAT_BGR_TO_RGB]
    valid = (scene > 0).all(axis=2)  # Landsat fills outside the footprint with 0 (no nodata tag in this file)
    rgb = stretch_to_uint8(scene, *stretch_limits(scene, STRETCH_PERCENTILES, valid))
    corners = textured_tiles(rgb, valid, LANDSAT_TILE, sum(LANDSAT_SPLIT))
    png_meta = replace(meta, dtype=rgb.dtype, geo=None)  # PNG tiles: no georeferencing
    write_tiles(rgb, png_meta, assign_splits(corners, LANDSAT_SPLIT), LANDSAT_TILE, dst, "landsat", ".png")
    write_dataset_metadata(dst, bands=["red", "green", "blue"], gsd=LANDSAT_GSD_M,
                           description="Landsat-8 OLI bands 4/3/2 as 8-bit RGB (2-98 % stretch), 30 m HR tiles")


def make_multispectral(registry, dst):
    """SampleMS/: 4-band GeoTIFF tiles of rgbn.tif, each with its window's georeferencing."""
    image, meta = read_image_with_meta(registry / MULTISPECTRAL_SCENE)
    corners = tile_grid(*image.shape[:2], MULTISPECTRAL_TILE)
    if len(corners) < sum(MULTISPECTRAL_SPLIT):
        raise UserError(f"{registry / MULTISPECTRAL_SCENE} gives only {len(corners)} tiles of {MULTISPECTRAL_TILE} px")
    splits = assign_splits(corners[: sum(MULTISPECTRAL_SPLIT)], MULTISPECTRAL_SPLIT)
    write_tiles(image, meta, splits, MULTISPECTRAL_TILE, dst, "rgbn", ".tif")
    write_dataset_metadata(dst, bands=MULTISPECTRAL_BANDS, gsd=MULTISPECTRAL_GSD_M,
                           description="rgbn.tif (blue, green, red, NIR), uint8, 5 m HR tiles, georeferenced")


def check_sources(registry):
    for name in (LANDSAT_SCENE, MULTISPECTRAL_SCENE):
        if not (registry / name).is_file():
            raise UserError(f"--registry {registry}: {name} is missing (see datasets/README.md to re-obtain it)")


def check_targets(targets, overwrite):
    for target in targets:
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise UserError(f"{target} exists: add --overwrite to rebuild it (its files are replaced)")


def main(argv=None):
    args = parse_args(argv)
    check_sources(args.registry)
    sample, sample_ms = args.dst / "Sample", args.dst / "SampleMS"
    check_targets((sample, sample_ms), args.overwrite)
    make_landsat_rgb(args.registry, sample)
    make_multispectral(args.registry, sample_ms)
    print(f"wrote {sample} and {sample_ms}")
    return 0


if __name__ == "__main__":
    run_cli(main)
