"""Enhancement, lesion and baseline rules at their definitions (found by a mutation audit): the enhancement range,
the Pearson r and the mean ratio are taken inside the region they are asked for, round-off is no correlation, the
body-median gain is a ratio of medians, the CNR error is relative to |CNR_acquired|, lesions are face-connected
components, the gland rank uses the lesion's median and counts the gland voxels strictly below, the evaluation's
spacing is in array order, and an empty bin of the mean-enhancement baseline takes the value between its neighbours."""

import numpy as np
import pytest

from DCEDiffLib.evaluation.baselines import MeanEnhancementBaseline
from DCEDiffLib.evaluation.enhancement import compare_enhancement, enhancement_range
from DCEDiffLib.evaluation.lesions import lesion_conspicuity, relative_error


def test_enhancement_range_is_measured_inside_the_mask_only():
    """The robust range (99.5th − 0.5th percentile) of the values inside the mask: 0, 1, …, 200 give 199 − 1 = 198
    (linear interpolation of 201 values); the huge values outside the mask play no part."""
    values = np.full(301, 1e4)
    values[:201] = np.arange(201.0)
    mask = np.zeros(301, bool)
    mask[:201] = True
    assert enhancement_range(values, mask) == pytest.approx(198.0)
    assert enhancement_range(values) > 1000  # without the mask the outliers set it


def test_enhancement_correlation_and_mean_ratio_are_computed_inside_the_region():
    """Inside the region the synthetic enhancement is the acquired one doubled (r = 1, mean ratio 2); outside, where
    it does not count, it is inverted. Over the whole array r and the mean ratio would both be negative."""
    acquired = np.concatenate([np.linspace(0.0, 10.0, 30), np.linspace(0.0, 100.0, 70)])
    synthetic = np.concatenate([2 * acquired[:30], -acquired[30:]])
    region = np.zeros(100, bool)
    region[:30] = True
    inside = compare_enhancement(synthetic, acquired, 10.0, region)
    assert inside["pearson"] == pytest.approx(1.0)
    assert inside["mean_ratio"] == pytest.approx(2.0)
    whole = compare_enhancement(synthetic, acquired, 10.0)
    assert whole["pearson"] < 0 and whole["mean_ratio"] < 0


def test_cnr_relative_error_divides_by_the_magnitude_of_the_acquired_cnr():
    """(CNR_synthetic − CNR_acquired) / |CNR_acquired|: for a dark lesion (CNR −2) drawn darker still (−3) the error
    is −0.5, and a dark lesion drawn with half its contrast gets +0.5, as the CNR rose by half its magnitude."""
    assert relative_error(-3.0, -2.0) == pytest.approx(-0.5)
    assert relative_error(-1.0, -2.0) == pytest.approx(0.5)
    shape = (1, 21, 21)
    _, jj, ii = np.mgrid[0:1, 0:21, 0:21]
    acquired = 5.0 + np.sign(ii - 10)  # ring of mean 5, as in test_enhancement's constructed ring
    lesion = (jj == 10) & (ii == 10)
    acquired[lesion] = 0.0  # darker than the ring
    synthetic = acquired.copy()
    synthetic[lesion] = 2.5  # half the (negative) contrast
    enh = np.zeros(shape)
    result, _ = lesion_conspicuity(synthetic, acquired, enh, enh, lesion, np.ones(shape, bool))
    row = result["per_lesion"][0]
    assert row["cnr_acquired"] < 0 and row["cnr_synthetic"] == pytest.approx(row["cnr_acquired"] / 2)
    assert row["cnr_relative_error"] == pytest.approx(0.5)


def test_lesions_are_face_connected_components():
    """Module docstring: 'per connected lesion component (face connectivity in 3D)'. Voxels touching only along an
    edge or at a corner are separate lesions; voxels sharing a face (also across slices) are one."""
    shape = (3, 12, 12)
    enh = np.zeros(shape)
    image = np.random.default_rng(0).normal(size=shape)
    prostate = np.ones(shape, bool)
    lesions = np.zeros(shape, bool)
    lesions[1, 2, 2] = lesions[1, 3, 3] = True   # in-plane diagonal: an edge only
    lesions[0, 8, 8] = lesions[1, 9, 9] = True   # across slices at a corner only
    lesions[1, 8, 2] = lesions[2, 8, 2] = True   # across slices through a face: one lesion
    result, _ = lesion_conspicuity(image, image, enh, enh, lesions, prostate)
    assert result["summary"]["n_lesions"] == 5
    assert sorted(row["voxels"] for row in result["per_lesion"]) == [1, 1, 1, 1, 2]


def test_gland_percentile_counts_the_gland_voxels_strictly_below_the_lesion_median():
    """'the gland percentile of the lesion's median (fraction of gland voxels below it)', and 'above the median'
    is strict: gland enhancement 1, 2, 3, 4, 5 (equal shares) and a lesion of median 3 give 2/5 and not above."""
    shape = (1, 10, 12)
    enh = np.zeros(shape)
    enh[0, :, :10] = np.tile(np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 2), (10, 1))
    lesion = np.zeros(shape, bool)
    lesion[0, 4:7, 10:12] = True
    enh[lesion] = 3.0
    prostate = lesion.copy()
    prostate[0, :, :10] = True  # the gland: the 100 voxels of values 1 … 5
    image = np.random.default_rng(1).normal(size=shape)
    result, _ = lesion_conspicuity(image, image, enh, enh, lesion, prostate)
    row = result["per_lesion"][0]
    assert row["acquired_gland_percentile"] == pytest.approx(0.4)
    assert row["acquired_above_gland_median"] is False


