"""SwinIR: image restoration with the Swin Transformer (classical super-resolution).

J. Liang, J. Cao, G. Sun, K. Zhang, L. Van Gool and R. Timofte, "SwinIR: Image Restoration Using Swin Transformer",
ICCV Workshops (AIM) 2021. Official code: github.com/JingyunLiang/SwinIR (models/network_swinir.py).

The classical-SR network (upsampler 'pixelshuffle', residual connection '1conv'), with the official module names:

- mean shift (DIV2K RGB mean for 3 bands, none otherwise; not stored) and `img_range` scaling;
- shallow feature extraction: `conv_first`, a 3x3 conv;
- deep feature extraction: `patch_embed` (pixels to tokens, LayerNorm), then `layers`, one RSTB (residual Swin
  Transformer block) per entry of `depths`, then `norm` (LayerNorm) and `conv_after_body` (3x3 conv), plus the
  shallow features. An RSTB is `depth` Swin Transformer layers (`residual_group.blocks`; window attention with a
  relative-position bias, every second block shifted by half a window with the -100 region mask; LayerNorm, MLP,
  stochastic depth), a 3x3 `conv` on the un-embedded features, and a residual;
- reconstruction: `conv_before_upsample` (3x3 conv to 64, LeakyReLU 0.01), `upsample` (conv + pixel shuffle per
  factor 2, or one for x3), `conv_last` to the bands.

Classical-SR defaults (the paper's SwinIR): embed_dim 180, 6 RSTBs of 6 layers with 6 heads, window 8, MLP ratio 2:
11.75 / 11.94 / 11.90 M parameters at x2 / x3 / x4. The window machinery is shared with ConvFormerSR (common.py):
`attention='naive'` is the official computation, 'fast' the same through scaled_dot_product_attention.

Inputs whose sides are not multiples of the window are reflect-padded at the bottom/right (the official network's
`check_image_size`) and the output cropped back; the official fixtures, whose 18 x 13 input is not a multiple of the
window, are reproduced this way. Official state_dicts (`params` of the released .pth files) load after
`convert_official_state_dict`, which drops the derived buffers `relative_position_index` and `attn_mask`.
"""
import torch
from torch import nn

from errors import UserError
from model import common
from model.spec import NetworkSpec

UPSAMPLE_FEATURES = 64
# Deploy: the window grid follows each tile's origin and shifted windows widen the receptive field block by block,
# so tiles never equal the whole image exactly; 256 (a multiple of the window) with SwinIR's own test overlap of 32.
DEFAULT_TILE = 256
DEFAULT_TILE_OVERLAP = 32


