"""A dataset root's `dataset.json` (band names, white level, ground sample distance, dtype, description), and the
mark of a root that prepare_dataset.py is still writing. The dataset scripts write it, the configuration reads it
as one of its layers, the metric script reads its band names."""
import json
from pathlib import Path

import atomic
import bounded
from bounded import GSD_METRES, NODATA_VALUES, number_problem
from errors import UserError
from radiometry import white_level_problem

DATASET_METADATA = "dataset.json"
# prepare_dataset.py marks a root it is writing; dataset.json is written last and the mark then removed, so a killed
# preparation is never mistaken for a dataset.
PREPARING_MARK = ".preparing"


def read_dataset_metadata(root):
    """The dataset.json of a dataset root as a dict ({} when there is none). Keys: bands (names in file order),
    data_range (white level, null: from the dtype), gsd (ground sample distance of HR, in metres), description,
    nodata (the fill value of tiles kept with some pixels that are not data: training masks them)."""
    path = Path(root) / DATASET_METADATA
    if not path.exists():
        return {}
    if not path.is_file():
        raise UserError(f"{path} is not a file: a dataset root's {DATASET_METADATA} records its bands, white level "
                        f"and pixel size; replace it with the file or remove it")
    try:
        meta = bounded.read_json(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); fix or delete it") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: expected a JSON object with bands / data_range / gsd")
    bands = meta.get("bands")
    problem = band_names_problem(bands) if bands is not None else None
    if problem:
        raise UserError(f"{path}: 'bands' {problem}; it must list each band's name once, e.g. "
                        f"[\"blue\", \"green\", \"red\", \"nir\"]")
    data_range, gsd = meta.get("data_range"), meta.get("gsd")
    if data_range is not None and white_level_problem(data_range):
        raise UserError(f"{path}: 'data_range' {white_level_problem(data_range)}; it must be the file value of full "
                        f"white (e.g. 255, 65535 or 10000) or null")
    if gsd is not None and number_problem(gsd, GSD_METRES):
        raise UserError(f"{path}: 'gsd' {number_problem(gsd, GSD_METRES)}; it must be the HR pixel size in "
                        f"metres or null")
    nodata = meta.get("nodata")
    if nodata is not None and number_problem(nodata, NODATA_VALUES):
        raise UserError(f"{path}: 'nodata' {number_problem(nodata, NODATA_VALUES)}; it must be the file value of the "
                        f"tiles' pixels that are not data, or null")
    description = meta.get("description")
    if description is not None and not isinstance(description, str):
        raise UserError(f"{path}: 'description' must be text")
    return meta


def check_complete(root):
    """A root that prepare_dataset.py did not finish writing is refused, in one line."""
    if (Path(root) / PREPARING_MARK).exists():
        raise UserError(f"{root} is an incomplete dataset: prepare_dataset.py was stopped while writing it (it holds "
                        f"{PREPARING_MARK} and no finished dataset.json); run prepare_dataset.py again with "
                        f"--overwrite")


def band_names_problem(bands):
    """Why a recorded band list is not one name per band, or None: names are the --bands flag's comma-separated
    items, so each must be non-empty text without a comma, given once (case aside)."""
    if not isinstance(bands, list) or not all(isinstance(b, str) for b in bands):
        return "is not a list of names"
    if any(not b.strip() or "," in b for b in bands):
        return "holds an empty name or one with a comma"
    lowered = [b.strip().lower() for b in bands]
    repeated = sorted({b for b in lowered if lowered.count(b) > 1})
    return f"names {', '.join(repeated)} more than once" if repeated else None


def write_dataset_metadata(root, bands=None, data_range=None, gsd=None, description="", dtype=None, pairing=None,
                           nodata=None):
    """Write <root>/dataset.json (see read_dataset_metadata); None values are written as null. `pairing`: the
    record of a cross-sensor preparation (data_scripts/scene_pairs.py), left out when None. `nodata`: the fill value
    of tiles kept with some pixels that are not data (prepare_dataset.py --min_valid), left out when None."""
    meta = {"description": description, "bands": bands, "data_range": data_range, "gsd": gsd}
    if dtype is not None:  # the prepared data's dtype (prepare_dataset.py); older files have no such key
        meta["dtype"] = dtype
    if nodata is not None:
        meta["nodata"] = nodata
    if pairing is not None:
        meta["pairing"] = pairing
    atomic.write_text(Path(root) / DATASET_METADATA, json.dumps(meta, indent=2) + "\n")
