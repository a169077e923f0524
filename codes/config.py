"""The run configuration: resolved once, in the order of precedence of PRECEDENCE (later wins), then frozen:

    built-in defaults < model preset < dataset metadata < Sample preset < --template < official defaults
        < chosen run < checkpoint < ONNX file < command line

(docs/training.md shows the same line; tests/test_option.py checks that it does.)

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
- ONNX file: deploy's --onnx FILE replaces the checkpoint; its metadata gives the model, scale, bands and white level
  (checked like flags, read once and kept as `onnx_metadata`).
- Derived values, decided here and nowhere else: the run folder's name, export_onnx.py's CPU, the naive attention of
  an export below opset 14, and what the loaded model was trained with (`trained_with`: its training radiometry,
  ground sample distance and dataset).
- Chosen run: --test_only, deploy and export without --pre_train load a run's model_best.pt. --save names it;
  else --dataset names the default run <MODEL>x<scale>_<dataset>; else the newest run of that model and scale is
  taken, with the dataset it was trained on (its test split), and the first line of output says which.
- Presets state the LR training patch (`lr_patch`); `--patch_size` is the HR patch (EDSR's meaning), so presets
  become flags at the run's scale (template.at_scale).
- Nothing changes the configuration afterwards (setting an attribute raises); `describe()` says where each value
  came from, e.g. `n_feats = 16  (checkpoint)`, for config.txt.
"""
import argparse
import math
import sys
from pathlib import Path

import budget
import checkpoint
import image_files
import image_io
import paths
import template
from bounded import plausible_gsd
from data.dataset_json import read_dataset_metadata
from errors import UserError
from model import known_network_spec, network_spec
from radiometry import default_band_names

PURPOSES = ("train", "resume", "test", "deploy", "export", "none")

# The layers of the configuration, lowest first: a later layer's value wins.
PRECEDENCE = ("built-in defaults", "model preset", "dataset metadata", "Sample preset", "--template",
              "official defaults", "chosen run", "checkpoint", "ONNX file", "command line")


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
    for action in parser.flags().values():
        if not action.option_strings:
            continue
        if action.nargs == 0:
            probe.add_argument(*action.option_strings, dest=action.dest, action="store_const", const=True)
        else:
            probe.add_argument(*action.option_strings, dest=action.dest)
    known, _ = probe.parse_known_args(argv)
    return set(vars(known))


def metadata_flags(meta):
    """The flags dataset metadata sets."""
    flags = {}
    if meta.get("bands"):
        flags["bands"] = [b.lower() for b in meta["bands"]]
        flags["n_colors"] = len(meta["bands"])
    if meta.get("data_range") is not None:
        flags["data_range"] = float(meta["data_range"])
    if meta.get("nodata") is not None:
        flags["nodata"] = float(meta["nodata"])
    return flags


