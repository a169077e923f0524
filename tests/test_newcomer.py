"""The hints a newcomer meets. (The used-by commands as typed, in the design card's order after the quickstart, run in
test_readme.py, with the README's other command blocks.)"""

import pytest

import demo_deploy
from errors import UserError
from helpers import SAMPLE, copy_dataset, isolated


def test_a_dataset_root_without_a_test_split_is_named_without_suggesting_recursive(tmp_path):
    root = copy_dataset(SAMPLE, tmp_path / "Mine", splits=("train", "val"), scales=(4,), limit=2)
    with pytest.raises(UserError, match="is a dataset root without a test/LR_x4 split") as err:
        demo_deploy.main(["--model=BICUBIC", f"--dir_data={root}", *isolated(tmp_path)])
    assert "--recursive" not in str(err.value)
