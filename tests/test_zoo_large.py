"""The larger baselines (TransENet, EDSR, RCAN, SwinIR): official-output fixtures, parameter counts of the published
sizes, settings implied by official state_dicts, band counts, fixed-size tiling (TransENet), flags and presets, and
the oneDNN linear of their inference on the CPU."""

import pytest
import torch
import torch.nn.functional as F

import image_files
import image_io
import tiling
from errors import UserError
from helpers import SAMPLE
from model import Model, common, edsr, network_spec, rcan, swinir, transenet
from option import ATTENTION_MODES, network_args, parse_args
from radiometry import Radiometry

SCALES = (2, 3, 4)
# The official counts. EDSR, RCAN and TransENet count their two 3-band mean shifts (2 x (9 + 3) = 24 values): the
# official MeanShift is an nn.Conv2d whose weight and bias are parameters, while here they are buffers, so the
# mean-shift buffers are added. SwinIR's mean is no parameter in the official code either.
OFFICIAL_COUNTS = {
    "TRANSENET": (37_311_195, 37_495_835, 37_458_907),
    "EDSR": (40_729_627, 43_680_027, 43_089_947),
    "RCAN": (15_444_667, 15_629_307, 15_592_379),
    "SWINIR": (11_752_487, 11_937_127, 11_900_199),
}
MEAN_SHIFT_VALUES = 2 * (3 * 3 + 3)


def load_zoo(shared_dir, name):
    return torch.load(shared_dir / "fixtures" / "zoo" / f"{name}.pt", weights_only=True)


@pytest.fixture(scope="module")
def transenet_fixture(shared_dir):
    """34 MB (the transformer width is fixed at 512): read once for the module."""
    return load_zoo(shared_dir, "transenet_small_x4")


def fixture_network(fixture):
    spec = network_spec(fixture["model"])
    config = dict(fixture["config"])
    if "patch_size" in config:  # the fixtures record TransENet's LR input; --patch_size is the HR patch
        config["patch_size"] *= config["scale"]
    net = spec.make_model(network_args(fixture["model"], drop_path_rate=0.0, **config)).eval()
    net.load_state_dict(spec.official_to_ours(fixture["state_dict"]), strict=True)
    return net


def max_error(net, fixture):
    with torch.no_grad():
        out = net(fixture["input"])
    assert out.shape == fixture["output"].shape
    return (out - fixture["output"]).abs().max().item()


# ---------------------------------------------------------------------------------------------------------------
# official outputs

@pytest.mark.parametrize("name", ["edsr", "rcan"])
@pytest.mark.parametrize("scale", SCALES)
def test_edsr_and_rcan_reproduce_official_outputs(shared_dir, name, scale):
    fixture = load_zoo(shared_dir, f"{name}_small_x{scale}")
    assert max_error(fixture_network(fixture), fixture) < 2e-6


@pytest.mark.parametrize("scale", SCALES)
def test_swinir_reproduces_official_outputs_with_both_attention_paths(shared_dir, scale):
    fixture = load_zoo(shared_dir, f"swinir_small_x{scale}")
    window = fixture["config"]["window_size"]
    assert fixture["input"].shape[-2] % window and fixture["input"].shape[-1] % window  # the padding counts
    net = fixture_network(fixture)
    for mode in ATTENTION_MODES:
        net.set_attention(mode)
        assert max_error(net, fixture) < 2e-6, mode


def test_swinir_fixture_tells_reflect_padding_from_the_test_scripts_symmetric_padding(shared_dir):
    """Reflect padding inside forward reproduces the fixture (above); SwinIR's test script pads by mirroring
    *with* the edge pixel, and that gives a clearly different output, so the fixture pins the padding down."""
    fixture = load_zoo(shared_dir, "swinir_small_x2")
    net = fixture_network(fixture)
    x = fixture["input"]
    height, width = x.shape[2:]
    window = fixture["config"]["window_size"]
    padded = torch.cat([x, x.flip(2)], 2)[:, :, :height + (-height % window)]
    padded = torch.cat([padded, padded.flip(3)], 3)[:, :, :, :width + (-width % window)]
    with torch.no_grad():
        symmetric = net(padded)[:, :, :height * 2, :width * 2]
    assert (symmetric - fixture["output"]).abs().max() > 1e-2


