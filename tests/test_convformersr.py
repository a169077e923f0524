"""ConvFormerSR: official-equivalence fixtures, fast vs naive attention, parameter counts, loading, bands."""

import pytest
import torch
import torch.nn.functional as F

from errors import UserError
from model import convformersr
from model.convformersr import convert_official_state_dict, make_model
from option import network_args

SMALL = dict(embed_dim=24, depths=[2, 2], num_heads=[2, 2], window_size=4, mlp_ratio=2.0, num_block=2, img_size=16)


def small_model(scale=2, n_colors=3, drop_path_rate=0.0, **overrides):
    """A small random model; CAM gammas are set non-zero (they start at 0) so the CAM path counts."""
    torch.manual_seed(0)
    args = network_args("CONVFORMERSR", scale=scale, n_colors=n_colors, rgb_range=1.0,
                        drop_path_rate=drop_path_rate, **{**SMALL, **overrides})
    model = make_model(args)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("cam.gamma"):
                param.fill_(0.3)
    return model


def load_fixture(shared_dir, scale):
    return torch.load(shared_dir / "fixtures" / "reference" / f"convformersr_small_x{scale}.pt", weights_only=True)


def fixture_model(fixture):
    config = fixture["config"]
    model = make_model(network_args("CONVFORMERSR", rgb_range=1.0, drop_path_rate=0.0, **config))
    model.load_state_dict(convert_official_state_dict(fixture["state_dict"]), strict=True)
    return model.eval()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_reproduces_official_fixture_with_both_attention_paths(shared_dir, scale):
    fixture = load_fixture(shared_dir, scale)
    model = fixture_model(fixture)
    assert fixture["input"].shape[-1] % fixture["config"]["window_size"]  # exercises padding
    # The naive path repeats the official operations in order, so it is held tighter: the whole CAM conv branch moves
    # these outputs by only ~6e-5, and a 10% error in its 0.01 weight by ~6e-6.
    for mode, tolerance in (("naive", 2e-6), ("fast", 1e-5)):
        model.set_attention(mode)
        with torch.no_grad():
            out = model(fixture["input"])
        assert out.shape == fixture["output"].shape
        assert (out - fixture["output"]).abs().max().item() < tolerance, mode
    with torch.no_grad():
        again = model(fixture["input"])  # reuses the fast path's cached masks
    assert (again - fixture["output"]).abs().max().item() < 1e-5


