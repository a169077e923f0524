"""The VGG perceptual loss (`--loss 1*VGG54`, `1*VGG22`): MSE between VGG19 features of SR and HR.

As in SRGAN (C. Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
CVPR 2017) and EDSR-PyTorch's src/loss/vgg.py, which the HSENet code base (codes/loss/__init__.py) imports:
`VGG<b><c>` is the output of the c-th convolution of the b-th block of an ImageNet-trained VGG19, taken before its
ReLU (EDSR-PyTorch cuts torchvision's `features` after index 7 for VGG22 and after index 34 for VGG54). Inputs in
[0, rgb_range] are scaled to [0, 1] and normalised with the ImageNet mean and std; the HR features carry no
gradient.

Differences from the official code, none of which changes the value of the loss:
- the VGG weights are frozen for real (the official `self.vgg.requires_grad = False` sets an attribute of the
  module and froze nothing; its weights stayed out of the optimizer only because the trainer never gave them to it);
- only the layers up to the chosen convolution are built, and they run in fp32 even under autocast;
- the weights are never downloaded at run time: torchvision's cached file, or `--vgg_weights PATH`.
"""
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError
from loss.base import LossTerm

# VGG19 ("configuration E"): convolutions per block and their channels; each block ends with a 2x2 max pool.
CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's VGG19_Weights.IMAGENET1K_V1 (the weights EDSR-PyTorch's `vgg19(pretrained=True)` loads)
WEIGHTS_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


def conv_index(block, conv):
    """Index in torchvision's `vgg19().features` of the c-th conv of block b (1-based): each conv is followed by a
    ReLU, each block by a max pool."""
    return sum(2 * n + 1 for n in CONVS_PER_BLOCK[:block - 1]) + 2 * (conv - 1)


def parse_layer(name):
    """'VGG54' -> (5, 4); anything that names no VGG19 convolution is a one-line error."""
    digits = name[3:]
    if len(digits) == 2 and digits.isdigit():
        block, conv = int(digits[0]), int(digits[1])
        if 1 <= block <= len(CONVS_PER_BLOCK) and 1 <= conv <= CONVS_PER_BLOCK[block - 1]:
            return block, conv
    raise UserError(f"--loss: {name!r} names no VGG19 convolution; write VGG<block><conv>, e.g. VGG54 (SRGAN, EDSR) "
                    f"or VGG22")


def vgg19_features(last_index):
    """torchvision's `vgg19().features` layers 0..last_index (same indices, so its state_dict keys fit)."""
    layers, in_channels = [], 3
    for n_convs, channels in zip(CONVS_PER_BLOCK, BLOCK_CHANNELS):
        for _ in range(n_convs):
            layers += [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = channels
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers[:last_index + 1])


def expected_shapes():
    """{key: shape} of every weight in a VGG19 `features` state_dict."""
    shapes, in_channels = {}, 3
    for block, (n_convs, channels) in enumerate(zip(CONVS_PER_BLOCK, BLOCK_CHANNELS), 1):
        for conv in range(1, n_convs + 1):
            index = conv_index(block, conv)
            shapes[f"features.{index}.weight"] = (channels, in_channels, 3, 3)
            shapes[f"features.{index}.bias"] = (channels,)
            in_channels = channels
    return shapes


