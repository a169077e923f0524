"""ONNX export (export_onnx.py) and deploy through onnxruntime (demo_deploy.py --backend onnxruntime), on real pixels
with tiny randomly initialised BASIC and HSENet checkpoints: graph shapes and metadata read back with `onnx`, a file
opened and run the way QGIS Deepness does, dynamic graphs at two sizes, both deploy backends equal to <= 1 level on
the Sample and on 4-band GeoTIFFs (tiled, nodata, self-ensemble), and the one-line errors."""
import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import rasterio
import torch

import checkpoint
import demo_deploy
import export_onnx
import image_files
import image_io
import option
from checkpoint import plain_settings
from errors import UserError
from helpers import CODES, SAMPLE, SAMPLE_MS, assert_one_line_error, call_script, isolated
from model import Model
from onnx_graph import sha256_of
from radiometry import Radiometry

TINY_BASIC = ["--model=BASIC", "--n_feats=8", "--n_resblocks=1"]
TINY_HSENET = ["--model=HSENET", "--n_feats=8", "--n_basic_modules=1"]
SAMPLE_MS_FLAGS = ["--dataset=SampleMS", "--n_colors=4", "--bands=blue,green,red,nir"]


def save_checkpoint(path, flags, seed=0, data_dtype=np.uint8):
    """A checkpoint of ours (weights, recorded configuration, training radiometry: data of `data_dtype`) of a randomly
    initialised network. Every weight is perturbed, so HSENet's zero-initialised attention outputs take part."""
    torch.manual_seed(seed)
    cfg = option.parse_args([*flags, "--cpu"], purpose="none")
    net = Model(cfg).model
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    checkpoint.save(path, {"model": net.state_dict(), "config": plain_settings(cfg),
                           "radiometry": Radiometry.of(data_dtype, None, cfg.rgb_range).record()})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny checkpoints and the ONNX files export_onnx.py makes of them (run in-process)."""
    root = tmp_path_factory.mktemp("onnx")
    made = {"root": root,
            "basic": save_checkpoint(root / "basic.pt", TINY_BASIC + ["--scale=4"]),
            "hsenet": save_checkpoint(root / "hsenet.pt", TINY_HSENET + ["--scale=4"], seed=1),
            "basic_ms": save_checkpoint(root / "basic_ms.pt", TINY_BASIC + ["--scale=4", *SAMPLE_MS_FLAGS], seed=2)}
    exports = {"basic_onnx": ["--model=BASIC", "--scale=4", "--pre_train", made["basic"]],
               "hsenet_fixed": ["--model=HSENET", "--scale=4", "--pre_train", made["hsenet"], "--tile=48"],
               "hsenet_dynamic": ["--model=HSENET", "--scale=4", "--pre_train", made["hsenet"], "--dynamic_shape"]}
    for name, flags in exports.items():
        made[name] = root / f"{name}.onnx"
        assert export_onnx.main([*map(str, flags), "--out", str(made[name]), *isolated(root)]) == 0
    return made


def deploy(tmp_path, name, *flags):
    out_dir = tmp_path / name
    demo_deploy.main(["--cpu", *isolated(tmp_path), "--dir_out", str(out_dir), *map(str, flags)])
    return out_dir, json.loads((out_dir / "manifest.json").read_text())


def assert_within_one_level(dir_a, dir_b):
    names = sorted(p.name for p in dir_a.iterdir() if p.suffix in (".png", ".tif"))
    assert names and names == sorted(p.name for p in dir_b.iterdir() if p.suffix in (".png", ".tif"))
    for name in names:
        a, b = image_io.read_image(dir_a / name), image_io.read_image(dir_b / name)
        assert a.dtype == b.dtype == np.uint8 and a.shape == b.shape
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, name
    return names


def metadata(path):
    return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}


def dims(value_info):
    return [d.dim_value or d.dim_param for d in value_info.type.tensor_type.shape.dim]


# ----------------------------------------------------------------------------------------------- the exported file
def test_graph_and_metadata_read_back_with_onnx(files):
    proto = onnx.load(str(files["basic_onnx"]))
    onnx.checker.check_model(proto)
    # fixed at BASIC's deploy tile (256 LR pixels), dynamic batch, float32
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["output"]
    assert dims(proto.graph.input[0]) == ["batch", 3, 256, 256]
    assert dims(proto.graph.output[0]) == ["batch", 3, 1024, 1024]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # opset 17, IR 8: what onnxruntime 1.12 (the oldest QGIS Deepness installs) opens
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)] and proto.ir_version == 8
    meta = metadata(files["basic_onnx"])
    assert meta["model_type"] == "Superresolution"
    assert meta["tile_size"] == meta["tiles_size"] == 256
    assert meta["tiles_overlap"] == 0 and meta["tile_overlap_px"] == 48  # Deepness's and deploy's overlap
    assert meta["standardization_mean"] == [0.0] * 3 and meta["standardization_std"] == [1.0] * 3
    # the Sample's HR is 30 m: Deepness reads the layer at the resolution the model learned to produce (30 m in,
    # 7.5 m out), which the checkpoint records
    assert meta["resolution"] == 3000.0 and meta["gsd_m"] == 30.0
    assert (meta["model"], meta["scale"], meta["n_colors"], meta["bands"]) == ("BASIC", 4, 3, ["red", "green", "blue"])
    assert meta["data_range"] is None and meta["training_white"] == 255.0
    assert meta["checkpoint_sha256"] == sha256_of(files["basic"]) and meta["checkpoint"] == "basic.pt"
    assert (meta["deploy_tile"], meta["dynamic_shape"], meta["output_clamped"]) == (256, False, True)
    # the raw values are JSON text, as Deepness's json.loads expects ("Superresolution" quoted)
    raw = {p.key: p.value for p in onnx.load(str(files["basic_onnx"])).metadata_props}
    assert raw["model_type"] == '"Superresolution"' and raw["standardization_mean"] == "[0.0, 0.0, 0.0]"


def test_default_output_path_and_bicubic_without_checkpoint(tmp_path, capsys):
    assert export_onnx.main(["--model=BICUBIC", "--scale=3", "--tile=24", *isolated(tmp_path)]) == 0
    out = tmp_path / "experiment" / "onnx" / "BICUBICx3_Sample.onnx"
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "max |onnxruntime - PyTorch| = 0 " in printed
    assert "timing" not in printed  # only with --timing (below)
    meta = metadata(out)
    assert meta["checkpoint"] is None and meta["scale"] == 3 and meta["tile_size"] == 24
    assert "resolution" not in meta  # no checkpoint and no --dataset: no training data to take it from
    assert not [p for p in out.parent.iterdir() if p != out]  # no temp file left beside it
    # a killed export's temp file of the same output goes with the next export; another file's stays
    killed, other = out.parent / f".{out.name}.rssr-tmp-1234.onnx", out.parent / ".other.onnx.rssr-tmp-1.onnx"
    killed.write_bytes(b"half a graph")
    other.write_bytes(b"another export in progress")
    assert export_onnx.main(["--model=BICUBIC", "--scale=3", "--tile=24", "--timing", *isolated(tmp_path)]) == 0
    assert not killed.exists() and other.exists()
    timing = [line for line in capsys.readouterr().out.splitlines() if line.startswith("timing, 24x24 tile")]
    assert len(timing) == 1 and "PyTorch" in timing[0] and "onnxruntime" in timing[0]


# ---------------------------------------------------------------------------------------- QGIS Deepness's reading
class DeepnessSuperresolution:
    """How QGIS Deepness opens and runs a Superresolution model, written for this test from reading its code
    (PUTvision/qgis-plugin-deepness: processing/models/model_base.py and superresolution.py, deepness_dockwidget.py,
    processing/map_processor/map_processor_superresolution.py, common/processing_overlap.py). Nothing here adapts to
    our files: a file that needs an edit to load fails here as it would in QGIS."""

    def __init__(self, path):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it asks for CUDA first; onnxruntime warns that this machine has none
            self.session = ort.InferenceSession(str(path), sess_options=options,
                                                providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) > 1:
            raise ValueError("ONNX model: unsupported number of inputs")
        self.input_shape, self.input_name = inputs[0].shape, inputs[0].name
        self.outputs = self.session.get_outputs()
        self.meta = self.session.get_modelmeta().custom_metadata_map
        channels = self.input_shape[-3]
        self.mean, self.std = np.zeros(channels, np.float32), np.ones(channels, np.float32)
        if "standardization_mean" in self.meta and "standardization_std" in self.meta:
            self.mean = np.array([float(v) for v in json.loads(self.meta["standardization_mean"])], np.float32)
            self.std = np.array([float(v) for v in json.loads(self.meta["standardization_std"])], np.float32)

    def value(self, key, kind):
        return kind(json.loads(self.meta[key])) if key in self.meta else None

    def model_type(self):
        return None if "model_type" not in self.meta else str(json.loads(self.meta["model_type"])).capitalize()

    def batch_size(self):
        return None if isinstance(self.input_shape[0], str) else self.input_shape[0]

    def check_loaded_model_outputs(self):
        if len(self.outputs) != 1:
            raise NotImplementedError("Model with multiple output layers is not supported")
        shape = self.outputs[0].shape
        if len(shape) != 4:
            raise ValueError(f"output should have 4 dimensions, has {shape}")
        if shape[2] != shape[3]:
            raise ValueError(f"can handle only square outputs, has {shape}")

    def dock_widget_settings(self):
        """What the dock widget fills in on loading the model: tile from the input shape (a spin box: an int), scale
        factor from output / input width, then the defaults from the metadata."""
        self.check_loaded_model_outputs()
        tile = self.input_shape[-1]
        if not isinstance(tile, int):
            raise TypeError(f"QSpinBox.setValue needs an int, got the symbolic size {tile!r}")
        scale = int(self.outputs[0].shape[-1] / tile)
        overlap_percent = self.value("tiles_overlap", int)
        return {"tile": self.value("tile_size", int) or tile, "scale": scale, "overlap_percent": overlap_percent,
                "overlap_px": int(tile * overlap_percent / 100 * 2) // 2,
                "resolution_cm": self.value("resolution", float), "batch": self.batch_size(),
                "model_type": self.model_type()}

    def process(self, tiles_nhwc, output_scaling):
        """A batch of uint8 tiles (N, H, W, bands) in, the scaled float32 SR (N, C, sH, sW) out."""
        x = tiles_nhwc[:, :, :, :self.input_shape[-3]]
        x = np.float32(x * 1. / 255.)
        x = (x - self.mean) / self.std
        x = np.transpose(x, (0, 3, 1, 2))
        result = self.session.run(None, {self.input_name: x})[0]
        result[np.isnan(result)] = 0
        result *= output_scaling
        return result.astype(np.float32)

    def run_map(self, image, settings, output_scaling=255.0):
        """The super-resolution map processor on a uint8 (H, W, bands) image whose sides are whole tiles: tiles at
        the stride, all in one batch, each tile's whole output pasted at its stride position into a uint8 array
        (output scaling: the UI's default 255)."""
        tile, scale = settings["tile"], settings["scale"]
        stride = tile - settings["overlap_px"]
        rows, cols = (round((side - tile) / stride) + 1 for side in image.shape[:2])
        corners = [(r * stride, c * stride) for r in range(rows) for c in range(cols)]
        results = self.process(np.stack([image[y:y + tile, x:x + tile] for y, x in corners]), output_scaling)
        full = np.zeros((image.shape[0] * scale, image.shape[1] * scale, self.outputs[0].shape[-3]), np.uint8)
        for (y, x), result in zip(corners, results):
            full[y * scale:(y + stride) * scale, x * scale:(x + stride) * scale, :] = result.transpose(1, 2, 0)
        return full


def test_deepness_loads_the_export_and_runs_it_equal_to_deploy(files, tmp_path):
    model = DeepnessSuperresolution(files["basic_onnx"])
    settings = model.dock_widget_settings()
    assert settings == {"tile": 256, "scale": 4, "overlap_percent": 0, "overlap_px": 0, "resolution_cm": 3000.0,
                        "batch": None, "model_type": "Superresolution"}
    # A 256 x 512 map: two real 256-pixel tiles side by side (Sample test LR, mirrored up to the tile).
    tiles = []
    for index, path in enumerate(image_files.list_images(SAMPLE / "test" / "LR_x4")[:2]):
        lr = image_io.read_image(path)
        tile = np.pad(lr, ((0, 256 - lr.shape[0]), (0, 256 - lr.shape[1]), (0, 0)), mode="symmetric")
        image_io.write_image(tmp_path / "tiles" / f"tile{index}.png", tile)
        tiles.append(tile)
    image = np.concatenate(tiles, axis=1)
    sr = model.run_map(image, settings)
    assert sr.shape == (1024, 2048, 3)
    out_dir, _ = deploy(tmp_path, "torch", "--pre_train", files["basic"], "--model=BASIC", "--scale=4",
                        "--dir_data", tmp_path / "tiles")
    ours = np.concatenate([image_io.read_image(out_dir / f"tile{i}.png") for i in range(2)], axis=1)
    # Deepness truncates output x 255 into uint8, deploy rounds: at most one level apart
    assert np.abs(ours.astype(int) - sr.astype(int)).max() <= 1
    # why the metadata says tiles_overlap 0: with an overlap, its paste of whole tile outputs fails
    with pytest.raises(ValueError, match="broadcast"):
        model.run_map(np.concatenate([image, image[:, :208]], axis=1), {**settings, "overlap_px": 48})


def test_deepness_standardization_maps_a_16_bit_layer_to_the_graph_range(tmp_path):
    """Deepness divides every layer by 255; for a model trained on 16-bit data the metadata's standardization_std
    (65535 / 255) makes its input file value / 65535, what the graph takes."""
    ckpt = save_checkpoint(tmp_path / "basic16.pt", TINY_BASIC + ["--scale=4"], data_dtype=np.uint16)
    out = tmp_path / "basic16.onnx"
    export_onnx.main(["--pre_train", str(ckpt), "--tile=32", "--out", str(out), *isolated(tmp_path)])
    meta = metadata(out)
    assert meta["training_white"] == 65535.0 and meta["standardization_std"] == [257.0] * 3
    lr = image_io.read_image(image_files.list_images(SAMPLE / "test" / "LR_x4")[0])
    tile = np.pad(lr, ((0, 2), (0, 2), (0, 0)), mode="symmetric").astype(np.uint16) * 257  # real pixels, 16-bit
    got = DeepnessSuperresolution(out).process(tile[None], output_scaling=1.0)[0]
    net = Model(option.parse_args(["--pre_train", str(ckpt), "--cpu"], purpose="deploy")).model
    with torch.no_grad():
        expected = net(Radiometry.of(np.uint16, None, 1.0).to_network(tile)[None]).clamp(0, 1)[0].numpy()
    assert np.abs(got - expected).max() <= 1e-4


def test_deepness_refuses_a_dynamic_size_graph_hence_the_fixed_default(files):
    model = DeepnessSuperresolution(files["hsenet_dynamic"])
    assert model.input_shape[2:] == ["height", "width"]
    with pytest.raises(ValueError, match="square outputs"):
        model.dock_widget_settings()
    assert DeepnessSuperresolution(files["hsenet_fixed"]).dock_widget_settings()["tile"] == 48


# --------------------------------------------------------------------------------------------------- dynamic graphs
def test_dynamic_graph_runs_at_two_sizes_and_batches_equal_to_pytorch(files):
    session = ort.InferenceSession(str(files["hsenet_dynamic"]), providers=["CPUExecutionProvider"])
    net = Model(option.parse_args(["--pre_train", str(files["hsenet"]), "--cpu"], purpose="deploy")).eval()
    lr = image_io.read_image(image_files.list_images(SAMPLE / "test" / "LR_x4")[1])
    x = Radiometry.of(lr.dtype, None, 1.0).to_network(lr)[None]
    for batch in (x[..., :30, :26], torch.cat([x[..., 3:20, 5:28], x[..., 9:26, 1:24]])):
        got = session.run(["output"], {"input": batch.numpy()})[0]
        with torch.no_grad():
            expected = net.model(batch).numpy()  # not clipped (a fixed-size graph, for Deepness, is)
        assert got.shape == expected.shape == (batch.shape[0], 3, batch.shape[2] * 4, batch.shape[3] * 4)
        assert np.abs(got - expected).max() <= 1e-4
    meta = metadata(files["hsenet_dynamic"])
    assert meta["dynamic_shape"] is True and meta["output_clamped"] is False


# ------------------------------------------------------------------------------------- deploy --backend onnxruntime
def test_both_backends_agree_on_the_sample_basic_and_hsenet(files, tmp_path):
    torch_dir, torch_manifest = deploy(tmp_path, "b_torch", "--pre_train", files["basic"])
    ort_dir, manifest = deploy(tmp_path, "b_ort", "--pre_train", files["basic"], "--backend", "onnxruntime")
    assert len(assert_within_one_level(torch_dir, ort_dir)) == 4
    assert torch_manifest["backend"] == "torch" and manifest["backend"] == "onnxruntime"
    assert manifest["onnx"]["exported_on_the_fly"] and manifest["onnx"]["input_size"] == "dynamic"
    assert manifest["radiometry"] == {"dtype": "uint8", "white": 255.0, "net_range": 1.0}  # [0, 1] for the graph
    # HSENet: the on-the-fly export, and the exported dynamic file (no checkpoint read), with the x8 ensemble
    h_torch, _ = deploy(tmp_path, "h_torch", "--pre_train", files["hsenet"], "--self_ensemble")
    h_ort, _ = deploy(tmp_path, "h_ort", "--pre_train", files["hsenet"], "--self_ensemble", "--backend=onnxruntime")
    h_file, file_manifest = deploy(tmp_path, "h_file", "--onnx", files["hsenet_dynamic"], "--self_ensemble",
                                   "--backend=onnxruntime")
    assert_within_one_level(h_torch, h_ort)
    assert_within_one_level(h_torch, h_file)
    assert file_manifest["model"] == "HSENET" and file_manifest["checkpoint"] is None
    assert file_manifest["onnx"]["file"] == str(files["hsenet_dynamic"].resolve())
    assert file_manifest["onnx"]["sha256"] == sha256_of(files["hsenet_dynamic"])
    assert file_manifest["onnx"]["checkpoint_sha256"] == sha256_of(files["hsenet"])


def nodata_geotiff(path):
    """A 4-band SampleMS LR GeoTIFF with a declared nodata (0) block in a corner."""
    source = image_files.list_images(SAMPLE_MS / "test" / "LR_x4")[0]
    with rasterio.open(source) as src:
        profile, pixels = src.profile, src.read()
    pixels[:, :7, :9] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **{**profile, "nodata": 0}) as dst:
        dst.write(pixels)
    return path


