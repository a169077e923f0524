"""The run configuration: resolved once, in a stated order of precedence, then frozen.

    built-in defaults < model preset < dataset metadata < Sample preset < --template < official defaults
        < chosen run < checkpoint < command line

- The model and the dataset are decided first (command line > checkpoint > template > default), so the presets are
  chosen from the model and dataset the run really uses (a template that sets --model brings that model's preset).
- Dataset metadata is `<dataset root>/dataset.json` (band names, white level, ground sample distance).
- The checkpoint layer holds what the checkpoint this purpose loads records (ours: the architecture, the model and
  scale, plus the radiometry for evaluation and deploy, or every training setting on --resume) or implies (an
  official state_dict's shapes). A command-line value that contradicts the architecture a checkpoint was trained
  with is an error, since such a run could only fail to load or compute garbage.
- Official defaults: an official state_dict fixes what its shapes imply (checkpoint layer); every other
  architecture flag takes the official code's default (the model preset, else the built-in default), never a Sample
  preset, so the authors' files load as they are whatever --dataset is.
- Chosen run: --test_only, deploy and export without --pre_train load a run's model_best.pt. --save names it;
  else --dataset names the default run <MODEL>x<scale>_<dataset>; else the newest run of that model and scale is
  taken, with the dataset it was trained on (its test split), and the first line of output says which.
- Presets state the LR training patch (`lr_patch`); `--patch_size` is the HR patch (EDSR's meaning), so presets
  become flags at the run's scale (template.at_scale).
- Nothing changes the configuration afterwards (setting an attribute raises); `describe()` says where each value
  came from, e.g. `n_feats = 16  (checkpoint)`, for config.txt.
"""
import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import torch

import atomic
import budget
import checkpoint
import image_io
import runs
import template
from errors import UserError
from model import network_module
from paths import DATASETS_DIR
from radiometry import range_problem

DATASET_METADATA = "dataset.json"
# prepare_dataset.py marks a root it is writing; dataset.json is written last and the mark then removed, so a killed
# preparation is never mistaken for a dataset.
PREPARING_MARK = ".preparing"
PURPOSES = ("train", "resume", "test", "deploy", "export", "none")


