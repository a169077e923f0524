"""loss.py: the weighted-sum parser and the spectral ratio-index loss on real 4-band pixels."""
import numpy as np
import pytest
import torch

import image_io
import imresize
import metrics
import radiometry
from errors import UserError
from helpers import SAMPLE_MS
from loss import Loss, parse_loss
from option import parse_args


def test_parse_weighted_sums():
    assert parse_loss("1*L1") == [(1.0, "L1")]
    assert parse_loss("1*L1 + 0.5*MSE") == [(1.0, "L1"), (0.5, "MSE")]
    assert parse_loss("1*l1+0.1*spectral") == [(1.0, "L1"), (0.1, "SPECTRAL")]
    for bad in ("x*L1", "1*", "1*L1+", "1*SSIM", "-1*L1", "0*L1", "nan*L1", "inf*L1"):  # refused when parsed
        with pytest.raises(SystemExit):
            parse_args([f"--loss={bad}"])
    with pytest.raises(UserError, match="unknown term 'SSIM'"):
        parse_loss("1*SSIM")


def test_l1_plus_mse_is_the_weighted_sum():
    sr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    total = Loss(parse_args(["--loss=1*L1+0.5*MSE"]))(sr, hr)
    expected = (sr - hr).abs().mean() + 0.5 * ((sr - hr) ** 2).mean()
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


def sample_ms_pair():
    """A real 4-band HR tile and its x3 MATLAB-bicubic reconstruction, both as [0, 1] tensors."""
    path = sorted((SAMPLE_MS / "test" / "HR").iterdir())[0]
    hr = image_io.read_image(path)
    lr = image_io.read_image(SAMPLE_MS / "test" / "LR_x3" / path.name)
    sr = radiometry.to_dtype(imresize.bicubic_upsample(lr.astype(float), 3), np.uint8)

    def as_tensor(a):
        return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32) / 255)[None]

    return sr, hr, as_tensor(sr), as_tensor(hr)


def test_spectral_loss_equals_the_index_error_on_real_pixels():
    sr, hr, sr_t, hr_t = sample_ms_pair()
    args = parse_args(["--dataset=SampleMS", "--loss=1*SPECTRAL", "--spectral_index=NDVI,NDWI"])
    value = float(Loss(args)(sr_t, hr_t))
    bands = ["blue", "green", "red", "nir"]
    expected = np.mean([metrics.calculate_index_error(sr, hr, name, bands) for name in ("NDVI", "NDWI")])
    # same definition; the index is scale-free, so [0,1] tensors and uint8 arrays give the same value (eps aside)
    assert value == pytest.approx(expected, rel=1e-4)
    assert 0.001 < value < 0.5
    assert float(Loss(args)(hr_t, hr_t)) == 0.0


def test_spectral_loss_gradient_flows():
    _, _, sr_t, hr_t = sample_ms_pair()
    sr_t.requires_grad_(True)
    args = parse_args(["--dataset=SampleMS", "--loss=1*L1+0.1*SPECTRAL"])
    Loss(args)(sr_t, hr_t).backward()
    assert torch.isfinite(sr_t.grad).all() and sr_t.grad.abs().sum() > 0


def test_index_whose_bands_are_missing_fails_at_startup(tmp_path):
    args = parse_args(["--dataset=SampleMS", "--loss=1*L1+0.1*SPECTRAL", "--spectral_index=NDBI"])
    with pytest.raises(UserError, match="swir1"):
        Loss(args)
    for index in ("NDVI", "NDWI"):  # RGB makes no index: the fix is to drop the term, not the index
        with pytest.raises(UserError, match="the bands red,green,blue make none of them .*drop SPECTRAL from --loss"):
            Loss(parse_args(["--loss=1*L1+0.1*SPECTRAL", f"--spectral_index={index}"]))  # the Sample's RGB
    with pytest.raises(UserError, match="--bands"):
        Loss(parse_args(["--loss=1*L1+0.1*SPECTRAL", "--dataset=Paired", f"--dir_data={tmp_path}"]))
