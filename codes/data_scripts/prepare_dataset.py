"""Split a folder of HR images into train/val/test and make their bicubic LR copies.

    python codes/data_scripts/prepare_dataset.py --src UCMerced_LandUse/Images --dst datasets/UCMerced \
        --protocol ucmerced                      # 45/5/50 per class: 945 / 105 / 1050
    python codes/data_scripts/prepare_dataset.py --src my_tiles --dst datasets/Mine --split 0.8,0.1,0.1 --seed 0
    python codes/data_scripts/prepare_dataset.py --src my_scene.tif --dst datasets/Mine --tile 192   # from scenes
    python codes/data_scripts/prepare_dataset.py --src sentinel2.tif --lr_src landsat8.tif --lr_mask l8_mask.tif \
        --scales 3 --tile 48 --dst datasets/L8S2        # cross-sensor pairs (data_scripts/scene_pairs.py)

Writes <dst>/<split>/HR/<name>.<ext> (HR as it is; loaders mod-crop it to the scale when they read it) and
<dst>/<split>/LR_x<s>/<name>.<ext> = MATLAB-bicubic downsample of the HR mod-cropped to a multiple of s.
Class subfolders of --src (e.g. UC Merced's Images/<class>/) make the split stratified: each class is split on
its own with the same fractions. GeoTIFFs stay georeferenced (LR pixel size multiplied by s). <dst>/dataset.json
records the band names, the HR ground sample distance and the dtype (data/dataset_json.py).

With --tile N, --src is a scene or a folder of scenes (any band count and dtype): each is cut into N x N HR tiles
named <scene>_r<row>_c<col>, tiles that hold a nodata or NaN/Inf pixel or are constant are skipped (and counted;
--min_valid keeps the tiles that are partly nodata, and training masks it: docs/training.md),
and each scene's tiles are split by --split on their own, as a class's images are. Band names come from --bands,
else the scene's band descriptions, else red,green,blue for 3 bands, else b1..bN.
"""
import math
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # codes/: the project's modules import top-level
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scene_pairs, also when imported as data_scripts.<name>
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split

import numpy as np  # noqa: E402

import atomic  # noqa: E402
import runs  # noqa: E402
from data.dataset_json import DATASET_METADATA, PREPARING_MARK, read_dataset_metadata, write_dataset_metadata
from errors import OneLineParser, UserError, run_cli
from image_files import IMAGE_EXTENSIONS, TIFF_EXTENSIONS, list_images
from image_io import (
    nodata_mask,
    read_image_with_meta,
    window_meta,
    with_band_names,
    write_image,
)
from imresize import bicubic_downsample, bicubic_downsample_filled, lr_pixels_reached, modcrop
from option import correlation, positive_float
from pairing import HARMONIZE_MODES
from progress import Counter, counts_text
from radiometry import default_band_names, invalid_pixels
from scene_pairs import DEFAULT_SPLIT_BLOCK, check_lr_flags, prepare_pairs

SPLIT_NAMES = ("train", "val", "test")
DATASET_MARKS = (DATASET_METADATA, PREPARING_MARK)  # what a folder this script prepared (or began to) holds
# Everything a preparation writes at the top of --dst (pairing/: the cross-sensor pair reports)
DATASET_ENTRIES = (*SPLIT_NAMES, *DATASET_MARKS, "pairing")
DEFAULT_SPLIT = "0.8,0.1,0.1"
# Published splits, per class. UC Merced: 45 train / 5 val / 50 test images of each of the 21 classes, i.e. 945 / 105
# / 1050 (the HSENet and TransENet protocol; the authors confirmed it in github.com/Shaosifan/TransENet issue #14).
PROTOCOLS = {"ucmerced": "0.45,0.05,0.5"}
# What each protocol's source holds when it is complete: (classes, images per class). Public mirrors of UC Merced often
# hold fewer classes (e.g. 16 of the 21), which changes the test set and so every score on it.
PROTOCOL_SOURCES = {"ucmerced": (21, 100)}