class Config(argparse.Namespace):
    """The resolved settings as attributes (cfg.scale, ...), frozen. `purpose`, `checkpoint_path` and `sources` are
    part of it."""

    def __init__(self, values, sources):
        super().__init__(**values)
        object.__setattr__(self, "sources", dict(sources))
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"the configuration is resolved and frozen: decide {name} in option.py/config.py")
        super().__setattr__(name, value)

    def values(self):
        """{flag: value} of the settings (not `sources`)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "sources"}

    def replace(self, **changes):
        """A new Config with some values changed (their source: 'replaced')."""
        return Config({**self.values(), **changes}, {**self.sources, **dict.fromkeys(changes, "replaced")})

    def describe(self):
        """One line per setting, with where it came from when it is not a built-in default."""
        lines = []
        for key, value in sorted(self.values().items()):
            source = self.sources.get(key, "default")
            lines.append(f"{key} = {value}" + (f"  ({source})" if source != "default" else ""))
        return "\n".join(lines)


def explicit_flags(parser, argv):
    """The option names that the user wrote on the command line."""
    probe = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        if action.nargs == 0:
            probe.add_argument(*action.option_strings, dest=action.dest, action="store_const", const=True)
        else:
            probe.add_argument(*action.option_strings, dest=action.dest)
    known, _ = probe.parse_known_args(argv)
    return set(vars(known))


def read_dataset_metadata(root):
    """The dataset.json of a dataset root as a dict ({} when there is none). Keys: bands (names in file order),
    data_range (white level, null: from the dtype), gsd (ground sample distance of HR, in metres), description."""
    path = Path(root) / DATASET_METADATA
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); fix or delete it") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: expected a JSON object with bands / data_range / gsd")
    bands = meta.get("bands")
    if bands is not None and (not isinstance(bands, list) or not all(isinstance(b, str) for b in bands)):
        raise UserError(f"{path}: 'bands' must be a list of band names, e.g. [\"blue\", \"green\", \"red\", \"nir\"]")
    data_range, gsd = meta.get("data_range"), meta.get("gsd")
    if data_range is not None and range_problem(data_range):
        raise UserError(f"{path}: 'data_range' {range_problem(data_range)}; it must be the file value of full "
                        f"white (e.g. 255, 65535 or 10000) or null")
    if gsd is not None and range_problem(gsd, (1e-6, 1e6)):
        raise UserError(f"{path}: 'gsd' {range_problem(gsd, (1e-6, 1e6))}; it must be the HR pixel size in "
                        f"metres or null")
    description = meta.get("description")
    if description is not None and not isinstance(description, str):
        raise UserError(f"{path}: 'description' must be text")
    return meta


def check_complete(root):
    """A root that prepare_dataset.py did not finish writing is refused, in one line."""
    if (Path(root) / PREPARING_MARK).exists():
        raise UserError(f"{root} is an incomplete dataset: prepare_dataset.py was stopped while writing it (it holds "
                        f"{PREPARING_MARK} and no finished dataset.json); run prepare_dataset.py again with "
                        f"--overwrite")


def write_dataset_metadata(root, bands=None, data_range=None, gsd=None, description="", dtype=None):
    """Write <root>/dataset.json (see read_dataset_metadata); None values are written as null."""
    meta = {"description": description, "bands": bands, "data_range": data_range, "gsd": gsd}
    if dtype is not None:  # the prepared data's dtype (prepare_dataset.py); older files have no such key
        meta["dtype"] = dtype
    atomic.write_text(Path(root) / DATASET_METADATA, json.dumps(meta, indent=2) + "\n")


def metadata_flags(meta):
    """The flags dataset metadata sets."""
    flags = {}
    if meta.get("bands"):
        flags["bands"] = [b.lower() for b in meta["bands"]]
        flags["n_colors"] = len(meta["bands"])
    if meta.get("data_range") is not None:
        flags["data_range"] = float(meta["data_range"])
    return flags


def resolve(parser, argv, purpose):
    """Parse argv and build the frozen Config for `purpose` (see PURPOSES; 'train' becomes 'resume' or 'test' with
    --resume or --test_only)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parsed = parser.parse_args(argv)
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    defaults = normalise({dest: a.default for dest, a in actions.items()})
    cli = normalise({k: getattr(parsed, k) for k in explicit_flags(parser, argv)})
    check_usage(cli)
    purpose = effective_purpose(purpose, cli)
    named = [(f"template {name}", preset) for name, preset in template.named(cli.get("template", defaults["template"]))]
    pick = Picker(cli, named, defaults)
    ckpt, ckpt_layer, module, chosen_run = checkpoint_layer(purpose, pick, actions)
    picked = {**chosen_run, **ckpt_layer}
    model, dataset, scale = pick("model", picked), pick("dataset", picked), pick("scale", picked)
    dataset_root = pick("dir_data", picked) or DATASETS_DIR / dataset
    templates = [(label, checked_layer(actions, f"--{label}", template.at_scale(preset, scale)))
                 for label, preset in named]
    official = official_defaults(module, model, scale, defaults) if ckpt is not None and not ckpt.ours else {}
    layers = [("model preset", template.at_scale(template.MODEL_PRESETS.get(model, {}), scale)),
              ("dataset metadata", metadata_flags(read_dataset_metadata(dataset_root))),
              ("sample preset", template.at_scale(template.SAMPLE_PRESETS.get((model, dataset), {}), scale)),
              *templates,
              ("official defaults", official),
              ("chosen run", chosen_run),
              ("checkpoint", ckpt_layer),
              ("command line", cli)]
    values, sources = merge(defaults, layers)
    if not values["save"]:
        values["save"] = runs.run_name(values["model"], values["scale"], values["dataset"])
        sources["save"] = "derived"
    values.update(purpose=purpose, checkpoint_path=str(ckpt.path) if ckpt else "")
    sources.update(purpose="derived", checkpoint_path="derived")
    check_patch(values)
    if purpose == "train" and sources["patch_size"] not in ("command line", "checkpoint"):
        fit_patch_to_data(values, sources, module, dataset_root)
    if ckpt is not None:
        check_against_checkpoint(cli, ckpt, ckpt_layer, checkpoint.architecture_flags(module))
    check_combination(values)
    check_network(values, sources, module)
    return Config(values, sources)


