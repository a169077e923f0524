"""SRCNN: the super-resolution convolutional neural network.

C. Dong, C. C. Loy, K. He and X. Tang, "Image Super-Resolution Using Deep Convolutional Networks", IEEE TPAMI, 2016
(first as "Learning a Deep Convolutional Network for Image Super-Resolution", ECCV 2014). Official code of this
version: the SRCNN baseline of github.com/Shaosifan/HSENet (codes/model/srcnn.py); state_dict keys are the same, so
its checkpoints load with strict=True.

Three convolutions on the bicubic-upsampled LR image, the paper's 9-5-5 setting with 64 and 32 feature maps:

- patch extraction and representation: 9x9 conv to 64 maps + ReLU (`conv1`);
- non-linear mapping: 5x5 conv to 32 maps + ReLU (`conv2`);
- reconstruction: 5x5 conv back to the bands (`conv3`). No residual.

The input is already at the HR size (`PRE_UPSAMPLED`): the official pipeline upsamples the LR with OpenCV's bicubic
(`imresize.opencv_bicubic_upsample`, its `--cubic_input`). Any band count works.
"""
from torch import nn

from model import common
from model.spec import NetworkSpec

PRE_UPSAMPLED = True
# Receptive-field radius: 4 + 2 + 2 = 8 HR pixels, at most 4 LR pixels (x2), plus 2 LR pixels for the bicubic
# pre-upsampling: 6 LR pixels, so an overlap of 4 x 6 = 24 makes tiles blend exactly (see tiling.py).
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 24


def make_model(cfg):
    return SRCNN(n_colors=int(cfg.n_colors))


class SRCNN(nn.Module):
    def __init__(self, n_colors=3):
        super().__init__()
        self.conv1 = nn.Conv2d(n_colors, 64, kernel_size=9, padding=4)
        self.conv2 = nn.Conv2d(64, 32, kernel_size=5, padding=2)
        self.conv3 = nn.Conv2d(32, n_colors, kernel_size=5, padding=2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.conv3(x)


def settings_from_state_dict(state):
    """Flags an official state_dict implies: the band count, from its first convolution (the rest is fixed)."""
    return common.bands_of(state, "conv1.weight")


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   pre_upsampled=PRE_UPSAMPLED, settings_from_state_dict=settings_from_state_dict)
