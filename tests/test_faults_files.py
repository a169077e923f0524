"""The fault suite, part two: every value read from a file is checked, every declared size is budgeted, every output
is checked against every input. Each case is a generated hostile file or flag; it either works or fails with one
line and a non-zero exit, and nothing the user owns changes."""
import errno
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import onnx
import PIL.Image
import pytest
import torch
from onnx import TensorProto, helper

import atomic
import checkpoint
import demo_deploy
import demo_train
import image_files
import image_io
import option
import png16
import runs
from conftest import REPO_ROOT
from errors import UserError
from helpers import CODES, SAMPLE, TINY_BASIC, assert_one_line_error, call_script, copy_dataset, isolated
from test_deploy import sample_ms_hr, write_geotiff
from test_faults import snapshot

METRIC_SCRIPT = REPO_ROOT / "metric_scripts" / "calculate_PSNR_SSIM.py"
PREPARE = CODES / "data_scripts" / "prepare_dataset.py"
TRAIN = TINY_BASIC + ["--scale=2"]


def train(tmp_path, *extra):
    return demo_train.main(TRAIN + isolated(tmp_path) + list(extra))


def deployed(tmp_path):
    """A BICUBIC deploy of the Sample test split: (SR folder, GT folder)."""
    out = tmp_path / "sr"
    demo_deploy.main(["--model=BICUBIC", f"--dir_out={out}", *isolated(tmp_path)])
    return out, SAMPLE / "test" / "HR"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained run: its model_latest.pt is the template of the crafted checkpoints (valid checksums)."""
    root = tmp_path_factory.mktemp("trained")
    train(root, "--epochs=1", "--save=run")
    return root / "experiment" / "run" / "model" / checkpoint.LATEST


def crafted(trained, path, change):
    """A copy of the trained checkpoint with `change(payload)` applied, saved with a valid checksum."""
    payload = {k: v for k, v in torch.load(trained, weights_only=True).items()
               if k not in (checkpoint.CHECKSUM_KEY, checkpoint.FORMAT_KEY)}
    change(payload)
    checkpoint.save(path, payload)
    return path


# ------------------------------------------------------------------------------------ outputs against inputs
def test_the_metric_csv_never_replaces_a_ground_truth_image_or_the_manifest(tmp_path):
    sr, gt = deployed(tmp_path)
    gt_copy = shutil.copytree(gt, tmp_path / "gt")
    image = image_files.list_images(gt_copy)[0]
    before = image.read_bytes()
    manifest = (sr / "manifest.json").read_bytes()
    for target, fragment in ((image, "is one of the inputs"), (sr / "manifest.json", "is one of the inputs")):
        proc = call_script(METRIC_SCRIPT, "--gt", gt_copy, "--sr", sr, "--scale", "4", "--csv", target)
        assert_one_line_error(proc, f"--csv {target}", fragment)
    foreign = tmp_path / "notes.txt"
    foreign.write_text("my notes")
    with pytest.raises(UserError, match="is not a CSV this script wrote"):
        run_metric(["--gt", str(gt_copy), "--sr", str(sr), "--scale", "4", "--csv", str(foreign)])
    assert image.read_bytes() == before and (sr / "manifest.json").read_bytes() == manifest
    assert foreign.read_text() == "my notes"
    run_metric(["--gt", str(gt_copy), "--sr", str(sr), "--scale", "4", "--csv", str(tmp_path / "s.csv")])
    run_metric(["--gt", str(gt_copy), "--sr", str(sr), "--scale", "4", "--csv", str(tmp_path / "s.csv")])  # ours


def run_metric(argv):
    sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
    import calculate_PSNR_SSIM

    return calculate_PSNR_SSIM.main(argv)


def test_prepare_dataset_never_rewrites_its_own_sources(tmp_path):
    root = copy_dataset(SAMPLE, tmp_path / "DS", splits=("train",), scales=(2,), limit=4)
    sources = {p: p.read_bytes() for p in (root / "train" / "HR").iterdir()}
    proc = call_script(PREPARE, "--src", root / "train" / "HR", "--dst", root, "--split", "1,0,0", "--overwrite")
    assert_one_line_error(proc, "is inside --dst", "replace its own sources")
    assert {p: p.read_bytes() for p in (root / "train" / "HR").iterdir()} == sources


def test_a_run_file_that_became_a_link_is_refused_on_resume(tmp_path):
    train(tmp_path, "--epochs=1", "--save=run")
    run = tmp_path / "experiment" / "run"
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's file\n")
    (run / "log.txt").unlink()
    (run / "log.txt").symlink_to(outside)
    with pytest.raises(UserError, match=r"log.txt is a symbolic link"):
        train(tmp_path, "--epochs=2", "--save=run", "--resume")
    assert outside.read_text() == "someone else's file\n"


# ------------------------------------------------------------------------------------------- pixel budget
def png_bomb(path, side):
    """A valid 8-bit RGB PNG of side x side black pixels: about 1 MB on disk at 20000, 1.2 GB decoded."""
    row = b"\0" * (1 + 3 * side)
    packer = zlib.compressobj(9)
    data = b"".join([packer.compress(row) for _ in range(side)] + [packer.flush()])
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(png16.PNG_SIGNATURE + png16.png_chunk(b"IHDR", ihdr) + png16.png_chunk(b"IDAT", data)
                     + png16.png_chunk(b"IEND", b""))
    return path


PEAK = textwrap.dedent('''
    import resource, sys
    sys.path.insert(0, sys.argv[1])
    import image_io
    from errors import UserError
    try:
        image_io.read_image(sys.argv[2])
        print("read")
    except UserError as err:
        print("refused:", err)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
''')


def test_a_valid_png_bomb_is_refused_from_its_header_at_the_memory_of_a_small_image(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png", 20000)
    assert bomb.stat().st_size < 2_000_000
    small = image_files.list_images(SAMPLE / "test" / "HR")[0]
    peaks = {}
    for name, path in (("small", small), ("bomb", bomb)):
        proc = subprocess.run([sys.executable, "-c", PEAK, str(CODES), str(path)], capture_output=True, text=True,
                              timeout=300)
        lines = proc.stdout.splitlines()
        peaks[name] = int(lines[-1]) / 1024  # MiB
        assert lines[0].startswith("read" if name == "small" else "refused:"), proc.stdout + proc.stderr
    assert "declares 20000x20000 pixels" in proc.stdout
    assert peaks["bomb"] < peaks["small"] + 64, peaks  # a decode would add 1.2 GB


def test_the_orientation_of_a_png_is_read_without_decoding_it(tmp_path):
    """An eXIf chunk after the pixel data (where Pillow's getexif() decodes the image to find it) still turns the
    header's size, as the decoded pixels are turned."""
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:5] = 255
    path = tmp_path / "late_exif.png"
    image_io.write_image(path, pixels)
    exif = PIL.Image.Exif()
    exif[image_io.EXIF_ORIENTATION] = 6
    body = exif.tobytes()[6:]  # without "Exif\0\0": a PNG eXIf chunk holds the TIFF structure itself
    png = path.read_bytes()
    end = png.rindex(b"IEND") - 4
    path.write_bytes(png[:end] + png16.png_chunk(b"eXIf", body) + png[end:])
    assert image_io.image_header(path)[:2] == (30, 20)
    assert image_io.read_image(path).shape == (30, 20, 3)


