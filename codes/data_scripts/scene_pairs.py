"""prepare_dataset.py --lr_src: aligned LR/HR tile pairs from scenes of two sensors (see codes/pairing.py for the grid,
the displacement and the radiometry, docs/datasets.md for the recipe).

Each LR scene is paired with every HR scene it overlaps, on the overlap only. The tiles of a pair are split by blocks
of --split_block x --split_block tiles (neighbouring tiles share their content across the edge, so a split by single
tiles would leak), the blocks shuffled with --seed. dataset.json gains `pairing` (the record of every pair and tile);
<dst>/pairing/<hr>__<lr>.png shows each pair's per-tile displacements and per-band LR-vs-HR fits.
"""
import math
import sys
from pathlib import Path

if __name__ == "__main__":  # a library, not a command
    sys.exit("error: scene_pairs.py is the library of prepare_dataset.py --lr_src: run python "
             "codes/data_scripts/prepare_dataset.py --help")

import numpy as np  # noqa: E402

import pairing  # noqa: E402
from data.dataset_json import read_dataset_metadata, write_dataset_metadata  # noqa: E402
from errors import UserError  # noqa: E402
from image_files import IMAGE_EXTENSIONS, check_unique_stems, list_images  # noqa: E402
from image_io import (  # noqa: E402
    ImageMeta,
    read_image_with_meta,
    select_bands,
    unusable_pixels,
    window_meta,
    write_image,
)
from progress import Counter, counts_text  # noqa: E402
from radiometry import to_dtype  # noqa: E402

DEFAULT_SPLIT_BLOCK = 4  # tiles per side of a split block


