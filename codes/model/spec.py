"""What a network module declares to the rest of the toolbox: one NetworkSpec, `SPEC`, at the end of each file of
this package. `model.network_spec(name)` finds it by --model name; callers read its fields."""
from collections.abc import Callable
from dataclasses import dataclass


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

    def tile_multiple_of(self, cfg):
        return self.tile_multiple(cfg) if self.tile_multiple else 1

    def fixed_input_size_of(self, cfg):
        return self.fixed_input_size(cfg) if self.fixed_input_size else None

    def official_to_ours(self, state):
        return self.convert_official_state_dict(state) if self.convert_official_state_dict else state
