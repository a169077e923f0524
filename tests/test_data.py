"""Data loading: the img/sep/sep_reset/ram modes, the binary cache (staleness, atomic writes), pairs and errors."""
import os
import time

import numpy as np
import pytest
import torch

import image_io
import imresize
from data import Data, make_dataset
from data.srdata import BinaryCache
from errors import UserError
from helpers import SAMPLE, copy_dataset, isolated
from option import parse_args


def make_args(tmp_path, root, *extra):
    return parse_args(["--dir_data", str(root), "--scale", "2", *isolated(tmp_path), *extra])


@pytest.fixture
def small_root(tmp_path):
    return copy_dataset(SAMPLE, tmp_path / "Sample", splits=("val",), scales=(2,))


def items(dataset):
    return [dataset[i] for i in range(len(dataset))]


def test_modes_give_identical_pairs(tmp_path, small_root):
    reference = items(make_dataset(make_args(tmp_path, small_root, "--ext", "img"), "val"))
    for mode in ("sep", "sep_reset", "ram"):
        got = items(make_dataset(make_args(tmp_path, small_root, "--ext", mode), "val"))
        for (lr, hr, name), (lr2, hr2, name2) in zip(reference, got):
            assert name == name2 and torch.equal(lr, lr2) and torch.equal(hr, hr2)
    lr, hr, _ = reference[0]
    assert lr.shape[0] == 3 and hr.shape[1] == 2 * lr.shape[1] and hr.shape[2] == 2 * lr.shape[2]
    assert 0.0 <= float(hr.min()) and float(hr.max()) <= 1.0 and float(hr.std()) > 0.01  # real pixels, scaled


