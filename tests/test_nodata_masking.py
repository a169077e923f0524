"""Tiles kept with some nodata (prepare_dataset.py --min_valid, or --nodata): the LR pixels their nodata reaches are
nodata too, and every loss term and validation metric leaves those pixels out. Real pixels: SampleMS tiles as a
six-band scene whose footprint ends in a diagonal edge, as a rotated Landsat footprint does."""
import csv
import json
import re
import shutil

import numpy as np
import pytest
import rasterio
import torch

import image_files
import image_io
import metrics
from data.srdata import SRData
from data_scripts import prepare_dataset
from helpers import CODES, SAMPLE, TINY_BASIC, assert_one_line_error, call_script, isolated
from imresize import bicubic_downsample, bicubic_upsample
from loss import Loss
from option import parse_args
from test_own_scene import SIX_BANDS, six_band_scene

SCALE = 2
FILL = 0


def footprint_scene(path):
    """192 x 288 six-band uint8 scene of real pixels, nodata 0 beyond the diagonal col > row + 150 (no pixel inside
    holds 0 in every band)."""
    scene = six_band_scene(path)
    with rasterio.open(scene, "r+") as dst:
        pixels = dst.read()
        pixels[pixels == FILL] = 1
        rows, cols = np.mgrid[:pixels.shape[1], :pixels.shape[2]]
        pixels[:, cols > rows + 150] = FILL
        dst.write(pixels)
        dst.nodata = FILL
    return scene


@pytest.fixture(scope="module")
def partial_dataset(tmp_path_factory):
    """48-pixel tiles, half of the scene's tiles for training and half for validation, kept when training counts
    at least 30 % of their pixels."""
    tmp = tmp_path_factory.mktemp("partial")
    scene = footprint_scene(tmp / "scene.tif")
    root = tmp / "Partial"
    proc = call_script(CODES / "data_scripts" / "prepare_dataset.py", "--src", scene, "--dst", root, "--tile", "48",
                       "--scales", str(SCALE), "--min_valid", "0.3", "--split", "0.5,0.5,0", "--bands", SIX_BANDS)
    assert proc.returncode == 0, proc.stderr
    return root, proc.stdout


def fill_of(image):
    return (image == FILL).all(axis=2)


def counted_pixels(hr_path):
    """The HR pixels that training counts: neither nodata nor under an LR nodata pixel (computed here)."""
    lr = image_io.read_image(hr_path.parents[1] / f"LR_x{SCALE}" / hr_path.name)
    return ~(fill_of(image_io.read_image(hr_path)) | np.kron(fill_of(lr), np.ones((SCALE, SCALE), bool)))


def partial_tiles(root, split):
    return [p for p in image_files.list_images(root / split / "HR") if fill_of(image_io.read_image(p)).any()]


# ----------------------------------------------------------------------------------------------------- preparation
def test_min_valid_keeps_tiles_with_some_nodata_and_records_the_nodata_value(partial_dataset, tmp_path):
    root, summary = partial_dataset
    assert "21 of 24 tiles" in summary and "3 with nodata pixels, which training leaves out" in summary
    assert "skipped: 3 nodata pixels" in summary
    assert json.loads((root / "dataset.json").read_text())["nodata"] == FILL
    hr_paths = [p for split in ("train", "val") for p in image_files.list_images(root / split / "HR")]
    counted = [counted_pixels(p).mean() for p in hr_paths]  # what training counts of each tile
    assert sum(share < 1 for share in counted) == 3 and min(counted) >= 0.3
    whole = tmp_path / "Whole"  # the default keeps whole tiles only, and records no nodata
    prepare_dataset.main(["--src", str(footprint_scene(tmp_path / "scene.tif")), "--dst", str(whole), "--tile", "48",
                          "--scales", str(SCALE), "--split", "0.5,0.5,0"])
    assert "nodata" not in json.loads((whole / "dataset.json").read_text())
    assert sum(len(image_files.list_images(whole / split / "HR")) for split in ("train", "val")) == 18


