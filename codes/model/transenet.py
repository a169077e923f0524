"""TransENet: transformer-based multi-stage enhancement for remote-sensing image super-resolution.

S. Lei, Z. Shi and W. Mo, "Transformer-based Multistage Enhancement for Remote Sensing Image Super-Resolution",
IEEE Transactions on Geoscience and Remote Sensing, vol. 60, 2022 (online 2021). Official code:
github.com/Shaosifan/TransENet (codes/model/transenet.py and transformer.py).

Structure, with the official module names (so official state_dicts load with strict=True):

- `sub_mean` (UC Merced RGB mean), `head` (3x3 conv to n_feats);
- feature extraction: three stages in a row (`feat_extrat_stage1..3`, each refining the previous one's output),
  each five residual blocks (conv, ReLU, conv, plus the input; the stage itself adds no skip); the third stage's
  features are also upsampled (`upsampler`, sub-pixel) to the HR size. (The first release of the official code fed
  all three stages the head's output; its 2023 update chains them, and the official-output fixtures follow the
  update);
- multi-stage enhancement: 1x1 convs squeeze the three LR stages and the upsampled features to n_feats / 4
  channels; each is cut into 8x8 patches, flattened and embedded to 512-wide tokens (`patch_to_embedding_*`), and
  refined by its own transformer encoder (`encoder_stage1..3`, `encoder_up`; `en_depth` layers of pre-norm
  self-attention and MLP). Three transformer decoders then enhance the HR tokens with the LR stages, deepest first
  (`decoder3` with stage 3, `decoder2` with stage 2, `decoder1` with stage 1): each layer is pre-norm
  self-attention, pre-norm cross-attention (queries from the HR tokens, keys and values from the stage's tokens,
  both normalised by the same LayerNorm) and an MLP, all residual;
- reconstruction: tokens back to 8x8 patches (`embedding_to_patch`), a 1x1 conv back to n_feats (`span_conv1x1`),
  the `tail` 3x3 conv to the bands, `add_mean`.

Fixed by the official code: patch 8, token width 512, 6 heads of 32, MLP width 512, no dropout, and an attention
temperature of 512 ** -0.5 (the token width, not the head width: the official code scales by `dim`). Default
n_feats 64, en_depth 8, de_depth 1: 37.31 / 37.50 / 37.46 M parameters at x2 / x3 / x4 (mean shift included).

The input size is fixed: the network is trained on (and, officially, only run on) square LR inputs of
`--patch_size / --scale` pixels (`fixed_input_size`; as officially, `--patch_size` is the HR training patch, 192 at x4
for 48 LR pixels). Larger images are tiled at exactly that size by the caller. Smaller inputs are padded up to it
here and the output cropped (the official code refuses them; this lets the embedded Sample's 30 x 30 LR at x4 run
with an input of 32). As officially, the input must be a multiple of 8 and give more than 12 patches (so at least
32).

The official mean shift is RGB only; other band counts use `--data_mean` or no mean (zeros), as in HSENet.

The attention runs through ``scaled_dot_product_attention`` (same maths as the official matmul-softmax-matmul).
"""
import torch.nn.functional as F
from torch import nn

from errors import UserError
from model import common
from model.spec import NetworkSpec

PATCH = 8  # side of the patches that become tokens
MIN_PATCHES = 12  # the official lower limit (exclusive) on the number of LR patches
TOKEN_DIM = 512
HEADS = 6
HEAD_DIM = 32
MLP_DIM = 512
REDUCTION = 4  # n_feats -> n_feats // 4 channels before patch embedding
STAGE_BLOCKS = 5
# Deploy: the tile must be the network's fixed input size (`fixed_input_size`, the LR training patch; 48 by
# default). The transformers see the whole tile, so tiles never equal a larger image exactly; the overlap (a third
# of the default tile) hides the borders, where the official code pasted tiles edge to edge.
DEFAULT_TILE = 48
DEFAULT_TILE_OVERLAP = 16


