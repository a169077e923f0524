"""demo_deploy end to end on real pixels: formats, bit depths and bands, GeoTIFF georeferencing and nodata, tiling,
--recursive, --self_ensemble, --precision on the CPU, --compare figures, the manifest, and the errors."""
import json
import shutil

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import Affine
from rio_cogeo.cogeo import cog_validate

import compare
import demo_deploy
import image_files
import image_io
import imresize
import metrics
import model as model_package
import option
from errors import UserError
from helpers import CODES, SAMPLE, SAMPLE_MS, assert_one_line_error, call_script, isolated
from model import Model
from radiometry import Radiometry, to_dtype

# BASIC with 1 residual block: receptive-field radius 6 LR pixels, so --tile_overlap 24 makes tiles exact.
TINY_ARCH = ["--model=BASIC", "--n_feats=8", "--n_resblocks=1"]
RGBN = "data/registry/rgbn.tif"
UTM18N = CRS.from_epsg(32618)
TRANSFORM_5M = Affine(5.0, 0, 792988.0, 0, -5.0, 2050382.0)



def deploy(tmp_path, *flags, out="out"):
    """Run demo_deploy.main in-process; returns (output folder, manifest)."""
    out_dir = tmp_path / out
    demo_deploy.main(["--cpu", *isolated(tmp_path), "--dir_out", str(out_dir), *map(str, flags)])
    return out_dir, json.loads((out_dir / "manifest.json").read_text())


def save_basic(tmp_path, n_colors=3, scale=4, name=None, wrap_args=None):
    """A random-init tiny BASIC as a checkpoint: a bare state_dict, or ours ({'model', 'args'}) with wrap_args."""
    torch.manual_seed(n_colors * 10 + scale)
    model = Model(option.parse_args(TINY_ARCH + ["--cpu", f"--n_colors={n_colors}", f"--scale={scale}"]))
    state = model.net.state_dict()
    path = tmp_path / (name or f"basic_c{n_colors}_x{scale}.pt")
    torch.save({"model": state, "args": wrap_args} if wrap_args else state, path)
    return path


def sample_lr(index=0):
    return image_io.read_image(image_files.list_images(SAMPLE / "test" / "LR_x4")[index])


def sample_hr(index=0):
    return image_io.read_image(image_files.list_images(SAMPLE / "test" / "HR")[index])


def sample_ms_hr(index=0):
    """A real 96x96 4-band (blue, green, red, NIR) uint8 tile."""
    return image_io.read_image(image_files.list_images(SAMPLE_MS / "test" / "HR")[index])


def write_geotiff(path, pixels, nodata=None, descriptions=(), transform=TRANSFORM_5M):
    """A GeoTIFF written with rasterio directly (UTM 18N), so these tests need no ../shared."""
    height, width, bands = pixels.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", height=height, width=width, count=bands, dtype=pixels.dtype.name, crs=UTM18N,
                   transform=transform, nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(pixels, -1, 0))
        for index, text in enumerate(descriptions, start=1):
            dst.set_band_description(index, text)
    return path


def bicubic_reference(lr, scale):
    """What BICUBIC deploy computes: MATLAB bicubic on the float pixels, rounded once to the input dtype."""
    return to_dtype(imresize.imresize(lr.astype(np.float64), scale), lr.dtype)


def assert_close_levels(a, b, identical=0.999):
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    assert diff.max() <= 1 and (diff == 0).mean() >= identical, (diff.max(), (diff == 0).mean())


