"""ConvFormerSR: a hybrid CNN-Transformer network for remote-sensing super-resolution.

Li et al., "ConvFormerSR: Fusing Transformers and Convolutional Neural Networks for Cross-Sensor Remote Sensing
Imagery Super-Resolution", IEEE TGRS 2024; official code github.com/junjieliwhu/ConvFormerSR (derived from SwinIR).

Two paths run side by side through `num_block` stages:

- the transformer path, a token sequence refined by one RAG (residual attention group) per stage;
- the CNN path, refined by one RCG (residual convolution group) per stage.

After each stage an FFM (feature fusion module) merges both into the next CNN-path input, while the transformer path
keeps its own tokens. Every attention block of a RAG runs Swin window attention next to a conv branch that ends in a
DANet-style CAM (channel attention module).

The Swin machinery (window partition, relative-position bias, shift mask, window attention, MLP, patch embedding)
lives in common.py, shared with SwinIR. Module and parameter names follow the official code, so official state_dicts
load after `convert_official_state_dict` (which only drops the derived buffers `relative_position_index` and
`attn_mask`; both are recomputed here). The official network reproduces the reference fixtures exactly with
`attention='naive'` (the official q @ k^T path) and to ~2e-7 with `attention='fast'` (scaled_dot_product_attention).

The network runs channels-last: features then share the memory layout of the token sequences, so moving between the
two paths costs no copy. Under --precision bf16 (autocast) the RAG blocks and the RCGs run in bf16; the shallow
conv, the reconstruction, the FFMs, each RAG's closing conv and the conv after it, and the CAM stay fp32, and the
attention's softmax statistics are fp32.
"""
import torch
import torch.nn.functional as F
from torch import nn

from errors import UserError
from model import common
from model.common import (  # the Swin machinery shared with SwinIR; re-exported here for callers of this module
    PatchEmbed,
    WindowAttention,
    channel_last_to_tokens,
    init_swin_weights,
    relative_position_index,  # noqa: F401
    shifted_window_mask,  # noqa: F401
    tokens_to_channel_first,
    window_partition,  # noqa: F401
)
from model.spec import NetworkSpec

CONV_BRANCH_WEIGHT = 0.01  # weight of the conv branch in each attention block's residual sum
RCG_BLOCKS = 16
RCG_RES_SCALE = 0.2
UPSAMPLE_FEATURES = 64
# Deploy: window attention and convolutions are local, so memory grows with the tile area only; the overlap is a
# multiple of the window and hides the (small) differences at tile borders.
OWN_MEMORY_LAYOUT = True  # channels-last weights and inputs, set in ConvFormerSR itself
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 32


