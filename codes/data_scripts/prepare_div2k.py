"""Put the official DIV2K release into this toolbox's layout, so DIV2K-trained baselines (EDSR, RCAN, SwinIR) can be
trained here.

    python codes/data_scripts/prepare_div2k.py --src DIV2K --dst datasets/DIV2K

DIV2K (E. Agustsson and R. Timofte, NTIRE 2017, CVPRW): https://data.vision.ee.ethz.ch/cvl/DIV2K/. Unzip into --src
DIV2K_train_HR.zip and DIV2K_valid_HR.zip, and, for each scale s, DIV2K_train_LR_bicubic_X<s>.zip and
DIV2K_valid_LR_bicubic_X<s>.zip, which gives

    DIV2K_train_HR/0001.png ... 0800.png        DIV2K_train_LR_bicubic/X<s>/0001x<s>.png ...
    DIV2K_valid_HR/0801.png ... 0900.png        DIV2K_valid_LR_bicubic/X<s>/0801x<s>.png ...

Written: <dst>/train = the 800 training images, <dst>/val = the first --val validation images (EDSR validates on
0801-0810 while training), <dst>/test = all 100 validation images; HR/<name>.png and LR_x<s>/<name>.png. The official
bicubic LR (MATLAB imresize) are used as they are, renamed from <name>x<s>.png; a scale whose LR folder is absent is
made from the HR with this toolbox's MATLAB bicubic (imresize.py), as prepare_dataset.py makes it. Files are
hard-linked when --dst is on the same file system (no extra space), else copied; every pair's sizes are checked.
"""
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # codes/: the project's modules import top-level
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split

from data.dataset_json import write_dataset_metadata
from data_scripts.prepare_dataset import check_destination, make_lr, parse_scales
from errors import OneLineParser, UserError, run_cli
from image_files import list_images
from image_io import image_header, read_image, write_image
from progress import Counter

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
EDSR_VAL_IMAGES = 10  # EDSR-PyTorch's --data_range 1-800/801-810


def parse_args(argv):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", required=True, type=Path, help="folder holding the unzipped DIV2K_train_HR, "
                   "DIV2K_valid_HR and DIV2K_{train,valid}_LR_bicubic/X<s>")
    p.add_argument("--dst", required=True, type=Path, help="output dataset folder, e.g. datasets/DIV2K")
    p.add_argument("--scales", default="2,3,4", help="comma-separated scales (default 2,3,4)")
    p.add_argument("--val", type=int, default=EDSR_VAL_IMAGES,
                   help=f"how many of the validation images (from 0801) form the val split (default "
                        f"{EDSR_VAL_IMAGES}, as EDSR)")
    p.add_argument("--copy", action="store_true", help="copy the files even where a hard link is possible")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --dst, replacing its files")
    return p.parse_args(argv)


def official_hr(src, part):
    """The sorted HR files of DIV2K_<part>_HR (part: train or valid); a missing folder says what to download."""
    folder = src / f"DIV2K_{part}_HR"
    if not folder.is_dir():
        raise UserError(f"{folder} is missing: download DIV2K_{part}_HR.zip from {DIV2K_URL} and unzip it into "
                        f"{src}")
    files = list_images(folder)
    if not files:
        raise UserError(f"{folder} holds no images: unzip DIV2K_{part}_HR.zip into {src}")
    return files


def official_lr(src, part, scale, hr_path):
    """The official bicubic LR of `hr_path` (DIV2K_<part>_LR_bicubic/X<s>/<name>x<s>.png), or None when that scale's
    folder is absent; a file missing from a present folder is an error."""
    folder = src / f"DIV2K_{part}_LR_bicubic" / f"X{scale}"
    if not folder.is_dir():
        return None
    path = folder / f"{hr_path.stem}x{scale}{hr_path.suffix}"
    if not path.is_file():
        raise UserError(f"{path} is missing: unzip DIV2K_{part}_LR_bicubic_X{scale}.zip again (from {DIV2K_URL})")
    return path


def place(source, target, copy):
    """`target` becomes the same file as `source`: a hard link, or a copy across file systems (or with --copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    if not copy:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy instead
    shutil.copy2(source, target)


def check_sizes(lr_path, hr_path, scale):
    """LR x scale must equal the HR mod-cropped to the scale (what the loader checks), read from the headers."""
    lr_h, lr_w = image_header(lr_path)[:2]
    hr_h, hr_w = image_header(hr_path)[:2]
    if (lr_h * scale, lr_w * scale) != (hr_h - hr_h % scale, hr_w - hr_w % scale):
        raise UserError(f"{lr_path} is {lr_w}x{lr_h} but {hr_path.name} is {hr_w}x{hr_h}: not its x{scale} bicubic "
                        f"LR; unzip the DIV2K files again")


def prepare_pair(src, part, hr_path, split_dir, scales, copy):
    place(hr_path, split_dir / "HR" / hr_path.name, copy)
    made = []
    for scale in scales:
        target = split_dir / f"LR_x{scale}" / f"{hr_path.stem}.png"
        lr_path = official_lr(src, part, scale, hr_path)
        if lr_path is None:
            write_image(target, make_lr(read_image(hr_path), scale))
            made.append(scale)
        else:
            check_sizes(lr_path, hr_path, scale)
            place(lr_path, target, copy)
    return made


def main(argv=None):
    args = parse_args(argv)
    scales = parse_scales(args.scales)
    if not args.src.is_dir():
        raise UserError(f"--src {args.src}: no such folder; download DIV2K from {DIV2K_URL} and unzip it there")
    train, valid = official_hr(args.src, "train"), official_hr(args.src, "valid")
    if not 0 < args.val <= len(valid):
        raise UserError(f"--val {args.val}: give 1 to {len(valid)} (the number of validation images)")
    check_destination(args.src, args.dst, args.overwrite)
    splits = [("train", "train", train), ("val", "valid", valid[:args.val]), ("test", "valid", valid)]
    made = set()
    with Counter(sum(len(files) for *_, files in splits), "DIV2K", unit="img") as counter:
        for split, part, files in splits:
            for hr_path in files:
                made.update(prepare_pair(args.src, part, hr_path, args.dst / split, scales, args.copy))
                counter.update(1)
    write_dataset_metadata(args.dst, bands=["red", "green", "blue"],
                           description=f"DIV2K ({DIV2K_URL}) from {args.src.resolve()}: train 0001-0800, val the "
                                       f"first {args.val} validation images, test all 100")
    note = f"; LR made with the MATLAB bicubic at x{', x'.join(map(str, sorted(made)))}" if made else ""
    print(f"DIV2K -> {args.dst}: train {len(train)}, val {args.val}, test {len(valid)} (official bicubic LR"
          f"{note})")
    return 0


if __name__ == "__main__":
    run_cli(main)
