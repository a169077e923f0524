"""The one argparse hub: every script (train, deploy, export, benchmarks) builds its configuration here.

Flag names follow EDSR / HSENet. `parse_args(argv, purpose)` returns the final, frozen configuration, resolved once
by `config.resolve` in the order of precedence that config.PRECEDENCE states (docs/training.md shows it).

Each flag is declared with its kind (network, architecture, radiometry, training or runtime: see build_parser), which
decides what a checkpoint does with it.

Every numeric flag is validated here, so a typo fails before anything is read, written or deleted.
"""
import argparse
import math

import config
import template
from checkpoint import FLAG_KINDS
from errors import OneLineParser
from image_io import DEFAULT_MAX_PIXELS
from loss.terms import loss_terms
from paths import CACHE_DIR, EXPERIMENT_DIR
from radiometry import FILE_WHITE_LEVELS, NETWORK_WHITE_LEVELS

# the attention kernels of HSENet, SwinIR and ConvFormerSR: the networks trust the frozen configuration's choice
ATTENTION_MODES = ("fast", "naive")


# ------------------------------------------------------------------------------------------------------ value types
def _number(text, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _bounded(kind, low=None, high=None, low_open=False, high_open=False, what=""):
    """An argparse type: a `kind` number within [low, high] (open where asked), with a readable error."""
    def parse(text):
        value = _number(text, kind)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value
    parse.__name__ = what or kind.__name__
    return parse


positive_int = _bounded(int, 0, low_open=True, what="a positive integer")
nonneg_int = _bounded(int, 0, what="an integer >= 0")
positive_float = _bounded(float, 0.0, low_open=True, what="a positive number")
nonneg_float = _bounded(float, 0.0, what="a number >= 0")
seed_value = _bounded(int, 0, 2**32 - 1, what="an integer from 0 to 4294967295")
file_white_level = _bounded(float, *FILE_WHITE_LEVELS, what="a white level from 1e-6 to 2^32 (the file value of "
                            "full white)")
network_white_level = _bounded(float, *NETWORK_WHITE_LEVELS, what="a white level from 0.001 to 100000")
finite_number = _bounded(float, what="a finite number")
correlation = _bounded(float, -1.0, 1.0, what="a correlation from -1 to 1")
unit_fraction = _bounded(float, 0.0, 1.0, high_open=True, what="a number in [0, 1)")


def _list_of(item_type, what):
    def parse(text):
        parts = [p for p in str(text).split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return [item_type(p.strip()) for p in parts]
    parse.__name__ = what
    return parse


positive_int_list = _list_of(positive_int, "comma-separated positive integers")
mean_list = _list_of(_bounded(float, 0.0, 1.0, what="a mean in [0, 1]"), "comma-separated means in [0, 1]")
# The opsets torch's TorchScript-based ONNX exporter writes (export_onnx.py: the dynamo exporter needs onnxscript).
onnx_opset = _bounded(int, 9, 20, what="an ONNX opset from 9 to 20")


def betas(text):
    values = _list_of(unit_fraction, "two numbers in [0, 1), e.g. 0.9,0.999")(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers in [0, 1), e.g. 0.9,0.999, got {text!r}")
    return tuple(values)


def noise_level(text):
    """--noise: a Gaussian std in 8-bit levels (0..255 of full white); the official spellings G<std> and '.' (none)
    work too."""
    text = str(text).strip()
    if text == ".":
        return 0.0
    if text.upper().startswith("S"):
        raise argparse.ArgumentTypeError(f"the official Poisson noise ({text}) is not implemented; give a Gaussian "
                                         f"std, e.g. 10 or G10")
    return nonneg_float(text[1:] if text.upper().startswith("G") else text)


def loss_spec(text):
    """--loss: checked by loss_terms, kept as written."""
    loss_terms(text)
    return str(text)


def name_list(text):
    """Comma-separated names, lower case; a name given twice is an error (each names one band or index)."""
    names = [v.strip().lower() for v in str(text).split(",") if v.strip()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{', '.join(repeated)} given more than once: name each band once")
    return names


def index_list(text):
    return [v.upper() for v in name_list(text)]


# ------------------------------------------------------------------------------------------------------------ parser
def flag_adder(parser, kind):
    """`add_argument` for the flags of one kind (checkpoint.FLAG_KINDS): the kind is recorded on the flag's action,
    where config.resolve reads it and checkpoint.py decides what a checkpoint adopts by it."""
    def add(*names, **kwargs):
        action = parser.add_argument(*names, **kwargs)
        action.kind = kind
        return action
    return add


def build_parser():
    """Every flag, each declared with its kind: network (which network at which scale), architecture (its shape),
    radiometry (the data's white level and bands), training (how a run trains, adopted on --resume) or runtime (this
    machine or command, never taken from a checkpoint). A new flag is one line here."""
    p = OneLineParser(description="Remote-sensing super-resolution (HSENet, ConvFormerSR, ...)")
    network, architecture, radiometry, training, runtime = (flag_adder(p, kind) for kind in FLAG_KINDS)
    # hardware
    runtime("--template", default=".", help="preset name(s) from template.py, comma-separated; '.': none")
    runtime("--n_threads", type=nonneg_int, default=0,
            help="data-loader worker processes (0: load in the main process)")
    runtime("--cpu", action="store_true", help="run on the CPU even when CUDA is available")
    runtime("--n_GPUs", type=positive_int, default=1,
        help="deprecated: launch one process per GPU with torchrun --nproc_per_node N instead")
    training("--seed", type=seed_value, default=1, help="random seed: the same seed reproduces a run")
    training("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "half"],
        help="mixed precision: bf16 on CUDA or on a CPU with bf16 instructions (avx512_bf16, AMX), fp16/half on "
        "CUDA; elsewhere a note and fp32")
    # data
    training("--dir_data", default=None, help="dataset root holding <split>/HR and <split>/LR_x<scale> "
        "(default: datasets/<dataset>); for deploy: an input image or folder, or a dataset root")
    runtime("--dir_cache", default=str(CACHE_DIR), help="where --ext sep keeps its binary cache")
    runtime("--dir_experiment", default=str(EXPERIMENT_DIR), help="where runs (<save>/) and results/ are written")
    training("--dataset", default="Sample", help="Sample, SampleMS, UCMerced, AID, DIV2K, Paired, HROnly, or any "
             "folder in the layout")
    training("--data_train", default="train", help="split used for training")
    training("--data_val", default="val", help="split validated after each epoch")
    training("--data_test", default="test", help="split used by deploy and --test_only")
    training("--ext", default="sep", choices=["img", "sep", "sep_reset", "ram"],
        help="img: decode files each time; sep: binary .npy cache; sep_reset: rebuild it; ram: keep in memory")
    network("--scale", type=int, default=4, choices=[2, 3, 4], help="super-resolution factor")
    training("--patch_size", type=positive_int, default=192,
        help="HR training patch in pixels, as in EDSR and HSENet: the LR patch is patch_size / scale (192 at x4 is 48 "
        "LR pixels; the HSENet README's 96/144/192 at x2/x3/x4); a multiple of --scale (default: the model's preset)")
    architecture("--rgb_range", type=network_white_level, default=1.0, help="the networks see full white as this value")
    radiometry("--data_range", type=file_white_level, default=None,
        help="file value of full white (default: from the dtype, 255 or 65535); e.g. 10000 for reflectance")
    architecture("--n_colors", type=positive_int, default=3, help="number of bands")
    radiometry("--bands", type=name_list, default=None, help="band order of the data, e.g. blue,green,red,nir")
    training("--nodata", type=finite_number, default=None,
        help="file value of the pixels that are not data (a scene's fill): every loss term and validation metric "
        "leaves them out, and the LR pixels over them (default: dataset.json's, which prepare_dataset.py --min_valid "
        "records; without it, an image holding its declared nodata value is refused)")
    training("--no_augment", action="store_true", help="no flips/rot90 augmentation")
    # pre-upsampled networks (SRCNN, VDSR, LGCNet)
    architecture("--cubic_input", action=argparse.BooleanOptionalAction, default=False,
        help="pre-upsample the LR with OpenCV bicubic, as the official pipeline does; on by preset for SRCNN, VDSR, "
        "LGCNET")
    training("--test_every", type=nonneg_int, default=0, help="batches per epoch (0: one pass over the training set)")
    runtime("--max_pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
        help="largest image (pixels, read from the header before decoding) that is read; larger ones are refused")
    # model
    network("--model", default="BASIC", help="network name (see model/__init__.py)")
    runtime("--pre_train", default="", help="checkpoint to start from (ours or an official state_dict)")
    architecture("--n_resblocks", type=positive_int, default=16, help="BASIC, EDSR, RCAN: residual blocks")
    architecture("--n_feats", type=positive_int, default=64,
        help="BASIC, EDSR, HSENet, RCAN, TransENet: feature channels")
    architecture("--res_scale", type=positive_float, default=1.0, help="BASIC, EDSR: residual scaling")
    architecture("--n_basic_modules", type=positive_int, default=10, help="HSENet: basic modules")
    architecture("--data_mean", type=mean_list, default=None,
        help="per-band mean in [0,1] for the mean shift (HSENet default: UC Merced RGB mean; other bands: none)")
    training("--attention", default="fast", choices=ATTENTION_MODES,
        help="attention kernel: memory-efficient (fast) or the official matmul-softmax-matmul (naive)")
    architecture("--embed_dim", type=positive_int, default=96, help="ConvFormerSR, SwinIR: embedding dimension")
    architecture("--depths", type=positive_int_list, default=[6, 6, 6, 6],
        help="ConvFormerSR, SwinIR: blocks per residual group")
    architecture("--num_heads", type=positive_int_list, default=[6, 6, 6, 6],
        help="ConvFormerSR, SwinIR: attention heads per residual group")
    architecture("--window_size", type=positive_int, default=8, help="ConvFormerSR, SwinIR: attention window")
    architecture("--mlp_ratio", type=positive_float, default=4.0, help="ConvFormerSR, SwinIR: MLP expansion")
    training("--drop_path_rate", type=unit_fraction, default=0.1, help="ConvFormerSR, SwinIR: stochastic depth rate")
    architecture("--num_block", type=positive_int, default=4, help="ConvFormerSR: number of stages")
    architecture("--img_size", type=positive_int, default=64, help="ConvFormerSR, SwinIR: nominal training size")
    architecture("--embed_patch_size", type=positive_int, default=1, help="ConvFormerSR, SwinIR: patch-embedding size")
    architecture("--img_range", type=positive_float, default=1.0, help="ConvFormerSR, SwinIR: internal image range")
    # baseline networks (EDSR, RCAN, SwinIR, TransENet): flags beyond the shared size flags above
    architecture("--n_resgroups", type=positive_int, default=10, help="RCAN: residual groups")
    architecture("--reduction", type=positive_int, default=16, help="RCAN: channel-attention squeeze ratio")
    architecture("--en_depth", type=positive_int, default=8, help="TransENet: transformer encoder layers")
    architecture("--de_depth", type=positive_int, default=1, help="TransENet: transformer decoder layers")
    # training
    runtime("--reset", action="store_true", help="start the run over: delete the files this run wrote in its folder")
    runtime("--resume", action="store_true", help="continue experiment/<save> from model/model_latest.pt")
    runtime("--test_only", action="store_true", help="only evaluate the run's model_best.pt (or --pre_train) on "
        "--data_test")
    training("--epochs", type=positive_int, default=300, help="number of epochs")
    runtime("--time_budget", type=positive_float, default=None,
        help="minutes this command may train (from its start): it stops in time with a checkpoint that --resume "
        "continues exactly (a Slurm time limit, a CI job); SIGTERM, SIGUSR1 and SIGINT stop it the same way")
    training("--batch_size", type=positive_int, default=16, help="training batch size")
    runtime("--self_ensemble", action="store_true", help="average the x8 flips/transposes at test time")
    runtime("--chop", action="store_true", help="validate in overlapping tiles (deploy's tile plan) to save memory")
    runtime("--print_every", type=positive_int, default=100, help="log the loss every N batches")
    runtime("--save_results", action="store_true", help="save the validation SR images")
    training("--max_nan", type=positive_int, default=5, help="stop after this many non-finite losses in a row")
    training("--ema", type=unit_fraction, default=0.0,
        help="keep an exponential moving average of the weights with this decay (e.g. 0.999; 0: off): validation, "
        "model_best.pt and deploy use it")
    runtime("--no_ema", action="store_true", help="deploy/--test_only: load the trained weights, not the EMA ones")
    # optimization
    training("--lr", type=positive_float, default=1e-4, help="learning rate")
    training("--decay_type", default="step", choices=["step", "multistep", "cosine"], help="learning-rate schedule")
    training("--lr_decay", type=positive_int, default=200, help="step: epochs between decays")
    training("--milestones", type=positive_int_list, default=None, help="multistep: epochs at which the lr decays")
    training("--gamma", type=positive_float, default=0.5, help="lr decay factor")
    training("--optimizer", default="ADAM", choices=["ADAM", "SGD", "RMSprop"], help="optimizer")
    training("--momentum", type=unit_fraction, default=0.9, help="SGD momentum")
    training("--betas", type=betas, default=(0.9, 0.999), help="ADAM betas, two numbers in [0, 1)")
    training("--epsilon", type=positive_float, default=1e-8, help="ADAM epsilon")
    training("--weight_decay", type=nonneg_float, default=0.0, help="weight decay")
    training("--gclip", type=nonneg_float, default=0.0, help="gradient clipping norm (0: off)")
    # loss
    training("--loss", type=loss_spec, default="1*L1", help="weighted sum of terms: L1, MSE, SPECTRAL, VGG54 or VGG22 "
        "(perceptual), GAN (adversarial), e.g. '1*L1+0.1*SPECTRAL', '1*VGG54+0.005*GAN'; weights are finite and > 0")
    # perceptual and adversarial losses, training noise (the HSENet/EDSR flags)
    training("--gan_k", type=positive_int, default=1, help="GAN loss: discriminator steps per generator step")
    training("--vgg_weights", default="", help="VGG loss: a VGG19 state_dict file (default: torchvision's cached "
        "download of https://download.pytorch.org/models/vgg19-dcbb9e9d.pth; nothing is downloaded)")
    training("--noise", type=noise_level, default=0.0, help="std of Gaussian noise added to the training LR patches, "
             "in 8-bit levels (x white/255 for other data; official spelling G<std> accepted); 0: none")
    training("--spectral_index", type=index_list, default=["NDVI"],
        help="SPECTRAL loss / metrics: comma list of NDVI, NDWI, NDBI")
    # log
    training("--save", default="", help="run folder inside experiment/ (default: <MODEL>x<scale>_<dataset>)")
    # deploy
    runtime("--dir_out", default="",
        help="deploy: output folder (default: <dir_experiment>/results/<MODEL>x<scale>_<dataset or input name>)")
    runtime("--recursive", action="store_true", help="deploy: also read sub-folders of the input folder")
    runtime("--tile", type=nonneg_int, default=None, help="LR tile size for deploy and --chop; 0: whole images "
        "(default: the model's)")
    runtime("--tile_overlap", type=nonneg_int, default=None, help="tile overlap in LR pixels (default: the model's)")
    runtime("--input_bands", type=name_list, default=None,
        help="deploy: the input files' band names in file order, when the files do not name them (GeoTIFF band "
        "descriptions do); the model is fed its own bands (--bands) by name, e.g. red,green,blue of a 6-band scene")
    runtime("--align_to", default="", help="deploy: a georeferenced raster of the HR sensor (e.g. a Sentinel-2 "
        "band): the input is warped onto the LR grid of scale x its pixel, corners on its grid, as prepare_dataset.py "
        "--lr_src does, and the SR is written on its grid (its CRS and pixel), over the input's footprint")
    runtime("--compare", default="", help="deploy: HR folder; writes LR | bicubic | SR | HR comparison PNGs")
    runtime("--cog", default="auto", choices=["auto", "yes", "no"],
        help="deploy: write TIFF outputs as Cloud-Optimized GeoTIFFs (auto: when the input is georeferenced)")
    # ONNX: export_onnx.py, and deploy through onnxruntime
    runtime("--backend", default="torch", choices=["torch", "onnxruntime"],
        help="deploy: run the network with PyTorch, or exported to ONNX with onnxruntime")
    runtime("--onnx", default="", help="deploy --backend onnxruntime: the .onnx file to run (export_onnx.py writes "
            "one; default: export the checkpoint to a temporary file)")
    runtime("--out", default="", help="export_onnx.py: the .onnx file to write "
        "(default: <dir_experiment>/onnx/<MODEL>x<scale>_<dataset>.onnx)")
    runtime("--resolution", type=positive_float, default=None,
        help="export_onnx.py: the resolution (cm per pixel) at which QGIS Deepness reads the layer (default: the "
        "training HR's ground sample distance)")
    runtime("--opset", type=onnx_opset, default=17,
        help="export_onnx.py: ONNX opset (17 runs on onnxruntime >= 1.12, the oldest QGIS Deepness installs)")
    runtime("--dynamic_shape", action="store_true", help="export_onnx.py: a graph that takes any height and width "
        "(demo_deploy.py --backend onnxruntime, other tools); default: fixed at the tile, which QGIS Deepness needs")
    runtime("--timing", action="store_true", help="export_onnx.py: also time PyTorch and onnxruntime on the "
        "verification tile (median of 3 runs each; on a large network this takes longer than the export)")
    return p


def network_args(model_name, **values):
    """The values `make_model` reads, for building a network outside a command (tests, benchmarks): the built-in
    defaults, the model's preset at the scale, then `values`; as a resolved configuration has them without a dataset
    or a checkpoint."""
    defaults = vars(build_parser().parse_args([]))
    scale = values.get("scale", defaults["scale"])
    preset = template.at_scale(template.MODEL_PRESETS.get(model_name.upper(), {}), scale)
    values = {**defaults, "model": model_name.upper(), **preset, **values}
    return argparse.Namespace(**{**values, "lr_patch": config.lr_patch_of(values)})


# What deploy's and export's --help leave out: the training-kind flags but those they read too, the runtime flags that
# only demo_train.py reads, and (for deploy) those that only export_onnx.py reads.
TRAINING_KIND_FLAGS_DEPLOY_READS = ("dir_data", "dataset", "data_test", "precision", "attention", "save")
NOT_IN_HELP = {
    "deploy": ("reset", "resume", "test_only", "time_budget", "print_every", "save_results", "chop", "out",
               "resolution", "dynamic_shape", "timing"),
    "export": ("reset", "resume", "test_only", "time_budget", "print_every", "save_results", "chop"),
}


def parse_args(argv=None, purpose="train"):
    """The resolved, frozen configuration for `purpose`: 'train' (demo_train.py: training, --resume or
    --test_only), 'deploy', 'export', or 'none' (no checkpoint is looked for). The --help of deploy and export lists
    their flags only: the training flags (by their kind) are accepted but not shown."""
    parser = build_parser()
    if purpose in NOT_IN_HELP:
        for dest, action in parser.flags().items():
            if (action.kind == "training" and dest not in TRAINING_KIND_FLAGS_DEPLOY_READS
                    or dest in NOT_IN_HELP[purpose]):
                action.help = argparse.SUPPRESS
    return config.resolve(parser, argv, purpose)