def parse_args(argv):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", required=True, type=Path, help="folder of HR images (class subfolders allowed)")
    p.add_argument("--dst", required=True, type=Path, help="output dataset folder")
    p.add_argument("--scales", default="2,3,4", help="comma-separated integer scales (default 2,3,4)")
    p.add_argument("--split", default=None,
                   help="train,val,test fractions summing to 1, per class (default 0.8,0.1,0.1, or the --protocol's)")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default=None,
                   help="a published split: ucmerced = 45/5/50 %% per class (945/105/1050 on UC Merced, as the "
                        "HSENet/TransENet authors confirmed in TransENet issue #14)")
    p.add_argument("--bands", default=None, help="band names in file order for dataset.json, e.g. blue,green,red,nir "
                   "(default: red,green,blue for 3-band images)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-class shuffle (default 0)")
    p.add_argument("--ext", default=None,
                   help="output format: png, tif, ... (default: each source's own extension; "
                        "give png for JPG sources so the LR are not JPEG-compressed again)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --dst, replacing its files")
    p.add_argument("--tile", type=int, default=None,
                   help="cut each source scene into N x N HR tiles (--src may then be one scene file)")
    p.add_argument("--min_valid", type=float, default=1.0,
                   help="with --tile: the least share of a tile's pixels that must be data (not the scene's nodata) "
                        "for it to be kept (default 1: only whole tiles); below 1, tiles with some nodata are kept, "
                        "dataset.json records the nodata value, and training leaves those pixels out of every loss "
                        "term and validation metric")
    pairs = p.add_argument_group("cross-sensor pairs (--lr_src): the LR comes from a second sensor's scenes, not from "
                                 "a bicubic downsample; see docs/datasets.md")
    pairs.add_argument("--lr_src", type=Path, default=None,
                       help="LR scene or folder of scenes of another sensor, warped onto the --src (HR) grid")
    pairs.add_argument("--lr_bands", default=None, help="band names of the LR scenes in file order (default: their "
                       "band descriptions, else their folder's dataset.json); bands are matched to --src's by name")
    pairs.add_argument("--lr_mask", type=Path, nargs="+", default=None,
                       help="mask rasters of the LR scenes (nonzero = cloud, shadow, ...; any grid)")
    pairs.add_argument("--hr_mask", type=Path, nargs="+", default=None, help="mask rasters of the HR scenes")
    pairs.add_argument("--min_corr", type=correlation, default=0.7,
                       help="drop a tile whose LR/HR correlation after co-registration is below this (default 0.7)")
    pairs.add_argument("--max_shift", type=positive_float, default=3.0,
                       help="drop a tile whose displacement is more than this many HR pixels from its scene's "
                            "(default 3)")
    pairs.add_argument("--harmonize", choices=HARMONIZE_MODES, default="none",
                       help="none: the LR keeps its sensor's values (the network learns the mapping); linear: the LR "
                            "is converted to the HR's units with the fitted per-band gain and offset")
    pairs.add_argument("--split_block", type=int, default=DEFAULT_SPLIT_BLOCK,
                       help="tiles per side of the blocks that are split together (default 4: no split shares a "
                            "neighbouring tile's content)")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------------------- options
def parse_scales(text):
    try:
        scales = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--scales {text!r}: give comma-separated integers, e.g. --scales 2,3,4") from None
    if not scales or min(scales) < 2:
        raise UserError(f"--scales {text!r}: every scale must be an integer >= 2, e.g. --scales 2,3,4")
    return sorted(set(scales))


def parse_split(text):
    """Three fractions (train, val, test), each >= 0, summing to 1."""
    try:
        fractions = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--split {text!r}: give three numbers train,val,test, e.g. --split 0.8,0.1,0.1") from None
    if len(fractions) != 3 or min(fractions) < 0 or any(math.isnan(f) for f in fractions):
        raise UserError(f"--split {text!r}: give three non-negative numbers train,val,test, e.g. 0.8,0.1,0.1")
    if abs(sum(fractions) - 1) > 1e-6:
        raise UserError(f"--split {text!r}: the fractions sum to {sum(fractions):g}, they must sum to 1")
    return tuple(fractions)


