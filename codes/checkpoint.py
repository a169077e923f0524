"""Checkpoints: the one module that finds, reads, verifies, adopts and writes them.

- `locate(purpose, ...)`: the file a purpose loads. Training starts from `--pre_train` (optional); `--resume` loads the
  run's model_latest.pt; `--test_only`, deploy and export load `--pre_train`, else the run's model_best.pt.
- `read(path)`: torch.load with weights_only=True (memory-mapped, so reading the settings first and the weights later
  costs no second read); anything else is a one-line error naming the file.
- `Checkpoint.settings(purpose, spec, kinds)`: the flags a checkpoint records (ours) or implies (an official
  state_dict's
  shapes or mean shift), for config.resolve's checkpoint layer.
- `load_weights(net, checkpoint, spec)`: strict load; the checksum and finite weights are verified first.
- `save(path, payload)`: atomic, with a sha256 checksum of every value in the payload.
- `TrainingState` (epoch, best, history, bicubic scores, the epoch in progress, NaN streak) and `training_payload`:
  what a training checkpoint holds and how --resume reads it back, every value checked like a flag; the trainer
  only runs the loop.

Our checkpoints are one dict: model (state_dict), config (the resolved settings), radiometry, and for --resume the
optimizer, scheduler, scaler, epoch, best, best_epoch, history (one row per epoch), RNG states, the format version and
the checksum. Format 1 (no `format` key) recorded `patch_size` in LR pixels; format 2 records the HR patch, EDSR's
meaning, and `recorded` converts older files, so they resume exactly.
"""
import hashlib
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import atomic
import bounded
import budget
import pretrained
import runs
from bounded import plausible_gsd
from errors import UserError
from radiometry import Radiometry

LATEST = "model_latest.pt"
BEST = "model_best.pt"
CHECKSUM_KEY = "checksum"
FORMAT_KEY = "format"
# 2: --patch_size is the HR patch (EDSR's meaning); 1 (no key): it was the LR patch.
FORMAT_VERSION = 2
# The kinds of flag. Each flag declares its kind where option.py declares it; the kind says what a checkpoint does
# with the flag's value.
NETWORK = "network"            # which network at which scale: adopted from a checkpoint of ours, whatever the purpose
ARCHITECTURE = "architecture"  # shapes the network: recorded, adopted from ours, implied by an official state_dict
RADIOMETRY = "radiometry"      # the training data's white level and band names: adopted for evaluation and deploy
TRAINING = "training"          # how the run trains: adopted on --resume, so resuming needs no flag repeated
RUNTIME = "runtime"            # this machine or this command: never adopted
FLAG_KINDS = (NETWORK, ARCHITECTURE, RADIOMETRY, TRAINING, RUNTIME)


def flags_of_kind(kinds, kind):
    """The flags of `kind` in `kinds` ({flag: kind}, option.py's declarations)."""
    return tuple(flag for flag, flag_kind in kinds.items() if flag_kind == kind)


def architecture_flags(spec, kinds):
    """The flags that shape `spec`'s network: the architecture flags and the network's own (TransENet's fixed input
    size)."""
    return (*flags_of_kind(kinds, ARCHITECTURE), *spec.extra_architecture_flags)


# Where BasicSR/SwinIR-style files keep their weights (params_ema first: the weights such files are meant to be used
# with).
OFFICIAL_WEIGHT_KEYS = ("state_dict", "params_ema", "params")


def model_dir(run_dir):
    return Path(run_dir) / "model"