def test_both_backends_agree_on_4_band_geotiffs_tiled_with_nodata(files, tmp_path):
    inputs = tmp_path / "inputs"
    for path in image_files.list_images(SAMPLE_MS / "test" / "LR_x4"):
        (inputs / path.name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / path.name).write_bytes(path.read_bytes())
    nodata_geotiff(inputs / "with_nodata.tif")
    flags = ["--pre_train", files["basic_ms"], "--dir_data", inputs, "--tile=16", "--tile_overlap=6"]
    torch_dir, _ = deploy(tmp_path, "torch", *flags)
    ort_dir, manifest = deploy(tmp_path, "ort", *flags, "--backend=onnxruntime")
    assert len(assert_within_one_level(torch_dir, ort_dir)) == 4
    assert all(record["tiles"] == 4 for record in manifest["images"])  # 24x24 LR in 16-pixel tiles
    with rasterio.open(torch_dir / "with_nodata.tif") as a, rasterio.open(ort_dir / "with_nodata.tif") as b:
        assert a.count == b.count == 4 and a.nodata == b.nodata == 0
        assert a.transform == b.transform and a.crs == b.crs
        assert (b.read()[:, :28, :36] == 0).all()  # the nodata block stays nodata, x4


def test_bicubic_exports_one_graph_per_input_size(tmp_path):
    torch_dir, _ = deploy(tmp_path, "torch", "--model=BICUBIC", "--scale=3")
    ort_dir, manifest = deploy(tmp_path, "ort", "--model=BICUBIC", "--scale=3", "--backend=onnxruntime")
    assert_within_one_level(torch_dir, ort_dir)
    assert manifest["onnx"]["input_size"] == "per input size"
    assert list(manifest["onnx"]["graphs_sha256"]) == ["40x40"]  # every Sample x3 LR is 40x40