def normalize_ext(ext):
    if ext is None:
        return None
    ext = "." + ext.lower().lstrip(".")
    if ext not in IMAGE_EXTENSIONS:
        raise UserError(f"--ext {ext[1:]}: unsupported, use one of {', '.join(e[1:] for e in IMAGE_EXTENSIONS)}")
    return ext


def check_destination(src, dst, overwrite, inside_ok=False, flag="--src"):
    """--dst may not hold the sources (`flag`: --src or --lr_src) or lie inside them (after resolving links;
    inside_ok: a scene file's folder may hold --dst), and must be empty unless --overwrite."""
    if not inside_ok and dst.resolve().is_relative_to(src.resolve()):
        raise UserError(f"--dst {dst} is inside {flag} {src}: the outputs would be read as sources next time")
    if src.resolve().is_relative_to(dst.resolve()):
        raise UserError(f"{flag} {src} is inside --dst {dst}: writing the dataset would replace its own sources; "
                        f"give a --dst outside the source folder")
    if dst.exists() and not dst.is_dir():
        raise UserError(f"--dst {dst} is a file: give a folder")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise UserError(f"--dst {dst} is not empty: choose an empty folder or add --overwrite to replace the dataset "
                        f"it holds")
    if overwrite and dst.is_dir() and any(dst.iterdir()):
        check_replaceable(dst)


def check_replaceable(dst):
    """--overwrite replaces only a dataset this script prepared: a readable dataset.json (or the mark of an
    unfinished preparation) and nothing beside what a preparation writes. Anything else is one line naming it."""
    if not any((dst / name).exists() for name in DATASET_MARKS):
        raise UserError(f"--dst {dst} holds files but no dataset (no dataset.json): --overwrite replaces only a "
                        f"dataset this script prepared; choose an empty folder")
    read_dataset_metadata(dst)  # a dataset.json that is not one (a folder, text, a list, ...) is its one-line error
    foreign = foreign_entries(dst)
    if foreign:
        raise UserError(f"--dst {dst} holds {foreign[0].relative_to(dst)}, which no preparation writes "
                        f"({len(foreign)} such entries): --overwrite would delete it with the dataset; move it away "
                        f"or choose another --dst")


def foreign_entries(dst):
    """What a preparation does not write, anywhere in --dst: top-level entries beyond DATASET_ENTRIES; in a split,
    anything but HR and LR_x<s> folders of image files; in pairing/, anything but the PNG reports."""
    found = [p for p in dst.iterdir() if p.name not in DATASET_ENTRIES]
    for split in (dst / name for name in SPLIT_NAMES if (dst / name).is_dir()):
        for kind in split.iterdir():
            if not (kind.is_dir() and re.fullmatch(r"HR|LR_x\d+", kind.name)):
                found.append(kind)
                continue
            found += [p for p in kind.iterdir() if not (p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)]
    if (dst / "pairing").is_dir():
        found += [p for p in (dst / "pairing").iterdir() if not (p.is_file() and p.suffix.lower() == ".png")]
    return sorted(found)


# ----------------------------------------------------------------------------------------------------------- splitting
def group_by_class(src, images):
    """{class name: [paths]}; the class is the subfolder path relative to src ('' for images directly in src)."""
    classes = {}
    for path in images:
        folder = path.parent.relative_to(src).as_posix()
        classes.setdefault("" if folder == "." else folder, []).append(path)
    return classes


def warn_incomplete_source(protocol, src, classes):
    """One line when the source is not the full data set the protocol was published on."""
    n_classes, per_class = PROTOCOL_SOURCES[protocol]
    sizes = sorted({len(paths) for paths in classes.values()})
    if len(classes) != n_classes or sizes != [per_class]:
        held = "/".join(map(str, sizes))
        print(f"warning: --protocol {protocol} is defined on {n_classes} classes of {per_class} images; {src} holds "
              f"{len(classes)} classes of {held} images, so its test split and scores are not the papers' (record "
              f"the class count beside every score)")


