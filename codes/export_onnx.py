"""Export a trained network to ONNX, for QGIS (the Deepness plugin's Superresolution mode) and other onnxruntime users.

    cd codes && python export_onnx.py --model=BASIC --scale=4          # the run's model_best.pt
    python export_onnx.py --model=HSENET --scale=4 --pre_train model_best.pt --out hsenet_x4.onnx --tile 128
    python export_onnx.py --model=BASIC --scale=4 --dynamic_shape      # any height and width
    python export_onnx.py --model=BICUBIC --scale=3                    # needs no checkpoint

The graph: input `input`, N x C x H x W float32 = file value / white level ([0, 1] for data within white), output
`output`, N x C x sH x sW in the same units (clipped to [0, 1] in a fixed-size graph). The network's own range
(--rgb_range: x rgb_range in, / rgb_range out) is part of the graph (UnitRangeNetwork), so a consumer does no
arithmetic; mean shifts and img_range are inside the networks already. N is dynamic. H = W = the tile by default: QGIS
Deepness reads the tile size and the scale from the input and output shapes and cannot open a graph whose size is
symbolic. --dynamic_shape exports any height and width instead (onnxruntime tools, demo_deploy.py --backend
onnxruntime), where the network allows (not TransENet, whose input size is fixed, nor BICUBIC, whose resize matrices
are constants of the size).

The tile is --tile, else the network's deploy tile, else 256 for networks that run whole images (Deepness always
tiles); a network of fixed input size (TransENet) takes exactly that size.

What QGIS Deepness does with the file (its processing/models and map_processor code): it opens the one input and
output, takes the tile from the input width and the scale from output / input width, divides the uint8 map tiles by
255, applies the metadata's standardization, runs batches of N tiles, multiplies the output by its "output scaling"
(255 by default) and stores it in a uint8 array, pasting each tile's whole output at the tile stride. Hence the
clipping to [0, 1] of the fixed-size graphs made for it (an overshoot would wrap around in uint8) and tiles_overlap 0
(an overlap makes that paste fail). Dynamic-size graphs are not clipped: like the PyTorch network, they keep values
above white, and --self_ensemble averages the same outputs in both deploy backends.

Metadata (model.metadata_props, each value JSON text):
- read by Deepness: model_type "Superresolution", tile_size (its code's key) and tiles_size (its documentation's) in LR
  pixels, tiles_overlap 0 (percent), standardization_mean / standardization_std (zeros, and white / 255 per band:
  the identity for 8-bit data, file value / white for 16-bit or reflectance data, since Deepness divides by 255), and
  resolution (cm per pixel of the layer Deepness reads: --resolution, else the training HR's ground sample
  distance, so the model sees imagery at the resolution it learned to produce);
- ours: model, scale, n_colors, bands, data_range (the white level, --data_range; null: the dtype's peak, as in
  deploy), training_white (that of the training data), checkpoint and its sha256, deploy's tile / overlap / tile
  multiple, the attention path, whether the size is dynamic and the output clipped.

Before writing, the graph is run with onnxruntime against PyTorch on a real tile (the first test LR of the dataset the
model was trained on, or of an embedded sample with as many bands, mirrored up to the tile size; for a dynamic graph
also a crop of another size): a difference above 1e-4 is an error and nothing is written. --timing also prints both
timings (median of 3 runs, after the verification's run); they are not taken by default, since on a large network
they take longer than the export itself (HSENet's Sample preset at a 128-pixel tile: 10 s of an 18 s export).

Export path: torch.onnx's TorchScript exporter (the dynamo exporter needs onnxscript, and took 12 s for HSENet and
35 s for SwinIR at a 16-pixel tile, against 1.9 and 12.5 s), on the loaded network itself: a trace neither reads nor
fills the attention-mask caches, so no earlier run's input size is baked into the graph. Fused attention
(scaled_dot_product_attention) exports from opset 14; below that it is built with --attention naive
(config.decide_export_settings), unless the command line chooses the attention.
"""
import cpu_runtime  # noqa: F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import torch

