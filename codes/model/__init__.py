"""The Model wrapper: picks a network by --model, puts it on the device, loads checkpoints, and runs it
whole, in overlapping tiles (forward_chop) or as a x8 self-ensemble (forward_x8).

Networks live one per file in this package and expose `make_model(args)`. A module may also expose
`convert_official_state_dict(state_dict)` (the official checkpoint key map) and `DEFAULT_TILE` /
`DEFAULT_TILE_OVERLAP` (deploy defaults, in LR pixels).
"""
import contextlib
from importlib import import_module

import torch
import torch.nn as nn

import tiling
from errors import UserError

# --model name -> module in this package. A name missing here is also looked up as model/<name.lower()>.py.
REGISTRY = {"BICUBIC": "bicubic", "BASIC": "basic", "HSENET": "hsenet", "CONVFORMERSR": "convformersr",
            "SRCNN": "srcnn", "VDSR": "vdsr", "LGCNET": "lgcnet", "DCM": "dcm", "FSRCNN": "fsrcnn"}


def known_models():
    return sorted(REGISTRY)


def network_module(name):
    """The module that defines --model `name`; a clear error lists the known names."""
    module_name = REGISTRY.get(name.upper(), name.lower())
    try:
        return import_module(f"model.{module_name}")
    except ModuleNotFoundError as err:
        if err.name != f"model.{module_name}":
            raise
        raise UserError(f"--model {name}: unknown model; known models: {', '.join(known_models())}") from None


def select_device(args):
    if args.cpu or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def autocast_dtype(args, device):
    """The autocast dtype for --precision, or None: autocast is used on CUDA only (the CPU always runs fp32)."""
    if device.type != "cuda" or args.precision == "fp32":
        return None
    return torch.bfloat16 if args.precision == "bf16" else torch.float16