class Picker:
    """A value before the layers are merged, for the decisions the layers depend on (model, dataset, run folder):
    command line > checkpoint (when given) > the last template that sets it > default."""

    def __init__(self, cli, templates, defaults):
        self.cli, self.templates, self.defaults = cli, templates, defaults

    def given(self, key):
        """Whether the command line or a template sets `key`."""
        return key in self.cli or any(key in preset for _, preset in self.templates)

    def __call__(self, key, checkpoint_layer=None):
        if key in self.cli:
            return self.cli[key]
        if checkpoint_layer and key in checkpoint_layer:
            return checkpoint_layer[key]
        for _, preset in reversed(self.templates):
            if key in preset:
                return preset[key]
        return self.defaults[key]


def checkpoint_layer(purpose, pick, actions):
    """(checkpoint or None, its layer of settings, the network module of the model the run uses, the chosen-run
    layer: the run folder and data of a run chosen as the newest, else {})."""
    model = pick("model")
    module = network_module(model)
    if purpose == "none":
        return None, {}, module, {}
    needs_weights = not getattr(module, "PARAMETER_FREE", False)
    chosen_run = {}
    if purpose in ("test", "deploy", "export") and needs_weights and not pick("pre_train"):
        chosen_run = choose_run(pick, model, actions)
    save = chosen_run.get("save") or pick("save") or runs.run_name(model, pick("scale"), pick("dataset"))
    path = checkpoint.locate(purpose, pick("pre_train"), runs.run_dir(save, pick("dir_experiment")),
                             needs_weights=needs_weights, train_flags=f"--model={model} --scale={pick('scale')}")
    if path is None:
        return None, {}, module, chosen_run
    ckpt = checkpoint.read(path)
    layer = checked_layer(actions, str(ckpt.path), normalise(ckpt.settings(purpose, module, set(actions))),
                          hint="; the checkpoint was not written by this toolbox or is damaged")
    return ckpt, layer, network_module(pick("model", layer)), chosen_run


def choose_run(pick, model, actions):
    """The run --test_only, deploy and export load when no --pre_train is given, as a layer ({} when --save or
    --dataset names it). Otherwise the newest run of this model and scale (by its model_best.pt), with the dataset
    it was trained on; the choice is printed, naming the others and the flag that picks one."""
    if pick.given("save") or pick.given("dataset"):
        return {}
    scale, experiment = pick("scale"), Path(pick("dir_experiment"))
    candidates = sorted(runs_of(experiment, model, scale), key=lambda run: run[0])
    if not candidates:
        return {}
    _, folder, recorded = candidates[-1]
    layer = {"save": folder.name, "dataset": recorded["dataset"]}
    if recorded.get("dir_data"):
        layer["dir_data"] = recorded["dir_data"]
    layer = checked_layer(actions, str(folder / "model" / checkpoint.BEST), layer)
    others = ", ".join(f"--save {other.name}" for _, other, _ in reversed(candidates[:-1]))
    print(f"run: {folder} (the newest {model} x{scale} run{f'; others: {others}' if others else ''}), on its "
          f"dataset {layer['dataset']}" + (f" ({layer['dir_data']})" if "dir_data" in layer else ""))
    return layer


def runs_of(experiment, model, scale):
    """[(mtime, run folder, recorded settings)] of the runs in `experiment` whose model_best.pt records `model` at
    `scale` and a dataset; a checkpoint that cannot be read is passed over with a note naming it."""
    found = []
    folders = sorted(experiment.iterdir()) if experiment.is_dir() else []
    for folder in folders:
        best = folder / "model" / checkpoint.BEST
        if folder.name in ("results", "cache", "onnx") or not best.is_file():
            continue
        try:
            recorded = checkpoint.read(best).recorded
        except UserError as err:
            print(f"note: passed over while looking for the newest run: {err}")
            continue
        if (str(recorded.get("model", "")).upper() == model and recorded.get("scale") == scale
                and isinstance(recorded.get("dataset"), str)):
            found.append((best.stat().st_mtime, folder, recorded))
    return found


def official_defaults(module, model, scale, defaults):
    """The architecture an official state_dict has where its shapes are silent: the official code's defaults (the
    model preset, else the built-in default) for every architecture flag of `module`."""
    preset = template.at_scale(template.MODEL_PRESETS.get(model, {}), scale)
    return {key: preset.get(key, defaults[key]) for key in checkpoint.architecture_flags(module) if key in defaults}


def checked_layer(actions, where, layer, hint=""):
    """A layer whose every value passes the same checks as the command line (a crafted checkpoint or a typo in a
    preset is a one-line error naming where it came from, never a traceback later)."""
    return {key: checked_value(actions, where, key, value, hint) for key, value in normalise(layer).items()}