import atomic
import image_files
import image_io
import option
import paths
import tiling
from data.dataset_json import read_dataset_metadata
from errors import UserError, run_cli
from model import Model, tile_plan
from onnx_export import DYNAMIC_TRACE_SIZE, TOLERANCE, Exporter, max_difference, run_session
from onnx_graph import add_metadata, open_session, read_metadata, sha256_of
from radiometry import Radiometry

TIMING_RUNS = 3
WHOLE_IMAGE_TILE = 256  # the tile for networks that run whole images: Deepness always tiles


def median_seconds(fn, runs=TIMING_RUNS):
    """Median wall time of `runs` calls (the verification run before it was the warm-up)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----------------------------------------------------------------------------------------------- what to export
def export_plan(model, cfg):
    """The tile plan the export is made for: deploy's, or WHOLE_IMAGE_TILE tiles where deploy runs whole images."""
    if model.tile_plan.tile:
        return model.tile_plan
    return tile_plan(model.spec, cfg, tile=WHOLE_IMAGE_TILE)


def input_size(cfg, plan, model_name):
    """(tile, tile) for a fixed-size graph, None for a dynamic one (--dynamic_shape)."""
    if not cfg.dynamic_shape:
        tiling.check_tile_memory(plan.tile, cfg.n_colors, cfg.scale, f"--tile {plan.tile}: the export's trace",
                                 "give a smaller --tile (QGIS Deepness tiles the layer at it)")
        return plan.tile, plan.tile
    if plan.fixed:
        raise UserError(f"--dynamic_shape: {model_name} takes inputs of exactly {plan.tile}x{plan.tile} LR pixels; "
                        f"drop --dynamic_shape")
    return None


def trained_dataset(cfg):
    """(name, root, known) of the dataset the checkpoint was trained on (its recorded configuration), else of
    --dataset / --dir_data; `known` is False when neither a checkpoint nor the command line names one."""
    trained = cfg.trained_with
    if trained["dataset"]:
        return trained["dataset"], paths.dataset_root(trained["dir_data"], trained["dataset"]), True
    explicit = "command line" in (cfg.sources.get("dataset"), cfg.sources.get("dir_data"))
    return cfg.dataset, paths.dataset_root(cfg.dir_data, cfg.dataset), explicit


def output_path(cfg, dataset):
    default = paths.onnx_path(cfg.dir_experiment, cfg.model, cfg.scale, dataset)
    out = Path(cfg.out) if cfg.out else default
    if out.is_dir():
        raise UserError(f"--out {out} is a folder: give the .onnx file to write, e.g. --out {out / 'model.onnx'}")
    if cfg.checkpoint_path and out.resolve() == Path(cfg.checkpoint_path).resolve():
        raise UserError(f"--out {out} is the checkpoint being exported: pick another file")
    if out.exists() and not is_earlier_export(out):
        raise UserError(f"--out {out} exists and is not an export of this toolbox, so it is not an earlier export to "
                        f"replace: move it away or pick another --out")
    return out


def is_earlier_export(path):
    """Whether `path` is an ONNX file this script wrote: it parses as ONNX and its metadata names the model and the
    scale (any protobuf file whose first byte is 0x08 would pass a look at its header alone)."""
    try:
        meta = read_metadata(path)
    except UserError:
        return False
    return isinstance(meta.get("model"), str) and meta.get("scale") is not None


def training_white(cfg):
    """The white level of the data the model was trained on (the checkpoint's training radiometry), or None."""
    record = cfg.trained_with["radiometry"]
    return float(record["white"]) if record and record.get("white") else None


def deepness_std(cfg):
    """Deepness divides the layer's values by 255, then by standardization_std: white / 255 turns them into file value
    / white, what the graph takes (1, the identity, for 8-bit data). White: --data_range, else that of the training
    data, else 255."""
    return (cfg.data_range or training_white(cfg) or 255.0) / 255.0