# ------------------------------------------------------------------------------------------------------ the Sample
def test_sample_with_a_checkpoint_writes_sr_and_manifest(tmp_path, capsys):
    checkpoint = save_basic(tmp_path)
    out_dir, manifest = deploy(tmp_path, *TINY_ARCH, "--scale=4", "--pre_train", checkpoint)
    lr_files = image_files.list_images(SAMPLE / "test" / "LR_x4")
    assert sorted(p.name for p in out_dir.glob("*.png")) == [p.name for p in lr_files]
    # the file holds exactly the network's output on that LR, rounded to uint8
    model = Model(option.parse_args(TINY_ARCH + ["--cpu", "--scale=4", "--pre_train", str(checkpoint)]))
    model.eval()
    lr = sample_lr(0)
    with torch.no_grad():
        sr = model(torch.from_numpy(lr.transpose(2, 0, 1) / 255.0).float()[None])[0]
    expected = Radiometry.of(np.uint8, None, 1.0).from_network(sr)
    written = image_io.read_image(out_dir / lr_files[0].name)
    assert written.shape == (120, 120, 3) and written.dtype == np.uint8 and written.std() > 1
    np.testing.assert_array_equal(written, expected)
    assert manifest["model"] == "BASIC" and manifest["scale"] == 4 and manifest["dataset"] == "Sample"
    assert manifest["gt"] == str((SAMPLE / "test" / "HR").resolve())
    assert manifest["checkpoint"] == str(checkpoint.resolve())
    assert manifest["source"] == str((SAMPLE / "test" / "LR_x4").resolve())
    assert manifest["outputs"] == [p.name for p in lr_files] and manifest["skipped"] == []
    record = dict(manifest["images"][0])
    consistency = record.pop("lr_consistency")
    assert record == {"input": lr_files[0].name, "output": lr_files[0].name, "lr_size": [30, 30],
                      "sr_size": [120, 120], "bands": 3, "dtype": "uint8", "cog": False,
                      "radiometry": {"dtype": "uint8", "white": 255.0, "net_range": 1.0}, "tile": 0,
                      "tile_overlap": 0, "tiles": 1}
    assert set(consistency) == {"psnr", "bias", "sam"} and len(consistency["bias"]) == 3
    assert manifest["radiometry"] == {"dtype": "uint8", "white": 255.0, "net_range": 1.0}
    closing = [line for line in capsys.readouterr().out.splitlines() if "images ->" in line]
    assert len(closing) == 1 and "4 images" in closing[0] and "images/s" in closing[0] and "MP/s" in closing[0]


def test_compare_figures_show_lr_bicubic_sr_hr_with_psnrs(tmp_path):
    out_dir, manifest = deploy(tmp_path, "--model=BICUBIC", "--scale=4", "--compare", SAMPLE / "test" / "HR")
    names = [p.name for p in image_files.list_images(SAMPLE / "test" / "LR_x4")]
    assert [f["figure"] for f in manifest["figures"]] == [f"compare/{n}" for n in names]
    record = manifest["figures"][0]
    figure = image_io.read_image(out_dir / record["figure"])
    # 120x120 crops (the whole tile), enlarged x2 to reach 192 pixels; the SR of BICUBIC is the bicubic panel, so
    # 3 panels: LR | bicubic (= SR) | HR
    zoom, side = 2, 240
    assert figure.shape == (compare.CAPTION + side, 3 * side + 2 * compare.GAP, 3) and figure.dtype == np.uint8
    lr, hr = sample_lr(0), sample_hr(0)
    sr = image_io.read_image(out_dir / names[0])
    panels = [figure[compare.CAPTION:, k * (side + compare.GAP):k * (side + compare.GAP) + side] for k in range(3)]
    np.testing.assert_array_equal(panels[0], np.repeat(np.repeat(lr, 4 * zoom, 0), 4 * zoom, 1))
    np.testing.assert_array_equal(panels[1], np.repeat(np.repeat(sr, zoom, 0), zoom, 1))
    np.testing.assert_array_equal(panels[2], np.repeat(np.repeat(hr, zoom, 0), zoom, 1))
    assert (figure[:compare.CAPTION] < 128).any()  # captions are written
    bicubic = to_dtype(imresize.imresize(lr.astype(np.float64), 4), np.uint8)  # BICUBIC's definition
    np.testing.assert_array_equal(sr, bicubic)
    assert record["psnr_bicubic"] == pytest.approx(metrics.calculate_psnr(bicubic, hr, 4), abs=1e-4)
    assert 15 < record["psnr_sr"] < 40 and record["psnr_sr"] == pytest.approx(record["psnr_bicubic"], abs=1e-9)