class CAM(nn.Module):
    """Channel attention module (DANet): channels re-weighted by softmax(rowmax(E) - E), E = X X^T over channels."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        # The Gram matrix sums H*W products: it overflows fp16 and bf16 rounding scrambles its softmax, so fp32.
        with torch.autocast(x.device.type, enabled=False):
            # As (B, H*W, C) tokens, a view of the channels-last features: the re-weighted channels come out in the
            # same layout, so the residual sum reads and writes one layout and the caller's tokens are a view.
            tokens = x.float().permute(0, 2, 3, 1).reshape(b, h * w, c)
            energy = torch.bmm(tokens.transpose(1, 2), tokens)
            attention = (energy.amax(dim=-1, keepdim=True) - energy).softmax(dim=-1)
            out = torch.addcmul(tokens, self.gamma, torch.bmm(tokens, attention.transpose(1, 2)))
        return out.view(b, h, w, c).permute(0, 3, 1, 2)


class ConvBranch(nn.Module):
    """The conv branch of an attention block: conv C->C/3, GELU, conv C/3->C, then CAM."""

    def __init__(self, dim, compress_ratio=3):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(dim, dim // compress_ratio, 3, 1, 1), nn.GELU(),
                                   nn.Conv2d(dim // compress_ratio, dim, 3, 1, 1))
        self.cam = CAM()

    def forward(self, x):
        return self.cam(self.conv1(x))


class EnhancedAttentionBlock(nn.Module):
    """One RAG block: (shifted-)window attention plus a parallel conv branch (with CAM), then the MLP."""

    def __init__(self, dim, num_heads, window_size, shift_size, mlp_ratio, drop_path, attention):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, attention)
        self.drop_path = common.DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = common.Mlp(dim, int(dim * mlp_ratio))
        self.conv_block = ConvBranch(dim)

    def forward(self, x, height, width):
        b, _, c = x.shape
        shortcut = x
        x = common.in_autocast_dtype(self.norm1(x)).view(b, height, width, c)  # read by both branches
        conv_x = self.conv_block(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, height * width, c)
        attended = common.shifted_window_attention(self.attn, x, self.shift_size)
        x = torch.add(shortcut + self.drop_path(attended), conv_x, alpha=CONV_BRANCH_WEIGHT)  # one pass fewer
        return x + self.drop_path(self.mlp(self.norm2(x)))


class AttentionBlocks(nn.Module):
    """The blocks of a RAG; odd blocks shift their windows by half a window (when `shifted`)."""

    def __init__(self, dim, depth, num_heads, window_size, shifted, mlp_ratio, drop_paths, attention):
        super().__init__()
        shifts = [window_size // 2 if shifted and i % 2 else 0 for i in range(depth)]
        self.blocks = nn.ModuleList(
            EnhancedAttentionBlock(dim, num_heads, window_size, shifts[i], mlp_ratio, drop_paths[i], attention)
            for i in range(depth))

    def forward(self, x, height, width):
        for block in self.blocks:
            x = block(x, height, width)
        return x


class RAG(nn.Module):
    """Residual attention group: the attention blocks, a 3x3 conv on the un-embedded features, and a residual."""

    def __init__(self, dim, depth, num_heads, window_size, shifted, mlp_ratio, drop_paths, attention):
        super().__init__()
        self.attn = AttentionBlocks(dim, depth, num_heads, window_size, shifted, mlp_ratio, drop_paths, attention)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x, height, width):
        features = tokens_to_channel_first(self.attn(x, height, width), height, width)
        # fp32 under autocast: with the conv after the RAG this is where the transformer path leaves for the CNN
        # path; in bf16 the two cost 0.9 % of identical 8-bit output pixels (measured on trained weights).
        return channel_last_to_tokens(common.in_fp32(self.conv, features)) + x


class ResidualBlockNoBN(nn.Module):
    """conv, LeakyReLU(0.2), conv, scaled by 0.2, plus the input."""

    def __init__(self, dim):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        return torch.add(x, self.conv2(self.act(self.conv1(x))), alpha=RCG_RES_SCALE)  # scale and add in one pass


class RCG(nn.Sequential):
    """Residual convolution group: 16 residual blocks without batch norm (no group-level residual)."""

    def __init__(self, dim, n_blocks=RCG_BLOCKS):
        super().__init__(*(ResidualBlockNoBN(dim) for _ in range(n_blocks)))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: sigmoid of a 7x7 conv over the channel mean and max."""

    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv1(pooled))


class ChannelAttention(nn.Module):
    """CBAM channel attention: sigmoid of a shared bottleneck MLP over the average- and max-pooled channels."""

    def __init__(self, dim, ratio=16):
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(dim, dim // ratio, 1, bias=False), nn.ReLU(),
                                nn.Conv2d(dim // ratio, dim, 1, bias=False))

    def forward(self, x):
        return torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)) + self.fc(F.adaptive_max_pool2d(x, 1)))


