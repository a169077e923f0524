"""The Model wrapper: picks a network by --model, puts it on the device, loads the configuration's checkpoint, and
runs it whole, in overlapping tiles (its TilePlan) or as a x8 self-ensemble.

Networks live one per file in this package; each ends with its `SPEC`, a model.spec.NetworkSpec: `make_model(cfg)`
(which passes the resolved configuration's plain values to the network's constructor) and what the rest of the
toolbox needs to know of the network (deploy tiles, fixed input size, tile multiple, no weights, own memory layout,
pre-upsampled input, the official checkpoint's key map and the flags its shapes imply). `network_spec(name)` finds
it by --model name. For a PRE-UPSAMPLED network (SRCNN, VDSR, LGCNet) the Model does the upsampling itself, on the
image in its file values and dtype as the official pipeline does (OpenCV's bicubic with --cubic_input, MATLAB's
otherwise), so training, validation, tiles and deploy all see LR inputs.

--precision bf16 runs the network under autocast, on CUDA and on a CPU with native bf16 arithmetic (other CPUs run
fp32 with a one-line note). Autocast rather than a bf16 copy of the weights: its per-call weight casts measured
under 1 % of an inference, and training needs the fp32 weights anyway.
"""
import contextlib
from importlib import import_module
from pathlib import Path

import torch
import torch.nn as nn

import checkpoint
import imresize
import tiling
from errors import UserError
from radiometry import bicubic_baseline, default_band_names

# --model name -> module in this package: the one registration of a network (a module with a SPEC that is not
# listed here is refused by tests/test_network_contract.py).
REGISTRY = {"BICUBIC": "bicubic", "BASIC": "basic", "HSENET": "hsenet", "CONVFORMERSR": "convformersr",
            "SRCNN": "srcnn", "VDSR": "vdsr", "LGCNET": "lgcnet", "DCM": "dcm", "FSRCNN": "fsrcnn",
            "TRANSENET": "transenet", "EDSR": "edsr", "RCAN": "rcan", "SWINIR": "swinir"}


def known_models():
    return sorted(REGISTRY)


def network_spec(name):
    """The NetworkSpec of --model `name` (the `SPEC` of its module); a clear error lists the known names."""
    module_name = REGISTRY.get(str(name).upper())
    if module_name is None:
        raise UserError(f"--model {name}: unknown model; known models: {', '.join(known_models())}")
    return import_module(f"model.{module_name}").SPEC


def known_network_spec(name):
    """The NetworkSpec of --model `name`, or None for a model this checkout does not know (an ONNX file of it still
    deploys: its metadata says all deploy needs)."""
    try:
        return network_spec(name)
    except UserError:
        return None


def select_device(cpu):
    if cpu or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic


def cpu_supports_bf16():
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX): without it bf16 is emulated and slower
    than fp32, so --precision bf16 on the CPU needs it."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [probe for probe in probes if probe is not None]
    if probes:
        return any(probe() for probe in probes)
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def autocast_dtype(precision, device):
    """The autocast dtype for --precision on `device`, or None (fp32): bf16 and fp16 on CUDA; bf16 on a CPU with
    native bf16 arithmetic (cpu_supports_bf16); fp16 never on the CPU."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.bfloat16 if precision == "bf16" and cpu_supports_bf16() else None


def fallback_note(precision, device):
    """One line saying that --precision does not apply on this device and fp32 runs instead, or None."""
    if precision == "fp32" or autocast_dtype(precision, device) is not None:
        return None
    if precision == "bf16":
        return ("note: --precision bf16 needs a CPU with bf16 instructions (avx512_bf16 or AMX) and this one has "
                "none; running fp32")
    return f"note: --precision {precision} applies on CUDA only (use bf16 on the CPU); running fp32"


def use_channels_last(spec, device):
    """Whether the Model keeps the network's weights and inputs channels-last: on the CPU, where oneDNN's
    convolutions run faster in that layout (measured at 64x64 with bench/bench_speed.py's helpers: inference 1.1-1.4x
    for BASIC, DCM, EDSR, FSRCNN, RCAN, SRCNN and SwinIR, training steps 1.08-1.20x), unless the network picks its
    own layout. CUDA keeps PyTorch's default layout (not measured here)."""
    return device.type == "cpu" and not spec.own_memory_layout and not spec.parameter_free


def tile_plan(spec, cfg, tile=None):
    """The network's TilePlan for this configuration (deploy, and validation with --chop); `tile` replaces --tile."""
    return tiling.plan_for(spec, cfg.tile if tile is None else tile, cfg.tile_overlap,
                           fixed_size=spec.fixed_input_size_of(cfg), multiple=spec.tile_multiple_of(cfg),
                           model_name=cfg.model)