# The fixed input size (--patch_size / --scale) is part of the architecture: a checkpoint records it, deploy adopts it.
EXTRA_ARCHITECTURE_FLAGS = ("patch_size",)


def fixed_input_size(cfg):
    """The one LR input size (square, pixels) the network runs on: the LR training patch (the configuration's
    lr_patch, --patch_size / --scale)."""
    return int(cfg.lr_patch)


class Residual(nn.Module):
    """fn(x, ...) + x."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, *context):
        return self.fn(x, *context) + x


class PreNorm(nn.Module):
    """fn(LayerNorm(x), LayerNorm(memory)...): the same LayerNorm normalises the cross-attention memory."""

    def __init__(self, dim, fn):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x, *context):
        return self.fn(self.norm(x), *(self.norm(m) for m in context))


class FeedForward(nn.Module):
    """Linear, GELU, Linear (dropout slots kept for the official key names `net.0`, `net.3`)."""

    def __init__(self, dim, hidden, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(common.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), common.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


def split_heads(x, heads):
    """(B, N, heads * d) -> (B, heads, N, d)."""
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def attend(q, k, v, scale):
    """softmax(q k^T * scale) v over (B, heads, N, d) tensors, heads merged back: (B, N, heads * d).

    The fused kernel gives the official matmul-softmax-matmul result to float rounding (1.3e-6 on a 0-255 output)
    and runs TransENet's inference 1.38x faster on the CPU: the (N x N) scores are never written out."""
    out = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return out.transpose(1, 2).flatten(2)


class Attention(nn.Module):
    """Multi-head self-attention, temperature dim ** -0.5 (official)."""

    def __init__(self, dim, heads, dim_head, dropout=0.0):
        super().__init__()
        self.heads = heads
        self.scale = dim ** -0.5
        self.to_qkv = common.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Sequential(common.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x):
        q, k, v = (split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        return self.to_out(attend(q, k, v, self.scale))


class MixedAttention(nn.Module):
    """Multi-head cross-attention: queries from x, keys and values from the memory m."""

    def __init__(self, dim, heads, dim_head, dropout=0.0):
        super().__init__()
        self.heads = heads
        self.scale = dim ** -0.5
        self.to_q = common.Linear(dim, heads * dim_head, bias=False)
        self.to_k = common.Linear(dim, heads * dim_head, bias=False)
        self.to_v = common.Linear(dim, heads * dim_head, bias=False)
        self.to_out = nn.Sequential(common.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x, m):
        q = split_heads(self.to_q(x), self.heads)
        k, v = split_heads(self.to_k(m), self.heads), split_heads(self.to_v(m), self.heads)
        return self.to_out(attend(q, k, v, self.scale))


class TransformerEncoder(nn.Module):
    """`depth` layers of residual pre-norm self-attention and MLP."""

    def __init__(self, dim, depth, heads, dim_head, mlp_dim):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Residual(PreNorm(dim, Attention(dim, heads, dim_head))),
                           Residual(PreNorm(dim, FeedForward(dim, mlp_dim)))])
            for _ in range(depth))

    def forward(self, x):
        for attn, ff in self.layers:
            x = ff(attn(x))
        return x


class TransformerDecoder(nn.Module):
    """`depth` layers of residual pre-norm self-attention, cross-attention to the memory, and MLP."""

    def __init__(self, dim, depth, heads, dim_head, mlp_dim):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Residual(PreNorm(dim, Attention(dim, heads, dim_head))),
                           Residual(PreNorm(dim, MixedAttention(dim, heads, dim_head))),
                           Residual(PreNorm(dim, FeedForward(dim, mlp_dim)))])
            for _ in range(depth))

    def forward(self, x, memory):
        for self_attn, cross_attn, ff in self.layers:
            x = ff(cross_attn(self_attn(x), memory))
        return x


