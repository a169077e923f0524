"""Rasters that declare more than they hold: band counts are checked in the header, before GDAL opens the file or
anything is decoded, like the pixel budget."""
import numpy as np
import pytest
import tifffile

import image_io
from errors import UserError
from helpers import CODES, assert_one_line_error, isolated, run_script


@pytest.mark.parametrize("bands", [600, 65535])
def test_a_tiff_declaring_hundreds_of_bands_is_refused_from_its_header(tmp_path, bands):
    path = tmp_path / "many.tif"
    side = 1000 if bands == 600 else 4  # 600 MB of zeros in a 0.7 MB file; 65535 tiny bands
    tifffile.imwrite(path, np.zeros((bands, side, side), np.uint8), photometric="minisblack",
                     planarconfig="separate", compression="zlib")
    with pytest.raises(UserError, match=f"declares {bands} bands, more than the {image_io.MAX_BANDS}"):
        image_io.image_header(path)  # from the header alone: nothing decoded, GDAL never opened it
    proc = run_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=2", "--dir_data", path, "--dir_out",
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
    proc = run_script(CODES / "demo_deploy.py", "--model=BICUBIC", "--scale=2", "--dir_data", path, "--dir_out",
                      tmp_path / "out", *isolated(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert image_io.read_image(tmp_path / "out" / "palette.tif").shape == (2 * indices.shape[0],
                                                                          2 * indices.shape[1], 3)