def test_an_empty_baseline_bin_takes_the_value_between_its_neighbours():
    """Training T1-pre at two levels (100, 200: normalised 0 and 1, half each) gives the quantile edges 0, 0.5, 1,
    so a bin between the two levels receives no voxel. Enhancement 30 at 100 and 90 at 200 (0.3 and 0.9 of the
    range 100): that empty bin takes 0.6, the value between its neighbours, and no bin or voxel of a new case is
    predicted outside 0.3 … 0.9 of its range (an empty bin left at 0 would predict no enhancement at all)."""
    t1 = np.repeat([100.0, 200.0], 500).reshape(10, 10, 10)
    early = t1 + np.where(t1 == 100.0, 30.0, 90.0)
    baseline = MeanEnhancementBaseline(n_bins=4).fit([(t1, early, early)])
    np.testing.assert_allclose(baseline.inner_edges, [0.0, 0.5, 1.0], atol=1e-12)
    filled = baseline.voxels > 0
    assert filled.sum() == 2 and baseline.voxels.sum() == 1000
    first, last = np.flatnonzero(filled)[[0, -1]]
    assert last - first == 2  # one empty bin between the two filled ones
    assert baseline.early[first + 1] == pytest.approx(0.6)
    assert np.all((baseline.early >= 0.3 - 1e-12) & (baseline.early <= 0.9 + 1e-12))
    new = np.concatenate([np.full(490, 100.0), np.full(10, 125.0), np.full(10, 175.0), np.full(490, 200.0)])
    predicted, _ = baseline.predict(new.reshape(10, 10, 10))
    enhancement = (predicted.ravel().astype(np.float64) - new) / 100.0
    assert np.all((enhancement >= 0.3 - 1e-6) & (enhancement <= 0.9 + 1e-6))
    assert enhancement[0] == pytest.approx(0.3, abs=1e-6) and enhancement[-1] == pytest.approx(0.9, abs=1e-6)


def test_body_median_gain_is_the_ratio_of_the_medians():
    """enhancement module: 'body_median: a = median(target in body) / median(T1-pre in body)'. A tenth of the body
    enhancing strongly (+5000) leaves the median ratio at the true gain 2 (a ratio of means would read 7)."""
    from DCEDiffLib.evaluation.enhancement import fit_target_scale

    t1 = np.full((1, 10, 10), 100.0)
    target = 2.0 * t1
    target[0, 0, :] += 5000.0
    body = np.ones(t1.shape, bool)
    assert fit_target_scale(t1, target, "body_median", body_mask=body).scale == pytest.approx(2.0)


def test_lesion_spacing_handed_to_the_evaluation_is_in_array_order():
    """Working-grid dicts give spacing in (i, j, k) order (WorkingGrid.to_dict); arrays and the lesion ring use
    (k, j, i): a grid of 1.0 × 1.5 mm pixels and 3 mm slices is (3.0, 1.5, 1.0), so that the 4 mm ring spans 4 pixels
    along i and 3 along j (ring_footprint)."""
    from DCEDiffLib.evaluation.lesions import ring_footprint
    from DCEDiffLib.evaluation_runner import _spacing_kji
    from DCEDiffLib.working_grid import WorkingGrid

    grid = WorkingGrid((160, 150, 16), (1.0, 1.5, 3.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    spacing = _spacing_kji(grid.to_dict())
    assert spacing == (3.0, 1.5, 1.0)
    assert grid.array_shape == (16, 150, 160)
    assert ring_footprint(spacing).shape == (1, 2 * 3 + 1, 2 * 4 + 1)


def test_round_off_of_an_all_zero_enhancement_is_not_a_correlation():
    """pearson: 'Constant means a standard deviation at most 1e-9 times the larger magnitude of the two maps, so float
    round-off of an all-zero map cannot pose as a correlation'. A synthetic enhancement of pure round-off (1e-13 on an
    acquired enhancement of order 100) is constant: r is undefined, not some value between −1 and 1."""
    from DCEDiffLib.evaluation.enhancement import pearson

    rng = np.random.default_rng(6)
    acquired = rng.uniform(0.0, 100.0, 500)
    round_off = rng.normal(0.0, 1e-13, 500)
    value, reason = pearson(round_off, acquired)
    assert value is None and "constant" in reason


def test_the_gland_rank_uses_the_lesions_median_not_its_mean():
    """'is the lesion's median enhancement above the median enhancement of the gland?': a lesion of enhancement
    0, 0, 0, 0, 100 (median 0, mean 20) in a gland of 1 … 10 (median 5.5) is below, at gland percentile 0."""
    shape = (1, 10, 11)
    enh = np.zeros(shape)
    enh[0, :, :10] = np.tile(np.arange(1.0, 11.0), (10, 1))
    lesion = np.zeros(shape, bool)
    lesion[0, 2:7, 10] = True
    enh[0, 2:7, 10] = [0.0, 0.0, 0.0, 0.0, 100.0]
    prostate = lesion.copy()
    prostate[0, :, :10] = True
    image = np.random.default_rng(2).normal(size=shape)
    result, _ = lesion_conspicuity(image, image, enh, enh, lesion, prostate)
    row = result["per_lesion"][0]
    assert row["acquired_above_gland_median"] is False
    assert row["acquired_gland_percentile"] == 0.0
