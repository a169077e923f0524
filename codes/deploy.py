"""The deploy library: input planning, the output guards, nodata handling, the Deployer, --align_to, the manifest.

demo_deploy.py parses the flags and calls `run(cfg)`; quickstart.py and pretrained_zoo.py call it the same way.
What a deploy promises (one SR image per input in the input's dtype and georeferencing, nodata kept, tiles blended
without seams, nothing overwritten that the run did not write, a manifest) is told in demo_deploy.py and
docs/deploy.md.
"""
import json
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

import atomic
import distributed
import image_files
import image_io
import paths
import progress
import runs
from bounded import plausible_gsd
from consistency import gsd_warning, lr_consistency
from consistency import summary_line as consistency_summary
from data import dataset_root
from data.dataset_json import check_complete, read_dataset_metadata
from errors import Terminated, UserError
from image_files import TIFF_EXTENSIONS
from model import Model
from radiometry import Radiometry, invalid_pixels

# GDAL's block cache defaults to 5% of the RAM; written blocks wait there, so without a cap a big output scene would
# sit in memory until the file is closed. Blocks are written whole (see AlignedRows), so a small cache is enough.
GDAL_WRITE_CACHE_BYTES = 64 * 2**20
# Float strips are rounded to the output dtype this many values at a time (rounding works in float64).
ROUNDING_CHUNK_VALUES = 2**21


# ------------------------------------------------------------------------------------------------ inputs, outputs
def on_dataset(cfg):
    """True when the input is a dataset's --data_test split: no --dir_data, or --dir_data naming a dataset root
    (<root>/<split>/LR_x<s>, as for training). Its HR is then the ground truth."""
    return not cfg.dir_data or (Path(cfg.dir_data) / cfg.data_test / f"LR_x{cfg.scale}").is_dir()


def input_files(cfg, out_dir):
    """(source, list of image paths): an image (source = the file), a folder, or a dataset's test LR; files inside
    the output folder (our own earlier outputs) are never inputs."""
    if on_dataset(cfg):
        check_complete(dataset_root(cfg))
        source = dataset_root(cfg) / cfg.data_test / f"LR_x{cfg.scale}"
    else:
        source = Path(cfg.dir_data)
        if source.is_dir() and ((source / "dataset.json").is_file() or (source / cfg.data_train).is_dir()):
            raise UserError(f"--dir_data {source} is a dataset root without a {cfg.data_test}/LR_x{cfg.scale} "
                            f"split: prepare it with a test split (prepare_dataset.py --split ...), or pass "
                            f"--data_test with the split to super-resolve")
    if source.is_file():
        return source, [source]
    if not source.exists():
        raise UserError(f"input {source} does not exist: give an image or a folder with --dir_data")
    outputs = out_dir.resolve()
    files = [p for p in image_files.list_images(source, recursive=cfg.recursive)
             if outputs == source.resolve() or outputs not in p.resolve().parents]
    if not files:
        raise UserError(f"{source} holds no images ({', '.join(image_files.IMAGE_EXTENSIONS)})"
                        + ("" if cfg.recursive else "; add --recursive to read sub-folders"))
    return source, files


def relative_name(source, path):
    return Path(path.name) if source.is_file() else path.relative_to(source)


def output_dir(cfg):
    if cfg.dir_out:
        return Path(cfg.dir_out)
    name = cfg.dataset if on_dataset(cfg) else Path(cfg.dir_data).stem
    return paths.results_dir(cfg.dir_experiment, cfg.model, cfg.scale, name)


def protected_folders(cfg):
    """Folders no output may go into: the dataset being evaluated and the --compare ground truth."""
    folders = [dataset_root(cfg)] if on_dataset(cfg) else []
    if cfg.compare:
        folders.append(Path(cfg.compare))
    return [f.resolve() for f in folders]


