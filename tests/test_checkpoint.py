"""checkpoint.py: the file each purpose loads, every way a load fails, and --test_only = deploy + the metric script."""
import csv
import shutil
import struct
import sys
import zipfile

import pytest
import torch

import checkpoint
import demo_deploy
import demo_train
from conftest import REPO_ROOT
from errors import UserError
from helpers import TINY_BASIC, isolated, run_script
from option import parse_args

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM  # noqa: E402

SIZE = ["--n_feats=8", "--n_resblocks=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny BASIC x2 run (2 epochs) with non-default size flags, shared by the tests that only read it."""
    tmp = tmp_path_factory.mktemp("trained")
    demo_train.main(TINY_BASIC + ["--scale=2", "--epochs=2", "--save=run"] + isolated(tmp))
    return tmp


def model_dir(tmp, save="run"):
    return tmp / "experiment" / save / "model"


# --------------------------------------------------------------------------------------------------- purposes
def test_each_purpose_finds_its_file(trained):
    flags = ["--scale=2", "--save=run", *isolated(trained)]
    assert parse_args(flags).checkpoint_path == ""  # training from scratch loads nothing
    assert parse_args(flags + ["--resume"]).checkpoint_path == str(model_dir(trained) / checkpoint.LATEST)
    for cfg in (parse_args(flags + ["--test_only"]), parse_args(flags, purpose="deploy"),
                parse_args(flags, purpose="export")):
        assert cfg.checkpoint_path == str(model_dir(trained) / checkpoint.BEST)
    other = trained / "elsewhere.pt"
    other.write_bytes((model_dir(trained) / checkpoint.BEST).read_bytes())
    assert parse_args(flags + [f"--pre_train={other}"], purpose="deploy").checkpoint_path == str(other.resolve())
    assert parse_args(flags + [f"--pre_train={other}"]).checkpoint_path == str(other.resolve())  # fine-tuning
    assert parse_args(["--model=BICUBIC", *isolated(trained)], purpose="deploy").checkpoint_path == ""


@pytest.mark.parametrize("purpose, flags, fragment", [
    ("train", ["--resume"], "--resume: .*nothing/model/model_latest.pt does not exist; train without --resume"),
    ("train", ["--test_only"], "no checkpoint at .*nothing/model/model_best.pt: train one first"),
    ("deploy", [], "no checkpoint at .*nothing/model/model_best.pt: train one first"),
    ("export", [], "no checkpoint at .*nothing/model/model_best.pt")])
def test_a_missing_file_is_named(tmp_path, purpose, flags, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_args(["--save=nothing", *flags, *isolated(tmp_path)], purpose=purpose)


def test_test_only_without_pre_train_evaluates_the_runs_best_not_random_weights(trained, capsys):
    """The bug: --test_only without --pre_train evaluated freshly initialised weights."""
    flags = TINY_BASIC + ["--scale=2", "--save=run", "--test_only"] + isolated(trained)
    demo_train.main(flags)
    log = (trained / "experiment" / "run" / "log.txt").read_text()
    assert f"test of {model_dir(trained) / checkpoint.BEST}" in log
    reference = scores_of_test_only(trained, flags)
    torch.manual_seed(123)  # another initialisation: if the test used random weights, the scores would move
    assert scores_of_test_only(trained, flags) == reference


def scores_of_test_only(tmp, flags):
    cfg = parse_args(flags)
    from data import Data
    from loss import Loss
    from model import Model
    from runs import RunFolder
    from trainer import Trainer

    model = Model(cfg)
    run = RunFolder(cfg, lock=False)
    return Trainer(cfg, Data(cfg), model, Loss(cfg), run).test()


def test_test_only_equals_deploy_plus_the_metric_script(trained):
    flags = ["--scale=2", "--save=run", "--cpu", *isolated(trained)]
    scores = scores_of_test_only(trained, TINY_BASIC + flags + ["--test_only"])
    out = trained / "sr"
    demo_deploy.main(flags + [f"--dir_out={out}"])
    calculate_PSNR_SSIM.main(["--sr", str(out)])
    with open(out / "psnr_ssim.csv", newline="") as f:
        average = next(r for r in csv.DictReader(f) if r["image"] == "average")
    for key in ("psnr_rgb", "psnr_chmean", "psnr_y", "ssim_rgb", "ssim_y"):
        assert float(average[key]) == pytest.approx(scores[key], abs=1e-9), key


def test_resume_without_repeating_the_size_flags(trained, tmp_path):
    """The bug: --resume of a run trained with --n_feats 8 --n_resblocks 1 died unless those flags were repeated."""
    flags = ["--model=BASIC", "--scale=2", "--save=run", "--cpu", "--patch_size=24", "--batch_size=4",
             "--test_every=2", "--dir_experiment", str(trained / "experiment"), "--dir_cache", str(tmp_path / "c")]
    cfg = parse_args(flags + ["--resume", "--epochs=3"])
    assert (cfg.n_feats, cfg.n_resblocks) == (8, 1) and cfg.sources["n_feats"] == "checkpoint"


# --------------------------------------------------------------------------------------------------- failures
def copy_run(trained, tmp_path):
    shutil.copytree(trained / "experiment" / "run", tmp_path / "experiment" / "run")
    return model_dir(tmp_path)


def test_a_bare_state_dict_as_latest_cannot_be_resumed(trained, tmp_path):
    target = copy_run(trained, tmp_path)
    weights = torch.load(target / checkpoint.LATEST, weights_only=True)["model"]
    torch.save(weights, target / checkpoint.LATEST)
    with pytest.raises(UserError, match="holds weights only .*cannot be resumed; start a new run from it"):
        demo_train.main(TINY_BASIC + ["--scale=2", "--save=run", "--resume", "--epochs=3"] + isolated(tmp_path))


def set_first_exp_avg(payload):
    state = payload["optimizer"]["state"]
    state[next(iter(state))]["exp_avg"] = torch.zeros(3)


def set_partial(payload):
    payload["partial"] = {"epoch": payload["epoch"] + 1, "batches": 10**9, "totals": [0.1], "terms": [{}],
                          "nan_streak": 0, "rng": torch.get_rng_state()}


@pytest.mark.parametrize("tamper, fragment", [
    (lambda p: p["history"][0].update(psnr_rgb="abc"), "its metric history holds values that are not numbers"),
    (lambda p: p["optimizer"]["param_groups"][0].update(lr="abc"), "its optimizer group 0.lr 'abc' is not a number"),
    (lambda p: p["optimizer"]["param_groups"][0].update(lr=float("nan")),
     "its optimizer group 0.lr nan is not a positive finite number"),
    (set_first_exp_avg, r"its optimizer state exp_avg of shape \(3,\) for a weight of \(8, 3, 3, 3\)"),
    (lambda p: p["scheduler"].update(step_size=0), "its scheduler.step_size 0 is not a positive finite number"),
    (lambda p: p["scheduler"].update(last_epoch="x"), "its scheduler.last_epoch 'x' is not a whole number"),
    (set_partial, "its epoch in progress stopped after batch 1000000000, but this epoch has 2 batches"),
    (lambda p: p.update(best=float("inf")), "its best score inf is not a score")])
def test_a_tampered_training_state_is_refused_on_resume_in_one_line(trained, tmp_path, tamper, fragment):
    """Values torch loads as they are and fails on, or trains NaN with, only later: each (under a valid checksum) is
    one line naming model_latest.pt, and the run's files stay as they were."""
    target = copy_run(trained, tmp_path)
    payload = torch.load(target / checkpoint.LATEST, weights_only=True)
    tamper(payload)
    payload.pop(checkpoint.CHECKSUM_KEY)
    checkpoint.save(target / checkpoint.LATEST, payload)
    before = (target.parent / "metrics.csv").read_bytes()
    with pytest.raises(UserError, match=f"model_latest.pt: {fragment}"):
        demo_train.main(TINY_BASIC + ["--scale=2", "--save=run", "--resume", "--epochs=3"] + isolated(tmp_path))
    assert (target.parent / "metrics.csv").read_bytes() == before


def flip_a_tensor_byte(path):
    """Flip one bit inside the first tensor's data record of a torch zip file (torch does not check the CRC)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 64)
    data = bytearray(path.read_bytes())
    # the local header's own name and extra-field lengths (torch pads the extra field to align the data)
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    offset = info.header_offset + 30 + name_length + extra_length
    data[offset + 40] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_bit_flip_in_tensor_data_fails_the_checksum(trained, tmp_path):
    target = copy_run(trained, tmp_path)
    flip_a_tensor_byte(target / checkpoint.BEST)
    assert torch.load(target / checkpoint.BEST, weights_only=True)  # torch itself loads it
    with pytest.raises(UserError, match="model_best.pt: checksum mismatch, the file is corrupt"):
        demo_deploy.main(["--scale=2", "--save=run", "--cpu", f"--dir_out={tmp_path / 'sr'}", *isolated(tmp_path)])
    assert not (tmp_path / "sr").exists()


def test_non_finite_weights_are_refused(trained, tmp_path):
    payload = torch.load(model_dir(trained) / checkpoint.BEST, weights_only=True)
    payload["model"]["head.weight"][0, 0, 0, 0] = float("nan")
    payload.pop(checkpoint.CHECKSUM_KEY)
    bad = tmp_path / "nan.pt"
    checkpoint.save(bad, payload)  # a valid checksum over NaN weights: the diverged run's own file
    with pytest.raises(UserError, match=r"nan.pt: weight head.weight holds NaN or Inf values \(the training diverged"):
        demo_deploy.main(["--scale=2", f"--pre_train={bad}", "--cpu", *isolated(tmp_path)])


@pytest.mark.parametrize("radiometry, fragment", [
    ({"dtype": "uint8", "white": -255.0, "net_range": 1.0}, "white -255.0 is outside"),
    ({"dtype": "uint8", "white": float("nan"), "net_range": 1.0}, "white nan is outside"),
    ({"dtype": "object", "white": 255.0, "net_range": 1.0}, "dtype 'object' is not an image dtype"),
    ("x", "the recorded radiometry 'x' is not a record")])
def test_a_damaged_training_radiometry_is_refused_before_any_output(trained, tmp_path, radiometry, fragment):
    """The white level in a checkpoint decides the ONNX graph's pre-upsampling and Deepness's standardization: a
    damaged one (with a valid checksum) is one line naming the file, for deploy and export alike."""
    payload = torch.load(model_dir(trained) / checkpoint.BEST, weights_only=True)
    payload["radiometry"] = radiometry
    payload.pop(checkpoint.CHECKSUM_KEY)
    bad = tmp_path / "white.pt"
    checkpoint.save(bad, payload)
    for purpose in ("deploy", "export"):
        with pytest.raises(UserError, match=f"white.pt: {fragment}" if "record" in fragment else
                           f"white.pt: the recorded radiometry is damaged \\({fragment}"):
            parse_args(["--scale=2", f"--pre_train={bad}", "--cpu", *isolated(tmp_path)], purpose=purpose)


class RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ("touch ran",))


def test_a_pickle_that_would_run_code_is_one_line_and_never_runs(tmp_path):
    import pickle

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"model": RunsCode()}, protocol=4))
    proc = run_script(REPO_ROOT / "codes" / "demo_deploy.py", "--model=BASIC", "--scale=2", f"--pre_train={path}",
                      "--cpu", *isolated(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert "evil.pt: not a PyTorch checkpoint" in proc.stderr and not (tmp_path / "ran").exists()


def test_a_removed_checksum_or_complex_weights_are_refused(trained, tmp_path):
    payload = torch.load(model_dir(trained) / checkpoint.BEST, weights_only=True)
    unchecked = tmp_path / "unchecked.pt"
    torch.save({k: v for k, v in payload.items() if k != checkpoint.CHECKSUM_KEY}, unchecked)  # format 2, no checksum
    with pytest.raises(UserError, match="unchecked.pt: its checksum is missing"):
        demo_deploy.main(["--scale=2", f"--pre_train={unchecked}", "--cpu", *isolated(tmp_path)])
    payload["model"]["head.weight"] = payload["model"]["head.weight"].to(torch.complex64)
    payload.pop(checkpoint.CHECKSUM_KEY)
    checkpoint.save(tmp_path / "complex.pt", payload)
    with pytest.raises(UserError, match=r"complex.pt does not fit .*1 not floating point \(e.g. head.weight"):
        demo_deploy.main(["--scale=2", f"--pre_train={tmp_path / 'complex.pt'}", "--cpu", *isolated(tmp_path)])


@pytest.mark.parametrize("content, fragment", [(b"not a checkpoint", "not a PyTorch checkpoint, or a damaged one"),
                                               (None, "not a checkpoint (expected a dict of weights")])
def test_files_that_are_not_checkpoints(tmp_path, content, fragment):
    path = tmp_path / "x.pt"
    if content is None:
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")):
        parse_args(["--model=BASIC", f"--pre_train={path}"], purpose="deploy")
    with pytest.raises(UserError, match="is a folder"):
        parse_args(["--model=BASIC", f"--pre_train={tmp_path}"], purpose="deploy")


def test_a_checkpoint_of_another_size_is_one_readable_line(trained, tmp_path):
    state = torch.load(model_dir(trained) / checkpoint.BEST, weights_only=True)["model"]
    torch.save(state, tmp_path / "bare.pt")  # official-style: no recorded settings, so the size is not adopted
    with pytest.raises(UserError, match=r"bare.pt does not fit BASIC x2 with 3 bands: .*wrong shape"):
        demo_deploy.main(["--scale=2", "--n_feats=16", f"--pre_train={tmp_path / 'bare.pt'}", "--cpu",
                          *isolated(tmp_path)])
