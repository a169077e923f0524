"""prepare_dataset.py through its command line (in this process: helpers.call_script) on real images: layout, sizes,
LR pixels, split, errors."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_scripts.prepare_dataset import PROTOCOLS, group_by_class, parse_split, split_counts, split_stratified
from errors import UserError
from helpers import call_script
from image_files import list_images
from image_io import read_image, read_image_with_meta, write_image
from imresize import bicubic_downsample, modcrop

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "codes" / "data_scripts" / "prepare_dataset.py"
SAMPLE_HR = REPO_ROOT / "datasets" / "Sample" / "train" / "HR"
SAMPLE_MS_HR = REPO_ROOT / "datasets" / "SampleMS" / "train" / "HR"
UCMERCED_CLASSES = ("agricultural", "beach")


def run_prepare(*args):
    return call_script(SCRIPT, *args, cwd=os.getcwd())


def names_in(folder):
    return sorted(p.stem for p in list_images(folder))


def split_membership(dst):
    return {split: names_in(dst / split / "HR") for split in ("train", "val", "test") if (dst / split).is_dir()}


@pytest.fixture
def two_class_src(tmp_path):
    """10 real Sample tiles in two class folders (5 each); one tile cropped to 119x118 to exercise the mod-crop."""
    src = tmp_path / "src"
    for index, path in enumerate(list_images(SAMPLE_HR)[:10]):
        target = src / ("fields" if index < 5 else "towns") / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    odd = sorted((src / "towns").iterdir())[0]
    write_image(odd, read_image(odd)[:119, :118])
    return src


@pytest.fixture
def ucmerced_src(tmp_path, shared_dir):
    """2 UC Merced classes x 5 tiles in class subfolders, as in UCMerced_LandUse/Images/<class>/."""
    src = tmp_path / "Images"
    for name in UCMERCED_CLASSES:
        shutil.copytree(shared_dir / "data" / "ucmerced_dev" / name, src / name)
    return src


def assert_lr_are_bicubic_of_modcropped_hr(dst, split, scales):
    for hr_path in list_images(dst / split / "HR"):
        hr = read_image(hr_path)
        for scale in scales:
            lr = read_image(dst / split / f"LR_x{scale}" / hr_path.name)
            cropped = modcrop(hr, scale)
            assert lr.shape == (cropped.shape[0] // scale, cropped.shape[1] // scale, hr.shape[2])
            np.testing.assert_array_equal(lr, bicubic_downsample(cropped, scale))


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# ----------------------------------------------------------------------------------------------------------- outputs
def test_layout_sizes_and_lr_pixels(tmp_path, two_class_src):
    dst = tmp_path / "out"
    result = run_prepare("--src", two_class_src, "--dst", dst, "--scales", "2,3,4", "--split", "0.6,0.2,0.2")
    assert result.returncode == 0, result.stderr
    membership = split_membership(dst)
    assert sorted(sum(membership.values(), [])) == sorted(p.stem for p in list_images(two_class_src, recursive=True))
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (dst / split).iterdir()) == ["HR", "LR_x2", "LR_x3", "LR_x4"]
        for hr_path in list_images(dst / split / "HR"):
            source = next(two_class_src.rglob(hr_path.name))
            np.testing.assert_array_equal(read_image(hr_path), read_image(source))  # HR as it is, not cropped
        assert_lr_are_bicubic_of_modcropped_hr(dst, split, (2, 3, 4))
    odd = next(p for p in list_images(dst, recursive=True) if read_image(p).shape[:2] == (119, 118))
    split_dir = odd.parents[1]
    assert read_image(split_dir / "LR_x3" / odd.name).shape == (39, 39, 3)  # 117x117 / 3
    assert read_image(split_dir / "LR_x4" / odd.name).shape == (29, 29, 3)  # 116x116 / 4


def test_split_is_stratified_and_seeded(tmp_path, two_class_src):
    runs = {}
    for label in ("a", "b"):
        dst = tmp_path / label
        assert run_prepare("--src", two_class_src, "--dst", dst, "--split", "0.6,0.2,0.2", "--seed", 7,
                           "--scales", "2").returncode == 0
        runs[label] = split_membership(dst)
    fields = set(names_in(two_class_src / "fields"))
    for split, expected in (("train", 3), ("val", 1), ("test", 1)):
        names = runs["a"][split]
        assert len(set(names) & fields) == expected and len(set(names) - fields) == expected
    assert runs["a"] == runs["b"]
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files_a) == 20
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)
    # the script's split is split_stratified's; another seed gives another split
    classes = group_by_class(two_class_src, list_images(two_class_src, recursive=True))
    seed_7 = {k: [p.stem for p in v] for k, v in split_stratified(classes, (0.6, 0.2, 0.2), 7).items()}
    seed_8 = {k: [p.stem for p in v] for k, v in split_stratified(classes, (0.6, 0.2, 0.2), 8).items()}
    assert seed_7 == runs["a"] and seed_8 != seed_7


@pytest.mark.parametrize(("n", "fractions", "expected"), [
    (5, (0.6, 0.2, 0.2), [3, 1, 1]), (100, (0.8, 0.1, 0.1), [80, 10, 10]), (10, (0.7, 0.3, 0.0), [7, 3, 0]),
    (5, (0.8, 0.1, 0.1), [4, 1, 0]), (1, (0.34, 0.33, 0.33), [1, 0, 0]), (7, (1, 0, 0), [7, 0, 0]),
])
def test_split_counts_use_largest_remainders(n, fractions, expected):
    assert split_counts(n, fractions) == expected


def test_split_1_0_0_puts_everything_in_train(tmp_path, two_class_src):
    dst = tmp_path / "out"
    assert run_prepare("--src", two_class_src, "--dst", dst, "--split", "1,0,0", "--scales", "4").returncode == 0
    assert sorted(p.name for p in dst.iterdir()) == ["dataset.json", "train"]
    assert json.loads((dst / "dataset.json").read_text())["bands"] == ["red", "green", "blue"]
    assert len(names_in(dst / "train" / "HR")) == len(names_in(dst / "train" / "LR_x4")) == 10


def test_ucmerced_classes_and_255_px_hr_at_x3(tmp_path, ucmerced_src):
    dst = tmp_path / "UCMerced"
    result = run_prepare("--src", ucmerced_src, "--dst", dst, "--scales", "3", "--split", "0.6,0.2,0.2")
    assert result.returncode == 0, result.stderr
    membership = split_membership(dst)
    for name in UCMERCED_CLASSES:
        assert sum(n.startswith(name) for n in membership["train"]) == 3
        assert sum(n.startswith(name) for n in membership["val"]) == 1
    assert all(p.suffix == ".tif" for p in list_images(dst / "train" / "HR"))  # --ext defaults to the source's
    assert_lr_are_bicubic_of_modcropped_hr(dst, "test", (3,))
    assert read_image(list_images(dst / "test" / "LR_x3")[0]).shape == (85, 85, 3)  # HR 256 -> 255 -> 85


def test_geotiff_lr_is_georeferenced_and_ext_converts_png_to_tif(tmp_path):
    src = tmp_path / "ms"
    shutil.copytree(SAMPLE_MS_HR, src)
    dst = tmp_path / "out"
    assert run_prepare("--src", src, "--dst", dst, "--scales", "2,4", "--split", "1,0,0").returncode == 0
    hr, hr_meta = read_image_with_meta(list_images(dst / "train" / "HR")[0])
    lr, lr_meta = read_image_with_meta(dst / "train" / "LR_x4" / hr_meta.path.name)
    assert hr.shape == (96, 96, 4) and lr.shape == (24, 24, 4)
    assert lr_meta.geo["crs"] == hr_meta.geo["crs"]
    hr_t, lr_t = hr_meta.geo["transform"], lr_meta.geo["transform"]
    assert (lr_t.c, lr_t.f) == (hr_t.c, hr_t.f) and lr_t.a == 4 * hr_t.a and lr_t.e == 4 * hr_t.e
    rgb_src = tmp_path / "rgb"
    shutil.copytree(SAMPLE_HR, rgb_src)
    assert run_prepare("--src", rgb_src, "--dst", tmp_path / "tif", "--ext", "TIF", "--scales", "2",
                       "--split", "1,0,0").returncode == 0
    first = list_images(tmp_path / "tif" / "train" / "HR")[0]
    assert first.suffix == ".tif"
    np.testing.assert_array_equal(read_image(first), read_image(rgb_src / f"{first.stem}.png"))


# ----------------------------------------------------------------------------------------------------------- errors
def test_missing_src_is_a_one_line_error(tmp_path):
    assert_one_line_error(run_prepare("--src", tmp_path / "nope", "--dst", tmp_path / "out"), "--src", "nope")


def test_empty_src_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_prepare("--src", tmp_path / "empty", "--dst", tmp_path / "out"), "no images")


def test_bad_split_is_a_one_line_error(tmp_path, two_class_src):
    result = run_prepare("--src", two_class_src, "--dst", tmp_path / "out", "--split=0.5,0.2,0.2")
    assert_one_line_error(result, "--split", "sum to")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("split", "fragment"), [("0.8,0.2", "three"), ("a,b,c", "three"),
                                                 ("1.2,-0.1,-0.1", "non-negative"), ("0.3,0.3,0.3", "sum to")])
def test_parse_split_rejects(split, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_split(split)


def test_corrupt_image_is_named(tmp_path, two_class_src):
    (two_class_src / "towns" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    result = run_prepare("--src", two_class_src, "--dst", tmp_path / "out", "--split", "1,0,0")
    assert_one_line_error(result, "broken.png")


def test_a_split_that_rounds_to_no_image_is_refused(tmp_path, two_class_src):
    """5 images per class at 0.8,0.1,0.1 give 4/1/0: an empty test split, refused with what to change."""
    result = run_prepare("--src", two_class_src, "--dst", tmp_path / "out", "--split", "0.8,0.1,0.1")
    assert_one_line_error(result, "gives the test split none (4/1/0)", "raise its fraction")
    assert not (tmp_path / "out").exists()


def test_ucmerced_protocol_is_45_5_50_per_class(tmp_path):
    """The HSENet/TransENet split (TransENet issue #14): 100 images per class give 45/5/50, 945/105/1050 in all."""
    classes = {f"class{k:02d}": [f"class{k:02d}_{i:02d}.png" for i in range(100)] for k in range(21)}
    paths = {name: [Path(name) / f for f in files] for name, files in classes.items()}
    splits = split_stratified(paths, parse_split(PROTOCOLS["ucmerced"]), seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [945, 105, 1050]
    for name in classes:
        assert [sum(p.parent.name == name for p in splits[s]) for s in ("train", "val", "test")] == [45, 5, 50]


def test_protocol_and_split_are_exclusive(tmp_path, two_class_src):
    result = run_prepare("--src", two_class_src, "--dst", tmp_path / "out", "--protocol", "ucmerced",
                         "--split", "1,0,0")
    assert_one_line_error(result, "--protocol fixes the split")


def test_non_empty_dst_needs_overwrite(tmp_path, two_class_src):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("user data")
    assert_one_line_error(run_prepare("--src", two_class_src, "--dst", dst, "--split", "1,0,0"), "--overwrite")
    # --overwrite replaces a dataset, never a folder of other files
    assert_one_line_error(run_prepare("--src", two_class_src, "--dst", dst, "--scales", "2", "--split", "1,0,0",
                                      "--overwrite"), "holds files but no dataset")
    assert (dst / "keep.txt").read_text() == "user data"
    # nor a folder of other files that also holds a dataset.json, of any content
    overwrite = ("--src", two_class_src, "--dst", dst, "--scales", "2", "--split", "1,0,0", "--overwrite")
    for content in ("not json", "{}"):
        (dst / "dataset.json").write_text(content)
        proc = run_prepare(*overwrite)
        assert_one_line_error(proc, "dataset.json" if content == "not json" else "holds keep.txt, which no "
                              "preparation writes")
    (dst / "dataset.json").unlink()
    (dst / "dataset.json").mkdir()
    assert_one_line_error(run_prepare(*overwrite), "dataset.json is not a file")
    assert (dst / "keep.txt").read_text() == "user data"
    # a prepared dataset is replaced
    (dst / "dataset.json").rmdir()
    (dst / "keep.txt").unlink()
    assert run_prepare("--src", two_class_src, "--dst", dst, "--scales", "2", "--split", "1,0,0").returncode == 0
    assert run_prepare(*overwrite).returncode == 0
    # nor a dataset with the user's files inside its split folders
    for extra in (dst / "train" / "HR" / "notes.txt", dst / "train" / "HR" / "pack" / "a.png",
                  dst / "train" / "mine" / "a.png"):
        extra.parent.mkdir(exist_ok=True)
        extra.write_text("user data")
        assert_one_line_error(run_prepare(*overwrite), f"holds {extra.relative_to(dst).parts[0]}/",
                              "which no preparation writes")
        assert extra.read_text() == "user data"
        extra.unlink()
        if extra.parent.name in ("pack", "mine"):
            extra.parent.rmdir()


def test_name_collision_across_classes_is_refused(tmp_path, two_class_src):
    shutil.copyfile(next((two_class_src / "fields").iterdir()), two_class_src / "towns" / "dup.png")
    shutil.copyfile(next((two_class_src / "towns").iterdir()), two_class_src / "fields" / "dup.png")
    assert_one_line_error(run_prepare("--src", two_class_src, "--dst", tmp_path / "out"), "dup")


# ----------------------------------------------------------------------------------------------------------- embedded
def test_make_sample_rebuilds_the_embedded_datasets_byte_for_byte(tmp_path, shared_dir):
    from data_scripts import make_sample

    assert make_sample.main(["--registry", str(shared_dir / "data" / "registry"), "--dst", str(tmp_path)]) == 0
    for name in ("Sample", "SampleMS"):
        built = sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*") if p.is_file())
        shipped = sorted(p.relative_to(REPO_ROOT / "datasets" / name)
                         for p in (REPO_ROOT / "datasets" / name).rglob("*") if p.is_file())
        assert built == shipped
        changed = [f for f in built if (tmp_path / name / f).read_bytes() != (REPO_ROOT / "datasets" / name / f)
                   .read_bytes()]
        assert changed == [], f"datasets/{name} is stale: rebuild with make_sample.py --overwrite ({changed[:3]})"
    assert json.loads((tmp_path / "SampleMS" / "dataset.json").read_text())["bands"] == ["blue", "green", "red", "nir"]
    assert len(list_images(tmp_path / "Sample" / "train" / "HR")) == 32
    assert read_image(list_images(tmp_path / "Sample" / "test" / "LR_x3")[0]).shape == (40, 40, 3)
