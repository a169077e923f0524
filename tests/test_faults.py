"""The fault suite: nothing lost, nothing silent. Kills in the middle of a save, full and read-only disks, symlink
traps, concurrent writers, memory bombs, hostile pixels; each case either succeeds or fails with one line and a
non-zero exit, and nothing the user owns is overwritten or deleted."""
import csv
import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import warnings
import zlib

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

import atomic
import checkpoint
import demo_deploy
import demo_train
import image_files
import image_io
import imresize
import png16
import runs
from conftest import REPO_ROOT
from errors import UserError
from helpers import CODES, SAMPLE, TINY_BASIC, assert_one_line_error, call_script, copy_dataset, isolated
from radiometry import bicubic_baseline
from test_deploy import sample_ms_hr, write_geotiff

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM  # noqa: E402

TRAIN = TINY_BASIC + ["--scale=2"]


def train(tmp_path, *extra):
    return demo_train.main(TRAIN + isolated(tmp_path) + list(extra))


def snapshot(folder):
    """{relative path: bytes} of every file under folder (symlinks not followed)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def weights(path):
    return torch.load(path, weights_only=True)["model"]


# ---------------------------------------------------------------------------------------------- tiny file systems
def fill(disk):
    """Fill a file system to the last byte."""
    try:
        with open(disk / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 1024)
                f.flush()
    except OSError:
        pass


def test_a_full_disk_under_the_run_folder_is_one_line_and_keeps_the_last_checkpoint(tmp_path, tiny_fs):
    disk = tiny_fs("160k")  # room for config, log and one small checkpoint, not for a second one
    flags = TRAIN + ["--dir_experiment", str(disk), "--dir_cache", str(tmp_path / "cache"), "--save=run"]
    proc = call_script(CODES / "demo_train.py", *flags, "--epochs=40")
    assert_one_line_error(proc, "cannot write", "No space left on device", "the disk is full")
    latest = disk / "run" / "model" / checkpoint.LATEST
    if latest.exists():  # the checkpoint before the full disk is whole and verifies
        ckpt = checkpoint.read(latest)
        ckpt.verify()
    assert not [p for p in disk.rglob("*") if runs.atomic.TEMP_MARK in p.name]  # no half-written temp file


def test_a_full_disk_for_the_cache_the_outputs_and_the_csv(tmp_path, tiny_fs):
    disk = tiny_fs("16k")
    proc = call_script(CODES / "demo_train.py", *TRAIN, "--epochs=1", "--dir_cache", disk / "cache",
                      "--dir_experiment", tmp_path / "experiment")
    assert_one_line_error(proc, "cannot write", str(disk / "cache"), "No space left on device")
    proc = call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--dir_out", disk / "sr", *isolated(tmp_path))
    assert_one_line_error(proc, str(disk / "sr"), "No space left on device")
    demo_deploy.main(["--model=BICUBIC", "--dir_out", str(tmp_path / "sr"), *isolated(tmp_path)])
    fill(disk)  # leave no room for the CSV
    proc = call_script(REPO_ROOT / "metric_scripts" / "calculate_PSNR_SSIM.py", "--sr", tmp_path / "sr", "--csv",
                      disk / "scores.csv")
    assert_one_line_error(proc, "cannot write", "scores.csv", "No space left on device")


def test_a_read_only_folder_is_one_line(tmp_path, tiny_fs):
    disk = tiny_fs("1m", read_only=True)
    for script, flags in ((CODES / "demo_train.py", [*TRAIN, "--epochs=1", "--dir_experiment", disk,
                                                     "--dir_cache", tmp_path / "cache"]),
                          (CODES / "demo_deploy.py", ["--model=BICUBIC", "--dir_out", disk / "sr",
                                                      *isolated(tmp_path)])):
        assert_one_line_error(call_script(script, *flags), "Read-only file system", "write elsewhere")


@pytest.mark.parametrize("flag", ["--dir_experiment", "--dir_cache", "--dir_out"])
def test_a_path_that_is_a_file_is_one_line(tmp_path, flag):
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    script = CODES / ("demo_deploy.py" if flag == "--dir_out" else "demo_train.py")
    base = ["--model=BICUBIC"] if flag == "--dir_out" else [*TRAIN, "--epochs=1"]
    others = [f for f in isolated(tmp_path) if f not in ()]
    proc = call_script(script, *base, *others, flag, blocker / "sub")
    assert_one_line_error(proc, str(blocker))
    assert blocker.read_text() == "mine"


def test_enospc_from_any_writer_is_one_line_naming_the_path(tmp_path, monkeypatch):
    """Without a tiny file system: the patched OS write raises ENOSPC, as a full disk does, in the middle of a
    checkpoint. The previous checkpoint stays whole."""
    train(tmp_path, "--epochs=1", "--save=run")
    latest = tmp_path / "experiment" / "run" / "model" / checkpoint.LATEST
    before = latest.read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError, match=r"cannot write .*model_(latest|best)\.pt: No space left on device \(the disk"):
        train(tmp_path, "--epochs=2", "--save=run", "--resume")
    monkeypatch.setattr(torch, "save", real_save)
    assert latest.read_bytes() == before
    assert not [p for p in latest.parent.iterdir() if runs.atomic.TEMP_MARK in p.name]


# ------------------------------------------------------------------------------------------------- SIGKILL
KILLER = textwrap.dedent('''
    """Run demo_train.main, SIGKILLing this process at the N-th occurrence of a chosen point of a save."""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import shutil, torch
    import demo_train, trainer
    torch.set_num_threads(1)  # as the tests' in-process runs (conftest): the same float reduction order
    point, n, argv = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    seen = {"n": 0}

    def kill_on_nth(real, write_half=False):
        def wrapper(*args, **kwargs):
            seen["n"] += 1
            if seen["n"] == n:
                if write_half:  # torch.save(obj, f): half a file, then the power goes
                    args[1].write(b"PK" + b"x" * 1000)
                    args[1].flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return wrapper

    if point == "during-checkpoint":
        torch.save = kill_on_nth(torch.save, write_half=True)
    elif point == "after-checkpoint":  # the checkpoint is written, metrics.csv and the plots are not
        trainer.Trainer.write_history = kill_on_nth(trainer.Trainer.write_history)
    elif point == "during-best-copy":  # model_best.pt is written, model_latest.pt is not yet its copy
        shutil.copyfile = kill_on_nth(shutil.copyfile)
    demo_train.main(argv)
''')


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("straight")
    train(tmp, "--epochs=3", "--save=run")
    return tmp / "experiment" / "run"


@pytest.mark.parametrize("point, n", [("during-checkpoint", 2), ("during-checkpoint", 3), ("after-checkpoint", 2),
                                      ("during-best-copy", 2)])
def test_sigkill_in_a_save_then_resume_is_exact_and_consistent(tmp_path, straight_run, point, n):
    driver = tmp_path / "killer.py"
    driver.write_text(KILLER)
    argv = TRAIN + isolated(tmp_path) + ["--epochs=3", "--save=run"]
    proc = subprocess.run([sys.executable, str(driver), str(CODES), point, str(n), *argv], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = tmp_path / "experiment" / "run"
    killed_at = checkpoint.read(run / "model" / checkpoint.LATEST).payload["epoch"]
    assert killed_at < 3
    train(tmp_path, "--epochs=3", "--save=run", "--resume")
    for name in (checkpoint.LATEST, checkpoint.BEST):
        for key, value in weights(straight_run / "model" / name).items():
            assert torch.equal(value, weights(run / "model" / name)[key]), (name, key)
    with open(run / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]  # no gap in the history
    latest = checkpoint.read(run / "model" / checkpoint.LATEST).payload
    best = checkpoint.read(run / "model" / checkpoint.BEST).payload
    assert best["epoch"] == latest["best_epoch"]  # model_best.pt is the best the run records
    assert not [p for p in run.rglob("*") if runs.atomic.TEMP_MARK in p.name]  # orphan temps cleaned at the start


def test_a_temp_file_left_by_a_kill_is_removed_on_the_next_start_and_by_reset(tmp_path):
    train(tmp_path, "--epochs=1", "--save=run")
    orphan = tmp_path / "experiment" / "run" / "model" / f".model_latest.pt{runs.atomic.TEMP_MARK}abc.pt"
    orphan.write_bytes(b"half")
    mine = tmp_path / "experiment" / "run" / "model" / ".my_hidden_notes"
    mine.write_text("keep")
    train(tmp_path, "--epochs=1", "--save=run", "--reset")
    assert not orphan.exists() and mine.read_text() == "keep"


# ----------------------------------------------------------------------------------------- concurrent writers
def test_a_second_training_into_the_same_run_is_refused_naming_the_holder(tmp_path):
    flags = TRAIN + isolated(tmp_path) + ["--save=run", "--epochs=400"]
    first = subprocess.Popen([sys.executable, str(CODES / "demo_train.py"), *flags], cwd=CODES,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / "experiment" / "run" / runs.LOCK_FILE
        for _ in range(3000):  # up to 5 minutes: a loaded machine starts the first training slowly
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                break
            time.sleep(0.1)
        assert lock.read_text().strip() == str(first.pid), "the first training never took its run folder"
        proc = call_script(CODES / "demo_train.py", *flags[:-1], "--epochs=1", "--resume")
        assert_one_line_error(proc, "is in use by another training", f"PID {first.pid}")
    finally:
        first.kill()
        first.wait()
    # the lock dies with its holder: the run can be continued at once (resumed if the killed one had saved)
    latest = tmp_path / "experiment" / "run" / "model" / "model_latest.pt"
    train(tmp_path, "--save=run", "--epochs=1", *(["--resume"] if latest.exists() else []))


def test_a_second_deploy_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "sr"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f'''
        import sys, time
        sys.path.insert(0, {str(CODES)!r})
        import runs
        runs.FolderLock({str(out)!r}, "deploy").acquire()
        print("locked", flush=True)
        time.sleep(60)''')], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"in use by another deploy \\(PID {holder.pid}\\)"):
            demo_deploy.main(["--model=BICUBIC", "--dir_out", str(out), *isolated(tmp_path)])
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------------ symlink traps
def test_reset_never_deletes_through_a_symlinked_results_or_model_folder(tmp_path):
    train(tmp_path, "--epochs=1", "--save=run", "--save_results")
    run = tmp_path / "experiment" / "run"
    outside = tmp_path / "outside"
    shutil.move(run / "results", outside)  # the run's own files, moved out of experiment/ ...
    (outside / "precious.txt").write_text("the user's")
    (run / "results").symlink_to(outside)  # ... and a link left in their place
    before, run_before = snapshot(outside), snapshot(run)
    with pytest.raises(UserError, match="--reset: .*results is a symbolic link .* so nothing was deleted"):
        train(tmp_path, "--epochs=1", "--save=run", "--reset")
    assert snapshot(outside) == before  # nothing outside experiment/ was deleted
    assert snapshot(run) == run_before  # and the reset did not half happen inside it


@pytest.mark.parametrize("listed", [["/tmp/victim.txt", "config.txt"], ["../other/log.txt"], "config.txt"])
def test_a_written_files_list_naming_files_outside_the_run_is_damaged_and_nothing_is_deleted(tmp_path, listed):
    train(tmp_path, "--epochs=1", "--save=run")
    run = tmp_path / "experiment" / "run"
    (run / "written_files.json").write_text(json.dumps({"files": listed}))
    before = snapshot(tmp_path / "experiment")
    with pytest.raises(UserError, match="written_files.json is damaged"):
        train(tmp_path, "--epochs=1", "--save=run", "--reset")
    assert snapshot(tmp_path / "experiment") == before


def test_the_run_folder_itself_may_not_be_a_link_out_of_experiment(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "experiment" / "run").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="--save 'run' must name a folder inside"):
        train(tmp_path, "--epochs=1", "--save=run")


def test_a_foreign_config_or_log_is_never_replaced(tmp_path):
    project = tmp_path / "project"
    (project / "analysis").mkdir(parents=True)
    (project / "analysis" / "config.txt").write_text("my settings")
    (project / "analysis" / "log.txt").write_text("my log")
    before = snapshot(project)
    for extra in ([], ["--reset"]):
        with pytest.raises(UserError, match="config.txt was not written by this toolbox"):
            demo_train.main(TRAIN + ["--dir_experiment", str(project), "--save=analysis", "--epochs=1",
                                     "--dir_cache", str(tmp_path / "cache"), *extra])
    after = snapshot(project)
    assert after.pop("analysis/.lock") and after == before  # only the (released) lock file was added


def test_reset_runs_only_after_every_check(tmp_path):
    train(tmp_path, "--epochs=1", "--save=run")
    run = tmp_path / "experiment" / "run"
    before = snapshot(run)
    for bad in (["--lr=-1"], ["--data_val=nope"], ["--loss=1*NOPE"], ["--resume"], ["--betas=0.9"]):
        with pytest.raises((UserError, SystemExit)):
            train(tmp_path, "--epochs=1", "--save=run", "--reset", *bad)
        assert snapshot(run) == before, bad


# ------------------------------------------------------------------------------------------------- deploy safety
def test_deploy_never_overwrites_its_input_file_or_the_ground_truth(tmp_path):
    scene = tmp_path / "scenes" / "scene.png"
    scene.parent.mkdir()
    shutil.copy(image_files.list_images(SAMPLE / "test" / "LR_x4")[0], scene)
    before = scene.read_bytes()
    with pytest.raises(UserError, match="would overwrite the input"):
        demo_deploy.main(["--model=BICUBIC", f"--dir_data={scene}", f"--dir_out={scene.parent}", *isolated(tmp_path)])
    demo_deploy.main(["--model=BICUBIC", f"--dir_data={scene}", f"--dir_out={tmp_path / 'sr'}", *isolated(tmp_path)])
    assert json.loads((tmp_path / "sr" / "manifest.json").read_text())["source"] == str(scene.resolve())  # the file
    (tmp_path / "link").symlink_to(scene.parent)
    with pytest.raises(UserError, match="would overwrite the input"):
        demo_deploy.main(["--model=BICUBIC", f"--dir_data={scene}", f"--dir_out={tmp_path / 'link'}",
                          *isolated(tmp_path)])
    assert scene.read_bytes() == before
    data = copy_dataset(SAMPLE, tmp_path / "Mine", splits=("test",), scales=(4,))
    gt_before = snapshot(data)
    for out in (data / "test" / "HR", data / "test"):
        with pytest.raises(UserError, match="is inside .*Mine, whose files are the inputs or the ground truth"):
            demo_deploy.main(["--model=BICUBIC", "--dataset=Mine", f"--dir_data={data}", f"--dir_out={out}",
                              *isolated(tmp_path)])
    assert snapshot(data) == gt_before


def test_deploy_never_replaces_a_file_it_did_not_write(tmp_path):
    out = tmp_path / "sr"
    out.mkdir()
    name = image_files.list_images(SAMPLE / "test" / "LR_x4")[0].name
    (out / name).write_bytes(b"the user's own image")
    with pytest.raises(UserError, match=f"{name} exists and was not written by demo_deploy.py"):
        demo_deploy.main(["--model=BICUBIC", f"--dir_out={out}", *isolated(tmp_path)])
    assert (out / name).read_bytes() == b"the user's own image"
    (out / name).unlink()
    demo_deploy.main(["--model=BICUBIC", f"--dir_out={out}", *isolated(tmp_path)])
    demo_deploy.main(["--model=BICUBIC", f"--dir_out={out}", *isolated(tmp_path)])  # its own outputs: replaced


# ----------------------------------------------------------------------------------------------- memory bombs
def png16_bomb(path, side=100000):
    """A 16-bit PNG whose header declares side x side pixels, with almost no data: 74 bytes."""
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    data = zlib.compress(b"")
    path.write_bytes(png16.PNG_SIGNATURE + png16.png_chunk(b"IHDR", ihdr) + png16.png_chunk(b"IDAT", data)
                     + png16.png_chunk(b"IEND", b""))
    return path


def sparse_tiff_bomb(path, side=100000):
    """A sparse GeoTIFF (no block written) that declares side x side pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=1, dtype="uint16", tiled=True,
                           sparse_ok=True, compress="deflate") as dst:
            dst.update_tags(note="sparse")
    return path