def test_compare_figures_of_a_network_have_four_panels(tmp_path):
    checkpoint = save_basic(tmp_path)
    out_dir, manifest = deploy(tmp_path, *TINY_ARCH, "--pre_train", checkpoint, "--compare", SAMPLE / "test" / "HR")
    figure = image_io.read_image(out_dir / manifest["figures"][0]["figure"])
    side = 240
    assert figure.shape == (compare.CAPTION + side, 4 * side + 3 * compare.GAP, 3)
    sr = image_io.read_image(out_dir / manifest["outputs"][0])
    sr_panel = figure[compare.CAPTION:, 2 * (side + compare.GAP):2 * (side + compare.GAP) + side]
    np.testing.assert_array_equal(sr_panel, np.repeat(np.repeat(sr, 2, 0), 2, 1))
    hr = sample_hr(0)
    assert manifest["figures"][0]["psnr_sr"] == pytest.approx(metrics.calculate_psnr(sr, hr, 4), abs=1e-4)


# --------------------------------------------------------------------------------------------------- GeoTIFF
@pytest.mark.parametrize("dtype,nodata", [(np.uint8, 0), (np.uint16, 65535)])
def test_geotiff_keeps_georeferencing_and_nodata_tiled_or_whole(tmp_path, dtype, nodata):
    pixels = sample_ms_hr(0).astype(dtype) * (257 if dtype == np.uint16 else 1)
    pixels[pixels == nodata] = nodata + (1 if nodata == 0 else -1)  # only the corner below is nodata
    pixels[:10, :13] = nodata
    names = ("blue", "green", "red", "nir")
    scene = write_geotiff(tmp_path / "in" / "scene.tif", pixels, nodata=nodata, descriptions=names)
    checkpoint = save_basic(tmp_path, n_colors=4, scale=3)
    flags = [*TINY_ARCH, "--n_colors=4", "--scale=3", "--pre_train", checkpoint, "--dir_data", scene]
    tiled_dir, manifest = deploy(tmp_path, *flags, "--tile=48", "--tile_overlap=24", out="tiled")
    whole_dir, _ = deploy(tmp_path, *flags, "--tile=0", out="whole")
    assert manifest["images"][0]["tiles"] == 9 and manifest["images"][0]["sr_size"] == [288, 288]
    assert manifest["images"][0]["cog"] is True  # a georeferenced input gives a Cloud-Optimized GeoTIFF
    assert cog_validate(tiled_dir / "scene.tif")[0]
    with rasterio.open(scene) as src, rasterio.open(tiled_dir / "scene.tif") as out:
        assert out.crs == src.crs and out.count == 4 and out.dtypes == src.dtypes and out.nodata == nodata
        assert out.descriptions == names and (out.width, out.height) == (288, 288)
        assert (out.transform.a, out.transform.e) == pytest.approx((5 / 3, -5 / 3))  # pixel size / scale
        assert (out.transform.c, out.transform.f) == (src.transform.c, src.transform.f)  # same origin
        assert out.bounds == pytest.approx(src.bounds)  # same footprint
        sr = np.moveaxis(out.read(), 0, -1)
    lr_nodata = (pixels == nodata).all(axis=2)
    hr_nodata = np.kron(lr_nodata, np.ones((3, 3), bool))
    assert (sr[hr_nodata] == nodata).all()  # nodata areas stay nodata
    assert not (sr == nodata).all(axis=2)[~hr_nodata].any()  # and no valid pixel turns into nodata
    assert sr[~hr_nodata].std() > 1
    # tiled (strip by strip) == whole. At 16 bits a level is 1.5e-5 of the range, the size of the float32 rounding
    # noise of the network itself, so a few more pixels round the other way than at 8 bits.
    assert_close_levels(sr, image_io.read_image(whole_dir / "scene.tif"), 0.999 if dtype == np.uint8 else 0.97)


