"""image_io: round-trips of real pixels through every format, GeoTIFF metadata, the window writer, errors."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.transform import Affine

import geotiff
import image_files
import image_io as io
import imresize
from errors import UserError
from radiometry import default_white, to_dtype

SAMPLE_HR = Path(__file__).resolve().parents[1] / "datasets" / "Sample" / "train" / "HR"
LANDSAT = "data/registry/LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
RGBN = "data/registry/rgbn.tif"


@pytest.fixture(scope="module")
def rgb8():
    """A real 8-bit RGB crop (the embedded Landsat sample), 60x50 so no size is a multiple of 16."""
    return io.read_image(image_files.list_images(SAMPLE_HR)[0])[:60, :50]


@pytest.fixture(scope="module")
def landsat16(shared_dir):
    return io.read_image(shared_dir / LANDSAT)[900:964, 700:770]


def stacked_bands(rgb, bands):
    """A real-pixel image with `bands` bands: RGB repeated, then the green band."""
    stack = np.concatenate([rgb, rgb, rgb[:, :, 1:2]], axis=2)
    order = {1: [1], 3: [0, 1, 2], 4: [0, 1, 2, 6], 7: list(range(7))}[bands]
    return stack[:, :, order]


def write_tiny_geotiff(path, pixels_hwc, dtype, nodata, descriptions, colours=None, **profile_options):
    """A GeoTIFF written with rasterio directly, so the geo tests run without ../shared."""
    height, width, bands = pixels_hwc.shape
    profile = dict(driver="GTiff", height=height, width=width, count=bands, dtype=dtype, crs=CRS.from_epsg(32618),
                   transform=Affine(5.0, 0.0, 792988.0, 0.0, -5.0, 2050382.0), nodata=nodata, **profile_options)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(pixels_hwc.astype(dtype), -1, 0))
        for index, text in enumerate(descriptions, start=1):
            dst.set_band_description(index, text)
        if colours:
            dst.colorinterp = [ColorInterp[name] for name in colours]


@pytest.fixture
def tiny_geotiff(tmp_path, rgb8):
    """int16 4-band GeoTIFF (UTM 18N, 5 m) with nodata=-9999 in its top-left 3x4 corner and named bands."""
    pixels = stacked_bands(rgb8, 4).astype(np.int16) * 10 - 300
    pixels[:3, :4] = -9999
    path = tmp_path / "tiny_geo.tif"
    write_tiny_geotiff(path, pixels, "int16", -9999, ("blue", "green", "red", "nir"))
    return path, pixels


def roundtrip(tmp_path, name, array, meta=None, scale=1):
    path = tmp_path / name
    io.write_image(path, array, meta, scale=scale)
    return io.read_image_with_meta(path)


# ----------------------------------------------------------------------------------------------------------- formats
@pytest.mark.parametrize("bands", [1, 3, 4])
def test_png_8bit_roundtrip_is_exact(tmp_path, rgb8, bands):
    image = stacked_bands(rgb8, bands)
    back, meta = roundtrip(tmp_path, "a.png", image)
    assert back.dtype == np.uint8 and back.shape == image.shape
    np.testing.assert_array_equal(back, image)
    assert (meta.bands, meta.height, meta.width, meta.geo) == (bands, 60, 50, None)


@pytest.mark.parametrize("bands", [1, 3, 4])
def test_png_16bit_roundtrip_keeps_all_16_bits(tmp_path, rgb8, bands):
    # Pillow alone would truncate 16-bit RGB to 8 bits: the low byte (the +band offsets) must survive.
    image = stacked_bands(rgb8, bands).astype(np.uint16) * 257 + np.arange(bands, dtype=np.uint16)
    back, _ = roundtrip(tmp_path, "a.png", image)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image)


def test_png_16bit_roundtrip_of_landsat_pixels(tmp_path, landsat16):
    assert landsat16.dtype == np.uint16 and landsat16.max() > 255
    back, _ = roundtrip(tmp_path, "l.png", landsat16)
    np.testing.assert_array_equal(back, landsat16)


@pytest.mark.parametrize("bands", [1, 3, 4, 7])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_plain_tiff_roundtrip_any_bands_and_dtype(tmp_path, rgb8, bands, dtype):
    image = (stacked_bands(rgb8, bands).astype(np.float64) * 3.5 - 100).astype(dtype)
    back, meta = roundtrip(tmp_path, "a.tif", image)
    assert back.dtype == np.dtype(dtype) and meta.bands == bands and meta.geo is None
    np.testing.assert_array_equal(back, image)


def test_multispectral_geotiff_roundtrip(tmp_path, shared_dir):
    image, meta = io.read_image_with_meta(shared_dir / RGBN)
    assert image.shape == (403, 515, 4) and image.dtype == np.uint8
    back, back_meta = roundtrip(tmp_path, "ms.tif", image, meta)
    np.testing.assert_array_equal(back, image)
    assert back_meta.geo["crs"] == meta.geo["crs"] and back_meta.geo["transform"] == meta.geo["transform"]
    assert back_meta.geo["compress"] == "lzw"


def test_jpg_is_close_and_bmp_exact(tmp_path, rgb8):
    back_jpg, _ = roundtrip(tmp_path, "a.jpg", rgb8)
    assert back_jpg.shape == rgb8.shape
    assert np.abs(back_jpg.astype(int) - rgb8).mean() < 4  # quality 95
    back_bmp, _ = roundtrip(tmp_path, "a.BMP", rgb8[:, :, :1])
    np.testing.assert_array_equal(back_bmp, rgb8[:, :, :1])


@pytest.mark.parametrize(("name", "image"), [
    ("seven.png", np.zeros((4, 4, 7), np.uint8)),
    ("float.png", np.zeros((4, 4, 3), np.float32)),
    ("sixteen.jpg", np.zeros((4, 4, 3), np.uint16)),
    ("four.jpg", np.zeros((4, 4, 4), np.uint8)),
])
def test_impossible_format_combinations_say_to_use_tif(tmp_path, name, image):
    with pytest.raises(UserError, match=r"use a \.tif"):
        io.write_image(tmp_path / name, image)
    assert list(tmp_path.iterdir()) == []


def test_writes_leave_no_temp_files(tmp_path, rgb8, tiny_geotiff):
    geo_path, pixels = tiny_geotiff
    _, meta = io.read_image_with_meta(geo_path)
    io.write_image(tmp_path / "out" / "a.png", rgb8)
    io.write_image(tmp_path / "out" / "b.tif", pixels, meta)
    io.write_image(tmp_path / "out" / "a.png", rgb8[:10])  # overwrite in place
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.tif"]
    assert io.read_image(tmp_path / "out" / "a.png").shape == (10, 50, 3)


# ----------------------------------------------------------------------------------------------------------- GeoTIFF
def test_geotiff_meta_is_read(tiny_geotiff):
    path, pixels = tiny_geotiff
    image, meta = io.read_image_with_meta(path)
    np.testing.assert_array_equal(image, pixels)
    assert meta.dtype == np.int16 and meta.bands == 4 and (meta.height, meta.width) == (60, 50)
    assert meta.geo["crs"] == CRS.from_epsg(32618) and meta.nodata == -9999
    assert meta.geo["descriptions"] == ("blue", "green", "red", "nir")


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 1 / 3])
def test_geotiff_write_keeps_georeferencing_and_scales_pixel_size(tmp_path, tiny_geotiff, scale):
    path, pixels = tiny_geotiff
    _, meta = io.read_image_with_meta(path)
    back, back_meta = roundtrip(tmp_path, "out.tif", pixels, meta, scale=scale)
    np.testing.assert_array_equal(back, pixels)
    geo = back_meta.geo
    assert back.dtype == np.int16 and geo["crs"] == CRS.from_epsg(32618) and geo["nodata"] == -9999
    assert geo["descriptions"] == ("blue", "green", "red", "nir")
    transform = geo["transform"]
    assert (transform.c, transform.f) == (792988.0, 2050382.0)  # same origin
    assert transform.a == pytest.approx(5.0 / scale, rel=1e-12)
    assert transform.e == pytest.approx(-5.0 / scale, rel=1e-12)


def test_geotiff_to_png_drops_georeferencing_only(tmp_path, shared_dir):
    image, meta = io.read_image_with_meta(shared_dir / RGBN)
    back, back_meta = roundtrip(tmp_path, "rgb.png", image[:40, :40, 2::-1], meta)
    np.testing.assert_array_equal(back, image[:40, :40, 2::-1])
    assert back_meta.geo is None


def test_landsat_scene_reads_with_its_crs(shared_dir):
    image, meta = io.read_image_with_meta(shared_dir / LANDSAT)
    assert image.shape == (1860, 2041, 3) and image.dtype == np.uint16
    assert meta.geo["crs"] == CRS.from_epsg(32621) and meta.geo["transform"].a == 30.0
    assert io.nodata_mask(image, meta) is None  # the file declares no nodata (its fill is 0)


def test_nodata_mask_marks_pixels_where_all_bands_are_nodata(tiny_geotiff):
    image, meta = io.read_image_with_meta(tiny_geotiff[0])
    mask = io.nodata_mask(image, meta)
    expected = np.zeros(image.shape[:2], bool)
    expected[:3, :4] = True
    np.testing.assert_array_equal(mask, expected)
    assert io.nodata_mask(image, None) is None


def test_window_meta_shifts_the_origin(tiny_geotiff):
    _, meta = io.read_image_with_meta(tiny_geotiff[0])
    crop = io.window_meta(meta, row=10, col=4, height=20, width=30)
    assert (crop.height, crop.width) == (20, 30)
    assert (crop.geo["transform"].c, crop.geo["transform"].f) == (792988.0 + 4 * 5, 2050382.0 - 10 * 5)


# ----------------------------------------------------------------------------------------------------- window writer
def write_in_windows(path, image, meta, scale, window=(23, 17)):
    height, width, bands = image.shape
    with geotiff.GeoTiffWindowWriter(path, height, width, bands, image.dtype, meta, scale=scale) as writer:
        for row in range(0, height, window[0]):
            for col in range(0, width, window[1]):
                writer.write(image[row : row + window[0], col : col + window[1]], row, col)


@pytest.mark.parametrize("georeferenced", [True, False])
def test_window_writer_matches_a_whole_write(tmp_path, tiny_geotiff, georeferenced):
    path, pixels = tiny_geotiff
    _, meta = io.read_image_with_meta(path)
    meta = meta if georeferenced else None
    io.write_image(tmp_path / "whole.tif", pixels, meta, scale=2)
    write_in_windows(tmp_path / "windows.tif", pixels, meta, scale=2)
    whole, whole_meta = io.read_image_with_meta(tmp_path / "whole.tif")
    windows, windows_meta = io.read_image_with_meta(tmp_path / "windows.tif")
    np.testing.assert_array_equal(windows, whole)
    assert windows.dtype == whole.dtype == np.int16
    assert windows_meta.geo == whole_meta.geo
    assert (windows_meta.geo is None) == (not georeferenced)


def test_window_writer_rounds_float_windows(tmp_path):
    with geotiff.GeoTiffWindowWriter(tmp_path / "f.tif", 1, 4, 1, np.uint8) as writer:
        writer.write(np.array([[[2.5], [254.5], [300.0], [-3.0]]]), 0, 0)
    np.testing.assert_array_equal(io.read_image(tmp_path / "f.tif")[0, :, 0], [3, 255, 255, 0])


def test_window_writer_leaves_nothing_when_the_block_fails(tmp_path, rgb8):
    with pytest.raises(RuntimeError), geotiff.GeoTiffWindowWriter(tmp_path / "x.tif", 60, 50, 3, np.uint8) as writer:
        writer.write(rgb8[:20], 0, 0)
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_window_writer_rejects_a_window_outside_the_image(tmp_path, rgb8):
    with pytest.raises(ValueError, match="does not fit"), geotiff.GeoTiffWindowWriter(tmp_path / "x.tif", 60, 50, 3,
                                                                                 np.uint8) as writer:
        writer.write(rgb8, 1, 0)


# ----------------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ["broken.png", "broken.jpg", "broken.tif", "broken.bmp"])
def test_garbage_file_raises_user_error_naming_it(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not an image" * 20)
    with pytest.raises(UserError, match=name):
        io.read_image(path)


def test_truncated_png_raises_user_error(tmp_path, rgb8):
    io.write_image(tmp_path / "full.png", rgb8)
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:300])
    with pytest.raises(UserError, match="cut.png"):
        io.read_image(tmp_path / "cut.png")


def test_missing_and_unsupported_files_raise_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        io.read_image(tmp_path / "missing.png")
    (tmp_path / "anim.gif").write_bytes(b"GIF89a")
    with pytest.raises(UserError, match="unsupported extension"):
        io.read_image(tmp_path / "anim.gif")


# ----------------------------------------------------------------------------------------------------------- helpers
def test_to_dtype_rounds_half_away_from_zero_and_saturates():
    values = np.array([2.5, 254.5, 300.0, -3.0, 0.4999, 1.5])
    np.testing.assert_array_equal(to_dtype(values, np.uint8), [3, 255, 255, 0, 0, 2])
    np.testing.assert_array_equal(to_dtype(np.array([-2.5, 40000.0, -40000.0]), np.int16), [-3, 32767, -32768])
    np.testing.assert_array_equal(to_dtype(np.array([65535.5, 1.5]), np.uint16), [65535, 2])
    assert to_dtype(np.array([0.25]), np.float32).dtype == np.float32


def test_default_white():
    assert [default_white(t) for t in (np.uint8, np.uint16, np.int16, np.float32)] == [255, 65535, 32767, 1.0]


def test_modcrop_crops_bottom_right(rgb8):
    cropped = imresize.modcrop(rgb8, 4)  # 60x50 -> 60x48
    assert cropped.shape == (60, 48, 3)
    np.testing.assert_array_equal(cropped, rgb8[:, :48])


def test_list_images_sorted_case_insensitive_and_recursive(tmp_path, rgb8):
    for rel in ["b.PNG", "a.tif", "notes.txt", ".hidden.png", "sub/c.jpg", "sub/deeper/d.jpeg", ".cache/e.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [p.name for p in image_files.list_images(tmp_path)] == ["a.tif", "b.PNG"]
    relative = [p.relative_to(tmp_path).as_posix() for p in image_files.list_images(tmp_path, recursive=True)]
    assert relative == ["a.tif", "b.PNG", "sub/c.jpg", "sub/deeper/d.jpeg"]
    with pytest.raises(UserError, match="nope"):
        image_files.list_images(tmp_path / "nope")


def test_geotiff_nodata_the_output_dtype_cannot_hold_is_dropped(tmp_path, tiny_geotiff):
    path, pixels = tiny_geotiff
    _, meta = io.read_image_with_meta(path)  # int16 with nodata -9999
    back, back_meta = roundtrip(tmp_path, "u8.tif", to_dtype(pixels, np.uint8), meta)
    assert back.dtype == np.uint8 and back_meta.geo["nodata"] is None
    assert back_meta.geo["crs"] == CRS.from_epsg(32618)


# ----------------------------------------------------------------------------------------------- band semantics
WRITERS = ["whole", "windows", "cog"]


def write_with(writer, path, image, meta, scale):
    """Write through one of the three GeoTIFF writers: write_image, the window writer (plain), or COG windows."""
    if writer == "whole":
        io.write_image(path, image, meta, scale=scale)
        return
    height, width, bands = image.shape
    with geotiff.GeoTiffWindowWriter(path, height, width, bands, image.dtype, meta, scale=scale,
                                cog=writer == "cog") as out:
        for row in range(0, height, 64):
            out.write(image[row : row + 64], row, 0)


def upsample(image, scale):
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def colour_names(path):
    with rasterio.open(path) as dst:
        return [colour.name for colour in dst.colorinterp]


def assert_no_band_is_a_mask(path):
    """No alpha band, no per-dataset mask: rasterio and GDAL see every pixel of every band as valid."""
    with rasterio.open(path) as dst:
        assert ColorInterp.alpha not in dst.colorinterp
        assert dst.mask_flag_enums == tuple([MaskFlags.all_valid] for _ in dst.indexes)
        assert dst.dataset_mask().min() == 255


@pytest.fixture
def rgbn8_geotiff(tmp_path, rgb8):
    """4-band uint8 GeoTIFF read as red, green, blue, undefined (like rgbn.tif), with NIR = 0 in a 5x6 patch."""
    pixels = stacked_bands(rgb8, 4)
    pixels[10:15, 20:26, 3] = 0
    path = tmp_path / "rgbn8.tif"
    write_tiny_geotiff(path, pixels, "uint8", None, (), colours=("red", "green", "blue", "undefined"),
                       photometric="MINISBLACK")
    return path, pixels


@pytest.mark.parametrize("writer", WRITERS)
def test_4_band_uint8_keeps_its_colours_and_no_alpha(tmp_path, rgbn8_geotiff, writer):
    # GDAL's default for 4-band uint8 is RGB + alpha: band 4 (NIR) would mask out every pixel where it is 0.
    path, pixels = rgbn8_geotiff
    image, meta = io.read_image_with_meta(path)
    assert meta.geo["colorinterp"] == ("red", "green", "blue", "undefined")
    write_with(writer, tmp_path / "out.tif", upsample(image, 2), meta, scale=2)
    assert colour_names(tmp_path / "out.tif") == ["red", "green", "blue", "undefined"]
    assert_no_band_is_a_mask(tmp_path / "out.tif")
    np.testing.assert_array_equal(io.read_image(tmp_path / "out.tif"), upsample(pixels, 2))


@pytest.mark.parametrize("writer", WRITERS)
def test_real_rgbn_scene_keeps_its_colours_and_no_alpha(tmp_path, shared_dir, writer):
    image, meta = io.read_image_with_meta(shared_dir / RGBN)
    assert (image[:, :, 3] == 0).any()  # NIR zeros: what an alpha band would mask out
    write_with(writer, tmp_path / "out.tif", image, meta, scale=1)
    assert colour_names(tmp_path / "out.tif") == colour_names(shared_dir / RGBN) == ["red", "green", "blue",
                                                                                     "undefined"]
    assert_no_band_is_a_mask(tmp_path / "out.tif")
    np.testing.assert_array_equal(io.read_image(tmp_path / "out.tif"), image)


@pytest.mark.parametrize("writer", WRITERS)
def test_unknown_colours_are_grey_without_alpha(tmp_path, rgbn8_geotiff, writer):
    path, pixels = rgbn8_geotiff
    _, meta = io.read_image_with_meta(path)
    unknown = replace(meta, geo={key: value for key, value in meta.geo.items() if key != "colorinterp"})
    write_with(writer, tmp_path / "out.tif", pixels, unknown, scale=1)
    assert colour_names(tmp_path / "out.tif") == ["gray", "undefined", "undefined", "undefined"]  # MINISBLACK
    assert_no_band_is_a_mask(tmp_path / "out.tif")


@pytest.mark.parametrize("writer", WRITERS)
def test_3_band_rgb_is_photometric_rgb_and_a_bgr_scene_stays_grey(tmp_path, rgb8, writer):
    rgb_path, bgr_path = tmp_path / "rgb_in.tif", tmp_path / "bgr_in.tif"
    write_tiny_geotiff(rgb_path, rgb8, "uint8", None, (), photometric="RGB")
    write_tiny_geotiff(bgr_path, rgb8[:, :, ::-1], "uint16", None, (), photometric="MINISBLACK")  # like Landsat
    for source, photometric, colours in [(rgb_path, 2, ["red", "green", "blue"]),
                                         (bgr_path, 1, ["gray", "undefined", "undefined"])]:
        image, meta = io.read_image_with_meta(source)
        write_with(writer, tmp_path / "out.tif", image, meta, scale=1)
        assert colour_names(tmp_path / "out.tif") == colours
        with tifffile.TiffFile(tmp_path / "out.tif") as tif:
            assert tif.pages[0].photometric == photometric  # 2: RGB, 1: MINISBLACK


LANDSAT_C2_SCALE, LANDSAT_C2_OFFSET = 2.75e-05, -0.2  # Collection-2 Level-2 surface reflectance


@pytest.fixture
def semantic_geotiff(tmp_path, rgb8):
    """uint16 4-band surface-reflectance-like GeoTIFF with every band semantic set, nodata 0 in a corner."""
    pixels = stacked_bands(rgb8, 4).astype(np.uint16) * 40 + 7000
    pixels[:2, :3] = 0
    path = tmp_path / "semantic.tif"
    write_tiny_geotiff(path, pixels, "uint16", 0, ("blue", "green", "red", "nir"),
                       colours=("blue", "green", "red", "undefined"), photometric="MINISBLACK", compress="deflate")
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "r+") as dst:
        dst.scales = (LANDSAT_C2_SCALE,) * 4
        dst.offsets = (LANDSAT_C2_OFFSET,) * 4
        dst.units = ("reflectance",) * 3 + ("",)
        dst.update_tags(SPACECRAFT_ID="LANDSAT_8", PROCESSING_LEVEL="L2SP")
        for index, wavelength in enumerate(("0.48", "0.56", "0.655", "0.865"), start=1):
            dst.update_tags(index, WAVELENGTH=wavelength, STATISTICS_MEAN="123.4")
    return path, pixels


@pytest.mark.parametrize("writer", WRITERS)
def test_band_semantics_survive_an_x2_round_trip(tmp_path, semantic_geotiff, writer):
    path, pixels = semantic_geotiff
    image, meta = io.read_image_with_meta(path)
    write_with(writer, tmp_path / "sr.tif", upsample(image, 2), meta, scale=2)
    with rasterio.open(tmp_path / "sr.tif") as dst:
        assert dst.descriptions == ("blue", "green", "red", "nir")
        assert [colour.name for colour in dst.colorinterp] == ["blue", "green", "red", "undefined"]
        assert dst.nodata == 0 and dst.crs == CRS.from_epsg(32618)
        assert dst.scales == (LANDSAT_C2_SCALE,) * 4 and dst.offsets == (LANDSAT_C2_OFFSET,) * 4
        assert dst.units == ("reflectance", "reflectance", "reflectance", None)
        tags = dst.tags()
        assert tags["SPACECRAFT_ID"] == "LANDSAT_8" and tags["PROCESSING_LEVEL"] == "L2SP"
        assert [dst.tags(index) for index in dst.indexes] == [{"WAVELENGTH": w} for w in ("0.48", "0.56", "0.655",
                                                                                        "0.865")]
        assert dst.transform == Affine(2.5, 0.0, 792988.0, 0.0, -2.5, 2050382.0)
        assert tags["RSSR_INPUT_GSD"] == "5 5" and tags["RSSR_OUTPUT_GSD"] == "2.5 2.5"
        assert tags["RSSR_SCALE"] == "2" and tags["RSSR_GSD_UNIT"] == "metre"
        np.testing.assert_array_equal(np.moveaxis(dst.read(), 0, -1), upsample(pixels, 2))
        valid = dst.dataset_mask() > 0
    np.testing.assert_array_equal(valid, upsample(~(pixels == 0).all(axis=2), 2))  # nodata corner, 4x6 at x2


def test_band_semantics_are_read_into_meta(semantic_geotiff):
    _, meta = io.read_image_with_meta(semantic_geotiff[0])
    geo = meta.geo
    assert geo["colorinterp"] == ("blue", "green", "red", "undefined")
    assert geo["scales"] == (LANDSAT_C2_SCALE,) * 4 and geo["offsets"] == (LANDSAT_C2_OFFSET,) * 4
    assert geo["units"] == ("reflectance",) * 3 + (None,)
    assert geo["tags"]["SPACECRAFT_ID"] == "LANDSAT_8"
    assert geo["band_tags"][3] == {"WAVELENGTH": "0.865", "STATISTICS_MEAN": "123.4"}
    assert (meta.gsd, meta.gsd_unit) == ((5.0, 5.0), "metre")


def test_a_band_count_change_drops_per_band_semantics_only(tmp_path, semantic_geotiff):
    image, meta = io.read_image_with_meta(semantic_geotiff[0])
    io.write_image(tmp_path / "rgb.tif", image[:, :, 2::-1], meta)
    with rasterio.open(tmp_path / "rgb.tif") as dst:
        assert dst.descriptions == (None, None, None) and dst.scales == (1.0, 1.0, 1.0)
        assert [colour.name for colour in dst.colorinterp] == ["gray", "undefined", "undefined"]
        assert dst.tags()["SPACECRAFT_ID"] == "LANDSAT_8" and dst.crs == CRS.from_epsg(32618)


@pytest.mark.parametrize(("scale", "output_gsd"), [(4, "1.25 1.25"), (1 / 3, "15 15"), (1, "5 5")])
def test_resolution_tags_record_input_and_output_gsd(tmp_path, tiny_geotiff, scale, output_gsd):
    path, pixels = tiny_geotiff
    _, meta = io.read_image_with_meta(path)
    io.write_image(tmp_path / "out.tif", pixels, meta, scale=scale)
    _, out_meta = io.read_image_with_meta(tmp_path / "out.tif")
    tags = out_meta.geo["tags"]
    assert (tags["RSSR_INPUT_GSD"], tags["RSSR_OUTPUT_GSD"], tags["RSSR_GSD_UNIT"]) == ("5 5", output_gsd, "metre")
    assert out_meta.gsd == pytest.approx((5.0 / scale, 5.0 / scale), rel=1e-12)


def test_gsd_of_a_geographic_a_rotated_and_an_ungeoreferenced_image():
    degrees = io.ImageMeta(np.uint8, 1, 1, 1, {"crs": CRS.from_epsg(4326), "transform": Affine(1e-4, 0, 10, 0, -2e-4,
                                                                                                 50)})
    assert (degrees.gsd, degrees.gsd_unit) == ((1e-4, 2e-4), "degree")
    rotated = io.ImageMeta(np.uint8, 1, 1, 1, {"crs": None, "transform": Affine.rotation(30) @ Affine.scale(3, -4)})
    assert rotated.gsd == pytest.approx((3.0, 4.0)) and rotated.gsd_unit is None
    assert io.ImageMeta(np.uint8, 1, 1, 1, {"crs": None, "transform": Affine.identity(), "nodata": 0}).gsd is None
    assert io.ImageMeta(np.uint8, 1, 1, 1).gsd is None
