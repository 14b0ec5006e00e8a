"""The T1-weighted stand-in of scripts/real_exam_tissue_enhancement.py (``--t1pre-stand-in vibe20``): the PD series
made T1-weighted tissue by tissue must turn fat bright and urine dark against muscle, follow the labels through
physical space (labels on another grid), and leave the PD image untouched."""

import numpy as np
import SimpleITK as sitk

from script_module import load_script


def _script():
    return load_script("real_exam_tissue_enhancement")


def test_vibe20_factors_order_tissues_as_a_t1_weighted_gre():
    factors = _script().vibe20_factors()
    assert factors["muscle"] == 1.0
    assert factors["fat"] > 2.0                       # short T1: much brighter than muscle at 20°, TR 4 ms
    assert factors["bladder"] < 0.7                   # urine's long T1: darker than muscle
    assert factors["bladder"] < factors["peripheral_zone"] < factors["muscle"] < factors["fat"]


def test_stand_in_follows_labels_on_another_grid_and_keeps_the_pd():
    module = _script()
    pd_array = np.full((4, 40, 40), 100.0, dtype=np.float32)
    pd = sitk.GetImageFromArray(pd_array)
    pd.SetSpacing((1.5, 1.5, 3.0))
    # labels on a finer grid covering the same space: left third fat, right third bladder, middle muscle
    legend = module.LABEL_LEGEND
    labels_array = np.full((12, 120, 120), legend["muscle"], dtype=np.uint8)
    labels_array[:, :, :40] = legend["fat"]
    labels_array[:, :, 80:] = legend["bladder"]
    labels = sitk.GetImageFromArray(labels_array)
    labels.SetSpacing((0.5, 0.5, 1.0))
    labels.SetOrigin((-0.5, -0.5, -1.0))   # voxel centres: the PD's first centre sits in the first label voxels
    before = sitk.GetArrayFromImage(pd).copy()

    out = sitk.GetArrayFromImage(module.t1_weighted_stand_in(pd, labels))

    factors = module.vibe20_factors()
    assert np.array_equal(sitk.GetArrayFromImage(pd), before)
    assert out.shape == pd_array.shape
    assert np.allclose(out[:, 20, 3], 100.0 * factors["fat"], rtol=0.02)      # far from the borders
    assert np.allclose(out[:, 20, 20], 100.0, rtol=0.02)                       # muscle
    assert np.allclose(out[:, 20, 36], 100.0 * factors["bladder"], rtol=0.02)
    # at the fat/muscle border the smoothed factor lies between the two (partial volume)
    border = out[1, 20, 13]
    assert 100.0 < border < 100.0 * factors["fat"]


def test_urine_row_is_the_bladder_without_its_wall():
    module = _script()
    legend = module.LABEL_LEGEND
    labels = np.full((5, 40, 40), legend["muscle"], dtype=np.uint8)
    labels[:, 5:35, 5:35] = legend["bladder"]                  # 30 × 30 voxels of 1 mm: depth up to 15 mm in-plane
    t1pre = np.where(labels == legend["bladder"], 100.0, 50.0)  # the muscle below the 5th percentile: not usable
    early = t1pre.copy()
    wall = (labels == legend["bladder"]) & ~np.pad(np.ones((5, 18, 18), bool), ((0, 0), (11, 11), (11, 11)))
    early[wall] = 200.0                                         # the outer 6 mm of the bladder enhances (RE 1)
    stats = module.tissue_statistics(t1pre, {"early": early, "late": t1pre}, labels, (100.0, 1.0, 1.0))
    assert stats["bladder"]["re_early"] == 1.0                  # the wall is most of the label
    assert stats["urine"]["re_early"] == 0.0                    # deeper than 6 mm: none of it
    assert "urine" not in module.tissue_statistics(t1pre, {"early": early, "late": t1pre}, labels)
