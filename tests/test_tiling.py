"""tiling: tiles cover the image, tiled = whole when the overlap covers the receptive field, strips stream."""
import numpy as np
import pytest
import torch

import image_files
import image_io
import option
import tiling
from errors import UserError
from helpers import SAMPLE
from model import Model
from radiometry import Radiometry

# BASIC with 1 residual block: receptive-field radius 2*1 + 4 = 6 LR pixels, so an overlap of 24 (= 4 * 6) is exact.
TINY_ARCH = ["--model=BASIC", "--n_feats=8", "--n_resblocks=1", "--cpu"]
EXACT_OVERLAP = 24



@pytest.fixture(scope="module")
def basic_x4():
    torch.manual_seed(3)
    model = Model(option.parse_args(TINY_ARCH + ["--scale=4"]))
    model.eval()
    return model.inference_fn()


@pytest.fixture(scope="module")
def real_lr():
    """A real 120x120 RGB tile (the Sample HR) as an LR input, in [0, 1]."""
    image = image_io.read_image(image_files.list_images(SAMPLE / "test" / "HR")[0])
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255)[None]


def as_uint8(sr):
    return Radiometry.of(np.uint8, None, 1.0).from_network(sr[0])


def tiled(forward, x, scale, tile, overlap):
    return tiling.TilePlan(tile, overlap).run(forward, x, scale)


def reference_blend(forward, x, scale, tile, overlap):
    """The blend computed the obvious way, independently of iter_tiled_strips: every tile's output times its 2-D
    weight, summed over the whole HR image, divided by the summed weights."""
    _, _, h, w = x.shape
    numerator, denominator = None, torch.zeros(h * scale, w * scale)
    rows, cols = tiling.tile_starts(h, tile, overlap), tiling.tile_starts(w, tile, overlap)
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            out = forward(x[..., top:top + tile, left:left + tile])
            wy = tiling.edge_ramp(out.shape[-2], overlap * scale, i > 0, i < len(rows) - 1)
            wx = tiling.edge_ramp(out.shape[-1], overlap * scale, j > 0, j < len(cols) - 1)
            weight = wy[:, None] * wx[None, :]
            if numerator is None:
                numerator = out.new_zeros(out.shape[:2] + (h * scale, w * scale))
            window = (slice(top * scale, top * scale + out.shape[-2]),
                      slice(left * scale, left * scale + out.shape[-1]))
            numerator[..., window[0], window[1]] += out * weight
            denominator[window] += weight
    return numerator / denominator


@pytest.mark.parametrize("length,tile,overlap", [(120, 48, 24), (97, 32, 8), (33, 32, 31), (10, 16, 4), (64, 16, 0)])
def test_tiles_cover_the_axis_with_the_overlap(length, tile, overlap):
    starts = tiling.tile_starts(length, tile, overlap)
    assert starts[0] == 0 and min(starts[-1] + tile, length) == length
    assert starts == sorted(set(starts))
    for a, b in zip(starts, starts[1:]):
        assert a + tile - b >= overlap  # consecutive tiles overlap by at least `overlap`
        assert b + tile <= length  # every tile is whole: the network always sees tile x tile inputs


@pytest.mark.parametrize("length,tile,overlap,scale", [(120, 48, 24, 4), (97, 32, 8, 2), (41, 16, 12, 3)])
def test_weights_vanish_at_inner_edges_and_sum_to_positive(length, tile, overlap, scale):
    pieces, total = tiling.axis_weights(length, tile, overlap, scale)
    assert total.min() > 0  # every HR pixel gets a weight
    margin = overlap * scale // 4
    for k, (start, stop, weights) in enumerate(pieces):
        assert stop - start == len(weights)
        if k > 0:
            assert weights[:margin].max() == 0  # context missing near an inner edge: that output is not used
        if k < len(pieces) - 1:
            assert weights[-margin:].max() == 0
    assert pieces[0][2][0] == 1 and pieces[-1][2][-1] == 1  # image borders keep full weight


@pytest.mark.parametrize("crop", [(120, 120), (97, 61), (37, 120)])
def test_tiled_equals_whole_when_the_overlap_covers_the_receptive_field(basic_x4, real_lr, crop):
    x = real_lr[..., :crop[0], :crop[1]]
    with torch.no_grad():
        whole = basic_x4(x)
        blended = tiled(basic_x4, x, 4, 48, EXACT_OVERLAP)
    assert blended.shape == whole.shape == (1, 3, crop[0] * 4, crop[1] * 4)
    assert (blended - whole).abs().max() < 1e-5
    a, b = as_uint8(whole).astype(int), as_uint8(blended).astype(int)
    assert np.abs(a - b).max() <= 1 and (a == b).mean() >= 0.999


