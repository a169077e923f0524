"""option.parse_args / config.resolve: the precedence table, templates, checkpoint adoption, flag validation, and the
frozen result."""
import json

import pytest
import torch

import checkpoint
import demo_train
import template
from checkpoint import plain_settings
from errors import UserError, run_cli
from helpers import CODES, SAMPLE, assert_one_line_error, call_script, isolated
from model import Model
from option import parse_args


def save_ours(path, **config):
    """A checkpoint of ours (tiny BASIC weights are not needed to resolve settings: an empty state is enough)."""
    checkpoint.save(path, {"model": {"w": torch.zeros(1)}, "config": config})
    return path


def dataset_root(tmp_path, **meta):
    root = tmp_path / "data"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


# ------------------------------------------------------------------------------------------------- precedence
def test_each_layer_overrides_the_one_below(tmp_path, monkeypatch):
    """built-in defaults < model preset < dataset metadata < Sample preset < --template < checkpoint < command line,
    shown on flags that several layers set at once."""
    monkeypatch.setitem(template.MODEL_PRESETS, "BASIC", dict(lr=1e-3, epochs=11, lr_decay=7, gamma=0.3,
                                                              n_resblocks=3))
    monkeypatch.setitem(template.SAMPLE_PRESETS, ("BASIC", "Mine"), dict(epochs=12, lr_decay=8, n_resblocks=5))
    monkeypatch.setitem(template.PRESETS_BY_NAME, "T", dict(lr_decay=9, n_resblocks=6, n_feats=20))
    root = dataset_root(tmp_path, bands=["b", "g", "r", "n"], data_range=1000)
    ckpt = save_ours(tmp_path / "ours.pt", model="BASIC", scale=4, n_resblocks=7, n_feats=21, n_colors=4)
    cfg = parse_args(["--dataset=Mine", f"--dir_data={root}", "--template=T", f"--pre_train={ckpt}", "--n_feats=21",
                      *isolated(tmp_path)])
    expected = {"momentum": (0.9, "default"), "gamma": (0.3, "model preset"), "lr": (1e-3, "model preset"),
                "data_range": (1000.0, "dataset metadata"), "bands": (["b", "g", "r", "n"], "dataset metadata"),
                "epochs": (12, "sample preset"), "lr_decay": (9, "template T"),
                "n_resblocks": (7, "checkpoint"), "n_colors": (4, "checkpoint"), "n_feats": (21, "command line")}
    for key, (value, source) in expected.items():
        assert (getattr(cfg, key), cfg.sources[key]) == (value, source), key
    assert "n_resblocks = 7  (checkpoint)" in cfg.describe() and "momentum = 0.9\n" in cfg.describe()


def test_presets_fill_only_what_the_user_left_out():
    cfg = parse_args(["--model=HSENET", "--dataset=UCMerced", "--batch_size=2"])
    settings = (cfg.epochs, cfg.lr, cfg.lr_decay, cfg.gamma, cfg.patch_size, cfg.batch_size)
    assert settings == (500, 1e-4, 400, 0.5, 192, 2)  # the HR patch: 48 LR pixels at x4
    sample = parse_args(["--model=HSENET"])
    assert sample.epochs < 10 and sample.save == "HSENETx4_Sample"
    ms = parse_args(["--model=CONVFORMERSR", "--dataset=SampleMS", "--scale=3"])
    assert ms.n_colors == 4 and ms.bands == ["blue", "green", "red", "nir"]  # from datasets/SampleMS/dataset.json
    assert ms.sources["bands"] == "dataset metadata"
    assert parse_args(["--cpu"]).cpu is True and parse_args([]).cpu is False