def test_cache_lives_outside_the_sources(tmp_path, small_root):
    make_dataset(make_args(tmp_path, small_root, "--ext", "sep"), "val")
    cached = list((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 2 * len(list((small_root / "val" / "HR").iterdir()))
    assert not list(small_root.rglob("*.npy")) and not list(small_root.rglob("*.stamp"))


def cache_for(tmp_path, root, reset=False):
    return BinaryCache(tmp_path / "cache", root, reset=reset)


def test_cache_rebuilds_when_the_source_changes(tmp_path, small_root):
    src = sorted((small_root / "val" / "HR").iterdir())[0]
    cache = cache_for(tmp_path, small_root)
    original = cache.load(src, image_io.read_image)
    npy = cache.entry(src)
    assert np.array_equal(np.load(npy, allow_pickle=False), original)

    image_io.write_image(src, original[::-1].copy())  # new content (same size): the stamp changes
    reloaded = cache_for(tmp_path, small_root).load(src, image_io.read_image)
    assert np.array_equal(reloaded, original[::-1])

    before = npy.stat().st_mtime_ns
    time.sleep(0.01)
    os.utime(src, ns=(time.time_ns(), time.time_ns()))  # same bytes, new mtime: rebuilt too
    cache_for(tmp_path, small_root).load(src, image_io.read_image)
    assert npy.stat().st_mtime_ns > before


def test_unreadable_cache_file_is_rebuilt(tmp_path, small_root):
    src = sorted((small_root / "val" / "HR").iterdir())[0]
    cache = cache_for(tmp_path, small_root)
    original = cache.load(src, image_io.read_image)
    cache.entry(src).write_bytes(b"\x93NUMPY garbage")
    assert np.array_equal(cache_for(tmp_path, small_root).load(src, image_io.read_image), original)


def test_sep_reset_rebuilds_each_entry_once(tmp_path, small_root):
    src = sorted((small_root / "val" / "HR").iterdir())[0]
    cache_for(tmp_path, small_root).load(src, image_io.read_image)
    npy = cache_for(tmp_path, small_root).entry(src)
    before = npy.stat().st_mtime_ns
    time.sleep(0.01)
    resetting = cache_for(tmp_path, small_root, reset=True)
    resetting.load(src, image_io.read_image)
    rebuilt = npy.stat().st_mtime_ns
    assert rebuilt > before
    resetting.load(src, image_io.read_image)  # a second access in the same run reads the fresh entry
    assert npy.stat().st_mtime_ns == rebuilt


def test_cache_write_is_atomic(tmp_path, small_root, monkeypatch):
    src = sorted((small_root / "val" / "HR").iterdir())[0]

    def crash(f, array, allow_pickle=False):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    cache = cache_for(tmp_path, small_root)
    with pytest.raises(UserError, match="cannot write .*npy: disk full"):
        cache.load(src, image_io.read_image)
    folder = cache.entry(src).parent
    assert not cache.entry(src).exists() and list(folder.iterdir()) == []  # no final file, no temp file


def test_hr_only_dataset_makes_matlab_bicubic_lr(tmp_path):
    root = tmp_path / "hr_only"
    copy_dataset(SAMPLE, root, splits=("val",), scales=())
    args = make_args(tmp_path, root, "--dataset", "HROnly", "--dir_data", str(root), "--scale", "3")
    dataset = make_dataset(args, "val")
    lr, hr = dataset.load_pair(0)
    source = image_io.read_image(sorted((root / "val" / "HR").iterdir())[0])
    assert np.array_equal(hr, imresize.modcrop(source, 3))
    assert np.array_equal(lr, imresize.bicubic_downsample(imresize.modcrop(source, 3), 3))


def test_training_patches_are_aligned(tmp_path, small_root):
    args = make_args(tmp_path, small_root, "--ext", "img", "--patch_size", "20", "--no_augment")
    dataset = make_dataset(args, "val", train=True)
    lr_full, hr_full = dataset.load_pair(0)
    torch.manual_seed(3)
    lr, hr, _ = dataset[0]
    assert lr.shape == (3, 10, 10) and hr.shape == (3, 20, 20)
    # locate the LR patch in the full image, then the HR patch must be the x2 window at the same place
    lr_u8 = (lr * 255).round().byte().permute(1, 2, 0).numpy()
    hits = [(y, x) for y in range(lr_full.shape[0] - 9) for x in range(lr_full.shape[1] - 9)
            if np.array_equal(lr_full[y:y + 10, x:x + 10], lr_u8)]
    y, x = hits[0]
    hr_u8 = (hr * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(hr_u8, hr_full[2 * y:2 * y + 20, 2 * x:2 * x + 20])


def test_loader_batches(tmp_path, small_root):
    args = make_args(tmp_path, small_root, "--patch_size", "16", "--batch_size", "2", "--data_train", "val")
    lr, hr, names = next(iter(Data(args).loader("val", train=True)))
    assert lr.shape == (2, 3, 8, 8) and hr.shape == (2, 3, 16, 16) and len(names) == 2


def test_size_mismatch_names_the_file(tmp_path, small_root):
    lr_path = sorted((small_root / "val" / "LR_x2").iterdir())[1]
    image_io.write_image(lr_path, image_io.read_image(lr_path)[:-3])
    with pytest.raises(UserError, match=lr_path.name):
        make_dataset(make_args(tmp_path, small_root, "--ext", "ram"), "val")


def test_missing_lr_image_is_named(tmp_path, small_root):
    lr_path = sorted((small_root / "val" / "LR_x2").iterdir())[0]
    lr_path.unlink()
    with pytest.raises(UserError, match=f"no LR image for {lr_path.name}"):
        make_dataset(make_args(tmp_path, small_root), "val")


def test_missing_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(UserError, match="prepare_dataset.py"):
        make_dataset(make_args(tmp_path, tmp_path / "nowhere"), "val")


def test_empty_hr_folder(tmp_path):
    (tmp_path / "empty" / "val" / "HR").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no images"):
        make_dataset(make_args(tmp_path, tmp_path / "empty"), "val")


def test_band_count_must_match(tmp_path, small_root):
    with pytest.raises(UserError, match="--n_colors 3"):
        make_dataset(make_args(tmp_path, small_root, "--n_colors", "4"), "val")


def test_corrupt_image_is_named(tmp_path, small_root):
    hr_path = sorted((small_root / "val" / "HR").iterdir())[2]
    hr_path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(UserError, match=hr_path.name):
        make_dataset(make_args(tmp_path, small_root, "--ext", "ram"), "val")


def test_missing_ucmerced_says_where_to_download(tmp_path):
    with pytest.raises(UserError, match="UCMerced_LandUse.zip"):
        make_dataset(make_args(tmp_path, tmp_path / "nowhere", "--dataset", "UCMerced"), "val")


def test_an_epoch_shorter_than_the_dataset_still_draws_every_image(tmp_path):
    """--test_every x --batch_size below the image count: consecutive epochs draw different images (a seeded stream
    of permutations), so every one of the Sample's 32 training images is drawn within 4 epochs of 8 samples."""
    root = copy_dataset(SAMPLE, tmp_path / "Sample", splits=("train",), scales=(2,))
    args = make_args(tmp_path, root, "--test_every", "2", "--batch_size", "4", "--patch_size", "32")
    dataset = make_dataset(args, "train", train=True)
    count = len(dataset.usable)
    assert len(dataset) == 8 < count == 32
    drawn = []
    for epoch in range(1, 5):
        dataset.set_epoch(epoch)
        drawn.append([dataset[i][2] for i in range(len(dataset))])
    assert all(len(set(names)) == 8 for names in drawn)  # no image twice within an epoch
    assert len({name for names in drawn for name in names}) == 32  # every image once in 32 samples
    dataset.set_epoch(1)
    assert [dataset[i][2] for i in range(8)] == drawn[0]  # the same epoch draws the same images again (resume)


def test_an_lr_with_other_bands_than_its_hr_is_named_with_its_hr(tmp_path, small_root):
    lr_path = sorted((small_root / "val" / "LR_x2").iterdir())[0]
    lr = image_io.read_image(lr_path)
    four = lr_path.with_suffix(".tif")
    image_io.write_image(four, np.concatenate([lr, lr[:, :, :1]], axis=2))
    lr_path.unlink()
    with pytest.raises(UserError, match=f"{four} has 4 bands but its HR .* has 3"):
        items(make_dataset(make_args(tmp_path, small_root, "--ext", "img"), "val"))


def test_a_validation_image_too_small_to_score_is_named_before_the_run_starts(tmp_path, small_root):
    """A 4x4 LR (8x8 HR at x2) leaves nothing for SSIM's 11-pixel window once 2 pixels are cropped at each border:
    refused from its header, by name, before a run folder exists."""
    import demo_train

    hr = image_io.read_image(sorted((small_root / "val" / "HR").iterdir())[0])[:8, :8]
    image_io.write_image(small_root / "val" / "HR" / "tiny.png", hr)
    image_io.write_image(small_root / "val" / "LR_x2" / "tiny.png", hr[::2, ::2].copy())
    tiny = small_root / "val" / "HR" / "tiny.png"
    with pytest.raises(UserError, match=f"{tiny} is 8x8 pixels: a val image must be at least 15 pixels"):
        make_dataset(make_args(tmp_path, small_root, "--ext", "img"), "val")
    with pytest.raises(UserError, match="tiny.png is 8x8 pixels"):
        demo_train.main(["--dir_data", str(small_root), "--scale", "2", "--data_train", "val", "--epochs", "1",
                         "--save", "run", *isolated(tmp_path)])
    assert not (tmp_path / "experiment" / "run").exists()
