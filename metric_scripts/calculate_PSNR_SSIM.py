"""PSNR / SSIM equal to the MATLAB reference scripts, per image and on average, with a CSV.

    cd metric_scripts && python calculate_PSNR_SSIM.py            # the newest experiment/results/* vs its test HR
    python calculate_PSNR_SSIM.py --gt ../datasets/Sample/test/HR --sr ../experiment/results/BASICx4_Sample --scale 4
    python calculate_PSNR_SSIM.py --sr ../experiment/results/EDSRx4_UCMerced ../experiment/results/HSENETx4_UCMerced
    python calculate_PSNR_SSIM.py --gt sentinel2.tif --sr ../experiment/results/CONVFORMERSRx3_Pairs --max_shift 3

CSV columns: image, psnr_chmean, psnr_rgb, psnr_y, ssim_rgb, ssim_y (psnr_y and ssim_y for 1 and 3 bands only;
+ per-band PSNR/SSIM, SAM, ERGAS, RMSE, CC and index errors for multispectral images), then a row `average`. The
definitions are in codes/metrics.py and docs/evaluation.md.
With several --sr folders (e.g. one per model), each gets its own per-image CSV (<folder>/psnr_ssim.csv) and one
summary CSV (--csv, default psnr_ssim_summary.csv in the folders' common parent) holds every folder's average row,
with the columns model (from the folder's manifest, else the folder's name) and folder first.
--gt may also name one georeferenced scene (e.g. the HR sensor's, with demo_deploy.py --align_to it): each SR is then
scored on its common window with the scene, over the pixels valid in both, with the columns psnr_chmean, psnr_rgb and
ssim_rgb. --max_shift K adds cpsnr (PROBA-V: the best PSNR over whole-pixel shifts within +-K pixels after removing the
mean bias, K pixels cropped) and cpsnr_shift, the best shift as x,y (the SR at p shows the GT at p + (x, y)).
"""
import csv
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split

import numpy as np  # noqa: E402

import bounded  # noqa: E402
import image_files  # noqa: E402
import image_io  # noqa: E402
import imresize  # noqa: E402
import metrics  # noqa: E402
import option  # noqa: E402
import paths  # noqa: E402
from atomic import atomic_target  # noqa: E402
from data.dataset_json import read_dataset_metadata  # noqa: E402
from errors import OneLineParser, UserError, run_cli  # noqa: E402
from paths import DATASETS_DIR, EXPERIMENT_DIR  # noqa: E402
from radiometry import default_white, white_level_problem  # noqa: E402

BASE_COLUMNS = ["psnr_chmean", "psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y"]


def build_parser():
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--gt", default="", help="ground-truth HR folder, or one georeferenced scene that the SR images "
                   "lie on (default: the results' manifest: the deployed dataset's HR, or the --align_to scene)")
    p.add_argument("--sr", nargs="+", action="extend", default=[], help="SR folder(s), after one --sr or several "
                   "(default: the newest folder in experiment/results/); several folders: a summary CSV of their "
                   "averages as well")
    p.add_argument("--scale", type=int, choices=[2, 3, 4], default=None, help="SR factor (default: manifest)")
    p.add_argument("--crop_border", type=int, default=None, help="pixels cropped at each border (default: scale)")
    p.add_argument("--suffix", default="", help="SR file name = <GT name><suffix>.<ext>, e.g. _x4")
    p.add_argument("--csv", default="", help="CSV file to write (default: <sr>/psnr_ssim.csv); with several --sr "
                   "folders, the summary CSV (default: <their common parent>/psnr_ssim_summary.csv)")
    p.add_argument("--dir_experiment", default=str(EXPERIMENT_DIR), help="searched for the newest results/*")
    p.add_argument("--dir_datasets", default=str(DATASETS_DIR), help="where a manifest's dataset is found")
    p.add_argument("--data_range", type=option.positive_float, default=None,
                   help="peak value (default: the white level deploy recorded in the manifest, else from the GT dtype)")
    p.add_argument("--bands", type=option.name_list, default=None,
                   help="band order for index errors, e.g. blue,green,red,nir (default: manifest, then dataset.json)")
    p.add_argument("--max_pixels", type=option.positive_int, default=image_io.DEFAULT_MAX_PIXELS,
                   help="largest image read (pixels, checked in the header before decoding)")
    p.add_argument("--spectral_index", default="NDVI", help="indices whose error is reported, e.g. NDVI,NDWI")
    p.add_argument("--max_shift", type=option.nonneg_int, default=None,
                   help="add cpsnr: the best PSNR over shifts within +-K HR pixels after removing the bias "
                        "(PROBA-V), and its shift cpsnr_shift")
    return p


