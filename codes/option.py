"""The one argparse hub: every script (train, deploy, benchmarks) builds its options here.

Flag names follow EDSR / HSENet. Presets per model and dataset live in `template.py`; they fill only the options that
the user did not give on the command line.
"""
import argparse
import sys

import template
from errors import OneLineParser, UserError
from paths import CACHE_DIR, EXPERIMENT_DIR


def _int_list(text):
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text):
    try:
        return tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _name_list(text):
    return [v.strip().lower() for v in str(text).split(",") if v.strip()]


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser():
    p = OneLineParser(description="Remote-sensing super-resolution (HSENet, ConvFormerSR, ...)")
    add = p.add_argument
    # hardware
    add("--template", default=".", help="preset name(s) from template.py; '.' picks by --model/--dataset")
    add("--n_threads", type=int, default=0, help="data-loader worker processes (0: load in the main process)")
    add("--cpu", action="store_true", help="run on the CPU even when CUDA is available")
    add("--n_GPUs", type=_positive_int, default=1, help="number of GPUs (DataParallel)")
    add("--seed", type=int, default=1, help="random seed: the same seed reproduces a run")
    add("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "half"],
        help="CUDA autocast precision (fp16 and half are the same); the CPU always runs fp32")
    # data
    add("--dir_data", default=None, help="dataset root holding <split>/HR and <split>/LR_x<scale> "
        "(default: datasets/<dataset>); for deploy: an input image or folder")
    add("--dir_cache", default=str(CACHE_DIR), help="where --ext sep keeps its binary cache")
    add("--dir_experiment", default=str(EXPERIMENT_DIR), help="where runs (<save>/) and results/ are written")
    add("--dataset", default="Sample", help="Sample, SampleMS, UCMerced, AID, Paired or HROnly")
    add("--data_train", default="train", help="split used for training")
    add("--data_val", default="val", help="split validated after each epoch")
    add("--data_test", default="test", help="split used by deploy and --test_only")
    add("--ext", default="sep", choices=["img", "sep", "sep_reset", "ram"],
        help="img: decode files each time; sep: binary .npy cache; sep_reset: rebuild it; ram: keep in memory")
    add("--scale", type=int, default=4, choices=[2, 3, 4], help="super-resolution factor")
    add("--patch_size", type=_positive_int, default=48, help="LR training patch size in pixels (HR = x scale)")
    add("--rgb_range", type=float, default=1.0, help="the networks see data in [0, rgb_range]")
    add("--data_range", type=float, default=None,
        help="value of full white in the files (default: from the dtype, 255 or 65535); e.g. 10000 for reflectance")
    add("--n_colors", type=_positive_int, default=3, help="number of bands")
    add("--bands", type=_name_list, default=None, help="band order of the data, e.g. blue,green,red,nir")
    add("--no_augment", action="store_true", help="no flips/rot90 augmentation")
    # pre-upsampled networks (SRCNN, VDSR, LGCNet)
    add("--cubic_input", action=argparse.BooleanOptionalAction, default=False,
        help="pre-upsample the LR with OpenCV bicubic, as the official pipeline does; on by preset for SRCNN, VDSR, "
        "LGCNET")
    add("--test_every", type=int, default=0, help="batches per epoch (0: one pass over the training set)")
    # model
    add("--model", default="BASIC", help="network name (see model/__init__.py)")
    add("--pre_train", default="", help="checkpoint to start from (ours or an official state_dict)")
    add("--n_resblocks", type=_positive_int, default=16, help="BASIC: residual blocks")
    add("--n_feats", type=_positive_int, default=64, help="feature channels")
    add("--res_scale", type=float, default=1.0, help="BASIC: residual scaling")
    add("--n_basic_modules", type=_positive_int, default=10, help="HSENet: basic modules")
    add("--data_mean", type=_float_list, default=None,
        help="per-band mean in [0,1] for the mean shift (HSENet default: UC Merced RGB mean; other bands: none)")
    add("--attention", default="fast", choices=["fast", "naive"],
        help="attention kernel: memory-efficient (fast) or the official matmul-softmax-matmul (naive)")
    add("--embed_dim", type=_positive_int, default=96, help="ConvFormerSR: embedding dimension")
    add("--depths", type=_int_list, default=[6, 6, 6, 6], help="ConvFormerSR: blocks per RAG")
    add("--num_heads", type=_int_list, default=[6, 6, 6, 6], help="ConvFormerSR: heads per RAG")
    add("--window_size", type=_positive_int, default=8, help="ConvFormerSR: attention window")
    add("--mlp_ratio", type=float, default=4.0, help="ConvFormerSR: MLP expansion")
    add("--drop_path_rate", type=float, default=0.1, help="ConvFormerSR: stochastic depth rate")
    add("--num_block", type=_positive_int, default=4, help="ConvFormerSR: number of stages")
    add("--img_size", type=_positive_int, default=64, help="ConvFormerSR: nominal training size")
    add("--embed_patch_size", type=_positive_int, default=1, help="ConvFormerSR: patch-embedding size")
    add("--img_range", type=float, default=1.0, help="ConvFormerSR: internal image range")
    # training
    add("--reset", action="store_true", help="clear this run's folder in experiment/ before training")
    add("--resume", action="store_true", help="continue experiment/<save> from model/model_latest.pt")
    add("--test_only", action="store_true", help="only validate the loaded model on --data_test")
    add("--epochs", type=_positive_int, default=300, help="number of epochs")
    add("--batch_size", type=_positive_int, default=16, help="training batch size")
    add("--self_ensemble", action="store_true", help="average the x8 flips/transposes at test time")
    add("--chop", action="store_true", help="test in overlapping tiles to save memory")
    add("--print_every", type=_positive_int, default=100, help="log the loss every N batches")
    add("--save_results", action="store_true", help="save the validation SR images")
    add("--max_nan", type=_positive_int, default=5, help="stop after this many non-finite losses in a row")
    # optimization
    add("--lr", type=float, default=1e-4, help="learning rate")
    add("--decay_type", default="step", choices=["step", "multistep", "cosine"], help="learning-rate schedule")
    add("--lr_decay", type=_positive_int, default=200, help="step: epochs between decays")
    add("--milestones", type=_int_list, default=None, help="multistep: epochs at which the lr decays, e.g. 200,400")
    add("--gamma", type=float, default=0.5, help="lr decay factor")
    add("--optimizer", default="ADAM", choices=["ADAM", "SGD", "RMSprop"], help="optimizer")
    add("--momentum", type=float, default=0.9, help="SGD momentum")
    add("--betas", type=_float_list, default=(0.9, 0.999), help="ADAM betas")
    add("--epsilon", type=float, default=1e-8, help="ADAM epsilon")
    add("--weight_decay", type=float, default=0.0, help="weight decay")
    add("--gclip", type=float, default=0.0, help="gradient clipping norm (0: off)")
    # loss
    add("--loss", default="1*L1", help="weighted sum of terms: L1, MSE, SPECTRAL, e.g. '1*L1+0.1*SPECTRAL'")
    add("--spectral_index", type=lambda s: [v.upper() for v in _name_list(s)], default=["NDVI"],
        help="SPECTRAL loss / metrics: comma list of NDVI, NDWI, NDBI")
    # log
    add("--save", default="", help="run folder inside experiment/ (default: <MODEL>x<scale>_<dataset>)")
    # deploy
    add("--dir_out", default="",
        help="deploy: output folder (default: <dir_experiment>/results/<MODEL>x<scale>_<dataset>)")
    add("--recursive", action="store_true", help="deploy: also read sub-folders of the input folder")
    add("--tile", type=int, default=-1, help="deploy: LR tile size; 0: whole images; -1: the model's default")
    add("--tile_overlap", type=int, default=-1, help="deploy: tile overlap in LR pixels (-1: the model's default)")
    add("--compare", default="", help="deploy: HR folder; writes LR | bicubic | SR | HR comparison PNGs")
    return p