class Model(nn.Module):
    def __init__(self, cfg, device=None):
        super().__init__()
        self.scale = cfg.scale
        self.network_range = cfg.rgb_range  # the value of full white for the network
        self.device = device if device is not None else select_device(cfg.cpu)
        self.spec = network_spec(cfg.model)
        self.channels_last = use_channels_last(self.spec, self.device)
        if cfg.checkpoint_path:  # the weights come from the file: no random initialisation to overwrite
            net = self.spec.take_built(cfg)  # the configuration's check built it already
            what = f"{cfg.model} x{cfg.scale} with {cfg.n_colors} bands"
            # EMA weights (--ema) where the checkpoint has them, for evaluation and deploy; --resume and --no_ema
            # take the trained ones
            use_ema = cfg.purpose != "resume" and not cfg.no_ema
            bands = (cfg.pretrained_bands, list(cfg.bands or default_band_names(cfg.n_colors))) \
                if cfg.pretrained_bands else None
            checkpoint.load_weights(net, checkpoint.read(cfg.checkpoint_path), self.spec, what, use_ema, bands,
                                    channels_last=self.channels_last)
        else:
            net = self.spec.make_model(cfg)
        self.model = net.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.pre_upsample = pre_upsampler(self.spec, cfg)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        self.precision_note = fallback_note(cfg.precision, self.device)
        self.self_ensemble = cfg.self_ensemble
        self.tile_plan = tile_plan(self.spec, cfg)
        # Validation runs whole images unless --chop asks for tiles, or the network only takes tiles.
        self.validation_plan = self.tile_plan if cfg.chop or self.tile_plan.fixed else tiling.WHOLE
        self.train_net = self.model  # what training steps run: the network, or its DDP wrapper under torchrun

    @property
    def net(self):
        """The bare network, whose state_dict is what checkpoints hold."""
        return self.model

    def autocast(self):
        """Mixed precision for --precision bf16/fp16 (see autocast_dtype): the networks keep the parts that need
        fp32 in fp32 regions (common.in_fp32); the loss is computed in fp32 outside it."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def forward(self, x, plan=None, radiometry=None):
        """Training: the network's output. Evaluation: float32 SR on the CPU, whole or by `plan`. `radiometry` (of the
        data x comes from) is needed by the pre-upsampled networks only."""
        if self.training:
            x = self.prepare(x, radiometry)
            with self.autocast():
                return self.in_layout(self.train_net)(x)
        return (plan or tiling.WHOLE).run(self.inference_fn(radiometry=radiometry), x, self.scale)

    def wrap_for_training(self, wrapper):
        """Train through `wrapper(network)` (DistributedDataParallel); evaluation keeps the bare network, so a rank's
        share of the validation images needs no collective. Not a registered submodule: the parameters are shared."""
        object.__setattr__(self, "train_net", wrapper(self.model))

    def unwrap_training(self):
        """Drop the training wrapper (DDP holds the process group, which distributed.teardown must be able to free)."""
        object.__setattr__(self, "train_net", self.model)

    @contextlib.contextmanager
    def swapped(self, net):
        """Evaluate with another network of the same architecture (the EMA weights) for the duration."""
        original = self.model
        self.model = net
        try:
            yield
        finally:
            self.model = original

    def in_layout(self, net):
        """`net` as a function that takes and returns ordinary (contiguous) tensors, run in the Model's layout."""
        if not self.channels_last:
            return net
        return lambda x: net(x.contiguous(memory_format=torch.channels_last)).contiguous()

    def prepare(self, x, radiometry):
        """The network's input for an LR batch: the batch itself, or its upsampling for a pre-upsampled network."""
        if self.pre_upsample is None:
            return x
        if radiometry is None:
            raise ValueError("a pre-upsampled network needs the data's radiometry to upsample in file values")
        return self.pre_upsample(x, radiometry)

    def forward_x8(self, x, radiometry=None):
        """Self-ensemble over the 8 flips/transposes (float32 on the CPU), whatever --self_ensemble says."""
        return self.inference_fn(self_ensemble=True, radiometry=radiometry)(x)

    def record(self):
        """The manifest's record of the backend (deploy.DeployBackend)."""
        return {"backend": "torch"}

    def inference_fn(self, self_ensemble=None, radiometry=None):
        """A function from an LR batch (any device) to its float32 SR on the CPU: autocast, and the x8 ensemble
        when `self_ensemble` (default: --self_ensemble)."""
        ensemble = self.self_ensemble if self_ensemble is None else self_ensemble

        def run(t):
            t = self.prepare(t.to(self.device, non_blocking=True), radiometry)
            with torch.no_grad(), self.autocast():
                net = self.in_layout(self.model)
                out = forward_x8(t, net) if ensemble else net(t)
            return out.float().cpu()
        return run


def pre_upsampler(spec, cfg):
    """For a PRE_UPSAMPLED network, the function (LR batch in network units, radiometry) -> its upsampled batch:
    each image back in file values and dtype (exact for integer data), resized like the official pipeline (OpenCV
    bicubic with --cubic_input, else MATLAB bicubic rounded once), and back in network units. None otherwise."""
    if not spec.pre_upsampled:
        if cfg.cubic_input:
            raise UserError(f"--cubic_input applies to the pre-upsampled networks (SRCNN, VDSR, LGCNET), not "
                            f"--model {cfg.model}: drop it")
        return None
    resize = imresize.opencv_bicubic_upsample if cfg.cubic_input else bicubic_baseline
    scale = cfg.scale

    def upsample(x, radiometry):
        images = [radiometry.to_network(resize(radiometry.from_network(sample), scale)) for sample in x]
        return torch.stack(images).to(x.device)
    return upsample


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
