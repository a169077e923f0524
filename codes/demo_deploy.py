"""Super-resolve images or whole georeferenced scenes with a trained network.

    cd codes && python demo_deploy.py --model=HSENET --scale=4                      # the dataset's test LR
    python demo_deploy.py --model=HSENET --scale=3 --dataset=UCMerced --dir_data /data/UCMerced  # its test split
    python demo_deploy.py --model=BASIC --scale=4 --dir_data scene.tif --dir_out out/ --tile 256 --tile_overlap 48
    python demo_deploy.py --model=BASIC --scale=4 --dir_data my_lr/ --recursive --compare my_hr/

Input: an image or a folder (--recursive: sub-folders too) of PNG, JPG, TIFF or GeoTIFF, 8 or 16 bit, with as many
bands as the model's --n_colors. One SR image per input, same relative path, name and format, rounded to the input's
bit depth. GeoTIFFs keep their CRS, bands, dtype, nodata and band descriptions; the pixel size is divided by the
scale and the origin kept (same footprint); nodata areas stay nodata. Images larger than a tile (--tile, LR pixels;
default per model) run in overlapping tiles blended without seams, and TIFFs are written strip by strip, so memory
follows the tile size and the scene width, not the scene area. Unreadable inputs are named and skipped (exit code 2
at the end). A manifest.json records the model, checkpoint, inputs, outputs and skips; --compare HR_DIR adds
LR | bicubic | SR | HR figures with PSNRs under compare/.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from tqdm import tqdm

import atomic
import image_io
import option
import tiling
import utility
from data import dataset_root
from errors import UserError, run_cli
from model import Model

# GDAL's block cache defaults to 5% of the RAM; written blocks wait there, so without a cap a big output scene would
# sit in memory until the file is closed. Blocks are written whole (see AlignedRows), so a small cache is enough.
GDAL_WRITE_CACHE_BYTES = 64 * 2**20
# Float strips are rounded to the output dtype this many values at a time (rounding works in float64).
ROUNDING_CHUNK_VALUES = 2**21


def default_checkpoint(args):
    return utility.run_dir(args.save, args.dir_experiment) / "model" / "model_best.pt"


def resolve_checkpoint(args):
    """--pre_train, else the training run's model_best.pt; BICUBIC needs none."""
    if args.model == "BICUBIC":
        return ""
    if args.pre_train:
        return str(Path(args.pre_train).resolve())
    path = default_checkpoint(args)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}: train one first (cd codes && python demo_train.py "
                        f"--model={args.model} --scale={args.scale}) or pass --pre_train PATH")
    return str(path)


def on_dataset(args):
    """True when the input is a dataset's --data_test split: no --dir_data, or --dir_data naming a dataset root
    (<root>/<split>/LR_x<s>, as for training). Its HR is then the ground truth."""
    return not args.dir_data or (Path(args.dir_data) / args.data_test / f"LR_x{args.scale}").is_dir()


def input_files(args, out_dir):
    """(source root, list of image paths) from --dir_data (an image, a folder, or a dataset root) or the dataset's
    test LR."""
    if on_dataset(args):
        source = dataset_root(args) / args.data_test / f"LR_x{args.scale}"
    else:
        source = Path(args.dir_data)
    if source.is_file():
        return source.parent, [source]
    if not source.exists():
        raise UserError(f"input {source} does not exist: give an image or a folder with --dir_data")
    if out_dir.resolve() == source.resolve():
        raise UserError(f"--dir_out {out_dir} is the input folder: the outputs would overwrite the inputs; "
                        f"pick another --dir_out")
    files = [p for p in image_io.list_images(source, recursive=args.recursive)
             if out_dir.resolve() not in p.resolve().parents]  # never re-read our own outputs
    if not files:
        raise UserError(f"{source} holds no images ({', '.join(image_io.IMAGE_EXTENSIONS)})"
                        + ("" if args.recursive else "; add --recursive to read sub-folders"))
    return source, files


def output_dir(args):
    if args.dir_out:
        return Path(args.dir_out)
    name = args.dataset if on_dataset(args) else Path(args.dir_data).stem
    return Path(args.dir_experiment) / "results" / f"{args.model}x{args.scale}_{name}"


