"""Cloud-Optimized GeoTIFF output: valid per rio-cogeo, 512 px tiles, overviews, DEFLATE + predictor, exact pixels,
the plain writer's georeferencing, and nothing left behind when a write fails."""
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Compression
from rasterio.transform import Affine
from rio_cogeo.cogeo import cog_validate

import geotiff
import image_files
import image_io as io
from errors import UserError

SAMPLE_HR = Path(__file__).resolve().parents[1] / "datasets" / "Sample" / "train" / "HR"
# Larger than two 512 px tiles each way, and no side a multiple of 512 or 256: partial edge tiles and 2 overviews.
HEIGHT, WIDTH = 1100, 1250
STRIP_ROWS = geotiff.GEOTIFF_BLOCK  # the deploy hands the writer whole 256-row block rows
PREDICTORS = {np.uint8: "2", np.uint16: "2", np.float32: "3"}


def real_scene(dtype):
    """HEIGHT x WIDTH x 3 of real pixels: the Sample HR tiles side by side, then mirrored, in `dtype`'s range."""
    tiles = [io.read_image(p) for p in image_files.list_images(SAMPLE_HR)[:12]]
    mosaic = np.concatenate([np.concatenate(tiles[r * 4:(r + 1) * 4], axis=1) for r in range(3)], axis=0)
    scene = np.pad(mosaic, ((0, HEIGHT - mosaic.shape[0]), (0, WIDTH - mosaic.shape[1]), (0, 0)), mode="symmetric")
    if dtype == np.uint16:
        return scene.astype(np.uint16) * 257 + np.arange(3, dtype=np.uint16)  # low byte used too
    if dtype == np.float32:
        return scene.astype(np.float32) / 255 + np.float32(1e-3) * np.arange(3, dtype=np.float32)
    return scene