# The options that shape a network: a checkpoint of ours records them, and loading it adopts the ones not given.
ARCHITECTURE_FLAGS = ("n_colors", "rgb_range", "n_feats", "n_resblocks", "res_scale", "n_basic_modules", "data_mean",
                      "embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "num_block", "img_size",
                      "embed_patch_size", "img_range")


def explicit_flags(argv):
    """The option names that the user wrote on the command line (presets must not override them)."""
    probe = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    for action in build_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        if action.nargs == 0:
            probe.add_argument(*action.option_strings, dest=action.dest, action="store_const", const=True)
        else:
            probe.add_argument(*action.option_strings, dest=action.dest)
    known, _ = probe.parse_known_args(argv)
    return set(vars(known))


def parse_args(argv=None):
    """Parse argv (default sys.argv[1:]), apply presets, normalise names, and check the combination."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.model = args.model.upper()
    args.explicit_flags = sorted(explicit_flags(argv))
    template.apply(args, set(args.explicit_flags))
    if not args.save:
        args.save = f"{args.model}x{args.scale}_{args.dataset}"
    check_args(args)
    return args


def check_args(args):
    if args.rgb_range <= 0:
        raise UserError(f"--rgb_range must be positive, got {args.rgb_range}")
    if args.data_range is not None and args.data_range <= 0:
        raise UserError(f"--data_range must be positive, got {args.data_range}")
    if args.decay_type == "multistep" and not args.milestones:
        raise UserError("--decay_type multistep needs --milestones, e.g. --milestones 200,400")
    if args.bands is not None and len(args.bands) != args.n_colors:
        raise UserError(f"--bands names {len(args.bands)} bands ({','.join(args.bands)}) but --n_colors is "
                        f"{args.n_colors}: give one name per band")
    if args.data_mean is not None and len(args.data_mean) != args.n_colors:
        raise UserError(f"--data_mean has {len(args.data_mean)} values but --n_colors is {args.n_colors}")