def test_the_lr_pixels_that_nodata_reaches_are_nodata_and_the_others_do_not_depend_on_the_fill(partial_dataset):
    """An unmarked LR pixel is the bicubic of data pixels only: replacing the fill by any other value leaves it as it
    is. A marked one holds the fill, and some of them would change: the marking is needed."""
    root, _ = partial_dataset
    for hr_path in partial_tiles(root, "train") + partial_tiles(root, "val"):
        hr = image_io.read_image(hr_path)
        lr, lr_meta = image_io.read_image_with_meta(hr_path.parents[1] / f"LR_x{SCALE}" / hr_path.name)
        marked = fill_of(lr)
        assert lr_meta.nodata == FILL and marked.any() and not marked.all()
        other_fill = hr.copy()
        other_fill[fill_of(hr)] = 255
        np.testing.assert_array_equal(bicubic_downsample(other_fill, SCALE)[~marked], lr[~marked])
        assert (bicubic_downsample(other_fill, SCALE)[marked] != bicubic_downsample(hr, SCALE)[marked]).any()


def test_min_valid_counts_what_training_counts_so_thin_gaps_do_not_pass(tmp_path):
    """Gaps 2 pixels wide every 12 (a Landsat-7 SLC-off scene's stripes) leave most of the HR as data (69 % with the
    footprint's edge), but the LR pixels they reach cover nearly every tile: no tile has half its pixels counted,
    and that is one line."""
    scene = footprint_scene(tmp_path / "scene.tif")
    with rasterio.open(scene, "r+") as dst:
        pixels = dst.read()
        rows, cols = np.mgrid[:pixels.shape[1], :pixels.shape[2]]
        pixels[:, (rows + cols) % 12 < 2] = FILL
        dst.write(pixels)
    assert (pixels != FILL).any(axis=0).mean() > 0.6
    proc = call_script(CODES / "data_scripts" / "prepare_dataset.py", "--src", scene, "--dst", tmp_path / "D",
                       "--tile", "48", "--scales", str(SCALE), "--min_valid", "0.5")
    assert_one_line_error(proc, "no 48x48 tile", "nodata pixels")
    assert not (tmp_path / "D").exists()


def test_min_valid_is_a_share_of_a_tile_and_one_line_otherwise(tmp_path):
    script = CODES / "data_scripts" / "prepare_dataset.py"
    scene = footprint_scene(tmp_path / "scene.tif")
    for extra in (["--tile", "48", "--min_valid", "0"], ["--tile", "48", "--min_valid", "1.5"], ["--min_valid", "0.5"]):
        proc = call_script(script, "--src", scene, "--dst", tmp_path / "D", *extra)
        assert_one_line_error(proc, "--min_valid", "--tile 192 --min_valid 0.5")
    proc = call_script(script, "--src", scene, "--dst", tmp_path / "D", "--tile", "48", "--min_valid", "0.5", "--ext",
                       "png")
    assert_one_line_error(proc, "--min_valid with --ext png", "--ext tif")
    proc = call_script(script, "--src", scene, "--lr_src", scene, "--scales", "3", "--dst", tmp_path / "D", "--tile",
                       "48", "--min_valid", "0.5")
    assert_one_line_error(proc, "--min_valid", "--lr_src", "drop --min_valid")
    assert not (tmp_path / "D").exists()


# ----------------------------------------------------------------------------------------------------------- loss
def training_config(root, *extra):
    return parse_args(["--dataset=Partial", "--dir_data", str(root), f"--scale={SCALE}", "--patch_size=48",
                       "--ext=img", "--no_augment", *extra])


