"""Your own scene, end to end: a multi-band GeoTIFF becomes tiles, a trained model and an SR COG with named bands and
an LR-consistency report; the GSD guard; the consistency numbers recomputed here independently."""
import json

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

import consistency
import demo_deploy
import demo_train
import geotiff
import image_files
import image_io
from data_scripts import prepare_dataset
from helpers import SAMPLE, SAMPLE_MS, isolated
from imresize import bicubic_downsample, bicubic_upsample
from test_deploy import write_geotiff

UTM = CRS.from_epsg(32618)
SIX_BANDS = "blue,green,red,nir,swir1,swir2"


def six_band_scene(path, gsd=28.5, descriptions=()):
    """A real-pixel 6-band uint8 scene: SampleMS's 4-band tiles side by side, plus two bands derived from them (as a
    Landsat-7 scene has 6 reflective bands), no band names unless given."""
    tiles = [image_io.read_image(p) for p in image_files.list_images(SAMPLE_MS / "train" / "HR")[:6]]
    rows = [np.concatenate(tiles[k:k + 3], axis=1) for k in (0, 3)]
    four = np.concatenate(rows, axis=0)  # 192 x 288 x 4
    swir = np.stack([four[:, :, 3] // 2 + four[:, :, 2] // 2, four[:, :, 3] // 3 + four[:, :, 0] // 3], axis=2)
    pixels = np.concatenate([four, swir.astype(np.uint8)], axis=2)
    return write_geotiff(path, pixels, descriptions=descriptions,
                         transform=Affine(gsd, 0, 500000.0, 0, -gsd, 4500000.0))


def test_a_scene_becomes_a_dataset_a_model_and_an_sr_cog_with_named_bands(tmp_path, capsys):
    scene = six_band_scene(tmp_path / "landsat7.tif")
    root = tmp_path / "Mine"
    assert prepare_dataset.main(["--src", str(scene), "--dst", str(root), "--tile", "96", "--bands", SIX_BANDS,
                                 "--scales", "4"]) == 0
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["bands"] == SIX_BANDS.split(",") and meta["gsd"] == 28.5 and meta["dtype"] == "uint8"
    tiles = image_files.list_images(root / "train" / "HR")
    with rasterio.open(tiles[0]) as src:
        assert src.descriptions == tuple(SIX_BANDS.split(",")) and src.res == (28.5, 28.5) and src.count == 6
    # no band or size flag: the band count comes from dataset.json, the patch is fitted to the tiles with a note
    assert demo_train.main(["--model=BASIC", "--scale=4", "--dataset=Mine", f"--dir_data={root}", "--n_feats=8",
                            "--n_resblocks=1", "--batch_size=4", "--test_every=2", "--epochs=1", "--cpu",
                            *isolated(tmp_path)]) == 0
    assert "using --patch_size" in capsys.readouterr().out
    out = tmp_path / "sr"
    assert demo_deploy.main(["--model=BASIC", "--scale=4", "--dataset=Mine", f"--dir_data={scene}",
                             f"--dir_out={out}", *isolated(tmp_path)]) == 0
    printed = capsys.readouterr()
    assert "LR consistency" in printed.out and "warning" not in printed.err  # same sensor: no GSD warning
    with rasterio.open(out / "landsat7.tif") as src:
        assert src.descriptions == tuple(SIX_BANDS.split(",")) and src.res == (28.5 / 4, 28.5 / 4)
        assert src.profile.get("tiled") and src.overviews(1)  # a COG
    record = json.loads((out / "manifest.json").read_text())["images"][0]["lr_consistency"]
    assert set(record) == {"psnr", "bias", "sam"} and len(record["bias"]) == 6 and record["sam"] > 0


def test_band_descriptions_of_the_scene_name_the_bands(tmp_path):
    names = ("b", "g", "r", "n", "s1", "s2")
    scene = six_band_scene(tmp_path / "named.tif", descriptions=names)
    root = tmp_path / "Named"
    prepare_dataset.main(["--src", str(scene), "--dst", str(root), "--tile", "64", "--scales", "2"])
    assert json.loads((root / "dataset.json").read_text())["bands"] == list(names)
    with rasterio.open(image_files.list_images(root / "test" / "LR_x2")[0]) as src:
        assert src.descriptions == names and src.res == (57.0, 57.0)


def test_a_three_band_scene_without_band_names_is_recorded_as_rgb_with_a_note(tmp_path, capsys):
    """Landsat's true-colour bands come blue first: the red,green,blue a 3-band scene gets is said, not assumed."""
    pixels = image_io.read_image(image_files.list_images(SAMPLE / "train" / "HR")[0])
    scene = write_geotiff(tmp_path / "rgb.tif", np.tile(pixels, (2, 2, 1)))
    prepare_dataset.main(["--src", str(scene), "--dst", str(tmp_path / "A"), "--tile", "60", "--scales", "2"])
    assert "names no bands; dataset.json records them as red,green,blue: give --bands" in capsys.readouterr().out
    assert json.loads((tmp_path / "A" / "dataset.json").read_text())["bands"] == ["red", "green", "blue"]
    prepare_dataset.main(["--src", str(scene), "--dst", str(tmp_path / "B"), "--tile", "60", "--scales", "2",
                          "--bands", "blue,green,red"])
    assert "note:" not in capsys.readouterr().out
    assert json.loads((tmp_path / "B" / "dataset.json").read_text())["bands"] == ["blue", "green", "red"]


def test_tiles_of_nodata_nan_or_one_value_are_skipped_and_counted(tmp_path, capsys):
    pixels = np.random.default_rng(0).random((128, 192, 2)).astype(np.float32)
    pixels[:64, :64] = np.nan  # a NaN tile
    pixels[:64, 64:128] = 0.25  # a constant tile
    pixels[64:, 128:] = -9999  # a nodata tile
    scene = write_geotiff(tmp_path / "s.tif", pixels, nodata=-9999)
    prepare_dataset.main(["--src", str(scene), "--dst", str(tmp_path / "D"), "--tile", "64", "--scales", "2",
                          "--split", "1,0,0"])
    assert "3 of 6 tiles" in capsys.readouterr().out
    kept = sorted(p.stem for p in image_files.list_images(tmp_path / "D" / "train" / "HR"))
    assert kept == ["s_r00000_c00128", "s_r00064_c00000", "s_r00064_c00064"]


def test_a_tile_with_a_single_nodata_pixel_is_left_out_and_the_summary_says_what_was(tmp_path, capsys):
    """A kept tile's fill values would enter the loss and the scores as ground: a tile touching nodata is skipped.
    The summary counts the edge pixels the tiling leaves out, and names a scene that gives no tile."""
    pixels = np.random.default_rng(1).integers(1, 250, (130, 200, 3)).astype(np.uint8)
    pixels[70, 70] = 0  # one nodata pixel in the tile at (64, 64)
    scene = write_geotiff(tmp_path / "in" / "s.tif", pixels, nodata=0)
    write_geotiff(tmp_path / "in" / "tiny.tif", pixels[:40, :40], nodata=0)  # smaller than a tile
    prepare_dataset.main(["--src", str(tmp_path / "in"), "--dst", str(tmp_path / "D"), "--tile", "64", "--scales",
                          "2", "--split", "1,0,0"])
    out = capsys.readouterr().out
    assert "5 of 6 tiles" in out and "1 nodata pixels" in out
    assert f"edges left out: {130 * 200 + 40 * 40 - 6 * 64 * 64} pixels" in out
    assert "note: " in out and "tiny.tif gives no 64x64 tile" in out
    kept = sorted(p.stem for p in image_files.list_images(tmp_path / "D" / "train" / "HR"))
    assert "s_r00064_c00064" not in kept and len(kept) == 5
    assert scene.exists()


def test_scenes_of_another_dtype_or_a_split_left_empty_are_one_line(tmp_path):
    from helpers import CODES, assert_one_line_error, call_script

    script = CODES / "data_scripts" / "prepare_dataset.py"
    pixels = np.random.default_rng(2).integers(1, 250, (128, 128, 3)).astype(np.uint8)
    write_geotiff(tmp_path / "mixed" / "a.tif", pixels)
    write_geotiff(tmp_path / "mixed" / "b.tif", pixels.astype(np.uint16))
    proc = call_script(script, "--src", tmp_path / "mixed", "--dst", tmp_path / "D1", "--tile", "64", "--scales", "2")
    assert_one_line_error(proc, "a.tif", "b.tif", "dtype uint16 vs uint8")
    write_geotiff(tmp_path / "one" / "a.tif", pixels)  # 4 tiles of 64: fine; 1 tile of 128: no val, no test
    proc = call_script(script, "--src", tmp_path / "one" / "a.tif", "--dst", tmp_path / "D2", "--tile", "128",
                      "--scales", "2")
    assert_one_line_error(proc, "--tile 128", "none for the val and test split", "--tile 64")
    assert not (tmp_path / "D1").exists() and not (tmp_path / "D2").exists()


def test_a_training_pair_holding_its_declared_nodata_is_refused_by_name(tmp_path):
    """Pairs made elsewhere may hold their fill value: it would enter L1 and the validation PSNR as ground."""
    from helpers import CODES, TINY_BASIC, assert_one_line_error, call_script

    pixels = np.random.default_rng(3).integers(1, 250, (256, 256, 3)).astype(np.uint8)
    write_geotiff(tmp_path / "s.tif", pixels, nodata=0)
    prepare_dataset.main(["--src", str(tmp_path / "s.tif"), "--dst", str(tmp_path / "D"), "--tile", "64", "--scales",
                          "2"])
    victim = sorted((tmp_path / "D" / "train" / "HR").iterdir())[0]
    with rasterio.open(victim, "r+") as tile:
        band = tile.read()
        band[:, 5:7, 5:7] = 0  # four fill pixels, as a tile cut elsewhere may hold
        tile.write(band)
    proc = call_script(CODES / "demo_train.py", *TINY_BASIC, "--scale=2", "--dataset=Mine", "--dir_data",
                      tmp_path / "D", "--epochs=1", *isolated(tmp_path))
    assert_one_line_error(proc, victim.name, "4 pixels of its declared nodata value 0")


# ------------------------------------------------------------------------------------------------ LR consistency
def independent(sr, lr):
    """PSNR, bias and SAM of bicubic_downsample(sr) against lr over every pixel, computed whole."""
    down, ref = bicubic_downsample(sr, 2).astype(np.float64), lr.astype(np.float64)
    error = down - ref
    psnr = 10 * np.log10(255.0 ** 2 / np.mean(error ** 2))
    cosine = (down * ref).sum(2) / (np.linalg.norm(down, axis=2) * np.linalg.norm(ref, axis=2))
    return psnr, error.reshape(-1, lr.shape[2]).mean(0), np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean()


@pytest.mark.parametrize("offset", [0, 10])
def test_lr_consistency_of_a_tiled_tiff_equals_the_whole_image_computation(tmp_path, offset):
    """More rows than one window (WINDOW_ROWS), so the halo joins are checked; an offset of 10 levels shows as a bias
    of 10 (less the saturation at 255)."""
    lr = np.concatenate([image_io.read_image(p) for p in image_files.list_images(SAMPLE_MS / "train" / "HR")[:4]])
    assert lr.shape[0] > consistency.WINDOW_ROWS
    sr = np.clip(bicubic_upsample(lr, 2).astype(int) + offset, 0, 255).astype(np.uint8)
    path = tmp_path / "sr.tif"
    with geotiff.GeoTiffWindowWriter(path, *sr.shape, np.uint8) as writer:
        writer.write(sr, 0, 0)
    got = consistency.lr_consistency(path, lr, None, 2, 255.0)
    psnr, bias, sam = independent(sr, lr)
    assert got["psnr"] == pytest.approx(psnr, abs=1e-3)
    assert got["bias"] == pytest.approx(list(bias), abs=1e-5)
    assert got["sam"] == pytest.approx(sam, abs=1e-3)
    if offset:
        assert all(8 < b <= 10.5 for b in got["bias"]), got["bias"]
    else:  # bicubic down after bicubic up is not the identity, but it keeps the radiometry
        assert max(abs(b) for b in got["bias"]) < 0.5


# ---------------------------------------------------------------------------------------------------- GSD guard
def test_the_gsd_guard_warns_across_sensors_only(tmp_path):
    def meta(gsd, crs=UTM):
        path = write_geotiff(tmp_path / f"{gsd}.tif", np.zeros((8, 8, 3), np.uint8),
                             transform=Affine(gsd, 0, 0, 0, -gsd, 0))
        if crs is None:
            with rasterio.open(path, "r+") as dst:
                dst.crs = None
        return image_io.read_image_with_meta(path)[1]

    assert "30 m pixels" in consistency.gsd_warning("l.tif", meta(30), 0.3, 4)  # UC Merced model on Landsat
    assert "0.3 m pixels" in consistency.gsd_warning("u.tif", meta(0.3), 30, 4)  # and the other way round
    assert consistency.gsd_warning("ok.tif", meta(0.5), 0.3, 4) is None  # within [0.15, 2.4]
    assert consistency.gsd_warning("ok.tif", meta(30), None, 4) is None  # the model's GSD is unknown
    plain = image_io.read_image_with_meta(image_files.list_images(SAMPLE / "test" / "HR")[0])[1]  # a PNG
    assert consistency.gsd_warning("p.png", plain, 0.3, 4) is None  # the input's GSD is unknown


def test_a_shipped_uc_merced_model_on_a_30_m_scene_warns(tmp_path, capsys):
    pixels = image_io.read_image(image_files.list_images(SAMPLE_MS / "test" / "HR")[0])[:, :, :3].copy()
    scene = write_geotiff(tmp_path / "landsat.tif", pixels, transform=Affine(30, 0, 0, 0, -30, 0))
    demo_deploy.main(["--pre_train", "lgcnet_x2_ucmerced16", "--scale=2", f"--dir_data={scene}",
                      f"--dir_out={tmp_path / 'sr'}", *isolated(tmp_path)])
    err = capsys.readouterr().err
    assert "warning: " in err and "has 30 m pixels, but the model learned to make 0.3 m pixels" in err


def test_onnx_resolution_is_the_training_hr_gsd_unless_given(tmp_path):
    import export_onnx
    from onnx_graph import decode_metadata, read_graph

    out = tmp_path / "b.onnx"
    export_onnx.main(["--model=BICUBIC", "--scale=3", "--tile=24", "--resolution", "50", "--out", str(out),
                      *isolated(tmp_path)])
    assert decode_metadata({p.key: p.value for p in read_graph(out).metadata_props})["resolution"] == 50


def test_a_geographic_scene_records_its_gsd_in_metres(tmp_path):
    """A scene in longitude/latitude (EPSG:4326): its pixel size in degrees becomes metres at the scene's latitude,
    in dataset.json, and for the GSD guard (0.00025 deg at 45 deg N: 19.7 m east-west)."""
    pixels = six_band_scene(tmp_path / "utm.tif")
    array = image_io.read_image(pixels)
    scene = write_geotiff(tmp_path / "lonlat.tif", array, transform=Affine(0.00025, 0, 10.0, 0, -0.00025, 45.02))
    with rasterio.open(scene, "r+") as dst:
        dst.crs = CRS.from_epsg(4326)
    prepare_dataset.main(["--src", str(scene), "--dst", str(tmp_path / "Geo"), "--tile", "48", "--scales", "2",
                          "--bands", SIX_BANDS])
    gsd = json.loads((tmp_path / "Geo" / "dataset.json").read_text())["gsd"]
    assert gsd == pytest.approx(0.00025 * 111_320 * np.cos(np.radians(45.02 - 0.00025 * array.shape[0] / 2)),
                                rel=1e-6)
    meta = image_io.read_image_with_meta(scene)[1]
    assert "has 19.68" in consistency.gsd_warning("g.tif", meta, 0.3, 4)


def test_the_gsd_guard_reads_the_deployed_datasets_record(tmp_path, capsys):
    """The Sample's PNG tiles carry no georeferencing; its dataset.json records 30 m, so a 0.3 m model warns."""
    demo_deploy.main(["--pre_train", "lgcnet_x2_ucmerced16", "--scale=2", f"--dir_out={tmp_path / 'sr'}",
                      *isolated(tmp_path)])
    assert "has 60 m pixels, but the model learned to make 0.3 m pixels" in capsys.readouterr().err