def check_output_folder(cfg, out_dir):
    """The output folder may not lie in the dataset being evaluated or the --compare ground truth, hold them or the
    input folder, hold the training runs, lie in a run, or (with --recursive) lie in the tree it reads (links
    resolved)."""
    resolved_out, protected = out_dir.resolve(), protected_folders(cfg)
    for folder in protected:
        if resolved_out == folder or folder in resolved_out.parents:
            raise UserError(f"--dir_out {out_dir} is inside {folder}, whose files are the inputs or the ground "
                            f"truth: pick a --dir_out outside it")
    source = Path(cfg.dir_data).resolve() if cfg.dir_data and not on_dataset(cfg) else None
    inputs = [*protected, *([source] if source is not None and source.is_dir() else [])]
    held = next((folder for folder in inputs if resolved_out in folder.parents), None)
    if held is not None:  # its outputs would mix with the inputs, which are then passed over as outputs
        raise UserError(f"--dir_out {out_dir} holds {held}, whose files are the inputs or the ground truth: pick a "
                        f"--dir_out outside it")
    experiment = Path(cfg.dir_experiment).resolve()
    if resolved_out == experiment or resolved_out in experiment.parents:
        raise UserError(f"--dir_out {out_dir} holds the training runs of --dir_experiment {cfg.dir_experiment}: a "
                        f"deploy's results folder may not enclose them; pick a --dir_out outside it, or leave it out "
                        f"(the default is {paths.results_root(cfg.dir_experiment)}/<MODEL>x<scale>_<name>)")
    run = runs.enclosing_folder(out_dir, "run")
    if run is not None:
        where = "is a training run's folder" if run == resolved_out else f"is inside the training run folder {run}"
        raise UserError(f"--dir_out {out_dir} {where}: its checkpoints, log and plots are not deploy's to replace; "
                        f"pick another --dir_out")
    if cfg.recursive and source is not None and source.is_dir() and source in resolved_out.parents:
        raise UserError(f"--dir_out {out_dir} is inside {cfg.dir_data}, which --recursive reads: the inputs there "
                        f"would be passed over, and the outputs read as inputs next time; pick a --dir_out outside "
                        f"it")


def check_outputs(source, files, out_dir):
    """Refuse, before any work, every output path that would replace an input or a file in the output folder that
    this tool did not write (paths compared after resolving symlinks)."""
    inputs = {p.resolve() for p in files}
    written = runs.WrittenFiles(out_dir) if out_dir.is_dir() else None
    for path in files:
        rel = relative_name(source, path)
        if (out_dir / rel).resolve() in inputs:
            raise UserError(f"--dir_out {out_dir}: the output {out_dir / rel} would overwrite the input {path}; pick "
                            f"another --dir_out")
    for rel in [relative_name(source, p) for p in files] + [Path("manifest.json")]:
        if os.path.lexists(out_dir / rel) and (written is None or rel not in written):
            raise UserError(f"{out_dir / rel} exists and was not written by demo_deploy.py (it is not in "
                            f"{runs.WRITTEN_FILES}): move it away or pick another --dir_out")


def check_compare_dir(cfg):
    if cfg.compare and not Path(cfg.compare).is_dir():
        raise UserError(f"--compare {cfg.compare}: no such folder; give the folder of HR images that match the "
                        f"inputs by name")


# --------------------------------------------------------------------------------------------------- one image
def network_input(lr, mask, radiometry):
    """(1, C, H, W) float32 in network units; invalid pixels (nodata, NaN) take their band's valid mean so no fill
    value leaks into the valid pixels next to them (their output is set back to nodata afterwards)."""
    if mask is None:
        return radiometry.to_network(lr)[None]
    return radiometry.to_network(np.nan_to_num(lr, nan=0.0, posinf=0.0, neginf=0.0), fill=mask)[None]


def invalid_mask(path, lr, meta):
    """Nodata pixels (all bands equal the declared nodata) and NaN/Inf pixels (treated as nodata, with a warning
    when the file declares no nodata); None when every pixel is valid."""
    mask = image_io.nodata_mask(lr, meta)
    nonfinite = invalid_pixels(lr)
    if nonfinite.any():
        if meta.nodata is None:
            warnings.warn(f"{path}: {int(nonfinite.sum())} NaN/Inf pixels and no declared nodata: treated as "
                          f"nodata (NaN in the output)", stacklevel=2)
        mask = nonfinite if mask is None else mask | nonfinite
    return mask if mask is not None and mask.any() else None


