"""Overlapping-tile inference (SwinIR-style), blended with a smooth window so that no seams appear.

Tiles of `tile` LR pixels overlap by `overlap` pixels. Inside each overlap, a tile's weight is 0 on the quarter of
the overlap nearest its own inner edge (where missing context would make its output differ from the whole-image
output), ramps linearly to 1 across the middle half, and is 1 elsewhere. Sides on the image border keep weight 1.
So, for a convolutional network whose receptive-field radius is at most overlap/4 LR pixels, the tiled output equals
the whole-image output up to float rounding, and elsewhere the ramp hides the seams.

The output is produced in row strips (`iter_tiled_strips`), so a caller can write a huge scene strip by strip
while memory stays bounded by the tile size and the scene width.
"""
import torch


def tile_starts(length, tile, overlap):
    """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap` pixels of overlap."""
    if length <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


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


def tiled_forward(forward, x, scale, tile, overlap):
    """Run `forward` over overlapping tiles of x (B, C, H, W) and return the blended (B, C', H*s, W*s) output."""
    strips = [strip for _, strip in iter_tiled_strips(forward, x, scale, tile, overlap)]
    return torch.cat(strips, dim=-2)


def iter_tiled_strips(forward, x, scale, tile, overlap, on_tile=None):
    """Yield (hr_row, strip) pairs of finished HR rows, top to bottom. `forward` maps a tile to its x`scale` output.

    Only the rows that later tiles cannot touch are yielded, so at most two tile-rows of output are held at a time.
    `on_tile()` is called after each tile (for progress bars).
    """
    _, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        out = forward(x)
        if on_tile:
            on_tile()
        yield 0, out
        return
    overlap = min(overlap, tile - 1)
    rows, cols = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    ramp = overlap * scale
    acc = wsum = None
    top = 0  # HR row of acc's first row
    for i, y0 in enumerate(rows):
        y1 = min(y0 + tile, h)
        wy = edge_ramp((y1 - y0) * scale, ramp, i > 0, i < len(rows) - 1)
        for j, x0 in enumerate(cols):
            x1 = min(x0 + tile, w)
            out = forward(x[..., y0:y1, x0:x1])
            if acc is None:
                acc = out.new_zeros(out.shape[:2] + (0, w * scale))
                wsum = out.new_zeros((1, 1, 0, w * scale))
            acc, wsum = _grow(acc, wsum, y1 * scale - top)
            wx = edge_ramp((x1 - x0) * scale, ramp, j > 0, j < len(cols) - 1)
            weight = (wy[:, None] * wx[None, :]).to(out)
            ys, xs = slice(y0 * scale - top, y1 * scale - top), slice(x0 * scale, x1 * scale)
            acc[..., ys, xs] += out * weight
            wsum[..., ys, xs] += weight
            if on_tile:
                on_tile()
        done = (rows[i + 1] if i + 1 < len(rows) else h) * scale - top
        yield top, acc[..., :done, :] / wsum[..., :done, :]
        acc, wsum, top = acc[..., done:, :], wsum[..., done:, :], top + done


def _grow(acc, wsum, rows_needed):
    """Extend the accumulators with zero rows so they hold `rows_needed` rows."""
    extra = rows_needed - acc.shape[-2]
    if extra <= 0:
        return acc, wsum
    acc = torch.cat([acc, acc.new_zeros(acc.shape[:2] + (extra, acc.shape[-1]))], dim=-2)
    wsum = torch.cat([wsum, wsum.new_zeros(wsum.shape[:2] + (extra, wsum.shape[-1]))], dim=-2)
    return acc, wsum