def test_images_over_the_pixel_budget_are_skipped_by_name_and_the_rest_is_processed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(image_files.list_images(SAMPLE / "test" / "LR_x4")[0], src / "good.png")
    assert png16_bomb(src / "bomb.png").stat().st_size < 100
    sparse_tiff_bomb(src / "sparse.tif")
    proc = call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--n_colors=3", "--dir_data", src, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))
    assert_one_line_error(proc, "2 of 3 inputs skipped", "bomb.png declares 100000x100000 pixels", "--max_pixels")
    assert "sparse.tif declares 100000x100000 pixels" in proc.stderr
    assert image_io.read_image(tmp_path / "out" / "good.png").shape == (120, 120, 3)


def test_a_memory_bomb_in_a_dataset_is_one_line(tmp_path):
    data = copy_dataset(SAMPLE, tmp_path / "Mine", splits=("train", "val"), scales=(2,), limit=3)
    png16_bomb(data / "train" / "HR" / "zz.png")
    png16_bomb(data / "train" / "LR_x2" / "zz.png")
    with pytest.raises(UserError, match="zz.png declares 100000x100000 pixels"):
        train(tmp_path, "--dataset=Mine", f"--dir_data={data}", "--epochs=1")


# ----------------------------------------------------------------------------------------------- hostile pixels
def test_int16_with_negative_values_keeps_them(tmp_path):
    signed = (sample_ms_hr(0)[:, :, :3].astype(np.int16) - 128) * 40  # about -5000 .. 5000
    scene = write_geotiff(tmp_path / "signed.tif", signed)
    out = tmp_path / "sr"
    demo_deploy.main(["--model=BICUBIC", "--scale=2", f"--dir_data={scene}", f"--dir_out={out}", *isolated(tmp_path)])
    sr = image_io.read_image(out / "signed.tif")
    assert sr.dtype == np.int16 and sr.min() < -3000 and sr.max() > 3000  # not the all-zero image of the bug
    assert np.abs(sr.astype(int) - bicubic_baseline(signed, 2).astype(int)).max() <= 1