def scene_files(path, flag):
    """The scene files a flag names: one file or the images of a folder (also in subfolders)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        what = "not a scene file or folder" if path.exists() else "no such scene or folder"  # a FIFO, a device
        raise UserError(f"{flag} {path}: {what}")
    files = list_images(path, recursive=True)
    if not files:
        raise UserError(f"{flag} {path} holds no images ({', '.join(IMAGE_EXTENSIONS)}), also in subfolders")
    return check_unique_stems(files, path)  # tiles and reports are named by the scenes' names


def named_bands(text, flag, path, meta):
    """A scene's band names: the flag's, else its band descriptions, else its folder's dataset.json. Pairs are
    matched by name, so a scene without names is a one-line error."""
    if text:
        names = [b.strip().lower() for b in text.split(",") if b.strip()]
        if len(names) != meta.bands:
            raise UserError(f"{flag} names {len(names)} bands but {path} has {meta.bands}")
        return names
    described = [str(d).strip().lower() for d in (meta.geo or {}).get("descriptions") or () if d]
    if len(described) == meta.bands:
        return described
    recorded = read_dataset_metadata(Path(path).parent).get("bands") or []
    if len(recorded) == meta.bands:
        return [str(b).lower() for b in recorded]
    raise UserError(f"{path} does not name its {meta.bands} bands (no band descriptions, no dataset.json beside "
                    f"it): name them with {flag}, e.g. {flag} blue,green,red,nir")


def invalid_of(array, meta, masks):
    """Pixels not to use: nodata, NaN/Inf, and every pixel a mask raster marks (nonzero; any grid)."""
    invalid = unusable_pixels(array, meta)
    grid = pairing.scene_grid(meta)
    for mask, mask_meta in masks:
        invalid |= pairing.warp_mask((mask != 0).any(axis=2), pairing.scene_grid(mask_meta), grid)
    return invalid


def read_masks(paths, flag):
    masks = []
    for path in paths or ():
        for file in scene_files(path, flag):
            mask, meta = read_image_with_meta(file)
            pairing.scene_grid(meta)  # a mask must be georeferenced: one line otherwise
            masks.append((mask, meta))
    return masks


class Scenes:
    """Scenes read once each, with their band names, grids and invalid pixels."""

    def __init__(self, bands_text, flag, masks):
        self.bands_text, self.flag, self.masks, self.read = bands_text, flag, masks, {}

    def get(self, path):
        if path not in self.read:
            array, meta = read_image_with_meta(path)
            names = named_bands(self.bands_text, self.flag, path, meta)
            self.read[path] = (array, meta, names, pairing.scene_grid(meta), invalid_of(array, meta, self.masks))
        return self.read[path]


def check_tile(tile, scale):
    if tile % scale or tile // scale < 4:
        raise UserError(f"--tile {tile}: cross-sensor tiles must be a multiple of the scale {scale} and at least "
                        f"{4 * scale} HR pixels, e.g. --tile {16 * scale}")


def prepare_pairs(args, scale, fractions, ext, split_text, root):
    """--lr_src: pair every LR scene with the HR scenes it overlaps, write the tiles into `root` (the staging folder
    of --dst) and dataset.json with its `pairing` record."""
    if args.tile is None:
        raise UserError("--lr_src needs --tile: the HR tile size in pixels, a multiple of the scale, e.g. --tile 48")
    check_tile(args.tile, scale)
    hr_files, lr_files = scene_files(args.src, "--src"), scene_files(args.lr_src, "--lr_src")
    hr_scenes = Scenes(args.bands, "--bands", read_masks(args.hr_mask, "--hr_mask"))
    lr_scenes = Scenes(args.lr_bands, "--lr_bands", read_masks(args.lr_mask, "--lr_mask"))
    pairs = []
    with Counter(len(hr_files) * len(lr_files), "scene pairs", unit="pair") as counter:
        for lr_path in lr_files:
            for hr_path in hr_files:
                found = pair_one(hr_scenes.get(hr_path), lr_scenes.get(lr_path), hr_path, lr_path, scale, args)
                if found:
                    pairs.append(found)
                counter.update(1)
    if not pairs:
        raise UserError(f"no LR scene of --lr_src {args.lr_src} overlaps an HR scene of --src {args.src}: give "
                        f"scenes of the same place")
    kept = sum(len(pair["plan"].kept) for pair in pairs)
    dropped = total_dropped(pairs)
    if not kept:
        raise UserError(f"no {args.tile}x{args.tile} tile of --lr_src {args.lr_src} on --src {args.src} is kept "
                        f"(dropped: {counts_text(dropped)}); give a smaller --tile, scenes with more clear pixels, "
                        f"or a lower --min_corr where the scenes differ a lot")
    names = pairs[0]["names"]
    other = next((pair for pair in pairs if pair["names"] != names), None)
    if other is not None:
        raise UserError(f"{other['lr_path']} on {other['hr_path']} has the common bands {','.join(other['names'])}, "
                        f"{pairs[0]['lr_path']} on {pairs[0]['hr_path']} has {','.join(names)}: one dataset holds one "
                        f"band set; name the bands alike (--bands, --lr_bands) or prepare them apart")
    radiometry = pairing.median_radiometry([pair["plan"].radiometry for pair in pairs], names)
    warning = pairing.unit_warning(radiometry, f"{args.lr_src} vs {args.src}")
    if warning:
        print(warning)
    if args.harmonize == "linear":
        pairing.check_radiometry_record(radiometry, names, "the fitted radiometry")
    splits = split_blocks(pairs, scale, args.tile, fractions, args.split_block, args.seed)
    counts, tiles = write_pairs(pairs, splits, scale, args.tile, ext, radiometry, args.harmonize, root)
    for pair in pairs:
        report_path = root / "pairing" / f"{pair['hr_path'].stem}__{pair['lr_path'].stem}.png"
        write_report(report_path, pair, scale)
    first_meta = pairs[0]["hr_meta"]
    record = {"scale": scale, "harmonize": args.harmonize, "bands": names, "radiometry": radiometry,
              "dropped": dropped, "split_block_tiles": args.split_block, "warp": pairing.WARP_RESAMPLING,
              "pairs": [pair_record(pair) for pair in pairs], "tiles": tiles}
    if len(pairs) == 1:  # the one scene pair's sources and displacement also stand at the top
        record.update({key: record["pairs"][0][key] for key in ("lr_source", "hr_source", "displacement_hr_px")})
    gsd = first_meta.gsd_metres
    write_dataset_metadata(root, bands=names, gsd=round(gsd[0], 6) if gsd else None, dtype=first_meta.dtype.name,
                           description=f"{args.tile}x{args.tile} cross-sensor tiles: LR {args.lr_src.resolve()} on HR "
                                       f"{args.src.resolve()} (split {split_text} by blocks of {args.split_block}x"
                                       f"{args.split_block} tiles, seed {args.seed})", pairing=record)
    print(f"{len(pairs)} scene pairs -> {kept} tile pairs of {args.tile}x{args.tile} (LR {args.tile // scale}x"
          f"{args.tile // scale}) -> {args.dst} ({', '.join(f'{n} {counts[n]}' for n in counts)}; dropped: "
          f"{counts_text(dropped)}; bands {','.join(names)}; harmonize {args.harmonize})")
    return 0


def pair_one(hr_scene, lr_scene, hr_path, lr_path, scale, args):
    """One scene pair's plan and arrays, printed as one line; None when the scenes do not overlap."""
    hr, hr_meta, hr_names, hr_grid, hr_invalid = hr_scene
    lr, lr_meta, lr_names, lr_grid, lr_invalid = lr_scene
    overlap = pairing.overlap_grid(hr_grid, lr_grid, scale)
    if overlap is None:
        return None
    pairing.check_scale(scale, lr_meta, hr_grid)
    names, notes = pairing.common_bands(hr_names, lr_names, hr_path, lr_path)
    for note in notes:
        print(note)
    hr, hr_meta = select_bands(hr_path, hr, hr_meta, names, hr_names)
    lr, lr_meta = select_bands(lr_path, lr, lr_meta, names, lr_names)
    found = pairing.pair_scenes(overlap, hr, hr_invalid, hr_grid, lr, lr_invalid, lr_grid, scale, args.tile,
                                args.min_corr, args.max_shift, names)
    if found is None:
        return None
    plan, warped, warped_invalid = found
    dx, dy = plan.displacement
    print(f"{lr_path.name} -> {hr_path.name}: displacement x {dx:+.2f} y {dy:+.2f} HR px; {len(plan.kept)} of "
          f"{len(plan.kept) + sum(plan.dropped.values())} tiles kept (dropped: {counts_text(plan.dropped)}); gain "
          f"{', '.join(f'{b} {fit_text(f)}' for b, f in plan.radiometry.items())}")
    return {"plan": plan, "warped": warped, "hr": hr, "hr_meta": hr_meta, "names": names, "hr_path": hr_path,
            "lr_path": lr_path, "hr_bands": hr_names, "lr_bands": lr_names}