def locate(purpose, pre_train, run_dir, needs_weights=True, train_flags="--model=... --scale=..."):
    """The checkpoint file `purpose` loads, or None when it loads none; a missing required file is a one-line error
    that names the file it looked for (and, with `train_flags`, the command that would make it)."""
    if purpose == "resume":
        path = model_dir(run_dir) / LATEST
        holder = None if path.is_file() else runs.FolderLock.holder(run_dir)
        if holder:
            raise UserError(f"--resume: {run_dir} is in use by another training (PID {holder}), which has not saved "
                            f"its first checkpoint yet: wait for it to finish, or pick another --save")
        if not path.is_file():
            raise UserError(f"--resume: {path} does not exist; train without --resume first")
        return path
    if pre_train:
        path = Path(pre_train)
        # a shipped model by name (pretrained/index.json), its checksum checked; a path (a separator or an
        # extension) is always a file
        shipped = None if "/" in pre_train or path.suffix else pretrained.find(pre_train)
        if shipped is not None:
            if path.exists():
                raise UserError(f"--pre_train {pre_train}: both a shipped model and a file of that name in "
                                f"{Path.cwd()}; pass ./{pre_train} for the file, or rename it to use the shipped "
                                f"model")
            return checked_against_entry(pretrained.checked_file(shipped).resolve(), shipped)
        if path.is_dir():
            raise UserError(f"--pre_train {path}: is a folder; give a .pt checkpoint file")
        if not path.is_file():
            known = ", ".join(pretrained.names()) or "none"
            raise UserError(f"--pre_train {path}: no such file, and no shipped model of that name (shipped: "
                            f"{known})")
        return path.resolve()
    if purpose in ("test", "deploy", "export") and needs_weights:
        path = model_dir(run_dir) / BEST
        if not path.is_file():
            raise UserError(f"no checkpoint at {path}: train one first (cd codes && python demo_train.py "
                            f"{train_flags}) or pass --pre_train PATH")
        return path
    return None


class Checkpoint:
    """A checkpoint file as read: ours (a dict with `model`) or an official state_dict in any common wrapping."""

    def __init__(self, path, payload):
        self.path = Path(path)
        self.payload = payload
        self.ours = isinstance(payload.get("model"), dict)
        self.weights = self._find_weights()

    @property
    def ema_weights(self):
        """The EMA weights of a run trained with --ema (ours), or None."""
        ema = self.payload.get("model_ema") if self.ours else None
        return checked_weights(ema, self.path, "EMA weight") if isinstance(ema, dict) else None

    def _find_weights(self):
        if self.ours:
            return checked_weights(self.payload["model"], self.path)
        for key in OFFICIAL_WEIGHT_KEYS:
            if isinstance(self.payload.get(key), dict):
                return checked_weights(self.payload[key], self.path)
        if all(isinstance(k, str) and torch.is_tensor(v) for k, v in self.payload.items()):
            return self.payload
        raise UserError(f"{self.path}: not a checkpoint (no weights found among keys "
                        f"{sorted(map(str, self.payload))[:5]})")

    @property
    def recorded(self):
        """The settings our checkpoint records ({} for official files). Older files of ours call them `args`."""
        if not self.ours:
            return {}
        recorded = self.payload.get("config", self.payload.get("args"))
        if recorded is not None and not isinstance(recorded, dict):
            raise UserError(f"{self.path}: its recorded settings are not a dict; the file was not written by this "
                            f"toolbox")
        return upgrade_settings(dict(recorded or {}), self.format_version())

    def format_version(self):
        version = self.payload.get(FORMAT_KEY, 1)
        if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
            raise UserError(f"{self.path}: unknown checkpoint format {version!r} (this toolbox reads 1 to "
                            f"{FORMAT_VERSION}); it was written by a newer toolbox or is damaged")
        return version

    def settings(self, purpose, spec, kinds):
        """{flag: value} this checkpoint fixes for `purpose` (the checkpoint layer of config.resolve); `kinds` are
        the parser's flags with their kinds (a recorded setting that is no longer a flag is ignored)."""
        if not self.ours:
            infer = spec.settings_from_state_dict
            return dict(infer(self.official_weights(spec))) if infer else {}
        recorded = self.recorded
        if purpose == "resume":
            keys = [k for k in recorded if kinds.get(k, RUNTIME) != RUNTIME]
        else:
            keys = [*flags_of_kind(kinds, NETWORK), *architecture_flags(spec, kinds)]
            if purpose != "train":  # deploy and evaluation use the radiometry the model was trained with
                keys += flags_of_kind(kinds, RADIOMETRY)
        return {k: recorded[k] for k in keys if k in recorded}

    def trained_with(self):
        """What the model was trained with, beyond its flags: {'radiometry': the training data's record or None,
        'gsd': the training HR's ground sample distance in metres (the file's record, else the shipped model's index
        entry) or None, 'dataset' and 'dir_data': where it was trained (None when not recorded)}."""
        record = self.payload.get("radiometry") if self.ours else None
        if record is not None:  # validated: deploy's ONNX graph and Deepness's standardization follow its white
            record = Radiometry.from_record(record, f"{self.path}").record()
        gsd = self.payload.get("gsd") if self.ours else None
        if gsd is None:
            gsd = pretrained.recorded_gsd(self.path)
        recorded = self.recorded
        return {"radiometry": record, "gsd": plausible_gsd(gsd),
                "dataset": recorded.get("dataset") or None, "dir_data": recorded.get("dir_data") or None}

    def official_weights(self, spec):
        return spec.official_to_ours(self.weights)

    def verify(self, weights=None):
        """Checksum (ours) and finite weights: a corrupt or diverged file is a one-line error, never a silent load."""
        expected = self.payload.get(CHECKSUM_KEY)
        if expected is None and self.ours and self.format_version() >= 2:  # format 2 always writes one
            raise UserError(f"{self.path}: its checksum is missing, so the file cannot be verified (a damaged or "
                            f"edited copy); use another checkpoint, e.g. model_best.pt or a backup")
        if expected is not None and payload_checksum(self.payload) != expected:
            raise UserError(f"{self.path}: checksum mismatch, the file is corrupt (a bit flip or an incomplete "
                            f"copy); use another checkpoint, e.g. model_best.pt or a backup")
        for key, tensor in (weights if weights is not None else self.weights).items():
            if torch.is_tensor(tensor) and tensor.is_floating_point() and not all_finite(tensor):
                raise UserError(f"{self.path}: weight {key} holds NaN or Inf values (the training diverged); use "
                                f"an earlier checkpoint or train again with a lower --lr")


