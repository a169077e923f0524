"""Cross-sensor pairs end to end, on a simulated two-sensor pair made from the real SampleMS scene: a known content
displacement, the LR sensor's own blur, per-band gains and offsets, noise, bands in another order with names, another
UTM zone, a nodata gap and a cloud marked by a mask raster on its own grid (codes/data_scripts/simulate_pair.py).
Everything runs through the command lines of docs/datasets.md's recipe."""
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.windows
from rasterio.warp import transform_bounds
from scipy.ndimage import binary_erosion, gaussian_filter
from scipy.ndimage import shift as move

from helpers import CODES, REPO_ROOT, SAMPLE_MS, assert_one_line_error, call_script, isolated, run_script

sys.path.insert(0, str(CODES))
import pairing  # noqa: E402
from image_io import read_image_with_meta  # noqa: E402

SIMULATE = CODES / "data_scripts" / "simulate_pair.py"
PREPARE = CODES / "data_scripts" / "prepare_dataset.py"
METRICS = REPO_ROOT / "metric_scripts" / "calculate_PSNR_SSIM.py"
SCALE, TILE = 3, 48
SHIFT = (4.2, -2.7)  # HR pixels, x east, y south


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The simulated scenes, and the dataset prepared from them (with the printed lines)."""
    root = tmp_path_factory.mktemp("cross_sensor")
    made = call_script(SIMULATE, "--dst", root / "scenes", "--shift", ",".join(map(str, SHIFT)))
    assert made.returncode == 0, made.stderr
    scenes = root / "scenes"
    prepared = call_script(PREPARE, "--src", scenes / "hr.tif", "--lr_src", scenes / "lr.tif", "--lr_mask",
                          scenes / "lr_cloud_mask.tif", "--scales", SCALE, "--tile", TILE, "--dst", root / "Pairs")
    assert prepared.returncode == 0, prepared.stderr
    return root, scenes, root / "Pairs", prepared.stdout


def tiles_of(dataset, kind):
    return sorted(dataset.glob(f"*/{kind}/*.tif"))


def test_the_pairing_measures_the_displacement_and_the_gains(pair):
    _, scenes, dataset, printed = pair
    record = json.loads((dataset / "dataset.json").read_text())["pairing"]
    truth = json.loads((scenes / "truth.json").read_text())
    measured = record["pairs"][0]["displacement_hr_px"]
    assert record["displacement_hr_px"] == measured and record["lr_source"] == str((scenes / "lr.tif").resolve())
    assert record["pairs"][0]["lr_bands"] == truth["lr_bands"] and record["bands"] == truth["hr_bands"]
    assert max(abs(m - t) for m, t in zip(measured, SHIFT)) < 0.5, measured
    for band, gain in truth["gains"].items():
        assert abs(record["radiometry"][band]["gain"] - gain) < 0.05, (band, record["radiometry"][band])
    assert record["dropped"]["LR nodata or mask"] > 0  # the gap, the cloud and the rotated footprint's corners
    assert len(record["tiles"]) == len(tiles_of(dataset, "HR")) == len(tiles_of(dataset, f"LR_x{SCALE}"))
    assert {tile["split"] for tile in record["tiles"].values()} == {"train", "val", "test"}
    assert "lr.tif -> hr.tif: displacement" in printed and (dataset / "pairing" / "hr__lr.png").stat().st_size
    assert all(abs(t["shift_hr_px"][0] - SHIFT[0]) < 1.5 for t in record["tiles"].values())


def test_tiles_are_on_the_hr_grid_in_hr_band_order(pair):
    _, scenes, dataset, _ = pair
    truth = json.loads((scenes / "truth.json").read_text())
    with rasterio.open(scenes / "hr.tif") as hr_scene:
        hr_transform, hr_crs, hr_bands = hr_scene.transform, hr_scene.crs, hr_scene.descriptions
    for hr_path in tiles_of(dataset, "HR")[:5]:
        lr_path = hr_path.parent.parent / f"LR_x{SCALE}" / hr_path.name
        with rasterio.open(hr_path) as hr, rasterio.open(lr_path) as lr:
            assert hr.crs == lr.crs == hr_crs and hr.descriptions == lr.descriptions == hr_bands
            assert (hr.width, lr.width) == (TILE, TILE // SCALE)
            assert lr.transform.a == SCALE * hr.transform.a and lr.transform.c == hr.transform.c
            col = (hr.transform.c - hr_transform.c) / hr_transform.a
            assert col == round(col) and round(col) % SCALE == 0
            hr_low = pairing.block_mean(np.moveaxis(hr.read(), 0, -1).astype(float), SCALE)
            lr_pixels = np.moveaxis(lr.read(), 0, -1).astype(float)
        # the LR band at each position is the one the simulated sensor made from the HR band there (gain and offset
        # of that band), though the LR file held them in reverse order
        expected = np.stack([truth["gains"][b] * hr_low[..., k] + truth["offsets"][b]
                             for k, b in enumerate(hr_bands)], axis=-1).reshape(-1, 4)
        error = np.abs(expected[:, :, None] - lr_pixels.reshape(-1, 4)[:, None, :]).mean(axis=0)
        assert (error.argmin(axis=1) == np.arange(4)).all(), error


def test_no_kept_tile_touches_the_cloud_or_the_gap(pair):
    _, scenes, dataset, _ = pair
    with rasterio.open(scenes / "lr_cloud_mask.tif") as mask:
        rows, cols = np.nonzero(mask.read(1))
        left, top = mask.transform @ (cols.min(), rows.min())
        right, bottom = mask.transform @ (cols.max() + 1, rows.max() + 1)
        cloud = transform_bounds(mask.crs, "EPSG:32618", left, bottom, right, top)
    for lr_path in tiles_of(dataset, f"LR_x{SCALE}"):
        with rasterio.open(lr_path) as tile:
            b = tile.bounds
            pixels = tile.read()
        assert b.right <= cloud[0] or b.left >= cloud[2] or b.top <= cloud[1] or b.bottom >= cloud[3], lr_path.name
        assert pixels.max(axis=0).min() > 0  # no nodata pixel of the gap (LR nodata is 0)


def mosaic(dataset, kind, block):
    """The tiles of one kind put back on the LR grid (NaN where no tile is), HR tiles averaged down by `block`."""
    paths = tiles_of(dataset, kind)
    with rasterio.open(paths[0]) as first:
        step = first.transform.a * block
    placed = []
    for path in paths:
        with rasterio.open(path) as tile:
            pixels = np.moveaxis(tile.read(), 0, -1).astype(float).mean(axis=2)
            placed.append((tile.transform.c, tile.transform.f, pixels))
    x0, y0 = min(p[0] for p in placed), max(p[1] for p in placed)
    size = placed[0][2].shape[0] // block
    out = np.full((int(round((y0 - min(p[1] for p in placed)) / step)) + size,
                   int(round((max(p[0] for p in placed) - x0) / step)) + size), np.nan)
    for x, y, pixels in placed:
        row, col = int(round((y0 - y) / step)), int(round((x - x0) / step))
        low = pixels.reshape(size, block, size, block).mean(axis=(1, 3)) if block > 1 else pixels
        out[row:row + size, col:col + size] = low
    return out


def test_the_written_pairs_are_co_registered_within_a_fifth_of_an_lr_pixel(pair):
    """Measured here by an exhaustive search (spline-shifted HR mosaic against the LR mosaic, gain and offset fitted
    at each shift), not by the pairing's own estimator. Both mosaics are blurred alike first: a spline shift of the
    sharper HR by half a pixel also smooths it, which would pull the search towards half-pixel shifts."""
    _, _, dataset, _ = pair
    lr, hr_low = mosaic(dataset, f"LR_x{SCALE}", 1), mosaic(dataset, "HR", SCALE)
    valid = ~np.isnan(lr)
    lr = gaussian_filter(np.where(valid, lr, np.nanmean(lr)), 1.0)
    filled = gaussian_filter(np.where(valid, hr_low, np.nanmean(hr_low)), 1.0)
    inner = binary_erosion(valid, iterations=6, border_value=0)  # the blur's and the spline's reach stay valid
    errors = {}
    for dy in np.arange(-0.5, 0.51, 0.05):
        for dx in np.arange(-0.5, 0.51, 0.05):
            shifted = move(filled, (-dy, -dx), order=3, mode="nearest")[inner]
            design = np.stack([shifted, np.ones_like(shifted)], axis=1)
            residual = np.linalg.lstsq(design, lr[inner], rcond=None)[1]
            errors[round(dx, 2), round(dy, 2)] = float(residual[0])
    best = min(errors, key=errors.get)
    assert math.hypot(*best) < 0.2, best


def test_the_estimator_recovers_known_sub_pixel_shifts_on_real_texture():
    scene = np.stack([read_image_with_meta(p)[0].astype(float).mean(axis=2)
                      for p in sorted((SAMPLE_MS / "train" / "HR").glob("*.tif"))[:4]])
    for image, (dx, dy) in zip(scene, [(0.3, -0.2), (-1.45, 0.8), (2.25, 1.6), (0.0, 0.5)]):
        ref = gaussian_filter(image, 0.8)
        mov = 1.2 * move(ref, (-dy, -dx), order=3, mode="reflect") + 7
        got = pairing.measure_shift(ref, mov, np.ones(ref.shape, dtype=bool))
        assert abs(got[0] - dx) < 0.05 and abs(got[1] - dy) < 0.05, (got, dx, dy)
        assert got[2] > 0.99


def test_the_fit_recovers_known_gains_despite_the_blurrier_lr(pair):
    """The real scene on the LR grid, and an LR sensor blurrier by one LR pixel with known gains and noise: a fit on
    raw pixels is biased by the blur, the pairing's block means are not."""
    _, scenes, _, _ = pair
    hr = pairing.block_mean(read_image_with_meta(scenes / "hr.tif")[0].astype(float), SCALE)
    gains, offsets = np.array([1.1, 0.9, 1.05, 0.8]), np.array([5.0, -3.0, 10.0, 0.0])
    blurred = np.stack([gaussian_filter(hr[..., b], 1.0) for b in range(4)], axis=-1)
    lr = blurred * gains + offsets + np.random.default_rng(0).normal(0, 2, hr.shape)
    fits, _ = pairing.fit_radiometry(hr, lr, np.ones(hr.shape[:2], dtype=bool), ["b1", "b2", "b3", "b4"])
    for k, fit in enumerate(fits.values()):
        assert abs(fit["gain"] - gains[k]) < 0.02, fits
        raw_gain = np.polyfit(hr[..., k].ravel(), lr[..., k].ravel(), 1)[0]
        assert raw_gain < gains[k] - 0.05  # what the blur does to a fit on raw pixels


