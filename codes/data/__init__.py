"""Datasets by --dataset name, and the loaders the trainer uses (EDSR's `data.Data`).

- Sample:   embedded RGB 8-bit tiles of a Landsat-8 scene (datasets/Sample), the default;
- SampleMS: embedded 4-band (blue, green, red, NIR) GeoTIFF tiles (datasets/SampleMS);
- UCMerced: UC Merced Land Use, prepared with data_scripts/prepare_dataset.py (datasets/UCMerced by default);
- AID:      the Aerial Image Dataset, prepared the same way (datasets/AID by default);
- DIV2K:    the official DIV2K release, put into the layout by data_scripts/prepare_div2k.py (datasets/DIV2K);
- Paired:   any folder in the same layout, e.g. cross-sensor pairs (Landsat-8 LR, Sentinel-2 HR): --dir_data;
- HROnly:   a folder with only <split>/HR: LR is made on the fly with the MATLAB bicubic (and cached with sep).
Any other name is accepted when its folder (--dir_data, or datasets/<name>) exists: it is read as Paired. A dataset
root may hold a `dataset.json` (band names, white level, ground sample distance; see data/dataset_json.py).

Training samples are shuffled by a DistributedSampler seeded from (--seed, epoch), also in one process: with N ranks
each takes every N-th sample of the same permutation, so the union of the ranks' k-th batches is exactly one
process's k-th batch (--batch_size is the global batch). Validation images are shared the same way, unshuffled.
"""
import itertools

import torch
from torch.utils.data import DataLoader, DistributedSampler

import paths
from data.dataset_json import check_complete
from data.srdata import SRData
from errors import UserError


class Sample(SRData):
    """Embedded: 40 RGB 8-bit 120x120 tiles of a Landsat-8 scene (datasets/Sample; see datasets/README.md)."""


class SampleMS(SRData):
    """Embedded: 20 four-band (blue, green, red, NIR) uint8 GeoTIFF tiles (datasets/SampleMS)."""


class UCMerced(SRData):
    """UC Merced Land Use (21 classes x 100 images, 256x256), prepared into the layout by prepare_dataset.py."""

    how_to_get = ("download UCMerced_LandUse.zip (http://weegee.vision.ucmerced.edu/datasets/landuse.html), then "
                  "`python codes/data_scripts/prepare_dataset.py --src UCMerced_LandUse/Images --dst "
                  "datasets/UCMerced --protocol ucmerced`")


class AID(SRData):
    """The Aerial Image Dataset (30 classes, 600x600), prepared into the layout by prepare_dataset.py."""

    how_to_get = ("download AID (https://captain-whu.github.io/AID/), then "
                  "`python codes/data_scripts/prepare_dataset.py --src AID --dst datasets/AID --ext png`")


class DIV2K(SRData):
    """DIV2K (800 train / 100 valid 2K RGB images), the training set of the DIV2K-trained baselines (EDSR, RCAN,
    SwinIR), put into the layout with its official bicubic LR by prepare_div2k.py."""

    how_to_get = ("download DIV2K_{train,valid}_HR.zip and DIV2K_{train,valid}_LR_bicubic_X{2,3,4}.zip "
                  "(https://data.vision.ee.ethz.ch/cvl/DIV2K/), unzip them into DIV2K/, then `python "
                  "codes/data_scripts/prepare_div2k.py --src DIV2K --dst datasets/DIV2K`")


class Paired(SRData):
    """Any LR/HR pairs in the layout, e.g. cross-sensor (Landsat-8 LR, Sentinel-2 HR): nothing is regenerated."""


class HROnly(SRData):
    """Only <split>/HR: the LR is MATLAB-bicubic of the mod-cropped HR, made on the fly (and cached with sep)."""

    lr_from_hr = True


DATASET_CLASSES = {cls.__name__: cls for cls in (Sample, SampleMS, UCMerced, AID, DIV2K, Paired, HROnly)}


def dataset_root(cfg):
    return paths.dataset_root(cfg.dir_data, cfg.dataset)


def make_dataset(cfg, split, train=False):
    """The split of --dataset at --dir_data or datasets/<name>; an unknown name is a Paired folder if it exists."""
    root = dataset_root(cfg)
    check_complete(root)
    cls = DATASET_CLASSES.get(cfg.dataset)
    if cls is None:
        if not root.is_dir():
            raise UserError(f"--dataset {cfg.dataset}: no such folder {root}; the known datasets are "
                            f"{', '.join(DATASET_CLASSES)}, and any folder in the layout works under its own name "
                            f"with --dir_data ROOT")
        cls = Paired
    return cls(cfg, root, split, train=train)


class ResumableSampler(DistributedSampler):
    """DistributedSampler whose epoch can start after its first `skip` indices: an epoch resumed mid-way (the order
    is the same; the skipped samples were trained on before the stop)."""

    skip = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self):
        return max(super().__len__() - self.skip, 0)


class Data:
    """Loaders: shuffled training patches (the global --batch_size split over `world` ranks), or whole images at
    batch 1. `set_epoch` must be called before each training epoch (it reseeds the order and the patches)."""

    def __init__(self, cfg, rank=0, world=1):
        if cfg.batch_size % world:
            raise UserError(f"--batch_size {cfg.batch_size} must divide by the number of processes ({world}): it "
                            f"is the global batch")
        self.cfg, self.rank, self.world = cfg, rank, world
        self.loaders = {}

    def loader(self, split, train=False):
        """The loader of a split, built once (scanning and caching a large dataset takes a while)."""
        if (split, train) not in self.loaders:
            self.loaders[split, train] = self.make_loader(split, train)
        return self.loaders[split, train]

    def make_loader(self, split, train):
        cfg = self.cfg
        dataset = make_dataset(cfg, split, train=train)
        pin = not cfg.cpu and torch.cuda.is_available()
        if not train:  # whole images, batch 1; under torchrun each rank takes every world-th image
            shard = range(self.rank, len(dataset), self.world)
            return DataLoader(dataset, batch_size=1, sampler=shard, num_workers=cfg.n_threads, pin_memory=pin)
        sampler = ResumableSampler(dataset, num_replicas=self.world, rank=self.rank, shuffle=True, seed=cfg.seed,
                                     drop_last=True)
        return DataLoader(dataset, batch_size=cfg.batch_size // self.world, sampler=sampler,
                          num_workers=cfg.n_threads, drop_last=len(dataset) >= cfg.batch_size, pin_memory=pin)

    def set_epoch(self, epoch, skip_batches=0):
        """Reseed the training order and patches for `epoch`, starting after its first `skip_batches` batches."""
        for (_, train), loader in self.loaders.items():
            if train:
                loader.sampler.set_epoch(epoch)
                loader.sampler.skip = skip_batches * loader.batch_size
                loader.dataset.set_epoch(epoch)
