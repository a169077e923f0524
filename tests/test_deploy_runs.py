"""A deploy's results folder says what the run did: a stopped run records what it finished, a rerun holds only its
own inputs' outputs, and running out of memory is one line."""
import json
import shutil
import signal
import subprocess
import sys
import time

import imageio.v3 as iio

import errors
import image_io
from helpers import CODES, SAMPLE, assert_one_line_error, call_script, isolated

SHIPPED = ["--pre_train", "basic_x4_ucmerced16", "--scale=4", "--cpu"]


def many_inputs(folder, count):
    """`count` real 120x120 tiles (the Sample's HR, as LR inputs)."""
    folder.mkdir()
    tiles = sorted((SAMPLE / "train" / "HR").iterdir())
    for index in range(count):
        shutil.copy(tiles[index % len(tiles)], folder / f"t{index:02d}.png")
    return folder


def test_a_sigterm_during_deploy_is_one_line_and_the_manifest_says_what_was_finished(tmp_path):
    inputs, out = many_inputs(tmp_path / "in", 40), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(CODES / "demo_deploy.py"), *SHIPPED, "--dir_data", str(inputs),
                             "--dir_out", str(out), *isolated(tmp_path)], cwd=CODES, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(1200):  # until two outputs are there (the first is then finished)
        if len(list(out.glob("t*.png"))) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr and "stopped by SIGTERM" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["stopped_by"] == "SIGTERM"
    assert 0 < len(manifest["outputs"]) < 40
    for name in manifest["outputs"]:  # every output it lists is whole
        assert iio.imread(out / name).shape == (480, 480, 3)
    # and every output written (whole: writes are atomic) is listed, also one stopped while it was read back
    assert sorted(p.name for p in out.glob("t*.png")) == sorted(manifest["outputs"])
    # the metric script as typed does not take it for a finished run
    proc = call_script(CODES.parent / "metric_scripts" / "calculate_PSNR_SSIM.py", "--dir_experiment",
                      tmp_path / "experiment")
    assert proc.returncode == 2