class Model(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.args = args
        self.scale = args.scale
        self.device = select_device(args)
        self.module = network_module(args.model)
        checkpoint = read_checkpoint(args.pre_train) if args.pre_train else None
        if checkpoint is not None:
            adopt_architecture(args, checkpoint, args.pre_train)
        self.model = self.module.make_model(args).to(self.device)
        self.amp_dtype = autocast_dtype(args, self.device)
        if checkpoint is not None:
            load_weights(self, checkpoint, args.pre_train)
        if self.device.type == "cuda" and args.n_GPUs > 1:
            self.model = nn.DataParallel(self.model, list(range(args.n_GPUs)))

    @property
    def net(self):
        """The bare network (without DataParallel), whose state_dict is what checkpoints hold."""
        return self.model.module if isinstance(self.model, nn.DataParallel) else self.model

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def forward(self, x, tile=0, tile_overlap=0):
        """Training: the network's output. Evaluation: float32 SR on the CPU, whole or in overlapping tiles."""
        if self.training:
            with self.autocast():
                return self.model(x)
        return self.forward_chop(x, tile, tile_overlap)

    def forward_chop(self, x, tile, overlap):
        """Whole-image output assembled from overlapping LR tiles blended with a smooth window (tile 0: whole)."""
        return tiling.tiled_forward(self.inference_fn(), x, self.scale, tile, overlap)

    def forward_x8(self, x):
        """Self-ensemble over the 8 flips/transposes (float32 on the CPU), whatever --self_ensemble says."""
        return self.inference_fn(self_ensemble=True)(x)

    def inference_fn(self, self_ensemble=None):
        """A function from an LR batch (any device) to its float32 SR on the CPU: autocast, and the x8 ensemble
        when `self_ensemble` (default: --self_ensemble)."""
        ensemble = self.args.self_ensemble if self_ensemble is None else self_ensemble

        def run(t):
            t = t.to(self.device, non_blocking=True)
            with torch.no_grad(), self.autocast():
                out = forward_x8(t, self.model) if ensemble else self.model(t)
            return out.float().cpu()
        return run

    def default_tile(self):
        return getattr(self.module, "DEFAULT_TILE", 0), getattr(self.module, "DEFAULT_TILE_OVERLAP", 16)


def forward_x8(x, forward):
    """Self-ensemble: average the outputs over the 8 flips/transposes (each undone on the output)."""
    outputs = []
    for transpose in (False, True):
        xt = x.transpose(-1, -2) if transpose else x
        for flips in ((), (-1,), (-2,), (-1, -2)):
            y = forward(xt.flip(flips) if flips else xt).float()
            y = y.flip(flips) if flips else y
            outputs.append(y.transpose(-1, -2) if transpose else y)
    return torch.stack(outputs).mean(0)


# ---------------------------------------------------------------------------------------------------------------
# checkpoints

def read_checkpoint(path):
    """torch.load with weights_only=True; anything that is not a checkpoint is a one-line error naming the file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"--pre_train {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"--pre_train {path}: is a folder; give a .pt checkpoint file") from None
    except Exception as err:  # unpickling/zip errors come in many types
        raise UserError(f"{path}: not a PyTorch checkpoint ({type(err).__name__}); give a .pt file saved by "
                        f"demo_train.py or an official state_dict") from None
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{path}: not a checkpoint (expected a dict of weights, got {type(obj).__name__})")
    return obj


def state_dict_of(checkpoint, path):
    """(state_dict, training args or None) from one of our checkpoints, or an official/BasicSR-style state_dict."""
    if isinstance(checkpoint.get("model"), dict):
        return checkpoint["model"], checkpoint.get("args")
    for key in ("state_dict", "params_ema", "params"):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key], None
    if all(isinstance(k, str) and torch.is_tensor(v) for k, v in checkpoint.items()):
        return checkpoint, None
    raise UserError(f"{path}: not a checkpoint (no weights found among keys {sorted(checkpoint)[:5]})")


def check_checkpoint_args(saved, args, path):
    """A checkpoint of ours records its model and scale: refuse another model or scale up front."""
    if not saved:
        return
    if saved.get("model") and saved["model"] != args.model:
        raise UserError(f"{path} holds a {saved['model']} model, not {args.model}: pass --model {saved['model']} "
                        f"or another checkpoint")
    if saved.get("scale") and int(saved["scale"]) != args.scale:
        raise UserError(f"{path} was trained for x{saved['scale']}, not x{args.scale}: pass --scale "
                        f"{saved['scale']} or a x{args.scale} checkpoint")


def adopt_architecture(args, checkpoint, path):
    """Take the size flags (--n_feats, --embed_dim, ...) that a checkpoint of ours records, unless the user gave them,
    so `--pre_train run/model/model_best.pt` rebuilds the network it was trained as."""
    from option import ARCHITECTURE_FLAGS

    _, saved = state_dict_of(checkpoint, path)
    if not saved or saved.get("model") != args.model:
        return  # official state_dicts carry no settings; another model's checkpoint fails in load_weights
    given = set(getattr(args, "explicit_flags", ()))
    for flag in ARCHITECTURE_FLAGS:
        if flag in saved and flag not in given:
            value = saved[flag]
            setattr(args, flag, tuple(value) if flag == "data_mean" and value is not None else value)


def adopt_official_settings(model, state, path):
    """An official state_dict carries no settings, but some are implied by its weights (HSENet's mean shift holds
    its --rgb_range): adopt them unless the user gave a different value, which is an error."""
    infer = getattr(model.module, "settings_from_state_dict", None)
    args = model.args
    for flag, value in (infer(state) if infer else {}).items():
        current = getattr(args, flag)
        if abs(value - current) <= 1e-6 * max(1.0, abs(value)):
            continue
        if flag in getattr(args, "explicit_flags", ()):
            raise UserError(f"{path} was trained with --{flag} {value:g}, not {current:g}: drop --{flag} or pass "
                            f"--{flag} {value:g}")
        print(f"note: {path} was trained with --{flag} {value:g}; using it")
        setattr(args, flag, value)


def describe_mismatch(net, state):
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            parts.append(f"{len(items)} {label} (e.g. {items[0]})")
    return "; ".join(parts)


def load_weights(model, checkpoint, path):
    """Load a checkpoint (read from `path`) into model.net strictly; any mismatch is one readable line, never a
    partial load."""
    args = model.args
    state, saved_args = state_dict_of(checkpoint, path)
    check_checkpoint_args(saved_args, args, path)
    convert = getattr(model.module, "convert_official_state_dict", None)
    if convert is not None:
        state = convert(state)
    if saved_args is None:
        adopt_official_settings(model, state, path)
    net = model.net
    problem = describe_mismatch(net, state)
    if problem:
        raise UserError(f"{path} does not fit {args.model} x{args.scale} with {args.n_colors} bands: {problem}. "
                        f"Check --model, --scale, --n_colors and the size flags (--n_feats, ...)")
    net.load_state_dict(state, strict=True)
    return saved_args
