"""Super-resolve images or whole georeferenced scenes with a trained network.

    cd codes && python demo_deploy.py --model=HSENET --scale=4                      # the dataset's test LR
    python demo_deploy.py --model=BASIC --scale=4 --dir_data scene.tif --dir_out out/ --tile 256 --tile_overlap 48

One SR image per input, same base name and format, rounded to the input's bit depth. GeoTIFFs keep their CRS,
bands, dtype, nodata and band descriptions; the pixel size is divided by the scale (same footprint). Large images
run in overlapping tiles blended without seams and are written strip by strip, so memory follows the tile size,
not the scene size. A manifest.json records the model, checkpoint and sources.
"""
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import image_io
import option
import tiling
import utility
from data import dataset_root
from errors import UserError, run_cli
from model import Model

# Images up to this many LR pixels on a side run whole when the model's default tile would tile them anyway.
WHOLE_IMAGE_LIMIT = 512


def default_checkpoint(args):
    return utility.run_dir(args.save, args.dir_experiment) / "model" / "model_best.pt"


def resolve_checkpoint(args):
    """--pre_train, else the training run's model_best.pt; BICUBIC needs none."""
    if args.model == "BICUBIC":
        return ""
    if args.pre_train:
        return args.pre_train
    path = default_checkpoint(args)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}: train one first (cd codes && python demo_train.py "
                        f"--model={args.model} --scale={args.scale}) or pass --pre_train PATH")
    return str(path)


def input_files(args):
    """(source root, list of image paths) from --dir_data (a file or folder) or the dataset's test LR."""
    source = Path(args.dir_data) if args.dir_data else dataset_root(args) / args.data_test / f"LR_x{args.scale}"
    if source.is_file():
        return source.parent, [source]
    if not source.exists():
        raise UserError(f"input {source} does not exist: give an image or a folder with --dir_data")
    files = image_io.list_images(source, recursive=args.recursive)
    if not files:
        raise UserError(f"{source} holds no images ({', '.join(image_io.IMAGE_EXTENSIONS)})"
                        + ("" if args.recursive else "; add --recursive to read sub-folders"))
    return source, files


def output_dir(args):
    if args.dir_out:
        return Path(args.dir_out)
    name = args.dataset if not args.dir_data else Path(args.dir_data).stem
    return Path(args.dir_experiment) / "results" / f"{args.model}x{args.scale}_{name}"


def tile_settings(args, model, height, width):
    """(tile, overlap) in LR pixels: the flags, else the model's default, tiling only images larger than a tile."""
    default_tile, default_overlap = model.default_tile()
    tile = args.tile if args.tile >= 0 else default_tile
    overlap = args.tile_overlap if args.tile_overlap >= 0 else default_overlap
    if args.tile < 0 and max(height, width) <= max(tile, WHOLE_IMAGE_LIMIT):
        tile = 0
    if tile > 0 and overlap >= tile:
        raise UserError(f"--tile_overlap {overlap} must be smaller than --tile {tile}")
    return tile, overlap