def all_finite(tensor):
    """No NaN or Inf in a floating-point tensor. numpy checks a CPU tensor in one pass with no per-call overhead; a
    network's hundreds of weights then take milliseconds where torch's per-tensor isfinite took a large part of a
    second at every load."""
    if tensor.device.type == "cpu" and tensor.dtype in (torch.float16, torch.float32, torch.float64):
        return bool(np.isfinite(tensor.detach().numpy()).all())
    return bool(torch.isfinite(tensor).all())


def checked_against_entry(path, entry):
    """`path`, once the model, scale and bands the checkpoint records are those of its index entry."""
    recorded = read(path).recorded
    for key in ("model", "scale", "bands"):
        if key in entry and recorded.get(key) != entry[key]:
            raise UserError(f"--pre_train {entry['name']}: {path} records --{key} {recorded.get(key)} but its entry "
                            f"in {pretrained.INDEX} says {entry[key]}; restore pretrained/ from the repository")
    return path


def upgrade_settings(recorded, version):
    """Recorded settings of an older format in today's meanings: format 1's LR `patch_size` becomes the HR patch."""
    patch, scale = recorded.get("patch_size"), recorded.get("scale")
    if version < 2 and type(patch) is int and type(scale) is int:
        recorded["patch_size"] = patch * scale
    return recorded


_last_read = (None, None)  # (key, Checkpoint): config.resolve and Model read the same file; keep it once


