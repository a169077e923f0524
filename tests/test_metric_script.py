"""metric_scripts/calculate_PSNR_SSIM.py: defaults from the newest results, the CSV, and its errors."""
import csv
import json
import shutil
import sys
import time

import numpy as np
import pytest

import demo_deploy
import image_files
import image_io
import imresize
import metrics
import radiometry
from conftest import REPO_ROOT
from errors import UserError
from helpers import SAMPLE, SAMPLE_MS, assert_one_line_error, call_script, isolated

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM as script  # noqa: E402

SCRIPT = REPO_ROOT / "metric_scripts" / "calculate_PSNR_SSIM.py"


def read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def deploy_bicubic(tmp_path, scale=4, *extra):
    demo_deploy.main(["--model=BICUBIC", f"--scale={scale}", *isolated(tmp_path), *extra])


def test_no_arguments_evaluates_the_newest_results(tmp_path):
    deploy_bicubic(tmp_path, 2)
    time.sleep(0.01)
    deploy_bicubic(tmp_path, 4)
    script.main(["--dir_experiment", str(tmp_path / "experiment")])
    columns, rows = read_csv(tmp_path / "experiment" / "results" / "BICUBICx4_Sample" / "psnr_ssim.csv")
    assert columns == ["image", "psnr_chmean", "psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y"]
    hr_files = image_files.list_images(SAMPLE / "test" / "HR")
    assert [r["image"] for r in rows] == [p.stem for p in hr_files] + ["average"]
    # each row equals the metrics module on the same pixels: MATLAB bicubic x4 of the test LR vs the HR
    for row, hr_path in zip(rows, hr_files):
        hr = image_io.read_image(hr_path)
        sr = imresize.bicubic_upsample(image_io.read_image(SAMPLE / "test" / "LR_x4" / hr_path.name).astype(float), 4)
        sr = radiometry.to_dtype(sr, np.uint8)
        assert float(row["psnr_y"]) == pytest.approx(metrics.calculate_psnr(sr, hr, 4, test_y_channel=True), abs=1e-5)
        assert float(row["ssim_rgb"]) == pytest.approx(metrics.calculate_ssim(sr, hr, 4), abs=1e-6)
    average = rows[-1]
    assert float(average["psnr_chmean"]) == pytest.approx(np.mean([float(r["psnr_chmean"]) for r in rows[:-1]]),
                                                          abs=1e-5)


def test_an_unfinished_newest_deploy_is_named_not_passed_over(tmp_path):
    """A deploy that was stopped before its manifest: the script as typed says so and exits 2, instead of scoring
    an older folder of another model."""
    deploy_bicubic(tmp_path, 4)
    time.sleep(0.01)
    interrupted = tmp_path / "experiment" / "results" / "HSENETx4_Sample"
    interrupted.mkdir()
    (interrupted / "written_files.json").write_text(json.dumps({"files": ["a.png"]}))
    image_io.write_image(interrupted / "a.png", np.zeros((8, 8, 3), np.uint8))
    proc = call_script(SCRIPT, "--dir_experiment", tmp_path / "experiment")
    assert_one_line_error(proc, f"the newest results folder {interrupted} has no manifest.json")
    assert not (tmp_path / "experiment" / "results" / "BICUBICx4_Sample" / "psnr_ssim.csv").exists()


def test_explicit_folders_crop_and_csv(tmp_path):
    deploy_bicubic(tmp_path, 3)
    sr_dir = tmp_path / "experiment" / "results" / "BICUBICx3_Sample"
    out = tmp_path / "table.csv"
    script.main(["--gt", str(SAMPLE / "test" / "HR"), "--sr", str(sr_dir), "--scale", "3", "--crop_border", "0",
                 "--csv", str(out)])
    _, rows = read_csv(out)
    script.main(["--gt", str(SAMPLE / "test" / "HR"), "--sr", str(sr_dir), "--scale", "3", "--csv", str(out)])
    _, cropped = read_csv(out)
    assert rows[0]["psnr_rgb"] != cropped[0]["psnr_rgb"]  # crop_border defaults to the scale, not 0


def test_repeated_sr_flags_score_every_folder_and_the_gt_is_not_an_sr_folder(tmp_path):
    """`--sr A --sr B` scores both, as `--sr A B` does (argparse would keep only B); `--sr` onto the GT folder would
    score it against itself and write a CSV among the ground truth."""
    deploy_bicubic(tmp_path, 3)
    first = tmp_path / "experiment" / "results" / "BICUBICx3_Sample"
    second = tmp_path / "copy"
    shutil.copytree(first, second)
    gt = ["--gt", str(SAMPLE / "test" / "HR"), "--scale", "3"]
    script.main([*gt, "--sr", str(first), "--sr", str(second), "--csv", str(tmp_path / "summary.csv")])
    _, rows = read_csv(tmp_path / "summary.csv")
    assert [row["folder"] for row in rows] == [str(first), str(second)]
    truth = tmp_path / "HR"
    shutil.copytree(SAMPLE / "test" / "HR", truth)
    before = sorted(p.name for p in truth.iterdir())
    proc = call_script(REPO_ROOT / "metric_scripts" / "calculate_PSNR_SSIM.py", "--gt", truth, "--scale", "3", "--sr",
                       truth)
    assert_one_line_error(proc, "is the GT folder itself")
    assert sorted(p.name for p in truth.iterdir()) == before


