"""Overlapping-tile inference (SwinIR-style), blended with a smooth window so that no seams appear.

Tiles of `tile` LR pixels overlap by at least `overlap` pixels. Inside each overlap, a tile's weight is 0 on the
quarter of the overlap nearest its own inner edge (where missing context would make its output differ from the
whole-image output), ramps linearly to 1 across the middle half, and is 1 elsewhere. Sides on the image border keep
weight 1. So, for a convolutional network whose receptive-field radius is at most overlap/4 LR pixels, the tiled
output equals the whole-image output up to float rounding, and elsewhere the ramp hides the seams.

A tile's weight is the product of a row profile and a column profile, and the tiles form a grid, so the sum of the
weights at a pixel is (sum of the row profiles) x (sum of the column profiles): two 1-D vectors, no 2-D weight buffer.

The output is produced in row strips (`iter_tiled_strips`), so a caller can write a huge scene strip by strip while
memory stays bounded by one band of tiles (tile x scene width), never by the scene's area.

`TilePlan` is the one decision of tile, overlap and "fits in one tile", made by `plan_for` from the flags and the
network's constraints (defaults, a fixed input size, window multiples), and shared by deploy and validation (--chop).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import budget
from errors import UserError


def tile_starts(length, tile, overlap):
    """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap` pixels of overlap."""
    if tile <= 0 or length <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def fits_in_one_tile(height, width, tile):
    return tile <= 0 or (height <= tile and width <= tile)


def count_tiles(height, width, tile, overlap):
    """How many forward passes iter_tiled_strips makes for an LR image of height x width."""
    if fits_in_one_tile(height, width, tile):
        return 1
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def edge_ramp(size, ramp_len, at_start, at_end):
    """1-D weights over `size` HR pixels: 0 / linear / 1 profile on the inner sides, 1 on image-border sides."""
    w = torch.ones(size)
    if ramp_len <= 0:
        return w
    margin = ramp_len / 4.0
    d = torch.arange(size, dtype=torch.float32) + 0.5
    profile = ((d - margin) / (ramp_len / 2.0)).clamp(0.0, 1.0)
    if at_start:
        w = torch.minimum(w, profile)
    if at_end:
        w = torch.minimum(w, profile.flip(0))
    return w


def axis_weights(length, tile, overlap, scale):
    """For one axis: [(start, stop, weights)] per tile in HR pixels, and the (length * scale,) sum of the weights."""
    starts = tile_starts(length, tile, overlap)
    total = torch.zeros(length * scale)
    pieces = []
    for k, start in enumerate(starts):
        stop = min(start + tile, length) * scale
        weights = edge_ramp(stop - start * scale, overlap * scale, k > 0, k < len(starts) - 1)
        total[start * scale:stop] += weights
        pieces.append((start * scale, stop, weights))
    return pieces, total


def iter_tiled_strips(forward, x, scale, tile, overlap, on_tile=None):
    """Yield (hr_row, strip) pairs of finished HR rows, top to bottom. `forward` maps a tile to its x`scale` output.

    Only the rows that later tiles cannot touch are yielded. At most one band of tiles (tile*scale HR rows, the
    full width) is accumulated at a time, plus its overlap with the next band while that one starts. A strip is a
    view into the band, valid until the next one is requested. `on_tile()` is called after each tile (progress).
    """
    _, _, h, w = x.shape
    if fits_in_one_tile(h, w, tile):
        out = forward(x)
        if on_tile:
            on_tile()
        yield 0, out
        return
    overlap = min(overlap, tile - 1)
    row_pieces, row_total = axis_weights(h, tile, overlap, scale)
    col_pieces, col_total = axis_weights(w, tile, overlap, scale)
    carry = None  # accumulated rows of the previous band that overlap this one
    for i, (top, bottom, wy) in enumerate(row_pieces):
        band = None
        for left, right, wx in col_pieces:
            y0, x0 = top // scale, left // scale  # the tile's LR corner
            out = forward(x[..., y0:y0 + (bottom - top) // scale, x0:x0 + (right - left) // scale])
            if band is None:
                band = out.new_zeros(out.shape[:2] + (bottom - top, w * scale))
                if carry is not None:
                    band[..., :carry.shape[-2], :] = carry
            band[..., :, left:right] += out * (wy[:, None] * wx[None, :]).to(out)
            if on_tile:
                on_tile()
        done = (row_pieces[i + 1][0] if i + 1 < len(row_pieces) else bottom) - top
        strip = band[..., :done, :]
        strip /= (row_total[top:top + done, None] * col_total[None, :]).to(strip)
        carry = band[..., done:, :]
        yield top, strip


# ------------------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class TilePlan:
    """Tile side and overlap in LR pixels (tile 0: whole images). `fixed`: the network takes exactly tile x tile
    inputs (TransENet), so smaller images are edge-padded to the tile and the output cropped back."""

    tile: int = 0
    overlap: int = 0
    fixed: bool = False

    def count(self, height, width):
        height, width = self._padded(height, width)
        return count_tiles(height, width, self.tile, self.overlap)

    def fits(self, height, width):
        return self.count(height, width) == 1

    def _padded(self, height, width):
        if not self.fixed:
            return height, width
        return max(height, self.tile), max(width, self.tile)

    def strips(self, forward, x, scale, on_tile=None):
        """(hr_row, strip) pairs of the SR of x (B, C, H, W), top to bottom (see iter_tiled_strips)."""
        h, w = x.shape[-2:]
        ph, pw = self._padded(h, w)
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
        for row, strip in iter_tiled_strips(forward, x, scale, self.tile, self.overlap, on_tile):
            if row >= h * scale:
                break
            yield row, strip[..., :h * scale - row, :w * scale]

    def run(self, forward, x, scale):
        """The whole SR of x, assembled from the strips."""
        strips = [strip for _, strip in self.strips(forward, x, scale)]
        return strips[0] if len(strips) == 1 else torch.cat(strips, dim=-2)


WHOLE = TilePlan()


def plan_for(spec, tile=None, overlap=None, fixed_size=None, multiple=1, model_name="the model"):
    """The tile plan from --tile/--tile_overlap (None: the network's default_tile / default_tile_overlap from its
    NetworkSpec `spec`; a network this checkout does not know, None, runs whole images by default),
    checked against the network's constraints: a fixed input size (the tile must be that size) and a tile multiple
    (Swin-style windows: a tile that is no multiple of the window would be padded inside every tile)."""
    if fixed_size:
        if tile not in (None, fixed_size):
            raise UserError(f"--tile {tile}: {model_name} takes inputs of exactly {fixed_size}x{fixed_size} LR pixels "
                            f"(--patch_size / --scale); drop --tile or pass --tile {fixed_size}")
        tile = fixed_size
    elif tile is None:
        tile = spec.default_tile if spec else 0
    if tile and multiple > 1 and tile % multiple:
        raise UserError(f"--tile {tile} must be a multiple of {multiple} for {model_name} (its attention window), "
                        f"e.g. --tile {max(multiple, tile // multiple * multiple)}")
    if overlap is None:
        overlap = min(spec.default_tile_overlap if spec else 16, tile // 2)
    if tile and overlap >= tile:
        raise UserError(f"--tile_overlap {overlap} must be smaller than the tile ({tile})")
    return TilePlan(tile, overlap if tile else 0, bool(fixed_size))


def check_tile_memory(tile, n_colors, scale, what, advice):
    """A tile every input is run at whatever its size (an export's trace, a fixed-size ONNX graph's padding), checked
    against the memory before anything that size is allocated: its float32 input and x`scale` output alone."""
    budget.check(4 * n_colors * tile * tile * (1 + scale * scale),
                 f"{what} ({tile}x{tile} LR pixels, {n_colors} bands, x{scale})", advice)