def checked_value(actions, where, key, value, hint=""):
    action = actions.get(key)
    if action is None:
        raise UserError(f"{where}: sets an unknown option {key!r}")
    problem = None
    if value is None:
        problem = None if action.default is None else "no value"
    elif action.nargs == 0:
        problem = None if isinstance(value, bool) else "expected true or false"
    elif action.type is not None:
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        try:
            value = normalise({key: action.type(text)})[key]
        except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
            problem = str(err)
    elif not isinstance(value, str):
        problem = f"expected text, got {type(value).__name__}"
    if problem is None and value is not None and action.choices and value not in action.choices:
        problem = f"expected one of {', '.join(map(str, action.choices))}"
    if problem:
        raise UserError(f"{where}: --{key} {value!r} is invalid ({problem}){hint}")
    return value


def merge(defaults, layers):
    """Apply the layers in order (later wins); returns (values, {key: the layer that set it})."""
    values, sources = dict(defaults), dict.fromkeys(defaults, "default")
    rank = {"default": -1}
    for index, (label, layer) in enumerate(layers):
        rank[label] = index
        for key, value in normalise(dict(layer)).items():
            values[key] = value
            sources[key] = label
    if values["bands"] and len(values["bands"]) != values["n_colors"] and rank[sources["bands"]] < rank[
            sources["n_colors"]]:
        # band names come with a band count: a later layer's other --n_colors makes them meaningless
        values["bands"], sources["bands"] = None, f"dropped ({sources['n_colors']} sets --n_colors)"
    return values, sources


def normalise(values):
    """Canonical spellings: model names upper case, band names lower case, sequences as lists."""
    out = dict(values)
    if isinstance(out.get("model"), str):
        out["model"] = out["model"].upper()
    if out.get("bands") is not None:
        out["bands"] = [str(b).lower() for b in out["bands"]]
    for key in ("data_mean", "betas", "depths", "num_heads", "milestones", "spectral_index"):
        if isinstance(out.get(key), (tuple, list)):
            out[key] = list(out[key])
    return out


def check_usage(cli):
    if cli.get("reset") and cli.get("resume"):
        raise UserError("--reset and --resume contradict each other: --resume continues the run, --reset starts it "
                        "over; give one")
    if cli.get("reset") and cli.get("test_only"):
        raise UserError("--reset with --test_only would delete the model to be tested: drop --reset")
    if cli.get("resume") and cli.get("test_only"):
        raise UserError("--resume with --test_only: --test_only evaluates model_best.pt (or --pre_train); drop "
                        "--resume")
    if cli.get("resume") and cli.get("pre_train"):
        raise UserError("--resume continues from the run's model_latest.pt; drop --pre_train (or start a new run "
                        "from it without --resume)")
    if cli.get("n_GPUs", 1) > 1:
        raise UserError(f"--n_GPUs is deprecated: launch one process per GPU with torchrun, e.g. torchrun "
                        f"--standalone --nproc_per_node {cli['n_GPUs']} demo_train.py ...")


def effective_purpose(purpose, cli):
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    if purpose == "train" and cli.get("resume"):
        return "resume"
    if purpose == "train" and cli.get("test_only"):
        return "test"
    return purpose


