"""The user's path through the command line, at full size and as typed: official state_dicts of every network load
with no size flag whatever --dataset is; `--patch_size` is the HR patch (EDSR's meaning) and the HSENet README's
commands run as typed; a command that loads a run without --pre_train takes the newest run of that model and scale,
says so, and the metric script scores what deploy wrote; older checkpoints convert and resume exactly."""
import json
import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import checkpoint
from conftest import REPO_ROOT
from helpers import SAMPLE, assert_one_line_error, call_script, isolated
from model import network_spec
from option import parse_args

# The official code's default configuration of each network (its constructor defaults, README and templates), the
# size the authors' released files have.
FULL_SIZE = {
    "HSENET": ["--n_feats=64", "--n_basic_modules=10"],
    "CONVFORMERSR": ["--embed_dim=96", "--depths=6,6,6,6", "--num_heads=6,6,6,6", "--num_block=4", "--window_size=8",
                     "--mlp_ratio=4"],
    "SRCNN": [], "VDSR": [], "LGCNET": [], "DCM": [], "FSRCNN": [],
    "TRANSENET": ["--n_feats=64", "--en_depth=8", "--de_depth=1", "--patch_size=192"],  # 48 LR pixels at x4
    "EDSR": ["--n_resblocks=32", "--n_feats=256", "--res_scale=0.1"],
    "RCAN": ["--n_resgroups=10", "--n_resblocks=20", "--n_feats=64", "--reduction=16"],
    "SWINIR": ["--embed_dim=180", "--depths=6,6,6,6,6,6", "--num_heads=6,6,6,6,6,6", "--window_size=8",
               "--mlp_ratio=2"],
}
# A flag per network whose full-size value differs from the Sample preset: config.txt must show it came from the file.
SHAPE_FLAG = {"HSENET": "n_feats = 64", "CONVFORMERSR": "embed_dim = 96", "TRANSENET": "en_depth = 8",
              "EDSR": "n_feats = 256", "RCAN": "n_resgroups = 10", "SWINIR": "embed_dim = 180"}


def run(script_dir, *args, ok=True):
    """A script run the way a user runs it: `python SCRIPT ...` from its folder."""
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=script_dir, capture_output=True, text=True,
                          timeout=1200)
    if ok:
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def official_state_dict(model, scale=4):
    """A full-size state_dict with random weights and the official key names, saved as the official code saves."""
    cfg = parse_args([f"--model={model}", f"--scale={scale}", "--dataset=Official", *FULL_SIZE[model]],
                     purpose="none")
    return network_spec(model).make_model(cfg).state_dict()


