"""SRData: LR/HR pairs from `<root>/<split>/HR/<name>.<ext>` and `<root>/<split>/LR_x<s>/<name>.<ext>`.

Loading modes (--ext): `img` decodes the files every time; `sep` keeps a binary .npy cache (in --dir_cache, never
beside the sources) that is rebuilt when a source's size or mtime changes or the cache file is unreadable;
`sep_reset` rebuilds that cache; `ram` decodes everything once and keeps it in memory.
"""
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

import atomic
import image_io
import imresize
from errors import UserError

LAYOUT_HELP = ("expected <root>/<split>/HR/<name>.<ext> and <root>/<split>/LR_x<scale>/<name>.<ext>; make it with "
               "`python codes/data_scripts/prepare_dataset.py --src HR_IMAGES --dst ROOT`")


class BinaryCache:
    """Decoded arrays as .npy files under one cache folder per source root, each with a `.stamp` of its source."""

    def __init__(self, cache_dir, source_root, reset=False):
        source_root = Path(os.path.abspath(source_root))  # not resolve(): a symlinked split stays under the root
        digest = hashlib.sha1(str(source_root).encode()).hexdigest()[:8]
        self.dir = Path(cache_dir) / f"{source_root.name}_{digest}"
        self.source_root = source_root
        self.reset = reset
        self.refreshed = set()  # entries rebuilt by this process (sep_reset rebuilds each once)

    def entry(self, source, tag=""):
        rel = Path(os.path.abspath(source)).relative_to(self.source_root)
        return self.dir / rel.parent / f"{rel.name}{tag}.npy"

    @staticmethod
    def stamp_of(source):
        st = os.stat(source)
        return f"{st.st_size} {st.st_mtime_ns}"

    def load(self, source, decode, tag=""):
        """The cached array of `decode(source)`; rebuilt if missing, stale, unreadable, or on the first --ext
        sep_reset access."""
        npy = self.entry(source, tag)
        stamp_file = npy.parent / (npy.name + ".stamp")
        stamp = self.stamp_of(source)
        force = self.reset and npy not in self.refreshed
        if not force and stamp_file.is_file() and stamp_file.read_text() == stamp:
            try:
                return np.load(npy, allow_pickle=False)
            except (OSError, ValueError, EOFError):
                pass  # unreadable cache file: rebuild it below
        array = decode(source)
        npy.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_target(npy) as tmp, open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        atomic.write_text(stamp_file, stamp)  # after the data: a crash in between leaves the entry stale
        self.refreshed.add(npy)
        return array