def newest_results(experiment_dir):
    """The results folder a deploy wrote last. One whose deploy did not finish (no manifest.json yet) is named and
    refused rather than passed over for an older folder of another model."""
    results = paths.results_root(experiment_dir)
    folders = sorted((d for d in results.glob("*") if d.is_dir() and not d.name.startswith(".")), key=last_written)
    if not folders:
        raise UserError(f"no results in {results}: run `cd codes && python demo_deploy.py --model=BASIC "
                        f"--scale=4` first, or give --gt and --sr")
    newest = folders[-1]
    if not (newest / "manifest.json").is_file():
        raise UserError(f"the newest results folder {newest} has no manifest.json: its deploy did not finish; deploy "
                        f"again, or score another folder with --sr FOLDER")
    manifest = read_manifest(newest)
    if manifest.get("complete") is False:
        done = len(manifest.get("outputs", []))
        raise UserError(f"the newest results folder {newest} holds an unfinished deploy (stopped by "
                        f"{manifest.get('stopped_by')} after {done} outputs): deploy again, or score what it holds "
                        f"with --sr {newest}")
    return newest


def last_written(folder):
    """When a results folder last changed: the folder itself, its manifest or its record of written files."""
    times = [p.stat().st_mtime for p in (folder, folder / "manifest.json", folder / "written_files.json")
             if p.exists()]
    return max(times)


# The manifest also gives the white level and the band names the scores use, so flags do not stand in for it.
MANIFEST_ADVICE = ("deploy into the folder again, or move the manifest away and give --gt, --scale and (for float "
                   "data) --data_range")


