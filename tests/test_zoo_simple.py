"""The simple baselines (SRCNN, VDSR, LGCNet, DCM, FSRCNN): official outputs, parameter counts, band counts, tile
overlaps, and the OpenCV bicubic pre-upsampling of SRCNN, VDSR and LGCNet."""
import argparse

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import image_files
import image_io
import imresize
from errors import UserError
from helpers import SAMPLE, SAMPLE_MS
from model import common, dcm, fsrcnn, lgcnet, network_spec, srcnn, vdsr

SCALES = (2, 3, 4)
MODULES = {"SRCNN": srcnn, "VDSR": vdsr, "LGCNET": lgcnet, "DCM": dcm, "FSRCNN": fsrcnn}
PRE_UPSAMPLED = ("SRCNN", "VDSR", "LGCNET")
ANY_BAND_COUNT = ("SRCNN", "VDSR", "DCM", "FSRCNN")
OFFICIAL_PARAMS = {
    "SRCNN": {2: 69_251, 3: 69_251, 4: 69_251},
    "VDSR": {2: 670_659, 3: 670_659, 4: 670_659},
    "LGCNET": {2: 193_283, 3: 193_283, 4: 193_283},
    "FSRCNN": {2: 115_592, 3: 115_592, 4: 115_592},
    "DCM": {2: 1_842_403, 3: 2_257_603, 4: 2_174_563},
}


def build(name, scale, n_colors=3):
    return MODULES[name].make_model(argparse.Namespace(scale=scale, n_colors=n_colors, rgb_range=1.0))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(MODULES))
def test_reproduces_official_output(shared_dir, name, scale):
    ref = torch.load(shared_dir / "fixtures" / "zoo" / f"{name.lower()}_small_x{scale}.pt", weights_only=True)
    assert ref["model"] == name and ref["config"]["cubic_input"] == (name in PRE_UPSAMPLED)
    net = MODULES[name].make_model(argparse.Namespace(**ref["config"])).eval()
    net.load_state_dict(ref["state_dict"], strict=True)
    with torch.no_grad():
        out = net(ref["input"])
    assert out.shape == ref["output"].shape
    assert (out - ref["output"]).abs().max().item() < 2e-6


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(MODULES))
def test_parameter_counts_match_official(name, scale):
    """None of these networks has a MeanShift (no buffers to add): their trainable parameters are the official count."""
    with torch.device("meta"):
        net = build(name, scale)
    assert not any(isinstance(m, common.MeanShift) for m in net.modules())
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL_PARAMS[name][scale]


def test_fsrcnn_shares_one_prelu_slope():
    """The official FSRCNN reuses one PReLU module: eleven state_dict entries, one trainable slope."""
    net = build("FSRCNN", 4)
    prelu_keys = [k for k, v in net.state_dict().items() if v.numel() == 1]
    assert len(prelu_keys) == 11
    assert sum(1 for m in net.modules() if isinstance(m, torch.nn.PReLU)) == 1


def test_dcm_has_one_prelu_per_layer():
    prelus = [m for m in build("DCM", 2).modules() if isinstance(m, torch.nn.PReLU)]
    assert len(prelus) == 15 and len({id(m) for m in prelus}) == 15


@pytest.mark.parametrize("name", ANY_BAND_COUNT)
def test_four_band_forward(name):
    torch.manual_seed(0)
    scale = 3
    net = build(name, scale, n_colors=4).eval()
    lr = torch.rand(1, 4, 7, 9)
    x = F.interpolate(lr, scale_factor=scale, mode="bicubic") if name in PRE_UPSAMPLED else lr
    with torch.no_grad():
        out = net(x)
        nir_changed = x.clone()
        nir_changed[:, 3] += 0.5
        delta = net(nir_changed) - out
    assert out.shape == (1, 4, 21, 27)
    assert torch.isfinite(out).all()
    assert (delta != 0).any()  # the fourth band is really read (the output is deterministic)


@pytest.mark.parametrize("n_colors", [1, 4])
def test_lgcnet_refuses_other_band_counts(n_colors):
    with pytest.raises(UserError, match="fixed to 3 bands") as err:
        build("LGCNET", 2, n_colors=n_colors)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_registered_and_flagged(name):
    spec = network_spec(name)
    assert spec is MODULES[name].SPEC
    assert spec.pre_upsampled == (name in PRE_UPSAMPLED)


