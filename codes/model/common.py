"""Blocks shared by the networks (EDSR-style)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError


def default_conv(in_channels, out_channels, kernel_size, bias=True):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Module):
    """Subtract (sign=-1) or add (sign=+1) a per-band mean, as a frozen 1x1 conv.

    The official code made this an nn.Conv2d with `requires_grad = False` on the module, which froze
    nothing. Here weight and bias are buffers: never trained, yet saved under the official key names
    (`weight`, `bias`) so official state_dicts load unchanged.
    """

    def __init__(self, data_range, band_mean, band_std=None, sign=-1):
        super().__init__()
        n = len(band_mean)
        std = torch.tensor(band_std if band_std is not None else [1.0] * n, dtype=torch.float32)
        mean = torch.tensor(band_mean, dtype=torch.float32)
        self.register_buffer("weight", torch.eye(n).view(n, n, 1, 1) / std.view(n, 1, 1, 1))
        self.register_buffer("bias", sign * data_range * mean / std)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)


class BasicBlock(nn.Sequential):
    """One conv layer, optionally followed by batch norm and an activation (keys `0` conv, then `1`, `2`).

    The official HSENet/TransENet `common.BasicBlock`; its callers always name bias, bn and act explicitly here,
    because the official defaults differ between repositories. `act` is a module instance (or None for none).
    """

    def __init__(self, conv, in_channels, out_channels, kernel_size, bias=True, bn=False, act=None):
        layers = [conv(in_channels, out_channels, kernel_size, bias=bias)]
        if bn:
            layers.append(nn.BatchNorm2d(out_channels))
        if act is not None:
            layers.append(act)
        super().__init__(*layers)


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