def test_rgbn_scene_crop_super_resolves_in_place_with_a_4_band_figure(tmp_path, shared_dir):
    image, meta = image_io.read_image_with_meta(shared_dir / RGBN)
    top, left, size = 120, 200, (92, 130)
    hr = image[top:top + size[0], left:left + size[1]]
    hr_meta = image_io.window_meta(meta, top, left, *size)
    image_io.write_image(tmp_path / "hr" / "rgbn.tif", hr, hr_meta)
    lr = imresize.bicubic_downsample(hr, 2)
    image_io.write_image(tmp_path / "lr" / "rgbn.tif", lr, hr_meta, scale=0.5)
    out_dir, manifest = deploy(tmp_path, "--model=BICUBIC", "--n_colors=4", "--scale=2", "--bands=blue,green,red,nir",
                               "--dir_data", tmp_path / "lr", "--compare", tmp_path / "hr")
    with rasterio.open(out_dir / "rgbn.tif") as out, rasterio.open(shared_dir / RGBN) as src:
        assert out.crs == src.crs and out.count == 4 and out.dtypes[0] == "uint8"
        assert out.transform == src.transform @ Affine.translation(left, top)  # back on the HR grid exactly
        sr = np.moveaxis(out.read(), 0, -1)
    assert_close_levels(sr, bicubic_reference(lr, 2), identical=0.99)  # float32 vs float64 bicubic
    assert manifest["figures"][0]["psnr_sr"] == pytest.approx(metrics.calculate_psnr(sr, hr, 2), abs=1e-4)
    figure = image_io.read_image(out_dir / manifest["figures"][0]["figure"])
    side = 2 * 130  # the whole 92x130 image (smaller than a crop), enlarged x2 to reach 192 pixels wide
    assert figure.shape == (compare.CAPTION + 2 * 92, 3 * side + 2 * compare.GAP, 3)  # BICUBIC: no separate SR
    hr_panel = figure[compare.CAPTION::2, 2 * (side + compare.GAP):2 * (side + compare.GAP) + side:2].astype(float)
    crop = hr[..., [2, 1, 0]].astype(float)  # red, green, blue by --bands
    low, high = np.percentile(crop.reshape(-1, 3), [2, 98], axis=0)
    expected = np.clip((crop - low) / (high - low), 0, 1) * 255
    assert np.abs(hr_panel - expected).max() <= 1  # percentile-stretched RGB of the 4 bands


# ------------------------------------------------------------------------------------- formats, bit depths, bands
FORMAT_CASES = [("gray16.png", 1, np.uint16), ("rgb8.jpg", 3, np.uint8), ("rgb16.png", 3, np.uint16),
                ("rgb8.png", 3, np.uint8), ("ms4.tif", 4, np.uint16), ("gray8.tif", 1, np.uint8)]


@pytest.mark.parametrize("name,bands,dtype", FORMAT_CASES)
def test_every_format_bit_depth_and_band_count_round_trips(tmp_path, name, bands, dtype):
    real = sample_ms_hr(1)[:45, :37]  # odd sizes
    pixels = real[..., :bands] if bands != 3 else real[..., [2, 1, 0]]
    pixels = pixels.astype(dtype) * (257 if dtype == np.uint16 else 1)
    image_io.write_image(tmp_path / "in" / name, pixels)
    lr = image_io.read_image(tmp_path / "in" / name)  # what the file holds (JPG is lossy)
    out_dir, _ = deploy(tmp_path, "--model=BICUBIC", "--scale=2", f"--n_colors={bands}",
                        "--dir_data", tmp_path / "in" / name)
    sr = image_io.read_image(out_dir / name)
    assert sr.shape == (90, 74, bands) and sr.dtype == dtype
    if name.endswith(".jpg"):
        assert metrics.calculate_psnr(sr, bicubic_reference(lr, 2), 2) > 35
    else:
        assert_close_levels(sr, bicubic_reference(lr, 2), identical=0.99)  # float32 vs float64 bicubic