class FFM(nn.Module):
    """Feature fusion module: conv1(cnn * SA(cnn)) + conv2(trans * CA(trans))."""

    def __init__(self, dim):
        super().__init__()
        self.spat_attn = SpatialAttention()
        self.chan_attn = ChannelAttention(dim)
        self.conv1 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, cnn, trans):
        return common.in_fp32(self._fuse, cnn, trans)

    def _fuse(self, cnn, trans):
        # fp32 under autocast: its output is the whole CNN path (no residual around it), so bf16 rounding here would
        # reach the output at full size.
        return self.conv1(cnn * self.spat_attn(cnn)) + self.conv2(trans * self.chan_attn(trans))


class ConvFormerSR(nn.Module):
    """Shallow conv, `num_block` stages of RAG + RCG + FFM, a conv plus the shallow features, pixel-shuffle upsampling.

    Input (B, n_colors, H, W) in [0, rgb_range], any H, W: reflect-padded to a multiple of the window, the output is
    cropped back to (H * scale, W * scale). No mean is subtracted (the official network does not).
    """

    def __init__(self, scale=4, n_colors=3, rgb_range=1.0, embed_dim=96, depths=(6, 6, 6, 6),
                 num_heads=(6, 6, 6, 6), window_size=8, mlp_ratio=4.0, drop_path_rate=0.1, num_block=4, img_size=64,
                 img_range=1.0, attention="fast"):
        super().__init__()
        self.scale = scale
        self.rgb_range = rgb_range
        self.img_range = img_range
        # Swin's rule: a training patch no larger than a window becomes the window, and nothing is shifted.
        self.window_size, shifted = common.swin_window(img_size, window_size)
        drop_paths = torch.linspace(0, drop_path_rate, sum(depths[:num_block]), device="cpu").tolist()
        stage_starts = [sum(depths[:i]) for i in range(num_block + 1)]

        self.conv_first = nn.Conv2d(n_colors, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim)
        self.RAG_Layers = nn.ModuleList(
            RAG(embed_dim, depths[i], num_heads[i], self.window_size, shifted, mlp_ratio,
                drop_paths[stage_starts[i]:stage_starts[i + 1]], attention)
            for i in range(num_block))
        self.norm = nn.LayerNorm(embed_dim)
        self.layers_after_RAG = nn.ModuleList(nn.Conv2d(embed_dim, embed_dim, 3, 1, 1) for _ in range(num_block))
        self.RCG_Layers = nn.ModuleList(RCG(embed_dim) for _ in range(num_block))
        self.FFM_Layers = nn.ModuleList(FFM(embed_dim) for _ in range(num_block))
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, UPSAMPLE_FEATURES, 3, 1, 1),
                                                  nn.LeakyReLU(inplace=True))
        self.upsample = common.Upsampler(common.default_conv, scale, UPSAMPLE_FEATURES)  # SwinIR's pixelshuffle
        self.conv_last = nn.Conv2d(UPSAMPLE_FEATURES, n_colors, 3, 1, 1)
        self.apply(init_swin_weights)
        # Channels-last features have the memory layout of the token sequences, so the conversions between the
        # transformer and the CNN paths are views; the weights follow, or every conv would convert its weight.
        self.to(memory_format=torch.channels_last)

    def set_attention(self, mode):
        """Switch every window attention between 'fast' and 'naive' (the same weights serve both)."""
        common.set_attention(self, mode)

    def forward_features(self, x):
        """The body: per stage, RAG on the tokens, RCG on the CNN path, FFM merging both into the next CNN path."""
        height, width = x.shape[2:]
        tokens = self.patch_embed(x)
        cnn = x
        for rag, after_rag, rcg, ffm in zip(self.RAG_Layers, self.layers_after_RAG, self.RCG_Layers,
                                            self.FFM_Layers):
            tokens = rag(tokens, height, width)
            trans = common.in_fp32(after_rag, tokens_to_channel_first(self.norm(tokens), height, width))
            cnn = ffm(rcg(cnn), trans)
        return cnn

    def forward(self, x):
        height, width = x.shape[2:]
        x = common.pad_to_multiple(x, self.window_size) * (self.img_range / self.rgb_range)
        x = x.contiguous(memory_format=torch.channels_last)
        # Under autocast (--precision bf16) the stages run in bf16 while the shallow features, the long skip and the
        # reconstruction stay fp32: their rounding would reach the output unattenuated.
        shallow = common.in_fp32(self.conv_first, x)
        features = self.forward_features(shallow)
        x = common.in_fp32(self._reconstruct, features, shallow)
        return x[:, :, :height * self.scale, :width * self.scale].contiguous()

    def _reconstruct(self, features, shallow):
        x = self.conv_after_body(features) + shallow
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return x * (self.rgb_range / self.img_range)


