"""Limits on what a file may declare before it is parsed: every JSON document the toolbox reads (dataset.json,
manifests, written_files.json, pretrained/index.json, ONNX metadata values) and every value a checkpoint holds. A
document nested thousands deep or of any size then becomes its reader's one-line "not valid" error, never a
RecursionError or a parse that fills the memory."""
import json
import os
import re

import numpy as np

MAX_JSON_BYTES = 64 * 2**20  # a manifest of a million inputs is about 300 MB; ours are KBs to a few MB
MAX_NESTING = 64  # the deepest document the toolbox writes is 5 levels deep
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)

# The ground sample distances (metres) a dataset.json, a checkpoint, the model index or an ONNX file may record.
GSD_METRES = (1e-6, 1e6)
# The fill values a dataset.json may record for its nodata pixels: any finite value a raster dtype holds (float64's).
NODATA_VALUES = (-1.7976931348623157e308, 1.7976931348623157e308)

class LimitError(ValueError):
    """A document beyond MAX_JSON_BYTES or MAX_NESTING (a ValueError, as json's own parse errors are)."""


def json_nesting(text):
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings do not count)."""
    brackets = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    steps = np.isin(brackets, (ord("["), ord("{"))).astype(np.int64) - np.isin(brackets, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def loads(text):
    """json.loads of a text nested at most MAX_NESTING deep; LimitError otherwise."""
    if json_nesting(text) > MAX_NESTING:
        raise LimitError(f"nested more than {MAX_NESTING} levels deep")
    return json.loads(text)


def read_json(path):
    """The JSON document of a file of at most MAX_JSON_BYTES, nested at most MAX_NESTING deep; LimitError (a
    ValueError) otherwise, and OSError when it cannot be read."""
    size = os.stat(path).st_size
    if size > MAX_JSON_BYTES:
        raise LimitError(f"{size} bytes, more than the {MAX_JSON_BYTES} a document of this toolbox can be")
    with open(path, encoding="utf-8") as f:
        return loads(f.read())


def nesting(value, limit=MAX_NESTING):
    """The nesting depth of dicts, lists and tuples in a loaded value, counted without recursion and only up to
    `limit` + 1 (deeper is deep enough to refuse)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def number_problem(value, limits):
    """Why `value` (read from a file: a white level, a pixel size) is not a number within `limits`, or None."""
    low, high = limits
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not low <= value <= high:  # NaN fails this too
        return f"{value!r} is outside {low:g} to {high:g}"
    return None


def plausible_gsd(value):
    """A recorded ground sample distance in metres as a float, or None when it is missing or out of GSD_METRES."""
    return float(value) if number_problem(value, GSD_METRES) is None else None
