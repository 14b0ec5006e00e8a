"""scripts/phantom_tissue_enhancement.py: tissue masks (urine = the bladder deeper than the wall margin) and the median
relative enhancement per tissue, on hand-made volumes whose answers are known."""

import numpy as np
import pytest

from script_module import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("phantom_tissue_enhancement")


LEGEND = {"fat": 1, "muscle": 2, "bladder": 4, "vessel": 6, "peripheral_zone": 7, "transition_zone": 8}


def test_urine_is_the_bladder_deeper_than_the_margin(script):
    labels = np.full((5, 40, 40), LEGEND["fat"], np.int16)
    labels[:, 5:35, 5:35] = LEGEND["bladder"]            # 30 × 30 mm in-plane at 1 mm
    masks = script.tissue_masks(labels, LEGEND, (10.0, 1.0, 1.0))
    urine = masks["urine"]
    assert urine.any() and not urine[:, :5 + 6, :].any() and not urine[:, :, 35 - 6:].any()
    assert urine[2, 20, 20] and not masks["gland"].any()
    assert masks["fat"].sum() == labels.size - 5 * 30 * 30


def test_median_relative_enhancement(script):
    t1pre = np.full((2, 10, 10), 100.0)
    image = t1pre * 1.5
    mask = np.zeros_like(t1pre, bool)
    mask[0, :5, :5] = True                                # 25 voxels
    assert script.median_relative_enhancement(image, t1pre, mask) == pytest.approx(0.5)
    image[0, :5, :5] = 100.0                              # no enhancement inside the mask
    assert script.median_relative_enhancement(image, t1pre, mask) == pytest.approx(0.0)
    small = np.zeros_like(mask)
    small[0, 0, :3] = True                                # below MIN_VOXELS
    assert np.isnan(script.median_relative_enhancement(image, t1pre, small))


def test_ratio_comparison_pairs_the_cases_both_models_have(script):
    this = {"a": {"dce_early": {"vessel": [1.0, 2.0], "fat": [0.06, 0.05]}},
            "b": {"dce_early": {"vessel": [1.5, 2.0]}}}
    other = {"a": {"dce_early": {"vessel": [0.5, 2.0], "fat": [0.04, 0.05]}},
             "c": {"dce_early": {"vessel": [9.0, 2.0]}}}          # case c: not in this, left out
    summary = script.ratio_comparison(this, other)
    assert summary["dce_early vessel"]["ratio_this"] == pytest.approx(0.5)
    assert summary["dce_early vessel"]["ratio_other"] == pytest.approx(0.25)
    assert summary["dce_early vessel"]["re_difference"] == pytest.approx(0.5)
    assert summary["dce_early vessel"]["cases"] == 1
    # an acquired RE below 0.1 gives no ratio, the paired difference still counts
    assert summary["dce_early fat"]["ratio_this"] is None
    assert summary["dce_early fat"]["re_difference"] == pytest.approx(0.02)