def convert_official_state_dict(state_dict):
    """Drop the derived buffers the official code saves (recomputed here); idempotent, the rest is unchanged."""
    return common.drop_derived_swin_buffers(state_dict)


def settings_from_state_dict(state):
    """Flags implied by an official ConvFormerSR state_dict's weights: the band count and embed_dim from its first
    convolution, num_block from its RAGs, and per stage the depth and heads; window_size and mlp_ratio from the first
    block (every block shares them)."""
    first = state.get("conv_first.weight")
    if first is None:
        return {}
    embed_dim = int(first.shape[0])
    num_block = common.count_indexed(state, "RAG_Layers.")
    depths = [common.count_indexed(state, f"RAG_Layers.{i}.attn.blocks.") for i in range(num_block)]
    block = "RAG_Layers.{}.attn.blocks.0."
    tables = [state[block.format(i) + "attn.relative_position_bias_table"] for i in range(num_block)]
    hidden = int(state[block.format(0) + "mlp.fc1.weight"].shape[0])
    return {**common.bands_of(state, "conv_first.weight"), "embed_dim": embed_dim, "num_block": num_block,
            "depths": depths, "num_heads": [int(t.shape[1]) for t in tables],
            "window_size": common.window_from_bias_table(tables[0]), "mlp_ratio": hidden / embed_dim}


def _as_list(value, name, length):
    values = [value] * length if isinstance(value, int) else list(value)
    if len(values) != length:
        raise UserError(f"--{name} lists {len(values)} values but --num_block is {length}: give one per stage")
    return [int(v) for v in values]


def make_model(cfg):
    """ConvFormerSR from the resolved configuration (option.py's defaults are the paper's)."""
    num_block = int(cfg.num_block)
    embed_dim = int(cfg.embed_dim)
    depths = _as_list(cfg.depths, "depths", num_block)
    num_heads = _as_list(cfg.num_heads, "num_heads", num_block)
    if any(embed_dim % h for h in num_heads):
        raise UserError(f"--embed_dim {embed_dim} is not divisible by every --num_heads {num_heads}: change either")
    # --patch_size is the training patch; the network's patch embedding has its own flag
    if int(cfg.embed_patch_size) != 1:
        raise UserError("--embed_patch_size must be 1 for ConvFormerSR (the official network embeds single pixels)")
    attention = cfg.attention
    return ConvFormerSR(
        scale=int(cfg.scale), n_colors=int(cfg.n_colors), rgb_range=float(cfg.rgb_range), embed_dim=embed_dim,
        depths=depths, num_heads=num_heads, window_size=int(cfg.window_size), mlp_ratio=float(cfg.mlp_ratio),
        drop_path_rate=float(cfg.drop_path_rate), num_block=num_block, img_size=int(cfg.img_size),
        img_range=float(cfg.img_range), attention=attention)


def tile_multiple(cfg):
    """Deploy tiles are multiples of the attention window (the one the network really uses), so no tile is padded
    inside."""
    return cfg.window_size if cfg.img_size > cfg.window_size else cfg.img_size


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   own_memory_layout=OWN_MEMORY_LAYOUT, tile_multiple=tile_multiple,
                   convert_official_state_dict=convert_official_state_dict,
                   settings_from_state_dict=settings_from_state_dict)
