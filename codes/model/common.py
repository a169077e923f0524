"""Blocks shared by the networks: EDSR-style convolutional blocks and the mean shift (BASIC, HSENet, EDSR, RCAN,
TransENet), and the Swin window-attention machinery (SwinIR, ConvFormerSR)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError

# RGB means in [0, 1] that the official mean shifts remove: DIV2K's (EDSR-PyTorch's networks, EDSR and RCAN, and
# SwinIR) and UC Merced's (the HSENet and TransENet code).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
UC_MERCED_RGB_MEAN = (0.4916, 0.4991, 0.4565)


def in_fp32(fn, *tensors):
    """`fn(*tensors)` in float32 even under autocast (--precision bf16): for the parts whose rounding would reach the
    output, i.e. the layers next to it, attention logits and sums over many products. Without autocast it is a
    plain call (float32 tensors pass through unchanged)."""
    with torch.autocast(tensors[0].device.type, enabled=False):
        return fn(*(t.float() for t in tensors))


def in_autocast_dtype(x):
    """`x` cast to the autocast dtype when autocast is on for its device, else unchanged. The next matrix product
    would cast it anyway; casting once where one normalised tensor feeds several products, or is shuffled first
    (window partition, cyclic shift), saves the repeated casts and moves half the bytes."""
    device = x.device.type
    return x.to(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else x


class DropPath(nn.Module):
    """Stochastic depth per sample (SwinIR's and ConvFormerSR's drop_path): in training each sample's residual
    branch is dropped with probability `p` and the kept ones are scaled by 1 / (1 - p); identity in eval. It draws
    its Bernoulli noise as torchvision's StochasticDepth in "row" mode does, so runs and checkpoints of either agree;
    it lives here because importing torchvision.ops imports torch._dynamo, a second at every start."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self):
        return f"p={self.p}"


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
    """EDSR residual block without batch norm: conv-ReLU-conv, scaled, plus the input.

    `attention` (a module, e.g. RCAN's channel attention) is appended to the body after the second conv, which
    makes the block RCAN's RCAB (official key `body.3`).
    """

    def __init__(self, conv, n_feats, kernel_size, bias=True, act=None, res_scale=1.0, attention=None):
        super().__init__()
        act = act if act is not None else nn.ReLU(True)
        layers = [conv(n_feats, n_feats, kernel_size, bias=bias), act, conv(n_feats, n_feats, kernel_size, bias=bias)]
        if attention is not None:
            layers.append(attention)
        self.body = nn.Sequential(*layers)
        self.res_scale = res_scale

    def forward(self, x):
        # One pass over memory instead of a multiply and an add (and none wasted on res_scale 1, RCAN's).
        return torch.add(x, self.body(x), alpha=self.res_scale)


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