class SwinTransformerBlock(nn.Module):
    """x + attention((shifted) windows of LayerNorm(x)), then x + MLP(LayerNorm(x)); stochastic depth on both."""

    def __init__(self, dim, num_heads, window_size, shift_size, mlp_ratio, drop_path, attention):
        super().__init__()
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = common.WindowAttention(dim, window_size, num_heads, attention)
        self.drop_path = common.DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = common.Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, height, width):
        b, _, c = x.shape
        attended = common.shifted_window_attention(self.attn, self.norm1(x).view(b, height, width, c),
                                                   self.shift_size)
        x = x + self.drop_path(attended)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    """The Swin layers of one RSTB; odd ones shift their windows by half a window (when `shifted`)."""

    def __init__(self, dim, depth, num_heads, window_size, shifted, mlp_ratio, drop_paths, attention):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, window_size // 2 if shifted and i % 2 else 0,
                                 mlp_ratio, drop_paths[i], attention)
            for i in range(depth))

    def forward(self, x, height, width):
        for block in self.blocks:
            x = block(x, height, width)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer block: the Swin layers, a 3x3 conv on the un-embedded features, and a residual."""

    def __init__(self, dim, depth, num_heads, window_size, shifted, mlp_ratio, drop_paths, attention):
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, shifted, mlp_ratio, drop_paths,
                                         attention)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x, height, width):
        features = common.tokens_to_channel_first(self.residual_group(x, height, width), height, width)
        return common.channel_last_to_tokens(self.conv(features)) + x


class SwinIR(nn.Module):
    """SwinIR for classical SR; input (B, n_colors, H, W) in [0, rgb_range], any H, W."""

    def __init__(self, scale=4, n_colors=3, rgb_range=1.0, embed_dim=180, depths=(6, 6, 6, 6, 6, 6),
                 num_heads=(6, 6, 6, 6, 6, 6), window_size=8, mlp_ratio=2.0, drop_path_rate=0.1, img_size=64,
                 img_range=1.0, data_mean=None, attention="fast"):
        super().__init__()
        self.scale = scale
        self.rgb_range = rgb_range
        self.img_range = img_range
        band_mean = common.band_mean_for(n_colors, data_mean, common.DIV2K_RGB_MEAN)
        # Not saved: the official network keeps its mean outside the state_dict.
        self.register_buffer("mean", torch.tensor(band_mean).view(1, n_colors, 1, 1), persistent=False)
        self.window_size, shifted = common.swin_window(img_size, window_size)
        drop_paths = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        starts = [sum(depths[:i]) for i in range(len(depths) + 1)]

        self.conv_first = nn.Conv2d(n_colors, embed_dim, 3, 1, 1)
        self.patch_embed = common.PatchEmbed(embed_dim)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, depths[i], num_heads[i], self.window_size, shifted, mlp_ratio,
                 drop_paths[starts[i]:starts[i + 1]], attention)
            for i in range(len(depths)))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, UPSAMPLE_FEATURES, 3, 1, 1),
                                                  nn.LeakyReLU(inplace=True))
        self.upsample = common.Upsampler(common.default_conv, scale, UPSAMPLE_FEATURES)
        self.conv_last = nn.Conv2d(UPSAMPLE_FEATURES, n_colors, 3, 1, 1)
        self.apply(common.init_swin_weights)

    def set_attention(self, mode):
        """Switch every window attention between 'fast' and 'naive' (the same weights serve both)."""
        common.set_attention(self, mode)

    def forward_features(self, x):
        height, width = x.shape[2:]
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, height, width)
        return common.tokens_to_channel_first(self.norm(tokens), height, width)

    def forward(self, x):
        height, width = x.shape[2:]
        x = common.pad_to_multiple(x, self.window_size)
        x = (x / self.rgb_range - self.mean) * self.img_range
        # Under autocast (--precision bf16) the shallow features, the long skip and the reconstruction stay fp32.
        shallow = common.in_fp32(self.conv_first, x)
        x = common.in_fp32(self._reconstruct, self.forward_features(shallow), shallow)
        x = (x / self.img_range + self.mean) * self.rgb_range
        return x[:, :, :height * self.scale, :width * self.scale]

    def _reconstruct(self, features, shallow):
        x = self.conv_after_body(features) + shallow
        return self.conv_last(self.upsample(self.conv_before_upsample(x)))


def convert_official_state_dict(state_dict):
    """Drop the derived buffers the official code saves (recomputed here); idempotent, the rest is unchanged."""
    return common.drop_derived_swin_buffers(state_dict)


def _per_layer(value, name, n_layers):
    values = [value] * n_layers if isinstance(value, int) else [int(v) for v in value]
    if len(values) != n_layers:
        raise UserError(f"--{name} lists {len(values)} values but --depths has {n_layers}: give one per RSTB")
    return values


def tile_multiple(cfg):
    """Deploy tiles are multiples of the attention window, so no tile is padded inside."""
    return int(cfg.window_size)


def make_model(cfg):
    """SwinIR (classical SR) from the resolved configuration (the paper's sizes are the SWINIR model preset in
    template.py)."""
    depths = [int(d) for d in cfg.depths]
    num_heads = _per_layer(cfg.num_heads, "num_heads", len(depths))
    embed_dim = int(cfg.embed_dim)
    if any(embed_dim % h for h in num_heads):
        raise UserError(f"--embed_dim {embed_dim} is not divisible by every --num_heads {num_heads}: change either")
    if int(cfg.embed_patch_size) != 1:
        raise UserError("--embed_patch_size must be 1 for SwinIR (the official network embeds single pixels)")
    attention = cfg.attention
    return SwinIR(scale=int(cfg.scale), n_colors=int(cfg.n_colors), rgb_range=float(cfg.rgb_range),
                  embed_dim=embed_dim, depths=depths, num_heads=num_heads, window_size=int(cfg.window_size),
                  mlp_ratio=float(cfg.mlp_ratio), drop_path_rate=float(cfg.drop_path_rate), img_size=int(cfg.img_size),
                  img_range=float(cfg.img_range), data_mean=cfg.data_mean, attention=attention)


def settings_from_state_dict(state):
    """Flags implied by an official SwinIR state_dict's weights: the band count, embed_dim, depths, num_heads,
    window_size, mlp_ratio."""
    first = state.get("conv_first.weight")
    if first is None:
        return {}
    embed_dim = int(first.shape[0])
    n_layers = common.count_indexed([k for k in state if k.endswith(".conv.weight")], "layers.")
    depths = [common.count_indexed([k for k in state if k.endswith(".norm1.weight")],
                                   f"layers.{i}.residual_group.blocks.") for i in range(n_layers)]
    tables = [state[f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"] for i in range(n_layers)]
    hidden = int(state["layers.0.residual_group.blocks.0.mlp.fc1.weight"].shape[0])
    return {**common.bands_of(state, "conv_first.weight"), "embed_dim": embed_dim, "depths": depths,
            "num_heads": [int(t.shape[1]) for t in tables], "window_size": common.window_from_bias_table(tables[0]),
            "mlp_ratio": hidden / embed_dim}


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   tile_multiple=tile_multiple, convert_official_state_dict=convert_official_state_dict,
                   settings_from_state_dict=settings_from_state_dict)
