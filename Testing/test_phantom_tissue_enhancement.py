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