def test_nan_and_inf_without_declared_nodata_become_nodata_with_a_count(tmp_path):
    pixels = sample_ms_hr(0)[:, :, :3].astype(np.float32) / 255
    pixels[10:20, 30:45, 1] = np.nan
    pixels[50, 50, 0] = np.inf
    scene = write_geotiff(tmp_path / "holes.tif", pixels)
    out = tmp_path / "sr"
    with pytest.warns(UserWarning, match="holes.tif: 151 NaN/Inf pixels and no declared nodata"):
        demo_deploy.main(["--model=BICUBIC", "--scale=2", f"--dir_data={scene}", f"--dir_out={out}",
                          *isolated(tmp_path)])
    sr = image_io.read_image(out / "holes.tif")
    invalid = ~np.isfinite(sr).all(axis=2)
    expected = np.kron(~np.isfinite(pixels).all(axis=2), np.ones((2, 2), bool))
    np.testing.assert_array_equal(invalid, expected)  # exactly the holes, not 29 % of the image
    with rasterio.open(out / "holes.tif") as dst:
        assert np.isnan(dst.nodata)


def test_lr_and_hr_of_different_bit_depths_are_refused(tmp_path):
    data = copy_dataset(SAMPLE, tmp_path / "Mine", splits=("train", "val"), scales=(2,), limit=2)
    hr = data / "train" / "HR"
    first = image_files.list_images(hr)[0]
    image_io.write_image(first, image_io.read_image(first).astype(np.uint16) * 257)
    with pytest.raises(UserError, match="is uint8 but its HR .* is uint16: LR and HR must share a bit depth"):
        train(tmp_path, "--dataset=Mine", f"--dir_data={data}", "--epochs=1")


