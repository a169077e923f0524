"""Datasets by --dataset name, and the loaders the trainer uses (EDSR's `data.Data`).

- Sample:   embedded RGB 8-bit tiles of a Landsat-8 scene (datasets/Sample), the default;
- SampleMS: embedded 4-band (blue, green, red, NIR) GeoTIFF tiles (datasets/SampleMS);
- UCMerced: UC Merced Land Use, prepared with data_scripts/prepare_dataset.py (datasets/UCMerced by default);
- AID:      the Aerial Image Dataset, prepared the same way (datasets/AID by default);
- Paired:   any folder in the same layout, e.g. cross-sensor pairs (Landsat-8 LR, Sentinel-2 HR): --dir_data;
- HROnly:   a folder with only <split>/HR: LR is made on the fly with the MATLAB bicubic (and cached with sep).
Any other name is read as a Paired folder at --dir_data (or datasets/<name>).
"""
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from data.srdata import SRData
from paths import DATASETS_DIR


class Sample(SRData):
    """Embedded: 40 RGB 8-bit 120x120 tiles of a Landsat-8 scene (datasets/Sample; see datasets/README.md)."""


class SampleMS(SRData):
    """Embedded: 20 four-band (blue, green, red, NIR) uint8 GeoTIFF tiles (datasets/SampleMS)."""


class UCMerced(SRData):
    """UC Merced Land Use (21 classes x 100 images, 256x256), prepared into the layout by prepare_dataset.py."""

    how_to_get = ("download UCMerced_LandUse.zip (http://weegee.vision.ucmerced.edu/datasets/landuse.html), then "
                  "`python codes/data_scripts/prepare_dataset.py --src UCMerced_LandUse/Images --dst "
                  "datasets/UCMerced`")


class AID(SRData):
    """The Aerial Image Dataset (30 classes, 600x600), prepared into the layout by prepare_dataset.py."""

    how_to_get = ("download AID (https://captain-whu.github.io/AID/), then "
                  "`python codes/data_scripts/prepare_dataset.py --src AID --dst datasets/AID --ext png`")


class Paired(SRData):
    """Any LR/HR pairs in the layout, e.g. cross-sensor (Landsat-8 LR, Sentinel-2 HR): nothing is regenerated."""


class HROnly(SRData):
    """Only <split>/HR: the LR is MATLAB-bicubic of the mod-cropped HR, made on the fly (and cached with sep)."""

    lr_from_hr = True


DATASET_CLASSES = {cls.__name__: cls for cls in (Sample, SampleMS, UCMerced, AID, Paired, HROnly)}


def dataset_root(args):
    return Path(args.dir_data) if args.dir_data else DATASETS_DIR / args.dataset


def make_dataset(args, split, train=False):
    """The split of --dataset (any unknown name is a Paired folder) at --dir_data or datasets/<name>."""
    cls = DATASET_CLASSES.get(args.dataset, Paired)
    return cls(args, dataset_root(args), split, train=train)


class Data:
    """Loaders: shuffled training patches, or whole images at batch 1. Training patches come from torch's RNG:
    in the main process the trainer seeds it per epoch, and DataLoader seeds each worker from `generator`."""

    def __init__(self, args):
        self.args = args
        self.generator = torch.Generator()
        self.loaders = {}

    def loader(self, split, train=False):
        """The loader of a split, built once (scanning and caching a large dataset takes a while)."""
        if (split, train) not in self.loaders:
            self.loaders[split, train] = self.make_loader(split, train)
        return self.loaders[split, train]

    def make_loader(self, split, train):
        args = self.args
        dataset = make_dataset(args, split, train=train)
        return DataLoader(dataset, batch_size=args.batch_size if train else 1, shuffle=train,
                          num_workers=args.n_threads, generator=self.generator if train else None,
                          drop_last=train and len(dataset) >= args.batch_size,
                          pin_memory=not args.cpu and torch.cuda.is_available())
