"""The shipped models: `pretrained/index.json` and loading one by name (`--pre_train NAME`).

Each entry of the index names one checkpoint file in `pretrained/` with what it is (model, scale, bands, the ground
sample distance of its training HR), how it was made (data split, iterations, batch, patch, precision, wall time,
machine, the share of the paper's schedule) and what it scores on the whole test split of its data, with bicubic on
the same images. `pretrained_zoo.py table` rebuilds those scores; docs/model_zoo.md is the model cards.

Every value of the index is checked like a flag before it is used, and a file is loaded only when its sha256 is the
one the index records, so a damaged or replaced download is one line naming the file, never a silent load.
"""
import hashlib
import re
from pathlib import Path

import bounded
from bounded import plausible_gsd
from errors import UserError
from paths import REPO_ROOT

PRETRAINED_DIR = REPO_ROOT / "pretrained"
INDEX = PRETRAINED_DIR / "index.json"
NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.pt$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
READ_CHUNK = 1 << 20


def read_index(path=None):
    """[entry, ...] of the index (an empty list when there is none), every entry checked."""
    path = Path(path or INDEX)
    if not path.is_file():
        return []
    try:
        index = bounded.read_json(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); restore it from the repository") from None
    if not isinstance(index, dict) or not isinstance(index.get("models"), list):
        raise UserError(f"{path}: expected {{\"models\": [...]}}; restore it from the repository")
    entries = [checked_entry(path, entry) for entry in index["models"]]
    names = [entry["name"] for entry in entries]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: two models share a name; restore it from the repository")
    return entries


def checked_entry(path, entry):
    """One index entry, its identifying values checked (the rest is description, shown as it is)."""
    checks = (("name", lambda v: isinstance(v, str) and NAME.match(v)),
              ("model", lambda v: isinstance(v, str) and v.isupper()),
              ("scale", lambda v: type(v) is int and 2 <= v <= 4),
              ("file", lambda v: isinstance(v, str) and FILE.match(v)),
              ("sha256", lambda v: isinstance(v, str) and SHA256.match(v)))
    if not isinstance(entry, dict):
        raise UserError(f"{path}: a model entry is not an object; restore it from the repository")
    for key, valid in checks:
        if not valid(entry.get(key)):
            raise UserError(f"{path}: model {entry.get('name', '?')!r} has an invalid {key!r} "
                            f"({entry.get(key)!r}); restore it from the repository")
    return entry


def names(path=None):
    return [entry["name"] for entry in read_index(path)]


def find(name, path=None):
    """The index entry called `name`, or None."""
    return next((entry for entry in read_index(path) if entry["name"] == name), None)


def file_digest(path):
    """The sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(READ_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_file(entry, folder=None):
    """The path of a shipped model's file after its sha256 matched the index."""
    path = Path(folder or PRETRAINED_DIR) / entry["file"]
    if not path.is_file():
        raise UserError(f"--pre_train {entry['name']}: its file {path} is missing; restore pretrained/ from the "
                        f"repository")
    if file_digest(path) != entry["sha256"]:
        raise UserError(f"--pre_train {entry['name']}: {path} does not match its sha256 in {INDEX} (damaged or "
                        f"replaced); restore it from the repository")
    return path


def recorded_gsd(checkpoint_path):
    """The training HR's GSD (metres) that the index records for a shipped model's file, or None."""
    target = Path(checkpoint_path).resolve()
    for entry in read_index():
        if (PRETRAINED_DIR / entry["file"]).resolve() == target:
            gsd = entry.get("gsd")
            return plausible_gsd(gsd)
    return None