# ---------------------------------------------------------------------------------------------- full disks
class FullAfter(io.RawIOBase):
    """A file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, room):
        self.room = room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return len(data)


@pytest.mark.parametrize("room", [100, 20_000])
def test_a_full_disk_inside_torchs_zip_writer_is_the_os_error(tmp_path, monkeypatch, room):
    """torch reports it as `RuntimeError: [enforce fail at inline_container.cc] unexpected pos`, chained from the
    OSError; the one line gives the OSError."""
    monkeypatch.setattr(checkpoint, "open", lambda *args: FullAfter(room), raising=False)
    target = tmp_path / "model.pt"
    with pytest.raises(UserError, match=r"cannot write .*model.pt: No space left on device \(the disk is full"):
        checkpoint.save(target, {"model": {"w": torch.zeros(20000)}})
    assert not target.exists() and not list(tmp_path.iterdir())


def test_geotiff_cog_and_png_writes_on_a_full_disk_give_the_cause_and_nothing_else(tmp_path, tiny_fs):
    disk = tiny_fs("200k")
    pixels = np.random.default_rng(0).integers(0, 65535, (400, 400, 3)).astype(np.uint16)
    scene = write_geotiff(tmp_path / "scene.tif", pixels)
    _, meta = image_io.read_image_with_meta(scene)
    script = textwrap.dedent('''
        import sys
        sys.path.insert(0, sys.argv[1])
        import numpy as np, image_io, geotiff
        from errors import run_cli
        array, meta = image_io.read_image_with_meta(sys.argv[2])
        kind, target = sys.argv[3], sys.argv[4]
        def main(argv):
            if kind == "window":
                with geotiff.GeoTiffWindowWriter(target, 400, 400, 3, np.uint16, meta) as writer:
                    for row in range(0, 400, 100):
                        writer.write(array[row:row + 100], row, 0)
            else:
                image_io.write_image(target, array if kind != "png" else (array // 256).astype(np.uint8), meta,
                                     cog=kind == "cog")
        run_cli(main)
    ''')
    for kind, name in (("cog", "a.tif"), ("geotiff", "b.tif"), ("window", "c.tif"), ("png", "d.png")):
        proc = subprocess.run([sys.executable, "-c", script, str(CODES), str(scene), kind, str(disk / name)],
                              capture_output=True, text=True, timeout=300)
        assert_one_line_error(proc, f"cannot write {disk / name}: No space left on device", "the disk is full")
        assert proc.stderr.count("\n") == 1, proc.stderr  # no GDAL lines, no "Exception ignored" tracebacks
        assert list(disk.iterdir()) == []  # never a truncated file under a final name
    assert meta.geo is not None


# ------------------------------------------------------------------------------------------ values from files
@pytest.mark.parametrize("manifest", [["a", "list"], {"scale": 4, "radiometry": {"white": "255"}},
                                      {"scale": 4, "images": [{"output": "x.png", "radiometry": {"white": 1e999}}]},
                                      {"scale": "4"}])
def test_a_hostile_manifest_is_one_line(tmp_path, manifest):
    sr, gt = deployed(tmp_path)
    (sr / "manifest.json").write_text(json.dumps(manifest))
    proc = call_script(METRIC_SCRIPT, "--gt", gt, "--sr", sr)
    assert_one_line_error(proc, str(sr / "manifest.json"), "was not written by demo_deploy.py")


@pytest.mark.parametrize("change, fragment", [
    (lambda p: p.update(epoch="3"), "its epoch '3' is not a whole number"),
    (lambda p: p.update(best="high"), "its best score 'high' is not a score"),
    (lambda p: p.update(history=[{"epoch": 1, "psnr_rgb": [1]}]), "history holds values that are not numbers"),
    (lambda p: p["model"].update({next(iter(p["model"])): "a string"}), "is a str, not a tensor"),
    (lambda p: p.update(optimizer={"state": {}, "param_groups": "x"}), "optimizer, scheduler or scaler state"),
])
def test_a_checkpoint_with_a_valid_checksum_and_hostile_values_is_one_line(tmp_path, trained, change, fragment):
    run = tmp_path / "experiment" / "run" / "model"
    run.mkdir(parents=True)
    crafted(trained, run / checkpoint.LATEST, change)
    shutil.copy(trained.parent.parent / "config.txt", run.parent)
    shutil.copy(trained.parent.parent / "written_files.json", run.parent)
    with pytest.raises(UserError, match=fragment):
        train(tmp_path, "--epochs=2", "--save=run", "--resume")


def test_a_checkpoint_asking_for_200000_features_is_refused_before_allocating(tmp_path, trained):
    path = crafted(trained, tmp_path / "huge.pt", lambda p: p["config"].update(n_feats=200000))
    proc = call_script(CODES / "demo_deploy.py", "--model=BASIC", "--scale=2", "--pre_train", path,
                      "--dir_out", tmp_path / "sr", *isolated(tmp_path))
    assert_one_line_error(proc, "--n_feats 200000 (checkpoint)", "TB of memory")
    assert not (tmp_path / "sr").exists()


def test_a_tensor_declaring_more_than_its_file_holds_is_refused_before_the_checksum(tmp_path):
    """1 KB on disk, 360 GB once expanded: the stride-0 tensor of the campaign."""
    path = tmp_path / "bomb.pt"
    torch.save({"head.0.weight": torch.zeros(1).expand(100000, 100000, 3, 3)}, path)
    assert path.stat().st_size < 4096
    with pytest.raises(UserError, match=r"declares the shape \(100000, 100000, 3, 3\) \(335 GB\) but the file holds 4"):
        checkpoint.read(path)
    proc = call_script(CODES / "demo_deploy.py", "--model=BASIC", "--pre_train", path, *isolated(tmp_path))
    assert_one_line_error(proc, str(path), "crafted or damaged")


def onnx_file(path, metadata, op="Identity"):
    """A one-node ONNX graph N x 3 x H x W -> same, with the given metadata (values as JSON text); "Rank3" makes an
    Identity on N x 3 x H inputs."""
    dims = ["n", 3, "h"] if op == "Rank3" else ["n", 3, "h", "w"]
    op = "Identity" if op == "Rank3" else op
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)
    graph = helper.make_graph([helper.make_node(op, ["input"], ["output"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("metadata, op, fragment", [
    ({"model": 5, "scale": 2}, "Identity", "gives model 5, not a model name"),
    ({"model": "BASIC", "scale": 5}, "Identity", "(metadata 'scale'): --scale 5 is invalid"),
    ({"model": "BASIC", "scale": 2, "data_range": -1}, "Identity", "--data_range -1 is invalid"),
    ({"model": "BASIC", "scale": 2, "n_colors": 3}, "NoSuchOperator", "onnxruntime cannot run it"),
    ({"model": "BASIC", "scale": 2, "n_colors": 3}, "Rank3", "takes and returns N x C x H x W"),
])
def test_hostile_onnx_files_are_one_line(tmp_path, metadata, op, fragment):
    path = onnx_file(tmp_path / "model.onnx", metadata, op)
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        demo_deploy.main(["--backend", "onnxruntime", "--onnx", str(path), "--dir_out", str(tmp_path / "sr"),
                          *isolated(tmp_path)])


@pytest.mark.parametrize("value", ["1e999", "true", '"255"', "0"])
def test_a_hostile_dataset_json_is_one_line(tmp_path, value):
    root = copy_dataset(SAMPLE, tmp_path / "Mine", splits=("train", "val"), scales=(2,), limit=3)
    (root / "dataset.json").write_text(f'{{"data_range": {value}}}')
    with pytest.raises(UserError, match=r"dataset.json: 'data_range' .* it must be the file value of full white"):
        train(tmp_path, "--dataset=Mine", f"--dir_data={root}", "--epochs=1")


# ------------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize("flags, fragment", [
    (["--seed", str(2**63 - 1)], "--seed: expected an integer from 0 to 4294967295"),
    (["--loss=-1*L1"], "--loss: expected a finite weight > 0 for L1"),
    (["--loss", "nan*L1"], "--loss: expected a finite number"),
    (["--loss", "1*L1+2*l1"], "L1 appears twice"),
    (["--rgb_range", "1e-300"], "--rgb_range: expected a white level from 0.001 to 100000"),
    (["--data_range", "1e999"], "--data_range: expected a finite number"),
])
def test_flags_that_cannot_work_are_refused_when_parsed(tmp_path, capsys, flags, fragment):
    with pytest.raises(SystemExit) as stop:
        train(tmp_path, *flags)
    assert stop.value.code == 2 and fragment in capsys.readouterr().err
    assert not (tmp_path / "experiment").exists()


@pytest.mark.parametrize("flags, fragment", [
    (["--model=CONVFORMERSR", "--scale=3", "--embed_dim", "12"], "gives the layer FFM_Layers.0.chan_attn.fc.0 no"),
    (["--model=EDSR", "--n_feats", "100000"], r"--n_feats 100000 \(command line\).* TB of memory"),
])
def test_architecture_sizes_that_cannot_work_are_refused_before_the_run_folder(tmp_path, flags, fragment):
    with pytest.raises(UserError, match=fragment):
        option.parse_args([*flags, *isolated(tmp_path)], purpose="train")
    assert not (tmp_path / "experiment").exists()


def test_a_large_seed_trains_and_reproduces(tmp_path):
    seed = str(2**32 - 1)
    train(tmp_path, "--epochs=1", "--save=a", "--seed", seed)
    train(tmp_path, "--epochs=1", "--save=b", "--seed", seed)
    models = [torch.load(tmp_path / "experiment" / run / "model" / checkpoint.LATEST, weights_only=True)["model"]
              for run in ("a", "b")]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


# ------------------------------------------------------------------------------------- caches, kills, signals
def test_a_cache_entry_that_cannot_be_used_is_rebuilt_whatever_the_reason(tmp_path):
    train(tmp_path, "--epochs=1", "--save=first")
    entries = sorted((tmp_path / "cache").rglob("*.npy"))
    stamps = sorted((tmp_path / "cache").rglob("*.stamp"))
    good = np.load(entries[0])
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    entries[0].write_bytes(b"\x93NUMPY" + header.getvalue()[6:])  # declares 8 TB, holds nothing
    entries[1].write_bytes(entries[1].read_bytes()[:100])  # truncated
    stamps[2].write_bytes(b"\xff\xfe\x00binary")  # not text
    train(tmp_path, "--epochs=1", "--save=second")
    assert np.array_equal(np.load(entries[0]), good)
    np.load(entries[1])


def killed_preparation(src, dst, *flags):
    """Start prepare_dataset.py and SIGKILL it once it has written an LR file (in its staging folder)."""
    proc = subprocess.Popen([sys.executable, str(PREPARE), "--src", str(src), "--dst", str(dst), "--split",
                             "0.8,0.1,0.1", "--scales", "2", *flags], cwd=CODES)
    deadline = time.monotonic() + 120
    staged = f".{dst.name}{atomic.TEMP_MARK}*/train/LR_x2/*.png"
    while not list(dst.parent.glob(staged)) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL and bool(list(dst.parent.glob(staged)))


def test_a_killed_preparation_leaves_no_dataset_and_an_overwrite_keeps_the_old_one(tmp_path):
    """A preparation writes into a staging folder beside --dst, renamed to --dst once complete: a killed one leaves
    no --dst (nothing that could pass for a dataset), a killed --overwrite leaves the previous dataset intact and
    usable, and the next preparation clears what the killed one left."""
    src = tmp_path / "src"
    src.mkdir()
    for k, path in enumerate(image_files.list_images(SAMPLE / "train" / "HR")[:20]):
        shutil.copy(path, src / f"{k:02d}.png")
    dst = tmp_path / "Mine"
    if not killed_preparation(src, dst):
        pytest.skip("the preparation finished before the kill landed")
    assert not dst.exists()
    with pytest.raises(UserError, match="Mine"):
        train(tmp_path, "--dataset=Mine", f"--dir_data={dst}", "--epochs=1")
    proc = call_script(PREPARE, "--src", src, "--dst", dst, "--split", "0.8,0.1,0.1", "--scales", "2")
    assert proc.returncode == 0, proc.stderr
    assert not [p for p in tmp_path.iterdir() if atomic.TEMP_MARK in p.name]
    before = snapshot(dst)
    if not killed_preparation(src, dst, "--overwrite", "--seed", "7"):
        pytest.skip("the preparation finished before the kill landed")
    assert snapshot(dst) == before  # the old dataset, whole
    train(tmp_path, "--dataset=Mine", f"--dir_data={dst}", "--epochs=1")
    # an --overwrite that completes holds only its own files: a smaller tiling leaves none of the earlier tiles
    proc = call_script(PREPARE, "--src", src, "--dst", dst, "--split", "0.5,0.5,0", "--scales", "2", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert "test" not in {p.name for p in dst.iterdir()} and not [p for p in tmp_path.iterdir()
                                                               if atomic.TEMP_MARK in p.name]


def test_two_preparations_of_one_destination_do_not_mix(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for k, path in enumerate(image_files.list_images(SAMPLE / "train" / "HR")[:8]):
        shutil.copy(path, src / f"{k:02d}.png")
    dst = tmp_path / "Mine"
    holder = runs.FolderLock.beside(dst, "preparation").acquire()  # a preparation of dst in progress
    try:
        proc = call_script(PREPARE, "--src", src, "--dst", dst, "--scales", "2")
        assert_one_line_error(proc, f"{dst} is in use by another preparation (PID {os.getpid()})")
    finally:
        holder.release()
    assert not dst.exists()
    # the lock lies in the user's folder: a preparation removes it when done, whether it succeeded or failed
    assert call_script(PREPARE, "--src", src, "--dst", dst, "--scales", "2").returncode == 0
    assert call_script(PREPARE, "--src", src, "--dst", dst, "--scales", "2").returncode == 2  # dst not empty
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Mine", "src"]


def test_sigint_during_a_multi_scene_cog_deploy_never_exits_0(tmp_path):
    """At three moments after the work started (the output folder exists): exit 130 and one line."""
    scenes = tmp_path / "scenes"
    for k in range(8):
        write_geotiff(scenes / f"s{k}.tif", np.tile(sample_ms_hr(k % 3), (4, 4, 1)))
    for delay in (0.0, 0.4, 1.2):
        out = tmp_path / f"out{delay}"
        proc = subprocess.Popen([sys.executable, str(CODES / "demo_deploy.py"), "--model=BICUBIC", "--scale=4",
                                 "--n_colors=4", "--cog", "yes", "--dir_data", str(scenes), "--dir_out", str(out),
                                 *isolated(tmp_path)], cwd=CODES, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        while not out.exists() and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        if proc.returncode == 0 and (out / "manifest.json").exists() and "interrupted" not in stderr:
            continue  # it had finished before the signal: nothing to check
        assert proc.returncode == 130, (proc.returncode, stderr)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    # a temp file of a write the signal cut short is removed by the next start in that folder
    demo_deploy.main(["--model=BICUBIC", "--scale=4", "--n_colors=4", "--dir_data", str(scenes), "--dir_out",
                      str(out), *isolated(tmp_path)])
    assert not [p for p in out.iterdir() if atomic.TEMP_MARK in p.name]


def test_files_are_named_in_skips(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.png").write_bytes(png16.PNG_SIGNATURE + b"\0" * 40)
    shutil.copy(image_files.list_images(SAMPLE / "test" / "LR_x4")[0], src / "good.png")
    proc = call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--n_colors=3", "--dir_data", src, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))
    assert_one_line_error(proc, "1 of 2 inputs skipped", str(src / "broken.png"))
    assert os.path.exists(tmp_path / "out" / "good.png")


def test_export_never_replaces_a_file_that_is_not_an_onnx_model(tmp_path, trained):
    import export_onnx

    foreign = tmp_path / "model.onnx"
    foreign.write_text("my notes, not a model")
    with pytest.raises(UserError, match="exists and is not an export of this toolbox"):
        export_onnx.main(["--pre_train", str(trained), "--out", str(foreign), *isolated(tmp_path)])
    assert foreign.read_text() == "my notes, not a model"