def fit_text(fit):
    return "n/a" if fit["gain"] is None else f"{fit['gain']:.3f} (r {fit['r']:.2f})"


def total_dropped(pairs):
    totals = dict.fromkeys(pairing.DROP_REASONS, 0)
    for pair in pairs:
        for reason, n in pair["plan"].dropped.items():
            totals[reason] += n
    return totals


def split_blocks(pairs, scale, tile, fractions, block, seed):
    """{(pair index, LR row, LR col): split} with whole blocks of block x block tiles in one split, the blocks
    shuffled with the seed and cut by the fractions (each split asked for gets a block when there are enough)."""
    from prepare_dataset import SPLIT_NAMES, split_stratified

    if block < 1:
        raise UserError(f"--split_block {block}: give a positive number of tiles")
    size = tile // scale
    blocks = {}
    for index, pair in enumerate(pairs):
        for row, col in pair["plan"].kept:
            blocks.setdefault(f"{index}:{row // (size * block)}:{col // (size * block)}", []).append((index, row, col))
    by_split = split_stratified({"pairs": list(blocks)}, fractions, seed, borrow=True)
    short = [name for name, fraction in zip(SPLIT_NAMES, fractions) if fraction > 0 and not by_split[name]]
    if short:
        print(f"warning: {len(blocks)} split blocks are too few to give {', '.join(short)} any tile; lower "
              f"--split_block or give larger scenes")
    splits = {}
    for name, keys in by_split.items():
        for key in keys:
            splits.update(dict.fromkeys(blocks[key], name))
    return splits


def tile_name(pair, scale, row, col):
    """<HR scene>__<LR scene>_r<row>_c<col>, the HR tile's top-left pixel in its scene."""
    row, col = pair["plan"].hr_origin[0] + row * scale, pair["plan"].hr_origin[1] + col * scale
    return f"{pair['hr_path'].stem}__{pair['lr_path'].stem}_r{row:05d}_c{col:05d}"


def write_pairs(pairs, splits, scale, tile, ext, radiometry, harmonize, root):
    """Write each kept tile pair: the HR crop as it is, the LR crop of the corrected warp (in the HR's units with
    --harmonize linear), both in the HR dtype and band order. Returns ({split: count}, {tile name: record})."""
    from prepare_dataset import SPLIT_NAMES

    size = tile // scale
    counts, records, clipped = dict.fromkeys(SPLIT_NAMES, 0), {}, 0
    for index, pair in enumerate(pairs):
        plan, hr, hr_meta = pair["plan"], pair["hr"], pair["hr_meta"]
        lr = pair["warped"]
        if harmonize == "linear":
            lr = pairing.harmonized(lr, pair["names"], radiometry)
        suffix = ext or ".tif"
        lr_geo = dict(hr_meta.geo, transform=plan.grid.transform)
        lr_meta = ImageMeta(hr_meta.dtype, hr_meta.bands, plan.grid.height, plan.grid.width, lr_geo, pair["lr_path"])
        for (row, col), record in plan.kept.items():
            split = splits[index, row, col]
            name = tile_name(pair, scale, row, col)
            hr_row, hr_col = plan.hr_origin[0] + row * scale, plan.hr_origin[1] + col * scale
            write_image(root / split / "HR" / f"{name}{suffix}", hr[hr_row:hr_row + tile, hr_col:hr_col + tile],
                        window_meta(hr_meta, hr_row, hr_col, tile, tile))
            values = lr[row:row + size, col:col + size]
            lr_tile = to_dtype(values, hr_meta.dtype)
            clipped += int((lr_tile != np.rint(values)).sum()) if lr_tile.dtype.kind in "iu" else 0
            write_image(root / split / f"LR_x{scale}" / f"{name}{suffix}", lr_tile,
                        window_meta(lr_meta, row, col, size, size))
            records[name] = dict(record, split=split, pair=index)
            counts[split] += 1
    if clipped:
        advice = "HR scenes of a wider dtype" if harmonize == "linear" else ("--harmonize linear, or HR scenes of a "
                                                                             "wider dtype")
        print(f"warning: {clipped} LR values fell outside the HR dtype {hr_meta.dtype} and were clipped to it; "
              f"use {advice}")
    return counts, records


