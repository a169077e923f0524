"""Pack a prepared dataset's training data into a small folder that travels beside the code (a rented GPU machine
with no network and no copy of the data: codes/gpu_session.sh trains from it).

    python codes/data_scripts/pack_dataset.py --src datasets/UCMerced --dst datasets/UCMerced_pack --max_mib 28

Writes <dst>/train/HR and <dst>/val/HR as lossless PNG (the pixels of the source's HR, bit for bit) and a
dataset.json, in the HROnly layout: training makes each LR from its HR with the MATLAB bicubic, exactly as the
preparation made the source's LR_x<s> files, so no LR is stored. Images are taken class by class in turn (the class
is the file name without its trailing digits), in a seeded order, until --max_mib is full; --val_images of them
(one class after another) go to val. The summary says how many of the source's images fitted. <dst> is under
datasets/, which git ignores: the pack is never committed.
"""
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # codes/: the project's modules import top-level
import cpu_runtime  # noqa: E402, F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split

import atomic  # noqa: E402
import runs  # noqa: E402
from data.dataset_json import read_dataset_metadata, write_dataset_metadata  # noqa: E402
from errors import OneLineParser, UserError, run_cli  # noqa: E402
from image_files import list_images  # noqa: E402
from image_io import read_image_with_meta, write_image  # noqa: E402
from option import nonneg_int, positive_float, seed_value  # noqa: E402

MIB = 2**20


def parse_args(argv):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", required=True, type=Path, help="a prepared dataset (prepare_dataset.py)")
    p.add_argument("--dst", required=True, type=Path, help="the pack folder to write (must not exist)")
    p.add_argument("--max_mib", type=positive_float, default=28.0, help="size of the pack in MiB (default 28: with "
                   "the code and the shipped models it stays within a 64 MiB transfer)")
    p.add_argument("--val_images", type=nonneg_int, default=16, help="images kept for validation (default 16)")
    p.add_argument("--seed", type=seed_value, default=0)
    return p.parse_args(argv)


def class_of(path):
    """The class of a UC Merced-style name (agricultural07 -> agricultural); the name itself otherwise."""
    return re.sub(r"\d+$", "", path.stem) or path.stem


def interleaved(paths, seed):
    """The images class by class in turn, each class in a seeded order: any prefix is balanced over the classes."""
    classes = {}
    for path in paths:
        classes.setdefault(class_of(path), []).append(path)
    rng = random.Random(seed)
    queues = [rng.sample(members, len(members)) for _, members in sorted(classes.items())]
    order = []
    while any(queues):
        order += [queue.pop(0) for queue in queues if queue]
    return order


def pack(args):
    if args.dst.exists():
        raise UserError(f"--dst {args.dst} exists: pick another folder, or delete it first")
    meta = read_dataset_metadata(args.src)
    if meta.get("pairing"):  # its LR is another sensor's: a pack of HR only would train the bicubic mapping
        raise UserError(f"--src {args.src} is a cross-sensor dataset: its LR tiles come from another sensor, and a "
                        f"pack keeps the HR only (training then makes each LR by bicubic); train on it in place, or "
                        f"copy the whole dataset")
    if Path(args.dst).resolve().is_relative_to(Path(args.src).resolve()):
        raise UserError(f"--dst {args.dst} is inside --src {args.src}: a pack is a folder of its own; pick one "
                        f"outside the dataset")
    sources = [p for split in ("train", "val") if (args.src / split / "HR").is_dir()
               for p in list_images(args.src / split / "HR")]
    if not sources:
        raise UserError(f"--src {args.src} holds no train/HR or val/HR images: prepare it first (prepare_dataset.py)")
    lock = runs.FolderLock.beside(args.dst, "pack").acquire()  # a second pack of the same --dst is one line
    try:
        return fill(args, meta, sources)
    finally:
        lock.release()


def fill(args, meta, sources):
    """Write the pack into a staging folder, renamed to --dst once complete (an interrupted pack leaves nothing)."""
    budget, used, taken = args.max_mib * MIB, 0, {"train": 0, "val": 0}
    with atomic.staging_dir(args.dst) as staging:
        for index, path in enumerate(interleaved(sources, args.seed)):
            split = "val" if index < args.val_images else "train"
            image, _ = read_image_with_meta(path)
            target = staging / split / "HR" / f"{path.stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, image)
            size = target.stat().st_size
            if used + size > budget:
                target.unlink()
                break
            used += size
            taken[split] += 1
        if not taken["train"]:
            raise UserError(f"--max_mib {args.max_mib} holds no training image beside {args.val_images} val images: "
                            f"raise --max_mib or lower --val_images")
        # the PNGs keep the pixels but cannot declare their nodata: dataset.json carries it, and the dtype
        write_dataset_metadata(staging, bands=meta.get("bands"), data_range=meta.get("data_range"),
                               gsd=meta.get("gsd"), dtype=meta.get("dtype"), nodata=meta.get("nodata"),
                               description=f"packed from {args.src.resolve()} (HR only, lossless PNG; "
                                           f"{taken['train']} train and {taken['val']} val of its {len(sources)} "
                                           f"train and val images, seed {args.seed})")
    print(f"packed {taken['train']} train and {taken['val']} val HR images of {len(sources)} into {args.dst} "
          f"({used / MIB:.1f} MiB of {args.max_mib:g}); train on it with --dataset HROnly --dir_data {args.dst}")
    return 0


def main(argv=None):
    return pack(parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