class MeanShiftedResidualNet(nn.Module):
    """The EDSR skeleton (also RCAN's): mean shift, a 3x3 head conv, a body of blocks and a conv with a global
    residual, the sub-pixel upsampler and a conv back to the bands, mean shift back. `blocks` are the body's blocks;
    the official key names (sub_mean, head, body, tail, add_mean) are kept."""

    def __init__(self, scale, n_colors, rgb_range, n_feats, band_mean, blocks, conv=default_conv):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range, band_mean)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.body = nn.Sequential(*blocks, conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(Upsampler(conv, scale, n_feats), conv(n_feats, n_colors, 3))
        self.add_mean = MeanShift(rgb_range, band_mean, sign=1)

    def forward(self, x):
        # Under autocast (--precision bf16) the head and the tail stay fp32 (see in_fp32).
        x = in_fp32(lambda t: self.head(self.sub_mean(t)), x)
        x = self.body(x) + x
        return in_fp32(lambda t: self.add_mean(self.tail(t)), x)


def band_mean_for(n_colors, data_mean, rgb_mean):
    """The per-band mean a mean shift removes: `data_mean` if given, else the network's `rgb_mean` for 3 bands,
    else zeros (the official mean shifts are RGB only)."""
    if data_mean is None:
        return tuple(rgb_mean) if n_colors == 3 else (0.0,) * n_colors
    if len(data_mean) != n_colors:
        raise UserError(f"data_mean has {len(data_mean)} values but n_colors is {n_colors}: give one mean per band")
    return tuple(float(m) for m in data_mean)


def rgb_range_from_mean_shift(state, rgb_mean, key="sub_mean.bias"):
    """The --rgb_range an official state_dict was trained with: its mean shift stores -rgb_range * rgb_mean.
    None when the bias is absent (or holds no values: the meta device) or is not a positive multiple of that mean."""
    bias = state.get(key)
    if bias is None or bias.is_meta or bias.numel() != len(rgb_mean):
        return None
    ranges = -bias.double() / torch.tensor(rgb_mean, dtype=torch.float64)
    if float(ranges.min()) <= 0 or float(ranges.max() - ranges.min()) > 1e-3 * float(ranges.max()):
        return None
    return round(float(ranges.mean()), 3)


def bands_of(state, first_conv):
    """{"n_colors": the input bands of the state_dict's first convolution `first_conv`}, or {} when it is absent."""
    weight = state.get(first_conv)
    return {} if weight is None or weight.dim() != 4 else {"n_colors": int(weight.shape[1])}


def window_from_bias_table(table):
    """The attention window of a relative-position bias table, which has (2 * window - 1) ** 2 rows."""
    side = round(int(table.shape[0]) ** 0.5)
    return (side + 1) // 2


def count_indexed(keys, prefix):
    """How many numbered sub-modules `<prefix><i>.` the state_dict keys name (i = 0, 1, ...)."""
    indices = set()
    for key in keys:
        if key.startswith(prefix):
            head = key[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                indices.add(int(head))
    return len(indices)


# ---------------------------------------------------------------------------------------------------------------
# Swin window attention (SwinIR; ConvFormerSR is derived from it). Module and parameter names follow SwinIR, so
# official state_dicts load once their derived buffers are dropped (`drop_derived_swin_buffers`).

SHIFT_MASK_VALUE = -100.0  # the official (Swin) value for pairs of tokens from different regions of a shifted window
# Combined bias+shift masks above this many elements are rebuilt per call instead of cached: one per shifted block
# would otherwise pin a lot of memory on large inputs, and rebuilding costs little next to the attention itself.
MAX_CACHED_MASK_ELEMENTS = 1 << 23
# Buffers the official code saves although they follow from the window size and the training size.
SWIN_DERIVED_BUFFER_SUFFIXES = (".relative_position_index", ".attn_mask")


def drop_derived_swin_buffers(state_dict):
    """Drop the derived buffers official Swin state_dicts hold (recomputed here); idempotent, the rest unchanged."""
    return {k: v for k, v in state_dict.items() if not k.endswith(SWIN_DERIVED_BUFFER_SUFFIXES)}


def swin_window(img_size, window_size):
    """(window, shifted): Swin's rule, a training size no larger than the window becomes the window, unshifted."""
    return (window_size, True) if img_size > window_size else (img_size, False)


def window_partition(x, window_size):
    """(B, H, W, C) -> (B * nW, window_size * window_size, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, c)


def window_reverse(windows, window_size, height, width):
    """Inverse of `window_partition`: (B * nW, window_size * window_size, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, height // window_size, width // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


def relative_position_index(window_size):
    """Index into the (2w-1)^2 bias table for every (query, key) pair of a window, shape (w*w, w*w)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return relative[..., 0] * (2 * window_size - 1) + relative[..., 1]


def shifted_window_mask(height, width, window_size, shift, device=None):
    """(nW, N, N) additive mask: -100 between tokens that the cyclic shift brought together from different regions."""
    regions = torch.zeros(1, height, width, 1, device=device)
    bands = (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None))
    for label, (rows, cols) in enumerate((r, c) for r in bands for c in bands):
        regions[:, rows, cols, :] = label
    labels = window_partition(regions, window_size).squeeze(-1)
    different = labels.unsqueeze(1) != labels.unsqueeze(2)
    return torch.zeros(different.shape, device=device).masked_fill(different, SHIFT_MASK_VALUE)


def channel_last_to_tokens(x):
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_channel_first(x, height, width):
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], -1, height, width)


def pad_bottom_right(x, pad_h, pad_w):
    """Reflect-pad (B, C, H, W) by pad_h rows at the bottom and pad_w columns at the right (replicate where
    reflection cannot reach)."""
    if not (pad_h or pad_w):
        return x
    height, width = x.shape[2:]
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def pad_to_multiple(x, multiple):
    """Reflect-pad bottom/right to a multiple of `multiple` (SwinIR's `check_image_size`)."""
    height, width = x.shape[2:]
    return pad_bottom_right(x, -height % multiple, -width % multiple)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative-position bias (Swin).

    `attention='naive'` is the official computation (q*scale @ k^T + bias + mask, softmax, @ v). 'fast' pre-adds the
    bias and the shift mask into one additive mask, cached per (input size, device, dtype) whenever the bias table
    cannot change under it, and hands it to scaled_dot_product_attention (in fp32 on the CPU, even under autocast);
    only when that mask needs a gradient on the CPU (training) does it use one explicit matmul-add-softmax-matmul
    instead.
    """

    def __init__(self, dim, window_size, num_heads, attention="fast"):
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.attention = attention
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # Derived from the window size, so not saved: official files' copies are dropped on conversion.
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = Linear(dim, dim * 3)
        self.proj = Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self._shift_cache = (None, None)
        self._mask_cache = (None, None)

    def relative_position_bias(self):
        """(nH, N, N) bias gathered from the table."""
        n = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def shift_mask(self, height, width, shift, device):
        """The cached (nW, N, N) region mask of a shifted block, or None for an unshifted one."""
        if not shift:
            return None
        if torch.jit.is_tracing():  # a trace computes the mask in its graph, whatever an earlier call cached
            return shifted_window_mask(height, width, self.window_size, shift, device)
        key = (height, width, shift, device)
        if self._shift_cache[0] != key:
            self._shift_cache = (key, shifted_window_mask(height, width, self.window_size, shift, device))
        return self._shift_cache[1]

    def bias_takes_gradients(self):
        """Whether this call trains the bias table: then the mask is rebuilt and needs a gradient."""
        return torch.is_grad_enabled() and self.relative_position_bias_table.requires_grad

    def combined_mask(self, height, width, shift, dtype):
        """Bias plus shift mask as one additive mask: (1, nH, N, N) unshifted, (1, nW * nH, N, N) shifted.

        Rebuilt on every call while the bias table takes gradients (training) and in a trace (an ONNX export: a
        cached mask would enter the graph as a constant of the size it was cached for); otherwise cached, keyed on
        the table's version so that loading weights or an optimizer step invalidates it.
        """
        table = self.relative_position_bias_table
        reusable = not self.bias_takes_gradients() and not torch.jit.is_tracing()
        key = (height, width, shift, table.device, dtype, table._version, table.data_ptr())
        if reusable and self._mask_cache[0] == key:
            return self._mask_cache[1]
        bias = self.relative_position_bias()
        region = self.shift_mask(height, width, shift, table.device)
        if region is not None:
            bias = (region.unsqueeze(1) + bias.unsqueeze(0)).flatten(0, 1)
        mask = bias.unsqueeze(0).to(dtype)  # 4-D: the fused CPU/CUDA kernels reject 3-D masks
        if reusable and mask.numel() <= MAX_CACHED_MASK_ELEMENTS:
            self._mask_cache = (key, mask)
        return mask

    def forward(self, windows, height, width, shift):
        """windows: (B * nW, N, C) tokens of the (shifted) padded image of size height x width."""
        b_, n, c = windows.shape
        qkv = self.qkv(windows).view(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.attention == "naive":
            out = self.naive_attention(qkv, height, width, shift)
        else:
            on_cpu = qkv.device.type == "cpu"
            # No fused CPU kernel returns a mask gradient, and SDPA's math fallback is slower than an explicit
            # product. The fused kernel runs fp32 on the CPU even under autocast: at a window's 64 tokens and 16-30
            # wide heads it is slower in bf16.
            explicit = on_cpu and self.bias_takes_gradients()
            fused_fp32 = on_cpu and not explicit
            mask = self.combined_mask(height, width, shift, torch.float32 if fused_fp32 else qkv.dtype)
            # Group (window, head) pairs so the mask broadcasts over the batch alone: no per-batch copy of it.
            q, k, v = qkv.reshape(3, -1, mask.shape[1], n, c // self.num_heads).unbind(0)
            if explicit:
                out = softmax_fp32((q * self.scale) @ k.transpose(-2, -1) + mask) @ v
            elif fused_fp32:
                out = in_fp32(lambda *qkvm: F.scaled_dot_product_attention(*qkvm, scale=self.scale), q, k, v, mask)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            # reshape, not view: CUDA's fused kernels may return the heads in another memory order
            out = out.reshape(b_, self.num_heads, n, -1)
        return self.proj(out.transpose(1, 2).reshape(b_, n, c))

    def naive_attention(self, qkv, height, width, shift):
        """The official computation, step by step."""
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1) + self.relative_position_bias().unsqueeze(0)
        region = self.shift_mask(height, width, shift, qkv.device)
        if region is not None:
            n_windows, n = region.shape[0], attn.shape[-1]
            attn = attn.view(-1, n_windows, self.num_heads, n, n) + region.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        return softmax_fp32(attn) @ v


def softmax_fp32(logits):
    """Softmax over the last axis with fp32 statistics (max, exponentials, sum) whatever the logits' dtype, returned
    in that dtype; the fused attention kernels do the same internally."""
    return logits.softmax(dim=-1, dtype=torch.float32).to(logits.dtype)


def shifted_window_attention(attn, x, shift):
    """(Shifted-)window attention over a normalised (B, H, W, C) image: cyclic shift by -shift, attention per window,
    shift back; returns (B, H*W, C) tokens."""
    b, height, width, c = x.shape
    x = in_autocast_dtype(x)
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    windows = attn(window_partition(x, attn.window_size), height, width, shift)
    x = window_reverse(windows, attn.window_size, height, width)
    if shift:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    return x.reshape(b, height * width, c)


def set_attention(network, mode):
    """Switch every window attention in `network` between 'fast' and 'naive' (option.ATTENTION_MODES; the same
    weights serve both)."""
    for module in network.modules():
        if isinstance(module, WindowAttention):
            module.attention = mode


# oneDNN's linear, the kernel torch.compile's CPU backend calls; a private operator, so its presence is checked.
ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class Linear(nn.Linear):
    """nn.Linear (the same parameters, keys and initialisation) whose fp32 inference on the CPU runs oneDNN's
    linear, which adds the bias inside the matrix product; aten's addmm first copies the broadcast bias into the
    output (about 15 % of its time on 4096 tokens). At SwinIR's widths (180 to 540) the linear runs 1.2-1.4x faster
    and the whole network about 1.08x (TransENet 1.08x too; ConvFormerSR's 96-wide layers gain nothing overall).
    Training, autocast, ONNX export, torch.compile and other devices take nn.Linear's path."""

    def forward(self, x):
        if self._onednn_applies(x):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return super().forward(x)

    def _onednn_applies(self, x):
        return (ONEDNN_LINEAR and x.device.type == "cpu" and x.dtype == self.weight.dtype == torch.float32
                and x.is_contiguous() and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
                and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
                and not torch.onnx.is_in_onnx_export())


class Mlp(nn.Module):
    """Transformer feed-forward: Linear, GELU, Linear."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    """Image to tokens (patch size 1), then LayerNorm."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(channel_last_to_tokens(x))


def init_swin_weights(module):
    """SwinIR's initialisation: truncated-normal Linear weights, zero biases, unit LayerNorms; convs keep PyTorch's."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