def test_a_model_trained_on_the_pairs_beats_bicubic_on_the_hr_grid(pair, tmp_path):
    root, scenes, dataset, _ = pair
    trained = call_script(CODES / "demo_train.py", "--model=BASIC", "--scale=3", "--dataset=Pairs", "--dir_data",
                         dataset, "--n_feats=16", "--n_resblocks=2", "--epochs=8", "--batch_size=8", "--lr=5e-4",
                         "--test_every=5", "--seed=0", "--cpu", *isolated(tmp_path))
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "--n_colors" not in trained.stderr
    checkpoint = tmp_path / "experiment" / "BASICx3_Pairs" / "model" / "model_best.pt"
    outputs = {}
    for model, extra in (("BASIC", ["--pre_train", checkpoint]), ("BICUBIC", ["--n_colors", "4"])):
        outputs[model] = tmp_path / model
        deployed = call_script(CODES / "demo_deploy.py", f"--model={model}", "--scale=3", "--dir_data",
                              scenes / "lr.tif", "--align_to", scenes / "hr.tif", "--dir_out", outputs[model],
                              "--cpu", *extra, *isolated(tmp_path))
        assert deployed.returncode == 0, deployed.stderr[-2000:]
    with rasterio.open(outputs["BASIC"] / "lr.tif") as sr, rasterio.open(scenes / "hr.tif") as hr:
        assert sr.crs == hr.crs and sr.res == hr.res and sr.descriptions == hr.descriptions
        offset = ((sr.transform.c - hr.transform.c) / hr.res[0], (sr.transform.f - hr.transform.f) / hr.res[1])
        assert all(v == round(v) for v in offset), offset
    manifest = json.loads((outputs["BASIC"] / "manifest.json").read_text())
    aligned = manifest["images"][0]["aligned"]
    assert aligned["displacement_hr_px"] == json.loads((dataset / "dataset.json").read_text())[
        "pairing"]["pairs"][0]["displacement_hr_px"]  # the very scene the pairing measured: corrected the same way
    scored = call_script(METRICS, "--gt", scenes / "hr.tif", "--sr", outputs["BASIC"], outputs["BICUBIC"],
                        "--max_shift", "2", "--csv", tmp_path / "scores.csv")
    assert scored.returncode == 0, scored.stderr
    rows = {row.split(",")[0]: row.split(",") for row in (tmp_path / "scores.csv").read_text().splitlines()}
    header = rows["model"]
    score = {model: dict(zip(header, rows[model])) for model in ("BASIC", "BICUBIC")}
    assert float(score["BASIC"]["psnr_rgb"]) > float(score["BICUBIC"]["psnr_rgb"]) + 1
    assert float(score["BASIC"]["cpsnr"]) > float(score["BICUBIC"]["cpsnr"])
    for model in score:
        assert float(score[model]["cpsnr"]) >= float(score[model]["psnr_rgb"]) - 1e-9
    # without --gt, the metric script scores against the scene the deploy aligned to (its manifest's gt)
    again = call_script(METRICS, "--sr", outputs["BASIC"], "--csv", tmp_path / "again.csv")
    assert again.returncode == 0 and f"GT {scenes / 'hr.tif'}" in again.stdout, again.stderr


