"""HSENet: hybrid-scale self-similarity exploitation network (Lei & Shi, IEEE TGRS 2021).

A faithful re-implementation of the official code (github.com/Shaosifan/HSENet): same module tree and
state_dict keys, so official checkpoints load with ``load_state_dict(sd, strict=True)``.

Structure (n_feats = 64 and 10 basic modules by default):

- head: mean shift (``sub_mean``), 3x3 conv;
- body: ``body_modulist`` of basic modules, with a global residual around the whole body. A basic module is
  two conv+ReLU blocks (``head``), one HSEM (``body.0``), two conv+ReLU blocks (``tail``) and a residual;
- HSEM (hybrid-scale self-similarity exploitation module): one SSEM at full scale (``base_scale``) and one on a
  bilinear half-size copy (``down_scale``), upsampled back to the exact full size; a cross-scale non-local
  block (``NonLocal_base``: query from the half-scale branch, key/value and residual from the full-scale one)
  fuses them, then a conv+ReLU block (``tail``) and a residual;
- SSEM (single-scale self-similarity exploitation module): conv block ``head``; main branch ``MB`` (two conv
  blocks) gated by sigmoid of the attention branch ``AB`` (non-local block, then 1x1 conv); conv block
  ``tail``; residual;
- tail: EDSR sub-pixel upsampler and a 3x3 conv back to n_colors, then mean shift back (``add_mean``).

The non-local blocks normalise the softmax over the key axis (the official reference outputs are reproduced
bit for bit with ``dim=-1``). ``attention='naive'`` runs the official matmul-softmax-matmul code, which
materialises an (HW x HW) matrix (about 32 GB for a 300x300 input); ``attention='fast'`` (default) gives the
same result up to float rounding through the fused, memory-efficient
``torch.nn.functional.scaled_dot_product_attention`` and runs the network channels-last (faster CPU convs,
and the attention inputs become views). Fusing the three 1x1 projections into one conv was measured and
gave nothing on CPU, so it is not done.

Under --precision bf16 (autocast) the convolutions of the basic modules run in bf16, and these stay fp32: the head,
the global residual and the tail, each basic module's last conv block (it writes into the trunk), and the non-local
blocks' projections and products (their logits have no temperature, so bf16 rounding would move them by whole units).
"""
import torch
import torch.nn.functional as F
from torch import nn

from errors import UserError
from model import common
from model.spec import NetworkSpec

UC_MERCED_RGB_MEAN = common.UC_MERCED_RGB_MEAN
# Deploy: the non-local attention is global within a tile, so tiles never equal the whole image exactly and cost
# grows with the square of the tile area; 128 keeps UC Merced x2 (LR 128) whole and bounds the cost of scenes.
OWN_MEMORY_LAYOUT = True  # channels-last only with the fast attention, which is written for it (see HSENet)
DEFAULT_TILE = 128
DEFAULT_TILE_OVERLAP = 32


def make_model(cfg):
    """HSENet from the resolved configuration (option.py's defaults are the official ones)."""
    return HSENET(scale=cfg.scale, n_colors=cfg.n_colors, rgb_range=cfg.rgb_range, n_feats=cfg.n_feats,
                  n_basic_modules=cfg.n_basic_modules, data_mean=cfg.data_mean, attention=cfg.attention)


def conv_block(n_feats, kernel_size=3):
    """Official ``common.BasicBlock``: conv + ReLU (keys ``0.weight``/``0.bias``)."""
    return common.BasicBlock(common.default_conv, n_feats, n_feats, kernel_size, bias=True, act=nn.ReLU(True))