def test_every_loss_term_leaves_out_the_nodata_pixels_and_their_fill_value(partial_dataset):
    root, _ = partial_dataset
    cfg = training_config(root, "--loss=1*L1+0.5*MSE+0.1*SPECTRAL", "--spectral_index=NDVI,NDWI,NDBI")
    assert cfg.nodata == FILL and cfg.sources["nodata"] == "dataset metadata"
    dataset = SRData(cfg, root, "train", train=True)
    partial = dataset.hr_files.index(partial_tiles(root, "train")[0])
    sample = next(k for k in range(len(dataset)) if dataset.image_of(k) == partial)
    lr, hr, _, valid = dataset[sample]  # the whole tile: the patch is the tile
    lr_file, hr_file = dataset.load_pair(partial)
    expected_valid = ~(fill_of(hr_file) | np.kron(fill_of(lr_file), np.ones((SCALE, SCALE), bool)))
    np.testing.assert_array_equal(valid[0].numpy(), expected_valid)
    assert 0 < expected_valid.mean() < 1
    # the LR's nodata pixels reach the network as their band's mean over the data pixels, as deploy gives them
    network_lr = lr.numpy()
    for band in range(network_lr.shape[0]):
        data = network_lr[band][~fill_of(lr_file)]
        assert np.allclose(network_lr[band][fill_of(lr_file)], data.mean(), rtol=1e-6)

    sr = torch.from_numpy(bicubic_upsample(lr_file, SCALE).astype(np.float32).transpose(2, 0, 1) / 255)[None]
    sr.requires_grad_(True)
    loss = Loss(cfg)
    value = loss(sr, hr[None], valid[None])
    value.backward()
    gradient = sr.grad.clone()
    assert (gradient[0][:, ~expected_valid] == 0).all() and (gradient[0][:, expected_valid] != 0).any()

    # the same sum computed here on the valid pixels alone
    sr_px, hr_px = sr.detach()[0][:, expected_valid].numpy().T, hr[:, expected_valid].numpy().T  # (pixels, bands)
    l1, mse = np.abs(sr_px - hr_px).mean(), ((sr_px - hr_px) ** 2).mean()
    names = SIX_BANDS.split(",")

    def index_error(a, b):
        def nd(x):
            x = np.clip(x.astype(np.float64), 0, None)
            return (x[:, a] - x[:, b]) / (x[:, a] + x[:, b] + 1e-6)
        return np.abs(nd(sr_px) - nd(hr_px)).mean()

    spectral = np.mean([index_error(names.index(a), names.index(b))
                        for a, b in (("nir", "red"), ("green", "nir"), ("swir1", "nir"))])
    assert float(value.detach()) == pytest.approx(l1 + 0.5 * mse + 0.1 * spectral, rel=1e-5)

    # another fill value under the mask changes nothing; without the mask it would enter the loss
    other = hr.clone()
    other[:, ~expected_valid] = 1.0
    sr.grad = None
    loss(sr, other[None], valid[None]).backward()
    assert float(loss(sr, other[None], valid[None]).detach()) == float(value.detach())
    assert torch.equal(sr.grad, gradient)
    with torch.no_grad():
        assert float(loss(sr, other[None])) != pytest.approx(float(loss(sr, hr[None])), rel=1e-3)


def test_terms_that_cannot_leave_pixels_out_are_refused_in_one_line(partial_dataset, tmp_path):
    root, _ = partial_dataset
    proc = call_script(CODES / "demo_train.py", *TINY_BASIC, f"--scale={SCALE}", "--dataset=Partial", "--dir_data",
                       root, "--epochs=1", "--loss=1*L1+0.005*GAN", *isolated(tmp_path))
    assert_one_line_error(proc, "GAN cannot leave out the nodata pixels", "--nodata 0", "L1, MSE and SPECTRAL")
    proc = call_script(CODES / "demo_train.py", *TINY_BASIC, f"--scale={SCALE}", "--dataset=Partial", "--dir_data",
                       root, "--epochs=1", "--loss=1*VGG54", *isolated(tmp_path))  # before its weights are looked for
    assert_one_line_error(proc, "VGG54 cannot leave out the nodata pixels")