def test_the_blend_beats_hard_tile_borders_when_the_overlap_is_short(basic_x4, real_lr):
    with torch.no_grad():
        whole = basic_x4(real_lr)
        hard = tiled(basic_x4, real_lr, 4, 40, 0)
        blended = tiled(basic_x4, real_lr, 4, 40, 12)
    hard_error, blend_error = (hard - whole).abs().max(), (blended - whole).abs().max()
    assert hard_error > 1e-3  # the receptive field is not covered: tiles differ from the whole image
    assert blend_error < hard_error / 2


def test_strips_stream_in_order_and_hold_at_most_one_band(basic_x4, real_lr):
    x = real_lr[..., :97, :61]
    calls = []
    with torch.no_grad():
        strips = [(row, strip.clone()) for row, strip in
                  tiling.iter_tiled_strips(basic_x4, x, 4, 32, 8, on_tile=lambda: calls.append(1))]
        reference = reference_blend(basic_x4, x, 4, 32, 8)
    rows = [row for row, _ in strips]
    heights = [strip.shape[-2] for _, strip in strips]
    assert rows == list(np.cumsum([0] + heights[:-1]))  # contiguous, top to bottom
    assert sum(heights) == 97 * 4 and max(heights) <= 32 * 4
    assert len(strips) == len(tiling.tile_starts(97, 32, 8)) > 1
    assert len(calls) == tiling.count_tiles(97, 61, 32, 8) == 4 * 3
    # the streamed strips, put together, are the blend computed over the whole image at once (overlap 8 does not
    # cover this network's receptive field, so this is not the whole-image output: the blend itself is checked)
    assert (torch.cat([s for _, s in strips], dim=-2) - reference).abs().max() < 1e-6


def test_an_image_that_fits_in_a_tile_runs_whole(basic_x4, real_lr):
    x = real_lr[..., :20, :13]
    calls = []
    with torch.no_grad():
        out = list(tiling.iter_tiled_strips(basic_x4, x, 4, 32, 8, on_tile=lambda: calls.append(1)))
        whole = basic_x4(x)
    assert len(out) == 1 and len(calls) == 1 and tiling.count_tiles(20, 13, 32, 8) == 1
    assert torch.equal(out[0][1], whole)


def test_model_forward_with_a_plan_uses_the_same_blend(real_lr):
    torch.manual_seed(3)
    model = Model(option.parse_args(TINY_ARCH + ["--scale=2", "--tile=32", f"--tile_overlap={EXACT_OVERLAP}"]))
    model.eval()
    assert model.tile_plan == tiling.TilePlan(32, EXACT_OVERLAP) and model.validation_plan == tiling.WHOLE
    x = real_lr[..., :50, :70]
    with torch.no_grad():
        assert (model(x, plan=model.tile_plan) - model(x)).abs().max() < 1e-5


def test_a_fixed_size_plan_pads_small_images_and_feeds_only_whole_tiles(real_lr):
    """A network that takes only tile x tile inputs (TransENet) still deploys any size: every call sees 16x16."""
    sizes = []

    def fixed_net(t):
        sizes.append(tuple(t.shape[-2:]))
        return torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")

    plan = tiling.TilePlan(16, 4, fixed=True)
    for h, w in ((9, 13), (16, 16), (37, 20)):
        sizes.clear()
        x = real_lr[..., :h, :w]
        out = plan.run(fixed_net, x, 2)
        assert out.shape[-2:] == (2 * h, 2 * w) and set(sizes) == {(16, 16)}
        assert (out - torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")).abs().max() < 1e-6
        assert plan.count(h, w) == len(sizes)


def test_the_plan_checks_the_network_constraints():
    from model import convformersr, hsenet

    assert tiling.plan_for(hsenet.SPEC) == tiling.TilePlan(hsenet.DEFAULT_TILE, hsenet.DEFAULT_TILE_OVERLAP)
    assert tiling.plan_for(hsenet.SPEC, tile=40) == tiling.TilePlan(40, 20)  # the default overlap fits any tile
    assert tiling.plan_for(hsenet.SPEC, tile=0) == tiling.WHOLE
    with pytest.raises(UserError, match="--tile_overlap 40 must be smaller than the tile"):
        tiling.plan_for(hsenet.SPEC, tile=40, overlap=40)
    with pytest.raises(UserError, match="--tile 100 must be a multiple of 8 for CONVFORMERSR.*--tile 96"):
        tiling.plan_for(convformersr.SPEC, tile=100, multiple=8, model_name="CONVFORMERSR")
    assert tiling.plan_for(None, fixed_size=48) == tiling.TilePlan(48, 16, fixed=True)
    with pytest.raises(UserError, match="exactly 48x48"):
        tiling.plan_for(None, tile=64, fixed_size=48, model_name="TRANSENET")