def test_transenet_reproduces_official_output(transenet_fixture):
    assert transenet_fixture["config"]["patch_size"] == transenet_fixture["input"].shape[-1] == 40
    assert max_error(fixture_network(transenet_fixture), transenet_fixture) < 2e-6


def test_swinir_dropped_official_buffers_equal_the_recomputed_ones(shared_dir):
    fixture = load_zoo(shared_dir, "swinir_small_x3")
    config, state = fixture["config"], fixture["state_dict"]
    window, size = config["window_size"], config["img_size"]
    index_keys = [k for k in state if k.endswith(".relative_position_index")]
    mask_keys = [k for k in state if k.endswith(".attn_mask")]
    assert len(index_keys) == sum(config["depths"]) and len(mask_keys) == sum(config["depths"]) // 2
    assert all(torch.equal(state[k], common.relative_position_index(window)) for k in index_keys)
    assert all(torch.equal(state[k], common.shifted_window_mask(size, size, window, window // 2)) for k in mask_keys)
    converted = swinir.convert_official_state_dict(state)
    assert len(converted) == len(state) - len(index_keys) - len(mask_keys)
    assert swinir.convert_official_state_dict(converted).keys() == converted.keys()


@pytest.mark.parametrize("name, flags", [
    ("edsr_small_x2", ["--n_resblocks=2", "--n_feats=16", "--res_scale=0.1"]),
    ("rcan_small_x3", ["--n_resgroups=2", "--n_resblocks=2", "--n_feats=16", "--reduction=4"]),
    ("swinir_small_x4", ["--embed_dim=24", "--depths=2,2", "--num_heads=2,2", "--window_size=4", "--mlp_ratio=2",
                         "--img_size=16"]),
])
def test_official_state_dicts_load_through_pre_train(tmp_path, shared_dir, name, flags):
    """The toolbox's loader: --pre_train with the file exactly as the official code saves it, strict loading, the
    settings its weights imply (lists included) agreeing with the flags."""
    fixture = load_zoo(shared_dir, name)
    path = tmp_path / "official.pt"
    torch.save(fixture["state_dict"], path)
    args = parse_args([f"--model={fixture['model']}", f"--scale={fixture['config']['scale']}", "--cpu",
                       "--dataset=UCMerced", f"--pre_train={path}", *flags])
    model = Model(args).eval()
    assert max_error(model, fixture) < 2e-6


# ---------------------------------------------------------------------------------------------------------------
# sizes

def official_count(name, scale):
    with torch.device("meta"):
        net = network_spec(name).make_model(parse_args([f"--model={name}", f"--scale={scale}",
                                                          "--dataset=UCMerced"]))
    params = sum(p.numel() for p in net.parameters())
    mean_shift = sum(b.numel() for n, b in net.named_buffers() if n.split(".")[0] in ("sub_mean", "add_mean"))
    return params, mean_shift


@pytest.mark.parametrize("name", sorted(OFFICIAL_COUNTS))
def test_full_size_defaults_have_the_official_parameter_counts(name):
    """The presets' default sizes (the published networks), counted as the official code counts them."""
    for scale, expected in zip(SCALES, OFFICIAL_COUNTS[name]):
        params, mean_shift = official_count(name, scale)
        assert mean_shift == (0 if name == "SWINIR" else MEAN_SHIFT_VALUES)
        assert params + mean_shift == expected, (name, scale)


def test_edsr_sizes_and_residual_scaling_from_official_state_dicts():
    with torch.device("meta"):
        paper = edsr.EDSR(scale=2)
        baseline = edsr.EDSR(scale=3, n_resblocks=16, n_feats=64, res_scale=1.0)
    assert edsr.settings_from_state_dict(paper.state_dict()) == {"n_colors": 3, "n_resblocks": 32, "n_feats": 256,
                                                                 "res_scale": 0.1}
    assert edsr.settings_from_state_dict(baseline.state_dict()) == {"n_colors": 3, "n_resblocks": 16, "n_feats": 64,
                                                                     "res_scale": 1.0}
    # any other size: its shapes, no guess at res_scale; a real mean shift also tells the range (official: 255)
    small = edsr.EDSR(scale=4, rgb_range=255.0, n_resblocks=3, n_feats=8, res_scale=0.5)
    assert edsr.settings_from_state_dict(small.state_dict()) == {"n_colors": 3, "n_resblocks": 3, "n_feats": 8,
                                                                 "rgb_range": 255.0}
    assert edsr.settings_from_state_dict({"conv_first.weight": torch.zeros(1)}) == {}


def test_rcan_swinir_transenet_sizes_from_state_dicts(shared_dir, transenet_fixture):
    with torch.device("meta"):
        rcan_net = rcan.RCAN(scale=2, n_resgroups=3, n_resblocks=5, n_feats=32, reduction=8)
        swinir_net = swinir.SwinIR(scale=2, embed_dim=30, depths=(2, 4, 2), num_heads=(3, 5, 2), window_size=6,
                                   mlp_ratio=3.0)
    assert rcan.settings_from_state_dict(rcan_net.state_dict()) == {"n_colors": 3, "n_resgroups": 3, "n_resblocks": 5,
                                                                     "n_feats": 32, "reduction": 8}
    assert swinir.settings_from_state_dict(swinir_net.state_dict()) == {
        "n_colors": 3, "embed_dim": 30, "depths": [2, 4, 2], "num_heads": [3, 5, 2], "window_size": 6,
        "mlp_ratio": 3.0}
    official = load_zoo(shared_dir, "swinir_small_x2")["state_dict"]
    assert swinir.settings_from_state_dict(official) == {"n_colors": 3, "embed_dim": 24, "depths": [2, 2],
                                                         "num_heads": [2, 2], "window_size": 4, "mlp_ratio": 2.0}
    assert transenet.settings_from_state_dict(transenet_fixture["state_dict"]) == {
        "n_colors": 3, "n_feats": 16, "en_depth": 1, "de_depth": 1, "rgb_range": 1.0}


# ---------------------------------------------------------------------------------------------------------------
# bands

SMALL = {
    "EDSR": dict(n_resblocks=2, n_feats=8, res_scale=0.1),
    "RCAN": dict(n_resgroups=2, n_resblocks=1, n_feats=8, reduction=2),
    "SWINIR": dict(embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2.0, img_size=8),
    "TRANSENET": dict(n_feats=8, patch_size=64, en_depth=1, de_depth=1),  # 32 LR pixels at x2
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_four_band_networks_train(name):
    torch.manual_seed(0)
    scale, size = 2, (32, 32) if name == "TRANSENET" else (11, 9)
    net = network_spec(name).make_model(network_args(name, scale=scale, n_colors=4, rgb_range=1.0, **SMALL[name]))
    x = torch.rand(2, 4, *size)
    out = net(x)
    assert out.shape == (2, 4, size[0] * scale, size[1] * scale)
    F.l1_loss(out, torch.rand_like(out)).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_four_band_mean_shift_is_data_mean_or_zero():
    means = (0.1, 0.2, 0.3, 0.4)
    plain = edsr.EDSR(scale=2, n_colors=4, rgb_range=255.0, **SMALL["EDSR"])
    shifted = rcan.RCAN(scale=2, n_colors=4, rgb_range=255.0, data_mean=means, **SMALL["RCAN"])
    assert torch.equal(plain.sub_mean.bias, torch.zeros(4))
    torch.testing.assert_close(shifted.sub_mean.bias, -255.0 * torch.tensor(means))
    torch.testing.assert_close(shifted.add_mean.bias, 255.0 * torch.tensor(means))
    with pytest.raises(UserError, match="data_mean"):
        transenet.TransENet(scale=2, n_colors=4, data_mean=(0.5,) * 3, n_feats=8, input_size=32, en_depth=1,
                            de_depth=1)


def test_swinir_mean_and_range():
    """The DIV2K mean for RGB, none for other band counts; rgb_range only rescales."""
    torch.manual_seed(0)
    net = swinir.SwinIR(scale=2, rgb_range=1.0, **SMALL["SWINIR"]).eval()
    assert torch.equal(net.mean.flatten(), torch.tensor(common.DIV2K_RGB_MEAN))
    assert "mean" not in net.state_dict()  # not saved, as officially
    assert torch.equal(swinir.SwinIR(scale=2, n_colors=4, **SMALL["SWINIR"]).mean, torch.zeros(1, 4, 1, 1))
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        unit = net(x)
        net.rgb_range = 255.0
        torch.testing.assert_close(net(x * 255), unit * 255, rtol=1e-5, atol=1e-4)


def test_swinir_training_size_within_a_window_means_one_unshifted_window():
    net = swinir.SwinIR(scale=2, embed_dim=12, depths=(2,), num_heads=(2,), window_size=8, img_size=6)
    blocks = net.layers[0].residual_group.blocks
    assert net.window_size == 6 and [b.attn.window_size for b in blocks] == [6, 6]
    assert [b.shift_size for b in blocks] == [0, 0]
    shifted = swinir.SwinIR(scale=2, embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, img_size=16)
    assert [b.shift_size for b in shifted.layers[0].residual_group.blocks] == [0, 2]


# ---------------------------------------------------------------------------------------------------------------
# TransENet's fixed input size

def small_transenet(scale=2, input_size=32):
    torch.manual_seed(0)
    return transenet.TransENet(scale=scale, n_feats=8, input_size=input_size, en_depth=1, de_depth=1).eval()


def test_transenet_runs_on_its_fixed_size_pads_smaller_inputs_and_refuses_larger_ones():
    net = small_transenet()
    x = torch.rand(1, 3, 30, 25)
    with torch.no_grad():
        out = net(x)
        padded = net(F.pad(x, (0, 7, 0, 2), mode="reflect"))
    assert out.shape == (1, 3, 60, 50)
    torch.testing.assert_close(out, padded[..., :60, :50], rtol=0, atol=0)
    with pytest.raises(UserError, match="tile"):
        net(torch.rand(1, 3, 33, 20))
    for bad in (36, 24):  # not a multiple of 8; too few patches (the official limit: more than 12)
        with pytest.raises(UserError, match="--patch_size / --scale"):
            transenet.TransENet(input_size=bad)


def test_transenet_tiles_at_its_fixed_size():
    """The Model's default tile is the fixed input size; a larger image runs in tiles of exactly that size, and where
    only the first tile counts the output is that tile's own output."""
    args = parse_args(["--model=TRANSENET", "--scale=2", "--cpu", "--dataset=UCMerced", "--n_feats=8",
                       "--en_depth=1", "--de_depth=1", "--patch_size=64"])
    assert transenet.fixed_input_size(args) == 32 and args.chop  # official: test block by block
    model = Model(args).eval()
    assert model.tile_plan == tiling.TilePlan(32, transenet.DEFAULT_TILE_OVERLAP, fixed=True)
    assert model.validation_plan == model.tile_plan
    x = torch.rand(1, 3, 40, 56)
    seen = []

    def forward(t):
        seen.append(tuple(t.shape[2:]))
        return model.inference_fn()(t)
    out = model.tile_plan.run(forward, x, 2)
    assert out.shape == (1, 3, 80, 112) and set(seen) == {(32, 32)}
    with torch.no_grad():
        first = model.model(x[..., :32, :32])
    torch.testing.assert_close(out[..., :16, :32], first[..., :16, :32], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# flags, presets, deploy defaults

def test_presets_give_the_published_sizes_and_the_baseline_template():
    rcan_args = parse_args(["--model=RCAN", "--dataset=UCMerced"])
    assert (rcan_args.n_resgroups, rcan_args.n_resblocks, rcan_args.n_feats, rcan_args.reduction) == (10, 20, 64, 16)
    edsr_args = parse_args(["--model=EDSR", "--dataset=UCMerced"])
    assert (edsr_args.n_resblocks, edsr_args.n_feats, edsr_args.res_scale) == (32, 256, 0.1)
    baseline = parse_args(["--model=EDSR", "--dataset=UCMerced", "--template=EDSR_baseline"])
    assert (baseline.n_resblocks, baseline.n_feats, baseline.res_scale) == (16, 64, 1.0)
    swinir_args = parse_args(["--model=SWINIR", "--dataset=UCMerced", "--depths=4,4", "--num_heads=6,6"])
    assert swinir_args.depths == [4, 4] and swinir_args.embed_dim == 180 and swinir_args.mlp_ratio == 2.0
    transenet_args = parse_args(["--model=TRANSENET", "--dataset=UCMerced"])
    assert (transenet_args.patch_size, transenet_args.en_depth, transenet_args.de_depth) == (192, 8, 1)  # 48 LR
    for name in OFFICIAL_COUNTS:
        sample = parse_args([f"--model={name}"])  # the embedded Sample: small and quick
        assert sample.test_every == 0 and sample.epochs <= 20, name


def test_default_tile_overlaps_cover_finite_receptive_fields():
    # EDSR's receptive-field radius is 2 * n_resblocks + 4 LR pixels; the blend is exact when it is <= overlap / 4.
    # The default (256/96) is a seam-free blend that fits in memory; the exact plan of the paper's size is accepted.
    assert edsr.DEFAULT_TILE > edsr.DEFAULT_TILE_OVERLAP >= 2 * 32 + 4  # at least the radius: a seam-free blend
    assert tiling.plan_for(edsr.SPEC, tile=512, overlap=4 * (2 * 32 + 4)) == tiling.TilePlan(512, 272)
    assert swinir.DEFAULT_TILE % 8 == 0 and swinir.DEFAULT_TILE_OVERLAP % 8 == 0
    assert transenet.DEFAULT_TILE == 48 and rcan.DEFAULT_TILE > rcan.DEFAULT_TILE_OVERLAP


def test_a_full_size_official_edsr_baseline_file_deploys_with_no_size_flags(tmp_path):
    """EDSR's official baseline release (16 blocks x 64 features, res_scale 1) as the official code saves it: the
    shapes tell its size, so `demo_deploy.py --model=EDSR --pre_train FILE` needs no flag, and gives what the network
    built with the explicit flags gives."""
    import demo_deploy
    import image_io
    from helpers import SAMPLE, isolated

    torch.manual_seed(0)
    explicit = ["--model=EDSR", "--scale=2", "--cpu", "--n_resblocks=16", "--n_feats=64", "--res_scale=1"]
    net = Model(parse_args(explicit, purpose="none")).model
    path = tmp_path / "EDSR_baseline_x2.pt"
    torch.save(net.state_dict(), path)  # official key names are ours
    lr_dir = SAMPLE / "test" / "LR_x2"
    cfg = parse_args(["--model=EDSR", "--scale=2", "--cpu", f"--pre_train={path}"], purpose="deploy")
    assert (cfg.n_resblocks, cfg.n_feats, cfg.res_scale) == (16, 64, 1.0) and cfg.sources["n_feats"] == "checkpoint"
    out = tmp_path / "sr"
    demo_deploy.main(["--model=EDSR", "--scale=2", "--cpu", f"--pre_train={path}", f"--dir_data={lr_dir}",
                      f"--dir_out={out}", *isolated(tmp_path)])
    name = image_files.list_images(lr_dir)[0]
    lr = torch.from_numpy(image_io.read_image(name).transpose(2, 0, 1).astype("float32") / 255)[None]
    with torch.no_grad():
        expected = (net.eval()(lr)[0].clamp(0, 1) * 255).round().byte().numpy().transpose(1, 2, 0)
    got = image_io.read_image(out / name.name)
    assert abs(got.astype(int) - expected.astype(int)).max() <= 1


# ---------------------------------------------------------------------------------------------------------------
# oneDNN linear (common.Linear): the fp32 CPU inference path of the transformers' linear layers

@pytest.mark.skipif(not common.ONEDNN_LINEAR, reason="this torch build has no oneDNN linear")
@pytest.mark.parametrize("name", ["SWINIR", "TRANSENET"])
def test_onednn_linear_serves_inference_only_and_gives_nn_linear_output(name, monkeypatch):
    torch.manual_seed(0)
    net = network_spec(name).make_model(network_args(name, scale=2, n_colors=3, rgb_range=1.0, **SMALL[name]))
    tile = image_io.read_image(image_files.list_images(SAMPLE / "test" / "LR_x2")[0])[:32, :32]
    x = Radiometry.of(tile.dtype, None, 1.0).to_network(tile)[None]
    decisions = []
    decide = common.Linear._onednn_applies

    def recorded(self, t):
        decisions.append(decide(self, t))
        return decisions[-1]
    monkeypatch.setattr(common.Linear, "_onednn_applies", recorded)

    with torch.inference_mode():
        fast = net(x)
    assert decisions and all(decisions)
    with torch.inference_mode(), monkeypatch.context() as m:
        m.setattr(common, "ONEDNN_LINEAR", False)
        plain = net(x)
    assert (fast - plain).abs().max().item() < 1e-5

    decisions.clear()
    net(x).mean().backward()  # training: autograd needs nn.Linear's own path
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        net(x)  # autocast casts nn.Linear's inputs to bf16; the oneDNN call would run fp32
    assert decisions and not any(decisions)