# ----------------------------------------------------------------------------------------------------- metrics
def test_masked_metrics_equal_the_metrics_of_the_valid_part_alone():
    """Left columns invalid: every metric over the valid pixels (SSIM: over the windows inside them) equals the
    metric of the image cut to its valid columns; the invalid pixels' values do not matter."""
    hr = image_io.read_image(image_files.list_images(SAMPLE / "val" / "HR")[0])
    sr = bicubic_upsample(bicubic_downsample(hr, SCALE), SCALE)
    valid = np.ones(hr.shape[:2], bool)
    valid[:, :20] = False
    masked = metrics.evaluate_pair(sr, hr, scale=SCALE, crop_border=0, valid=valid)
    cut = metrics.evaluate_pair(sr[:, 20:], hr[:, 20:], scale=SCALE, crop_border=0)
    assert list(masked) == list(cut)
    for key in cut:
        assert masked[key] == pytest.approx(cut[key], rel=1e-12), key
    filled = hr.copy()
    filled[:, :20] = 0
    assert metrics.evaluate_pair(sr, filled, scale=SCALE, crop_border=0, valid=valid) == masked
    assert metrics.evaluate_pair(sr, filled, scale=SCALE, crop_border=0)["psnr_rgb"] < masked["psnr_rgb"] - 1