def read(path):
    """Read a checkpoint with torch.load(weights_only=True); a non-checkpoint is a one-line error naming the file."""
    global _last_read
    path = Path(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint file") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if _last_read[0] == key:
        return _last_read[1]
    payload = _load(path)
    if not isinstance(payload, dict) or not payload:
        raise UserError(f"{path}: not a checkpoint (expected a dict of weights, got {type(payload).__name__})")
    if bounded.nesting(payload) > bounded.MAX_NESTING:
        raise UserError(f"{path}: not a valid checkpoint (its values are nested more than {bounded.MAX_NESTING} "
                        f"levels deep); use a checkpoint saved by demo_train.py or an official state_dict")
    check_declared_sizes(payload, path)
    checkpoint = Checkpoint(path, payload)
    _last_read = (key, checkpoint)
    return checkpoint


def checked_weights(weights, path, what="weight"):
    """A state_dict as a file holds it, checked like a flag: text keys, tensor values."""
    for key, value in weights.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise UserError(f"{path}: {what} {key!r} is a {type(value).__name__}, not a tensor; the file is damaged or "
                            f"was not written by this toolbox")
    return weights


def tensors_in(value, where=""):
    """(where, tensor) for every tensor in a loaded payload, however deep."""
    if torch.is_tensor(value):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from tensors_in(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from tensors_in(item, f"{where}[{index}]")


def check_declared_sizes(payload, path):
    """Every tensor's shape must be backed by the bytes the file holds for it, before anything reads it whole: a
    1 KB file can declare a 100000 x 100000 x 3 x 3 tensor over one stored number (stride 0), which the checksum or
    a load would expand to 360 GB."""
    for where, tensor in tensors_in(payload):
        if tensor.layout != torch.strided:
            raise UserError(f"{path}: tensor {where} is {tensor.layout}, not a dense tensor; use a checkpoint saved by "
                            f"this toolbox or an official state_dict")
        declared = tensor.numel() * tensor.element_size()
        held = tensor.untyped_storage().nbytes()
        if declared > held:
            raise UserError(f"{path}: tensor {where} declares the shape {tuple(tensor.shape)} "
                            f"({budget.gigabytes(declared)}) but the file holds {held} bytes for it; the file is "
                            f"crafted or damaged, use another checkpoint")


def _load(path):
    try:
        with warnings.catch_warnings():  # torch's notes on old pickle protocols: the outcome is this function's line
            warnings.simplefilter("ignore")
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as err:
                if "mmap" not in str(err):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) files cannot mmap
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give a .pt checkpoint file") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied; make the checkpoint readable") from None
    except Exception as err:  # unpickling and zip errors come in many types
        raise UserError(f"{path}: not a PyTorch checkpoint, or a damaged one ({type(err).__name__}); give a .pt "
                        f"file saved by demo_train.py or an official state_dict") from None


def describe_mismatch(net, state):
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    # a float weight must be stored as floats: complex values would lose their imaginary part, integers be made up
    kinds = [f"{k} {state[k].dtype} vs {own[k].dtype}" for k in own if k in state and torch.is_tensor(state[k])
             and own[k].is_floating_point() and not state[k].is_floating_point()]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes),
                         ("not floating point", kinds)):
        if items:
            parts.append(f"{len(items)} {label} (e.g. {items[0]})")
    return "; ".join(parts)


def load_weights(net, checkpoint, spec, what, use_ema=False, bands=None, channels_last=False):
    """Verify, then load the checkpoint's weights into `net` strictly (its EMA weights when it has them and
    `use_ema`); a mismatch is one readable line naming the file, never a partial load. `what` describes the network
    for that line (e.g. 'HSENET x4 with 3 bands'). `bands`: (the checkpoint's band names, the network's), when they
    differ in number: the layers that read or write the bands are adapted first (adapt_band_count).
    `channels_last`: a network built without weights gets its 4-D weights in that layout as they are copied from the
    file, so that the Model's conversion to it finds nothing left to copy (RCAN's 62 MB were copied twice)."""
    if checkpoint.ours:
        state = checkpoint.ema_weights if use_ema and checkpoint.ema_weights is not None else checkpoint.weights
    else:
        state = checkpoint.official_weights(spec)
    checkpoint.verify(state)
    if bands is not None:
        state, summary = adapt_band_count(net, state, *bands)
        print(f"{checkpoint.path}: {summary}")
    problem = describe_mismatch(net, state)
    if problem:
        raise UserError(f"{checkpoint.path} does not fit {what}: {problem}. Check --model, --scale, --n_colors and "
                        f"the size flags (--n_feats, ...)")
    if any(tensor.is_meta for tensor in net.parameters()):  # built without weights: the file's become them
        own = net.state_dict()

        def copied(key, value):  # a copy: the checkpoint read stays as it was
            layout = torch.channels_last if channels_last and value.dim() == 4 else torch.preserve_format
            return value.to(own[key].dtype, copy=True, memory_format=layout)

        net.load_state_dict({key: copied(key, value) for key, value in state.items()}, strict=True, assign=True)
        left = [name for name, tensor in (*net.named_parameters(), *net.named_buffers()) if tensor.is_meta]
        if left:
            raise RuntimeError(f"{what}: {left[0]} has no values after loading {checkpoint.path}")
    else:
        net.load_state_dict(state, strict=True)


