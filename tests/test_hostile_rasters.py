"""Rasters that declare more than they hold: band counts are checked in the header, before GDAL opens the file or
anything is decoded, like the pixel budget."""
import numpy as np
import pytest
import tifffile

import image_io
from errors import UserError
from helpers import CODES, assert_one_line_error, call_script, isolated


@pytest.mark.parametrize("bands", [600, 65535])
def test_a_tiff_declaring_hundreds_of_bands_is_refused_from_its_header(tmp_path, bands):
    path = tmp_path / "many.tif"
    side = 1000 if bands == 600 else 4  # 600 MB of zeros in a 0.7 MB file; 65535 tiny bands
    tifffile.imwrite(path, np.zeros((bands, side, side), np.uint8), photometric="minisblack",
                     planarconfig="separate", compression="zlib")
    with pytest.raises(UserError, match=f"declares {bands} bands, more than the {image_io.MAX_BANDS}"):
        image_io.image_header(path)  # from the header alone: nothing decoded, GDAL never opened it
    proc = call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=2", "--dir_data", path, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))
    assert_one_line_error(proc, f"declares {bands} bands")


def test_a_palette_tiff_is_read_through_its_colour_table(tmp_path):
    """Palette indices are not values: interpolating them blends unrelated colours. The colour table is applied on
    reading, so deploy super-resolves the colours."""
    import rasterio

    hr = image_io.read_image(sorted((CODES.parent / "datasets" / "Sample" / "test" / "LR_x4").iterdir())[0])
    indices = (hr[:, :, 0] // 64).astype(np.uint8)  # 4 colours
    table = {0: (200, 30, 30, 255), 1: (30, 200, 30, 255), 2: (30, 30, 200, 255), 3: (240, 240, 240, 255)}
    path = tmp_path / "palette.tif"
    with rasterio.open(path, "w", driver="GTiff", height=indices.shape[0], width=indices.shape[1], count=1,
                       dtype="uint8", photometric="palette") as dst:
        dst.write(indices, 1)
        dst.write_colormap(1, table)
    rgb = image_io.read_image(path)
    lut = np.array([table[i][:3] for i in range(4)], np.uint8)
    assert np.array_equal(rgb, lut[indices]) and image_io.image_header(path)[2] == 3
    proc = call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=2", "--dir_data", path, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert image_io.read_image(tmp_path / "out" / "palette.tif").shape == (2 * indices.shape[0],
                                                                          2 * indices.shape[1], 3)


# ----------------------------------------------------------------------------------------- inputs that point elsewhere
VRT_BAND = ('<VRTRasterBand dataType="Byte" band="{band}"><SimpleSource><SourceFilename relativeToVRT="{relative}">'
            '{source}</SourceFilename><SourceBand>{band}</SourceBand></SimpleSource></VRTRasterBand>')


def vrt_text(source, relative=1, size=30):
    """A 3-band VRT (an XML file, whatever its name says) whose bands read `source`."""
    bands = "".join(VRT_BAND.format(band=b, relative=relative, source=source) for b in (1, 2, 3))
    return f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">{bands}</VRTDataset>'