def test_the_metric_script_refuses_sr_and_gt_of_different_bit_depths(tmp_path):
    gt = tmp_path / "gt"
    sr = tmp_path / "sr"
    for path in image_files.list_images(SAMPLE / "test" / "HR")[:2]:
        image = image_io.read_image(path)
        image_io.write_image(gt / path.name, image)
        image_io.write_image(sr / path.name, image.astype(np.uint16) * 257)
    with pytest.raises(UserError, match="is uint16 but GT .* is uint8: compare SR and GT of the same bit depth"):
        calculate_PSNR_SSIM.main(["--gt", str(gt), "--sr", str(sr), "--scale", "4"])


def test_duplicate_stems_are_refused(tmp_path):
    data = copy_dataset(SAMPLE, tmp_path / "Mine", splits=("train", "val"), scales=(2,), limit=2)
    first = image_files.list_images(data / "train" / "HR")[0]
    image_io.write_image(first.with_suffix(".tif"), image_io.read_image(first))
    with pytest.raises(UserError, match=f"holds two images named '{first.stem}'"):
        train(tmp_path, "--dataset=Mine", f"--dir_data={data}", "--epochs=1")


def test_exif_orientation_is_respected(tmp_path):
    pixels = image_io.read_image(image_files.list_images(SAMPLE / "test" / "LR_x4")[0])[:, :20]  # 30x20, not square
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=100)
    shown = image_io.read_image(tmp_path / "phone.jpg")
    assert shown.shape == (20, 30, 3)  # as a viewer shows it: rotated
    assert image_io.image_header(tmp_path / "phone.jpg")[:2] == (20, 30)  # the header check agrees with the pixels
    with Image.open(tmp_path / "phone.jpg") as stored:  # the stored pixels, turned as the EXIF tag says
        np.testing.assert_array_equal(shown, np.rot90(np.asarray(stored), k=-1))


