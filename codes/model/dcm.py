"""DCM: deep compendium model for remote-sensing single-image super-resolution.

J. M. Haut, M. E. Paoletti, R. Fernandez-Beltran, J. Plaza, A. Plaza and J. Li, "Remote Sensing Single-Image
Superresolution Based on a Deep Compendium Model", IEEE Geoscience and Remote Sensing Letters, 2019. Official code of
this version: the DCM baseline of github.com/Shaosifan/HSENet (codes/model/dcm.py, class DIM); state_dict keys are the
same, so its checkpoints load with strict=True.

It works on the LR image and combines skip connections, parallel reconstruction branches (network in network) and a
sub-pixel upsampler:

- feature extraction: 12 conv 3x3 + PReLU layers whose widths shrink from 196 to 48 (`fe_conv1`..`fe_conv12`);
- skip connection: the first and last feature maps are concatenated (196 + 48 = 244 maps);
- reconstruction, two parallel branches on them: A, one conv + PReLU to 64 maps (`re_a`); B, two conv + PReLU
  layers to 32 maps (`re_b1`, `re_b2`); their 96 concatenated maps go through the EDSR sub-pixel upsampler (`re_u`)
  and a 1x1 conv to the bands (`re_r`);
- global residual: the network adds the bicubic upsampling of its input (torch `F.interpolate`, not MATLAB's).

The paper describes the parallel reconstruction filters as 1x1 convolutions; the official code (and its fixtures),
which is followed here, makes all of them 3x3 (only `re_r` is 1x1). Each layer has its own single-slope PReLU. Any
band count works.
"""
import torch
import torch.nn.functional as F
from torch import nn

from model import common
from model.spec import NetworkSpec

FEATURE_WIDTHS = (196, 166, 148, 133, 120, 108, 97, 86, 76, 66, 57, 48)
BRANCH_A_FEATS = 64
BRANCH_B_FEATS = 32
# Receptive-field radius in LR pixels: 12 (feature extraction) + 2 (branch B) + 1 (upsampler conv) + 0.5 (x4: second
# upsampler conv at x2 resolution) = 15.5; the bicubic residual reaches 2. So 16, and an overlap of 4 x 16 = 64.
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 64


def make_model(cfg):
    return DCM(scale=int(cfg.scale), n_colors=int(cfg.n_colors))


def conv_prelu(in_channels, out_channels):
    return common.BasicBlock(common.default_conv, in_channels, out_channels, 3, bias=True, act=nn.PReLU())


class DCM(nn.Module):
    def __init__(self, scale=4, n_colors=3):
        super().__init__()
        self.scale = scale
        widths = (n_colors,) + FEATURE_WIDTHS
        for k in range(len(FEATURE_WIDTHS)):
            setattr(self, f"fe_conv{k + 1}", conv_prelu(widths[k], widths[k + 1]))
        skip_feats = FEATURE_WIDTHS[0] + FEATURE_WIDTHS[-1]
        self.re_a = conv_prelu(skip_feats, BRANCH_A_FEATS)
        self.re_b1 = conv_prelu(skip_feats, BRANCH_B_FEATS)
        self.re_b2 = conv_prelu(BRANCH_B_FEATS, BRANCH_B_FEATS)
        up_feats = BRANCH_A_FEATS + BRANCH_B_FEATS
        self.re_u = common.Upsampler(common.default_conv, scale, up_feats, act=False)
        self.re_r = common.default_conv(up_feats, n_colors, 1)

    def feature_layers(self):
        return [getattr(self, f"fe_conv{k + 1}") for k in range(len(FEATURE_WIDTHS))]

    def forward(self, x):
        residual = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        first = self.fe_conv1(x)
        last = first
        for layer in self.feature_layers()[1:]:
            last = layer(last)
        skip = torch.cat((first, last), dim=1)
        branches = torch.cat((self.re_a(skip), self.re_b2(self.re_b1(skip))), dim=1)
        return self.re_r(self.re_u(branches)) + residual


def settings_from_state_dict(state):
    """Flags an official state_dict implies: the band count, from its first convolution (the rest is fixed)."""
    return common.bands_of(state, "fe_conv1.0.weight")


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   settings_from_state_dict=settings_from_state_dict)