def adapt_band_count(net, state, old_bands, new_bands):
    """(the state_dict with the tensors that read or write the bands adapted from `old_bands` to `new_bands`, a
    one-line summary). A band of both keeps its weights, matched by name (so band order may differ). A new band's
    input weights are zero (the network starts as the checkpoint's on the bands they share, and learns to use the
    new one); its output weights and bias are the mean of the checkpoint's bands; in a buffer (the mean shift) it
    takes the value the network computed for it. A tensor is adapted along each dimension whose size is the old band
    count in the checkpoint and the new one in `net`; everything else loads strictly, as it is."""
    own = net.state_dict()
    buffers = {name for name, _ in net.named_buffers()}
    pairs = [(new_bands.index(name), old_bands.index(name)) for name in new_bands if name in old_bands]
    adapted = dict(state)
    for key, value in state.items():
        target = own.get(key)
        if target is None or not torch.is_tensor(value) or value.ndim != target.ndim or value.shape == target.shape:
            continue
        dims = [d for d in range(value.ndim) if value.shape[d] == len(old_bands) and target.shape[d] == len(new_bands)]
        if not dims or any(value.shape[d] != target.shape[d] for d in range(value.ndim) if d not in dims):
            continue  # not a band dimension: the strict load names it
        if key in buffers and not target.is_meta:
            adapted[key] = _copied_bands(value, target.clone(), dims, pairs)
        else:
            adapted[key] = _new_band_weights(value, dims, len(new_bands), pairs, input_dim(net, key))
    matched = [new_bands[i] for i, _ in pairs]
    added = [name for name in new_bands if name not in matched]
    return adapted, (f"adapted from {len(old_bands)} bands ({','.join(old_bands)}) to {len(new_bands)} "
                     f"({','.join(new_bands)}): {','.join(matched) or 'no band'} kept by name in the layers that "
                     f"read or write the bands; {','.join(added) or 'no band'} initialised (input weights zero, "
                     f"output weights the pretrained bands' mean)")


def input_dim(net, key):
    """The dimension of the parameter `key` that runs over a layer's inputs (1 for convolutions and linears, 0 for
    transposed convolutions), or None for a 1-D tensor (a bias)."""
    module = net.get_submodule(key.rsplit(".", 1)[0]) if "." in key else net
    parameter = getattr(module, key.rsplit(".", 1)[-1])
    if parameter.ndim < 2:
        return None
    return 0 if isinstance(module, torch.nn.modules.conv._ConvTransposeNd) else 1


def _copied_bands(value, out, dims, pairs):
    """`out` (the network's own values) with the shared bands' entries copied from `value`."""
    index = [slice(None)] * value.ndim
    for combination in _band_pairs(dims, pairs):
        new_index, old_index = list(index), list(index)
        for d, (new_i, old_i) in zip(dims, combination):
            new_index[d], old_index[d] = new_i, old_i
        out[tuple(new_index)] = value[tuple(old_index)]
    return out


def _band_pairs(dims, pairs):
    combinations = [[]]
    for _ in dims:
        combinations = [c + [p] for c in combinations for p in pairs]
    return combinations


def _new_band_weights(value, dims, new_count, pairs, input_dimension):
    for d in dims:
        shape = list(value.shape)
        shape[d] = new_count
        fill = torch.zeros(()) if d == input_dimension else value.float().mean(dim=d, keepdim=True)
        out = fill.to(value.dtype).expand(shape).clone()
        for new_i, old_i in pairs:
            out.select(d, new_i).copy_(value.select(d, old_i))
        value = out
    return value