def same_value(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def check_against_checkpoint(cli, ckpt, ckpt_layer, architecture):
    """A command-line model, scale or architecture flag that the checkpoint contradicts is a one-line error."""
    for key in ("model", "scale", *architecture):
        if key in cli and key in ckpt_layer and not same_value(cli[key], ckpt_layer[key]):
            wanted = ckpt_layer[key]
            shown = ",".join(map(str, wanted)) if isinstance(wanted, list) else wanted
            raise UserError(f"{ckpt.path} was trained with --{key} {shown}, not {cli[key]}: drop --{key} (the "
                            f"checkpoint's value is used) or pass another checkpoint")


def check_patch(values):
    """--patch_size is the HR patch (EDSR's meaning): it must hold a whole number of LR pixels."""
    patch, scale = values["patch_size"], values["scale"]
    if patch % scale:
        lower = max(patch // scale, 1) * scale
        raise UserError(f"--patch_size {patch} is the HR training patch (as in EDSR and HSENet: 192 at x4 means 48 LR "
                        f"pixels); at x{scale} it must be a multiple of {scale}, e.g. {lower} or {lower + scale}")


def fit_patch_to_data(values, sources, module, dataset_root):
    """A preset's (or the default) training patch that no training image holds is clamped to the largest that the
    largest image holds (a multiple of the attention window where the network has one), with a note. A patch given
    on the command line is left as it is (the loader then says what fits); a fixed input size is architecture."""
    if "patch_size" in checkpoint.architecture_flags(module):
        return
    scale = values["scale"]
    sides = largest_training_lr_side(Path(dataset_root), values["data_train"], scale)
    lr_patch = values["patch_size"] // scale
    if sides is None or sides >= lr_patch:
        return
    multiple = module.tile_multiple(argparse.Namespace(**values)) if hasattr(module, "tile_multiple") else 1
    fitted = sides - sides % multiple
    if fitted < 1:
        return
    origin = sources["patch_size"]
    values["patch_size"], sources["patch_size"] = fitted * scale, f"fitted to the data (the {origin} gave {lr_patch})"
    print(f"note: the {origin}'s --patch_size {lr_patch * scale} ({lr_patch} LR pixels) is larger than every "
          f"{values['data_train']} image of {dataset_root}; using --patch_size {fitted * scale} ({fitted} LR pixels), "
          f"the largest they hold")


def largest_training_lr_side(root, split, scale):
    """The largest short side, in LR pixels, among the training images (header reads only); None without them."""
    lr_dir, hr_dir = root / split / f"LR_x{scale}", root / split / "HR"
    if lr_dir.is_dir():
        headers = [image_io.image_header(path) for path in image_io.list_images(lr_dir)]
        return max((min(h[:2]) for h in headers), default=None)
    if hr_dir.is_dir():
        headers = [image_io.image_header(path) for path in image_io.list_images(hr_dir)]
        return max((min(h[:2]) // scale for h in headers), default=None)
    return None


def check_network(values, sources, module):
    """Build the network on the meta device (no memory, a few milliseconds): architecture flags that the parser
    accepts one by one but that together give a layer without channels, a constructor error, or more weights than
    the memory holds are refused now, before any file is written."""
    model = values["model"]
    flags = [key for key in checkpoint.architecture_flags(module) if key in values and sources[key] != "default"]
    given = ", ".join(f"--{key} {shown(values[key])} ({sources[key]})" for key in flags) or "the default sizes"
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # torch warns that zero-element tensors are not initialised
            net = module.make_model(argparse.Namespace(**values))
    except (ValueError, RuntimeError, AssertionError, ZeroDivisionError, TypeError, IndexError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--model {model} cannot be built with {given}: {text}; change those sizes") from None
    empty = [name for name, tensor in net.named_parameters() if tensor.numel() == 0]
    if empty:
        layer = empty[0].rsplit(".", 1)[0]
        raise UserError(f"--model {model} with {given} gives the layer {layer} no channels; raise those sizes (e.g. "
                        f"the official --embed_dim / --n_feats)")
    weights = sum(tensor.numel() * 4 for tensor in net.parameters())  # fp32
    copies = 4 if values["purpose"] in ("train", "resume") else 1  # weights, gradients and Adam's two moments
    budget.check(weights * copies, f"--model {model} with {given} ({weights // 4:,} weights)",
                 "lower those sizes, or check the checkpoint or template that sets them")


def shown(value):
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def check_combination(values):
    if values["decay_type"] == "multistep" and not values["milestones"]:
        raise UserError("--decay_type multistep needs --milestones, e.g. --milestones 200,400")
    if values["bands"] is not None and len(values["bands"]) != values["n_colors"]:
        raise UserError(f"--bands names {len(values['bands'])} bands ({','.join(values['bands'])}) but --n_colors is "
                        f"{values['n_colors']}: give one name per band")
    if values["data_mean"] is not None and len(values["data_mean"]) != values["n_colors"]:
        raise UserError(f"--data_mean has {len(values['data_mean'])} values but --n_colors is {values['n_colors']}")
    if len(values["depths"]) != len(values["num_heads"]):
        raise UserError(f"--depths has {len(values['depths'])} stages but --num_heads {len(values['num_heads'])}: "
                        f"give one head count per stage")
    tile, overlap = values["tile"], values["tile_overlap"]
    if tile and overlap is not None and overlap >= tile:
        raise UserError(f"--tile_overlap {overlap} must be smaller than --tile {tile}")