def test_the_metric_script_refuses_an_sr_on_another_grid(pair, tmp_path):
    _, scenes, _, _ = pair
    (tmp_path / "sr").mkdir()
    (tmp_path / "sr" / "lr.tif").write_bytes((scenes / "lr.tif").read_bytes())  # LR zone, LR pixel
    proc = call_script(METRICS, "--gt", scenes / "hr.tif", "--sr", tmp_path / "sr", "--scale", "3", "--csv",
                      tmp_path / "x.csv")
    assert_one_line_error(proc, "lr.tif", "EPSG:32619", "--align_to")


def moved_copy(source, target, dx_metres):
    with rasterio.open(source) as src:
        profile, pixels = src.profile, src.read()
        descriptions = src.descriptions
        profile["transform"] = src.transform @ rasterio.Affine.translation(dx_metres / src.transform.a, 0)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(pixels)
        for k, name in enumerate(descriptions, 1):
            dst.set_band_description(k, name)
    return target


def test_bad_pairs_are_one_line_naming_the_file(pair, tmp_path):
    _, scenes, _, _ = pair
    base = ["--src", scenes / "hr.tif", "--tile", TILE]
    far = moved_copy(scenes / "lr.tif", tmp_path / "far.tif", 1e6)
    proc = call_script(PREPARE, *base, "--lr_src", far, "--scales", 3, "--dst", tmp_path / "a")
    assert_one_line_error(proc, "far.tif", "overlaps")
    proc = call_script(PREPARE, *base, "--lr_src", scenes / "lr.tif", "--scales", 4, "--dst", tmp_path / "b")
    assert_one_line_error(proc, "lr.tif", "disagrees with the pixel sizes", "--scales 3")
    proc = call_script(PREPARE, *base, "--lr_src", scenes / "lr.tif", "--scales", 3, "--lr_bands", "b1,b2,b3,b4",
                      "--dst", tmp_path / "c")
    assert_one_line_error(proc, "lr.tif", "no band name in common")
    with rasterio.open(scenes / "lr_cloud_mask.tif") as mask:
        profile = mask.profile
    with rasterio.open(tmp_path / "everything.tif", "w", **profile) as everything:
        everything.write(np.ones((1, profile["height"], profile["width"]), dtype=np.uint8))
    proc = call_script(PREPARE, *base, "--lr_src", scenes / "lr.tif", "--scales", 3, "--lr_mask",
                      tmp_path / "everything.tif", "--dst", tmp_path / "d")
    assert_one_line_error(proc, "lr.tif", "is kept (dropped:", "LR nodata or mask")
    for folder in "abcd":
        assert not (tmp_path / folder).exists()