def test_a_fixed_size_file_runs_every_tile_at_its_size(files, tmp_path):
    out_dir, manifest = deploy(tmp_path, "fixed", "--onnx", files["hsenet_fixed"], "--backend=onnxruntime")
    assert manifest["onnx"]["input_size"] == "fixed 48x48"
    assert all(record["sr_size"] == [120, 120] for record in manifest["images"])  # 30x30 padded to 48, cropped


# ---------------------------------------------------------------------------------------------------------- errors
def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    proc = call_script(CODES / "export_onnx.py", "--model=HSENET", "--scale=2", *isolated(tmp_path))
    assert_one_line_error(proc, "model_best.pt", "--pre_train")
    one_line_error(lambda: export_onnx.main(["--pre_train", str(tmp_path / "none.pt")]), "none.pt", "no such file")


def one_line_error(fn, *fragments):
    with pytest.raises(UserError) as caught:
        fn()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_bad_export_inputs_are_one_line_errors(files, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    basic = ["--model=BASIC", "--scale=4", "--pre_train", str(files["basic"]), *isolated(tmp_path)]
    one_line_error(lambda: export_onnx.main([*basic, "--out", str(blocker / "x.onnx")]), "cannot write", "a_file")
    one_line_error(lambda: export_onnx.main([*basic, "--out", str(tmp_path)]), "is a folder")
    transenet = save_checkpoint(tmp_path / "transenet.pt", ["--model=TRANSENET", "--n_feats=8", "--en_depth=1",
                                                             "--de_depth=1", "--patch_size=128", "--scale=4"])
    flags = ["--model=TRANSENET", "--scale=4", "--pre_train", str(transenet), *isolated(tmp_path)]
    one_line_error(lambda: export_onnx.main([*flags, "--tile=48"]), "--tile 48", "exactly 32x32")
    one_line_error(lambda: export_onnx.main([*flags, "--dynamic_shape"]), "exactly 32x32", "drop --dynamic_shape")
    one_line_error(lambda: export_onnx.main(["--model=BICUBIC", "--dynamic_shape", *isolated(tmp_path)]),
                   "does not export with a dynamic size")
    foreign = tmp_path / "saved_model.pb"  # another framework's protobuf: its first byte is ONNX's too
    foreign.write_bytes(b"\x08\x01\x12\x04data")
    one_line_error(lambda: export_onnx.main([*basic, "--out", str(foreign)]), "saved_model.pb exists and is not an "
                   "export of this toolbox")
    assert foreign.read_bytes() == b"\x08\x01\x12\x04data"
    one_line_error(lambda: export_onnx.main([*basic, "--tile=200000"]),  # a trace at that size: terabytes
                   "--tile 200000: the export's trace (200000x200000 LR pixels, 3 bands, x4) needs", "smaller --tile")
    assert not list(tmp_path.glob("experiment/onnx/*"))  # nothing written by the failed exports


def test_bad_deploy_onnx_inputs_are_one_line_errors(files, tmp_path):
    onnx_file = str(files["hsenet_dynamic"])
    one_line_error(lambda: deploy(tmp_path, "a", "--onnx", onnx_file), "--backend onnxruntime")
    one_line_error(lambda: deploy(tmp_path, "b", "--onnx", onnx_file, "--backend=onnxruntime", "--scale=2"),
                   "exported with --scale 4, not 2")
    one_line_error(lambda: deploy(tmp_path, "c", "--onnx", tmp_path / "none.onnx", "--backend=onnxruntime"),
                   "none.onnx", "no such file")
    one_line_error(lambda: deploy(tmp_path, "d", "--onnx", files["hsenet_fixed"], "--backend=onnxruntime",
                                  "--tile=64"), "exactly 48x48")
    (tmp_path / "empty.onnx").write_bytes(b"")  # parses as a graph with no metadata at all
    bare = onnx.load(onnx_file)
    del bare.metadata_props[:]
    onnx.save(bare, tmp_path / "bare.onnx")
    other_bands = onnx.load(onnx_file)  # an export's own values disagree: the file is named, not a flag
    for prop in other_bands.metadata_props:
        if prop.key == "bands":
            prop.value = json.dumps(["a", "b"])
    onnx.save(other_bands, tmp_path / "bands.onnx")
    one_line_error(lambda: deploy(tmp_path, "g", "--onnx", tmp_path / "bands.onnx", "--backend=onnxruntime"),
                   "--bands a,b (--onnx", "bands.onnx) names 2 bands but --n_colors 3 (--onnx")
    for prop in other_bands.metadata_props:
        if prop.key == "bands":
            prop.value = json.dumps([["x"] * 3000])  # one band named by a 15 KB text
    onnx.save(other_bands, tmp_path / "long.onnx")
    message = one_line_error(lambda: deploy(tmp_path, "g", "--onnx", tmp_path / "long.onnx", "--backend=onnxruntime"),
                             "long.onnx")
    assert len(message) < 600, len(message)
    multiple = onnx.load(onnx_file)
    for prop in multiple.metadata_props:
        if prop.key == "tile_multiple":
            prop.value = "1000000000"
    onnx.save(multiple, tmp_path / "multiple.onnx")
    one_line_error(lambda: deploy(tmp_path, "m", "--onnx", tmp_path / "multiple.onnx", "--backend=onnxruntime"),
                   "multiple.onnx (metadata 'tile_multiple') says tiles are multiples of 1000000000")
    huge = onnx.load(onnx_file)  # the same graph declaring a fixed input of 200000x200000: padded to, terabytes
    for value in huge.graph.input[0].type.tensor_type.shape.dim[2:]:
        value.dim_value = 200000
    for value in huge.graph.output[0].type.tensor_type.shape.dim[2:]:
        value.dim_value = 800000
    onnx.save(huge, tmp_path / "huge.onnx")
    one_line_error(lambda: deploy(tmp_path, "h", "--onnx", tmp_path / "huge.onnx", "--backend=onnxruntime",
                                  "--dir_data", SAMPLE / "test" / "LR_x4"),
                   "huge.onnx: its fixed input size (200000x200000 LR pixels, 3 bands, x4) needs", "smaller --tile")
    assert not (tmp_path / "h").exists()
    for name in ("empty.onnx", "bare.onnx"):
        one_line_error(lambda name=name: deploy(tmp_path, "e", "--onnx", tmp_path / name, "--backend=onnxruntime"),
                       f"{name}: its metadata lacks model, scale, n_colors")
    assert not (tmp_path / "e").exists()


def test_a_pre_upsampled_network_exports_with_its_upsampling_inside_and_deploys_alike(tmp_path):
    """SRCNN takes the LR upsampled by OpenCV's cubic: the graph does it (a = -0.75, half-pixel centres), so it takes
    the LR as every other export does, and onnxruntime deploy stays within a level of PyTorch deploy."""
    ckpt = save_checkpoint(tmp_path / "srcnn.pt", ["--model=SRCNN", "--scale=2"], seed=3)
    out = tmp_path / "srcnn.onnx"
    assert export_onnx.main(["--pre_train", str(ckpt), "--dynamic_shape", "--out", str(out), *isolated(tmp_path)]) == 0
    lr = ["--dir_data", SAMPLE / "test" / "LR_x2", "--pre_train", ckpt]
    torch_dir, _ = deploy(tmp_path, "torch", *lr)
    onnx_dir, manifest = deploy(tmp_path, "onnx", *lr, "--backend=onnxruntime", "--onnx", out)
    assert manifest["backend"] == "onnxruntime"
    assert_within_one_level(torch_dir, onnx_dir)


@pytest.mark.parametrize("model", ["SWINIR", "CONVFORMERSR"])
def test_a_network_that_already_ran_exports_the_graph_of_one_that_never_ran(model, tmp_path):
    """Swin attention caches its masks per input size; a trace must not bake an earlier run's masks into the graph.
    The exporter traces the loaded network itself, so after a run at the very size of each trace its fixed and
    dynamic graphs are byte for byte those of a network that never ran."""
    from onnx_export import DYNAMIC_TRACE_SIZE, Exporter

    scale = 3 if model == "CONVFORMERSR" else 2
    small = [f"--model={model}", f"--scale={scale}", "--embed_dim=24", "--depths=2", "--num_heads=2",
             "--window_size=4", "--num_block=1", "--img_size=16"]
    ckpt = save_checkpoint(tmp_path / "swin.pt", small)
    cfg = option.parse_args([*small, "--pre_train", str(ckpt), "--tile=16", *isolated(tmp_path)], purpose="export")
    fresh, used = (Exporter(cfg, Model(cfg), clamp=True) for _ in range(2))
    for size in ((16, 16), None):
        with torch.no_grad():  # the masks of the very size the trace takes are in the cache now
            used.network(torch.rand(1, 3, *(size or DYNAMIC_TRACE_SIZE)))
        assert used.export(size, 17) == fresh.export(size, 17)


def resize_graph(path, input_name="input", output_name="output", out_channels=3, nan=False):
    """A x2 nearest-neighbour graph with this toolbox's metadata (LGCNET x2, 3 bands), made with onnx.helper."""
    from onnx import TensorProto, helper

    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    nodes = [helper.make_node("Resize", [input_name, "", "scales"], ["resized"], mode="nearest")]
    last = "resized"
    if out_channels != 3:
        nodes.append(helper.make_node("ReduceMean", ["resized"], ["mean"], axes=[1], keepdims=1))
        last = "mean"
    if nan:
        nodes.append(helper.make_node("Div", [last, "zero"], ["divided"]))
        nodes.append(helper.make_node("Sub", ["divided", "divided"], ["nan"]))  # inf - inf
        last = "nan"
    nodes.append(helper.make_node("Identity", [last], [output_name]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                                                         ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                                             ["N", out_channels, "H2", "W2"])],
                              initializer=[scales, helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"model": "LGCNET", "scale": 2, "n_colors": 3}.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value)
    onnx.save(model, path)
    return path


def test_a_graph_of_another_interface_is_refused_when_it_opens_and_nan_outputs_are_an_error(tmp_path):
    """A foreign graph was run input by input, each skipped with the same message, or its NaN written as 0."""
    run = ["--backend=onnxruntime", "--dir_data", SAMPLE / "test" / "LR_x2"]
    for made, fragment in ((resize_graph(tmp_path / "x.onnx", input_name="x"), "its input is 'x' of tensor(float)"),
                           (resize_graph(tmp_path / "c.onnx", out_channels=1), "returns 1 bands, not 3")):
        one_line_error(lambda made=made: deploy(tmp_path, "o", "--onnx", made, *run), made.name, fragment)
        assert not (tmp_path / "o").exists()
    one_line_error(lambda: deploy(tmp_path, "n", "--onnx", resize_graph(tmp_path / "nan.onnx", nan=True), *run),
                   "returned NaN or Inf values")
    assert not list((tmp_path / "n").glob("*.png"))
    out_dir, _ = deploy(tmp_path, "ok", "--onnx", resize_graph(tmp_path / "ok.onnx"), *run)  # the same graph, whole
    assert len(list(out_dir.glob("*.png"))) == 4