def test_small_images_of_any_shape_train_with_a_note(tmp_path, capsys):
    data = copy_dataset(SAMPLE, tmp_path / "Mine", splits=("train", "val"), scales=(2,), limit=4)
    for name in ("tiny_a", "tiny_b"):  # LR 5x7: smaller than the 12-pixel patch
        hr = image_io.read_image(image_files.list_images(SAMPLE / "train" / "HR")[0])[:10, :14]
        image_io.write_image(data / "train" / "HR" / f"{name}.png", hr)
        image_io.write_image(data / "train" / "LR_x2" / f"{name}.png", imresize.modcrop(hr, 2)[::2, ::2])
    train(tmp_path, "--dataset=Mine", f"--dir_data={data}", "--epochs=1", "--test_every=0")
    assert (f"note: 2 of 6 train images of {data} are smaller than --patch_size 24 (the HR patch, as in EDSR and "
            f"HSENet: 12 LR pixels at x2) and are skipped") in capsys.readouterr().out
    with pytest.raises(UserError, match="every train image of .* is smaller than --patch_size 128"):
        train(tmp_path, "--dataset=Mine", f"--dir_data={data}", "--epochs=1", "--patch_size=128", "--save=big")


def test_float_training_data_outside_0_1_needs_the_white_level(tmp_path):
    data = tmp_path / "Float"
    for split in ("train", "val"):
        for path in image_files.list_images(SAMPLE / split / "HR")[:2]:
            hr = image_io.read_image(path).astype(np.float32) * 40
            image_io.write_image(data / split / "HR" / f"{path.stem}.tif", hr)
            image_io.write_image(data / split / "LR_x2" / f"{path.stem}.tif", hr[::2, ::2].copy())
    with pytest.raises(UserError, match=r"float values span \[.*\], outside \[0, 1\]: pass --data_range"):
        train(tmp_path, "--dataset=Float", f"--dir_data={data}", "--epochs=1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and with the white level given, it trains
        train(tmp_path, "--dataset=Float", f"--dir_data={data}", "--epochs=1", "--data_range=10200")


def test_nothing_is_left_running_or_locked(tmp_path):
    """After an error the lock is released in the same process (a later open succeeds at once)."""
    with pytest.raises(UserError):
        train(tmp_path, "--epochs=1", "--save=run", "--data_val=nope")
    lock = runs.FolderLock(tmp_path / "experiment" / "x", "training").acquire()
    lock.release()
    assert os.path.exists(tmp_path / "experiment" / "x" / runs.LOCK_FILE)


def test_a_test_only_reader_leaves_a_writers_temporary_files_alone(tmp_path):
    """A --test_only run started while the training writes its checkpoint must not delete the checkpoint's
    temporary file (the training would then fail to save); the next training of the folder, its writer, clears
    what a killed one left."""
    train(tmp_path, "--save=run", "--epochs=1")
    model_dir = tmp_path / "experiment" / "run" / "model"
    in_flight = model_dir / f".model_latest.pt{atomic.TEMP_MARK}12345"
    in_flight.write_bytes(b"half a checkpoint")
    demo_train.main(TRAIN + isolated(tmp_path) + ["--save=run", "--test_only"])
    assert in_flight.read_bytes() == b"half a checkpoint"
    train(tmp_path, "--save=run", "--resume", "--epochs=2")
    assert not in_flight.exists()