# ---------------------------------------------------------------------------------------------------------- writing
def payload_checksum(payload):
    """sha256 over every value of the payload but the checksum itself: tensors by dtype, shape and bytes, other
    values by repr, dict keys in sorted order."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != CHECKSUM_KEY})
    return digest.hexdigest()


def _feed(digest, value):
    if torch.is_tensor(value):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=str):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode())


def save(path, payload):
    """Write `payload` plus its checksum atomically; a full disk or a read-only folder is one line naming the path."""
    payload = {**payload, FORMAT_KEY: FORMAT_VERSION}
    payload[CHECKSUM_KEY] = payload_checksum(payload)
    with atomic.atomic_target(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)  # a file object: a full disk surfaces as the OSError itself (atomic_target names it)
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------------------------------------- training
@dataclass
class TrainingState:
    """Where a training run stands, beside its weights and optimizer: what a checkpoint saves for --resume.

    epoch: the last finished epoch; best / best_epoch: the best validation score and its epoch; history: one row per
    finished epoch (metrics.csv); bicubic: the val split's BICUBIC scores; partial: the epoch in progress when
    training stopped early (stopping.py: its batches, losses, loss terms, NaN streak and torch's RNG state), else
    None; nan_streak: non-finite losses in a row."""

    epoch: int = 0
    best: float = -math.inf
    best_epoch: int = 0
    history: list = field(default_factory=list)
    bicubic: dict | None = None
    partial: dict | None = None
    nan_streak: int = 0

    def to_payload(self):
        """The checkpoint's keys for this state (a stop inside an epoch records the epoch before it, and the part
        done as `partial`)."""
        return {"epoch": self.epoch - 1 if self.partial else self.epoch, "partial": self.partial, "best": self.best,
                "best_epoch": self.best_epoch, "history": self.history, "bicubic": self.bicubic}

    @classmethod
    def from_payload(cls, payload, path):
        """The state a checkpoint of ours records, every value checked like a flag (one line when it is not)."""
        epoch, best, best_epoch, history, bicubic = checked_progress(payload, path)
        return cls(epoch, best, best_epoch, history, bicubic, checked_partial(payload.get("partial"), epoch, path))


RESUME_KEYS = ("optimizer", "scheduler", "epoch", "best")


def check_resumable(ckpt):
    """A file that holds weights only is not a run to --resume: one line saying what to do."""
    for key in RESUME_KEYS:
        if key not in ckpt.payload:
            raise UserError(f"{ckpt.path} holds weights only (no {key}): it cannot be resumed; start a new run "
                            f"from it with --pre_train {ckpt.path}")


def training_payload(weights, cfg, state, optimizer, scheduler, scaler, loss_state, records, ema_weights=None):
    """The dict a training checkpoint holds: weights, the settings, the optimizer, scheduler and scaler, the
    TrainingState, the loss terms' own state, and `records` (radiometry, gsd, training_data)."""
    return {"model": weights, "config": plain_settings(cfg), **records,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            **state.to_payload(), "loss": loss_state,
            **({"model_ema": ema_weights} if ema_weights is not None else {})}