def tile_flags(args, model):
    """(tile, overlap) in LR pixels from --tile/--tile_overlap, else the model's defaults; 0: whole images."""
    default_tile, default_overlap = model.default_tile()
    tile = args.tile if args.tile >= 0 else default_tile
    if args.tile_overlap >= 0:
        overlap = args.tile_overlap
        if tile > 0 and overlap >= tile:
            raise UserError(f"--tile_overlap {overlap} must be smaller than --tile {tile}")
    else:
        overlap = min(default_overlap, tile // 2)  # the default overlap fits any --tile
    return max(tile, 0), overlap


def tile_settings(tile, overlap, height, width):
    """(tile, overlap) for one image: (0, 0), i.e. whole, when it fits in one tile."""
    if tile <= 0 or max(height, width) <= tile:
        return 0, 0
    return tile, overlap


def precision_note(args, model):
    """--precision only applies on CUDA; say so once instead of failing on the CPU."""
    if args.precision != "fp32" and model.device.type != "cuda":
        return f"note: --precision {args.precision} applies on CUDA only; the CPU runs fp32"
    return None


def network_input(lr, mask, data_range, rgb_range):
    """(1, C, H, W) float32 in [0, rgb_range]; nodata pixels take their band's mean so no fill value leaks into
    the valid pixels next to them (their output is set back to nodata afterwards)."""
    x = torch.from_numpy(lr.transpose(2, 0, 1).astype(np.float32))[None]
    if mask is not None and mask.any():
        valid = ~mask
        means = [float(band[valid].mean()) if valid.any() else 0.0 for band in lr.transpose(2, 0, 1)]
        x[0][:, torch.from_numpy(mask)] = torch.tensor(means, dtype=torch.float32)[:, None]
    return x.mul_(rgb_range / data_range)


class AlignedRows:
    """Buffers image rows and hands them to a GeoTiffWindowWriter in whole TIFF block rows, so that every
    (compressed) block is written once, complete: never re-read, re-compressed or left waiting in GDAL's cache."""

    def __init__(self, writer, block_rows=image_io.GEOTIFF_BLOCK):
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


class Deployer:
    def __init__(self, args, model, out_dir):
        self.args = args
        self.model = model
        self.out_dir = out_dir
        self.forward = model.inference_fn()
        self.tile, self.overlap = tile_flags(args, model)

    def super_resolve(self, path, rel):
        """SR of one image, written to out_dir/rel; returns a manifest record of it."""
        args, s = self.args, self.args.scale
        lr, meta = image_io.read_image_with_meta(path)
        check_bands(path, lr, args.n_colors)
        data_range = args.data_range or image_io.dtype_max(lr.dtype)
        mask = image_io.nodata_mask(lr, meta)
        x = network_input(lr, mask, data_range, args.rgb_range)
        tile, overlap = tile_settings(self.tile, self.overlap, lr.shape[0], lr.shape[1])
        n_tiles = tiling.count_tiles(lr.shape[0], lr.shape[1], tile, overlap)
        out_path = self.out_dir / rel
        height, width, bands = lr.shape[0] * s, lr.shape[1] * s, lr.shape[2]
        with tqdm(total=n_tiles, desc=f"{rel} tiles", leave=False, disable=n_tiles == 1) as tiles:
            strips = tiling.iter_tiled_strips(self.forward, x, s, tile, overlap, on_tile=tiles.update)
            images = ((row, self.to_image(strip, data_range, lr.dtype, mask, meta, row)) for row, strip in strips)
            if out_path.suffix.lower() in image_io.TIFF_EXTENSIONS:
                with rasterio.Env(GDAL_CACHEMAX=GDAL_WRITE_CACHE_BYTES), \
                        image_io.GeoTiffWindowWriter(out_path, height, width, bands, lr.dtype, meta, s) as writer:
                    rows = AlignedRows(writer)
                    for _, image in images:
                        rows.add(image)
                    rows.flush()
            else:  # PNG/JPG: whole images in memory anyway (the encoders need them)
                image_io.write_image(out_path, np.concatenate([image for _, image in images], axis=0), meta, s)
        return {"input": rel.as_posix(), "output": out_path.relative_to(self.out_dir).as_posix(),
                "lr_size": [lr.shape[1], lr.shape[0]], "sr_size": [width, height], "bands": bands,
                "dtype": lr.dtype.name, "tile": tile, "tile_overlap": overlap, "tiles": n_tiles}

    def to_image(self, strip, data_range, dtype, mask, meta, row):
        """A float SR strip (1, C, h, W) -> (h, W, C) of the input's dtype; LR nodata pixels stay nodata (as s x s
        blocks) and valid pixels never turn into nodata. Rounded in row chunks to bound the float64 temporaries."""
        step = max(1, ROUNDING_CHUNK_VALUES // (strip.shape[1] * strip.shape[3]))
        image = np.concatenate([utility.tensor_to_image(strip[0, :, r:r + step], self.args.rgb_range, data_range,
                                                        dtype) for r in range(0, strip.shape[2], step)], axis=0)
        if mask is not None:
            restore_nodata(image, mask, meta.nodata, self.args.scale, row)
        return image


def check_bands(path, lr, n_colors):
    if lr.shape[2] != n_colors:
        raise UserError(f"{path} has {lr.shape[2]} bands but the model takes {n_colors} (--n_colors {n_colors}): "
                        f"use a {lr.shape[2]}-band model (--n_colors {lr.shape[2]} and its checkpoint)")


def restore_nodata(image, mask, nodata, scale, row):
    """In place: HR pixels of nodata LR pixels become nodata; valid HR pixels equal to nodata in every band move one
    level away from it (else a dark SR pixel next to a nodata=0 collar would become a hole)."""
    hr_mask = mask[np.arange(row, row + image.shape[0]) // scale][:, np.arange(image.shape[1]) // scale]
    if np.issubdtype(image.dtype, np.integer):
        clashes = ~hr_mask & (image == nodata).all(axis=2)
        if clashes.any():
            info = np.iinfo(image.dtype)
            image[clashes] = nodata + 1 if nodata < info.max else nodata - 1
    image[hr_mask] = nodata


def write_manifest(out_dir, args, checkpoint, source, records, skipped, figures, seconds):
    known_gt = on_dataset(args)
    manifest = {"model": args.model, "scale": args.scale, "dataset": args.dataset if known_gt else None,
                "gt": str((dataset_root(args) / args.data_test / "HR").resolve()) if known_gt else None,
                "checkpoint": checkpoint or None, "source": str(Path(source).resolve()),
                "outputs": [r["output"] for r in records], "skipped": skipped,
                "n_colors": args.n_colors, "bands": args.bands, "data_range": args.data_range,
                "self_ensemble": args.self_ensemble, "precision": args.precision,
                "images": records, "figures": figures, "seconds": round(seconds, 3)}
    path = out_dir / "manifest.json"
    atomic.write_text(path, json.dumps(manifest, indent=2))
    return path


def check_compare_dir(args):
    if args.compare and not Path(args.compare).is_dir():
        raise UserError(f"--compare {args.compare}: no such folder; give the folder of HR images that match the "
                        f"inputs by name")


def run_all(deployer, source, files):
    """Super-resolve every file; a UserError on one file (unreadable, wrong bands) skips it and goes on."""
    records, skipped = [], []
    with tqdm(files, desc=f"{deployer.args.model} x{deployer.args.scale}", unit="img", dynamic_ncols=True) as bar:
        for path in bar:
            rel = path.relative_to(source)
            bar.set_postfix_str(str(rel))
            try:
                records.append(deployer.super_resolve(path, rel))
            except UserError as err:
                tqdm.write(f"skipped: {err}", file=sys.stderr)
                skipped.append({"input": rel.as_posix(), "reason": str(err)})
            except torch.OutOfMemoryError:
                raise UserError(f"{path}: out of GPU memory; pass a smaller --tile (LR pixels), e.g. --tile 128, "
                                f"or --cpu") from None
    return records, skipped


def main(argv=None):
    args = option.parse_args(argv)
    check_compare_dir(args)
    checkpoint = resolve_checkpoint(args)
    args.pre_train = checkpoint
    out_dir = output_dir(args)
    source, files = input_files(args, out_dir)
    model = Model(args)
    model.eval()
    deployer = Deployer(args, model, out_dir)  # checks the tile flags before any work
    note = precision_note(args, model)
    if note:
        print(note)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    records, skipped = run_all(deployer, source, files)
    seconds = max(time.perf_counter() - start, 1e-9)
    megapixels = sum(r["sr_size"][0] * r["sr_size"][1] for r in records) / 1e6
    print(f"{len(records)} images -> {out_dir} in {seconds:.1f} s ({len(records) / seconds:.2f} images/s, "
          f"{megapixels / seconds:.2f} MP/s output)" + (f"; {len(skipped)} skipped" if skipped else ""))
    figures = []
    if args.compare and records:
        import compare  # matplotlib-free, but only needed here
        figures = compare.write_figures(args, source, [out_dir / r["output"] for r in records], out_dir)
    manifest = write_manifest(out_dir, args, checkpoint, source, records, skipped, figures, seconds)
    print(f"manifest: {manifest}")
    if skipped:
        first = skipped[0]["reason"]
        raise UserError(f"{len(skipped)} of {len(files)} inputs skipped (the others were written): {first}"
                        + (f" (and {len(skipped) - 1} more, listed above)" if len(skipped) > 1 else ""))
    return 0


if __name__ == "__main__":
    run_cli(main)
