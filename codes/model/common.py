"""Blocks shared by the networks (EDSR-style)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError


def default_conv(in_channels, out_channels, kernel_size, bias=True):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Module):
    """Subtract (sign=-1) or add (sign=+1) a per-band mean (in [0, 1], scaled to the network's `rgb_range`), as a
    frozen 1x1 conv.

    The official code made this an nn.Conv2d with `requires_grad = False` on the module, which froze
    nothing. Here weight and bias are buffers: never trained, yet saved under the official key names
    (`weight`, `bias`) so official state_dicts load unchanged.
    """

    def __init__(self, rgb_range, band_mean, band_std=None, sign=-1):
        super().__init__()
        n = len(band_mean)
        std = torch.tensor(band_std if band_std is not None else [1.0] * n, dtype=torch.float32)
        mean = torch.tensor(band_mean, dtype=torch.float32)
        self.register_buffer("weight", torch.eye(n).view(n, n, 1, 1) / std.view(n, 1, 1, 1))
        self.register_buffer("bias", sign * rgb_range * mean / std)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)


class ResBlock(nn.Module):
    """EDSR residual block without batch norm: conv-ReLU-conv, scaled, plus the input."""

    def __init__(self, conv, n_feats, kernel_size, bias=True, act=None, res_scale=1.0):
        super().__init__()
        act = act if act is not None else nn.ReLU(True)
        self.body = nn.Sequential(conv(n_feats, n_feats, kernel_size, bias=bias), act,
                                  conv(n_feats, n_feats, kernel_size, bias=bias))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


class Upsampler(nn.Sequential):
    """Sub-pixel upsampler: conv + PixelShuffle(2) per factor of 2, or one conv + PixelShuffle(3)."""

    def __init__(self, conv, scale, n_feats, bn=False, act=False, bias=True):
        layers = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv(n_feats, 4 * n_feats, 3, bias), nn.PixelShuffle(2)]
                if bn:
                    layers.append(nn.BatchNorm2d(n_feats))
                if act:
                    layers.append(nn.ReLU(True))
        elif scale == 3:
            layers += [conv(n_feats, 9 * n_feats, 3, bias), nn.PixelShuffle(3)]
            if bn:
                layers.append(nn.BatchNorm2d(n_feats))
            if act:
                layers.append(nn.ReLU(True))
        else:
            raise UserError(f"--scale {scale} is not supported: use 2, 3 or 4")
        super().__init__(*layers)
