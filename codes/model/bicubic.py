"""BICUBIC: MATLAB-bicubic upsampling as a network with no parameters (the baseline every SR paper reports).

It uses the weights of the one MATLAB `imresize` implementation (imresize.contributions), applied as two dense
matrix products, so it runs on any device and any number of bands, and deploys without a checkpoint. Like MATLAB's
imresize on double data it does not round between the two passes (MATLAB on uint8 does, which moves some pixels by
a level or two); the result is rounded once, when it is written.
"""
import numpy as np
import torch
import torch.nn as nn

import imresize
from model.spec import NetworkSpec

DEFAULT_TILE = 0  # no receptive field to speak of: whole images are cheap
PARAMETER_FREE = True  # deploys without a checkpoint


def make_model(cfg):
    return Bicubic(cfg.scale)


def resize_matrix(in_length, scale, device, dtype):
    """(out, in) matrix M such that M @ signal is MATLAB's bicubic resize of a 1-D signal by `scale`."""
    out_length = in_length * scale
    weights, indices = imresize.contributions(in_length, out_length, float(scale))
    matrix = np.zeros((out_length, in_length))
    # Built in numpy, so an ONNX export holds the matrices as constants (the exporter's accumulating index_put
    # computed wrong sums where mirrored border taps share an input pixel).
    np.add.at(matrix, (np.arange(out_length)[:, None], indices), weights)
    return torch.from_numpy(matrix).to(device=device, dtype=dtype)


class Bicubic(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        h, w = x.shape[-2:]
        rows = resize_matrix(h, self.scale, x.device, x.dtype)
        cols = resize_matrix(w, self.scale, x.device, x.dtype)
        return rows @ x @ cols.T


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, parameter_free=PARAMETER_FREE)