def test_odd_sizes_and_images_smaller_than_a_tile(tmp_path):
    hr = sample_hr(1)
    (tmp_path / "in").mkdir()
    image_io.write_image(tmp_path / "in" / "tiny.png", hr[:7, :5])  # smaller than a training patch and a tile
    image_io.write_image(tmp_path / "in" / "odd.png", hr[:33, :47])
    checkpoint = save_basic(tmp_path, scale=3)
    out_dir, manifest = deploy(tmp_path, *TINY_ARCH, "--scale=3", "--pre_train", checkpoint, "--dir_data",
                               tmp_path / "in", "--tile=16", "--tile_overlap=8")
    assert image_io.read_image(out_dir / "tiny.png").shape == (21, 15, 3)
    assert image_io.read_image(out_dir / "odd.png").shape == (99, 141, 3)
    tiles = {r["input"]: r["tiles"] for r in manifest["images"]}
    assert tiles == {"odd.png": 4 * 5, "tiny.png": 1}  # rows 0, 8, 16, 17; columns 0, 8, 16, 24, 31


def test_recursive_keeps_relative_paths_and_never_writes_inside_its_inputs(tmp_path):
    src = tmp_path / "scenes"
    for rel, index in (("a.png", 0), ("north/b.png", 1), ("north/deep/c.png", 2)):
        image_io.write_image(src / rel, sample_lr(index))
    flat_dir, flat = deploy(tmp_path, "--model=BICUBIC", "--scale=2", "--dir_data", src, out="flat")
    assert flat["outputs"] == ["a.png"]
    flags = ["--model=BICUBIC", "--scale=2", "--dir_data", src, "--recursive"]
    out_dir, manifest = deploy(tmp_path, *flags, out="sr")
    assert manifest["outputs"] == ["a.png", "north/b.png", "north/deep/c.png"]
    assert image_io.read_image(out_dir / "north" / "deep" / "c.png").shape == (60, 60, 3)
    with pytest.raises(UserError, match="which --recursive reads"):  # an output folder inside the input tree
        deploy(tmp_path, *flags, out="scenes/sr")
    assert not (src / "sr").exists()
    (src / "a.png").unlink()
    with pytest.raises(UserError, match="--recursive"):
        deploy(tmp_path, "--model=BICUBIC", "--scale=2", "--dir_data", src, out="none")


# ----------------------------------------------------------------------------------- self-ensemble, precision
def test_self_ensemble_of_bicubic_is_bicubic_and_changes_a_network(tmp_path):
    pixels = (sample_ms_hr(2)[:41, :29, :3].astype(np.uint16) * 257)  # odd, non-square: transposes matter
    image_io.write_image(tmp_path / "in.tif", pixels)
    flags = ["--scale=3", "--dir_data", tmp_path / "in.tif"]
    plain_dir, _ = deploy(tmp_path, "--model=BICUBIC", *flags, out="plain")
    x8_dir, manifest = deploy(tmp_path, "--model=BICUBIC", *flags, "--self_ensemble", out="x8")
    assert manifest["self_ensemble"] is True
    assert_close_levels(image_io.read_image(x8_dir / "in.tif"), image_io.read_image(plain_dir / "in.tif"))
    checkpoint = save_basic(tmp_path, scale=3)
    net = [*TINY_ARCH, "--pre_train", checkpoint, *flags]
    a_dir, _ = deploy(tmp_path, *net, out="net")
    b_dir, _ = deploy(tmp_path, *net, "--self_ensemble", out="net_x8")
    a, b = image_io.read_image(a_dir / "in.tif"), image_io.read_image(b_dir / "in.tif")
    assert np.abs(a.astype(int) - b.astype(int)).max() > 10  # a random conv net is not flip-invariant