def mosaic_source(folder, classes=("a", "b"), per_class=5):
    """Real pixels in a UC Merced-like layout: 240x240 mosaics of 2x2 Sample HR tiles, in class folders."""
    tiles = sorted((SAMPLE / split / "HR" / name) for split in ("train", "val", "test")
                   for name in sorted(p.name for p in (SAMPLE / split / "HR").iterdir()))
    for index in range(len(classes) * per_class):
        four = [iio.imread(path) for path in tiles[4 * index:4 * index + 4]]
        mosaic = np.concatenate([np.concatenate(four[:2], axis=1), np.concatenate(four[2:], axis=1)], axis=0)
        target = folder / classes[index // per_class] / f"{classes[index // per_class]}{index:02d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(target, mosaic)
    return folder


@pytest.fixture(scope="module")
def mosaic_dataset(tmp_path_factory):
    """A small dataset in the UC Merced layout (train 6, val 2, test 2; 240x240 HR), made by prepare_dataset.py."""
    base = tmp_path_factory.mktemp("mosaic")
    source = mosaic_source(base / "src")
    run(REPO_ROOT, "codes/data_scripts/prepare_dataset.py", "--src", source, "--dst", base / "Mosaic",
        "--split", "0.6,0.2,0.2")
    return base / "Mosaic"


@pytest.mark.parametrize("model", sorted(FULL_SIZE))
def test_an_official_full_size_file_deploys_fine_tunes_tests_and_exports_with_no_size_flag(tmp_path, model,
                                                                                            mosaic_dataset, capsys):
    """Deploy runs as a user types it (a process of its own); fine-tuning, --test_only and the export run the same
    scripts' main() in this process, sparing three interpreter starts per network (every script's command line is
    run as typed by test_readme.py)."""
    import demo_train
    import export_onnx

    state = official_state_dict(model)
    official = tmp_path / f"{model.lower()}_x4.pt"
    torch.save(state, official)
    codes, where = REPO_ROOT / "codes", isolated(tmp_path)
    base = [f"--model={model}", "--scale=4", f"--pre_train={official}", "--cpu", *where]
    # deploy on the default dataset (the Sample, whose preset is a small network)
    deploy = run(codes, "demo_deploy.py", *base)
    assert "4 images ->" in deploy.stdout
    assert len(list((tmp_path / "experiment" / "results" / f"{model}x4_Sample").glob("*.png"))) == 4
    # fine-tune: the architecture comes from the file; TransENet's fixed 48-pixel input needs LR larger than the
    # Sample's 30 pixels, so it fine-tunes on the mosaic dataset
    data = ["--dataset=Mosaic", f"--dir_data={mosaic_dataset}"] if model == "TRANSENET" else []
    assert demo_train.main([*base, *data, "--epochs=1", "--test_every=1", "--batch_size=1", "--save=ft"]) == 0
    run_dir = tmp_path / "experiment" / "ft"
    tuned = torch.load(run_dir / "model" / "model_latest.pt", weights_only=True)["model"]
    assert {k: tuple(v.shape) for k, v in tuned.items()} == {k: tuple(v.shape) for k, v in state.items()}
    if model in SHAPE_FLAG:
        assert f"{SHAPE_FLAG[model]}  (checkpoint)" in (run_dir / "config.txt").read_text()
    # --test_only on the official file itself
    capsys.readouterr()
    assert demo_train.main([*base, "--test_only", "--save=tested"]) == 0
    assert "psnr" in capsys.readouterr().out
    # ONNX export (a small tile keeps the graph quick to verify; TransENet's tile is its fixed input)
    tile = [] if model == "TRANSENET" else ["--tile=32"]
    out = tmp_path / f"{model.lower()}.onnx"
    assert export_onnx.main([*base, *tile, f"--out={out}"]) == 0
    assert out.stat().st_size > 0


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory, mosaic_dataset):
    """A fresh clone's files with the mosaic dataset prepared as datasets/UCMerced."""
    root = tmp_path_factory.mktemp("clone") / "repo"
    for part in ("codes", "metric_scripts", "datasets"):
        shutil.copytree(REPO_ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "UCMerced"))
    shutil.copytree(mosaic_dataset, root / "datasets" / "UCMerced")
    (root / "experiment").mkdir()
    return root


def typed(folder, command, *bounds):
    """A command exactly as typed (`python X.py --flag=...`), plus only --epochs / --test_every to bound it."""
    return run(folder, *command.split()[1:], *bounds)


def test_the_hsenet_readme_commands_run_as_typed_and_deploy_uses_the_run_training_wrote(repo_copy):
    codes, metric_scripts, experiment = repo_copy / "codes", repo_copy / "metric_scripts", repo_copy / "experiment"
    sample = typed(codes, "python demo_train.py --model=HSENET --scale=4", "--epochs=1")  # the Sample run exists
    # a run below bicubic says so at the end, with the likely cause
    assert "is below bicubic's" in sample.stdout and "Sample preset" in sample.stdout
    typed(codes, "python demo_train.py --model=HSENET --dataset=UCMerced --scale=4 --patch_size=192 --ext=img "
                 "--save=HSENETx4_UCMerced", "--epochs=1", "--test_every=1")
    config = (experiment / "HSENETx4_UCMerced" / "config.txt").read_text()
    assert "patch_size = 192  (command line)" in config and "n_feats = 64  (model preset)" not in config
    deploy = typed(codes, "python demo_deploy.py --model=HSENET --scale=4")
    first = deploy.stdout.splitlines()[0]
    assert first.startswith(f"run: {experiment / 'HSENETx4_UCMerced'} (the newest HSENET x4 run")
    assert "--save HSENETx4_Sample" in first and "dataset UCMerced" in first
    results = experiment / "results" / "HSENETx4_UCMerced"
    assert len(list(results.glob("*.png"))) == 2  # the UC Merced-layout test split, not the Sample's 4
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["checkpoint"].endswith("HSENETx4_UCMerced/model/model_best.pt")
    score = typed(metric_scripts, "python calculate_PSNR_SSIM.py")
    assert f"SR {results}" in score.stdout and (results / "psnr_ssim.csv").is_file()
    # --test_only and the export choose the same run
    tested = typed(codes, "python demo_train.py --model=HSENET --scale=4 --test_only")
    assert "HSENETx4_UCMerced" in tested.stdout.splitlines()[0]
    run(codes, "export_onnx.py", "--model=HSENET", "--scale=4", "--tile=32")
    assert (experiment / "onnx" / "HSENETx4_UCMerced.onnx").is_file()
    # --dataset or --save picks another run
    sample_deploy = typed(codes, "python demo_deploy.py --model=HSENET --scale=4 --dataset=Sample")
    assert "run:" not in sample_deploy.stdout
    assert len(list((experiment / "results" / "HSENETx4_Sample").glob("*.png"))) == 4


