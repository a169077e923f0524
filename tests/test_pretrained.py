"""The shipped models: every entry of pretrained/index.json loads by name through the command line with its checksum
checked; a damaged file or index is one line; `pretrained_zoo.py ship` and `table` make and score an entry."""
import csv
import json
import shutil

import pytest
import torch

import demo_deploy
import demo_train
import pretrained
import pretrained_zoo
from conftest import REPO_ROOT
from errors import UserError
from helpers import CODES, SAMPLE, call_script, isolated
from test_user_path import mosaic_source

SHIPPED = pretrained.read_index()


@pytest.mark.parametrize("entry", SHIPPED, ids=[e["name"] for e in SHIPPED])
def test_every_shipped_model_loads_by_name_and_beats_bicubic_on_its_recorded_test_split(tmp_path, entry):
    out = tmp_path / "sr"
    proc = call_script(CODES / "demo_deploy.py", f"--pre_train={entry['name']}", f"--scale={entry['scale']}",
                       f"--dir_out={out}", *isolated(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(out.glob("*.png"))) == len(list((SAMPLE / "test" / "HR").iterdir()))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == entry["model"]  # the model came from the shipped file, not from a flag
    assert pretrained.file_digest(pretrained.PRETRAINED_DIR / entry["file"]) == entry["sha256"]
    test = entry["test"]
    assert test["psnr_chmean"] >= test["bicubic_psnr_chmean"] + 0.3, entry["name"]
    assert entry["training"]["iterations"] > 0 and entry["split"]["classes"] > 0


@pytest.fixture
def own_zoo(tmp_path, monkeypatch):
    """pretrained/ in a folder of the test's own."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", folder)
    monkeypatch.setattr(pretrained, "INDEX", folder / "index.json")
    return folder


def test_ship_then_table_scores_the_model_and_bicubic_on_the_test_split(tmp_path, own_zoo, capsys):
    source = mosaic_source(tmp_path / "src", classes=("a", "b"), per_class=5)
    root = tmp_path / "UCM"
    pretrained_zoo.prepare_dataset.main(["--src", str(source), "--dst", str(root), "--split", "0.6,0.2,0.2"])
    train = ["--model=BASIC", "--scale=2", "--n_feats=8", "--n_resblocks=1", "--patch_size=48", "--batch_size=2",
             "--test_every=3", "--epochs=2", "--dataset=UCMerced", f"--dir_data={root}", "--save=run", "--cpu",
             *isolated(tmp_path)]
    demo_train.main(train)
    pretrained_zoo.main(["ship", "--run", str(tmp_path / "experiment" / "run"), "--name", "tiny_x2", "--data",
                         "mosaics of the Sample", "--classes", "2", "--gsd", "30"])
    entry = pretrained.find("tiny_x2")
    assert entry["split"] == {"protocol": "ucmerced", "seed": 0, "classes": 2, "train": 6, "val": 2, "test": 2}
    assert entry["training"]["iterations"] == 6 and entry["training"]["batch"] == 2
    shipped = torch.load(own_zoo / "tiny_x2.pt", weights_only=True)
    assert "optimizer" not in shipped and set(shipped["model"]) == set(
        torch.load(tmp_path / "experiment" / "run" / "model" / "model_best.pt", weights_only=True)["model"])
    pretrained_zoo.main(["table", "--dir_data", str(root), "--dir_out", str(tmp_path / "table"), "--write", "--cpu"])
    printed = capsys.readouterr().out
    scored = pretrained.find("tiny_x2")["test"]
    row = next(line for line in printed.splitlines() if line.startswith("| tiny_x2 |"))
    assert f"| {scored['psnr_chmean']:.2f} |" in row and f"| {scored['bicubic_psnr_chmean']:.2f} |" in row
    with open(tmp_path / "table" / "bicubic_x2" / "psnr_ssim.csv", newline="") as f:  # the metric script's numbers
        average = next(r for r in csv.DictReader(f) if r["image"] == "average")
    assert float(average["psnr_chmean"]) == pytest.approx(scored["bicubic_psnr_chmean"], abs=1e-4)


def test_a_damaged_shipped_file_or_index_is_one_line(tmp_path, own_zoo):
    if not SHIPPED:
        pytest.skip("no shipped model")
    entry = SHIPPED[0]
    shutil.copy(REPO_ROOT / "pretrained" / "index.json", own_zoo / "index.json")
    damaged = bytearray((REPO_ROOT / "pretrained" / entry["file"]).read_bytes())
    damaged[len(damaged) // 2] ^= 1
    (own_zoo / entry["file"]).write_bytes(bytes(damaged))
    flags = [f"--pre_train={entry['name']}", f"--scale={entry['scale']}", *isolated(tmp_path)]
    with pytest.raises(UserError, match=f"--pre_train {entry['name']}: .* does not match its sha256"):
        demo_deploy.main(flags)
    (own_zoo / "index.json").write_text(json.dumps({"models": [{**entry, "scale": "4"}]}))
    with pytest.raises(UserError, match="has an invalid 'scale'"):
        demo_deploy.main(flags)


def test_a_name_means_one_thing(tmp_path, own_zoo, monkeypatch):
    """--pre_train NAME is a shipped model only when it is not a path; a file of the same bare name in the working
    folder makes it ambiguous (one line), and an entry whose file is another model is refused, not loaded."""
    by_name = {entry["name"]: entry for entry in SHIPPED}
    if not {"lgcnet_x2_ucmerced16", "lgcnet_x3_ucmerced16"} <= set(by_name):
        pytest.skip("the LGCNet models are not shipped")
    x2, x3 = by_name["lgcnet_x2_ucmerced16"], by_name["lgcnet_x3_ucmerced16"]
    shutil.copy(REPO_ROOT / "pretrained" / x2["file"], own_zoo / x2["file"])
    shutil.copy(REPO_ROOT / "pretrained" / x3["file"], own_zoo / x3["file"])
    shutil.copy(REPO_ROOT / "pretrained" / "index.json", own_zoo / "index.json")
    flags = ["--pre_train=lgcnet_x2_ucmerced16", "--scale=2", *isolated(tmp_path)]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    shutil.copy(own_zoo / x3["file"], work / "lgcnet_x2_ucmerced16")  # an x3 model under the x2 model's name
    with pytest.raises(UserError, match="both a shipped model and a file of that name"):
        demo_deploy.main(flags)
    (work / "lgcnet_x2_ucmerced16").unlink()
    # an index entry whose file holds another model (x3 for the x2 entry, its checksum made to match)
    (own_zoo / x2["file"]).write_bytes((own_zoo / x3["file"]).read_bytes())
    entries = [{**x2, "sha256": pretrained.file_digest(own_zoo / x2["file"])}, x3]
    (own_zoo / "index.json").write_text(json.dumps({"models": entries}))
    with pytest.raises(UserError, match="records --scale 3 but its entry in .* says 2"):
        demo_deploy.main(flags)
