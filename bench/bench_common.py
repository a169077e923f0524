"""What the benchmarks share: the configuration of a network as benchmarked (its published preset, on the CPU), its
input sizes, a FLOP counter that knows the CPU attention and oneDNN linear kernels, the memory autograd keeps, a
synthetic training step, and the load average printed beside every measurement."""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "codes"))
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import option  # noqa: E402
from model import Model, common, network_spec  # noqa: E402
from radiometry import Radiometry  # noqa: E402

SCALES = {"HSENET": 4, "CONVFORMERSR": 3}  # the papers' settings; the other networks run at x4


def load_average():
    return f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"

def flash_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs):
    """FLOPs of the CPU flash-attention kernel (torch's counter misses it): Q K^T and P V."""
    *batch, q_len, depth = query_shape
    return 2 * int(np.prod(batch)) * q_len * key_shape[-2] * (depth + value_shape[-1])


def onednn_linear_flops(input_shape, weight_shape, *args, **kwargs):
    """FLOPs of oneDNN's linear (common.Linear's inference path, which torch's counter does not know)."""
    return 2 * int(np.prod(input_shape[:-1])) * weight_shape[0] * weight_shape[1]


def count_gflop(forward, x):
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: flash_attention_flops}
    if common.ONEDNN_LINEAR:
        mapping[torch.ops.mkldnn._linear_pointwise] = onednn_linear_flops
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter, torch.no_grad():
        forward(x)
    return counter.get_total_flops() / 1e9


def model_config(name, precision="fp32", scale=None):
    # A dataset other than the Sample, so that the published preset applies and not the short Sample one.
    argv = [f"--model={name}", f"--scale={scale or SCALES.get(name, 4)}", f"--precision={precision}", "--cpu",
            "--dataset=UCMerced"]
    return option.parse_args(argv, purpose="none")

def eight_bit(cfg):
    """The radiometry of 8-bit data: what the pre-upsampled networks (SRCNN, VDSR, LGCNet) upsample the LR in."""
    return Radiometry.of(np.uint8, None, cfg.rgb_range)


def input_sizes(name, cfg, sizes, deploy_tile=False):
    """The LR sides to time: `sizes`, or the network's default deploy tile; TransENet takes only its fixed size."""
    spec = network_spec(name)
    fixed = spec.fixed_input_size_of(cfg)
    if fixed:
        return [fixed], f"fixed input {fixed}"
    return ([spec.default_tile], f"deploy tile {spec.default_tile}") if deploy_tile else (sizes, "")

def saved_gib_per_sample(net, x):
    """GiB that autograd keeps for the backward pass of one sample (the bulk of a training step's memory)."""
    total = 0

    def keep(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        net(x)
    return total / 2**30


def training_batch(name, cfg, max_gflop, max_gib):
    """(batch, patch, note): the preset's batch and LR patch, the batch reduced when a step would exceed max_gflop
    (forward + backward taken as 3 forwards) or keep more than max_gib for the backward pass (SwinIR's preset
    batch would take more memory than this machine has)."""
    patch = cfg.lr_patch  # the LR patch (--patch_size is the HR patch)
    fixed = network_spec(name).fixed_input_size_of(cfg)
    if fixed:
        patch = fixed
    probe = Model(cfg).train()
    lr = torch.rand(1, cfg.n_colors, patch, patch) * cfg.rgb_range
    x = probe.prepare(lr, eight_bit(cfg))
    per_sample = 3 * count_gflop(probe.net, x)
    gib = saved_gib_per_sample(probe.net, x)
    batch = max(1, min(cfg.batch_size, int(max_gflop // per_sample), int(max_gib // gib)))
    note = "" if batch == cfg.batch_size else f"batch {batch} of the preset's {cfg.batch_size}"
    return batch, patch, per_sample * batch, note

def synthetic_batch(cfg, batch, patch):
    """(LR, HR) of random pixels: a training step's speed does not depend on them."""
    lr = torch.rand(batch, cfg.n_colors, patch, patch) * cfg.rgb_range
    hr = torch.rand(batch, cfg.n_colors, patch * cfg.scale, patch * cfg.scale) * cfg.rgb_range
    return lr, hr


def training_step(wrapper, loss, lr, hr, radiometry=None):
    optimizer = torch.optim.Adam(wrapper.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss(wrapper(lr, radiometry=radiometry), hr).backward()
        optimizer.step()
    return step