def test_a_patch_larger_than_the_images_names_the_hr_meaning_and_the_largest_that_fits(tmp_path):
    proc = run(REPO_ROOT / "codes", "demo_train.py", "--model=BASIC", "--scale=4", "--patch_size=192", "--cpu",
               *isolated(tmp_path), ok=False)
    assert_one_line_error(proc, "--patch_size 192 (the HR patch, as in EDSR and HSENet: 48 LR pixels at x4)",
                          "pass --patch_size 120 or less")


def test_a_patch_that_is_not_a_multiple_of_the_scale_is_refused_when_parsed(tmp_path):
    proc = run(REPO_ROOT / "codes", "demo_train.py", "--model=BASIC", "--scale=3", "--patch_size=100",
               *isolated(tmp_path), ok=False)
    assert_one_line_error(proc, "--patch_size 100 is the HR training patch", "multiple of 3, e.g. 99 or 102")


def test_the_ucmerced_protocol_warns_on_an_incomplete_source(tmp_path):
    source = mosaic_source(tmp_path / "src", classes=("a", "b", "c", "d"), per_class=2)
    proc = run(REPO_ROOT, "codes/data_scripts/prepare_dataset.py", "--src", source, "--dst", tmp_path / "UCM",
               "--protocol", "ucmerced", ok=False)
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "21 classes of 100 images" in warnings[0] and "4 classes of 2 images" in warnings[0]


def downgrade_to_format_1(path):
    """Rewrite one of our checkpoints as format 1 wrote it: no format key, the LR patch, a valid checksum."""
    payload = torch.load(path, weights_only=True)
    payload.pop(checkpoint.FORMAT_KEY)
    config = payload["config"]
    payload["config"] = {**config, "patch_size": config["patch_size"] // config["scale"]}
    payload[checkpoint.CHECKSUM_KEY] = checkpoint.payload_checksum(payload)
    torch.save(payload, path)


def test_a_format_1_checkpoint_with_the_lr_patch_resumes_exactly(tmp_path):
    codes = REPO_ROOT / "codes"
    flags = ["--model=BASIC", "--scale=2", "--n_feats=8", "--n_resblocks=1", "--patch_size=24", "--batch_size=4",
             "--test_every=2", "--cpu", *isolated(tmp_path)]
    for more in (["--epochs=2", "--save=straight"], ["--epochs=1", "--save=resumed"]):
        assert call_script(codes / "demo_train.py", *flags, *more).returncode == 0
    latest = tmp_path / "experiment" / "resumed" / "model" / "model_latest.pt"
    downgrade_to_format_1(latest)
    assert checkpoint.read(latest).recorded["patch_size"] == 24  # 12 LR pixels at x2, read as the HR patch
    resumed = call_script(codes / "demo_train.py", "--save=resumed", "--epochs=2", "--resume", *isolated(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight, resumed = (torch.load(tmp_path / "experiment" / name / "model" / "model_latest.pt",
                                    weights_only=True) for name in ("straight", "resumed"))
    assert straight["config"]["patch_size"] == resumed["config"]["patch_size"] == 24
    for key, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][key]), key