def pair_record(pair):
    plan = pair["plan"]
    return {"lr_source": str(pair["lr_path"].resolve()), "hr_source": str(pair["hr_path"].resolve()),
            "lr_bands": pair["lr_bands"], "hr_bands": pair["hr_bands"],
            "displacement_hr_px": list(plan.displacement), "radiometry": plan.radiometry, "dropped": plan.dropped,
            "lr_grid": plan.grid.record(), "tiles_kept": len(plan.kept)}


def write_report(path, pair, scale):
    """The pair-report PNG: per-tile displacement arrows (HR pixels) over the overlap, and LR vs HR per band with
    the fitted line."""
    from plots import plt, save_figure

    plan, names = pair["plan"], pair["names"]
    size_hint = 3.2
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(size_hint * (1 + len(names)), size_hint + 0.4))
    ax = axes[0]
    measured = [(row, col, s) for (row, col), s in plan.shifts.items() if s is not None]
    if measured:
        rows, cols, shifts = zip(*measured)
        kept = np.array([(row, col) in plan.kept for row, col, _ in measured])
        dx = np.array([plan.displacement[0] + s[0] * scale for s in shifts])
        dy = np.array([plan.displacement[1] + s[1] * scale for s in shifts])
        for chosen, colour, label in ((kept, "tab:blue", "kept"), (~kept, "tab:red", "dropped")):
            if chosen.any():
                ax.quiver(np.array(cols)[chosen], np.array(rows)[chosen], dx[chosen], dy[chosen], color=colour,
                          angles="xy", scale_units="xy", scale=0.25, label=label)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlim(0, plan.grid.width)
    ax.set_ylim(plan.grid.height, 0)
    ax.set_aspect("equal")
    ax.set_title(f"displacement per tile (HR px, arrows x4)\nscene: x {plan.displacement[0]:+.2f} "
                 f"y {plan.displacement[1]:+.2f}", fontsize=8)
    ax.set_xlabel("LR column")
    ax.set_ylabel("LR row")
    x, y = plan.fit_points
    for k, name in enumerate(names):
        ax = axes[k + 1]
        ax.scatter(x[:, k], y[:, k], s=3, alpha=0.4)
        fit = plan.radiometry[name]
        if fit["gain"] is not None:
            line = np.array([x[:, k].min(), x[:, k].max()])
            ax.plot(line, fit["gain"] * line + fit["offset"], color="tab:red")
            ax.set_title(f"{name}: LR = {fit['gain']:.3f} HR + {fit['offset']:.3g}, r {fit['r']:.3f}", fontsize=8)
        ax.set_xlabel(f"HR {name} (block means)")
        ax.set_ylabel(f"LR {name} (block means)")
    fig.suptitle(f"{pair['lr_path'].name} on {pair['hr_path'].name}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)


def check_lr_flags(args):
    """The cross-sensor flags make sense only with --lr_src, and --lr_src takes one scale."""
    if args.lr_src is None:
        given = [flag for flag, value in (("--lr_mask", args.lr_mask), ("--hr_mask", args.hr_mask),
                                          ("--lr_bands", args.lr_bands)) if value]
        if given:
            raise UserError(f"{given[0]} is for cross-sensor pairs: add --lr_src LR_SCENE_OR_FOLDER")
        return
    if math.isnan(args.min_corr) or not -1 <= args.min_corr <= 1:
        raise UserError(f"--min_corr {args.min_corr}: give a correlation between -1 and 1, e.g. 0.7")
    if not args.max_shift > 0:
        raise UserError(f"--max_shift {args.max_shift}: give a positive number of HR pixels, e.g. 3")