class Deployer:
    def __init__(self, args, model, out_dir):
        self.args = args
        self.model = model
        self.out_dir = out_dir
        self.forward = model.inference_fn()

    def super_resolve(self, path, rel, bar):
        """SR of one image, written to out_dir/rel; returns (output path, output megapixels)."""
        args, s = self.args, self.args.scale
        lr, meta = image_io.read_image_with_meta(path)
        if lr.shape[2] != args.n_colors:
            raise UserError(f"{path} has {lr.shape[2]} bands but the model takes --n_colors {args.n_colors}")
        data_range = args.data_range or image_io.dtype_max(lr.dtype)
        x = torch.from_numpy(lr.transpose(2, 0, 1).astype(np.float32))[None] * (args.rgb_range / data_range)
        mask = image_io.nodata_mask(lr, meta)
        tile, overlap = tile_settings(args, self.model, lr.shape[0], lr.shape[1])
        n_tiles = (len(tiling.tile_starts(lr.shape[0], tile, overlap)) * len(tiling.tile_starts(lr.shape[1], tile,
                   overlap))) if tile > 0 else 1
        out_path = self.out_dir / rel
        height, width = lr.shape[0] * s, lr.shape[1] * s
        with tqdm(total=n_tiles, desc=f"{rel} tiles", leave=False, disable=n_tiles == 1) as tiles:
            strips = tiling.iter_tiled_strips(self.forward, x, s, tile, overlap, on_tile=lambda: tiles.update())
            if out_path.suffix.lower() in image_io.TIFF_EXTENSIONS:
                with image_io.GeoTiffWindowWriter(out_path, height, width, lr.shape[2], lr.dtype, meta, s) as w:
                    for row, strip in strips:
                        w.write(self.to_image(strip, data_range, lr.dtype, mask, meta, row), row, 0)
            else:
                parts = [self.to_image(strip, data_range, lr.dtype, mask, meta, row) for row, strip in strips]
                image_io.write_image(out_path, np.concatenate(parts, axis=0), meta, s)
        bar.set_postfix_str(f"{rel}: {lr.shape[1]}x{lr.shape[0]} -> {width}x{height}"
                            + (f", {n_tiles} tiles" if n_tiles > 1 else ""))
        return out_path, height * width / 1e6

    def to_image(self, strip, data_range, dtype, mask, meta, row):
        """A float SR strip -> the input's dtype; LR nodata pixels stay nodata (as s x s blocks)."""
        image = utility.tensor_to_image(strip[0], self.args.rgb_range, data_range, dtype)
        if mask is not None:
            s = self.args.scale
            hr_rows = np.arange(row, row + image.shape[0]) // s
            block = mask[hr_rows][:, np.arange(image.shape[1]) // s]
            image[block] = meta.nodata
        return image


def write_manifest(out_dir, args, checkpoint, source, outputs, skipped):
    on_dataset = not args.dir_data  # the dataset's test LR: its HR is the ground truth
    manifest = {"model": args.model, "scale": args.scale, "dataset": args.dataset if on_dataset else None,
                "gt": str((dataset_root(args) / args.data_test / "HR").resolve()) if on_dataset else None,
                "checkpoint": checkpoint or None, "source": str(Path(source).resolve()),
                "outputs": [str(p.relative_to(out_dir)) for p in outputs], "skipped": skipped,
                "n_colors": args.n_colors, "self_ensemble": args.self_ensemble, "precision": args.precision}
    path = out_dir / "manifest.json"
    tmp = path.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(path)
    return path


def main(argv=None):
    args = option.parse_args(argv)
    checkpoint = resolve_checkpoint(args)
    args.pre_train = checkpoint
    source, files = input_files(args)
    model = Model(args)
    model.eval()
    out_dir = output_dir(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    deployer = Deployer(args, model, out_dir)
    outputs, skipped, megapixels = [], [], 0.0
    start = time.time()
    with tqdm(files, desc=f"{args.model} x{args.scale}", unit="img", dynamic_ncols=True) as bar:
        for path in bar:
            rel = path.relative_to(source)
            try:
                out_path, mp = deployer.super_resolve(path, rel, bar)
            except UserError as err:
                tqdm.write(f"skipped: {err}")
                skipped.append(str(rel))
                continue
            outputs.append(out_path)
            megapixels += mp
    seconds = max(time.time() - start, 1e-9)
    manifest = write_manifest(out_dir, args, checkpoint, source, outputs, skipped)
    print(f"{len(outputs)} images -> {out_dir} ({len(outputs) / seconds:.2f} images/s, "
          f"{megapixels / seconds:.2f} MP/s output); manifest {manifest}")
    if args.compare and outputs:
        import compare
        compare.write_figures(args, source, outputs, out_dir)
    if skipped:
        raise UserError(f"{len(skipped)} of {len(files)} inputs skipped (named above): {', '.join(skipped[:3])}")
    return 0


if __name__ == "__main__":
    run_cli(main)
