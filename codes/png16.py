"""PNG at the byte level: the 16-bit encoder (Pillow cannot write 16-bit RGB or RGBA; the format itself is simple),
a chunk's bytes, and reading one chunk's data by walking the chunk headers (without decoding the pixels)."""
import os
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_png16(array):
    """Encode a uint16 (H, W, 1|3|4) array as PNG; Pillow cannot write 16-bit RGB(A), PNG itself is simple."""
    height, width, bands = array.shape
    color_type = {1: 0, 3: 2, 4: 6}[bands]
    raw = np.ascontiguousarray(array.astype(">u2")).view(np.uint8).reshape(height, width * bands * 2)
    # PNG filter "Up" (type 2) on every row: byte minus the byte above, a cheap predictor that shrinks smooth images
    filtered = raw.copy()
    filtered[1:] = raw[1:] - raw[:-1]
    rows = np.concatenate([np.full((height, 1), 2, np.uint8), filtered], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + png_chunk(b"IEND", b"")
    )


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_chunk_data(path, kind):
    """The data of the first `kind` chunk of a PNG, or None; reads chunk headers only."""
    with open(path, "rb") as f:
        f.seek(len(PNG_SIGNATURE))
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            length, chunk = int.from_bytes(head[:4], "big"), head[4:]
            if chunk == kind:
                return f.read(length)
            if chunk == b"IEND":
                return None
            f.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