def test_multispectral_columns(tmp_path):
    deploy_bicubic(tmp_path, 3, "--dataset=SampleMS", "--n_colors=4")
    script.main(["--sr", str(tmp_path / "experiment" / "results" / "BICUBICx3_SampleMS"), "--spectral_index",
                 "NDVI,NDWI"])
    columns, rows = read_csv(tmp_path / "experiment" / "results" / "BICUBICx3_SampleMS" / "psnr_ssim.csv")
    assert columns[:4] == ["image", "psnr_chmean", "psnr_rgb", "ssim_rgb"]  # no Y columns for 4 bands
    assert "psnr_y" not in columns and "ssim_y" not in columns
    for key in ("sam", "ergas", "rmse", "cc", "psnr_b4", "ssim_b4", "ndvi_err", "ndwi_err"):
        assert key in columns
    assert 0 < float(rows[-1]["sam"]) < 30 and 0 < float(rows[-1]["cc"]) <= 1
    assert json.loads((SAMPLE_MS / "dataset.json").read_text())["bands"] == ["blue", "green", "red", "nir"]


def test_missing_gt_folder(tmp_path):
    deploy_bicubic(tmp_path, 4)
    sr_dir = tmp_path / "experiment" / "results" / "BICUBICx4_Sample"
    with pytest.raises(UserError, match="GT folder"):
        script.main(["--gt", str(tmp_path / "nope"), "--sr", str(sr_dir)])
    proc = call_script(SCRIPT, "--gt", tmp_path / "nope", "--sr", sr_dir)
    assert_one_line_error(proc, "GT folder", "nope")


@pytest.mark.parametrize("flag", ["--data_range=0", "--data_range=-1", "--max_pixels=0"])
def test_numeric_flags_are_checked(tmp_path, flag):
    assert_one_line_error(call_script(SCRIPT, flag, "--dir_experiment", tmp_path), flag.split("=")[0])


def test_no_results_yet(tmp_path):
    proc = call_script(SCRIPT, "--dir_experiment", tmp_path)
    assert_one_line_error(proc, "no results", "demo_deploy.py")


def test_ambiguous_sr_broken_gt_links_and_unrecorded_float_white_are_named(tmp_path):
    """Two SR images of one name, a GT that is a link to nothing, float data beyond [0, 1] with no white level: each
    is one line naming the file, not a silent pick, a silent gap in the average or a score against a peak of 1."""
    gt, sr = tmp_path / "gt", tmp_path / "sr"
    gt.mkdir()
    sr.mkdir()
    hr = image_io.read_image(image_files.list_images(SAMPLE / "test" / "HR")[0])
    image_io.write_image(gt / "a.png", hr)
    image_io.write_image(sr / "a.png", hr)
    image_io.write_image(sr / "a.tif", hr)
    proc = call_script(SCRIPT, "--gt", gt, "--sr", sr, "--scale", "4")
    assert_one_line_error(proc, "two SR images named 'a' (a.png and a.tif)")
    (sr / "a.tif").unlink()
    (gt / "b.png").symlink_to(tmp_path / "gone.png")
    proc = call_script(SCRIPT, "--gt", gt, "--sr", sr, "--scale", "4")
    assert_one_line_error(proc, f"GT {gt / 'b.png'} is a link to nothing")
    (gt / "b.png").unlink()
    reflectance = (hr.astype(np.float32) / 255 * 10000)  # float data whose white is 10000
    image_io.write_image(gt / "a.tif", reflectance)
    (gt / "a.png").unlink()
    image_io.write_image(sr / "a.tif", reflectance * 0.99)
    (sr / "a.png").unlink()
    proc = call_script(SCRIPT, "--gt", gt, "--sr", sr, "--scale", "4")
    assert_one_line_error(proc, f"{gt / 'a.tif'}: float values up to", "the GT of a.tif", "give --data_range")
    assert call_script(SCRIPT, "--gt", gt, "--sr", sr, "--scale", "4", "--data_range", "10000").returncode == 0


def test_images_holding_their_nodata_are_not_scored_whole(tmp_path):
    """A fill value scored as ground would move PSNR by the fill's distance: one line pointing to the scene mode."""
    import rasterio

    pixels = np.random.default_rng(0).integers(1, 250, (3, 48, 48)).astype(np.uint8)
    pixels[:, :4, :4] = 0
    for folder in ("gt", "sr"):
        (tmp_path / folder).mkdir()
        with rasterio.open(tmp_path / folder / "a.tif", "w", driver="GTiff", width=48, height=48, count=3,
                           dtype="uint8", nodata=0) as dst:
            dst.write(pixels)
    proc = call_script(REPO_ROOT / "metric_scripts" / "calculate_PSNR_SSIM.py", "--gt", tmp_path / "gt", "--sr",
                      tmp_path / "sr", "--scale", "2", "--csv", tmp_path / "s.csv")
    assert_one_line_error(proc, "a.tif holds nodata", "--gt SCENE.tif")