def cached_weights_file():
    """Where torchvision keeps its download of the ImageNet VGG19 (torch.hub's cache, $TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(WEIGHTS_URL)


def missing_weights_message(cached):
    return (f"the VGG loss needs torchvision's ImageNet VGG19 weights, and {cached} does not exist: download "
            f"{WEIGHTS_URL} to that path (torchvision.models.vgg19(weights='IMAGENET1K_V1') does it once) or pass "
            f"--vgg_weights PATH (a VGG19 state_dict)")


def read_vgg19_state(path=""):
    """The `features` weights of a VGG19 state_dict: `path` (--vgg_weights), else torchvision's cached download.
    Never downloads. The file must be a VGG19 state_dict (every `features` weight with its shape; `classifier`
    weights are allowed and ignored); anything else is a one-line error."""
    source = Path(path) if path else cached_weights_file()
    if not source.is_file():
        raise UserError(f"--vgg_weights {source}: no such file" if path else missing_weights_message(source))
    try:
        state = torch.load(source, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # unpickling and zip errors come in many types
        raise UserError(f"{source}: not a readable PyTorch state_dict ({type(err).__name__}); give torchvision's "
                        f"vgg19 file ({WEIGHTS_URL})") from None
    return checked_vgg19_state(state, source)


def checked_vgg19_state(state, source):
    """`state`'s features weights, after a strict check against VGG19 (names, shapes, finite values)."""
    if not isinstance(state, dict):
        raise UserError(f"{source}: not a state_dict (a {type(state).__name__}); give torchvision's vgg19 file")
    shapes = expected_shapes()
    missing = [k for k in shapes if k not in state]
    unexpected = [k for k in state if k not in shapes and not str(k).startswith("classifier.")]
    wrong = [f"{k} {tuple(state[k].shape)} instead of {shapes[k]}" for k in shapes
             if k in state and (not torch.is_tensor(state[k]) or tuple(state[k].shape) != shapes[k])]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            raise UserError(f"{source} is not a VGG19 state_dict: {len(items)} {label} weight(s), e.g. {items[0]}")
    features = {k: state[k].float() for k in shapes}
    bad = [k for k, v in features.items() if not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{source}: weight {bad[0]} holds NaN or Inf values; download the file again")
    return features


def rgb_indices(n_colors, bands):
    """Which bands are red, green and blue (VGG was trained on RGB): from --bands, else 3 bands taken as RGB."""
    if bands:
        missing = [b for b in ("red", "green", "blue") if b not in bands]
        if missing:
            raise UserError(f"--loss VGG needs red, green and blue bands, but --bands {','.join(bands)} has no "
                            f"{missing[0]}")
        return [bands.index(b) for b in ("red", "green", "blue")]
    if n_colors != 3:
        raise UserError(f"--loss VGG needs RGB, but the data have {n_colors} bands: name them with --bands (which "
                        f"must include red, green and blue)")
    return [0, 1, 2]


class VGGLoss(LossTerm):
    """MSE between the VGG19 features (at conv `layer`, e.g. '54') of SR and HR, both in [0, rgb_range]."""

    def __init__(self, layer, rgb_range, features_state, rgb=(0, 1, 2)):
        super().__init__()
        block, conv = parse_layer(f"VGG{layer}")
        last = conv_index(block, conv)
        with torch.device("meta"):  # no random initialisation: the weights are loaded next
            self.vgg = vgg19_features(last)
        self.vgg.load_state_dict({k[len("features."):]: v for k, v in features_state.items()
                                  if int(k.split(".")[1]) <= last}, strict=True, assign=True)
        self.vgg.requires_grad_(False)
        self.vgg.eval()
        self.rgb_range = rgb_range
        self.rgb = list(rgb)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, name, cfg):
        block, conv = parse_layer(name)
        rgb = rgb_indices(cfg.n_colors, cfg.bands)
        return cls(f"{block}{conv}", cfg.rgb_range, read_vgg19_state(cfg.vgg_weights), rgb)

    def features(self, x):
        if self.rgb != [0, 1, 2] or x.shape[1] != 3:
            x = x[:, self.rgb]
        return self.vgg((x.float() / self.rgb_range - self.mean) / self.std)

    def forward(self, sr, hr):
        with torch.autocast(device_type=sr.device.type, enabled=False):  # fp32, whatever the generator runs in
            sr_features = self.features(sr)
            with torch.no_grad():
                hr_features = self.features(hr.detach())
            return F.mse_loss(sr_features, hr_features)
