"""Training end to end on the embedded Sample: run folder contents, exact resume, --reset, NaN handling, options."""
import csv
import json

import imageio.v3 as iio
import pytest
import torch

import demo_train
import loss as loss_module
from errors import UserError
from helpers import CODES, SAMPLE, TINY_BASIC, assert_one_line_error, call_script, copy_dataset, isolated


def train(tmp_path, *extra):
    return demo_train.main(TINY_BASIC + ["--scale=2"] + isolated(tmp_path) + list(extra))


def weights(tmp_path, save, name="model_latest.pt"):
    return torch.load(tmp_path / "experiment" / save / "model" / name, weights_only=True)


def test_run_folder_holds_everything(tmp_path):
    train(tmp_path, "--epochs=2", "--save=run")
    run = tmp_path / "experiment" / "run"
    for name in ("config.txt", "log.txt", "metrics.csv", "model/model_latest.pt", "model/model_best.pt"):
        assert (run / name).is_file(), name
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # the same column names as calculate_PSNR_SSIM.py's CSV, and one column per loss term
    assert {"loss", "loss_L1", "psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y", "psnr_chmean", "lr"} <= set(rows[0])
    assert all(5 < float(r["psnr_rgb"]) < 60 and 0 < float(r["ssim_rgb"]) <= 1 for r in rows)
    for plot in ("loss.png", "psnr.png", "ssim.png", "summary.png"):
        image = iio.imread(run / plot)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
    ckpt = weights(tmp_path, "run")
    assert {"model", "optimizer", "scheduler", "epoch", "best", "best_epoch", "history", "config", "radiometry",
            "checksum"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["config"]["model"] == "BASIC" and ckpt["config"]["scale"] == 2
    assert [row["epoch"] for row in ckpt["history"]] == [1, 2]
    assert ckpt["radiometry"] == {"dtype": "uint8", "white": 255.0, "net_range": 1.0}
    config_txt = (run / "config.txt").read_text()
    assert "scale = 2  (command line)" in config_txt and "lr_decay = 20  (sample preset)" in config_txt
    written = json.loads((run / "written_files.json").read_text())["files"]
    assert {"config.txt", "log.txt", "metrics.csv", "model/model_best.pt", "model/model_latest.pt"} <= set(written)


def test_metrics_log_the_learning_rate_each_epoch_used(tmp_path):
    """The step schedule halves the rate after epoch 1: epoch 1 trained at 1e-3, epoch 2 at 5e-4."""
    train(tmp_path, "--epochs=2", "--save=lr", "--lr=1e-3", "--lr_decay=1", "--gamma=0.5")
    with open(tmp_path / "experiment" / "lr" / "metrics.csv", newline="") as f:
        assert [float(r["lr"]) for r in csv.DictReader(f)] == [1e-3, 5e-4]


def test_each_loss_term_is_logged_weighted(tmp_path):
    train(tmp_path, "--epochs=1", "--save=terms", "--loss=1*L1+0.5*MSE")
    with open(tmp_path / "experiment" / "terms" / "metrics.csv", newline="") as f:
        row = next(csv.DictReader(f))
    l1, mse, total = float(row["loss_L1"]), float(row["loss_MSE"]), float(row["loss"])
    assert l1 > 0 and mse > 0 and abs(l1 + mse - total) < 1e-6 * total  # the weighted terms sum to the total
    assert "L1 " in (tmp_path / "experiment" / "terms" / "log.txt").read_text()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_resume_is_exact(tmp_path, workers):
    """Also with loader worker processes, which draw their patches from seeds of the per-epoch generator."""
    train(tmp_path, "--epochs=2", "--save=straight", f"--n_threads={workers}")
    train(tmp_path, "--epochs=1", "--save=split", f"--n_threads={workers}")
    train(tmp_path, "--epochs=2", "--save=split", "--resume", f"--n_threads={workers}")
    a, b = weights(tmp_path, "straight"), weights(tmp_path, "split")
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    first_step = weights(tmp_path, "split")["optimizer"]["state"][0]["step"]
    assert float(first_step) == float(a["optimizer"]["state"][0]["step"])


def test_same_seed_same_run_other_seed_differs(tmp_path):
    train(tmp_path, "--epochs=1", "--save=a", "--seed=7")
    train(tmp_path, "--epochs=1", "--save=b", "--seed=7")
    train(tmp_path, "--epochs=1", "--save=c", "--seed=8")
    a, b, c = (weights(tmp_path, s)["model"]["head.weight"] for s in "abc")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_existing_run_needs_resume_or_reset(tmp_path):
    train(tmp_path, "--epochs=1", "--save=run")
    with pytest.raises(UserError, match="--resume"):
        train(tmp_path, "--epochs=1", "--save=run")


def test_reset_clears_only_the_run_files(tmp_path):
    train(tmp_path, "--epochs=2", "--save=run", "--save_results")
    notes = tmp_path / "experiment" / "run" / "notes.txt"
    notes.write_text("my notes")
    mine = tmp_path / "experiment" / "run" / "results" / "mine.png"
    mine.write_bytes(b"a user's file")
    sibling = tmp_path / "experiment" / "other" / "keep.txt"
    sibling.parent.mkdir(parents=True)
    sibling.write_text("keep")
    assert len(list(mine.parent.iterdir())) == 5  # 4 validation images of ours and the user's
    train(tmp_path, "--epochs=1", "--save=run", "--reset")
    assert notes.read_text() == "my notes" and sibling.read_text() == "keep"
    assert [p.name for p in mine.parent.iterdir()] == ["mine.png"]
    with open(tmp_path / "experiment" / "run" / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1"]


@pytest.mark.parametrize("save", ["../escape", "/tmp/abs", "a/../../x", "results"])
def test_save_must_stay_inside_experiment(tmp_path, save):
    with pytest.raises(UserError, match="--save"):
        train(tmp_path, "--epochs=1", f"--save={save}")


def test_nan_losses_skip_then_stop(tmp_path, monkeypatch):
    real_forward = loss_module.Loss.forward
    calls = {"n": 0}

    def flaky(self, sr, hr, valid=None):  # every other batch is NaN: skipped with a warning, training goes on
        calls["n"] += 1
        value = real_forward(self, sr, hr, valid)
        return value * float("nan") if calls["n"] % 2 else value

    monkeypatch.setattr(loss_module.Loss, "forward", flaky)
    with pytest.warns(UserWarning, match="non-finite loss"):
        train(tmp_path, "--epochs=1", "--save=flaky", "--test_every=4")

    monkeypatch.setattr(loss_module.Loss, "forward",
                        lambda self, sr, hr, valid=None: real_forward(self, sr, hr, valid) * float("nan"))
    with pytest.warns(UserWarning), pytest.raises(UserError, match="3 non-finite losses in a row"):
        train(tmp_path, "--epochs=1", "--save=diverged", "--max_nan=3", "--test_every=5")


def test_bicubic_cannot_be_trained(tmp_path):
    with pytest.raises(UserError, match="no parameters to train"):
        demo_train.main(["--model=BICUBIC", "--epochs=1", *isolated(tmp_path)])


def test_cli_errors_are_one_line(tmp_path):
    script = CODES / "demo_train.py"
    assert_one_line_error(call_script(script, "--model=NOPE", *isolated(tmp_path)), "NOPE", "BASIC", "HSENET")
    assert_one_line_error(call_script(script, "--scale=5"), "--scale", "choose from 2, 3, 4")
    assert_one_line_error(call_script(script, "--dir_data", tmp_path / "missing", *isolated(tmp_path)),
                          "does not exist", "prepare_dataset.py")
    assert_one_line_error(call_script(script, "--save=../../etc", *TINY_BASIC, *isolated(tmp_path)), "--save")


def test_checkpoint_brings_its_architecture(tmp_path):
    """--pre_train of our checkpoint rebuilds the network it was trained as (size flags not given again)."""
    import demo_deploy

    train(tmp_path, "--epochs=1", "--save=small")
    ckpt = tmp_path / "experiment" / "small" / "model" / "model_best.pt"
    out = tmp_path / "sr"
    demo_deploy.main(["--model=BASIC", "--scale=2", "--cpu", f"--pre_train={ckpt}", f"--dir_out={out}",
                      *isolated(tmp_path)])
    assert len(list(out.glob("*.png"))) == 4
    with pytest.raises(UserError, match="was trained with --n_feats 8, not 12"):  # a contradiction is refused
        demo_deploy.main(["--model=BASIC", "--scale=2", "--cpu", "--n_feats=12", f"--pre_train={ckpt}",
                          f"--dir_out={out}", *isolated(tmp_path)])


def test_a_resume_over_changed_data_says_so(tmp_path):
    root = copy_dataset(SAMPLE, tmp_path / "Mine", scales=(2,))
    flags = ["--dataset=Mine", f"--dir_data={root}", "--save=run"]
    train(tmp_path, *flags, "--epochs=1")
    log = tmp_path / "experiment" / "run" / "log.txt"
    train(tmp_path, *flags, "--resume", "--epochs=2")
    assert "the training data changed" not in log.read_text()
    for folder in ("HR", "LR_x2"):  # one more training image
        first = sorted((root / "train" / folder).iterdir())[0]
        (root / "train" / folder / f"zz_{first.name}").write_bytes(first.read_bytes())
    train(tmp_path, *flags, "--resume", "--epochs=3")
    assert log.read_text().count("note: the training data changed since") == 1
    train(tmp_path, *flags, "--resume", "--epochs=4")  # the same data as the last checkpoint's: no note
    assert log.read_text().count("note: the training data changed since") == 1
    for folder in ("HR", "LR_x2"):  # an image replaced by another under its own name
        first, second = sorted((root / "train" / folder).iterdir())[:2]
        first.write_bytes(second.read_bytes())
    train(tmp_path, *flags, "--resume", "--epochs=5")
    assert log.read_text().count("note: the training data changed since") == 2


def test_the_resume_hint_after_a_reset_run_replaces_the_reset(tmp_path):
    """A run started with --reset and stopped by its time budget: the hint says --resume instead of --reset (both
    together are refused)."""
    proc = call_script(CODES / "demo_train.py", *TINY_BASIC, "--scale=2", "--epochs=50", "--test_every=50", "--reset",
                      "--time_budget=0.1", "--save=hint", *isolated(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "continue it with the same command, --resume instead of --reset" in proc.stdout