def test_cpsnr_finds_the_shift_and_forgives_the_bias_that_psnr_charges():
    import metrics

    gt = read_image_with_meta(sorted((SAMPLE_MS / "train" / "HR").glob("*.tif"))[0])[0].astype(float)
    dx, dy = 2, -1
    sr = np.roll(gt, (-dy, -dx), axis=(0, 1)) + 5.0  # the SR at p shows the GT at p + (dx, dy), 5 levels brighter
    valid = np.ones(gt.shape[:2], dtype=bool)
    cpsnr, best = metrics.calculate_cpsnr(sr, gt, valid, max_shift=3, data_range=255)
    assert best == (dx, dy) and cpsnr == math.inf
    psnr = metrics.masked_psnr(sr, gt, valid, 255)[0]
    assert psnr < 30
    noisy = sr + np.random.default_rng(0).normal(0, 2, sr.shape)
    cpsnr, best = metrics.calculate_cpsnr(noisy, gt, valid, max_shift=3, data_range=255)
    assert best == (dx, dy) and abs(cpsnr - 10 * math.log10(255**2 / 4)) < 0.2


def test_harmonize_linear_puts_the_lr_in_the_hr_units_and_far_gains_warn(pair, tmp_path):
    root, scenes, dataset, _ = pair
    proc = call_script(PREPARE, "--src", scenes / "hr.tif", "--lr_src", scenes / "lr.tif", "--lr_mask",
                      scenes / "lr_cloud_mask.tif", "--scales", SCALE, "--tile", TILE, "--harmonize", "linear",
                      "--dst", tmp_path / "linear")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "linear" / "dataset.json").read_text())["pairing"]["harmonize"] == "linear"

    def offset_from_hr(folder):
        """Mean LR - HR-averaged-down difference over the tiles, per band."""
        gaps = []
        for hr_path in tiles_of(folder, "HR"):
            hr = pairing.block_mean(read_image_with_meta(hr_path)[0].astype(float), SCALE)
            lr = read_image_with_meta(hr_path.parent.parent / f"LR_x{SCALE}" / hr_path.name)[0].astype(float)
            gaps.append((lr - hr).mean(axis=(0, 1)))
        return np.abs(np.mean(gaps, axis=0))

    assert offset_from_hr(dataset).max() > 10  # the simulated offsets of 10-50 levels and gains of 0.9-1.1
    assert offset_from_hr(tmp_path / "linear").max() < 1.5
    made = call_script(SIMULATE, "--dst", tmp_path / "units", "--gains", "40", "--offsets", "0")
    assert made.returncode == 0, made.stderr
    units = tmp_path / "units"
    proc = call_script(PREPARE, "--src", units / "hr.tif", "--lr_src", units / "lr.tif", "--scales", SCALE, "--tile",
                      TILE, "--dst", tmp_path / "far")
    assert proc.returncode == 0, proc.stderr
    assert "gains far from 1" in proc.stdout and "different units" in proc.stdout


