"""EDSR: enhanced deep residual network for single-image super-resolution.

B. Lim, S. Son, H. Kim, S. Nah and K. M. Lee, "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPR Workshops (NTIRE) 2017. Official code: github.com/sanghyun-son/EDSR-PyTorch (src/model/edsr.py).

Structure, with the official module names (so official state_dicts load with strict=True):

- `sub_mean`: mean shift (DIV2K RGB mean 0.4488, 0.4371, 0.4040, times rgb_range);
- `head`: a 3x3 conv from the bands to n_feats;
- `body`: n_resblocks residual blocks without batch norm (conv, ReLU, conv, scaled by res_scale, plus the input),
  then a 3x3 conv, with a global residual around the whole body;
- `tail`: sub-pixel upsampler (conv + pixel shuffle per factor 2, or one conv + pixel shuffle for x3), 3x3 conv back
  to the bands; `add_mean` adds the mean back.

Two official sizes: the paper's EDSR, 32 blocks of 256 features with residual scaling 0.1 (the default here, 40.7 /
43.7 / 43.1 M parameters at x2 / x3 / x4), and EDSR-baseline, 16 blocks of 64 features without scaling
(`--n_resblocks 16 --n_feats 64 --res_scale 1`, or `--template EDSR_baseline`). `settings_from_state_dict` tells
them apart from an official file's weight shapes.

The official mean shift is RGB only; other band counts use `--data_mean` or no mean (zeros), as in HSENet.
"""

from model import common
from model.spec import NetworkSpec

# The two sizes of the official release: (n_resblocks, n_feats) -> res_scale.
OFFICIAL_RES_SCALE = {(32, 256): 0.1, (16, 64): 1.0}
# Deploy: the receptive-field radius is 2 * n_resblocks + 4 LR pixels (68 for the paper's 32 blocks, 36 for the
# baseline); the tiling blend equals the whole-image output when it is at most a quarter of the overlap (272 and 144).
# An exact 512/272 default would need about 9 GB at x4 on the CPU (the 256-feature upsampler), so the default is a
# seam-free blend that fits in about 1.5 GB; pass --tile 512 --tile_overlap 272 for the exact output.
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 96


class EDSR(common.MeanShiftedResidualNet):
    """EDSR; input (B, n_colors, H, W) in [0, rgb_range], output (B, n_colors, H*scale, W*scale). The body is
    n_resblocks EDSR residual blocks (no batch norm, residual scaling res_scale)."""

    def __init__(self, scale=4, n_colors=3, rgb_range=1.0, n_resblocks=32, n_feats=256, res_scale=0.1,
                 data_mean=None):
        blocks = [common.ResBlock(common.default_conv, n_feats, 3, res_scale=res_scale) for _ in range(n_resblocks)]
        super().__init__(scale, n_colors, rgb_range, n_feats,
                         common.band_mean_for(n_colors, data_mean, common.DIV2K_RGB_MEAN), blocks)


def make_model(cfg):
    """EDSR from the resolved configuration (the paper's sizes are the EDSR model preset in template.py)."""
    return EDSR(scale=int(cfg.scale), n_colors=int(cfg.n_colors), rgb_range=float(cfg.rgb_range),
                n_resblocks=int(cfg.n_resblocks), n_feats=int(cfg.n_feats), res_scale=float(cfg.res_scale),
                data_mean=cfg.data_mean)


def settings_from_state_dict(state):
    """Flags implied by an official EDSR state_dict: n_resblocks and n_feats from its weights, res_scale for the two
    official sizes (32 x 256: 0.1, 16 x 64: 1), rgb_range from its mean shift (the official models use 255)."""
    head = state.get("head.0.weight")
    if head is None:
        return {}
    n_feats = int(head.shape[0])
    n_resblocks = common.count_indexed([k for k in state if k.endswith(".body.0.weight")], "body.")
    settings = {**common.bands_of(state, "head.0.weight"), "n_resblocks": n_resblocks, "n_feats": n_feats}
    if (n_resblocks, n_feats) in OFFICIAL_RES_SCALE:
        settings["res_scale"] = OFFICIAL_RES_SCALE[n_resblocks, n_feats]
    rgb_range = common.rgb_range_from_mean_shift(state, common.DIV2K_RGB_MEAN)
    if rgb_range is not None:
        settings["rgb_range"] = rgb_range
    return settings


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   settings_from_state_dict=settings_from_state_dict)