def split_counts(n, fractions):
    """Split n items by fractions with the largest-remainder rule (ties go to the earlier split: train first)."""
    exact = [round(n * f, 9) for f in fractions]  # round(): 0.3 * 10 must count as 3, not 2.9999999999999996
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def shuffled_cut(items, seed_key, counts):
    """{split name: items} of `items` in sorted order shuffled by a RNG seeded with the text `seed_key` (str seeds are
    hashed stably across runs), then cut into `counts` (one per split, in SPLIT_NAMES order)."""
    items = sorted(items)
    random.Random(seed_key).shuffle(items)
    cuts = np.cumsum([0, *counts])
    return {name: items[cuts[k]:cuts[k + 1]] for k, name in enumerate(SPLIT_NAMES)}


def split_stratified(groups, fractions, seed, split_text="", borrow=False):
    """{split name: sorted items}: each group (a class's images, a scene's tiles, the blocks of scene pairs) is
    shuffled with its own seeded RNG (key "<seed>:<group>") and cut by split_counts. A split that was asked for
    (fraction > 0) but gets no item of some group is an error (it would be silently empty or biased), or with
    `borrow` takes one item from the largest split (so a small scene still gives val and test tiles)."""
    splits = {name: [] for name in SPLIT_NAMES}
    for group in sorted(groups):
        items = groups[group]
        counts = (counts_for_each_split if borrow else split_counts)(len(items), fractions)
        for name, fraction, count in zip(SPLIT_NAMES, fractions, counts):
            if fraction > 0 and count == 0 and not borrow:
                where = f"class {group!r}" if group else "the source folder"
                raise UserError(f"--split {split_text}: {where} has {len(items)} images, which gives the {name} "
                                f"split none ({'/'.join(map(str, counts))}); raise its fraction or use --split with "
                                f"a 0 for {name}")
        for name, part in shuffled_cut(items, f"{seed}:{group}", counts).items():
            splits[name].extend(part)
    return {name: sorted(items) for name, items in splits.items()}


def counts_for_each_split(n, fractions):
    """split_counts, with one item moved from the largest split to each split asked for (fraction > 0) that got
    none, while the largest holds more than one."""
    counts = split_counts(n, fractions)
    for index, fraction in enumerate(fractions):
        if fraction > 0 and counts[index] == 0 and max(counts) > 1:
            counts[index], counts[counts.index(max(counts))] = 1, max(counts) - 1
    return counts


def check_unique_names(images):
    seen = {}
    for path in images:
        other = seen.setdefault(path.stem, path)
        if other != path:
            raise UserError(f"two source images share the name {path.stem!r}: {other} and {path}; rename one")


# ----------------------------------------------------------------------------------------------------------- metadata
def band_names(text, first_image, meta):
    """--bands, else the source's band descriptions (when every band has one), else red/green/blue for 3 bands, else
    b1..bN: dataset.json always names every band, so training needs no --n_colors. `meta`: the first image's."""
    bands, descriptions = meta.bands, (meta.geo or {}).get("descriptions") or ()
    if text:
        names = [b.strip().lower() for b in text.split(",") if b.strip()]
        if len(names) != bands:
            raise UserError(f"--bands names {len(names)} bands but {first_image} has {bands}")
        return names
    if descriptions and len(descriptions) == bands and all(descriptions):
        return [str(d).strip().lower() for d in descriptions]
    names = default_band_names(bands)
    if meta.geo is not None and bands == 3:  # a scene's 3 bands need not be RGB in this order (Landsat: blue first)
        print(f"note: {first_image} names no bands; dataset.json records them as {','.join(names)}: give --bands "
              f"in file order if they are not, e.g. --bands blue,green,red")
    return names