def lr_receptive_radius(fn, n_colors, size, scale):
    """How far (in LR pixels) the LR pixels that an HR output pixel depends on lie from the LR pixel that contains it,
    the largest over the HR pixels' phases (found from the gradient). That is the radius tiling.py's rule is about."""
    centre = size // 2
    radius = 0
    for phase in range(scale):
        x = torch.rand(1, n_colors, size, size, requires_grad=True)
        hr = centre * scale + phase
        fn(x)[..., hr, hr].sum().backward()
        rows, cols = torch.nonzero(x.grad.abs().sum((0, 1)), as_tuple=True)
        assert min(rows.min(), cols.min()).item() > 0 and max(rows.max(), cols.max()).item() < size - 1, "too small"
        radius = max(radius, (rows - centre).abs().max().item(), (cols - centre).abs().max().item())
    return radius


@pytest.mark.parametrize(("name", "scale", "radius"),
                         # the worst scale of each: HR-side reach shrinks in LR pixels as the scale grows; DCM's x4
                         # upsampler adds a second conv. The radii are those documented beside DEFAULT_TILE_OVERLAP.
                         [("SRCNN", 2, 6), ("VDSR", 2, 12), ("LGCNET", 2, 6), ("DCM", 4, 16), ("FSRCNN", 2, 12)])
def test_tile_overlap_covers_four_receptive_radii(name, scale, radius):
    """tiling.py blends tiles exactly when the radius is <= overlap / 4 LR pixels. Pre-upsampled networks are measured
    behind a bicubic upsampling of the LR tile (OpenCV's and torch's cubic both reach 2 LR pixels)."""
    torch.manual_seed(0)
    net = build(name, scale).eval()  # eval: batch norm in training mode would mix the whole batch
    if name in PRE_UPSAMPLED:
        def fn(x):
            return net(F.interpolate(x, scale_factor=scale, mode="bicubic"))
    else:
        fn = net
    measured = lr_receptive_radius(fn, 3, 2 * radius + 6, scale)
    assert measured == radius
    assert 4 * measured <= MODULES[name].DEFAULT_TILE_OVERLAP < MODULES[name].DEFAULT_TILE


# ---------------------------------------------------------------------------------------------------------------
# OpenCV bicubic pre-upsampling

