"""Training end to end on the embedded Sample: run folder contents, exact resume, --reset, NaN handling, options."""
import csv

import imageio.v3 as iio
import pytest
import torch

import demo_train
import loss as loss_module
from errors import UserError
from helpers import CODES, TINY_BASIC, assert_one_line_error, isolated, run_script
from option import parse_args


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
    assert {"loss", "psnr", "ssim", "psnr_y", "ssim_y", "psnr_chmean", "lr"} <= set(rows[0])
    assert all(5 < float(r["psnr"]) < 60 and 0 < float(r["ssim"]) <= 1 for r in rows)
    for plot in ("loss.png", "psnr.png", "ssim.png"):
        image = iio.imread(run / plot)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
    ckpt = weights(tmp_path, "run")
    assert {"model", "optimizer", "scheduler", "epoch", "best", "rng", "args"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["args"]["model"] == "BASIC" and ckpt["args"]["scale"] == 2
    assert "scale: 2" in (run / "config.txt").read_text()


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
    train(tmp_path, "--epochs=2", "--save=run")
    notes = tmp_path / "experiment" / "run" / "notes.txt"
    notes.write_text("my notes")
    sibling = tmp_path / "experiment" / "other" / "keep.txt"
    sibling.parent.mkdir(parents=True)
    sibling.write_text("keep")
    train(tmp_path, "--epochs=1", "--save=run", "--reset")
    assert notes.read_text() == "my notes" and sibling.read_text() == "keep"
    with open(tmp_path / "experiment" / "run" / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1"]


@pytest.mark.parametrize("save", ["../escape", "/tmp/abs", "a/../../x", "results"])
def test_save_must_stay_inside_experiment(tmp_path, save):
    with pytest.raises(UserError, match="--save"):
        train(tmp_path, "--epochs=1", f"--save={save}")


def test_nan_losses_skip_then_stop(tmp_path, monkeypatch):
    real_forward = loss_module.Loss.forward
    calls = {"n": 0}

    def flaky(self, sr, hr):  # every other batch is NaN: skipped with a warning, training goes on
        calls["n"] += 1
        value = real_forward(self, sr, hr)
        return value * float("nan") if calls["n"] % 2 else value

    monkeypatch.setattr(loss_module.Loss, "forward", flaky)
    with pytest.warns(UserWarning, match="non-finite loss"):
        train(tmp_path, "--epochs=1", "--save=flaky", "--test_every=4")

    monkeypatch.setattr(loss_module.Loss, "forward", lambda self, sr, hr: real_forward(self, sr, hr) * float("nan"))
    with pytest.warns(UserWarning), pytest.raises(UserError, match="3 non-finite losses in a row"):
        train(tmp_path, "--epochs=1", "--save=diverged", "--max_nan=3", "--test_every=5")


def test_bicubic_cannot_be_trained(tmp_path):
    with pytest.raises(UserError, match="no parameters to train"):
        demo_train.main(["--model=BICUBIC", "--epochs=1", *isolated(tmp_path)])


def test_presets_fill_only_what_the_user_left_out():
    args = parse_args(["--model=HSENET", "--dataset=UCMerced", "--batch_size=2"])
    assert (args.epochs, args.lr, args.lr_decay, args.gamma, args.patch_size, args.batch_size) == (
        500, 1e-4, 400, 0.5, 48, 2)
    sample = parse_args(["--model=HSENET"])
    assert sample.epochs < 10 and sample.save == "HSENETx4_Sample"
    ms = parse_args(["--model=CONVFORMERSR", "--dataset=SampleMS", "--scale=3"])
    assert ms.n_colors == 4 and ms.bands == ["blue", "green", "red", "nir"]
    assert parse_args(["--cpu"]).cpu is True and parse_args([]).cpu is False


def test_cli_errors_are_one_line(tmp_path):
    script = CODES / "demo_train.py"
    assert_one_line_error(run_script(script, "--model=NOPE", *isolated(tmp_path)), "NOPE", "BASIC", "HSENET")
    assert_one_line_error(run_script(script, "--scale=5"), "--scale", "choose from 2, 3, 4")
    assert_one_line_error(run_script(script, "--dir_data", tmp_path / "missing", *isolated(tmp_path)),
                          "does not exist", "prepare_dataset.py")
    assert_one_line_error(run_script(script, "--save=../../etc", *TINY_BASIC, *isolated(tmp_path)), "--save")


def test_checkpoint_brings_its_architecture(tmp_path):
    """--pre_train of our checkpoint rebuilds the network it was trained as (size flags not given again)."""
    import demo_deploy

    train(tmp_path, "--epochs=1", "--save=small")
    ckpt = tmp_path / "experiment" / "small" / "model" / "model_best.pt"
    out = tmp_path / "sr"
    demo_deploy.main(["--model=BASIC", "--scale=2", "--cpu", f"--pre_train={ckpt}", f"--dir_out={out}",
                      *isolated(tmp_path)])
    assert len(list(out.glob("*.png"))) == 4
    with pytest.raises(UserError, match="does not fit BASIC x2"):  # an explicit size flag still wins, loudly
        demo_deploy.main(["--model=BASIC", "--scale=2", "--cpu", "--n_feats=12", f"--pre_train={ckpt}",
                          f"--dir_out={out}", *isolated(tmp_path)])