def verification_image(cfg, dataset_root):
    """(path, (H, W, C) array) of a real LR image with the model's band count: the first test LR of the training
    dataset, else of the embedded samples; (None, None) when there is none."""
    for root in (dataset_root, paths.dataset_root(None, "Sample"), paths.dataset_root(None, "SampleMS")):
        folder = Path(root) / cfg.data_test / f"LR_x{cfg.scale}"
        if not folder.is_dir():
            continue
        for path in image_files.list_images(folder)[:1]:
            image = image_io.read_image(path, cfg.max_pixels)
            if image.shape[2] == cfg.n_colors:
                return path, image
    return None, None


def verification_tiles(cfg, image, plan, size):
    """The (1, C, H, W) inputs in [0, 1] to verify on: the tile of a fixed graph (the image mirrored up to it where
    smaller), or for a dynamic graph the image up to one deploy tile and a smaller crop of another shape."""
    if image is None:
        image = np.random.default_rng(0).random((64, 64, cfg.n_colors), dtype=np.float32)
    if size:
        height, width = size
    else:
        height, width = (min(side, plan.tile) for side in image.shape[:2])
    pad = ((0, max(0, height - image.shape[0])), (0, max(0, width - image.shape[1])), (0, 0))
    image = np.pad(image, pad, mode="symmetric")[:height, :width]
    radiometry = Radiometry.of(image.dtype, cfg.data_range, 1.0)
    x = radiometry.to_network(np.nan_to_num(image))[None]
    if size:
        return [x]
    return [x, x[..., :max(8, height - 5), :max(8, width - 3)]]


def gsd_resolution_cm(cfg, dataset_root, dataset_known):
    """(the training HR's GSD in metres, Deepness's `resolution` in cm per pixel): the GSD from the checkpoint (or the
    shipped model's index entry), else from dataset.json; the resolution is --resolution, else that GSD, so QGIS reads
    the layer at the resolution the model learned to produce and SR makes it s times finer. (None, None) when
    unknown."""
    gsd = cfg.trained_with["gsd"]
    if gsd is None and dataset_known and Path(dataset_root).is_dir():
        gsd = read_dataset_metadata(dataset_root).get("gsd")
    resolution = cfg.resolution if cfg.resolution else (round(float(gsd) * 100.0, 6) if gsd else None)
    return (float(gsd) if gsd else None), resolution


def export_metadata(cfg, exporter, deploy_plan, plan, size, gsd, resolution_cm, tile_multiple):
    n = cfg.n_colors
    meta = {
        # QGIS Deepness (processing/models/model_base.py reads these keys and json-decodes the values)
        "model_type": "Superresolution",
        "tile_size": plan.tile,
        "tiles_size": plan.tile,
        # Deepness's super-resolution processor pastes each tile's whole output at the tile stride: any overlap makes
        # the shapes disagree and the run fail, so tiles do not overlap there (see tile_overlap_px for deploy's).
        "tiles_overlap": 0,
        "standardization_mean": [0.0] * n,
        "standardization_std": [deepness_std(cfg)] * n,
        # this toolbox
        "model": cfg.model,
        "scale": cfg.scale,
        "n_colors": n,
        "bands": cfg.bands,
        "data_range": cfg.data_range,
        "training_white": training_white(cfg),
        "input_range": "file value / data_range, [0, 1] for data within white (data_range null: the dtype's peak)",
        "checkpoint": Path(cfg.checkpoint_path).name if cfg.checkpoint_path else None,
        "checkpoint_sha256": sha256_of(cfg.checkpoint_path) if cfg.checkpoint_path else None,
        "deploy_tile": deploy_plan.tile,
        "tile_overlap_px": plan.overlap,
        "tile_multiple": tile_multiple,
        "dynamic_shape": size is None,
        "output_clamped": exporter.clamp,
        "attention": exporter.attention,
    }
    if resolution_cm:
        meta.update(resolution=resolution_cm)
    if gsd:
        meta.update(gsd_m=gsd)
    return meta