def sample_tile(folder):
    """A real 3-band uint8 LR tile of the Sample, copied as a plain TIFF into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    tile = image_io.read_image(sorted((CODES.parent / "datasets" / "Sample" / "test" / "LR_x4").iterdir())[0])
    tifffile.imwrite(folder / "tile.tif", tile, photometric="rgb")
    return tile


def deploy_folder(tmp_path, folder):
    return call_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=2", "--dir_data", folder, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))


def test_a_vrt_mosaic_inside_the_input_folder_is_read(tmp_path):
    tile = sample_tile(tmp_path / "in" / "parts")
    (tmp_path / "in" / "scene.tif").write_text(vrt_text("parts/tile.tif"))
    assert np.array_equal(image_io.read_image(tmp_path / "in" / "scene.tif"), tile)
    proc = deploy_folder(tmp_path, tmp_path / "in" / "scene.tif")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("case", ["sibling folder", "parent folder", "absolute", "vsicurl", "raw bytes",
                                  "connection string", "nested"])
def test_a_vrt_that_reads_outside_its_folder_is_refused_before_gdal_opens_it(tmp_path, case):
    sample_tile(tmp_path / "other")
    sample_tile(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    text = {
        "sibling folder": vrt_text("../other/tile.tif"),
        "parent folder": vrt_text("../tile.tif"),
        "absolute": vrt_text(tmp_path / "other" / "tile.tif", relative=0),
        "vsicurl": vrt_text("/vsicurl/http://127.0.0.1:9/x.tif", relative=0),
        "connection string": vrt_text('NETCDF:"x.nc":band', relative=0),
        "raw bytes": ('<VRTDataset rasterXSize="8" rasterYSize="8"><VRTRasterBand dataType="Byte" band="1" '
                      'subClass="VRTRawRasterBand"><SourceFilename relativeToVRT="0">/etc/hostname</SourceFilename>'
                      '</VRTRasterBand></VRTDataset>'),
        "nested": vrt_text("inner.tif"),
    }[case]
    if case == "nested":  # a VRT beside it that reads outside: checked the same way
        (folder / "inner.tif").write_text(vrt_text("../other/tile.tif"))
    (folder / "scene.tif").write_text(text)
    with pytest.raises(UserError, match="VRT"):
        image_io.read_image(folder / "scene.tif")
    proc = deploy_folder(tmp_path, folder / "scene.tif")
    assert_one_line_error(proc, "scene.tif" if case != "nested" else "inner.tif", "VRT")


def raster_readers():
    """Every function through which the toolbox opens a raster: pixels, header, a window of rows, a grid."""
    import pairing

    return {"read_image_with_meta": image_io.read_image_with_meta, "image_header": image_io.image_header,
            "read_rows": lambda path: image_io.read_rows(path, 0, 1), "raster_grid": pairing.raster_grid}


@pytest.mark.parametrize("reader", ["read_image_with_meta", "image_header", "read_rows", "raster_grid"])
@pytest.mark.parametrize("case", ["raw bytes", "sibling folder", "vsicurl"])
def test_every_raster_reader_refuses_a_vrt_that_reads_elsewhere(tmp_path, reader, case):
    sample_tile(tmp_path / "other")
    folder = tmp_path / "in"
    folder.mkdir()
    text = {"raw bytes": ('<VRTDataset rasterXSize="8" rasterYSize="8"><VRTRasterBand dataType="Byte" band="1" '
                          'subClass="VRTRawRasterBand"><SourceFilename relativeToVRT="1">../other/tile.tif'
                          '</SourceFilename></VRTRasterBand></VRTDataset>'),
            "sibling folder": vrt_text("../other/tile.tif"),
            "vsicurl": vrt_text("/vsicurl/http://127.0.0.1:9/x.tif", relative=0)}[case]
    (folder / "scene.tif").write_text(text)
    with pytest.raises(UserError, match="scene.tif.*VRT|VRT.*scene.tif"):
        raster_readers()[reader](folder / "scene.tif")


def test_a_truncated_tiff_is_one_line_without_the_parsers_log(tmp_path):
    """tifffile logs every tag it cannot parse before it raises: a real process (pytest would capture the log
    records) shows only the skip and the error line."""
    from helpers import run_script

    tile = (CODES.parent / "datasets" / "SampleMS" / "test" / "LR_x4").iterdir()
    source = sorted(p for p in tile if p.suffix == ".tif")[0]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "cut.tif").write_bytes(source.read_bytes()[:600])  # the header and some tags, no pixels
    proc = run_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=2", "--dir_data", folder, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))
    assert_one_line_error(proc, "cut.tif")
    assert all(line.startswith(("skipped:", "error:")) for line in proc.stderr.splitlines()), proc.stderr


def test_a_truncated_compressed_tiff_names_the_truncation_not_a_missing_codec(tmp_path):
    """An LZW GeoTIFF cut short: GDAL fails on the missing strips and tifffile, the fallback, would need a codec
    package for LZW; the message is GDAL's reading failure, not advice to install imagecodecs."""
    source = CODES.parent / "tests" / "data" / "landsat_two_sensors" / "LE07_L1TP_195025_20010730_20170204_01_T1_B3.TIF"
    with tifffile.TiffFile(source) as tif:
        assert tif.pages[0].compression != 1  # compressed: what only GDAL decodes here
    cut = tmp_path / "cut.tif"
    cut.write_bytes(source.read_bytes()[:1500])
    with pytest.raises(UserError, match="cannot read image .*cut.tif") as caught:
        image_io.read_image(cut)
    assert "imagecodecs" not in str(caught.value)