def keys_cubic(t, a=-0.75):
    """OpenCV's cubic convolution kernel (a = -0.75; MATLAB's is -0.5)."""
    t = np.abs(t)
    near = (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    far = a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def cubic_matrix(n, scale):
    """(n * scale, n) matrix of OpenCV's bicubic upsampling along one axis: half-pixel centres, edge replicated."""
    out = np.arange(n * scale)
    src = (out + 0.5) / scale - 0.5
    matrix = np.zeros((n * scale, n))
    for k in range(-1, 3):
        taps = np.floor(src).astype(int) + k
        np.add.at(matrix, (out, np.clip(taps, 0, n - 1)), keys_cubic(src - taps))
    return matrix


@pytest.fixture(scope="module")
def sample_lr_non_square():
    """A real Sample LR tile (uint8 RGB), cropped to be non-square."""
    lr = image_io.read_image(image_files.list_images(SAMPLE / "test" / "LR_x4")[0])
    return lr[:, :19]


@pytest.mark.parametrize("scale", SCALES)
def test_opencv_upsample_non_square_real_image(sample_lr_non_square, scale):
    lr = sample_lr_non_square
    height, width = lr.shape[:2]
    assert height != width and lr.dtype == np.uint8 and lr.shape[2] == 3
    up = imresize.opencv_bicubic_upsample(lr, scale)
    assert up.shape == (height * scale, width * scale, 3) and up.dtype == np.uint8
    np.testing.assert_array_equal(up, cv2.resize(lr, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_opencv_upsample_keeps_dtype(sample_lr_non_square, dtype):
    lr = sample_lr_non_square.astype(dtype) * (257 if dtype == np.uint16 else 1 / 255)
    lr = lr.astype(dtype)
    up = imresize.opencv_bicubic_upsample(lr, 3)
    assert up.dtype == dtype and up.shape == (90, 57, 3)
    np.testing.assert_array_equal(up, cv2.resize(lr, (57, 90), interpolation=cv2.INTER_CUBIC))


def test_opencv_upsample_single_band_stays_three_dimensional(sample_lr_non_square):
    band = sample_lr_non_square[:, :, 1:2]
    up = imresize.opencv_bicubic_upsample(band, 2)
    assert up.shape == (60, 38, 1)
    np.testing.assert_array_equal(up[:, :, 0], cv2.resize(band[:, :, 0], (38, 60), interpolation=cv2.INTER_CUBIC))


def test_opencv_upsample_four_band_geotiff():
    lr = image_io.read_image(image_files.list_images(SAMPLE_MS / "test" / "LR_x4")[0])
    assert lr.shape[2] == 4
    up = imresize.opencv_bicubic_upsample(lr, 4)
    assert up.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 4) and up.dtype == lr.dtype


@pytest.mark.parametrize("scale", SCALES)
def test_opencv_upsample_is_the_a075_cubic(sample_lr_non_square, scale):
    """An independent reference: separable Keys cubic with a = -0.75, half-pixel centres and replicated edges."""
    lr = sample_lr_non_square.astype(np.float32) / 255
    expected = np.einsum("ah,bw,hwc->abc", cubic_matrix(lr.shape[0], scale), cubic_matrix(lr.shape[1], scale),
                         lr.astype(np.float64))
    np.testing.assert_allclose(imresize.opencv_bicubic_upsample(lr, scale), expected, atol=1e-5)


def test_opencv_upsample_rejects_2d_arrays():
    with pytest.raises(ValueError, match="H, W, C"):
        imresize.opencv_bicubic_upsample(np.zeros((4, 5), np.uint8), 2)


# ------------------------------------------------------------------------------ the pre-upsampling in the pipeline
def test_a_pre_upsampled_network_deploys_on_lr_upsampled_in_its_file_values(tmp_path):
    """Deploy feeds SRCNN exactly what the official --cubic_input pipeline would: cv2 bicubic of the uint8 LR,
    then / 255; the output file is the network's output on that, rounded."""
    import demo_deploy
    import option
    from helpers import isolated
    from model import Model
    from radiometry import Radiometry

    torch.manual_seed(0)
    model = Model(option.parse_args(["--model=SRCNN", "--scale=2", "--cpu"], purpose="none")).eval()
    ckpt = tmp_path / "srcnn.pt"
    torch.save(model.model.state_dict(), ckpt)
    out = tmp_path / "sr"
    demo_deploy.main(["--model=SRCNN", "--scale=2", "--cpu", f"--pre_train={ckpt}", f"--dir_out={out}",
                      f"--dir_data={SAMPLE / 'test' / 'LR_x2'}", *isolated(tmp_path)])
    lr_path = image_files.list_images(SAMPLE / "test" / "LR_x2")[0]
    lr = image_io.read_image(lr_path)
    up = cv2.resize(lr, (lr.shape[1] * 2, lr.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    with torch.no_grad():
        expected = model.model(torch.from_numpy(up.transpose(2, 0, 1).astype(np.float32) / 255)[None])[0]
    expected = Radiometry.of(np.uint8, None, 1.0).from_network(expected)
    np.testing.assert_array_equal(image_io.read_image(out / lr_path.name), expected)


def test_a_pre_upsampled_network_trains_on_its_sample_preset(tmp_path):
    import demo_train
    from helpers import isolated

    demo_train.main(["--model=SRCNN", "--scale=2", "--cpu", "--epochs=1", "--save=s", *isolated(tmp_path)])
    import checkpoint

    payload = checkpoint.read(tmp_path / "experiment" / "s" / "model" / checkpoint.LATEST).payload
    assert payload["config"]["cubic_input"] is True and 10 < payload["history"][0]["psnr_rgb"] < 40
    with pytest.raises(UserError, match="--cubic_input applies to the pre-upsampled networks"):
        demo_train.main(["--model=BASIC", "--cubic_input", "--epochs=1", *isolated(tmp_path)])