def test_dropped_official_buffers_equal_the_recomputed_ones(shared_dir):
    fixture = load_fixture(shared_dir, 2)
    config, state = fixture["config"], fixture["state_dict"]
    window, res = config["window_size"], config["img_size"]
    expected_mask = convformersr.shifted_window_mask(res, res, window, window // 2)
    index_keys = [k for k in state if k.endswith(".relative_position_index")]
    mask_keys = [k for k in state if k.endswith(".attn_mask")]
    assert len(index_keys) == sum(config["depths"]) and len(mask_keys) == sum(config["depths"]) // 2
    for key in index_keys:
        assert torch.equal(state[key], convformersr.relative_position_index(window))
    for key in mask_keys:
        assert torch.equal(state[key], expected_mask)


def test_official_state_dict_loads_strictly_through_conversion_which_is_idempotent(shared_dir):
    official = load_fixture(shared_dir, 3)["state_dict"]
    model = small_model(scale=3)
    with pytest.raises(RuntimeError, match="relative_position_index"):
        model.load_state_dict(official, strict=True)
    converted = convert_official_state_dict(official)
    assert len(converted) == len(official) - 6  # 4 blocks' index buffers, 2 shifted blocks' masks
    assert convert_official_state_dict(converted).keys() == converted.keys()
    model.load_state_dict(converted, strict=True)
    saved = model.state_dict()
    assert saved.keys() == converted.keys()
    assert all(torch.equal(saved[k], converted[k]) for k in saved)
    net = make_model(network_args("CONVFORMERSR", scale=3, **SMALL))
    net.load_state_dict(convert_official_state_dict(saved), strict=True)


@pytest.mark.parametrize("batch, size", [(2, (11, 7)), (1, (5, 13))])
def test_fast_equals_naive_forward_and_gradients(batch, size):
    model = small_model(scale=3).train()  # drop_path_rate 0: train mode stays deterministic
    x = torch.rand(batch, 3, *size)
    results = {}
    for mode in ("naive", "fast"):
        model.set_attention(mode)
        model.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_()
        out = model(inp)
        F.l1_loss(out, torch.zeros_like(out)).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[mode] = out.detach(), inp.grad, grads
    (out_n, gin_n, g_n), (out_f, gin_f, g_f) = results["naive"], results["fast"]
    assert out_n.shape == (batch, 3, size[0] * 3, size[1] * 3)
    torch.testing.assert_close(out_f, out_n, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gin_f, gin_n, rtol=1e-3, atol=1e-6)
    assert g_n["RAG_Layers.0.attn.blocks.1.attn.relative_position_bias_table"].abs().sum() > 0
    for name in g_n:
        torch.testing.assert_close(g_f[name], g_n[name], rtol=1e-3, atol=1e-6, msg=name)


def test_fast_and_naive_train_identically_over_steps():
    torch.manual_seed(1)
    batches = [(torch.rand(1, 3, 7, 10), torch.rand(1, 3, 14, 20)) for _ in range(2)]
    trained = {}
    for mode in ("naive", "fast"):
        model = small_model()  # same seed: same initial weights
        model.set_attention(mode)
        tables = [p for n, p in model.named_parameters() if n.endswith("relative_position_bias_table")]
        others = [p for n, p in model.named_parameters() if not n.endswith("relative_position_bias_table")]
        # Table gradients are tiny at initialisation: a large step makes a stale cached mask visible.
        optimizer = torch.optim.SGD([{"params": tables, "lr": 1e4}, {"params": others}], lr=0.5)
        for _ in range(3):
            optimizer.zero_grad()
            for lr_image, hr_image in batches:  # gradient accumulation: two backward passes per step
                F.l1_loss(model(lr_image), hr_image).backward()
            optimizer.step()
        trained[mode] = dict(model.named_parameters())
    name = "RAG_Layers.1.attn.blocks.1.attn.relative_position_bias_table"
    assert (trained["fast"][name] - small_model().get_parameter(name)).abs().max() > 1e-3
    for name, param in trained["naive"].items():
        torch.testing.assert_close(trained["fast"][name], param, rtol=1e-4, atol=1e-6, msg=name)


def test_cached_mask_follows_in_place_weight_updates():
    torch.manual_seed(0)
    attn = convformersr.WindowAttention(dim=16, window_size=4, num_heads=2).eval()
    windows = convformersr.window_partition(torch.randn(2, 8, 12, 16), 4)
    with torch.no_grad():
        before = attn(windows, 8, 12, 2)  # fills the cache
        assert attn.combined_mask(8, 12, 2, torch.float32) is attn.combined_mask(8, 12, 2, torch.float32)
        attn.relative_position_bias_table.add_(torch.randn_like(attn.relative_position_bias_table))  # optimizer-like
        fast = attn(windows, 8, 12, 2)
        attn.attention = "naive"
        naive = attn(windows, 8, 12, 2)
    assert (naive - before).abs().max() > 1e-3
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("embed_dim, expected", [(96, (16_300_435, 16_485_075, 16_448_147)),
                                                 (60, (6_502_783, 6_687_423, 6_650_495))])
def test_parameter_counts_of_the_paper_configuration(embed_dim, expected):
    counts = []
    for scale in (2, 3, 4):
        with torch.device("meta"):
            model = make_model(network_args("CONVFORMERSR", scale=scale, n_colors=3, embed_dim=embed_dim))
        counts.append(sum(p.numel() for p in model.parameters()))
    assert tuple(counts) == expected
    assert [round(c / 1e6, 2) for c in counts] == {96: [16.30, 16.49, 16.45], 60: [6.50, 6.69, 6.65]}[embed_dim]


def test_four_band_model_with_rgb_range_trains_and_upsamples():
    model = small_model(scale=4, n_colors=4, drop_path_rate=0.1)
    model.rgb_range = 255.0
    x = torch.rand(2, 4, 10, 9) * 255
    out = model.train()(x)
    assert out.shape == (2, 4, 40, 36)
    out.mean().backward()
    assert model.conv_first.weight.grad.shape[1] == 4 and torch.isfinite(model.conv_first.weight.grad).all()
    with torch.no_grad():
        scaled = model.eval()(x)
        model.rgb_range = 1.0
        unit = model(x / 255)
    torch.testing.assert_close(scaled, unit * 255, rtol=1e-4, atol=1e-3)


def test_inputs_smaller_than_the_padding_still_work():
    model = small_model().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 1, 2))
    assert out.shape == (1, 3, 2, 4) and torch.isfinite(out).all()