class Deployer:
    def __init__(self, cfg, model, out_dir, alignment=None):
        """`alignment`: plan_inputs' Alignment for --align_to (None without it)."""
        self.cfg = cfg
        self.model = model
        self.out_dir = out_dir
        self.plan = model.tile_plan
        self.training_gsd = cfg.trained_with["gsd"]
        # what the files may not say, from the deployed dataset's dataset.json: the band names (else --input_bands)
        # and the LR pixel size (its HR GSD times the scale), for the GSD guard
        dataset_meta = read_dataset_metadata(dataset_root(cfg)) if on_dataset(cfg) else {}
        self.input_bands = cfg.input_bands or dataset_meta.get("bands")
        hr_gsd = plausible_gsd(dataset_meta.get("gsd"))
        self.input_gsd = hr_gsd * cfg.scale if hr_gsd else None
        self.align = alignment

    def super_resolve(self, path, rel, records):
        """SR of one image, written to out_dir/rel; its manifest record is appended to `records` once the output is
        complete, and then gets the output's LR consistency."""
        cfg, s = self.cfg, self.cfg.scale
        lr, meta = image_io.read_image_with_meta(path, cfg.max_pixels)
        lr, meta = image_io.select_bands(path, lr, meta, cfg.bands, self.input_bands)  # by name, where named
        check_bands(path, lr, cfg.n_colors)
        aligned = None
        if self.align:
            lr, meta, aligned = self.align.warp(path, lr, meta)
        meta = image_io.with_band_names(meta, cfg.bands)
        warning = gsd_warning(path, meta, self.training_gsd, s, self.input_gsd)
        if warning:
            progress.write(warning, file=sys.stderr)
        radiometry = Radiometry.of(lr.dtype, cfg.data_range, self.model.network_range)
        mask = invalid_mask(path, lr, meta)
        radiometry.check_values(lr, path, cfg.data_range is not None, None if mask is None else ~mask)
        x = network_input(lr, mask, radiometry)
        n_tiles = self.plan.count(lr.shape[0], lr.shape[1])
        out_path = self.out_dir / rel  # recorded as ours by claim_outputs before any work
        height, width, bands = lr.shape[0] * s, lr.shape[1] * s, lr.shape[2]
        nodata = meta.nodata
        if nodata is None and mask is not None:  # NaN/Inf pixels with no declared nodata: NaN marks them
            nodata = float("nan")
            meta = replace(meta, geo=dict(meta.geo, nodata=nodata)) if meta.geo else meta
        cog = self.cfg.cog == "yes" or (self.cfg.cog == "auto" and meta.geo is not None)
        with progress.Counter(n_tiles, f"{rel} tiles", min_items=2, unit="tile") as tiles:
            forward = self.model.inference_fn(radiometry=radiometry)
            strips = self.plan.strips(forward, x, s, on_tile=tiles.update)
            images = (self.to_image(strip, radiometry, mask, nodata, row) for row, strip in strips)
            if out_path.suffix.lower() in TIFF_EXTENSIONS:
                import rasterio  # rasterio (GDAL) and geotiff.py: imported for the first GeoTIFF output

                import geotiff

                with rasterio.Env(GDAL_CACHEMAX=GDAL_WRITE_CACHE_BYTES), \
                        geotiff.GeoTiffWindowWriter(out_path, height, width, bands, lr.dtype, meta, s,
                                                     cog=cog) as writer:
                    rows = geotiff.AlignedRows(writer)
                    for image in images:
                        rows.add(image)
                    rows.flush()
            else:  # PNG/JPG: whole images in memory anyway (the encoders need them)
                image_io.write_image(out_path, np.concatenate(list(images), axis=0), meta, s)
        record = {"input": rel.as_posix(), "output": rel.as_posix(), "lr_size": [lr.shape[1], lr.shape[0]],
                  "sr_size": [width, height], "bands": bands, "dtype": lr.dtype.name,
                  "cog": cog and out_path.suffix.lower() in TIFF_EXTENSIONS,
                  "radiometry": radiometry.record(), "tile": self.plan.tile if n_tiles > 1 else 0,
                  "tile_overlap": self.plan.overlap if n_tiles > 1 else 0, "tiles": n_tiles,
                  "lr_consistency": None, **({"aligned": aligned} if aligned else {})}
        records.append(record)  # the output is complete: a stop while it is read back below still records it
        record["lr_consistency"] = lr_consistency(out_path, lr, mask, s, radiometry.white)

    def to_image(self, strip, radiometry, mask, nodata, row):
        """A float SR strip (1, C, h, W) -> (h, W, C) of the input's dtype; LR nodata pixels stay nodata (as s x s
        blocks) and valid pixels never turn into nodata. Rounded in row chunks to bound the float64 temporaries."""
        step = max(1, ROUNDING_CHUNK_VALUES // (strip.shape[1] * strip.shape[3]))
        image = np.concatenate([radiometry.from_network(strip[0, :, r:r + step])
                                for r in range(0, strip.shape[2], step)], axis=0)
        if mask is not None:
            restore_nodata(image, mask, nodata, self.cfg.scale, row)
        return image


class Alignment:
    """--align_to RASTER: each input warped onto RASTER's LR grid (pairing.align_input), with the harmonization of a
    paired dataset (prepare_dataset.py --lr_src --harmonize linear) that --dataset names or the model was trained on."""

    def __init__(self, cfg, target):
        """`target`: the (Grid, dtype) of the --align_to raster (pairing.raster_grid), read once by plan_inputs,
        which builds this (its dataset.json record checked) before any output exists."""
        import pairing

        self.cfg = cfg
        self.target = str(Path(cfg.align_to).resolve())
        self.grid, raster_dtype = target
        self.radiometry = None
        self.pairs = []
        trained = (cfg.trained_with or {}).get("radiometry") or {}
        dataset, where = paired_dataset(cfg)
        record = dataset.get("pairing")
        # the training tiles' dtype (prepare_dataset.py writes the LR in the HR's), so the white level is theirs;
        # else the HR sensor's, the raster's
        self.dtype = pairing.known_dtype(trained.get("dtype") or dataset.get("dtype"),
                                         where or cfg.checkpoint_path) or raster_dtype
        if record:
            self.pairs = record.get("pairs", [])
        if record and record.get("harmonize") == "linear":
            bands = cfg.bands or record.get("bands") or []
            checked = pairing.check_radiometry_record(record.get("radiometry"), bands, where)
            self.radiometry = {band: checked[band] for band in bands}

    def displacement(self, path):
        """The displacement the preparation measured and corrected for this very LR scene on this HR scene, else
        none (another scene of the LR sensor has its own)."""
        scene = str(Path(path).resolve())
        for pair in self.pairs:
            if pair.get("lr_source") == scene and pair.get("hr_source") == self.target:
                return pairing_module().checked_displacement(pair.get("displacement_hr_px"), scene)
        return (0.0, 0.0)

    def warp(self, path, lr, meta):
        shift = self.displacement(path)
        lr, meta, record = pairing_module().align_input(path, lr, meta, self.grid, self.cfg.scale, self.cfg.max_pixels,
                                                        self.radiometry, self.dtype, shift)
        return lr, meta, dict(record, align_to=self.target, displacement_hr_px=shift)


def pairing_module():
    """pairing (rasterio's warp), imported only for --align_to; an Alignment calls this rather than keeping the
    module, since plan_inputs' result travels to every rank."""
    import pairing

    return pairing


def paired_dataset(cfg):
    """(dataset.json's values, its path) of the deployed dataset, else of --dataset under datasets/, else of the
    dataset the model was trained on, when it is here and was prepared from two sensors; ({}, None) when none is."""
    trained_root = (cfg.trained_with or {}).get("dir_data")
    candidates = [dataset_root(cfg) if on_dataset(cfg) else None, paths.DATASETS_DIR / cfg.dataset,
                  Path(trained_root) if trained_root else None]
    for root in candidates:
        if root is not None and root.is_dir():
            values = read_dataset_metadata(root)
            if values.get("pairing") is not None:
                pairing_module().check_pairing_record(values["pairing"], root / "dataset.json")
                return values, root / "dataset.json"
    return {}, None


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


# ------------------------------------------------------------------------------------------------------- the run
def write_manifest(out_dir, written, cfg, source, records, skipped, figures, seconds, backend=None, stopped=None):
    """manifest.json; `backend`: the backend's record (default: PyTorch's); `stopped`: what stopped an unfinished
    run ('SIGTERM', 'SIGINT'), which the manifest records with complete: false."""
    known_gt = on_dataset(cfg)
    radiometries = {json.dumps(r["radiometry"], sort_keys=True) for r in records}
    manifest = {"model": cfg.model, "scale": cfg.scale, "dataset": cfg.dataset if known_gt else None,
                "gt": ground_truth(cfg),
                "checkpoint": cfg.checkpoint_path or None, "source": str(Path(source).resolve()),
                "outputs": [r["output"] for r in records], "skipped": skipped,
                "n_colors": cfg.n_colors, "bands": cfg.bands, "data_range": cfg.data_range,
                "radiometry": json.loads(radiometries.pop()) if len(radiometries) == 1 else None,
                "self_ensemble": cfg.self_ensemble, "precision": cfg.precision,
                "images": records, "figures": figures, "seconds": round(seconds, 3),
                **(backend or {"backend": "torch"}), "complete": stopped is None,
                **({"stopped_by": stopped} if stopped else {})}
    written.add("manifest.json")
    path = out_dir / "manifest.json"
    atomic.write_text(path, json.dumps(manifest, indent=2))
    return path


def ground_truth(cfg):
    """What the metric script scores the outputs against by default: the --align_to scene (the SR lies on its grid),
    else the deployed dataset's HR, else nothing."""
    if cfg.align_to:
        return str(Path(cfg.align_to).resolve())
    return str((dataset_root(cfg) / cfg.data_test / "HR").resolve()) if on_dataset(cfg) else None


def run_all(deployer, source, files, records, skipped):
    """Super-resolve every file into `records` and `skipped` (filled as it goes: an interrupted run keeps what was
    finished); a UserError (unreadable, too large, wrong bands) or running out of memory on one file skips it and
    goes on."""
    for path in progress.bar(files, f"{deployer.cfg.model} x{deployer.cfg.scale}", unit="img"):
        rel = relative_name(source, path)
        reason = skip_reason(deployer, path, rel, records)
        if reason is not None:
            records[:] = [r for r in records if r["input"] != rel.as_posix()]  # one that failed after it was recorded
            progress.write(f"skipped: {reason}", file=sys.stderr)
            skipped.append({"input": rel.as_posix(), "reason": reason})


def skip_reason(deployer, path, rel, records):
    """Super-resolve one file into `records`; why it is skipped, or None when it was not."""
    try:
        deployer.super_resolve(path, rel, records)
    except UserError as err:
        return str(err) if str(path) in str(err) else f"{path}: {err}"  # every skip names its file
    except MemoryError:
        return f"{path}: out of memory; pass a smaller --tile, or a smaller --max_pixels to skip such images"
    except torch.OutOfMemoryError:
        raise UserError(f"{path}: out of GPU memory; pass a smaller --tile (LR pixels), e.g. --tile 128, "
                        f"or --cpu") from None
    return None


class DeployBackend(Protocol):
    """What the Deployer uses of the network it runs: model.Model (PyTorch) and onnx_backend.OnnxModel both
    implement it, and deploy_model is the one place that picks between them."""

    scale: int
    network_range: float  # full white inside the network
    device: torch.device
    tile_plan: object  # tiling.TilePlan
    precision_note: str | None  # one line when --precision cannot apply, said once

    def eval(self): ...

    def inference_fn(self, self_ensemble=None, radiometry=None): ...

    def record(self) -> dict: ...  # the manifest's record of the backend


def deploy_model(cfg, device=None) -> DeployBackend:
    """The network deploy runs, the one place that reads --backend: model.Model (PyTorch), or
    onnx_backend.OnnxModel (--backend onnxruntime: the --onnx file, or the checkpoint exported on the fly)."""
    if cfg.backend == "torch":
        return Model(cfg, device=device).eval()
    import onnx_backend

    return onnx_backend.deploy_model(cfg, None if cfg.onnx else Model(cfg))


def plan_inputs(cfg, out_dir):
    """(source, files, the Alignment of --align_to or None) after every check on the inputs and the outputs,
    before any work."""
    check_compare_dir(cfg)
    target = None
    if cfg.align_to:  # a raster that cannot give a grid is refused before the output folder exists
        import pairing

        target = pairing.raster_grid(cfg.align_to)
    check_output_folder(cfg, out_dir)
    source, files = input_files(cfg, out_dir)
    check_outputs(source, files, out_dir)
    alignment = None
    if target is not None:
        pairing.check_input_scales(files, cfg.scale, target[0])
        alignment = Alignment(cfg, target)
    if cfg.compare:  # a figure and its HR are found by the input's name without extension: one stem, one input
        for folder in sorted({p.parent for p in files}):
            image_files.check_unique_stems([p for p in files if p.parent == folder], folder)
    return source, files, alignment


def claim_outputs(out_dir, source, files):
    """Rank 0: lock the output folder, clear a killed run's temp files, and record every output it will hold
    (before anyone writes it, so a crash never leaves an unrecorded file of ours)."""
    lock = runs.FolderLock(out_dir, "deploy").acquire()
    try:
        outputs = [relative_name(source, path) for path in files]
        for folder in sorted({out_dir, *(out_dir / rel.parent for rel in outputs)}):  # --recursive: sub-folders too
            atomic.remove_stale_temps(folder)
        written = runs.WrittenFiles(out_dir)
        # an earlier deploy's outputs of inputs not given now would mix into this run's results: they go
        removed = written.delete_except(outputs)
        if removed:
            print(f"note: removed {removed} file{'' if removed == 1 else 's'} that an earlier deploy wrote into "
                  f"{out_dir} (its manifest and figures, and outputs of inputs not given now)")
        for rel in outputs:
            written.add(rel)
    except BaseException:
        lock.release()
        raise
    return lock, written


def deploy(cfg, ctx):
    """Super-resolve every input; under torchrun each rank takes every world-th file (the unit of work is the
    file) and rank 0 writes the figures and the one manifest."""
    out_dir = output_dir(cfg)
    source, files, alignment = distributed.agree(ctx, plan_inputs, cfg, out_dir)
    model = distributed.agree(ctx, deploy_model, cfg, ctx.device)
    if model.precision_note and ctx.main:
        print(model.precision_note)
    lock, written = distributed.on_main(ctx, claim_outputs, out_dir, source, files, default=(None, None))
    records, skipped, start = [], [], time.perf_counter()
    try:
        try:
            run_all(Deployer(cfg, model, out_dir, alignment), source, distributed.shard(ctx, files), records, skipped)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: the manifest says what was finished
            if ctx.main and not ctx.active:
                write_manifest(out_dir, written, cfg, source, records, skipped, [], time.perf_counter() - start,
                               model.record(), stopped="SIGTERM" if isinstance(stop, Terminated) else "SIGINT")
            raise
        order = {relative_name(source, p).as_posix(): k for k, p in enumerate(files)}
        records = sorted(distributed.gather(ctx, records), key=lambda r: order[r["input"]])
        skipped = sorted(distributed.gather(ctx, skipped), key=lambda r: order[r["input"]])
        if ctx.main:
            finish(cfg, out_dir, written, source, records, skipped, max(time.perf_counter() - start, 1e-9),
                   model.record())
    finally:
        if lock is not None:
            lock.release()
    if skipped:
        first = skipped[0]["reason"]
        others = "none was written" if len(skipped) == len(files) else "the others were written"
        raise UserError(f"{len(skipped)} of {len(files)} inputs skipped ({others}): {first}"
                        + (f" (and {len(skipped) - 1} more, listed above)" if len(skipped) > 1 else ""))
    return 0


def finish(cfg, out_dir, written, source, records, skipped, seconds, backend):
    """The closing line, the --compare figures and the manifest (rank 0)."""
    megapixels = sum(r["sr_size"][0] * r["sr_size"][1] for r in records) / 1e6
    rate = f" ({len(records) / seconds:.2f} images/s, {megapixels / seconds:.2f} MP/s output)" if records else ""
    print(f"{len(records)} images -> {out_dir} in {seconds:.1f} s{rate}" + (f"; {len(skipped)} skipped" if skipped
                                                                             else ""))
    figures = []
    if cfg.compare and records:
        import compare  # only needed here
        figures = compare.write_figures(cfg, source, records, out_dir, written)
    manifest = write_manifest(out_dir, written, cfg, source, records, skipped, figures, seconds, backend)
    line = consistency_summary(records)
    if line:
        print(line)
    print(f"manifest: {manifest}")


def run(cfg):
    """Deploy with a resolved configuration (option.parse_args(..., purpose="deploy")): one process, or one rank of
    torchrun."""
    ctx = distributed.setup(cfg.cpu)
    try:
        return deploy(cfg, ctx)
    finally:
        distributed.teardown(ctx)
