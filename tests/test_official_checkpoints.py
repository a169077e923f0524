"""Official checkpoints (state_dicts saved by the official code) through the CLIs: --pre_train for deploy and for
fine-tuning, with the fixtures' official-format weights."""
import numpy as np
import pytest
import torch

import demo_deploy
import demo_train
import image_io
import radiometry
from errors import UserError
from helpers import SAMPLE, isolated
from model import Model
from option import parse_args


def fixture(shared_dir, name):
    return torch.load(shared_dir / "fixtures" / "reference" / f"{name}.pt", weights_only=True)


def config_flags(ref):
    """The fixture's small configuration as command-line flags."""
    flags = [f"--model={ref['model']}", f"--scale={ref['config']['scale']}", "--cpu"]
    for key, value in ref["config"].items():
        if key in ("scale", "n_colors"):
            continue
        flags.append(f"--{key}={','.join(map(str, value)) if isinstance(value, list) else value}")
    return flags


def save_official(tmp_path, ref, state=None):
    path = tmp_path / "official.pt"
    torch.save(state if state is not None else ref["state_dict"], path)  # exactly how the official code saves
    return path


@pytest.mark.parametrize("name", ["hsenet_small_x2", "convformersr_small_x3"])
def test_deploy_with_an_official_checkpoint(tmp_path, shared_dir, name):
    ref = fixture(shared_dir, name)
    flags = config_flags(ref) + isolated(tmp_path)
    path = save_official(tmp_path, ref)
    demo_deploy.main(flags + [f"--pre_train={path}", f"--dir_out={tmp_path / 'sr'}"])
    scale = ref["config"]["scale"]
    lr_path = sorted((SAMPLE / "test" / f"LR_x{scale}").iterdir())[0]
    written = image_io.read_image(tmp_path / "sr" / lr_path.name)
    # the same weights loaded directly, run on the same real pixels, rounded: the deploy output exactly
    model = Model(parse_args(flags + [f"--pre_train={path}"])).eval()
    lr = image_io.read_image(lr_path)
    with torch.no_grad():
        sr = model(torch.from_numpy(lr.transpose(2, 0, 1).astype(np.float32) / 255)[None])
    expected = radiometry.to_dtype(sr[0].clamp(0, 1).numpy().transpose(1, 2, 0) * 255, np.uint8)
    assert written.shape == (lr.shape[0] * scale, lr.shape[1] * scale, 3)
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1
    assert (written == expected).mean() > 0.999


def test_fine_tune_from_an_official_checkpoint(tmp_path, shared_dir):
    ref = fixture(shared_dir, "hsenet_small_x2")
    path = save_official(tmp_path, ref)
    demo_train.main(config_flags(ref) + isolated(tmp_path) + [
        f"--pre_train={path}", "--epochs=1", "--batch_size=2", "--patch_size=24", "--test_every=2", "--save=ft"])
    tuned = torch.load(tmp_path / "experiment" / "ft" / "model" / "model_latest.pt", weights_only=True)["model"]
    assert set(tuned) == set(ref["state_dict"])
    assert torch.equal(tuned["sub_mean.bias"], ref["state_dict"]["sub_mean.bias"])  # the mean shift is frozen
    assert not torch.equal(tuned["head.0.weight"], ref["state_dict"]["head.0.weight"])  # the rest trained


def test_hsenet_checkpoint_trained_at_rgb_range_255(tmp_path, shared_dir):
    """The official mean shift stores -rgb_range * mean: a 255-range checkpoint switches --rgb_range to 255."""
    ref = fixture(shared_dir, "hsenet_small_x2")
    state = dict(ref["state_dict"])
    state["sub_mean.bias"] = state["sub_mean.bias"] * 255
    state["add_mean.bias"] = state["add_mean.bias"] * 255
    path = save_official(tmp_path, ref, state)
    flags = [f for f in config_flags(ref) if not f.startswith("--rgb_range")] + [f"--pre_train={path}"]
    args = parse_args(flags)
    model = Model(args)
    assert args.rgb_range == 255  # so the loaders and deploy feed it [0, 255] data
    assert torch.equal(model.net.sub_mean.bias, state["sub_mean.bias"])
    with pytest.raises(UserError, match="--rgb_range 255"):
        Model(parse_args(flags + ["--rgb_range=1"]))


def test_official_checkpoint_of_another_scale_is_refused(tmp_path, shared_dir):
    ref = fixture(shared_dir, "convformersr_small_x3")
    path = save_official(tmp_path, ref)
    flags = [f for f in config_flags(ref) if not f.startswith("--scale")] + ["--scale=2"]
    with pytest.raises(UserError, match="wrong shape"):
        Model(parse_args(flags + [f"--pre_train={path}"]))