def test_bf16_autocast_runs_both_paths_close_to_fp32():
    model = small_model().eval()
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        reference = model(x)
        for mode in ("naive", "fast"):
            model.set_attention(mode)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
            assert (out.float() - reference).abs().max() < 0.05, mode


@pytest.mark.parametrize("overrides, flag", [(dict(scale=5), "--scale"), (dict(depths=[2]), "--depths"),
                                             (dict(num_heads=[5, 5]), "--embed_dim")])
def test_bad_settings_raise_user_errors_naming_the_flag(overrides, flag):
    args = network_args("CONVFORMERSR", **{**SMALL, "scale": 2, **overrides})
    with pytest.raises(UserError, match=flag):
        make_model(args)


def test_full_size_defaults_fast_equals_official_path():
    """The paper's network (embed_dim 96, depths/heads 6x4, window 8): fast attention equals the official path on an
    input that is not a multiple of the window (the fixtures are small configs; the official path is the reference)."""
    torch.manual_seed(0)
    model = make_model(network_args("CONVFORMERSR", scale=3, n_colors=3, rgb_range=1.0)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("cam.gamma"):
                param.fill_(0.3)
        x = torch.rand(1, 3, 13, 19)
        model.set_attention("naive")
        official = model(x)
        model.set_attention("fast")
        torch.testing.assert_close(model(x), official, rtol=1e-4, atol=1e-5)
    assert official.shape == (1, 3, 39, 57)


def test_a_fused_kernel_returning_the_heads_in_another_memory_order_gives_the_same_output(monkeypatch):
    """CUDA's fused attention kernels return (batch, heads, tokens, dim) as a view of a (batch, tokens, heads, dim)
    buffer; the window attention must take any such layout (a view() of it cannot merge the batch and the windows).
    Emulated on the CPU by a kernel that returns its result in that memory order."""
    model = small_model().eval()
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(3))  # 2: the batch and windows merge
    with torch.no_grad():
        expected = model(x)
    fused = F.scaled_dot_product_attention

    def heads_last_in_memory(*args, **kwargs):
        out = fused(*args, **kwargs)
        return out.transpose(-3, -2).contiguous().transpose(-3, -2)  # same values, CUDA's memory order

    monkeypatch.setattr(F, "scaled_dot_product_attention", heads_last_in_memory)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_drop_path_draws_as_torchvisions_stochastic_depth():
    """common.DropPath (kept here so that the networks start without importing torchvision.ops) drops the same
    samples and scales the kept ones the same way as torchvision's StochasticDepth in "row" mode, from one seed."""
    from torchvision.ops import StochasticDepth

    from model.common import DropPath

    x = torch.rand(64, 5, 7)
    ours, theirs = DropPath(0.3).train(), StochasticDepth(0.3, "row").train()
    torch.manual_seed(3)
    expected = theirs(x)
    torch.manual_seed(3)
    got = ours(x)
    assert torch.equal(got, expected)
    dropped = (got.flatten(1) == 0).all(dim=1)
    assert 0 < int(dropped.sum()) < 64  # some samples dropped, some kept (scaled by 1 / 0.7)
    assert torch.allclose(got[~dropped], x[~dropped] / 0.7)
    assert torch.equal(ours.eval()(x), x)