class NonLocalBlock2D(nn.Module):
    """Embedded-Gaussian non-local block: ``x + W(softmax(theta(q)^T phi(x)) g(x))``.

    Called with one input it is the self-similarity block of SSEM; called as ``block(x, query)`` it is HSEM's
    cross-scale block: key, value and residual come from ``x``, the query from ``query`` (same spatial size).
    ``W`` starts at zero, as in the official code, so a fresh block is the identity.
    """

    def __init__(self, in_channels, inter_channels, attention="fast"):
        super().__init__()
        self.inter_channels = inter_channels
        self.attention = attention
        self.g = nn.Conv2d(in_channels, inter_channels, 1)
        self.W = nn.Conv2d(inter_channels, in_channels, 1)
        nn.init.zeros_(self.W.weight)
        nn.init.zeros_(self.W.bias)
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, inter_channels, 1)

    def forward(self, x, query=None):
        # The logits have no 1/sqrt(d) temperature, so bf16 rounding of theta and phi would move them by whole units:
        # projections and products run in fp32 under autocast.
        if self.attention == "naive":
            y = common.in_fp32(self._naive_attention, x, x if query is None else query)
        else:
            y = common.in_fp32(self._fast_attention, x, x if query is None else query)
        return self.W(y) + x

    def _naive_attention(self, x, query):
        """The official code, op for op: materialises the (B, HW, HW) affinity matrix."""
        batch, inter = x.size(0), self.inter_channels
        g_x = self.g(x).view(batch, inter, -1).permute(0, 2, 1)
        theta_x = self.theta(query).view(batch, inter, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(batch, inter, -1)
        f_div_c = F.softmax(torch.matmul(theta_x, phi_x), dim=-1)
        y = torch.matmul(f_div_c, g_x).permute(0, 2, 1).contiguous()
        return y.view(batch, inter, *query.shape[2:])

    def _fast_attention(self, x, query):
        """Same maths through the fused attention kernel, which never holds the HW x HW matrix."""
        q, k, v = (as_sequence(t) for t in (self.theta(query), self.phi(x), self.g(x)))
        # scale=1: the official block has no 1/sqrt(d) temperature.
        y = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        # (B, 1, HW, C) is the channels_last layout of (B, C, H, W). Viewed as (B, H, W, C) and permuted, it has
        # proper channels_last strides; a reshape of the transpose gives the batch dimension a stride that makes the
        # next conv copy its input to NCHW and run several times slower.
        return y.view(x.size(0), *query.shape[2:], self.inter_channels).permute(0, 3, 1, 2)


def as_sequence(features):
    """(B, C, H, W) -> (B, 1, HW, C) for the attention kernel, copying only if channels are not unit-stride
    (the fused kernel is several times slower on a channel-strided input)."""
    seq = features.flatten(2).transpose(1, 2).unsqueeze(1)
    return seq if seq.stride(-1) == 1 else seq.contiguous()


class SSEM(nn.Module):
    """Single-scale self-similarity exploitation module: ``x + tail(MB(h) * sigmoid(AB(h)))``, ``h = head(x)``."""

    def __init__(self, n_feats, kernel_size=3, attention="fast"):
        super().__init__()
        self.head = nn.Sequential(conv_block(n_feats, kernel_size))
        self.MB = nn.Sequential(conv_block(n_feats, kernel_size), conv_block(n_feats, kernel_size))
        self.AB = nn.Sequential(NonLocalBlock2D(n_feats, n_feats // 2, attention),
                                nn.Conv2d(n_feats, n_feats, 1))
        self.sigmoid = nn.Sequential(nn.Sigmoid())
        self.tail = nn.Sequential(conv_block(n_feats, kernel_size))

    def forward(self, x):
        x_head = self.head(x)
        gated = self.MB(x_head) * self.sigmoid(self.AB(x_head))
        return x + self.tail(gated)


class HSEM(nn.Module):
    """Hybrid-scale self-similarity exploitation module: SSEMs at full and half scale, fused cross-scale."""

    def __init__(self, n_feats, kernel_size=3, attention="fast"):
        super().__init__()
        self.base_scale = nn.Sequential(SSEM(n_feats, kernel_size, attention))
        self.down_scale = nn.Sequential(SSEM(n_feats, kernel_size, attention))
        self.tail = nn.Sequential(conv_block(n_feats, kernel_size))
        self.NonLocal_base = NonLocalBlock2D(n_feats, n_feats // 2, attention)

    def forward(self, x):
        x_base = self.base_scale(x)
        # Official: scale_factor=0.5 (odd sides round down), align_corners=False, then back to the exact size.
        x_down = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        x_down = self.down_scale(x_down)
        x_down = F.interpolate(x_down, size=x_base.shape[2:], mode="bilinear", align_corners=False)
        fused = self.NonLocal_base(x_base, x_down)
        return x + self.tail(fused)


class BasicModule(nn.Module):
    """HSENet basic module: two conv blocks, one HSEM, two conv blocks, residual."""

    def __init__(self, n_feats, kernel_size=3, attention="fast"):
        super().__init__()
        self.head = nn.Sequential(*[conv_block(n_feats, kernel_size) for _ in range(2)])
        self.body = nn.Sequential(HSEM(n_feats, kernel_size, attention))
        self.tail = nn.Sequential(*[conv_block(n_feats, kernel_size) for _ in range(2)])

    def forward(self, x):
        h = self.body(self.head(x))
        *inner, last = self.tail
        for block in inner:
            h = block(h)
        # The last conv block writes into the trunk: fp32 under autocast, or its bf16 rounding accumulates over the
        # modules (a small trained HSENet: 98.2 % identical 8-bit pixels to fp32 with it in bf16, 99.2 % without).
        return x + common.in_fp32(last, h)


class HSENET(nn.Module):
    """HSENet. ``data_mean``: per-band means in [0, 1] (None: UC Merced RGB mean for 3 bands, zeros otherwise);
    ``attention``: 'fast' or 'naive'."""

    def __init__(self, scale, n_colors=3, rgb_range=1.0, n_feats=64, n_basic_modules=10, data_mean=None,
                 attention="fast"):
        super().__init__()
        kernel_size = 3
        band_mean = common.band_mean_for(n_colors, data_mean, UC_MERCED_RGB_MEAN)

        self.n_BMs = n_basic_modules
        self.sub_mean = common.MeanShift(rgb_range, band_mean)
        self.head = nn.Sequential(common.default_conv(n_colors, n_feats, kernel_size))
        self.body_modulist = nn.ModuleList(
            [BasicModule(n_feats, kernel_size, attention) for _ in range(self.n_BMs)])
        self.tail = nn.Sequential(
            common.Upsampler(common.default_conv, scale, n_feats, act=False),
            common.default_conv(n_feats, n_colors, kernel_size))
        self.add_mean = common.MeanShift(rgb_range, band_mean, sign=1)
        # Channels-last makes the CPU convs faster and the attention inputs views; the official path keeps NCHW.
        # The weights are stored channels-last too, or every conv would convert its weight on every call.
        self.channels_last = attention == "fast"
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x):
        if min(x.shape[-2:]) < 2:
            raise UserError(f"HSENet needs LR inputs of at least 2x2 pixels (its half-scale branch halves them), "
                            f"got {x.shape[-2]}x{x.shape[-1]}")
        if self.channels_last:
            return self._forward(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return self._forward(x)

    def _forward(self, x):
        # Under autocast (--precision bf16) the basic modules run in bf16 while the head, the global residual and
        # the tail stay fp32: their rounding would reach the output unattenuated.
        x = common.in_fp32(lambda t: self.head(self.sub_mean(t)), x)
        body = x
        for module in self.body_modulist:
            body = module(body)
        return common.in_fp32(lambda t: self.add_mean(self.tail(t)), x + body)


def settings_from_state_dict(state):
    """Flags an official state_dict implies: the band count and n_feats from its head, n_basic_modules from its
    body, and the value range it was trained on (1 or 255) from its mean shift, which stores -rgb_range * UC Merced
    mean (left out when the bias is not a multiple of that mean)."""
    head = state.get("head.0.weight")
    if head is None:
        return {}
    settings = {**common.bands_of(state, "head.0.weight"), "n_feats": int(head.shape[0]),
                "n_basic_modules": common.count_indexed(state, "body_modulist.")}
    rgb_range = common.rgb_range_from_mean_shift(state, UC_MERCED_RGB_MEAN)
    if rgb_range is not None:
        settings["rgb_range"] = rgb_range
    return settings


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   own_memory_layout=OWN_MEMORY_LAYOUT, settings_from_state_dict=settings_from_state_dict)
