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