def scene_meta(dtype, nodata=None):
    geo = {"crs": CRS.from_epsg(32621), "transform": Affine(30.0, 0.0, 717345.0, 0.0, -30.0, -2776995.0),
           "nodata": nodata, "descriptions": ("red", "green", "blue"), "compress": "lzw",
           "colorinterp": ("red", "green", "blue"), "tags": {"SPACECRAFT_ID": "LANDSAT_8"}}
    return io.ImageMeta(np.dtype(dtype), 3, HEIGHT // 4, WIDTH // 4, geo)


def write_in_strips(path, image, meta, scale=4, cog=True):
    height, width, bands = image.shape
    with geotiff.GeoTiffWindowWriter(path, height, width, bands, image.dtype, meta, scale=scale, cog=cog) as writer:
        for row in range(0, height, STRIP_ROWS):
            writer.write(image[row : row + STRIP_ROWS], row, 0)
            assert not Path(path).exists()  # only hidden temp files until the block exits


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_window_writer_cog_is_a_valid_tiled_deflate_cog_with_overviews(tmp_path, dtype):
    image = real_scene(dtype)
    path = tmp_path / "sr.tif"
    write_in_strips(path, image, scene_meta(dtype))
    valid, errors, warnings = cog_validate(str(path), quiet=True)
    assert (valid, errors, warnings) == (True, [], [])
    with rasterio.open(path) as cog:
        assert cog.block_shapes == [(512, 512)] * 3
        assert cog.overviews(1) == [2, 4]  # 1100x1250 -> 550x625 -> 275x313, smaller than a tile
        assert cog.compression == Compression.deflate
        assert cog.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == PREDICTORS[dtype]
        assert cog.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert cog.dtypes == (np.dtype(dtype).name,) * 3
        np.testing.assert_array_equal(np.moveaxis(cog.read(), 0, -1), image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.tif"]  # the intermediate is gone


def test_the_plain_writer_output_fails_those_checks(tmp_path):
    # So the test above can fail: GDAL's plain tiled GeoTIFF is readable as a COG, but warned about (no overviews).
    path = tmp_path / "plain.tif"
    write_in_strips(path, real_scene(np.uint8), scene_meta(np.uint8), cog=False)
    valid, errors, warnings = cog_validate(str(path), quiet=True)
    assert valid and errors == [] and any("overviews" in warning for warning in warnings)
    with rasterio.open(path) as plain:
        assert plain.block_shapes == [(256, 256)] * 3 and plain.overviews(1) == []
        assert "LAYOUT" not in plain.tags(ns="IMAGE_STRUCTURE")


def test_cog_and_plain_outputs_share_georeferencing_and_band_semantics(tmp_path):
    image, meta = real_scene(np.uint16), scene_meta(np.uint16, nodata=0)
    write_in_strips(tmp_path / "cog.tif", image, meta)
    write_in_strips(tmp_path / "plain.tif", image, meta, cog=False)
    cog, cog_meta = io.read_image_with_meta(tmp_path / "cog.tif")
    plain, plain_meta = io.read_image_with_meta(tmp_path / "plain.tif")
    np.testing.assert_array_equal(cog, plain)
    assert cog_meta.geo["compress"] == "deflate" and plain_meta.geo["compress"] == "lzw"
    differing = {key for key in cog_meta.geo if cog_meta.geo[key] != plain_meta.geo[key]}
    assert differing == {"compress"}
    assert cog_meta.geo["transform"] == Affine(7.5, 0.0, 717345.0, 0.0, -7.5, -2776995.0)
    assert cog_meta.geo["tags"]["RSSR_OUTPUT_GSD"] == "7.5 7.5" and cog_meta.nodata == 0


def test_write_image_cog_matches_the_window_writer(tmp_path):
    image, meta = real_scene(np.uint16), scene_meta(np.uint16)
    io.write_image(tmp_path / "whole.tif", image, meta, scale=4, cog=True)
    write_in_strips(tmp_path / "strips.tif", image, meta)
    assert cog_validate(str(tmp_path / "whole.tif"), quiet=True) == (True, [], [])
    whole, whole_meta = io.read_image_with_meta(tmp_path / "whole.tif")
    strips, strips_meta = io.read_image_with_meta(tmp_path / "strips.tif")
    np.testing.assert_array_equal(whole, image)
    np.testing.assert_array_equal(strips, image)
    assert whole_meta.geo == strips_meta.geo
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strips.tif", "whole.tif"]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_an_ungeoreferenced_cog_is_valid(tmp_path):
    image = real_scene(np.uint8)[:600, :700]
    io.write_image(tmp_path / "plain.tif", image, cog=True)
    assert cog_validate(str(tmp_path / "plain.tif"), quiet=True)[:2] == (True, [])
    np.testing.assert_array_equal(io.read_image(tmp_path / "plain.tif"), image)


def test_a_failure_inside_the_block_leaves_no_file(tmp_path):
    image = real_scene(np.uint8)
    with pytest.raises(RuntimeError, match="interrupted"), geotiff.GeoTiffWindowWriter(
            tmp_path / "sr.tif", HEIGHT, WIDTH, 3, np.uint8, scene_meta(np.uint8), scale=4, cog=True) as writer:
        writer.write(image[:STRIP_ROWS], 0, 0)
        assert len(list(tmp_path.iterdir())) == 2  # the hidden final temp and the hidden intermediate
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_cog_translation_leaves_no_file(tmp_path, monkeypatch):
    def broken_copy(source, target, **options):
        Path(target).write_bytes(b"half a COG")
        raise OSError("disk full")

    monkeypatch.setattr(geotiff, "gdal_copy", broken_copy)
    with pytest.raises(UserError, match="cannot write .*sr.tif: disk full"):  # one line naming the output
        write_in_strips(tmp_path / "sr.tif", real_scene(np.uint8)[:300, :300], scene_meta(np.uint8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match="disk full"):
        io.write_image(tmp_path / "whole.tif", real_scene(np.uint8)[:300, :300], cog=True)
    assert list(tmp_path.iterdir()) == []


def test_cog_needs_a_tif_output(tmp_path):
    with pytest.raises(UserError, match=r"use a \.tif"):
        io.write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8), cog=True)
    assert list(tmp_path.iterdir()) == []


def test_cog_options_pick_the_predictor_by_dtype_and_bigtiff_when_needed():
    assert geotiff.cog_options(np.int16)["PREDICTOR"] == "STANDARD"
    assert geotiff.cog_options(np.float64)["PREDICTOR"] == "FLOATING_POINT"
    assert geotiff.cog_options(np.uint8)["BIGTIFF"] == "IF_SAFER"