def test_precision_bf16_is_a_noted_no_op_on_a_cpu_without_bf16(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(model_package, "cpu_supports_bf16", lambda: False)
    flags = ["--model=BICUBIC", "--scale=2", "--dir_data", SAMPLE / "test" / "LR_x4"]
    fp32_dir, _ = deploy(tmp_path, *flags, out="fp32")
    capsys.readouterr()
    bf16_dir, manifest = deploy(tmp_path, *flags, "--precision=bf16", out="bf16")
    notes = [line for line in capsys.readouterr().out.splitlines() if "--precision" in line]
    assert len(notes) == 1 and "bf16 instructions" in notes[0] and manifest["precision"] == "bf16"
    for name in manifest["outputs"]:
        np.testing.assert_array_equal(image_io.read_image(bf16_dir / name), image_io.read_image(fp32_dir / name))


# ------------------------------------------------------------------------------------------------------ errors
def test_band_mismatch_is_a_clear_error(tmp_path):
    write_geotiff(tmp_path / "ms.tif", sample_ms_hr(0))
    with pytest.raises(UserError, match=r"ms\.tif has 4 bands but the model takes 3 \(--n_colors 3\)"):
        deploy(tmp_path, "--model=BICUBIC", "--dir_data", tmp_path / "ms.tif")


def test_corrupt_files_are_named_and_skipped_exit_2_after_the_good_ones(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = image_files.list_images(SAMPLE / "test" / "LR_x4")[:2]
    for path in good:
        shutil.copy(path, src / path.name)
    (src / "broken.png").write_bytes(good[0].read_bytes()[:200])  # truncated
    (src / "notes.tif").write_text("not an image")
    proc = call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--cpu", "--dir_data", src, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))
    assert_one_line_error(proc, "2 of 4 inputs skipped", "broken.png")
    assert "notes.tif" in proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["outputs"] == [p.name for p in good]
    assert [s["input"] for s in manifest["skipped"]] == ["broken.png", "notes.tif"]
    assert all(image_io.read_image(tmp_path / "out" / p.name).shape == (120, 120, 3) for p in good)


def test_missing_checkpoint_says_how_to_train(tmp_path):
    with pytest.raises(UserError, match=r"no checkpoint at .*BASICx4_Sample.*model_best\.pt: train one first "
                                        r"\(cd codes && python demo_train.py --model=BASIC --scale=4\) or pass "
                                        r"--pre_train PATH"):
        deploy(tmp_path, *TINY_ARCH)


def test_input_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        deploy(tmp_path, "--model=BICUBIC", "--dir_data", tmp_path / "empty")
    with pytest.raises(UserError, match="does not exist"):
        deploy(tmp_path, "--model=BICUBIC", "--dir_data", tmp_path / "missing.tif")
    with pytest.raises(UserError, match="--compare"):
        deploy(tmp_path, "--model=BICUBIC", "--compare", tmp_path / "no_hr")
    with pytest.raises(UserError, match=r"--tile_overlap 32 \(command line\) must be smaller than --tile 32 "):
        deploy(tmp_path, "--model=BICUBIC", "--tile=32", "--tile_overlap=32", "--dir_data", SAMPLE / "test" / "HR")
    lr_dir = shutil.copytree(SAMPLE / "test" / "LR_x4", tmp_path / "lr")
    with pytest.raises(UserError, match="would overwrite the input"):
        demo_deploy.main(["--model=BICUBIC", "--dir_data", str(lr_dir), "--dir_out", str(lr_dir),
                          *isolated(tmp_path)])
    assert [p.read_bytes() for p in sorted(lr_dir.iterdir())] == [
        p.read_bytes() for p in image_files.list_images(SAMPLE / "test" / "LR_x4")]


def test_checkpoint_errors(tmp_path):
    lr = ["--dir_data", SAMPLE / "test" / "LR_x4"]
    text = tmp_path / "weights.pt"
    text.write_text("these are not weights")
    with pytest.raises(UserError, match="weights.pt: not a PyTorch checkpoint"):
        deploy(tmp_path, *TINY_ARCH, "--pre_train", text, *lr)
    ours_x2 = save_basic(tmp_path, scale=2, name="ours_x2.pt", wrap_args={"model": "BASIC", "scale": 2})
    with pytest.raises(UserError, match="was trained with --scale 2, not 4: drop --scale"):
        deploy(tmp_path, *TINY_ARCH, "--scale=4", "--pre_train", ours_x2, *lr)
    bare_x2 = save_basic(tmp_path, scale=2)
    with pytest.raises(UserError, match="does not fit BASIC x4"):
        deploy(tmp_path, *TINY_ARCH, "--scale=4", "--pre_train", bare_x2, *lr)
