"""FSRCNN: fast super-resolution convolutional neural network.

C. Dong, C. C. Loy and X. Tang, "Accelerating the Super-Resolution Convolutional Neural Network", ECCV 2016.
Official code of this version: the FSRCNN baseline of github.com/Shaosifan/TransENet (codes/model/fsrcnn.py, itself
after github.com/yjn870/FSRCNN-pytorch); state_dict keys are the same, so its checkpoints load with strict=True.

It works on the LR image and upsamples only at the end:

- feature extraction: 5x5 conv to d maps (`first_part`);
- shrinking: 1x1 conv to s maps; mapping: m 3x3 convs (s -> s); expanding: 1x1 conv back to d maps (`mid_part`);
- deconvolution: a 9x9 transposed conv with stride = scale to the bands at the HR size (`last_part`).

Where the official code differs from the paper, it is followed (and its fixtures reproduced): d = 56, s = 36 and
m = 8 (the paper's best setting is d = 56, s = 12, m = 4), and one PReLU module with a single slope is shared by all
eleven activations, so the state_dict repeats its weight under each position (`first_part.1.weight`,
`mid_part.1.weight`, ...) while it is one parameter. PyTorch's default initialisation is kept (the official
`_initialize_weights` is never called). Any band count works.
"""
from torch import nn

from model import common
from model.spec import NetworkSpec

DECONV_KERNEL = 9
# Receptive-field radius in LR pixels: 2 (5x5) + 8 (mapping convs) + 2 (the 9x9 deconvolution reaches 4 HR pixels,
# i.e. 4 / scale <= 2 LR pixels) = 12, so an overlap of 4 x 12 = 48 makes tiles blend exactly (see tiling.py).
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 48


def make_model(cfg):
    return FSRCNN(scale=int(cfg.scale), n_colors=int(cfg.n_colors))


class FSRCNN(nn.Module):
    def __init__(self, scale=4, n_colors=3, d=56, s=36, m=8):
        super().__init__()
        act = nn.PReLU()  # one module, hence one slope, for every activation (official code)
        conv = common.default_conv
        self.first_part = nn.Sequential(conv(n_colors, d, 5), act)
        mapping = []
        for _ in range(m):
            mapping += [conv(s, s, 3), act]
        self.mid_part = nn.Sequential(conv(d, s, 1), act, *mapping, conv(s, d, 1), act)
        self.last_part = nn.ConvTranspose2d(d, n_colors, DECONV_KERNEL, stride=scale, padding=DECONV_KERNEL // 2,
                                            output_padding=scale - 1)

    def forward(self, x):
        return self.last_part(self.mid_part(self.first_part(x)))


def settings_from_state_dict(state):
    """Flags an official state_dict implies: the band count, from its first convolution (the rest is fixed)."""
    return common.bands_of(state, "first_part.0.weight")


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   settings_from_state_dict=settings_from_state_dict)
