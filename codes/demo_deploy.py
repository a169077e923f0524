"""Super-resolve images or whole georeferenced scenes with a trained network.

    cd codes && python demo_deploy.py --model=HSENET --scale=4                      # the dataset's test LR
    python demo_deploy.py --model=HSENET --scale=3 --dataset=UCMerced --dir_data /data/UCMerced  # its test split
    python demo_deploy.py --model=BASIC --scale=4 --dir_data scene.tif --dir_out out/ --tile 256 --tile_overlap 48
    python demo_deploy.py --model=BASIC --scale=4 --dir_data my_lr/ --recursive --compare my_hr/

Input: an image or a folder (--recursive: sub-folders too) of PNG, JPG, TIFF or GeoTIFF, 8 or 16 bit or float, with as
many bands as the model's --n_colors. One SR image per input, same relative path, name and format, in the input's
dtype (see radiometry.py: never clipped at --data_range). GeoTIFFs keep their CRS, bands, dtype, nodata and band
descriptions; the pixel size is divided by the scale and the origin kept (same footprint); nodata areas (and NaN/Inf
pixels) stay nodata. Images larger than a tile run in overlapping tiles blended without seams (the model's TilePlan),
and TIFFs are written strip by strip, so memory follows the tile size and the scene width, not the scene area.

Nothing is lost: an output never replaces an input, a file of the dataset being evaluated, or a file this tool did not
write (the output folder records its files in written_files.json and is locked while in use). Unreadable inputs,
images over --max_pixels and band mismatches are named and skipped (exit code 2 at the end). A manifest.json records
the model, checkpoint, radiometry, inputs, outputs and skips; --compare HR_DIR adds LR | bicubic | SR | HR figures.
"""
import cpu_runtime  # noqa: F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import deploy
import option
from errors import run_cli


def main(argv=None):
    cfg = option.parse_args(argv, purpose="deploy")  # with --onnx FILE, no checkpoint: the file's metadata instead
    return deploy.run(cfg)


if __name__ == "__main__":
    run_cli(main)
