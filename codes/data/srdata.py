"""SRData: LR/HR pairs from `<root>/<split>/HR/<name>.<ext>` and `<root>/<split>/LR_x<s>/<name>.<ext>`.

Loading modes (--ext): `img` decodes the files every time; `sep` keeps a binary .npy cache (in --dir_cache, never
beside the sources) that is rebuilt when a source's size or mtime changes or the cache file is unreadable;
`sep_reset` rebuilds that cache; `ram` decodes everything once and keeps it in memory.

Every random choice of a training sample (patch position, flips, transpose, --noise) is drawn from (seed, epoch, sample
index), never from a per-process stream: any process, worker or rank that loads sample i in epoch e gets the same
patch, so runs resume exactly and N ranks see exactly the samples one process would.

Checks, each a one-line error naming the file: sizes (LR x scale = mod-cropped HR), band counts, one dtype for LR,
HR and the whole dataset, no NaN/Inf pixels, float values in [0, 1] unless --data_range is given, duplicate names,
and images larger than --max_pixels. Training images whose LR is smaller than the patch are skipped with a note.

With --nodata (or dataset.json's nodata), pixels holding that value are not data: each item also gives the HR
pixels that count (valid_pixels), which the loss and the scores use, and the LR's nodata reaches the network as its
band's mean. Without it, an image holding its own declared nodata value is refused.
"""
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

import atomic
import budget
import image_files
import image_io
import imresize
import metrics
import progress
from errors import UserError
from radiometry import Radiometry, invalid_pixels, to_dtype

LAYOUT_HELP = ("expected <root>/<split>/HR/<name>.<ext> and <root>/<split>/LR_x<scale>/<name>.<ext>; make it with "
               "`python codes/data_scripts/prepare_dataset.py --src HR_IMAGES --dst ROOT`")


# The sampler shuffles an epoch as torch.randperm(n).tolist(): 8 bytes per index in the tensor, then a list slot and a
# Python int (8 + 32 bytes) per index.
SAMPLER_BYTES_PER_SAMPLE = 48

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
        if not force and read_stamp(stamp_file) == stamp:
            array = read_entry(npy)
            if array is not None:
                return array
        array = decode(source)
        with atomic.atomic_target(npy) as tmp, open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        atomic.write_text(stamp_file, stamp)  # after the data: a crash in between leaves the entry stale
        self.refreshed.add(npy)
        return array


def read_stamp(path):
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):  # missing, a folder, unreadable, not text: the entry is stale
        return None


def read_entry(npy):
    """A cached array, or None when it cannot be used, whatever the reason: missing, truncated, damaged, a pickle, or
    a header declaring more than the file holds or the memory takes (memory-mapped first: the declared size is
    checked against the file before anything is allocated)."""
    try:
        mapped = np.load(npy, mmap_mode="r", allow_pickle=False)
        if not isinstance(mapped, np.ndarray) or mapped.dtype.hasobject:
            return None
        budget.check(mapped.nbytes, f"the cache entry {npy}", "it is rebuilt")
        return np.array(mapped)
    except Exception:  # noqa: BLE001 (numpy's readers raise many types; any of them means: rebuild)
        return None