class FeatureStage(nn.Module):
    """One feature-extraction stage: residual blocks in a row, without a stage-level skip (official)."""

    def __init__(self, n_feats, n_blocks=STAGE_BLOCKS):
        super().__init__()
        self.body = nn.Sequential(*[common.ResBlock(common.default_conv, n_feats, 3) for _ in range(n_blocks)])

    def forward(self, x):
        return self.body(x)


def patches_to_tokens(x, patch):
    """(B, C, H, W) -> (B, (H/p)(W/p), p*p*C): row-major patches, each flattened as (row, column, channel)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


def tokens_to_patches(x, patch, height, width):
    """Inverse of `patches_to_tokens`: (B, (H/p)(W/p), p*p*C) -> (B, C, H, W)."""
    b = x.shape[0]
    x = x.view(b, height // patch, width // patch, patch, patch, -1).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, -1, height, width)


class TransENet(nn.Module):
    """TransENet; input (B, n_colors, s, s) in [0, rgb_range] with s = input_size LR pixels (smaller inputs are
    padded)."""

    def __init__(self, scale=4, n_colors=3, rgb_range=1.0, n_feats=64, input_size=48, en_depth=8, de_depth=1,
                 data_mean=None):
        super().__init__()
        if input_size % PATCH or (input_size // PATCH) ** 2 <= MIN_PATCHES:
            raise UserError(f"TransENet cuts its LR input into {PATCH}x{PATCH} patches, more than {MIN_PATCHES} of "
                            f"them: its input (--patch_size / --scale = {input_size}) must be a multiple of {PATCH}, "
                            f"at least 32; at x{scale} give --patch_size {32 * scale} or {48 * scale}")
        conv = common.default_conv
        self.scale = scale
        self.input_size = input_size
        band_mean = common.band_mean_for(n_colors, data_mean, common.UC_MERCED_RGB_MEAN)
        squeezed = n_feats // REDUCTION
        patch_dim = squeezed * PATCH * PATCH

        self.sub_mean = common.MeanShift(rgb_range, band_mean)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.feat_extrat_stage1 = FeatureStage(n_feats)
        self.feat_extrat_stage2 = FeatureStage(n_feats)
        self.feat_extrat_stage3 = FeatureStage(n_feats)
        self.stage1_conv1x1 = conv(n_feats, squeezed, 1)
        self.stage2_conv1x1 = conv(n_feats, squeezed, 1)
        self.stage3_conv1x1 = conv(n_feats, squeezed, 1)
        self.up_conv1x1 = conv(n_feats, squeezed, 1)
        self.span_conv1x1 = conv(squeezed, n_feats, 1)
        self.upsampler = common.Upsampler(conv, scale, n_feats)
        self.tail = conv(n_feats, n_colors, 3)
        self.add_mean = common.MeanShift(rgb_range, band_mean, sign=1)

        self.patch_to_embedding_low1 = common.Linear(patch_dim, TOKEN_DIM)
        self.patch_to_embedding_low2 = common.Linear(patch_dim, TOKEN_DIM)
        self.patch_to_embedding_low3 = common.Linear(patch_dim, TOKEN_DIM)
        self.patch_to_embedding_high = common.Linear(patch_dim, TOKEN_DIM)
        self.embedding_to_patch = common.Linear(TOKEN_DIM, patch_dim)
        self.encoder_stage1 = TransformerEncoder(TOKEN_DIM, en_depth, HEADS, HEAD_DIM, MLP_DIM)
        self.encoder_stage2 = TransformerEncoder(TOKEN_DIM, en_depth, HEADS, HEAD_DIM, MLP_DIM)
        self.encoder_stage3 = TransformerEncoder(TOKEN_DIM, en_depth, HEADS, HEAD_DIM, MLP_DIM)
        self.encoder_up = TransformerEncoder(TOKEN_DIM, en_depth, HEADS, HEAD_DIM, MLP_DIM)
        self.decoder1 = TransformerDecoder(TOKEN_DIM, de_depth, HEADS, HEAD_DIM, MLP_DIM)
        self.decoder2 = TransformerDecoder(TOKEN_DIM, de_depth, HEADS, HEAD_DIM, MLP_DIM)
        self.decoder3 = TransformerDecoder(TOKEN_DIM, de_depth, HEADS, HEAD_DIM, MLP_DIM)

    def embed(self, features, squeeze, embedding, encoder):
        """Squeeze channels (1x1 conv), cut into patch tokens, embed, encode."""
        return encoder(embedding(patches_to_tokens(squeeze(features), PATCH)))

    def forward(self, x):
        height, width = x.shape[2:]
        x = self.pad_to_input_size(x)
        # Under autocast (--precision bf16) the head and the tail stay fp32 (see common.in_fp32).
        x = common.in_fp32(lambda t: self.head(self.sub_mean(t)), x)
        stage1 = self.feat_extrat_stage1(x)
        stage2 = self.feat_extrat_stage2(stage1)
        stage3 = self.feat_extrat_stage3(stage2)
        upsampled = self.upsampler(stage3)

        memory1 = self.embed(stage1, self.stage1_conv1x1, self.patch_to_embedding_low1, self.encoder_stage1)
        memory2 = self.embed(stage2, self.stage2_conv1x1, self.patch_to_embedding_low2, self.encoder_stage2)
        memory3 = self.embed(stage3, self.stage3_conv1x1, self.patch_to_embedding_low3, self.encoder_stage3)
        tokens = self.embed(upsampled, self.up_conv1x1, self.patch_to_embedding_high, self.encoder_up)
        tokens = self.decoder1(self.decoder2(self.decoder3(tokens, memory3), memory2), memory1)

        hr = tokens_to_patches(self.embedding_to_patch(tokens), PATCH, *upsampled.shape[2:])
        out = common.in_fp32(lambda t: self.add_mean(self.tail(self.span_conv1x1(t))), hr)
        return out[:, :, :height * self.scale, :width * self.scale]

    def pad_to_input_size(self, x):
        """Reflect-pad an input smaller than the fixed size up to it (bottom/right); refuse a larger one."""
        height, width = x.shape[2:]
        size = self.input_size
        if height > size or width > size:
            raise UserError(f"TransENet runs on {size}x{size} LR inputs (--patch_size / --scale), got "
                            f"{height}x{width}: tile larger images at {size} pixels")
        return common.pad_bottom_right(x, size - height, size - width)


def make_model(cfg):
    """TransENet from the run configuration (its fixed input: the LR training patch)."""
    return TransENet(scale=int(cfg.scale), n_colors=int(cfg.n_colors), rgb_range=float(cfg.rgb_range),
                     n_feats=int(cfg.n_feats), input_size=fixed_input_size(cfg), en_depth=int(cfg.en_depth),
                     de_depth=int(cfg.de_depth), data_mean=cfg.data_mean)


def settings_from_state_dict(state):
    """Flags implied by an official TransENet state_dict: n_feats, en_depth, de_depth from its weights, rgb_range
    from its mean shift. (The fixed input size leaves no trace in the weights.)"""
    head = state.get("head.0.weight")
    if head is None:
        return {}
    settings = {**common.bands_of(state, "head.0.weight"), "n_feats": int(head.shape[0]),
                "en_depth": common.count_indexed(state, "encoder_stage1.layers."),
                "de_depth": common.count_indexed(state, "decoder1.layers.")}
    rgb_range = common.rgb_range_from_mean_shift(state, common.UC_MERCED_RGB_MEAN)
    if rgb_range is not None:
        settings["rgb_range"] = rgb_range
    return settings


SPEC = NetworkSpec(make_model, default_tile=DEFAULT_TILE, default_tile_overlap=DEFAULT_TILE_OVERLAP,
                   extra_architecture_flags=EXTRA_ARCHITECTURE_FLAGS, fixed_input_size=fixed_input_size,
                   settings_from_state_dict=settings_from_state_dict)