TWO_LANDSATS = REPO_ROOT / "tests" / "data" / "landsat_two_sensors"


def test_a_real_two_sensor_pair_is_paired_with_no_displacement_and_a_units_warning(tmp_path):
    """Landsat-7 ETM+ red (30 m) onto Landsat-8 OLI pan (15 m): ×2, real pixels of two sensors 12 years apart.
    USGS put both on one grid (L1TP), so the measured displacement is near zero; their DN scales differ (8 vs 16
    bit), which the units warning names."""
    proc = call_script(PREPARE, "--src", TWO_LANDSATS / "LC08_L1TP_195025_20130707_20170503_01_T1_B8.TIF",
                      "--lr_src", TWO_LANDSATS / "LE07_L1TP_195025_20010730_20170204_01_T1_B3.TIF",
                      "--bands", "pan", "--lr_bands", "pan", "--scales", 2, "--tile", 16, "--dst", tmp_path / "real")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "real" / "dataset.json").read_text())["pairing"]
    assert max(abs(v) for v in record["pairs"][0]["displacement_hr_px"]) < 0.5, record["pairs"][0]
    assert len(record["tiles"]) >= 20 and record["radiometry"]["pan"]["r"] > 0.8
    assert "different units" in proc.stdout
    assert len(tiles_of(tmp_path / "real", "LR_x2")) == len(record["tiles"])


def test_align_to_a_raster_without_a_grid_is_refused_before_any_output(pair, tmp_path):
    _, scenes, _, _ = pair
    plain = tmp_path / "plain.png"
    plain.write_bytes((REPO_ROOT / "datasets" / "Sample" / "test" / "HR").glob("*.png").__next__().read_bytes())
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)  # reading it would block for ever
    for raster, fragment in ((tmp_path / "missing.tif", "not a raster file"), (fifo, "not a raster file"),
                             (plain, "no CRS or geotransform")):
        proc = call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=3", "--n_colors=4", "--dir_data",
                          scenes / "lr.tif", "--align_to", raster, "--dir_out", tmp_path / "out", "--cpu",
                          *isolated(tmp_path))
        assert_one_line_error(proc, raster.name, fragment)
        assert not (tmp_path / "out").exists()