def test_a_rerun_into_the_same_folder_holds_only_its_own_inputs_outputs(tmp_path):
    inputs, out = many_inputs(tmp_path / "in", 3), tmp_path / "out"
    flags = [*SHIPPED, "--dir_data", inputs, "--dir_out", out, *isolated(tmp_path)]
    assert call_script(CODES / "demo_deploy.py", *flags).returncode == 0
    (inputs / "t02.png").unlink()
    proc = call_script(CODES / "demo_deploy.py", *flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.png")) == ["t00.png", "t01.png"]
    assert json.loads((out / "manifest.json").read_text())["outputs"] == ["t00.png", "t01.png"]
    (out / "mine.png").write_bytes(b"not the toolbox's")  # a file the toolbox did not write stays untouched
    assert call_script(CODES / "demo_deploy.py", *flags).returncode == 0
    assert (out / "mine.png").read_bytes() == b"not the toolbox's"


def test_an_output_stopped_while_it_is_read_back_is_in_the_manifest(tmp_path, monkeypatch):
    """A SIGTERM that arrives while the LR-consistency check reads a finished output back: the output is whole, so
    the manifest lists it (as a stop at any other moment would)."""
    import deploy

    def stopped(*args):
        raise errors.Terminated()

    monkeypatch.setattr(deploy, "lr_consistency", stopped)
    inputs, out = many_inputs(tmp_path / "in", 3), tmp_path / "out"
    proc = call_script(CODES / "demo_deploy.py", *SHIPPED, "--dir_data", inputs, "--dir_out", out, *isolated(tmp_path))
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["outputs"] == ["t00.png"]
    assert sorted(p.name for p in out.glob("t*.png")) == ["t00.png"]
    assert manifest["images"][0]["lr_consistency"] is None  # stopped before it was measured


def test_running_out_of_memory_is_one_line(capsys):
    """torch's CPU allocator raises a RuntimeError; the command line turns it into the promised line."""
    def main(argv):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1099511627776 bytes.")

    try:
        errors.run_cli(main)
    except SystemExit as stop:
        assert stop.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of memory: use a smaller --tile" in err


def test_sigterm_outside_a_training_loop_is_one_line():
    """Any command stopped where no training loop catches the signal itself (start-up, export, scoring)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, '.'); import errors; "
                             "errors.run_cli(lambda argv: time.sleep(60))"], cwd=CODES, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and stderr.strip().startswith("stopped by SIGTERM")
    assert stderr.count("\n") == 1


def test_run_folders_and_results_folders_belong_to_their_own_kind(tmp_path):
    """Deploy never writes into a training run's folder, and a training never takes a deploy's results folder as
    its run (whose --reset would delete the deploy's images)."""
    flags = [*isolated(tmp_path), "--cpu"]
    train = call_script(CODES / "demo_train.py", "--model=BASIC", "--scale=4", "--n_feats=8", "--n_resblocks=1",
                       "--epochs=1", "--test_every=2", "--save=run", *flags)
    assert train.returncode == 0, train.stderr[-2000:]
    run = tmp_path / "experiment" / "run"
    plot = (run / "loss.png").read_bytes()
    proc = call_script(CODES / "demo_deploy.py", *SHIPPED, "--dir_out", run, *flags)
    assert_one_line_error(proc, f"--dir_out {run} is a training run's folder")
    proc = call_script(CODES / "demo_deploy.py", *SHIPPED, "--dir_out", run / "model", *flags)
    assert_one_line_error(proc, f"--dir_out {run / 'model'} is inside the training run folder {run}")
    assert (run / "loss.png").read_bytes() == plot
    assert sorted(p.name for p in (run / "model").iterdir()) == ["model_best.pt", "model_latest.pt"]
    assert call_script(CODES / "demo_deploy.py", *SHIPPED, *flags).returncode == 0
    results = tmp_path / "experiment" / "results" / "BASICx4_Sample"
    before = sorted(p.name for p in results.iterdir())
    proc = call_script(CODES / "demo_train.py", "--model=BASIC", "--scale=4", "--save=results/BASICx4_Sample",
                      "--reset", *flags)
    assert_one_line_error(proc, "holds a deploy's results")
    proc = call_script(CODES / "demo_train.py", "--model=BASIC", "--scale=4", "--save=results/BASICx4_Sample/run",
                       *flags)
    assert_one_line_error(proc, f"is inside {results}, which holds a deploy's results")
    assert sorted(p.name for p in results.iterdir()) == before


def test_outputs_never_land_in_the_tree_recursive_reads(tmp_path):
    inputs = many_inputs(tmp_path / "in", 2)
    proc = call_script(CODES / "demo_deploy.py", *SHIPPED, "--dir_data", inputs, "--recursive", "--dir_out",
                      inputs / "sr", *isolated(tmp_path))
    assert_one_line_error(proc, f"--dir_out {inputs / 'sr'} is inside {inputs}, which --recursive reads")
    assert not (inputs / "sr").exists()


def test_compare_refuses_two_inputs_of_one_stem_before_any_work(tmp_path):
    inputs = many_inputs(tmp_path / "in", 1)
    shutil.copy(inputs / "t00.png", inputs / "t00.tif")
    hr = many_inputs(tmp_path / "hr", 1)
    proc = call_script(CODES / "demo_deploy.py", *SHIPPED, "--dir_data", inputs, "--compare", hr, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))
    assert_one_line_error(proc, "two images named 't00' (t00.png and t00.tif)")
    assert not (tmp_path / "out").exists()


def test_a_rerun_clears_what_a_killed_recursive_run_left_in_sub_folders(tmp_path):
    inputs = many_inputs(tmp_path / "in", 1)
    (inputs / "north").mkdir()
    shutil.copy(inputs / "t00.png", inputs / "north" / "t01.png")
    out = tmp_path / "out"
    flags = [*SHIPPED, "--dir_data", inputs, "--recursive", "--dir_out", out, *isolated(tmp_path)]
    assert call_script(CODES / "demo_deploy.py", *flags).returncode == 0
    stale = out / "north" / ".t01.png.rssr-tmp-killed.png"  # what a kill during that output's write leaves
    stale.write_bytes(b"half an image")
    assert call_script(CODES / "demo_deploy.py", *flags).returncode == 0
    assert not stale.exists()


def test_compare_takes_an_hr_only_where_it_is_clear_which_one_is_meant(tmp_path):
    """An HR folder with a.png and a.tif, or --recursive inputs x/a.png and y/a.png against a flat HR folder: no
    figure compares against a guess, and a note says why."""
    lr = sorted((SAMPLE / "test" / "LR_x4").iterdir())[0]
    hr = SAMPLE / "test" / "HR" / lr.name
    inputs, truth = tmp_path / "in", tmp_path / "hr"
    for folder in (inputs / "x", inputs / "y", truth):
        folder.mkdir(parents=True)
    shutil.copy(lr, inputs / "x" / lr.name)
    shutil.copy(lr, inputs / "y" / lr.name)
    shutil.copy(hr, truth / hr.name)
    flags = ["--model=BICUBIC", "--scale=4", "--dir_data", inputs, "--recursive", "--compare", truth,
             *isolated(tmp_path)]
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dir_out", tmp_path / "out1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "compare: 0 figures" in proc.stdout and "inputs of other folders share its name" in proc.stderr
    (truth / "x").mkdir()
    shutil.copy(hr, truth / "x" / hr.name)  # the HR at the input's own relative path is clear
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dir_out", tmp_path / "out2")
    assert "compare: 1 figure in" in proc.stdout
    assert [f["figure"] for f in json.loads((tmp_path / "out2" / "manifest.json").read_text())["figures"]] == [
        f"compare/x/{lr.stem}.png"]
    image_io.write_image(truth / "x" / f"{hr.stem}.tif", image_io.read_image(hr))  # two HR of one name
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dir_out", tmp_path / "out3")
    assert "compare: 0 figures" in proc.stdout
    assert f"holds two images named {hr.stem!r} ({hr.name} and {hr.stem}.tif)" in proc.stderr


def test_an_output_folder_never_holds_the_inputs_or_the_training_runs(tmp_path):
    """A --dir_out above the input folder would pass every input over as an earlier output; one at or above the
    experiment folder would make every run a part of a deploy's results."""
    inputs = many_inputs(tmp_path / "in", 1)
    flags = [*SHIPPED, *isolated(tmp_path)]
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dir_data", inputs, "--dir_out", tmp_path)
    assert_one_line_error(proc, f"--dir_out {tmp_path} holds {inputs.resolve()}")
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dataset=Sample", "--dir_out", SAMPLE.parent)
    assert_one_line_error(proc, f"holds {SAMPLE.resolve()}")
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dir_data", inputs, "--dir_out", tmp_path / "experiment")
    assert_one_line_error(proc, "holds the training runs of --dir_experiment")
    assert not (tmp_path / "experiment" / "manifest.json").exists()
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dir_data", inputs, "--dir_out", inputs / "sr")
    assert proc.returncode == 0, proc.stderr[-2000:]  # an output folder inside the input folder is fine