def test_validation_scores_of_a_training_run_leave_out_the_nodata(partial_dataset, tmp_path):
    """The val PSNR in metrics.csv equals the PSNR computed here over the valid pixels of the saved SR images."""
    root, _ = partial_dataset
    assert partial_tiles(root, "val")  # the split puts a tile with nodata into val
    proc = call_script(CODES / "demo_train.py", *TINY_BASIC, f"--scale={SCALE}", "--dataset=Partial", "--dir_data",
                       root, "--epochs=1", "--save_results", *isolated(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "nodata 0 (from the dataset metadata)" in proc.stdout
    run = tmp_path / "experiment" / f"BASICx{SCALE}_Partial"
    psnrs = []
    for hr_path in image_files.list_images(root / "val" / "HR"):
        hr = image_io.read_image(hr_path).astype(np.float64)
        lr = image_io.read_image(root / "val" / f"LR_x{SCALE}" / hr_path.name)
        sr = image_io.read_image(run / "results" / f"{hr_path.stem}.tif").astype(np.float64)  # 6 bands: a TIFF
        valid = ~(fill_of(hr) | np.kron(fill_of(lr), np.ones((SCALE, SCALE), bool)))
        inner = (slice(SCALE, -SCALE), slice(SCALE, -SCALE))
        error = (sr[inner] - hr[inner])[valid[inner]]
        psnrs.append(10 * np.log10(255 ** 2 / np.mean(error ** 2)))
    with open(run / "metrics.csv") as f:
        row = list(csv.DictReader(f))[-1]
    assert float(row["psnr_rgb"]) == pytest.approx(np.mean(psnrs), rel=1e-9)
    # the bicubic reference line is the BICUBIC model's score: its LR nodata is filled as the network input's is
    # (within rounding: the band means are float64 here and float32 in the network's input)
    reference = float(re.search(r"bicubic on val: psnr \(6 bands\) ([0-9.]+) dB", proc.stdout).group(1))
    bicubic = call_script(CODES / "demo_train.py", "--model=BICUBIC", f"--scale={SCALE}", "--cpu", "--test_only",
                          "--dataset=Partial", "--dir_data", root, "--data_test", "val", *isolated(tmp_path))
    assert float(re.search(r"psnr_rgb ([0-9.]+)", bicubic.stdout).group(1)) == pytest.approx(reference, abs=0.01)


def test_pairs_with_their_declared_nodata_train_with_the_nodata_flag(tmp_path):
    """Pairs made elsewhere that hold their fill value: refused with the flags that keep them masked, and trained
    with --nodata."""
    scene = footprint_scene(tmp_path / "scene.tif")
    root = tmp_path / "Mine"
    prepare_dataset.main(["--src", str(scene), "--dst", str(root), "--tile", "48", "--scales", str(SCALE),
                          "--min_valid", "0.3"])
    metadata = json.loads((root / "dataset.json").read_text())
    del metadata["nodata"]  # as a dataset made by other tools: the tiles declare their nodata, nothing else does
    (root / "dataset.json").write_text(json.dumps(metadata))
    command = [*TINY_BASIC, f"--scale={SCALE}", "--dataset=Mine", "--dir_data", root, "--epochs=1",
               *isolated(tmp_path)]
    proc = call_script(CODES / "demo_train.py", *command)
    assert_one_line_error(proc, "pixels of its declared nodata value 0", "prepare_dataset.py --min_valid",
                          "--nodata 0")
    proc = call_script(CODES / "demo_train.py", *command, "--nodata=0")
    assert proc.returncode == 0, proc.stderr
    assert "nodata 0 (from the command line)" in proc.stdout
    proc = call_script(CODES / "demo_train.py", *command, "--nodata=7", "--reset")
    assert_one_line_error(proc, "declared nodata value 0", "--nodata is 7")


def test_a_validation_tile_that_nodata_leaves_no_ssim_window_is_named_before_the_run(partial_dataset, tmp_path):
    """Its scores would be NaN, and so the split's mean and the choice of the best model."""
    root = tmp_path / "Partial"
    shutil.copytree(partial_dataset[0], root)
    victim = image_files.list_images(root / "val" / "HR")[0]
    with rasterio.open(victim, "r+") as tile:
        pixels = tile.read()
        pixels[:, ::10, :] = FILL  # a grid of nodata lines 10 pixels apart: no 11 x 11 window between them
        pixels[:, :, ::10] = FILL
        tile.write(pixels)
    proc = call_script(CODES / "demo_train.py", *TINY_BASIC, f"--scale={SCALE}", "--dataset=Partial", "--dir_data",
                       root, "--epochs=1", *isolated(tmp_path))
    assert_one_line_error(proc, f"{victim}: once the x{SCALE} border is cropped, no 11x11 window",
                          "higher --min_valid")
    assert not (tmp_path / "experiment").exists()


def test_a_pack_of_tiles_with_nodata_keeps_the_nodata_value(tmp_path):
    """PNGs cannot declare nodata: the pack's dataset.json carries it, and an HR-only training masks it."""
    with rasterio.open(footprint_scene(tmp_path / "six.tif")) as six:  # its first 3 bands: a pack is PNG
        profile, pixels = six.profile, six.read()[:3]
    with rasterio.open(tmp_path / "scene.tif", "w", **dict(profile, count=3)) as three:
        three.write(pixels)
    root, pack = tmp_path / "Partial", tmp_path / "Pack"
    prepare_dataset.main(["--src", str(tmp_path / "scene.tif"), "--dst", str(root), "--tile", "48", "--scales",
                          str(SCALE), "--min_valid", "0.3", "--split", "0.5,0.5,0"])
    proc = call_script(CODES / "data_scripts" / "pack_dataset.py", "--src", root, "--dst", pack, "--max_mib", "5",
                       "--val_images", "2")
    assert proc.returncode == 0, proc.stderr
    metadata = json.loads((pack / "dataset.json").read_text())
    assert metadata["nodata"] == FILL and metadata["dtype"] == "uint8"
    assert any(fill_of(image_io.read_image(p)).any() for p in image_files.list_images(pack / "train" / "HR"))
    proc = call_script(CODES / "demo_train.py", *TINY_BASIC, f"--scale={SCALE}", "--dataset=HROnly", "--dir_data",
                       pack, "--epochs=1", *isolated(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "nodata 0 (from the dataset metadata)" in proc.stdout