class SRData(Dataset):
    """One split of a dataset. Training items are random LR patches (flips, rot90); others are whole images."""

    lr_from_hr = False  # HR-only datasets make LR with the MATLAB bicubic instead of reading LR_x<s>
    how_to_get = LAYOUT_HELP  # what a missing dataset folder's message tells the user to do

    def __init__(self, args, root, split, train=False):
        self.args = args
        self.scale = args.scale
        self.split = split
        self.train = train
        self.root = Path(root)
        self.dir_hr = self.root / split / "HR"
        self.dir_lr = self.root / split / f"LR_x{self.scale}"
        self.hr_files, self.lr_files = self.scan()
        self.cache = None
        if args.ext.startswith("sep"):
            self.cache = BinaryCache(args.dir_cache, self.root, reset=args.ext == "sep_reset")
        self.images = None
        if args.ext != "img":  # build the cache (and check every pair) up front, not during the first epoch
            indices = tqdm(range(len(self.hr_files)), desc=f"{args.ext} {split}", leave=False,
                           disable=len(self.hr_files) < 100)
            if args.ext == "ram":
                self.images = [self.load_pair(i) for i in indices]
            else:
                for i in indices:  # sep: only the cache is built; nothing is kept
                    self.load_pair(i)
        self.dtype = self.load_pair(0)[1].dtype  # ram: from memory; sep: from the cache just built
        self.data_range = float(args.data_range or image_io.dtype_max(self.dtype))

    # -- files -------------------------------------------------------------------------------------------------
    def scan(self):
        if not self.root.is_dir():
            raise UserError(f"dataset folder {self.root} does not exist: {self.how_to_get}")
        if not self.dir_hr.is_dir():
            raise UserError(f"{self.dir_hr} is missing: {LAYOUT_HELP}")
        hr_files = image_io.list_images(self.dir_hr)
        if not hr_files:
            raise UserError(f"{self.dir_hr} holds no images ({', '.join(image_io.IMAGE_EXTENSIONS)}): "
                            f"{LAYOUT_HELP}")
        if self.lr_from_hr:
            return hr_files, [None] * len(hr_files)
        if not self.dir_lr.is_dir():
            raise UserError(f"{self.dir_lr} is missing (no x{self.scale} LR images): {LAYOUT_HELP}")
        lr_by_stem = {p.stem: p for p in image_io.list_images(self.dir_lr)}
        missing = [p.name for p in hr_files if p.stem not in lr_by_stem]
        if missing:
            raise UserError(f"{self.dir_lr} has no LR image for {missing[0]} ({len(missing)} missing): every HR "
                            f"image needs an LR image with the same name")
        return hr_files, [lr_by_stem[p.stem] for p in hr_files]

    def name(self, i):
        return self.hr_files[i].stem

    def read(self, path, tag="", decode=image_io.read_image):
        if self.cache is not None:
            return self.cache.load(path, decode, tag)
        return decode(path)

    def load_pair(self, i):
        """(LR, HR) arrays in their native dtype; HR mod-cropped to the scale; sizes and bands checked."""
        if self.images is not None:
            return self.images[i]
        hr_path = self.hr_files[i]
        hr = image_io.modcrop(self.read(hr_path), self.scale)
        if self.lr_from_hr:  # cached beside the HR's entry, keyed on the HR file's stamp
            lr = self.read(hr_path, f".x{self.scale}", lambda _: imresize.bicubic_downsample(hr, self.scale))
        else:
            lr = self.read(self.lr_files[i])
        self.check_pair(lr, hr, i)
        return lr, hr

    def check_pair(self, lr, hr, i):
        s, n = self.scale, self.args.n_colors
        if lr.shape[0] * s != hr.shape[0] or lr.shape[1] * s != hr.shape[1]:
            raise UserError(f"{self.lr_files[i] or self.hr_files[i]}: LR is {lr.shape[1]}x{lr.shape[0]} but HR "
                            f"{self.hr_files[i].name} (mod-cropped) is {hr.shape[1]}x{hr.shape[0]}, not x{s} larger; "
                            f"regenerate the LR images or check --scale")
        if hr.shape[2] != n or lr.shape[2] != n:
            raise UserError(f"{self.hr_files[i]} has {hr.shape[2]} bands but --n_colors is {n}: pass "
                            f"--n_colors {hr.shape[2]}")

    # -- items -------------------------------------------------------------------------------------------------
    def __len__(self):
        if self.train and self.args.test_every > 0:
            return self.args.test_every * self.args.batch_size
        return len(self.hr_files)

    def __getitem__(self, index):
        i = index % len(self.hr_files)
        lr, hr = self.load_pair(i)
        if self.train:
            lr, hr = self.random_patch(lr, hr)
            if not self.args.no_augment:
                lr, hr = augment(lr, hr)
        return self.to_tensor(lr), self.to_tensor(hr), self.name(i)

    def random_patch(self, lr, hr):
        """A random LR patch of --patch_size (or the whole image if smaller) and its HR patch.

        Uses torch's RNG, which the trainer seeds per epoch (and DataLoader workers per worker), so runs repeat.
        """
        p, s = self.args.patch_size, self.scale
        ph, pw = min(p, lr.shape[0]), min(p, lr.shape[1])
        y = int(torch.randint(0, lr.shape[0] - ph + 1, ()))
        x = int(torch.randint(0, lr.shape[1] - pw + 1, ()))
        return lr[y:y + ph, x:x + pw], hr[y * s:(y + ph) * s, x * s:(x + pw) * s]

    def to_tensor(self, array):
        """(H, W, C) native dtype -> (C, H, W) float32 in [0, rgb_range]."""
        t = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)).astype(np.float32))
        return t * (self.args.rgb_range / self.data_range)


def augment(lr, hr):
    """Random horizontal flip, vertical flip and transpose (together: the 8 rot90/flip variants)."""
    hflip, vflip, transpose = (bool(v) for v in torch.rand(3) < 0.5)

    def apply(a):
        if hflip:
            a = a[:, ::-1]
        if vflip:
            a = a[::-1]
        if transpose:
            a = a.transpose(1, 0, 2)
        return a

    return apply(lr), apply(hr)