def verification_error(cfg, size, diff, label):
    if size is None:
        traced = "x".join(map(str, DYNAMIC_TRACE_SIZE))
        return UserError(f"{cfg.model} does not export with a dynamic size: its graph, traced at {traced}, differs "
                         f"from PyTorch by {diff:.3g} on a {label} input (the network computes from its input size in "
                         f"Python); drop --dynamic_shape: nothing written")
    return UserError(f"the ONNX graph of {cfg.model} differs from PyTorch by {diff:.3g} > {TOLERANCE:g} on a {label} "
                     f"input: nothing written; try another --opset, or --attention naive")


def shape_text(size, n_colors, scale):
    if size is None:
        return f"N x {n_colors} x H x W -> N x {n_colors} x {scale}H x {scale}W"
    h, w = size
    return f"N x {n_colors} x {h} x {w} -> N x {n_colors} x {h * scale} x {w * scale}"


def verify(cfg, session, reference, tiles, size, source):
    """Print max |onnxruntime - PyTorch| on each tile; a difference above TOLERANCE is a one-line error."""
    where = source or "random values (no real LR image with this band count was found)"
    for x in tiles:
        diff = max_difference(session, reference, x)
        label = f"{x.shape[-2]}x{x.shape[-1]}"
        print(f"verified on {where} ({label}): max |onnxruntime - PyTorch| = {diff:.3g} (limit {TOLERANCE:g})")
        if not diff <= TOLERANCE:
            raise verification_error(cfg, size, diff, label)


def print_timings(session, reference, x):
    with torch.no_grad():
        torch_s = median_seconds(lambda: reference(x))
    onnx_s = median_seconds(lambda: run_session(session, x))
    print(f"timing, {x.shape[-2]}x{x.shape[-1]} tile, median of {TIMING_RUNS} (CPU, {torch.get_num_threads()} torch "
          f"threads): PyTorch {torch_s:.3f} s, onnxruntime {onnx_s:.3f} s")


def main(argv=None):
    cfg = option.parse_args(argv, purpose="export")  # on the CPU: config.decide_export_settings
    dataset, dataset_root, dataset_known = trained_dataset(cfg)
    out = output_path(cfg, dataset)
    model = Model(cfg)
    exporter = Exporter(cfg, model, clamp=not cfg.dynamic_shape)
    plan = export_plan(model, cfg)
    size = input_size(cfg, plan, cfg.model)
    source, image = verification_image(cfg, dataset_root)
    tiles = verification_tiles(cfg, image, plan, size)
    gsd, resolution_cm = gsd_resolution_cm(cfg, dataset_root, dataset_known)
    atomic.remove_stale_temps(out.parent, out.name)  # what a killed export of this file left
    with atomic.atomic_target(out) as tmp:  # fails now if --out cannot be written; nothing is left on an error
        graph = exporter.export(size, cfg.opset)
        print(f"exported {cfg.model} x{cfg.scale} ({cfg.checkpoint_path or 'no checkpoint'}), opset {cfg.opset}, "
              f"attention {exporter.attention}: {shape_text(size, cfg.n_colors, cfg.scale)}, float32 in [0, 1]")
        session, reference = open_session(graph), exporter.network
        verify(cfg, session, reference, tiles, size, source)
        if cfg.timing:
            print_timings(session, reference, tiles[0])
        proto = onnx.load_from_string(graph)
        add_metadata(proto, export_metadata(cfg, exporter, model.tile_plan, plan, size, gsd, resolution_cm,
                                            model.spec.tile_multiple_of(cfg)))
        onnx.save(proto, str(tmp))
    extra = f", resolution {resolution_cm:g} cm/px" if resolution_cm else ""
    print(f"wrote {out} (Deepness Superresolution: tile {plan.tile}, no overlap{extra})")
    return 0


if __name__ == "__main__":
    run_cli(main)