def plain_settings(cfg):
    """The configuration as checkpoint-safe plain values (weights_only loads them)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.values().items()
            if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def hyperparameter_problem(fresh, loaded, name):
    """Why a loaded optimizer or scheduler setting (`loaded`, from a file) does not stand where this run's own fresh
    value stands, or None: the same structure and types, finite numbers, and positive where the fresh one is (a
    learning rate, a step size, a decay); torch loads any value and fails, or trains NaN, only later."""
    if is_number(fresh):
        if not is_number(loaded) or (isinstance(fresh, int) and not isinstance(loaded, int)):
            return f"{name} {loaded!r:.40} is not a {'whole ' if isinstance(fresh, int) else ''}number"
        if not math.isfinite(loaded) or (fresh > 0 and loaded <= 0):
            return f"{name} {loaded!r} is not a {'positive ' if fresh > 0 else ''}finite number"
        return None
    if isinstance(fresh, (list, tuple)):
        if not isinstance(loaded, (list, tuple)) or len(loaded) != len(fresh):
            return f"{name} is not a list of {len(fresh)}"
        return next(filter(None, (hyperparameter_problem(f, v, f"{name}[{i}]")
                                  for i, (f, v) in enumerate(zip(fresh, loaded)))), None)
    if isinstance(fresh, dict):
        if not isinstance(loaded, dict):
            return f"{name} is not a dict"
        return next(filter(None, (hyperparameter_problem(f, loaded.get(k), f"{name}.{k}") for k, f in fresh.items()
                                  if k in loaded)), None)
    if fresh is None or isinstance(fresh, (bool, str)):
        return None if fresh is None or type(loaded) is type(fresh) else (
            f"{name} {loaded!r:.40} is not {'true or false' if isinstance(fresh, bool) else 'text'}")
    return None


def check_training_state(optimizer, scheduler, fresh_optimizer, fresh_scheduler, path):
    """After --resume loaded them: every optimizer and scheduler setting where this run's fresh ones stand
    (hyperparameter_problem), and every optimizer state tensor of its parameter's shape (Adam's averages, a
    momentum); a one-line error naming the file otherwise."""
    problem = hyperparameter_problem(fresh_scheduler, scheduler.state_dict(), "scheduler")
    for index, (fresh, group) in enumerate(zip(fresh_optimizer["param_groups"], optimizer.param_groups)):
        settings = {k: v for k, v in group.items() if k != "params"}
        problem = problem or hyperparameter_problem({k: v for k, v in fresh.items() if k != "params"}, settings,
                                                    f"optimizer group {index}")
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if not problem and torch.is_tensor(value) and value.dim() and value.shape != param.shape:
                problem = f"optimizer state {key} of shape {tuple(value.shape)} for a weight of {tuple(param.shape)}"
    if problem:
        raise UserError(f"{path}: its {problem}; the file is damaged or was not written by this toolbox, resume from "
                        f"another checkpoint")


def checked_progress(payload, path):
    """(epoch, best, best_epoch, history, bicubic) of a checkpoint, each checked like a flag (a crafted or damaged
    file is one line, never a traceback): whole epochs >= 0, a best score that is a number, history rows and
    bicubic scores of numbers, and dicts for the optimizer and scheduler states."""
    epoch, best = payload["epoch"], payload["best"]
    best_epoch = payload.get("best_epoch", epoch)
    history, bicubic = payload.get("history", []), payload.get("bicubic")
    problem = None
    if type(epoch) is not int or epoch < 0:
        problem = f"its epoch {epoch!r} is not a whole number >= 0"
    elif type(best_epoch) is not int or not 0 <= best_epoch <= epoch:
        problem = f"its best epoch {best_epoch!r} is not a whole number from 0 to its epoch {epoch}"
    elif not is_number(best) or math.isnan(best) or best == math.inf:  # -inf: no epoch scored yet
        problem = f"its best score {best!r} is not a score (no later epoch could ever be saved as the best)"
    elif not (isinstance(history, list) and all(isinstance(row, dict) for row in history)):
        problem = "its metric history is not a list of rows"
    elif not all(isinstance(k, str) and is_number(v) for row in history for k, v in row.items()):
        problem = "its metric history holds values that are not numbers"
    elif bicubic is not None and not (isinstance(bicubic, dict) and all(is_number(v) for v in bicubic.values())):
        problem = "its bicubic scores are not numbers"
    elif not (isinstance(payload["optimizer"], dict) and isinstance(payload["scheduler"], dict)):
        problem = "its optimizer or scheduler state is not a dict"
    if problem:
        raise UserError(f"{path}: {problem}; the file is damaged or was not written by this toolbox, resume from "
                        f"another checkpoint")
    return epoch, float(best), best_epoch, [dict(row) for row in history], bicubic


def checked_partial(partial, epoch, path):
    """The `partial` entry of a checkpoint (the epoch in progress when training stopped early), checked like a flag:
    None, or a dict for epoch + 1 with its batches done, losses, loss terms, NaN streak and torch's RNG state."""
    if partial is None:
        return None
    problem = None
    if not isinstance(partial, dict):
        problem = "not a dict"
    elif partial.get("epoch") != epoch + 1:
        problem = f"its epoch {partial.get('epoch')!r} does not follow the checkpoint's epoch {epoch}"
    elif type(partial.get("batches")) is not int or partial["batches"] < 0:
        problem = "its batch count is not a whole number >= 0"
    elif not (isinstance(partial.get("totals"), list) and all(isinstance(v, float) for v in partial["totals"])):
        problem = "its losses are not a list of numbers"
    elif not (isinstance(partial.get("terms"), list) and all(isinstance(t, dict) for t in partial["terms"])):
        problem = "its loss terms are not a list of dicts"
    elif type(partial.get("nan_streak")) is not int:
        problem = "its NaN streak is not a whole number"
    elif not (torch.is_tensor(partial.get("rng")) and partial["rng"].dtype == torch.uint8):
        problem = "its RNG state is not a byte tensor"
    if problem:
        raise UserError(f"{path}: the saved epoch in progress is damaged ({problem}); resume from an earlier "
                        f"checkpoint or start the run again")
    return partial
