"""RCAN: residual channel attention network.

Y. Zhang, K. Li, K. Li, L. Wang, B. Zhong and Y. Fu, "Image Super-Resolution Using Very Deep Residual Channel
Attention Networks", ECCV 2018. Official code: github.com/yulunzhang/RCAN; this follows its copy in
github.com/sanghyun-son/EDSR-PyTorch (src/model/rcan.py), whose module names official state_dicts use.

Structure (paper defaults: 10 residual groups of 20 RCABs, 64 features, channel reduction 16):

- `sub_mean`: mean shift (DIV2K RGB mean 0.4488, 0.4371, 0.4040, times rgb_range); `head`: 3x3 conv;
- `body`: residual in residual. n_resgroups residual groups (RG), then a 3x3 conv, with a long skip connection
  around it. An RG is n_resblocks RCABs, then a 3x3 conv, with a short skip connection. An RCAB (residual channel
  attention block) is conv, ReLU, conv, channel attention (CA), plus the input; CA multiplies the features by
  sigmoid(conv(ReLU(conv(global average pool)))), squeezing the channels by `reduction`;
- `tail`: sub-pixel upsampler and a 3x3 conv back to the bands; `add_mean` adds the mean back.

At the paper's size: 15.44 / 15.63 / 15.59 M parameters at x2 / x3 / x4 (mean shift included, as officially).

RCABs take no residual scaling: the official block stores res_scale but never applies it (neither does this one).
The official mean shift is RGB only; other band counts use `--data_mean` or no mean (zeros), as in HSENet.
"""
from torch import nn

from model import common
from model.spec import NetworkSpec

# Deploy: channel attention pools the whole tile, so the receptive field is global and tiled output never equals the
# whole-image output exactly; the (local) conv radius is over 400 LR pixels. The overlap hides the tile borders.
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 64


class CALayer(nn.Module):
    """Channel attention: x * sigmoid(conv(ReLU(conv(global average pool of x)))), channels squeezed by `reduction`."""

    def __init__(self, n_feats, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(nn.Conv2d(n_feats, n_feats // reduction, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(n_feats // reduction, n_feats, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


def rcab(conv, n_feats, reduction):
    """Residual channel attention block: the EDSR residual block with channel attention after its second conv."""
    return common.ResBlock(conv, n_feats, 3, attention=CALayer(n_feats, reduction))


class ResidualGroup(nn.Module):
    """n_resblocks RCABs and a 3x3 conv, plus the input (short skip connection)."""

    def __init__(self, conv, n_feats, reduction, n_resblocks):
        super().__init__()
        self.body = nn.Sequential(*[rcab(conv, n_feats, reduction) for _ in range(n_resblocks)],
                                  conv(n_feats, n_feats, 3))

    def forward(self, x):
        return self.body(x) + x


class RCAN(common.MeanShiftedResidualNet):
    """RCAN; input (B, n_colors, H, W) in [0, rgb_range], output (B, n_colors, H*scale, W*scale). EDSR's skeleton
    with n_resgroups residual groups as the body (residual in residual)."""

    def __init__(self, scale=4, n_colors=3, rgb_range=1.0, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16,
                 data_mean=None):
        blocks = [ResidualGroup(common.default_conv, n_feats, reduction, n_resblocks) for _ in range(n_resgroups)]
        super().__init__(scale, n_colors, rgb_range, n_feats,
                         common.band_mean_for(n_colors, data_mean, common.DIV2K_RGB_MEAN), blocks)


def make_model(cfg):
    """RCAN from the resolved configuration (the paper's sizes are the RCAN model preset in template.py)."""
    return RCAN(scale=int(cfg.scale), n_colors=int(cfg.n_colors), rgb_range=float(cfg.rgb_range),
                n_resgroups=int(cfg.n_resgroups), n_resblocks=int(cfg.n_resblocks), n_feats=int(cfg.n_feats),
                reduction=int(cfg.reduction), data_mean=cfg.data_mean)


def settings_from_state_dict(state):
    """Flags implied by an official RCAN state_dict: n_resgroups, n_resblocks, n_feats and reduction from its
    weights, rgb_range from its mean shift (the official models use 255)."""
    squeeze = state.get("body.0.body.0.body.3.conv_du.0.weight")
    if squeeze is None:
        return {}
    n_feats = int(squeeze.shape[1])
    settings = {
        **common.bands_of(state, "head.0.weight"),
        "n_resgroups": common.count_indexed([k for k in state if k.endswith(".body.0.body.0.weight")], "body."),
        "n_resblocks": common.count_indexed([k for k in state if k.endswith(".conv_du.0.weight")], "body.0.body."),
        "n_feats": n_feats,
        "reduction": n_feats // int(squeeze.shape[0]),
    }
    rgb_range = common.rgb_range_from_mean_shift(state, common.DIV2K_RGB_MEAN)
    if rgb_range is not None:
        settings["rgb_range"] = rgb_range
    return settings


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   settings_from_state_dict=settings_from_state_dict)
