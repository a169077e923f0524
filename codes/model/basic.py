"""BASIC: an EDSR-baseline-style residual network (head conv, n_resblocks residual blocks, global residual,
pixel-shuffle upsampler, tail conv), plus a bicubic skip: the body learns only the detail bicubic misses, so a
brief run on CPU already starts from bicubic quality. A small, fast stand-in for the published networks."""
import torch.nn as nn
import torch.nn.functional as F

from model import common
from model.spec import NetworkSpec

# The receptive-field radius is 2*n_resblocks + 4 LR pixels. Tiles blend exactly when it is at most overlap/4
# (see tiling.py): 48 covers the Sample preset (4 blocks) and is a seamless blend for the 16-block default.
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 48


def make_model(cfg):
    return Basic(scale=cfg.scale, n_colors=cfg.n_colors, n_feats=cfg.n_feats, n_resblocks=cfg.n_resblocks,
                 res_scale=cfg.res_scale)


class Basic(nn.Module):
    def __init__(self, scale, n_colors=3, n_feats=64, n_resblocks=16, res_scale=1.0, conv=common.default_conv):
        super().__init__()
        self.head = conv(n_colors, n_feats, 3)
        self.body = nn.Sequential(
            *[common.ResBlock(conv, n_feats, 3, res_scale=res_scale) for _ in range(n_resblocks)],
            conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(common.Upsampler(conv, scale, n_feats), conv(n_feats, n_colors, 3))
        self.scale = scale

    def forward(self, x):
        skip = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        # Under autocast (--precision bf16) the head and the tail stay fp32 (see common.in_fp32).
        x = common.in_fp32(self.head, x)
        x = x + self.body(x)
        return common.in_fp32(self.tail, x) + skip


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP)