def test_a_template_that_sets_the_model_brings_that_models_presets():
    """The bug: presets were chosen from --model/--dataset before the template changed them."""
    hsenet = parse_args(["--template=HSENET_UCMerced"])
    assert (hsenet.model, hsenet.dataset) == ("HSENET", "UCMerced")
    assert (hsenet.n_feats, hsenet.epochs, hsenet.batch_size) == (64, 500, 4)  # not BASIC's Sample preset (32, 30, 8)
    light = parse_args(["--template=CONVFORMERSR_light", "--dataset=UCMerced"])
    assert (light.model, light.embed_dim) == ("CONVFORMERSR", 60)
    assert (light.decay_type, light.milestones, light.batch_size) == ("multistep", [250, 400, 450, 475], 8)
    on_sample = parse_args(["--template=CONVFORMERSR_light"])
    assert on_sample.epochs == template.SAMPLE_PRESETS["CONVFORMERSR", "Sample"]["epochs"]  # its Sample preset


def test_band_names_from_a_lower_layer_are_dropped_when_a_higher_one_changes_the_band_count():
    cfg = parse_args(["--n_colors=4"])  # the Sample's dataset.json names 3 bands
    assert cfg.bands is None and cfg.sources["bands"].startswith("dropped")
    with pytest.raises(UserError, match=r"--bands red,green,blue \(command line\) names 3 bands but --n_colors 4"):
        parse_args(["--n_colors=4", "--bands=red,green,blue"])  # the same on the command line is a contradiction


def test_the_configuration_is_frozen():
    cfg = parse_args([])
    with pytest.raises(AttributeError, match="frozen"):
        cfg.n_feats = 3
    assert not hasattr(cfg, "replace")  # nothing after config.resolve makes another configuration


# ------------------------------------------------------------------------------------------ checkpoint adoption
def test_our_checkpoint_brings_model_scale_and_architecture_unless_given(tmp_path):
    ckpt = save_ours(tmp_path / "hse.pt", model="HSENET", scale=3, n_feats=16, n_basic_modules=2, data_range=10000.0,
                     bands=["blue", "green", "red"], lr=0.5)
    deploy = parse_args([f"--pre_train={ckpt}", *isolated(tmp_path)], purpose="deploy")
    assert (deploy.model, deploy.scale, deploy.n_feats, deploy.n_basic_modules) == ("HSENET", 3, 16, 2)
    assert deploy.data_range == 10000.0 and deploy.bands == ["blue", "green", "red"]  # the training radiometry
    assert deploy.lr != 0.5  # a training setting is not adopted outside --resume
    assert deploy.checkpoint_path == str(ckpt.resolve())
    fine_tune = parse_args([f"--pre_train={ckpt}", *isolated(tmp_path)])
    assert fine_tune.data_range is None and fine_tune.bands == ["red", "green", "blue"]  # the new data's own
    with pytest.raises(UserError, match=r"hse\.pt was trained with --n_feats 16, not 32: drop --n_feats"):
        parse_args([f"--pre_train={ckpt}", "--n_feats=32", *isolated(tmp_path)], purpose="deploy")
    with pytest.raises(UserError, match="was trained with --model HSENET, not BASIC"):
        parse_args([f"--pre_train={ckpt}", "--model=BASIC", *isolated(tmp_path)], purpose="deploy")


def test_resume_adopts_every_training_setting_but_the_command_line_wins(tmp_path):
    run = tmp_path / "experiment" / "run" / "model"
    run.mkdir(parents=True)
    save_ours(run / checkpoint.LATEST, model="BASIC", scale=2, n_feats=16, n_resblocks=2, lr=3e-3, epochs=5,
              loss="1*MSE", cpu=True, n_threads=3)
    cfg = parse_args(["--save=run", "--resume", "--epochs=9", *isolated(tmp_path)])
    assert cfg.purpose == "resume" and (cfg.scale, cfg.n_feats, cfg.n_resblocks) == (2, 16, 2)
    assert (cfg.lr, cfg.loss, cfg.epochs) == (3e-3, "1*MSE", 9)
    assert cfg.n_threads == 0 and cfg.cpu is False  # machine settings come from this invocation, never a checkpoint


@pytest.mark.parametrize("recorded, fragment", [({"n_feats": "abc"}, "--n_feats 'abc' is invalid"),
                                                ({"n_feats": -3}, "expected a positive integer"),
                                                ({"scale": 5}, "expected one of 2, 3, 4"),
                                                ({"model": "BASIC", "no_augment": "yes"}, "expected true or false")])
