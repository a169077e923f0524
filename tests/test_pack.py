"""data_scripts/pack_dataset.py: a prepared dataset's training data packed to travel beside the code; training on
the pack (--dataset HROnly) sees the very pixels, and the very LR, that the prepared dataset holds."""
import json
import sys

import numpy as np
import pytest
import torch

import image_files
import image_io
from conftest import REPO_ROOT
from data import make_dataset
from errors import UserError
from helpers import assert_one_line_error, call_script, isolated
from option import parse_args
from test_user_path import mosaic_source

sys.path.insert(0, str(REPO_ROOT / "codes" / "data_scripts"))
import pack_dataset  # noqa: E402
import prepare_dataset  # noqa: E402

PACK = REPO_ROOT / "codes" / "data_scripts" / "pack_dataset.py"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("pack")
    source = mosaic_source(base / "src", classes=("a", "b"), per_class=5)
    root = base / "Mosaic"
    prepare_dataset.main(["--src", str(source), "--dst", str(root), "--split", "0.6,0.2,0.2", "--scales", "2"])
    return root


def test_a_pack_holds_the_prepared_pixels_within_its_size(tmp_path, prepared):
    dst = tmp_path / "pack"
    sizes = sorted(p.stat().st_size for p in image_files.list_images(prepared / "train" / "HR"))
    budget = (sum(sizes[:4]) + 1) / 2**20 * 1.2  # room for about four of the images, as PNG
    proc = call_script(PACK, "--src", prepared, "--dst", dst, "--max_mib", f"{budget:.4f}", "--val_images", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    packed = image_files.list_images(dst / "train" / "HR") + image_files.list_images(dst / "val" / "HR")
    assert 2 <= len(packed) < 8 and len(image_files.list_images(dst / "val" / "HR")) == 1
    assert sum(p.stat().st_size for p in packed) <= budget * 2**20
    classes = {p.stem.rstrip("0123456789") for p in image_files.list_images(dst / "train" / "HR")}
    assert classes == {"a", "b"}  # taken class by class in turn
    for path in packed:  # lossless: the source HR's pixels, bit for bit
        source = next(p for split in ("train", "val") for p in image_files.list_images(prepared / split / "HR")
                      if p.stem == path.stem)
        assert np.array_equal(image_io.read_image(path), image_io.read_image(source))
    meta = json.loads((dst / "dataset.json").read_text())
    assert meta["bands"] == json.loads((prepared / "dataset.json").read_text())["bands"]
    assert f"{len(packed) - 1} train and 1 val" in meta["description"]
    # training on the pack makes the LR the preparation made, bit for bit
    args = parse_args(["--dataset", "HROnly", "--dir_data", str(dst), "--scale", "2", "--ext", "img",
                       *isolated(tmp_path)], purpose="none")
    val = make_dataset(args, "val")
    lr, _, name = val[0]
    prepared_lr = next(p for split in ("train", "val") for p in (prepared / split / "LR_x2").glob(f"{name}.*"))
    assert torch.equal(lr, val.radiometry.to_network(image_io.read_image(prepared_lr)))


@pytest.mark.parametrize("flags, fragment", [(["--max_mib", "nan"], "--max_mib: expected a finite number"),
                                             (["--val_images", "-3"], "--val_images: expected an integer >= 0"),
                                             (["--inside"], "is inside --src")])
def test_a_pack_refuses_bad_sizes_and_a_dst_inside_its_source(tmp_path, prepared, flags, fragment):
    dst = prepared / "train" / "HR" / "pack" if flags == ["--inside"] else tmp_path / "pack"
    before = sorted(prepared.rglob("*"))
    proc = call_script(PACK, "--src", prepared, "--dst", dst, *(flags if flags != ["--inside"] else []))
    assert_one_line_error(proc, fragment)
    assert not dst.exists() and sorted(prepared.rglob("*")) == before


def test_a_pack_never_replaces_and_an_empty_one_leaves_nothing(tmp_path, prepared):
    dst = tmp_path / "pack"
    proc = call_script(PACK, "--src", prepared, "--dst", dst, "--max_mib", "0.0001")
    assert_one_line_error(proc, "holds no training image")
    assert not dst.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".pack.rssr-tmp-")]
    dst.mkdir()
    with pytest.raises(UserError, match="exists"):
        pack_dataset.main(["--src", str(prepared), "--dst", str(dst)])
