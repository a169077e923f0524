"""radiometry.py: file values <-> network values, never clipped at the white level; deploy, validation and the metric
script use the white level the run recorded."""
import json
import sys

import numpy as np
import pytest
import rasterio
import torch

import demo_deploy
import image_files
import image_io
import metrics
from conftest import REPO_ROOT
from errors import UserError
from helpers import SAMPLE, isolated
from radiometry import Radiometry, bicubic_baseline, default_white
from test_deploy import sample_ms_hr, write_geotiff

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM  # noqa: E402


def test_values_pass_unclipped_and_leave_saturated_only_to_the_dtype():
    reflectance = Radiometry.of(np.uint16, 10000, 1.0)
    pixels = np.array([[[0, 5000, 10000, 14000]]], dtype=np.uint16)  # 1.4: a cloud above white
    x = reflectance.to_network(pixels)
    assert torch.allclose(x[:, 0, 0], torch.tensor([0.0, 0.5, 1.0, 1.4]))
    np.testing.assert_array_equal(reflectance.from_network(x), pixels)
    above = torch.tensor([7.0, -0.2]).view(2, 1, 1)
    np.testing.assert_array_equal(reflectance.from_network(above)[0, 0], [65535, 0])  # the dtype's limits only
    signed = Radiometry.of(np.int16, None, 1.0)
    np.testing.assert_array_equal(signed.from_network(signed.to_network(np.array([[[-300, 200]]], np.int16))),
                                  [[[-300, 200]]])
    floats = Radiometry.of(np.float32, None, 255.0)
    assert floats.from_network(torch.tensor([[[510.0]]]))[0, 0, 0] == 2.0  # floats: never clipped
    assert [default_white(t) for t in (np.uint8, np.uint16, np.int16, np.float32)] == [255, 65535, 32767, 1.0]
    assert Radiometry.from_record(reflectance.record(), "a record") == reflectance


def test_deploy_keeps_reflectance_above_the_white_level(tmp_path):
    """The bug: --data_range 10000 clipped every value above 10000 (clouds, snow) at deploy."""
    bright = (sample_ms_hr(0)[:, :, :3].astype(np.uint16) * 60)  # up to 15300: well above white = 10000
    scene = write_geotiff(tmp_path / "l2a.tif", bright)
    out = tmp_path / "sr"
    demo_deploy.main(["--model=BICUBIC", "--scale=2", "--data_range=10000", f"--dir_data={scene}",
                      f"--dir_out={out}", *isolated(tmp_path)])
    with rasterio.open(out / "l2a.tif") as src:
        sr = np.moveaxis(src.read(), 0, -1)
    expected = bicubic_baseline(bright, 2)
    assert sr.max() > 14000 and np.abs(sr.astype(int) - expected.astype(int)).max() <= 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["radiometry"] == {"dtype": "uint16", "white": 10000.0, "net_range": 1.0}


def test_an_8_bit_deploy_with_a_lower_white_level_is_not_capped(tmp_path):
    """The bug: a BICUBIC deploy of 8-bit data with --data_range 200 wrote images whose maximum was 200."""
    out = tmp_path / "sr"
    demo_deploy.main(["--model=BICUBIC", "--scale=4", "--data_range=200", f"--dir_out={out}", *isolated(tmp_path)])
    lr_max = max(int(image_io.read_image(p).max()) for p in image_files.list_images(SAMPLE / "test" / "LR_x4"))
    sr_max = max(int(image_io.read_image(p).max()) for p in out.glob("*.png"))
    assert lr_max > 200 and sr_max > 200


def test_the_metric_script_scores_with_the_white_level_deploy_used(tmp_path):
    """The bug: the metric script ignored the manifest's data_range and bands and scored with peak 255."""
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hr = (sample_ms_hr(1).astype(np.uint16) * 40)
    image_io.write_image(hr_dir / "t.tif", hr)
    image_io.write_image(lr_dir / "t.tif", bicubic_baseline(hr, 0.5))
    out = tmp_path / "sr"
    demo_deploy.main(["--model=BICUBIC", "--scale=2", "--n_colors=4", "--data_range=10000",
                      "--bands=blue,green,red,nir", f"--dir_data={lr_dir}", f"--dir_out={out}", *isolated(tmp_path)])
    calculate_PSNR_SSIM.main(["--sr", str(out), "--gt", str(hr_dir), "--spectral_index", "NDVI"])
    row = (out / "psnr_ssim.csv").read_text().splitlines()
    header, values = row[0].split(","), row[1].split(",")
    got = dict(zip(header, values))
    sr = image_io.read_image(out / "t.tif")
    assert float(got["psnr_rgb"]) == pytest.approx(metrics.calculate_psnr(sr, hr, 2, data_range=10000), abs=1e-6)
    assert "ndvi_err" in got  # the manifest's band names enable the index errors


def test_float_data_outside_0_1_needs_the_white_level(tmp_path):
    reflectance = (sample_ms_hr(0)[:, :, :3].astype(np.float32) * 40)  # reflectance x 10000 stored as float
    scene = write_geotiff(tmp_path / "float.tif", reflectance)
    with pytest.raises(UserError, match=r"float.tif: float values span \[.*\], outside \[0, 1\]: pass --data_range"):
        Radiometry.of(np.float32, None, 1.0).check_values(reflectance, scene, False)
    out = tmp_path / "sr"
    demo_deploy.main(["--model=BICUBIC", "--scale=2", "--data_range=10000", f"--dir_data={scene}",
                      f"--dir_out={out}", *isolated(tmp_path)])
    with rasterio.open(out / "float.tif") as src:
        sr = np.moveaxis(src.read(), 0, -1)
    assert sr.dtype == np.float32 and sr.std() > 100  # not the constant 1.0 image the bug wrote
    assert np.abs(sr - bicubic_baseline(reflectance, 2)).max() < 0.05