class SRData(Dataset):
    """One split of a dataset. Training items are random LR patches (flips, transpose); others are whole images."""

    lr_from_hr = False  # HR-only datasets make LR with the MATLAB bicubic instead of reading LR_x<s>
    how_to_get = LAYOUT_HELP  # what a missing dataset folder's message tells the user to do

    def __init__(self, cfg, root, split, train=False):
        self.scale, self.n_colors, self.split, self.train = cfg.scale, cfg.n_colors, split, train
        self.patch_size, self.lr_patch = cfg.patch_size, cfg.lr_patch  # HR patch, as in EDSR, and its LR side
        self.augment, self.seed = not cfg.no_augment, cfg.seed
        self.max_pixels, self.data_range_given = cfg.max_pixels, cfg.data_range is not None
        self.samples_per_epoch = cfg.test_every * cfg.batch_size if train else 0
        budget.check(self.samples_per_epoch * SAMPLER_BYTES_PER_SAMPLE, f"--test_every {cfg.test_every} x "
                     f"--batch_size {cfg.batch_size} ({self.samples_per_epoch:,} patches per epoch, shuffled as one "
                     f"list)", "lower --test_every: an epoch is only the interval between validations")
        self.noise = cfg.noise if train else 0.0  # --noise: training LR only, never validation or test
        self.nodata = cfg.nodata  # the fill value of pixels that are not data: left out of the loss and the scores
        self.epoch = 0
        self.radiometry = None  # the first HR image's, once read (below); load_pair checks every image against it
        self.root = Path(root)
        self.dir_hr = self.root / split / "HR"
        self.dir_lr = self.root / split / f"LR_x{self.scale}"
        self.hr_files, self.lr_files = self.scan()
        self.cache = None
        if cfg.ext.startswith("sep"):
            self.cache = BinaryCache(cfg.dir_cache, self.root, reset=cfg.ext == "sep_reset")
        self.images = None
        first_hr = self.read(self.hr_files[0])
        self.radiometry = Radiometry.of(first_hr.dtype, cfg.data_range, cfg.rgb_range)
        if cfg.ext != "img":  # decode (and check) every pair up front, not during the first epoch
            pairs = [self.load_pair(i) for i in progress.bar(range(len(self.hr_files)), f"{cfg.ext} {split}",
                                                             min_items=100)]
            self.images = pairs if cfg.ext == "ram" else None
        self.usable = self.usable_indices() if train else self.scorable_indices()

    # -- files -------------------------------------------------------------------------------------------------
    def scan(self):
        if not self.root.is_dir():
            raise UserError(f"dataset folder {self.root} does not exist: {self.how_to_get}")
        if not self.dir_hr.is_dir():
            raise UserError(f"{self.dir_hr} is missing: {LAYOUT_HELP}")
        hr_files = image_files.check_unique_stems(image_files.list_images(self.dir_hr), self.dir_hr)
        if not hr_files:
            raise UserError(f"{self.dir_hr} holds no images ({', '.join(image_files.IMAGE_EXTENSIONS)}): "
                            f"{LAYOUT_HELP}")
        if self.lr_from_hr:
            return hr_files, [None] * len(hr_files)
        if not self.dir_lr.is_dir():
            raise UserError(f"{self.dir_lr} is missing (no x{self.scale} LR images): {LAYOUT_HELP}")
        lr_files = image_files.check_unique_stems(image_files.list_images(self.dir_lr), self.dir_lr)
        lr_by_stem = {p.stem: p for p in lr_files}
        missing = [p.name for p in hr_files if p.stem not in lr_by_stem]
        if missing:
            raise UserError(f"{self.dir_lr} has no LR image for {missing[0]} ({len(missing)} missing): every HR "
                            f"image needs an LR image with the same name")
        return hr_files, [lr_by_stem[p.stem] for p in hr_files]

    def name(self, i):
        return self.hr_files[i].stem

    def decode(self, path):
        """The image's pixels. One that holds its own declared nodata value (a GeoTIFF's fill) is refused unless
        that value is --nodata (which the loss and the scores leave out): else the fill would enter them as ground."""
        image, meta = image_io.read_image_with_meta(path, self.max_pixels)
        fill = image_io.nodata_mask(image, meta)
        if fill is not None and fill.any() and meta.nodata != self.nodata:
            masked = (f"--nodata is {self.nodata:g}; make them one" if self.nodata is not None else
                      f"use tiles without nodata (prepare_dataset.py --tile skips them), keep them masked "
                      f"(prepare_dataset.py --min_valid, or --nodata {meta.nodata:g}), or fill those pixels")
            raise UserError(f"{path} has {int(fill.sum())} pixels of its declared nodata value {meta.nodata:g}: "
                            f"training and scoring would take the fill as ground; {masked}")
        return image

    def read(self, path, tag="", decode=None):
        decode = decode or self.decode
        if self.nodata is not None:  # decode checks the file's nodata against it: a cache entry holds for one value
            tag += f".nodata{self.nodata!r}"
        try:
            return self.cache.load(path, decode, tag) if self.cache is not None else decode(path)
        except UserError as err:
            if str(path) in str(err):
                raise
            raise UserError(f"{path}: {err}") from None  # every error about a file names it

    def load_pair(self, i):
        """(LR, HR) arrays in their native dtype; HR mod-cropped to the scale; the pair checked."""
        if self.images is not None:
            return self.images[i]
        hr_path = self.hr_files[i]
        hr = imresize.modcrop(self.read(hr_path), self.scale)
        if self.lr_from_hr:  # cached beside the HR's entry, keyed on the HR file's stamp
            lr = self.read(hr_path, f".x{self.scale}", lambda _: self.downsample(hr))
        else:
            lr = self.read(self.lr_files[i])
        self.check_pair(lr, hr, i)
        return lr, hr

    def downsample(self, hr):
        """The LR of an HR-only dataset's image: MATLAB bicubic; LR pixels it mixes --nodata into hold the nodata."""
        fill = self.fill_mask(hr)
        if fill is None or not fill.any():
            return imresize.bicubic_downsample(hr, self.scale)
        return imresize.bicubic_downsample_filled(hr, self.scale, fill, self.nodata)

    def fill_mask(self, image):
        """Bool (H, W): the pixels holding --nodata; None without --nodata."""
        return None if self.nodata is None else image_io.fill_mask(image, self.nodata)

    def valid_pixels(self, lr, hr):
        """Bool (H, W) of the HR grid: the pixels that count in the loss and the scores, where neither the HR pixel
        nor the LR pixel over it holds --nodata; None without --nodata (every pixel counts)."""
        return self.masks(lr, hr)[1]

    def masks(self, lr, hr):
        """(the LR's --nodata pixels, valid_pixels), each found once; (None, None) without --nodata."""
        if self.nodata is None:
            return None, None
        lr_fill = self.fill_mask(lr)
        under = lr_fill.repeat(self.scale, axis=0).repeat(self.scale, axis=1)
        return lr_fill, ~(self.fill_mask(hr) | under)

    def check_pair(self, lr, hr, i):
        s, n = self.scale, self.n_colors
        lr_path, hr_path = self.lr_files[i] or self.hr_files[i], self.hr_files[i]
        if lr.shape[0] * s != hr.shape[0] or lr.shape[1] * s != hr.shape[1]:
            raise UserError(f"{lr_path}: LR is {lr.shape[1]}x{lr.shape[0]} but HR {hr_path.name} (mod-cropped) is "
                            f"{hr.shape[1]}x{hr.shape[0]}, not x{s} larger; regenerate the LR images or check --scale")
        if lr.shape[2] != hr.shape[2]:
            raise UserError(f"{lr_path} has {lr.shape[2]} bands but its HR {hr_path} has {hr.shape[2]}: an LR and its "
                            f"HR must hold the same bands; make the pair again")
        if hr.shape[2] != n:
            raise UserError(f"{hr_path} has {hr.shape[2]} bands but --n_colors is {n}: pass --n_colors "
                            f"{hr.shape[2]}")
        if lr.dtype != hr.dtype:
            raise UserError(f"{lr_path} is {lr.dtype.name} but its HR {hr_path.name} is {hr.dtype.name}: LR and HR "
                            f"must share a bit depth (make the LR from the HR with prepare_dataset.py)")
        radiometry = self.radiometry
        if radiometry is not None and hr.dtype != radiometry.dtype:
            raise UserError(f"{hr_path} is {hr.dtype.name} but {self.hr_files[0].name} is "
                            f"{radiometry.dtype.name}: one dataset holds one bit depth")
        for path, image in ((lr_path, lr), (hr_path, hr)):
            bad = int(invalid_pixels(image).sum())
            if bad:
                raise UserError(f"{path} has {bad} NaN/Inf pixels: training data must be finite (fill or crop them)")
            if radiometry is not None:
                fill = self.fill_mask(image)
                radiometry.check_values(image, path, self.data_range_given, None if fill is None else ~fill)

    def usable_indices(self):
        """Training: the images whose LR holds a whole patch; the others are skipped, with a note."""
        sides = [min(self.lr_size(i)) for i in range(len(self.hr_files))]
        usable = [i for i, side in enumerate(sides) if side >= self.lr_patch]
        skipped = len(self.hr_files) - len(usable)
        patch = (f"--patch_size {self.patch_size} (the HR patch, as in EDSR and HSENet: {self.lr_patch} LR pixels "
                 f"at x{self.scale})")
        if not usable:
            raise UserError(f"every {self.split} image of {self.root} is smaller than {patch}; its largest LR "
                            f"image is {max(sides)} pixels: pass --patch_size {max(sides) * self.scale} or less "
                            f"(a multiple of {self.scale})")
        if skipped:
            print(f"note: {skipped} of {len(self.hr_files)} {self.split} images of {self.root} are smaller than "
                  f"{patch} and are skipped")
        return usable

    def scorable_indices(self):
        """Validation and test: every image, each large enough to score once the scale's border is cropped (SSIM's
        11-pixel window must fit); a smaller one is refused by name, from its header, before the run starts."""
        least = 2 * self.scale + metrics.SSIM_WINDOW_SIZE
        for path in self.hr_files:
            height, width = image_io.image_header(path)[:2]
            if min(height, width) < least:
                raise UserError(f"{path} is {width}x{height} pixels: a {self.split} image must be at least {least} "
                                f"pixels on each side at x{self.scale} (the metrics crop {self.scale} pixels at each "
                                f"border and SSIM needs {metrics.SSIM_WINDOW_SIZE}); remove it or use a larger one")
        if self.nodata is not None:
            self.check_scorable_despite_nodata()
        return list(range(len(self.hr_files)))

    def check_scorable_despite_nodata(self):
        """With --nodata, every image must keep an SSIM window free of nodata once the border is cropped (else its
        scores are NaN and so is the split's mean); one that does not is refused by name, before the run starts."""
        size = metrics.SSIM_WINDOW_SIZE
        for i, path in enumerate(self.hr_files):
            valid = metrics.crop_border_pixels(self.valid_pixels(*self.load_pair(i)), self.scale)
            if not metrics.whole_windows(valid).any():
                raise UserError(f"{path}: once the x{self.scale} border is cropped, no {size}x{size} window of it is "
                                f"free of nodata (--nodata {self.nodata:g}), so it cannot be scored; remove it from "
                                f"{self.split}, or prepare the tiles with a higher --min_valid")

    def lr_size(self, i):
        if self.images is not None:
            return self.images[i][0].shape[:2]
        if self.lr_from_hr:
            height, width = image_io.image_header(self.hr_files[i])[:2]
            return height // self.scale, width // self.scale
        return image_io.image_header(self.lr_files[i])[:2]

    # -- items -------------------------------------------------------------------------------------------------
    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.samples_per_epoch or len(self.usable)

    def image_of(self, index):
        """The image that sample `index` of this epoch draws. An epoch of at least as many samples as images takes
        every image in turn, as EDSR's `repeat` does (EDSR and the official HSENet code never make an epoch shorter
        than the dataset). A shorter epoch (--test_every x --batch_size below the image count) takes the next
        stretch of an endless stream of seeded permutations of the images: consecutive epochs draw different images,
        and every image is drawn once in each run of len(usable) samples."""
        count = len(self.usable)
        if not self.train or self.samples_per_epoch >= count:
            return self.usable[index % count]
        position = max(self.epoch - 1, 0) * self.samples_per_epoch + index
        permutation = np.random.default_rng([self.seed, position // count]).permutation(count)
        return self.usable[permutation[position % count]]

    def __getitem__(self, index):
        """(LR, HR, name) in network units; with --nodata, and the HR grid's valid pixels (1, H, W) (valid_pixels).
        The LR's nodata pixels take their band's mean, as deploy gives them to the network."""
        i = self.image_of(index)
        lr, hr = self.load_pair(i)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        if self.train:
            lr, hr = random_patch(lr, hr, self.lr_patch, self.scale, rng)
            if self.augment:
                lr, hr = augment(lr, hr, rng)
        lr_fill, valid = self.masks(lr, hr)  # before the noise changes the fill values
        if self.noise:
            lr = add_noise(lr, self.noise * self.radiometry.white / 255, rng)
        item = (self.radiometry.to_network(lr, fill=lr_fill), self.radiometry.to_network(hr), self.name(i))
        return item if valid is None else (*item, torch.from_numpy(np.ascontiguousarray(valid))[None])


def random_patch(lr, hr, patch, scale, rng):
    """A random LR patch of `patch` pixels and its HR patch (the LR is at least that large: see usable_indices)."""
    y = int(rng.integers(0, lr.shape[0] - patch + 1))
    x = int(rng.integers(0, lr.shape[1] - patch + 1))
    return lr[y:y + patch, x:x + patch], hr[y * scale:(y + patch) * scale, x * scale:(x + patch) * scale]


def augment(lr, hr, rng):
    """Random horizontal flip, vertical flip and transpose (together: the 8 rot90/flip variants)."""
    hflip, vflip, transpose = (bool(v) for v in rng.random(3) < 0.5)

    def apply(a):
        if hflip:
            a = a[:, ::-1]
        if vflip:
            a = a[::-1]
        if transpose:
            a = a.transpose(1, 0, 2)
        return a

    return apply(lr), apply(hr)


def add_noise(lr, sigma, rng):
    """Gaussian noise of std `sigma` (file units) on an LR patch, as the official --noise G<std> does after the
    augmentation: integer data are rounded and saturated to their dtype (for 8-bit data the official clip to
    [0, 255]); float data are left unclipped, like everything else here."""
    return to_dtype(lr.astype(np.float64) + rng.normal(0.0, sigma, size=lr.shape), lr.dtype)
