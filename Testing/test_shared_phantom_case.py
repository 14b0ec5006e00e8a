"""Testing/shared_phantom_case.py: the cached case is the generator's case, and each caller's copy is its own (a
test that changes its case must not change what the next test file on the same worker reads). Real generator."""

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.phantom.generator import generate_case
from shared_phantom_case import generated_case

KEYS = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")


def _arrays(case) -> dict:
    arrays = {key: sitk.GetArrayFromImage(case.images[key]) for key in KEYS}
    arrays.update(dce_series=sitk.GetArrayFromImage(case.dce_series), labels=sitk.GetArrayFromImage(case.labels))
    return arrays


def test_the_cached_case_is_what_the_generator_gives():
    cached, fresh = generated_case(3), generate_case(3)
    assert cached.case_id == fresh.case_id and cached.params == fresh.params
    for key, array in _arrays(fresh).items():
        assert np.array_equal(_arrays(cached)[key], array), key
    for key in KEYS:
        assert cached.images[key].GetOrigin() == fresh.images[key].GetOrigin(), key
        assert cached.images[key].GetDirection() == fresh.images[key].GetDirection(), key


def test_a_caller_changing_its_copy_leaves_the_next_callers_case_as_generated():
    first = generated_case(3)
    before = _arrays(generated_case(3))
    first.images["t2w"].SetPixel(0, 0, 0, int(first.images["t2w"].GetPixel(0, 0, 0)) + 7)
    first.images["adc"] = None
    first.labels.SetPixel(0, 0, 0, 9)
    first.params["dce"]["frame_times_s"].append(-1.0)
    first.params["seed"] = -1
    again = generated_case(3)
    assert again.images["adc"] is not None and again.params["seed"] != -1
    assert again.params["dce"]["frame_times_s"][-1] != -1.0
    for key, array in _arrays(again).items():
        assert np.array_equal(array, before[key]), key
