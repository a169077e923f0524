"""Bands by name: a shipped RGB model fine-tunes on multispectral data with one command (its first and last layers
and mean shift adapted, bands matched by name), and deploy feeds a model its own bands by name from an input with
more bands or another order."""
import imageio.v3 as iio
import numpy as np
import torch

import checkpoint
import image_io
import option
import pretrained
from conftest import REPO_ROOT
from helpers import assert_one_line_error, call_script, isolated
from model import Model

CODES = REPO_ROOT / "codes"
SAMPLE_MS = REPO_ROOT / "datasets" / "SampleMS"  # blue, green, red, nir (its dataset.json)
SHIPPED = "basic_x4_ucmerced16"  # red, green, blue


def shipped_weights():
    return checkpoint.read(pretrained.checked_file(pretrained.find(SHIPPED))).weights


def test_a_shipped_rgb_model_adapts_to_four_bands_matched_by_name(tmp_path, capsys):
    cfg = option.parse_args(["--pre_train", SHIPPED, "--scale=4", "--dataset=SampleMS", "--cpu",
                             *isolated(tmp_path)], purpose="train")
    assert cfg.n_colors == 4 and cfg.pretrained_bands == ["red", "green", "blue"]
    net = Model(cfg).model
    assert "adapted from 3 bands (red,green,blue) to 4 (blue,green,red,nir)" in capsys.readouterr().out
    old, new = shipped_weights(), net.state_dict()
    # blue, green, red of the data are the shipped model's red, green, blue in reverse order
    assert torch.equal(new["head.weight"][:, :3], old["head.weight"][:, [2, 1, 0]])
    assert not new["head.weight"][:, 3].any()  # nir's input weights start at zero
    last = [k for k in old if old[k].ndim == 4 and old[k].shape[0] == 3][-1]
    assert torch.equal(new[last][:3], old[last][[2, 1, 0]])
    assert torch.allclose(new[last][3], old[last].mean(dim=0))
    # everything that does not touch the bands is loaded as it is
    untouched = [k for k in old if old[k].shape == new[k].shape and 3 not in old[k].shape]
    assert untouched and all(torch.equal(old[k], new[k]) for k in untouched)
    # so the adapted network super-resolves the RGB bands of a 4-band image as the shipped one does
    rgb_cfg = option.parse_args(["--pre_train", SHIPPED, "--scale=4", "--cpu", *isolated(tmp_path)],
                                purpose="deploy")
    rgb_net = Model(rgb_cfg).model.eval()
    lr = image_io.read_image(sorted((SAMPLE_MS / "test" / "LR_x4").iterdir())[0]).astype(np.float32) / 255
    x4 = torch.from_numpy(lr).permute(2, 0, 1)[None]
    with torch.no_grad():
        four = net.eval()(x4)
        three = rgb_net(x4[:, [2, 1, 0]])
    assert torch.allclose(four[:, [2, 1, 0]], three, atol=1e-5)


def test_fine_tuning_a_shipped_rgb_model_on_four_bands_is_one_command(tmp_path):
    proc = call_script(CODES / "demo_train.py", "--pre_train", SHIPPED, "--scale=4", "--dataset=SampleMS",
                      "--epochs=1", "--test_every=2", "--cpu", *isolated(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "adapted from 3 bands" in proc.stdout and "error" not in proc.stderr
    tuned = checkpoint.read(tmp_path / "experiment" / "BASICx4_SampleMS" / "model" / "model_best.pt")
    assert tuned.recorded["n_colors"] == 4 and tuned.recorded["bands"] == ["blue", "green", "red", "nir"]


def test_deploy_feeds_an_rgb_model_its_bands_by_name(tmp_path):
    tile = sorted((SAMPLE_MS / "test" / "LR_x4").iterdir())[0]
    four = image_io.read_image(tile)
    rgb = tmp_path / "rgb_in" / "t.png"
    rgb.parent.mkdir()
    iio.imwrite(rgb, four[:, :, [2, 1, 0]])
    flags = ["--pre_train", SHIPPED, "--scale=4", "--cpu", *isolated(tmp_path)]
    for source, out, extra in ((tile, "by_name", ["--input_bands", "blue,green,red,nir"]), (rgb, "rgb", [])):
        proc = call_script(CODES / "demo_deploy.py", *flags, "--dir_data", source, "--dir_out", tmp_path / out,
                          *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
    by_name = image_io.read_image(next((tmp_path / "by_name").glob("*.tif")))
    assert by_name.shape[2] == 3
    assert np.array_equal(by_name, image_io.read_image(tmp_path / "rgb" / "t.png"))
    # the dataset's own band names serve its test split
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dataset=SampleMS", "--dir_out", tmp_path / "dataset")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # a band the input lacks is one line naming it
    proc = call_script(CODES / "demo_deploy.py", *flags, "--dir_data", tile, "--dir_out", tmp_path / "missing",
                      "--input_bands", "blue,green,nir,swir")
    assert_one_line_error(proc, f"{tile} has no band named red", "its bands: blue,green,nir,swir")