def test_lr_scenes_of_different_band_sets_are_one_line(pair, tmp_path):
    _, scenes, _, _ = pair
    folder = tmp_path / "lr"
    folder.mkdir()
    (folder / "full.tif").write_bytes((scenes / "lr.tif").read_bytes())
    with rasterio.open(scenes / "lr.tif") as src:
        profile, pixels, names = dict(src.profile, count=3), src.read()[1:], src.descriptions[1:]  # no nir
    with rasterio.open(folder / "no_nir.tif", "w", **profile) as dst:
        dst.write(pixels)
        for k, name in enumerate(names, 1):
            dst.set_band_description(k, name)
    proc = call_script(PREPARE, "--src", scenes / "hr.tif", "--lr_src", folder, "--scales", SCALE, "--tile", TILE,
                      "--dst", tmp_path / "D")
    assert_one_line_error(proc, "one dataset holds one band set", "no_nir.tif")
    assert not (tmp_path / "D").exists()


def window_copy(source, target, fraction):
    """A georeferenced crop of `source`: its central `fraction` of each side, band names kept."""
    with rasterio.open(source) as src:
        height, width = int(src.height * fraction), int(src.width * fraction)
        window = rasterio.windows.Window((src.width - width) // 2, (src.height - height) // 2, width, height)
        profile = dict(src.profile, width=width, height=height, transform=src.window_transform(window))
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.descriptions = src.descriptions


def test_folders_of_scenes_pair_each_lr_with_each_hr_and_write_the_tiles_of_each_pair_alone(pair, tmp_path):
    """Two HR and two LR scenes (the simulated pair and central crops of it): four pairs, listed LR scene by LR
    scene, and every tile written is the tile that the pair's own preparation writes under the same name."""
    _, scenes, _, _ = pair
    for side in ("hr", "lr"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "a.tif").write_bytes((scenes / f"{side}.tif").read_bytes())
        window_copy(scenes / f"{side}.tif", tmp_path / side / "b.tif", 0.6)
    common = ["--scales", SCALE, "--tile", TILE]
    proc = call_script(PREPARE, "--src", tmp_path / "hr", "--lr_src", tmp_path / "lr", *common, "--dst",
                       tmp_path / "all")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "all" / "dataset.json").read_text())["pairing"]
    assert [(Path(p["lr_source"]).name, Path(p["hr_source"]).name) for p in record["pairs"]] == [
        ("a.tif", "a.tif"), ("a.tif", "b.tif"), ("b.tif", "a.tif"), ("b.tif", "b.tif")]
    together = {path.relative_to(tmp_path / "all").parts[1:]: path for path in (tmp_path / "all").glob("*/*/*.tif")}
    for lr_name, hr_name in (("a", "b"), ("b", "a")):
        alone = tmp_path / f"{hr_name}{lr_name}"
        proc = call_script(PREPARE, "--src", tmp_path / "hr" / f"{hr_name}.tif", "--lr_src",
                           tmp_path / "lr" / f"{lr_name}.tif", *common, "--dst", alone)
        assert proc.returncode == 0, proc.stderr
        tiles = list(alone.glob("*/*/*.tif"))
        assert len(tiles) > 10
        for path in tiles:
            key = path.relative_to(alone).parts[1:]  # (HR or LR_x3, name): the split may differ
            assert np.array_equal(read_image_with_meta(path)[0], read_image_with_meta(together[key])[0]), key


