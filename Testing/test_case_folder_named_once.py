"""A case folder whose acquired DCE is half there (dce_early without dce_late) is named in the error of `dcediff
evaluate` (it said only "acquired DCE: give both the early and the late image, or neither", naming no case of the
folder), and `dcediff train` names a case once (it said "case folder X: case folder X: missing adc"). Found by a bug
hunt."""

import shutil
from pathlib import Path

import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.training.case_data import load_case
from DCEDiffLib.training.case_loading import _cache_one

SAMPLE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"


def _case(tmp_path, leave_out):
    case = tmp_path / "data" / "case_007"
    case.mkdir(parents=True)
    for name in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late"):
        if name != leave_out:
            shutil.copy(SAMPLE / f"{name}.nii.gz", case / f"{name}.nii.gz")
    return case


def test_a_half_acquired_dce_names_the_case_folder(tmp_path):
    case = _case(tmp_path, "dce_late")
    with pytest.raises(InputError, match=rf"case folder {case}: acquired DCE: give both"):
        load_case(case, tmp_path / "cache")


def test_train_names_a_case_once(tmp_path):
    case = _case(tmp_path, "adc")
    with pytest.raises(InputError) as caught:
        _cache_one(case, tmp_path / "cache")
    assert str(caught.value).count(f"case folder {case}") == 1, str(caught.value)