def read_manifest(sr_dir):
    """The SR folder's manifest.json ({} when there is none), each value it gives this script checked like a flag."""
    path = Path(sr_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = bounded.read_json(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a valid deploy manifest ({err}): {MANIFEST_ADVICE}") from None
    problem = manifest_problem(manifest)
    if problem:
        raise UserError(f"{path}: {problem}; it was not written by demo_deploy.py or is damaged: {MANIFEST_ADVICE}")
    return manifest


def manifest_problem(manifest):
    """What is wrong with a manifest's values (the ones this script reads), or None."""
    if not isinstance(manifest, dict):
        return f"expected a JSON object, got a {type(manifest).__name__}"
    if manifest.get("scale") is not None and (type(manifest["scale"]) is not int or manifest["scale"] not in (2, 3, 4)):
        return f"'scale' {manifest['scale']!r} is not 2, 3 or 4"
    for key in ("gt", "dataset", "model"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            return f"{key!r} is not text"
    bands = manifest.get("bands")
    if bands is not None and not (isinstance(bands, list) and all(isinstance(b, str) for b in bands)):
        return "'bands' is not a list of names"
    if not isinstance(manifest.get("complete", True), bool) or not isinstance(manifest.get("outputs", []), list):
        return "'complete' is not true or false, or 'outputs' is not a list"
    images = manifest.get("images") or []
    if not (isinstance(images, list) and all(isinstance(record, dict) for record in images)):
        return "'images' is not a list of records"
    for record in [manifest, *images]:
        radiometry = record.get("radiometry")
        if radiometry and not (isinstance(radiometry, dict) and white_level_problem(radiometry.get("white")) is None):
            white = radiometry.get("white") if isinstance(radiometry, dict) else radiometry
            return f"the white level {white!r} is not a number from 1e-6 to 2^32"
        if not isinstance(record.get("output", ""), str):
            return "an image's 'output' is not text"
    return None


def resolve_inputs(args, sr=""):
    """(gt_dir, sr_dir, scale) from the flags and the SR folder `sr` (default: the newest results), filling gaps from
    the results manifest."""
    sr_dir = Path(sr) if sr else newest_results(args.dir_experiment)
    if not sr_dir.is_dir():
        raise UserError(f"--sr {sr_dir}: no such folder")
    manifest = read_manifest(sr_dir)
    scale = args.scale or manifest.get("scale")
    if args.gt:
        gt_dir = Path(args.gt)
    elif manifest.get("gt"):
        gt_dir = Path(manifest["gt"])
    elif manifest.get("dataset"):
        gt_dir = Path(args.dir_datasets) / manifest["dataset"] / "test" / "HR"
    else:
        raise UserError(f"{sr_dir} has no manifest naming its dataset: give --gt HR_FOLDER")
    if gt_dir.is_file():  # a scene (--gt, or the --align_to raster a deploy recorded)
        return gt_dir, sr_dir, scale
    if not gt_dir.is_dir():
        raise UserError(f"GT folder {gt_dir} does not exist: give --gt, the folder of HR images")
    if gt_dir.resolve() == sr_dir.resolve():
        raise UserError(f"--sr {sr_dir} is the GT folder itself: give the folder of SR images that deploy wrote")
    if scale is None and args.crop_border is None:
        raise UserError("give --scale (or --crop_border): no manifest in the SR folder says it")
    return gt_dir, sr_dir, scale


def images_by_stem(folder):
    """{stem: [paths]} of the images directly in `folder`."""
    index = {}
    for path in image_files.list_images(folder):
        index.setdefault(path.stem, []).append(path)
    return index


def find_sr(sr_dir, sr_images, stem, suffix):
    """The SR image of a GT stem (`sr_images`: images_by_stem of sr_dir); two of one name (x.png, x.tif) are
    ambiguous, and none is an error."""
    name = f"{stem}{suffix}"
    found = sr_images.get(name, [])
    if len(found) > 1:
        raise UserError(f"{sr_dir} holds two SR images named {name!r} ({found[0].name} and {found[1].name}): images "
                        f"are matched by name, so keep one")
    if found:
        return found[0]
    raise UserError(f"no SR image for {stem} in {sr_dir} (looked for {name}.<ext>); check --sr/--suffix")


def band_names(args, manifest, gt_dir):
    """--bands, else the bands deploy recorded, else the dataset's dataset.json (<root>/<split>/HR -> <root>)."""
    if args.bands:
        return args.bands
    if manifest.get("bands"):
        return [b.lower() for b in manifest["bands"]]
    bands = read_dataset_metadata(gt_dir.parent.parent).get("bands")
    return [b.lower() for b in bands] if bands else None


def peak_value(args, manifest, sr_path, gt, gt_path):
    """--data_range, else the white level deploy used for this image (its manifest), else the GT dtype's (`gt`: the
    pixels of the GT file `gt_path`)."""
    if args.data_range:
        return args.data_range
    for record in manifest.get("images") or []:
        if Path(record.get("output", "")).stem == sr_path.stem and record.get("radiometry"):
            return float(record["radiometry"]["white"])
    if manifest.get("radiometry"):
        return float(manifest["radiometry"]["white"])
    white = default_white(gt.dtype)
    if gt.dtype.kind == "f" and float(np.nanmax(gt)) > white:  # reflectance x 10000, radiance, ...: not [0, 1]
        raise UserError(f"{gt_path}: float values up to {float(np.nanmax(gt)):g}, and no white level recorded for "
                        f"them (the GT of {sr_path.name}): give --data_range (the value of full white, e.g. 10000)")
    return white


def evaluate_folder(args, gt_dir, sr_dir, scale, manifest=None):
    manifest = manifest or {}
    gt_files = image_files.check_unique_stems(image_files.list_images(gt_dir), gt_dir)
    broken = [p for p in sorted(gt_dir.iterdir()) if p.is_symlink() and not p.exists()
              and p.suffix.lower() in image_files.IMAGE_EXTENSIONS]
    if broken:
        raise UserError(f"GT {broken[0]} is a link to nothing: it would be left out of the average; fix or remove it")
    if not gt_files:
        raise UserError(f"GT folder {gt_dir} holds no images")
    crop = args.crop_border if args.crop_border is not None else scale
    bands = band_names(args, manifest, gt_dir)
    indices = metrics.computable_indices(option.index_list(args.spectral_index), bands)
    rows, sr_images = [], images_by_stem(sr_dir)
    for gt_path in gt_files:
        sr_path = find_sr(sr_dir, sr_images, gt_path.stem, args.suffix)
        gt, sr = read_without_fill(gt_path, args.max_pixels), read_without_fill(sr_path, args.max_pixels)
        if scale:
            gt = imresize.modcrop(gt, scale)
        if gt.shape != sr.shape:
            raise UserError(f"{sr_path} is {sr.shape[1]}x{sr.shape[0]}x{sr.shape[2]} but GT {gt_path.name} "
                            f"(mod-cropped) is {gt.shape[1]}x{gt.shape[0]}x{gt.shape[2]}")
        if gt.dtype != sr.dtype:
            raise UserError(f"{sr_path} is {sr.dtype.name} but GT {gt_path.name} is {gt.dtype.name}: compare SR and "
                            f"GT of the same bit depth (deploy writes the input's)")
        data_range = peak_value(args, manifest, sr_path, gt, gt_path)
        values = metrics.evaluate_pair(sr, gt, scale=scale or 1, crop_border=crop, data_range=data_range,
                                       bands=bands if bands and len(bands) == gt.shape[2] else None,
                                       indices=indices)
        if args.max_shift is not None:
            values.update(shift_aware(sr, gt, np.ones(gt.shape[:2], dtype=bool), args.max_shift, data_range))
        rows.append({"image": gt_path.stem, **values})
    return rows


def read_without_fill(path, max_pixels):
    """An image to score whole: one holding its own declared nodata value is refused (its fill would be scored as
    ground); a scene with nodata is scored over its valid pixels with --gt SCENE."""
    image, meta = image_io.read_image_with_meta(path, max_pixels)
    if image_io.unusable_pixels(image, meta).any():
        raise UserError(f"{path} holds nodata or NaN pixels: a folder of images is scored whole, so the fill would "
                        f"count as ground; score the SR against its scene with --gt SCENE.tif (valid pixels only), "
                        f"or use images without nodata")
    return image


def shift_aware(sr, gt, valid, max_shift, data_range):
    cpsnr, (dx, dy) = metrics.calculate_cpsnr(sr, gt, valid, max_shift, data_range)
    return {"cpsnr": cpsnr, "cpsnr_shift": f"{dx},{dy}"}


def evaluate_on_scene(args, scene, sr_dir, manifest):
    """Each SR image of sr_dir scored on its common window with the georeferenced GT `scene`, over the pixels valid
    in both (nodata, NaN)."""
    import pairing

    gt, gt_meta = image_io.read_image_with_meta(scene, args.max_pixels)
    gt_grid = pairing.scene_grid(gt_meta)
    gt_invalid = image_io.unusable_pixels(gt, gt_meta)
    outputs = manifest.get("outputs") or []
    sr_files = [sr_dir / str(name) for name in outputs] if outputs else image_files.list_images(sr_dir)
    outside = [path for path in sr_files if not path.resolve().is_relative_to(sr_dir.resolve())]
    if outside:
        raise UserError(f"{sr_dir / 'manifest.json'} lists the output {outside[0]}, outside {sr_dir}: the manifest "
                        f"is not this folder's; remove it or give --sr the folder of the SR images")
    rows = []
    for sr_path in sr_files:
        sr, sr_meta = image_io.read_image_with_meta(sr_path, args.max_pixels)
        gt_window, sr_window = common_window(scene, gt_grid, sr_path, pairing.scene_grid(sr_meta))
        gt_part = select_scene_bands(scene, gt[gt_window], gt_meta, sr_path, sr_meta)  # the window's bands only
        sr_part = sr[sr_window]
        valid = ~(gt_invalid[gt_window] | image_io.unusable_pixels(sr, sr_meta)[sr_window])
        if not valid.any():
            raise UserError(f"{sr_path} has no pixel valid in both it and --gt {scene}")
        if gt_part.dtype != sr_part.dtype:
            raise UserError(f"{sr_path} is {sr_part.dtype.name} but --gt {scene} is {gt_part.dtype.name}: compare "
                            f"SR and GT of the same bit depth")
        data_range = peak_value(args, manifest, sr_path, gt_part, scene)
        psnr_rgb, psnr_chmean = metrics.masked_psnr(sr_part, gt_part, valid, data_range)
        row = {"image": sr_path.stem, "psnr_chmean": psnr_chmean, "psnr_rgb": psnr_rgb,
               "ssim_rgb": metrics.masked_ssim(sr_part, gt_part, valid, data_range)}
        if args.max_shift is not None:
            row.update(shift_aware(sr_part, gt_part, valid, args.max_shift, data_range))
        rows.append(row)
    if not rows:
        raise UserError(f"{sr_dir} holds no SR images to score against --gt {scene}")
    return rows


def common_window(scene, gt_grid, sr_path, sr_grid):
    """(GT slices, SR slices) of the window the two share; one line when they are not on one grid."""
    if sr_grid.crs != gt_grid.crs:
        raise UserError(f"{sr_path} is in {sr_grid.crs} but --gt {scene} in {gt_grid.crs}: deploy with --align_to "
                        f"{scene} to put the SR on its grid")
    g, t = gt_grid.transform, sr_grid.transform
    if not (math.isclose(g.a, t.a, rel_tol=1e-6) and math.isclose(g.e, t.e, rel_tol=1e-6)):
        raise UserError(f"{sr_path} has {t.a:g} x {-t.e:g} pixels but --gt {scene} {g.a:g} x {-g.e:g}: deploy with "
                        f"--align_to {scene} to put the SR on its grid")
    col, row = (t.c - g.c) / g.a, (t.f - g.f) / g.e
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        raise UserError(f"{sr_path} is not on the pixel grid of --gt {scene} (offset {col:.3f}, {row:.3f} pixels): "
                        f"deploy with --align_to {scene}")
    col, row = round(col), round(row)
    top, left = max(row, 0), max(col, 0)
    bottom, right = min(row + sr_grid.height, gt_grid.height), min(col + sr_grid.width, gt_grid.width)
    if bottom <= top or right <= left:
        raise UserError(f"{sr_path} does not overlap --gt {scene}")
    return (slice(top, bottom), slice(left, right)), (slice(top - row, bottom - row), slice(left - col, right - col))


def select_scene_bands(scene, gt, gt_meta, sr_path, sr_meta):
    """The GT scene's bands that the SR holds, by name when both name theirs, else all of them (same count)."""
    sr_names, gt_names = image_io.band_names(sr_meta), image_io.band_names(gt_meta)
    if sr_names and gt_names:
        return image_io.select_bands(scene, gt, gt_meta, sr_names, gt_names)[0]
    if gt.shape[2] != sr_meta.bands:
        raise UserError(f"{sr_path} has {sr_meta.bands} bands but --gt {scene} has {gt.shape[2]}, and they are not "
                        f"named: give a GT scene with the SR's bands")
    return gt


def with_average(rows):
    columns = [k for k in BASE_COLUMNS if k in rows[0]] + [k for k in rows[0] if k not in BASE_COLUMNS and k != "image"]
    average = {"image": "average"}
    for c in columns:
        values = [r[c] for r in rows if c in r and not isinstance(r[c], str)]
        average[c] = sum(values) / len(values) if values else ""
    return columns, rows + [average]


def write_csv(path, columns, rows, first=("image",)):
    with atomic_target(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*first, *columns], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.10f}" if isinstance(v, float) else v) for k, v in row.items()})


def print_table(columns, rows, label="image"):
    width = max(len(r[label]) for r in rows) + 2
    print(label.ljust(width) + "".join(c.rjust(13) for c in columns))
    for row in rows:
        print(row[label].ljust(width) + "".join(cell(row.get(c, float("nan"))) for c in columns))


def cell(value):
    return value.rjust(13) if isinstance(value, str) else f"{value:13.4f}"


def evaluate_results(args, gt_dir, sr_dir, scale, csv_path):
    """Evaluate one SR folder, print its table and write its per-image CSV; returns (columns, its average row with
    the model and folder)."""
    print(f"GT {gt_dir}\nSR {sr_dir}\nscale {scale}, crop_border "
          f"{args.crop_border if args.crop_border is not None else scale}")
    manifest = read_manifest(sr_dir)
    evaluated = (evaluate_on_scene(args, gt_dir, sr_dir, manifest) if gt_dir.is_file() else
                 evaluate_folder(args, gt_dir, sr_dir, scale, manifest))
    columns, rows = with_average(evaluated)
    print_table(columns, rows)
    write_csv(csv_path, columns, rows)
    print(f"CSV: {csv_path}")
    average = {k: v for k, v in rows[-1].items() if k != "image"}
    return columns, {"model": str(manifest.get("model") or sr_dir.name), "folder": str(sr_dir), **average}


CSV_HEADERS = ("image,", "model,folder,")  # the first line of the CSVs this script writes


def check_csv_outputs(outputs, plans):
    """Before any work: no CSV may land on an input (a GT or SR image, a manifest), after resolving links, nor
    replace a file that is not a CSV of this script."""
    inputs = set()
    for gt_dir, sr_dir, _ in plans:
        for folder in (gt_dir, sr_dir):
            inputs.update([folder.resolve()] if folder.is_file() else
                          (p.resolve() for p in image_files.list_images(folder)))
        inputs.add((sr_dir / "manifest.json").resolve())
    for path in outputs:
        target = path.resolve()
        if target in inputs:
            raise UserError(f"--csv {path} is one of the inputs ({target}); the CSV would replace it: pick another "
                            f"--csv")
        if target.is_dir():
            raise UserError(f"--csv {path} is a folder: give a file name, e.g. {path / 'psnr_ssim.csv'}")
        if target.exists() and not written_by_us(target):
            raise UserError(f"--csv {path} exists and is not a CSV this script wrote: move it away or pick another "
                            f"--csv")


def written_by_us(path):
    try:
        with open(path, "rb") as f:
            first = f.read(64).decode("utf-8", "replace")
    except OSError:
        return False
    return first.startswith(CSV_HEADERS)


def summary_path(args, folders):
    if args.csv:
        return Path(args.csv)
    try:
        parent = Path(os.path.commonpath([os.path.abspath(f) for f in folders]))
    except ValueError:  # folders on different drives: no common parent
        parent = Path.cwd()
    return parent / "psnr_ssim_summary.csv"


def main(argv=None):
    args = build_parser().parse_args(argv)
    plans = [resolve_inputs(args, folder) for folder in (args.sr or [""])]
    one = len(plans) == 1
    csvs = [Path(args.csv) if one and args.csv else sr_dir / "psnr_ssim.csv" for _, sr_dir, _ in plans]
    summary = None if one else summary_path(args, [sr_dir for _, sr_dir, _ in plans])
    check_csv_outputs(csvs + ([summary] if summary else []), plans)
    columns, averages = [], []
    for (gt_dir, sr_dir, scale), csv_path in zip(plans, csvs):
        folder_columns, average = evaluate_results(args, gt_dir, sr_dir, scale, csv_path)
        columns += [c for c in folder_columns if c not in columns]
        averages.append(average)
    if one:
        return 0
    print("\naverages:")
    print_table(columns, averages, label="model")
    write_csv(summary, columns, averages, first=("model", "folder"))
    print(f"summary CSV: {summary}")
    return 0


if __name__ == "__main__":
    run_cli(main)