def test_align_to_checks_the_scale_budgets_the_grid_and_keeps_an_integer_nodata(pair, tmp_path):
    """The input's pixel must be scale x the target's (a target of tiny pixels would make a huge grid, and the same
    pixels would only be zoomed); an int16 input's nodata -32768 (a float in rasterio) stays the output's."""
    _, scenes, _, _ = pair
    deploy = [CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=3", "--n_colors=4", "--cpu", *isolated(tmp_path)]
    proc = call_script(*deploy, "--dir_data", scenes / "lr.tif", "--align_to", scenes / "lr.tif", "--dir_out",
                       tmp_path / "a")
    assert_one_line_error(proc, "--scale 3 disagrees with the pixel sizes", "lr.tif spans 1 x 1 HR pixels")
    assert not (tmp_path / "a").exists()
    with rasterio.open(scenes / "hr.tif") as src:
        profile, pixels, t = dict(src.profile), src.read()[:, :1, :1], src.transform
    tiny = dict(profile, width=1, height=1, transform=rasterio.Affine(t.a / 100, 0, t.c, 0, t.e / 100, t.f))
    with rasterio.open(tmp_path / "tiny.tif", "w", **tiny) as dst:
        dst.write(pixels)
    proc = call_script(*deploy, "--dir_data", scenes / "lr.tif", "--align_to", tmp_path / "tiny.tif", "--dir_out",
                       tmp_path / "b")  # a grid of 100 x the input's pixels per side: refused before any warp
    assert_one_line_error(proc, "--scale 3 disagrees with the pixel sizes", "a ratio of 300")
    assert not (tmp_path / "b").exists()
    with rasterio.open(scenes / "lr.tif") as src:
        values, lr_profile, names = src.read().astype(np.int16), dict(src.profile), src.descriptions
    with rasterio.open(tmp_path / "lr16.tif", "w", **dict(lr_profile, dtype="int16", nodata=-32768)) as dst:
        dst.write(values)
        dst.descriptions = names
    with rasterio.open(tmp_path / "hr16.tif", "w", **dict(profile, dtype="int16")) as dst:  # the HR sensor's dtype
        dst.write(rasterio.open(scenes / "hr.tif").read().astype(np.int16))
    proc = call_script(*deploy, "--dir_data", tmp_path / "lr16.tif", "--align_to", tmp_path / "hr16.tif",
                       "--dir_out", tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(tmp_path / "c" / "lr16.tif") as out:
        assert out.nodata == -32768 and out.dtypes[0] == "int16"
        assert (out.read() == -32768).any()  # the warp's uncovered corners


def test_scenes_of_one_name_in_two_subfolders_are_refused_since_their_tiles_would_clash(pair, tmp_path):
    _, scenes, _, _ = pair
    for sub in ("a", "b"):
        (tmp_path / "hr" / sub).mkdir(parents=True)
        (tmp_path / "hr" / sub / "scene.tif").write_bytes((scenes / "hr.tif").read_bytes())
    proc = call_script(PREPARE, "--src", tmp_path / "hr", "--lr_src", scenes / "lr.tif", "--scales", SCALE, "--tile",
                       TILE, "--dst", tmp_path / "D")
    assert_one_line_error(proc, "two images named 'scene' (a/scene.tif and b/scene.tif)")
    assert not (tmp_path / "D").exists()


@pytest.mark.parametrize("flag, fragment", [("--shift=nan,0", "--shift 'nan,0': give finite numbers"),
                                            ("--blur=1e6", "--blur '1000000.0': give finite numbers from 0 to 20"),
                                            ("--gains=0", "--gains '0': give positive finite numbers"),
                                            ("--noise=nan", "--noise 'nan'"), ("--scale=1", "invalid choice: 1")])
def test_simulate_pair_refuses_a_sensor_it_cannot_simulate_in_one_line(tmp_path, flag, fragment):
    """NaN shifts crashed scipy (a segfault); a sigma of 1e6 ran for hours, deaf to SIGTERM."""
    assert_one_line_error(call_script(SIMULATE, "--dst", tmp_path / "s", flag), fragment)
    assert not (tmp_path / "s").exists()


def test_simulate_pair_takes_a_three_band_scene_with_its_default_gains(pair, tmp_path):
    _, scenes, _, _ = pair
    with rasterio.open(scenes / "hr.tif") as src:
        profile, pixels, names = dict(src.profile, count=3), src.read()[:3], src.descriptions[:3]
    with rasterio.open(tmp_path / "rgb.tif", "w", **profile) as dst:
        dst.write(pixels)
        dst.descriptions = names
    made = call_script(SIMULATE, "--src", tmp_path / "rgb.tif", "--dst", tmp_path / "s")
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "s" / "truth.json").read_text())["gains"] == dict(zip(names, [1.1, 0.9, 1.05]))


def test_a_cross_sensor_dataset_is_not_packed_as_hr_only(pair, tmp_path):
    """A pack keeps the HR and training makes its LR by bicubic: for pairs of two sensors that would silently train
    the wrong mapping."""
    _, _, dataset, _ = pair
    proc = call_script(CODES / "data_scripts" / "pack_dataset.py", "--src", dataset, "--dst", tmp_path / "pack")
    assert_one_line_error(proc, "is a cross-sensor dataset")
    assert not (tmp_path / "pack").exists()


def set_gain(record, gain):
    record["harmonize"] = "linear"
    for fit in record["radiometry"].values():
        fit["gain"] = gain


@pytest.mark.parametrize("tamper, fragment", [
    (lambda r: set_gain(r, 1e-300), "has no usable gain and offset for band blue"),
    (lambda r: set_gain(r, True), "has no usable gain and offset for band blue"),
    (lambda r: r.update(harmonize="cubic"), "'pairing.harmonize' 'cubic' is not one of none, linear"),
    (lambda r: r.update(pairs="abc"), "'pairing.pairs' must be a list of pair records")])
