"""Every JSON document and checkpoint value the toolbox reads is bounded before it is parsed: a file nested
thousands deep, or larger than any document the toolbox writes, is its reader's one-line error (exit 2 from the
command line), never a RecursionError or a parse that fills the memory."""
import json
import shutil
import sys

import pytest
import torch

import bounded
import checkpoint
import pretrained
import runs
from conftest import REPO_ROOT
from data.dataset_json import read_dataset_metadata
from errors import UserError
from helpers import SAMPLE, assert_one_line_error, call_script, isolated

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"bands": ' + "[" * 5000 + "]" * 5000 + "}"


def hostile_documents(tmp_path):
    """(name, writer) pairs: each writes one hostile form to a path."""
    def deep(path):
        path.write_text(DEEP)

    def deep_inside(path):
        path.write_text(DEEP_OBJECT)

    def huge(path):
        with open(path, "wb") as f:  # sparse: no disk is used, but the size is what a reader sees
            f.truncate(bounded.MAX_JSON_BYTES + 1)

    def not_json(path):
        path.write_text("{'single': quotes}")

    return [("deep", deep), ("deep inside an object", deep_inside), ("huge", huge), ("not JSON", not_json)]


@pytest.mark.parametrize("form", ["deep", "deep inside an object", "huge", "not JSON"])
def test_every_json_reader_refuses_a_hostile_document_in_one_line(tmp_path, form):
    write = dict(hostile_documents(tmp_path))[form]
    root = tmp_path / "data"
    root.mkdir()
    write(root / "dataset.json")
    with pytest.raises(UserError, match="dataset.json"):
        read_dataset_metadata(root)
    index = tmp_path / "index.json"
    write(index)
    with pytest.raises(UserError, match="index.json"):
        pretrained.read_index(index)
    folder = tmp_path / "run"
    folder.mkdir()
    write(folder / runs.WRITTEN_FILES)
    with pytest.raises(UserError, match=f"{runs.WRITTEN_FILES} is damaged.*--save for a training run, --dir_out for "
                                        f"a deploy"):
        runs.WrittenFiles(folder)
    # the metric script reads the results folder's manifest
    sr = tmp_path / "sr"
    shutil.copytree(SAMPLE / "test" / "LR_x4", sr)
    write(sr / "manifest.json")
    for flags in ([], ["--gt", SAMPLE / "test" / "HR", "--scale", "4"]):  # the flags do not stand in for it
        proc = call_script(REPO_ROOT / "metric_scripts" / "calculate_PSNR_SSIM.py", "--sr", sr, *flags)
        assert_one_line_error(proc, "manifest.json is not a valid deploy manifest",
                              "move the manifest away and give --gt, --scale")


def test_an_onnx_metadata_value_nested_too_deep_stays_text():
    """ONNX metadata values are JSON text: one nested thousands deep is not parsed (it stays a string, which the
    checks of the value then refuse like any other wrong value)."""
    import onnx_graph

    decoded = onnx_graph.decode_metadata({"scale": DEEP, "model": json.dumps("BASIC")})
    assert decoded == {"scale": DEEP, "model": "BASIC"}


def test_a_checkpoint_whose_values_are_nested_too_deep_is_one_line(tmp_path):
    value = []
    for _ in range(3000):
        value = [value]
    path = tmp_path / "deep.pt"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)  # torch.save pickles recursively; reading needs no such limit
    try:
        torch.save({"state_dict": {"w": torch.zeros(2)}, "config": {"model": "BASIC", "deep": value}}, path)
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(UserError, match="nested more than"):
        checkpoint.read(path)
    proc = call_script(REPO_ROOT / "codes" / "demo_deploy.py", "--pre_train", path, "--scale=4", "--cpu",
                      *isolated(tmp_path))
    assert_one_line_error(proc, str(path), "nested more than")
