"""tiling: tiles cover the image, tiled = whole when the overlap covers the receptive field, strips stream."""
import numpy as np
import pytest
import torch

import image_io
import option
import tiling
import utility
from helpers import SAMPLE
from model import Model

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
    image = image_io.read_image(image_io.list_images(SAMPLE / "test" / "HR")[0])
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255)[None]


def as_uint8(sr):
    return utility.tensor_to_image(sr[0], 1.0, 255, np.uint8)


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
        tiled = tiling.tiled_forward(basic_x4, x, 4, 48, EXACT_OVERLAP)
    assert tiled.shape == whole.shape == (1, 3, crop[0] * 4, crop[1] * 4)
    assert (tiled - whole).abs().max() < 1e-5
    a, b = as_uint8(whole).astype(int), as_uint8(tiled).astype(int)
    assert np.abs(a - b).max() <= 1 and (a == b).mean() >= 0.999


def test_the_blend_beats_hard_tile_borders_when_the_overlap_is_short(basic_x4, real_lr):
    with torch.no_grad():
        whole = basic_x4(real_lr)
        hard = tiling.tiled_forward(basic_x4, real_lr, 4, 40, 0)
        blended = tiling.tiled_forward(basic_x4, real_lr, 4, 40, 12)
    hard_error, blend_error = (hard - whole).abs().max(), (blended - whole).abs().max()
    assert hard_error > 1e-3  # the receptive field is not covered: tiles differ from the whole image
    assert blend_error < hard_error / 2


def test_strips_stream_in_order_and_hold_at_most_one_band(basic_x4, real_lr):
    x = real_lr[..., :97, :61]
    calls = []
    with torch.no_grad():
        strips = [(row, strip.clone()) for row, strip in
                  tiling.iter_tiled_strips(basic_x4, x, 4, 32, 8, on_tile=lambda: calls.append(1))]
        whole = tiling.tiled_forward(basic_x4, x, 4, 32, 8)
    rows = [row for row, _ in strips]
    heights = [strip.shape[-2] for _, strip in strips]
    assert rows == list(np.cumsum([0] + heights[:-1]))  # contiguous, top to bottom
    assert sum(heights) == 97 * 4 and max(heights) <= 32 * 4
    assert len(strips) == len(tiling.tile_starts(97, 32, 8)) > 1
    assert len(calls) == tiling.count_tiles(97, 61, 32, 8) == 4 * 3
    assert torch.equal(torch.cat([s for _, s in strips], dim=-2), whole)


def test_an_image_that_fits_in_a_tile_runs_whole(basic_x4, real_lr):
    x = real_lr[..., :20, :13]
    calls = []
    with torch.no_grad():
        out = list(tiling.iter_tiled_strips(basic_x4, x, 4, 32, 8, on_tile=lambda: calls.append(1)))
        whole = basic_x4(x)
    assert len(out) == 1 and len(calls) == 1 and tiling.count_tiles(20, 13, 32, 8) == 1
    assert torch.equal(out[0][1], whole)


def test_model_forward_chop_uses_the_same_blend(real_lr):
    torch.manual_seed(3)
    model = Model(option.parse_args(TINY_ARCH + ["--scale=2"]))
    model.eval()
    x = real_lr[..., :50, :70]
    with torch.no_grad():
        assert (model(x, tile=32, tile_overlap=EXACT_OVERLAP) - model(x)).abs().max() < 1e-5
