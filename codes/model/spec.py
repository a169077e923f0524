"""What a network module declares to the rest of the toolbox: one NetworkSpec, `SPEC`, at the end of each file of
this package. `model.network_spec(name)` finds it by --model name; callers read its fields."""
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode


@dataclass(frozen=True)
class NetworkSpec:
    # cfg -> nn.Module: the network, built from the resolved configuration's values (no defaults of its own)
    make_model: Callable
    # deploy's default tile and overlap, in LR pixels (tile 0: whole images)
    default_tile: int = 0
    default_tile_overlap: int = 16
    # cfg -> int: the one input size the network takes (tiles are exactly that size), or None
    fixed_input_size: Callable | None = None
    # cfg -> int: tiles must be multiples of this (attention windows), or None
    tile_multiple: Callable | None = None
    # no weights: deploys without a checkpoint (BICUBIC)
    parameter_free: bool = False
    # the network picks its own memory layout (HSENet, ConvFormerSR); every other one runs channels-last on the CPU
    own_memory_layout: bool = False
    # takes the LR already upsampled to the HR size (SRCNN, VDSR, LGCNet); the Model upsamples it
    pre_upsampled: bool = False
    # official state_dict -> ours (the official checkpoint's key map), or None when the keys are the same
    convert_official_state_dict: Callable | None = None
    # official state_dict -> {flag: value} its shapes imply, or None
    settings_from_state_dict: Callable | None = None
    # flags beyond option.py's architecture flags that shape this network (TransENet's fixed input: patch_size)
    extra_architecture_flags: tuple = ()

    def build_without_weights(self, cfg):
        """The network with its weights on the meta device: no memory and no initialisation, in milliseconds, for
        checking that a configuration builds and counting its weights, and for loading a checkpoint into (the
        file's tensors become its weights). Only the tensors that layers allocate for their weights go to the meta
        device; the small buffers a network computes (mean shifts, attention indices) stay on the CPU, because the
        meta device's versions of eye, arange and the like run through Python decompositions that import
        torch._dynamo (seconds).

        A script builds its network once: the configuration's check builds it, and the Model that loads the
        checkpoint takes that same network (`take_built`) when its configuration gives the constructor the values
        the check gave it."""
        global _last_built
        reads = RecordedReads(cfg)
        with warnings.catch_warnings(), WeightsOnMeta():
            warnings.simplefilter("ignore")  # torch warns that zero-element tensors are not initialised
            net = self.make_model(reads)
        _last_built = (self, reads.values, net)
        return net

    def take_built(self, cfg):
        """The network the last build_without_weights made, if it was this network from the values `cfg` holds
        (it is handed out once), else a new build_without_weights."""
        global _last_built
        spec, values, net = _last_built
        _last_built = (None, {}, None)
        same = spec is self and all(getattr(cfg, name, _MISSING) == value for name, value in values.items())
        return net if same else self.build_without_weights(cfg)

    def tile_multiple_of(self, cfg):
        return self.tile_multiple(cfg) if self.tile_multiple else 1

    def fixed_input_size_of(self, cfg):
        return self.fixed_input_size(cfg) if self.fixed_input_size else None

    def official_to_ours(self, state):
        return self.convert_official_state_dict(state) if self.convert_official_state_dict else state


class WeightsOnMeta(TorchFunctionMode):
    """Sends `torch.empty` without a device, what torch.nn layers allocate their weights with, to the meta device,
    and skips the in-place initialisation of such weights (`uniform_`, `normal_`, ...: nothing to fill)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        elif is_in_place(func):
            target = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            if target is not None and target.is_meta:
                return target
        return func(*args, **kwargs)


def is_in_place(func):
    """torch's in-place functions and methods end with one underscore (nn.init's initialisers too)."""
    name = getattr(func, "__name__", "")
    return name.endswith("_") and not name.endswith("__")


_MISSING = object()
_last_built = (None, {}, None)  # (spec, the values its constructor read, the network): see build_without_weights


class RecordedReads:
    """A configuration that records every value a network's constructor reads from it."""

    def __init__(self, cfg):
        self._cfg, self.values = cfg, {}

    def __getattr__(self, name):
        value = getattr(self._cfg, name)
        self.values[name] = value
        return value