def resolve(parser, argv, purpose):
    """Parse argv and build the frozen Config for `purpose` (see PURPOSES; 'train' becomes 'resume' or 'test' with
    --resume or --test_only)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parsed = parser.parse_args(argv)
    actions = parser.flags()
    kinds = {dest: action.kind for dest, action in actions.items()}  # declared with each flag in option.py
    defaults = normalise({dest: a.default for dest, a in actions.items()})
    cli = normalise({k: getattr(parsed, k) for k in explicit_flags(parser, argv)})
    check_usage(cli)
    purpose = effective_purpose(purpose, cli)
    named = [(f"template {name}", preset) for name, preset in template.named(cli.get("template", defaults["template"]))]
    pick = Picker(cli, named, defaults)
    onnx_meta, onnx_layer = onnx_file_layer(purpose, pick, actions)
    ckpt, ckpt_layer, spec, chosen_run = checkpoint_layer("none" if onnx_meta else purpose, pick, actions, kinds,
                                                          onnx_layer)
    picked = {**chosen_run, **ckpt_layer, **onnx_layer}
    model, dataset, scale = pick("model", picked), pick("dataset", picked), pick("scale", picked)
    dataset_root = paths.dataset_root(pick("dir_data", picked), dataset)
    dataset_flags = metadata_flags(read_dataset_metadata(dataset_root))
    ckpt_layer, pretrained_bands = band_adaptation(purpose, ckpt, ckpt_layer, cli, dataset_flags)
    templates = [(label, checked_layer(actions, f"--{label}", template.at_scale(preset, scale)))
                 for label, preset in named]
    official = official_defaults(spec, kinds, model, scale, defaults) if ckpt is not None and not ckpt.ours else {}
    layers = [("model preset", template.at_scale(template.MODEL_PRESETS.get(model, {}), scale)),
              ("dataset metadata", dataset_flags),
              ("sample preset", template.at_scale(template.SAMPLE_PRESETS.get((model, dataset), {}), scale)),
              *templates,
              ("official defaults", official),
              ("chosen run", chosen_run),
              ("checkpoint", ckpt_layer),
              (f"--onnx {pick('onnx')}", onnx_layer),
              ("command line", cli)]
    values, sources = merge(defaults, layers)
    if not values["save"]:
        values["save"] = paths.run_name(values["model"], values["scale"], values["dataset"])
        sources["save"] = "derived"
    values.update(purpose=purpose, checkpoint_path=str(ckpt.path) if ckpt else "", onnx_metadata=onnx_meta,
                  trained_with=trained_with(ckpt, onnx_meta), pretrained_bands=pretrained_bands)
    sources.update(dict.fromkeys(("purpose", "checkpoint_path", "onnx_metadata", "trained_with", "pretrained_bands"),
                                 "derived"))
    if purpose == "test" and "dataset" not in cli and "dir_data" not in cli:
        score_on_trained_dataset(values, sources)
    decide_export_settings(values, sources)
    check_patch(values)
    if purpose == "train" and sources["patch_size"] not in ("command line", "checkpoint"):
        fit_patch_to_data(values, sources, spec, kinds, dataset_root)
    values["lr_patch"], sources["lr_patch"] = lr_patch_of(values), "derived (--patch_size / --scale)"
    if ckpt is not None:
        check_against_checkpoint(cli, ckpt, ckpt_layer, checkpoint.architecture_flags(spec, kinds))
    check_combination(values, sources)
    if spec is not None:  # None: an ONNX file of a model this checkout does not know
        check_network(values, sources, spec, kinds)
    return Config(values, sources)


def band_adaptation(purpose, ckpt, ckpt_layer, cli, dataset_flags):
    """Fine-tuning a checkpoint (--pre_train) on data of another band count: the data's count (--n_colors, else the
    dataset's dataset.json) wins, and Model adapts the checkpoint's first and last layers and mean shift when it
    loads them (checkpoint.adapt_band_count). Returns (the checkpoint layer without its band count and band means,
    the checkpoint's band names), or (the layer, None) when nothing is adapted."""
    if purpose != "train" or ckpt is None or "n_colors" not in ckpt_layer:
        return ckpt_layer, None
    wanted = cli.get("n_colors", dataset_flags.get("n_colors"))
    if wanted is None or wanted == ckpt_layer["n_colors"]:
        return ckpt_layer, None
    recorded = ckpt.recorded.get("bands") if ckpt.ours else None
    names = [str(b).lower() for b in recorded] if isinstance(recorded, list) else None
    if names is None or len(names) != ckpt_layer["n_colors"]:
        names = default_band_names(ckpt_layer["n_colors"])
    return {k: v for k, v in ckpt_layer.items() if k not in ("n_colors", "data_mean")}, names


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


def checkpoint_layer(purpose, pick, actions, kinds, onnx_layer):
    """(checkpoint or None, its layer of settings, the NetworkSpec of the model the run uses, the chosen-run layer:
    the run folder and data of a run chosen as the newest, else {})."""
    model = pick("model", onnx_layer)
    spec = known_network_spec(model) if onnx_layer else network_spec(model)
    if purpose == "none":
        return None, {}, spec, {}
    needs_weights = not spec.parameter_free
    chosen_run = {}
    if purpose in ("test", "deploy", "export") and needs_weights and not pick("pre_train"):
        chosen_run = choose_run(pick, model, actions)
    save = chosen_run.get("save") or pick("save") or paths.run_name(model, pick("scale"), pick("dataset"))
    path = checkpoint.locate(purpose, pick("pre_train"), paths.run_dir(save, pick("dir_experiment")),
                             needs_weights=needs_weights, train_flags=f"--model={model} --scale={pick('scale')}")
    if path is None:
        return None, {}, spec, chosen_run
    ckpt = checkpoint.read(path)
    layer = checked_layer(actions, str(ckpt.path), normalise(ckpt.settings(purpose, spec, kinds)),
                          hint="; the checkpoint was not written by this toolbox or is damaged")
    return ckpt, layer, network_spec(pick("model", layer)), chosen_run


# What deploy adopts from an ONNX file's metadata unless the command line gives it; the export's own keys deploy
# reads besides them, each with the flag whose checks it gets.
ONNX_FILE_SETTINGS = ("model", "scale", "n_colors", "bands", "data_range")
ONNX_REQUIRED_KEYS = ("model", "scale", "n_colors")  # without them deploy cannot know what the graph is
ONNX_TILING_KEYS = {"deploy_tile": "tile", "tile_overlap_px": "tile_overlap", "tile_multiple": "tile"}


def onnx_file_layer(purpose, pick, actions):
    """(the file's checked metadata, its layer) for deploy's --onnx FILE, else ({}, {}). The file replaces the
    checkpoint: its metadata gives the model, scale, bands and white level, and a command-line value that
    contradicts it is a one-line error."""
    path = pick("onnx")
    if purpose != "deploy" or not path:
        return {}, {}
    if pick("backend") != "onnxruntime":
        raise UserError("--onnx FILE runs through onnxruntime: add --backend onnxruntime (or drop --onnx)")
    import onnx_graph  # onnx is only needed for that backend

    meta = checked_onnx_metadata(path, onnx_graph.read_metadata(path), actions)
    missing = [key for key in ONNX_REQUIRED_KEYS if meta.get(key) is None]
    if missing:  # an empty file parses as a graph with no metadata at all
        raise UserError(f"--onnx {path}: its metadata lacks {', '.join(missing)}, which export_onnx.py records; "
                        f"export the model with export_onnx.py")
    layer = {key: meta[key] for key in ONNX_FILE_SETTINGS if key in meta}
    for key, value in layer.items():
        if key in pick.cli and not same_value(pick.cli[key], value):
            raise UserError(f"--onnx {path} was exported with --{key} {shown(value)}, not {shown(pick.cli[key])}: drop "
                            f"--{key} (the file's value is used) or export again")
    return meta, layer


def checked_onnx_metadata(path, meta, actions):
    """The metadata deploy reads from an export, each value checked like the flag it stands for (a number where
    --model belongs is one line naming the file, not a traceback)."""
    checked = dict(meta)
    for key, flag in [*((k, k) for k in ONNX_FILE_SETTINGS), *ONNX_TILING_KEYS.items()]:
        if meta.get(key) is not None:
            if flag == "model" and not isinstance(meta[key], str):
                raise UserError(f"--onnx {path}: its metadata gives model {meta[key]!r}, not a model name; export it "
                                f"again with export_onnx.py")
            value = meta[key].upper() if flag == "model" else meta[key]
            checked[key] = checked_value(actions, f"--onnx {path} (metadata {key!r})", flag, value,
                                         hint="; export it again with export_onnx.py")
    return checked


def trained_with(ckpt, onnx_meta):
    """What the loaded model was trained with beyond its flags (Checkpoint.trained_with); an ONNX file records the
    training GSD only."""
    if ckpt is not None:
        return ckpt.trained_with()
    gsd = plausible_gsd(onnx_meta.get("gsd_m")) if onnx_meta else None
    return {"radiometry": None, "gsd": gsd, "dataset": None, "dir_data": None}


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
        if folder.name in paths.NOT_RUNS or not best.is_file():
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


def official_defaults(spec, kinds, model, scale, defaults):
    """The architecture an official state_dict has where its shapes are silent: the official code's defaults (the
    model preset, else the built-in default) for every architecture flag of the network."""
    preset = template.at_scale(template.MODEL_PRESETS.get(model, {}), scale)
    flags = checkpoint.architecture_flags(spec, kinds)
    return {key: preset.get(key, defaults[key]) for key in flags if key in defaults}


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
    elif isinstance(value, (list, tuple)) and any("," in str(item) or not str(item).strip() for item in value):
        problem = "an item is empty or holds a comma"  # joined with commas below, it would change the count
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
        raise UserError(f"{where}: --{key} {value!r:.120} is invalid ({problem}){hint}")  # a file's value: bounded
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
    for key, value in out.items():
        if isinstance(value, tuple):
            out[key] = list(value)
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


def score_on_trained_dataset(values, sources):
    """--test_only without --dataset: the model's own test split (the dataset its checkpoint records) when it is
    prepared here, at datasets/<name> or the recorded --dir_data; else the default dataset, with a note naming both."""
    trained = values["trained_with"]
    name = trained.get("dataset")
    if not name or name == values["dataset"]:
        return
    for root in (paths.dataset_root(None, name), Path(trained["dir_data"]) if trained.get("dir_data") else None):
        if root is not None and (root / values["data_test"] / "HR").is_dir():
            values["dataset"], values["dir_data"] = name, str(root)
            sources["dataset"] = sources["dir_data"] = "the checkpoint's training data (its test split)"
            return
    print(f"note: scoring on {values['dataset']}, not on the test split of {name} that the model was trained on "
          f"(not prepared here: see docs/datasets.md, or pass --dataset and --dir_data)")


def check_against_checkpoint(cli, ckpt, ckpt_layer, architecture):
    """A command-line model, scale or architecture flag that the checkpoint contradicts is a one-line error."""
    for key in ("model", "scale", *architecture):
        if key in cli and key in ckpt_layer and not same_value(cli[key], ckpt_layer[key]):
            wanted = ckpt_layer[key]
            shown = ",".join(map(str, wanted)) if isinstance(wanted, list) else wanted
            raise UserError(f"{ckpt.path} was trained with --{key} {shown}, not {cli[key]}: drop --{key} (the "
                            f"checkpoint's value is used) or pass another checkpoint")


def lr_patch_of(values):
    """The LR training patch: --patch_size is the HR patch (EDSR's meaning). Derived here once; the configuration
    carries it as `lr_patch` (the loaders, the trainer and TransENet's fixed input size read it)."""
    return values["patch_size"] // values["scale"]


def check_patch(values):
    """--patch_size is the HR patch (EDSR's meaning): it must hold a whole number of LR pixels."""
    patch, scale = values["patch_size"], values["scale"]
    if patch % scale:
        lower = max(patch // scale, 1) * scale
        raise UserError(f"--patch_size {patch} is the HR training patch (as in EDSR and HSENet: 192 at x4 means 48 LR "
                        f"pixels); at x{scale} it must be a multiple of {scale}, e.g. {lower} or {lower + scale}")


def fit_patch_to_data(values, sources, spec, kinds, dataset_root):
    """A preset's (or the default) training patch that no training image holds is clamped to the largest that the
    largest image holds (a multiple of the attention window where the network has one), with a note. A patch given
    on the command line is left as it is (the loader then says what fits); a fixed input size is architecture."""
    if "patch_size" in checkpoint.architecture_flags(spec, kinds):
        return
    scale = values["scale"]
    sides = largest_training_lr_side(Path(dataset_root), values["data_train"], scale)
    lr_patch = lr_patch_of(values)
    if sides is None or sides >= lr_patch:
        return
    multiple = spec.tile_multiple_of(argparse.Namespace(**values))
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
        headers = [image_io.image_header(path) for path in image_files.list_images(lr_dir)]
        return max((min(h[:2]) for h in headers), default=None)
    if hr_dir.is_dir():
        headers = [image_io.image_header(path) for path in image_files.list_images(hr_dir)]
        return max((min(h[:2]) // scale for h in headers), default=None)
    return None


def check_network(values, sources, spec, kinds):
    """Build the network with its weights on the meta device (no memory, milliseconds): architecture flags that the
    parser accepts one by one but that together give a layer without channels, a constructor error, or more weights
    than the memory holds are refused now, before any file is written."""
    model = values["model"]
    flags = [key for key in checkpoint.architecture_flags(spec, kinds) if key in values and sources[key] != "default"]
    given = ", ".join(f"--{key} {shown(values[key])} ({sources[key]})" for key in flags) or "the default sizes"
    try:
        net = spec.build_without_weights(argparse.Namespace(**values))
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


def shown(value, limit=120):
    """A value as a flag would be written, cut at `limit` characters (a file's value may be of any length)."""
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


# Fused attention (scaled_dot_product_attention) has no ONNX form below this opset; the official
# matmul-softmax-matmul path has one.
FUSED_ATTENTION_OPSET = 14


def decide_export_settings(values, sources):
    """What exporting a network to ONNX decides: export_onnx.py exports and verifies on the CPU, and an export (or
    deploy's on-the-fly export) below FUSED_ATTENTION_OPSET takes the naive attention unless the command line chose
    one."""
    if values["purpose"] == "export":
        values["cpu"], sources["cpu"] = True, "derived (exported and verified on the CPU)"
    exports = values["purpose"] == "export" or (values["backend"] == "onnxruntime" and not values["onnx"])
    if exports and values["opset"] < FUSED_ATTENTION_OPSET and sources["attention"] != "command line":
        values["attention"] = "naive"
        sources["attention"] = f"derived (fused attention has no ONNX form below opset {FUSED_ATTENTION_OPSET})"


def check_combination(values, sources):
    """Settings that must agree with each other; a disagreement names each value with where it came from (a file's
    value is the file's to fix, not a flag the user gave)."""
    def given(key):
        source = sources.get(key, "default")
        return f"--{key} {shown(values[key])}" + (f" ({source})" if source != "default" else "")

    if values["decay_type"] == "multistep" and not values["milestones"]:
        raise UserError("--decay_type multistep needs --milestones, e.g. --milestones 200,400")
    if values["bands"] is not None and len(values["bands"]) != values["n_colors"]:
        raise UserError(f"{given('bands')} names {len(values['bands'])} bands but {given('n_colors')}: give one "
                        f"name per band")
    if values["data_mean"] is not None and len(values["data_mean"]) != values["n_colors"]:
        raise UserError(f"{given('data_mean')} has {len(values['data_mean'])} values but {given('n_colors')}")
    if len(values["depths"]) != len(values["num_heads"]):
        raise UserError(f"{given('depths')} has {len(values['depths'])} stages but {given('num_heads')} "
                        f"{len(values['num_heads'])}: give one head count per stage")
    tile, overlap = values["tile"], values["tile_overlap"]
    if tile and overlap is not None and overlap >= tile:
        raise UserError(f"{given('tile_overlap')} must be smaller than {given('tile')}")