def test_a_damaged_pairing_record_is_refused_by_deploy_before_any_output(pair, tmp_path, tamper, fragment):
    """Deploy onto the HR grid follows dataset.json's pairing (its harmonization, its displacements): a damaged
    record was used as it stood (a gain of 1e-300 made the LR infinite, "cubic" read as none)."""
    _, scenes, dataset, _ = pair
    copy = tmp_path / "Pairs"
    shutil.copytree(dataset, copy)
    meta = json.loads((copy / "dataset.json").read_text())
    tamper(meta["pairing"])
    (copy / "dataset.json").write_text(json.dumps(meta))
    proc = call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=3", "--n_colors=4", "--dir_data", copy,
                       "--align_to", scenes / "hr.tif", "--dir_out", tmp_path / "out", "--cpu", *isolated(tmp_path))
    assert_one_line_error(proc, "dataset.json", fragment)
    assert not (tmp_path / "out").exists()


def test_align_to_warns_of_values_clipped_to_the_training_dtype(pair, tmp_path):
    """A 16-bit input deployed onto an 8-bit HR sensor's grid: values above 255 are clipped to the dtype the model
    was trained on, and the deploy says how many."""
    _, scenes, _, _ = pair
    with rasterio.open(scenes / "lr.tif") as src:
        profile, names = dict(src.profile, nodata=None), src.descriptions
        values = np.full((src.count, src.height, src.width), 65535, np.uint16)
    with rasterio.open(tmp_path / "bright.tif", "w", **profile) as dst:
        dst.write(values)
        dst.descriptions = names
    proc = run_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=3", "--n_colors=4", "--dir_data",
                      tmp_path / "bright.tif", "--align_to", scenes / "hr.tif", "--dir_out", tmp_path / "out",
                      "--cpu", *isolated(tmp_path))  # a real process: the warning is one clean line of its log
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "values fell outside" in line]
    assert lines and lines[0].startswith("warning: ") and "bright.tif" in lines[0], proc.stderr
    assert "UserWarning" not in proc.stderr and "align_input(" not in proc.stderr


def test_the_scale_is_checked_on_both_axes_in_the_hr_grids_crs(pair, tmp_path):
    """An LR scene in Web Mercator has 15.8 m "pixels" for 15 m on the ground here (a metre of EPSG:3857 is
    1/cos(latitude) of one): measured in the HR grid's CRS it is 3 HR pixels, as it is. A pixel twice as tall as it
    is wide is not."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    _, scenes, _, _ = pair
    with rasterio.open(scenes / "lr.tif") as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:3857", src.width, src.height,
                                                               *src.bounds)
        profile = dict(src.profile, crs="EPSG:3857", transform=transform, width=width, height=height)
        with rasterio.open(tmp_path / "mercator.tif", "w", **profile) as dst:
            for band in range(1, src.count + 1):
                reproject(rasterio.band(src, band), rasterio.band(dst, band), resampling=Resampling.cubic)
            dst.descriptions = src.descriptions
        tall = dict(src.profile, transform=src.transform @ rasterio.Affine.scale(1, 2), height=src.height // 2)
        with rasterio.open(tmp_path / "tall.tif", "w", **tall) as dst:
            dst.write(src.read()[:, ::2])
            dst.descriptions = src.descriptions
    assert abs(transform.a / 15 - 1) > 0.04  # the CRS's own unit is not a ground metre here
    common = ["--src", scenes / "hr.tif", "--scales", SCALE, "--tile", TILE]
    proc = call_script(PREPARE, *common, "--lr_src", tmp_path / "mercator.tif", "--dst", tmp_path / "M")
    assert proc.returncode == 0, proc.stderr
    proc = call_script(PREPARE, *common, "--lr_src", tmp_path / "tall.tif", "--dst", tmp_path / "T")
    assert_one_line_error(proc, "tall.tif spans 3 x 6 HR pixels", "--scales 3 disagrees")


def test_a_dst_inside_the_lr_scenes_folder_names_lr_src(pair, tmp_path):
    _, scenes, _, _ = pair
    (tmp_path / "lr").mkdir()
    (tmp_path / "lr" / "lr.tif").write_bytes((scenes / "lr.tif").read_bytes())
    proc = call_script(PREPARE, "--src", scenes / "hr.tif", "--lr_src", tmp_path / "lr", "--scales", SCALE, "--tile",
                       TILE, "--dst", tmp_path / "lr" / "D")
    assert_one_line_error(proc, "is inside --lr_src")
    assert not (tmp_path / "lr" / "D").exists()