def ground_sample_distance(meta):
    """The HR pixel size in metres of a georeferenced source (its x size; `meta`: the first image's; a geographic
    CRS's degrees converted at the image's centre latitude), else None."""
    size = meta.gsd_metres
    return round(size[0], 6) if size else None


# ----------------------------------------------------------------------------------------------------------- writing
def make_lr(hr, scale, fill=None, nodata=None):
    """The LR of an HR image: MATLAB bicubic downsample of the HR mod-cropped to a multiple of `scale`. Where the HR
    holds its nodata (`fill`, the pixels of value `nodata`), the LR pixels whose kernel reaches it hold it too."""
    if fill is not None and fill.any():
        return bicubic_downsample_filled(hr, scale, fill, nodata)
    return bicubic_downsample(modcrop(hr, scale), scale)


def write_sample(split_dir, name, hr, meta, scales, ext, bands=None):
    """Write <split_dir>/HR/<name><ext> as it is and <split_dir>/LR_x<s>/<name><ext> for each scale (GeoTIFFs with
    the band names as their band descriptions)."""
    if min(hr.shape[0], hr.shape[1]) < max(scales):
        raise UserError(f"image {meta.path} is {hr.shape[0]}x{hr.shape[1]} pixels, smaller than scale {max(scales)}")
    meta = with_band_names(meta, bands)
    write_image(split_dir / "HR" / f"{name}{ext}", hr, meta)
    fill = nodata_mask(hr, meta)  # found once for every scale
    for scale in scales:
        lr = make_lr(hr, scale, fill, meta.nodata)
        # scale=1/s: the LR pixels are s times larger than HR pixels, same top-left origin
        write_image(split_dir / f"LR_x{scale}" / f"{name}{ext}", lr, meta, scale=1 / scale)


def in_staging(args, prepare, *arguments):
    """prepare(*arguments, root) with root a staging folder beside --dst that becomes --dst only once complete: a
    failed or killed preparation (an --overwrite too) leaves the previous dataset as it was, and the new dataset
    holds only the new files. A second preparation of the same --dst meanwhile is refused in one line."""
    lock = runs.FolderLock.beside(args.dst, "preparation").acquire()
    try:
        with atomic.staging_dir(args.dst, replace=args.overwrite) as root:
            return prepare(*arguments, root)
    finally:
        lock.release()


def prepare_split(paths, split_dir, scales, ext, progress, bands=None, decoded=None):
    """Write the samples of `paths`; `decoded`: {path: (array, meta)} of images already read (decoded once)."""
    for path in paths:
        hr, meta = (decoded or {}).get(path) or read_image_with_meta(path)
        write_sample(split_dir, path.stem, hr, meta, scales, ext or path.suffix.lower(), bands)
        progress.update(1)


# ----------------------------------------------------------------------------------------------------------- scenes
def scene_tiles(hr, meta, tile, scales, min_valid=1.0):
    """({tile name: (row, col)} of the N x N windows worth training on, {reason: count} of the others, the number of
    kept tiles that hold nodata). A tile whose share of counted pixels is below `min_valid` (1: any nodata pixel) is
    left out: training reads a nodata pixel as ground unless it knows the nodata value (dataset.json's, see
    prepare_scenes), and then leaves it out of the loss and the scores, with the HR pixels under the LR pixels it
    reaches (counted_share)."""
    nodata = nodata_mask(hr, meta)
    nodata = np.zeros(hr.shape[:2], dtype=bool) if nodata is None else nodata
    kept, skipped, partial = {}, {"nodata pixels": 0, "NaN/Inf pixels": 0, "constant": 0}, 0
    stem = Path(meta.path).stem
    for row in range(0, hr.shape[0] - tile + 1, tile):
        for col in range(0, hr.shape[1] - tile + 1, tile):
            window, fill = hr[row:row + tile, col:col + tile], nodata[row:row + tile, col:col + tile]
            data = window[~fill]  # (pixels, bands)
            if counted_share(fill, scales) < min_valid:
                skipped["nodata pixels"] += 1
            elif invalid_pixels(window).any():  # training refuses NaN/Inf pixels
                skipped["NaN/Inf pixels"] += 1
            elif (data.max(axis=0) == data.min(axis=0)).all():
                skipped["constant"] += 1
            else:
                kept[f"{stem}_r{row:05d}_c{col:05d}"] = (row, col)
                partial += bool(fill.any())
    return kept, skipped, partial


