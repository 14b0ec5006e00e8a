"""Two evaluation rules at their definition: the body mask keeps the largest connected component, and the calibration
curve reports the root-mean-square error per bin (found by a mutation audit, session 53)."""

import numpy as np
import pytest

# ---------------------------------------------------------------- evaluation body mask
def test_the_body_mask_keeps_only_the_largest_connected_component():
    """case_evaluation.derive_body_mask: "then the largest 3D connected component". A body (a cylinder of radius
    20 voxels) and one separate bright object of 4 x 4 voxels (e.g. a marker beside the patient): the mask is the
    body alone."""
    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask

    k, j, i = np.indices((8, 64, 64))
    body = (j - 30) ** 2 + (i - 30) ** 2 <= 20 ** 2
    marker = (j >= 56) & (j < 60) & (i >= 56) & (i < 60)
    volume = np.where(body | marker, 100.0, 1.0)
    mask = derive_body_mask(volume)
    assert not (mask & marker).any()
    assert (mask & body).sum() / body.sum() > 0.98


# ---------------------------------------------------------------- calibration curve
def test_the_calibration_curve_reports_the_root_mean_square_error_per_bin():
    """protocol.calibration: "RMSE per std quantile bin". 100 voxels of distinct std in 10 bins of 10; within every
    bin the errors are +-1 and +-3 in equal numbers: RMSE = sqrt((1 + 9) / 2) = sqrt(5) ~ 2.236 (the mean |error|
    would be 2)."""
    from DCEDiffLib.evaluation.protocol import calibration

    std = np.linspace(0.01, 1.0, 100)
    block = [1.0, -3.0, -1.0, 3.0, 1.0, -3.0, -1.0, 3.0, 3.0, -1.0]   # five of magnitude 1, five of 3
    error = np.array(block * 10)
    result = calibration(std, error, bins=10)
    assert [row["voxels"] for row in result["curve"]] == [10] * 10
    for row in result["curve"]:
        assert row["rmse"] == pytest.approx(np.sqrt(5.0))


def test_a_lesion_ring_leaves_out_a_neighbouring_lesion():
    """The ring is 'the lesion dilated ... minus every lesion voxel' (module docstring): a second, bright lesion two
    voxels away lies inside the first lesion's 3-voxel ring and must not count as the surrounding gland tissue.
    Expected ring of lesion A: the integer points of a radius-3 disk around it (29), minus A and minus B: 27; its
    CNR is computed here from that hand-built ring."""
    from DCEDiffLib.evaluation.lesions import lesion_conspicuity

    shape = (1, 21, 21)
    rng = np.random.default_rng(4)
    image = 5.0 + rng.normal(0.0, 0.5, shape)
    lesions = np.zeros(shape, bool)
    a, b = (0, 10, 10), (0, 10, 12)
    lesions[a] = lesions[b] = True
    image[a], image[b] = 9.0, 100.0
    prostate = np.ones(shape, bool)
    enh = np.zeros(shape)
    result, _ = lesion_conspicuity(image, image, enh, enh, lesions, prostate)
    rows = {tuple(int(round(c)) for c in row["centroid_kji"]): row for row in result["per_lesion"]}
    _, jj, ii = np.indices(shape)
    ring_a = ((jj - 10) ** 2 + (ii - 10) ** 2 <= 9) & ~lesions
    assert ring_a.sum() == 27
    assert rows[a]["ring_voxels"] == 27
    expected = (image[a] - image[ring_a].mean()) / image[ring_a].std()
    assert rows[a]["cnr_acquired"] == pytest.approx(expected)


def test_the_ring_radius_follows_the_in_plane_spacing_not_the_slice_thickness():
    """spacing is (k, j, i) in mm: 3 mm slices, 0.5 mm pixels. A 4 mm ring is 8 pixels wide along both j and i, so it
    reaches the voxels 8 pixels (4 mm) from a one-voxel lesion in both in-plane directions and not 9 (4.5 mm)."""
    from scipy import ndimage

    from DCEDiffLib.evaluation.lesions import ring_footprint

    footprint = ring_footprint((3.0, 0.5, 0.5), 4.0)
    lesion = np.zeros((1, 25, 25), bool)
    lesion[0, 12, 12] = True
    ring = ndimage.binary_dilation(lesion, structure=footprint)
    assert ring[0, 12, 12 + 8] and ring[0, 12, 12 - 8] and ring[0, 12 + 8, 12] and ring[0, 12 - 8, 12]
    assert not ring[0, 12, 12 + 9] and not ring[0, 12 + 9, 12]


def test_the_t1pre_gain_baseline_is_the_least_squares_gain():
    """best_gain_baseline: g·T1-pre with g = argmin ‖g·T1-pre − acquired‖². For T1-pre (1, 2, 3) and acquired
    (2, 2, 6) the normal equation gives g = Σxy / Σx² = 24 / 14; any other gain (e.g. the ratio of the sums, 10 / 6)
    leaves a larger squared residual."""
    from DCEDiffLib.evaluation.protocol import best_gain_baseline

    t1 = np.array([1.0, 2.0, 3.0], dtype=np.float32).reshape(1, 1, 3)
    acquired = np.array([2.0, 2.0, 6.0], dtype=np.float32).reshape(1, 1, 3)
    prediction = best_gain_baseline(t1, acquired)
    np.testing.assert_allclose(prediction, (24.0 / 14.0) * t1, rtol=1e-6)
    residual = float(((prediction - acquired) ** 2).sum())
    for gain in (24.0 / 14.0 - 0.01, 24.0 / 14.0 + 0.01, 10.0 / 6.0):
        assert residual < float(((gain * t1 - acquired) ** 2).sum())
