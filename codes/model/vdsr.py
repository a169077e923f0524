"""VDSR: very deep super-resolution network.

J. Kim, J. K. Lee and K. M. Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks", CVPR 2016.
Official code of this version: the VDSR baseline of github.com/Shaosifan/HSENet (codes/model/vdsr.py); state_dict
keys are the same, so its checkpoints load with strict=True.

Twenty 3x3 convolutions with 64 feature maps on the bicubic-upsampled LR image, and global residual learning (the
network predicts the difference to its input):

- `head`: conv from the bands to 64 maps (each conv of `head` and `body` is a `ConvBNReLU`);
- `body`: 18 conv layers, 64 -> 64;
- `tail`: conv back to the bands, then the input is added.

The paper's layers are conv + ReLU; this version, like the official code (and its fixtures), puts a BatchNorm
between each conv and its ReLU in the 19 head and body layers. The widths are fixed as in the official code (it
ignores --n_feats). The input is already at the HR size (`PRE_UPSAMPLED`, see `imresize.opencv_bicubic_upsample`).
Any band count works.
"""
import torch
import torch.nn.functional as F
from torch import nn

from model import common
from model.spec import NetworkSpec

PRE_UPSAMPLED = True
N_FEATS = 64
N_LAYERS = 20
# Receptive-field radius: 20 layers x 1 = 20 HR pixels, at most 10 LR pixels (x2), plus 2 LR pixels for the bicubic
# pre-upsampling: 12 LR pixels, so an overlap of 4 x 12 = 48 makes tiles blend exactly (see tiling.py).
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 48


def make_model(cfg):
    return VDSR(n_colors=int(cfg.n_colors))


class ConvBNReLU(common.BasicBlock):
    """3x3 conv, BatchNorm, ReLU (official keys `0`, `1`, `2`).

    In evaluation the BatchNorm is a fixed per-channel affine map, so it is folded into the convolution's weights and
    bias on each call: two passes over the feature maps fewer per layer, as onnxruntime's graph optimiser does for
    the exported graph (inference measured about 1.2x faster; the result differs by float rounding only)."""

    def __init__(self, in_channels, out_channels):
        super().__init__(common.default_conv, in_channels, out_channels, 3, bias=True, bn=True, act=nn.ReLU(True))

    def forward(self, x):
        conv, bn, relu = self
        if self.training or not bn.track_running_stats:
            return super().forward(x)
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale.reshape(-1, 1, 1, 1)
        bias = (conv.bias - bn.running_mean) * scale + bn.bias
        return relu(F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups))


class VDSR(nn.Module):
    def __init__(self, n_colors=3, n_feats=N_FEATS, n_layers=N_LAYERS):
        super().__init__()
        self.head = nn.Sequential(ConvBNReLU(n_colors, n_feats))
        self.body = nn.Sequential(*[ConvBNReLU(n_feats, n_feats) for _ in range(n_layers - 2)])
        self.tail = nn.Sequential(common.default_conv(n_feats, n_colors, 3))

    def forward(self, x):
        return self.tail(self.body(self.head(x))) + x


def settings_from_state_dict(state):
    """Flags an official state_dict implies: the band count, from its first convolution (the rest is fixed)."""
    return common.bands_of(state, "head.0.0.weight")


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   pre_upsampled=PRE_UPSAMPLED, settings_from_state_dict=settings_from_state_dict)