def test_a_crafted_checkpoint_config_is_a_one_line_error(tmp_path, recorded, fragment):
    run = tmp_path / "experiment" / "run" / "model"
    run.mkdir(parents=True)
    save_ours(run / checkpoint.LATEST, **{"model": "BASIC", **recorded})
    with pytest.raises(UserError, match=fragment):
        parse_args(["--save=run", "--resume", *isolated(tmp_path)])
    checkpoint.save(run / checkpoint.LATEST, {"model": {"w": torch.zeros(1)}, "config": ["not", "a", "dict"]})
    with pytest.raises(UserError, match="recorded settings are not a dict"):
        parse_args(["--save=run", "--resume", *isolated(tmp_path)])


# ------------------------------------------------------------------------------------------------------ datasets
def test_an_unknown_dataset_name_is_a_folder_in_the_layout_or_an_error_listing_the_known_ones(tmp_path):
    from data import make_dataset

    cfg = parse_args(["--dataset=MyPairs", f"--dir_data={SAMPLE}", "--scale=2"])
    assert type(make_dataset(cfg, "val")).__name__ == "Paired" and cfg.bands == ["red", "green", "blue"]
    missing = parse_args(["--dataset=Nope", "--scale=2", *isolated(tmp_path)])
    with pytest.raises(UserError, match="--dataset Nope: no such folder .*Sample, SampleMS, UCMerced"):
        make_dataset(missing, "val")


