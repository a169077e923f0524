"""LGCNet: local-global combined network for remote-sensing super-resolution.

S. Lei, Z. Shi and Z. Zou, "Super-Resolution for Remote Sensing Images via Local-Global Combined Network", IEEE
Geoscience and Remote Sensing Letters, 2017. Official code of this version: the LGCNet baseline of
github.com/Shaosifan/HSENet (codes/model/lgcnet.py); state_dict keys are the same, so its checkpoints load with
strict=True.

On the bicubic-upsampled LR image (`PRE_UPSAMPLED`, see `imresize.opencv_bicubic_upsample`):

- five 3x3 conv + ReLU layers with 32 maps (`conv1`..`conv5`), from local to increasingly global features;
- local-global combination: the outputs of layers 3, 4 and 5 are concatenated and fused by a 5x5 conv to 64 maps
  + ReLU (`conv6`);
- reconstruction: a 3x3 conv (`conv7`) predicts the residual, which is added to the input.

The official `conv7` always has 3 output bands while `conv1` reads --n_colors, so the residual sum only works for
3 bands; other band counts are refused with a UserError rather than changing the architecture.
"""
import torch
from torch import nn

from errors import UserError
from model import common
from model.spec import NetworkSpec

PRE_UPSAMPLED = True
OUTPUT_BANDS = 3
# Receptive-field radius: 5 x 1 (conv1-5) + 2 (conv6) + 1 (conv7) = 8 HR pixels, at most 4 LR pixels (x2), plus 2 LR
# pixels for the bicubic pre-upsampling: 6 LR pixels, so an overlap of 4 x 6 = 24 makes tiles blend exactly.
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 24


def make_model(cfg):
    return LGCNET(n_colors=int(cfg.n_colors))


class LGCNET(nn.Module):
    def __init__(self, n_colors=3, n_feats=32):
        super().__init__()
        if n_colors != OUTPUT_BANDS:
            raise UserError(f"--n_colors {n_colors}: LGCNet's official output layer is fixed to 3 bands, so it only "
                            "takes 3-band data; use another --model for other band counts")
        self.conv1 = nn.Conv2d(n_colors, n_feats, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(n_feats, n_feats, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(n_feats, n_feats, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(n_feats, n_feats, kernel_size=3, padding=1)
        self.conv5 = nn.Conv2d(n_feats, n_feats, kernel_size=3, padding=1)
        self.conv6 = nn.Conv2d(3 * n_feats, 2 * n_feats, kernel_size=5, padding=2)
        self.conv7 = nn.Conv2d(2 * n_feats, OUTPUT_BANDS, kernel_size=3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        f1 = self.relu(self.conv1(x))
        f2 = self.relu(self.conv2(f1))
        f3 = self.relu(self.conv3(f2))
        f4 = self.relu(self.conv4(f3))
        f5 = self.relu(self.conv5(f4))
        combined = self.relu(self.conv6(torch.cat((f3, f4, f5), dim=1)))
        return self.conv7(combined) + x


def settings_from_state_dict(state):
    """Flags an official state_dict implies: the band count, from its first convolution (the rest is fixed)."""
    return common.bands_of(state, "conv1.weight")


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   pre_upsampled=PRE_UPSAMPLED, settings_from_state_dict=settings_from_state_dict)