def counted_share(fill, scales):
    """The share of a tile's HR pixels that training counts (SRData.valid_pixels) at the worst of `scales`: those
    neither nodata (`fill`) nor under an LR pixel that the nodata reaches (make_lr marks them). Thin gaps, as in a
    Landsat-7 SLC-off scene, reach far more LR pixels than they cover."""
    if not fill.any():
        return 1.0
    shares = []
    for scale in scales:
        cropped = modcrop(fill, scale)
        under = lr_pixels_reached(cropped, scale).repeat(scale, axis=0).repeat(scale, axis=1)
        shares.append(float((~(cropped | under)).sum()) / fill.size)
    return min(shares)


def prepare_scenes(args, scales, fractions, ext, split_text, root):
    """--tile: cut every scene into tiles, split each scene's tiles on their own, write them into `root` (the
    staging folder of --dst); returns the summary."""
    scenes = [args.src] if args.src.is_file() else list_images(args.src, recursive=True)
    if not scenes:
        raise UserError(f"--src {args.src} holds no images ({', '.join(IMAGE_EXTENSIONS)}), also in subfolders")
    if args.tile < max(scales):
        raise UserError(f"--tile {args.tile} is smaller than the scale {max(scales)}: give HR tiles of at least "
                        f"{4 * max(scales)} pixels, e.g. --tile 192")
    check_unique_names(scenes)
    first, first_meta = read_image_with_meta(scenes[0])
    bands, gsd = band_names(args.bands, scenes[0], first_meta), ground_sample_distance(first_meta)
    counts, skipped, total = dict.fromkeys(SPLIT_NAMES, 0), {}, 0
    partial, nodata, nodata_source = 0, None, None  # the tiles kept with nodata (--min_valid), their nodata value
    sizes = []  # of the scenes, for the pixels the tiling leaves out and the advice on --tile
    with Counter(len(scenes), "scenes", unit="scene") as counter:
        for path in scenes:
            hr, meta = (first, first_meta) if path == scenes[0] else read_image_with_meta(path)
            if hr.shape[2] != len(bands):
                raise UserError(f"{path} has {hr.shape[2]} bands, {scenes[0]} has {len(bands)}: prepare scenes of one "
                                f"band layout together")
            check_same_kind(path, meta, scenes[0], first_meta)
            kept, left, with_nodata = scene_tiles(hr, meta, args.tile, scales, args.min_valid)
            if with_nodata:  # dataset.json records one nodata value for every tile that holds some
                nodata = check_one_nodata(path, meta.nodata, nodata_source, nodata)
                partial, nodata_source = partial + with_nodata, nodata_source or path
            if not kept:
                print(f"note: {path} gives no {args.tile}x{args.tile} tile worth training on (skipped: "
                      f"{counts_text(left)})")
            total += len(kept) + sum(left.values())
            sizes.append(hr.shape[:2])
            skipped = {reason: skipped.get(reason, 0) + n for reason, n in left.items()}
            splits = split_stratified({path.stem: list(kept)}, fractions, args.seed, borrow=True)
            for name, names in splits.items():
                for tile_name in names:
                    row, col = kept[tile_name]
                    write_sample(root / name, tile_name, hr[row:row + args.tile, col:col + args.tile],
                                 window_meta(meta, row, col, args.tile, args.tile), scales,
                                 ext or path.suffix.lower(), bands)
                counts[name] += len(names)
            counter.update(1)
    if not sum(counts.values()):
        raise UserError(f"no {args.tile}x{args.tile} tile of {args.src} is worth training on (skipped: "
                        f"{counts_text(skipped)}); give a smaller --tile or scenes with more valid pixels")
    empty = [name for name, fraction in zip(SPLIT_NAMES, fractions) if fraction > 0 and not counts[name]]
    if empty:
        raise UserError(f"--tile {args.tile} gives {sum(counts.values())} tiles, none for the {' and '.join(empty)} "
                        f"split: {tile_hint(sizes, args.tile, scales, fractions)}, or use --split with a 0 for "
                        f"{empty[0]}")
    scene_pixels = sum(h * w for h, w in sizes)
    edge_pixels = scene_pixels - sum((h // args.tile) * (w // args.tile) for h, w in sizes) * args.tile**2
    write_dataset_metadata(root, bands=bands, gsd=gsd, dtype=first.dtype.name,
                           description=f"{args.tile}x{args.tile} tiles of {args.src.resolve()} (split {split_text}, "
                                       f"seed {args.seed})", nodata=nodata)
    masked = f"; {partial} with nodata pixels, which training leaves out" if partial else ""
    print(f"{len(scenes)} scenes -> {sum(counts.values())} of {total} tiles of {args.tile}x{args.tile} -> {args.dst} "
          f"({', '.join(f'{n} {counts[n]}' for n in SPLIT_NAMES)}{masked}; skipped: {counts_text(skipped)}; edges "
          f"left out: {edge_pixels} pixels, {100 * edge_pixels / scene_pixels:.1f} % of the scenes; bands "
          f"{','.join(bands)})")
    return 0


def check_same_kind(path, meta, first_path, first_meta):
    """Scenes prepared together share a dtype, a CRS and a pixel size: dataset.json describes them all, and training
    reads one dtype. Otherwise one line naming both."""
    differences = []
    if meta.dtype != first_meta.dtype:
        differences.append(f"dtype {meta.dtype.name} vs {first_meta.dtype.name}")
    crs, first_crs = (meta.geo or {}).get("crs"), (first_meta.geo or {}).get("crs")
    if crs != first_crs:
        differences.append(f"CRS {crs} vs {first_crs}")
    gsd, first_gsd = meta.gsd_metres, first_meta.gsd_metres
    if gsd and first_gsd and not math.isclose(gsd[0], first_gsd[0], rel_tol=0.01):
        differences.append(f"pixel size {gsd[0]:g} m vs {first_gsd[0]:g} m")
    if differences:
        raise UserError(f"{path} and {first_path} differ ({'; '.join(differences)}): prepare scenes of one kind "
                        f"together (warp them to one grid first, e.g. gdalwarp), or into separate datasets")


def check_one_nodata(path, value, first_path, first_value):
    """`value`, the nodata of a scene whose kept tiles hold some, when it is the one of the earlier such scene
    (`first_path`'s; None: none yet); else one line naming both."""
    if first_path is not None and value != first_value:
        raise UserError(f"{path} declares nodata {value:g} and {first_path} {first_value:g}: tiles kept with nodata "
                        f"(--min_valid) share one nodata value; give the scenes one (gdal_translate -a_nodata), or "
                        f"prepare them into separate datasets")
    return value


def tile_hint(sizes, tile, scales, fractions):
    """The largest --tile (a multiple of every scale, below `tile`) whose grid gives at least one tile per split asked
    for in the scene sizes `sizes`, as advice."""
    step = math.lcm(*scales)
    wanted = sum(1 for f in fractions if f > 0)
    for candidate in range((tile - 1) // step * step, 4 * max(scales) - 1, -step):  # multiples below `tile`
        if sum((h // candidate) * (w // candidate) for h, w in sizes) >= wanted:
            return f"give --tile {candidate} or smaller"
    return "give larger scenes"


def main(argv=None):
    args = parse_args(argv)
    if args.protocol and args.split:
        raise UserError("--protocol fixes the split: drop --split")
    split_text = PROTOCOLS[args.protocol] if args.protocol else (args.split or DEFAULT_SPLIT)
    scales, fractions, ext = parse_scales(args.scales), parse_split(split_text), normalize_ext(args.ext)
    check_lr_flags(args)
    if args.lr_src is not None:
        return prepare_cross_sensor(args, scales, fractions, ext, split_text)
    if not 0 < args.min_valid <= 1 or (args.min_valid < 1 and args.tile is None):
        raise UserError(f"--min_valid {args.min_valid:g}: give a share in (0, 1] of a --tile's pixels that must be "
                        f"data, e.g. --tile 192 --min_valid 0.5")
    if args.min_valid < 1 and ext is not None and ext not in TIFF_EXTENSIONS:
        raise UserError(f"--min_valid with --ext {ext[1:]}: tiles that keep some nodata are written as GeoTIFFs, "
                        f"which declare it (deploy and the metric script read it there); drop --ext or give --ext tif")
    if args.tile is not None:
        if not args.src.exists():
            raise UserError(f"--src {args.src}: no such scene or folder")
        check_destination(args.src if args.src.is_dir() else args.src.parent, args.dst, args.overwrite,
                          inside_ok=args.src.is_file())
        return in_staging(args, prepare_scenes, args, scales, fractions, ext, split_text)
    if not args.src.is_dir():
        raise UserError(f"--src {args.src}: no such folder; give the folder of HR images")
    images = list_images(args.src, recursive=True)
    if not images:
        raise UserError(f"--src {args.src} holds no images ({', '.join(IMAGE_EXTENSIONS)}), also in subfolders")
    check_destination(args.src, args.dst, args.overwrite)
    check_unique_names(images)
    classes = group_by_class(args.src, images)
    if args.protocol:
        warn_incomplete_source(args.protocol, args.src, classes)
    splits = split_stratified(classes, fractions, args.seed, split_text)
    return in_staging(args, prepare_images, args, images, classes, splits, scales, fractions, ext, split_text)


def prepare_cross_sensor(args, scales, fractions, ext, split_text):
    if args.min_valid < 1:  # a pair's invalid pixels are masks on two grids, not one nodata value training can mask
        raise UserError("--min_valid keeps partly nodata tiles of one sensor's scenes; cross-sensor pairs (--lr_src) "
                        "keep whole tiles only: drop --min_valid")
    if len(scales) != 1:
        raise UserError(f"--scales {args.scales}: cross-sensor pairs have one scale, the ratio of the two sensors' "
                        f"pixel sizes, e.g. --scales 3 for Landsat-8 (30 m) onto Sentinel-2 (10 m)")
    for flag, path in (("--src", args.src), ("--lr_src", args.lr_src)):
        if not path.exists():
            raise UserError(f"{flag} {path}: no such scene or folder")
        check_destination(path if path.is_dir() else path.parent, args.dst, args.overwrite, inside_ok=path.is_file(),
                          flag=flag)
    return in_staging(args, prepare_pairs, args, scales[0], fractions, ext, split_text)


def prepare_images(args, images, classes, splits, scales, fractions, ext, split_text, root):
    """Write the splits of a folder of images into `root` (the staging folder of --dst); returns the summary."""
    first = read_image_with_meta(images[0])  # its meta names the bands and the GSD; its pixels are written once
    first_meta = first[1]
    bands, gsd = band_names(args.bands, images[0], first_meta), ground_sample_distance(first_meta)
    with Counter(len(images), "prepare", unit="img") as counter:
        for name, fraction in zip(SPLIT_NAMES, fractions):
            if fraction > 0:
                prepare_split(splits[name], root / name, scales, ext, counter, bands, {images[0]: first})
    write_dataset_metadata(root, bands=bands, gsd=gsd, dtype=first_meta.dtype.name,
                           description=f"prepared from {args.src.resolve()} (split {split_text}, seed {args.seed})")
    counts = ", ".join(f"{name} {len(splits[name])}" for name in SPLIT_NAMES)
    lr_scales = ", ".join(f"x{s}" for s in scales)
    print(f"{len(images)} images in {len(classes)} classes -> {args.dst} ({counts}; LR {lr_scales})")
    return 0


if __name__ == "__main__":
    run_cli(main)