def test_dataset_metadata_is_checked(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(UserError, match="dataset.json: not valid JSON"):
        parse_args([f"--dir_data={root}"])
    (root / "dataset.json").write_text(json.dumps({"data_range": -2}))
    with pytest.raises(UserError, match="'data_range' -2 is outside 1e-06 to 4.29497e"):
        parse_args([f"--dir_data={root}"])
    # band names are the --bands flag's items: a comma or an empty name would change their count, a repeat feeds
    # the network one band twice
    for bands, fragment in ((["red,green", "x", "y"], "holds an empty name or one with a comma"),
                            (["", "", ""], "holds an empty name or one with a comma"),
                            (["red", "Red", "blue"], "names red more than once")):
        (root / "dataset.json").write_text(json.dumps({"bands": bands}))
        with pytest.raises(UserError, match=f"dataset.json: 'bands' {fragment}"):
            parse_args([f"--dir_data={root}"])


def test_band_names_given_twice_are_refused_from_the_command_line_and_from_a_checkpoint(tmp_path):
    with pytest.raises(SystemExit):
        parse_args(["--bands=red,red,red"])
    cfg = parse_args(["--model=BASIC", "--n_feats=8", "--n_resblocks=1", "--scale=2", "--cpu"], purpose="none")
    for bands, fragment in ((["red", "red", "red"], "red given more than once"),
                            (["red,green", "x", "y"], "an item is empty or holds a comma")):
        path = tmp_path / "bands.pt"
        checkpoint.save(path, {"model": Model(cfg).model.state_dict(), "config": dict(plain_settings(cfg),
                                                                                       bands=bands)})
        with pytest.raises(UserError, match=f"bands.pt.*--bands .* is invalid \\({fragment}"):
            parse_args([f"--pre_train={path}", "--cpu", *isolated(tmp_path)], purpose="deploy")


# ------------------------------------------------------------------------------------------------ flag checks
@pytest.mark.parametrize("flag, fragment", [
    ("--lr=-1", "--lr: expected a positive number, got -1"), ("--lr=nan", "--lr: expected a finite number"),
    ("--n_threads=-1", "--n_threads: expected an integer >= 0"), ("--betas=0.9", "--betas: expected two numbers"),
    ("--gamma=-3", "--gamma: expected a positive number"), ("--test_every=-5", "--test_every: expected an integer"),
    ("--tile=-5", "--tile: expected an integer >= 0"), ("--epochs=0", "--epochs: expected a positive integer"),
    ("--data_range=0", "--data_range: expected a white level from 1e-6"),
    ("--momentum=1.5", "--momentum: expected a number"),
    ("--max_pixels=-1", "--max_pixels: expected a positive integer"), ("--depths=6,x", "--depths")])
def test_every_numeric_flag_is_validated_in_one_line(tmp_path, capsys, flag, fragment):
    """In-process through run_cli, as the script runs it (test_train runs one such case as a real subprocess)."""
    with pytest.raises(SystemExit) as stop:
        run_cli(demo_train.main, [flag, *isolated(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert not (tmp_path / "experiment").exists()


def test_an_epoch_too_long_to_shuffle_in_memory_is_refused_before_the_run(tmp_path):
    """The sampler shuffles an epoch of --test_every x --batch_size patches as one list: 10**12 batches would take
    the machine's memory before the first batch; they are budgeted first, and no run folder is made."""
    proc = call_script(CODES / "demo_train.py", "--test_every=1000000000000", *isolated(tmp_path))
    assert_one_line_error(proc, "--test_every 1000000000000 x --batch_size 8 (8,000,000,000,000 patches per epoch",
                          "lower --test_every")
    assert not (tmp_path / "experiment").exists()


@pytest.mark.parametrize("flags, fragment", [(["--reset", "--resume"], "--reset and --resume contradict"),
                                             (["--reset", "--test_only"], "would delete the model to be tested"),
                                             (["--n_GPUs=2"], "torchrun --standalone --nproc_per_node 2")])
def test_contradictory_flags_are_usage_errors(tmp_path, flags, fragment):
    assert_one_line_error(call_script(CODES / "demo_train.py", *flags, *isolated(tmp_path)), fragment)


def test_each_architecture_flag_help_names_the_networks_that_read_it():
    """The help of a network-size flag starts with the networks whose files read it (cfg.<flag>), all of them."""
    import re

    from option import build_parser
    from paths import REPO_ROOT

    sources = {path.stem: path.read_text() for path in (REPO_ROOT / "codes" / "model").glob("*.py")}
    names = {"basic": "BASIC", "edsr": "EDSR", "rcan": "RCAN", "hsenet": "HSENet", "transenet": "TransENet",
             "convformersr": "ConvFormerSR", "swinir": "SwinIR"}
    flags = ["n_resblocks", "n_feats", "res_scale", "n_basic_modules", "embed_dim", "depths", "num_heads",
             "window_size", "mlp_ratio", "drop_path_rate", "num_block", "img_size", "embed_patch_size", "img_range",
             "n_resgroups", "reduction", "en_depth", "de_depth"]
    helps = {dest: action.help for dest, action in build_parser().flags().items()}
    for flag in flags:
        readers = sorted(names[stem] for stem, text in sources.items()
                         if stem in names and re.search(rf"cfg\.{flag}\b", text))
        named = sorted(part.strip() for part in helps[flag].split(":")[0].split(","))
        assert named == readers, (flag, named, readers)


def test_the_order_of_precedence_is_stated_once_and_shown_as_stated():
    """config.PRECEDENCE is the order; config.py's docstring and docs/training.md show that very line."""
    import re

    import config
    from paths import REPO_ROOT

    stated = " < ".join(config.PRECEDENCE)
    for text in (config.__doc__, (REPO_ROOT / "docs" / "training.md").read_text()):
        assert stated in re.sub(r"\s+", " ", text)


def test_deploy_help_lists_the_flags_deploy_reads_only():
    """--help of demo_deploy.py: no training flag, no export-only flag, every deploy flag (still accepted if given)."""
    shown = call_script(CODES / "demo_deploy.py", "--help").stdout
    for flag in ("--epochs", "--lr ", "--loss", "--batch_size", "--resume", "--reset", "--time_budget", "--nodata",
                 "--dynamic_shape", "--resolution"):
        assert flag not in shown, flag
    for flag in ("--dir_data", "--dataset", "--tile", "--align_to", "--backend", "--onnx", "--precision", "--pre_train",
                 "--compare", "--cog", "--input_bands", "--save"):
        assert flag in shown, flag
    assert "--epochs" in call_script(CODES / "demo_train.py", "--help").stdout
