"""The evaluation's baselines, slice-to-slice consistency and protocol numbers at their definition (session-56 mutation
audit, round 13). Each test names the mutation it kills:

- test_a_baseline_file_with_repeated_bin_edges_is_refused: baselines.from_dict accepting edges that do not increase
  strictly (``> 0`` made ``>= 0``).
- test_an_empty_bin_takes_the_value_between_its_neighbours: baselines.fit leaving a bin without training voxels at
  0 instead of interpolating between its neighbours.
- test_the_t1pre_range_is_its_robust_percentiles_not_its_extremes: baselines._normalise by the minimum and maximum
  instead of the 0.5th/99.5th percentiles.
- test_exactly_the_minimum_number_of_pairs_gives_numbers: consistency, ``n < MIN_PAIRS`` made ``<=``.
- test_a_pair_counts_only_when_both_voxels_are_in_the_mask: consistency, the pair mask ``&`` made ``|``.
- test_roughness_ratio_is_the_ratio_of_mean_absolute_slice_differences: consistency's ratio taken of the difference
  of the two through-plane differences.
- test_spearman_gives_tied_values_their_mean_rank: protocol._ranks without the mean rank of ties.
- test_the_linear_predictor_r_is_the_absolute_correlation: protocol.linear_predictor_r keeping the sign.
- test_paired_bootstrap_leaves_out_patients_without_a_finite_value: protocol.paired_bootstrap keeping NaN pairs.
- test_the_lesion_floor_admits_a_lesion_of_exactly_the_floor: protocol.linear_predictor_r, ``<`` made ``<=``.
- test_the_best_gain_is_the_least_squares_gain: protocol.best_gain_baseline as a ratio of sums.
- test_calibration_reads_only_the_voxels_in_the_mask: protocol._masked_pair ignoring the mask.
"""

import numpy as np
import pytest

from DCEDiffLib.errors import InputError


# ---------------------------------------------------------------- baselines.py
def _fitted_dict():
    from DCEDiffLib.evaluation.baselines import MeanEnhancementBaseline

    t1 = np.repeat(np.array([100.0, 200.0, 300.0, 400.0]), 64).reshape(4, 8, 8)
    return MeanEnhancementBaseline(n_bins=4).fit([(t1, t1 + 10, t1 + 20)]).to_dict()


def test_a_baseline_file_with_repeated_bin_edges_is_refused():
    """from_dict: bin edges must increase strictly ("edges shared by ties are merged" when fitting, so a file with a
    repeated edge was not written by fit and describes an empty, unreachable bin)."""
    from DCEDiffLib.evaluation.baselines import MeanEnhancementBaseline

    data = _fitted_dict()
    MeanEnhancementBaseline.from_dict(data)
    data["inner_edges"] = [0.25, 0.5, 0.5]
    with pytest.raises(InputError, match="edges"):
        MeanEnhancementBaseline.from_dict(data)


def test_an_empty_bin_takes_the_value_between_its_neighbours(monkeypatch):
    """MeanEnhancementBaseline: "A bin that received no training voxel takes the value interpolated between its
    neighbours". The edges come from a thinned sample (every ``stride``-th voxel): with the sample limit at 2 voxels,
    four voxels of T1-pre levels 0, 1, 2, 3 (enhancement 0, 30, 60, 90) place 6 bins on levels 0 and 2 only, so
    some bins between filled ones get no voxel; each must lie on the straight line between its filled neighbours."""
    from DCEDiffLib.evaluation import baselines

    monkeypatch.setattr(baselines, "MAX_EDGE_SAMPLES", 2)
    t1 = np.array([[[0.0, 1.0, 2.0, 3.0]]]) * 100 + 100
    enhancement = np.array([[[0.0, 30.0, 60.0, 90.0]]])
    model = baselines.MeanEnhancementBaseline(n_bins=6, low_percentile=0.0, high_percentile=100.0)
    model.fit([(t1, t1 + enhancement, t1 + 2 * enhancement)])
    filled = np.flatnonzero(model.voxels > 0)
    inner_empty = [b for b in np.flatnonzero(model.voxels == 0) if filled[0] < b < filled[-1]]
    assert inner_empty, "the construction must leave a bin between filled ones empty"
    for values in (model.early, model.late):
        for b in inner_empty:
            below, above = filled[filled < b].max(), filled[filled > b].min()
            expected = values[below] + (values[above] - values[below]) * (b - below) / (above - below)
            assert values[b] == pytest.approx(expected)
            assert values[b] > 0


def test_the_t1pre_range_is_its_robust_percentiles_not_its_extremes():
    """MeanEnhancementBaseline: "Each T1-pre is normalised by its own robust range (low_percentile/high_percentile
    → 0/1, not clipped)", and the enhancement is a fraction of that range. One voxel 100× brighter than the rest
    (below the 0.5 % tail) must not change the range: a case whose enhancement is 10 % of its 100–200 range
    predicts +10 on a new 100–200 case."""
    from DCEDiffLib.evaluation.baselines import MeanEnhancementBaseline

    t1 = np.linspace(100.0, 200.0, 4000).reshape(10, 20, 20)
    t1_outlier = t1.copy()
    t1_outlier[0, 0, 0] = 20000.0
    model = MeanEnhancementBaseline(n_bins=1).fit([(t1_outlier, t1_outlier + 10.0, t1_outlier + 20.0)])
    span = np.percentile(t1_outlier, 99.5) - np.percentile(t1_outlier, 0.5)
    assert model.early[0] == pytest.approx(10.0 / span, rel=1e-9)
    early, late = model.predict(t1)
    np.testing.assert_allclose(early - t1, 10.0 * (np.percentile(t1, 99.5) - np.percentile(t1, 0.5)) / span,
                               rtol=1e-5)
    assert float(np.median(early - t1)) == pytest.approx(10.0, rel=0.02)


# ---------------------------------------------------------------- consistency.py
def _ramp_volumes(k=3, size=6):
    """Acquired: slice k holds the value k (through-plane step 1 everywhere); synthetic: steps of 2."""
    acquired = np.broadcast_to(np.arange(k, dtype=float)[:, None, None], (k, size, size)).copy()
    acquired += np.random.default_rng(0).normal(0, 0.1, acquired.shape)
    return 2.0 * acquired, acquired


def test_exactly_the_minimum_number_of_pairs_gives_numbers():
    """through_plane_consistency: None "when fewer than MIN_PAIRS pairs": exactly MIN_PAIRS pairs give numbers."""
    from DCEDiffLib.evaluation.consistency import MIN_PAIRS, through_plane_consistency

    synthetic, acquired = _ramp_volumes(2, 10)
    mask = np.zeros(acquired.shape, bool)
    mask[:, :5, :10] = True                    # 50 columns in both slices: 50 pairs
    assert MIN_PAIRS == 50
    result = through_plane_consistency(synthetic, acquired, mask)
    assert result["pairs"] == 50 and result["roughness_ratio"] is not None and result["pearson"] is not None
    mask[1, 0, 0] = False
    assert through_plane_consistency(synthetic, acquired, mask) == {"roughness_ratio": None, "pearson": None,
                                                                    "pairs": 49}


def test_a_pair_counts_only_when_both_voxels_are_in_the_mask():
    """"both voxels of a pair in mask": a mask holding slice 0 only has no pair; slices 0 and 1 of a 3-slice volume
    give the 0–1 pairs only (not the 1–2 pairs, whose upper voxel is outside)."""
    from DCEDiffLib.evaluation.consistency import through_plane_consistency

    synthetic, acquired = _ramp_volumes(3, 10)
    mask = np.zeros(acquired.shape, bool)
    mask[0] = True
    assert through_plane_consistency(synthetic, acquired, mask)["pairs"] == 0
    mask[1] = True
    assert through_plane_consistency(synthetic, acquired, mask)["pairs"] == 100


def test_roughness_ratio_is_the_ratio_of_mean_absolute_slice_differences():
    """roughness_ratio: "mean |synthetic(k+1) − synthetic(k)| over the same for the acquired image": a synthesis
    with twice the acquisition's slice-to-slice change has ratio 2 and correlation 1; a constant synthesis ratio 0."""
    from DCEDiffLib.evaluation.consistency import through_plane_consistency

    synthetic, acquired = _ramp_volumes(4, 8)
    result = through_plane_consistency(synthetic, acquired)
    assert result["roughness_ratio"] == pytest.approx(2.0)
    assert result["pearson"] == pytest.approx(1.0)
    assert result["pairs"] == 3 * 64
    flat = through_plane_consistency(np.zeros_like(acquired), acquired)
    assert flat["roughness_ratio"] == 0.0


# ---------------------------------------------------------------- protocol.py
def test_spearman_gives_tied_values_their_mean_rank():
    """spearman: "ties: mean ranks". x = (1, 2, 2, 3) has ranks (0, 1.5, 1.5, 3); against y = (1, 2, 3, 4) that is
    Pearson((−1.5, 0, 0, 1.5), (−1.5, −0.5, 0.5, 1.5)) = 4.5 / √(4.5 · 5) = 3/√10; and the tied pair has no order, so
    swapping the y values at the tied positions changes nothing."""
    from DCEDiffLib.evaluation.protocol import spearman

    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / np.sqrt(10))
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / np.sqrt(10))
    assert spearman([5, 5, 5, 1], [1, 2, 3, 0]) == pytest.approx(spearman([5, 5, 5, 1], [3, 1, 2, 0]))


def test_the_linear_predictor_r_is_the_absolute_correlation():
    """linear_predictor_r: "|Pearson r| between each input and the acquired enhancement": an input that falls where
    the enhancement rises predicts it as well as one that rises (r = −1 → 1)."""
    from DCEDiffLib.evaluation.protocol import linear_predictor_r

    enhancement = np.linspace(0, 1, 100).reshape(4, 5, 5)
    out = linear_predictor_r({"up": 3 * enhancement + 1, "down": 2 - enhancement}, enhancement,
                             {"body": np.ones(enhancement.shape, bool)})
    assert out["body"]["up"] == pytest.approx(1.0)
    assert out["body"]["down"] == pytest.approx(1.0)


def test_the_lesion_floor_admits_a_lesion_of_exactly_the_floor():
    """linear_predictor_r: None for "a lesion region under the lesion r's voxel floor" (MIN_LESION_CORRELATION_VOXELS,
    the model's own rule): a lesion of exactly that many voxels has an r, one voxel fewer has none."""
    from DCEDiffLib.evaluation.enhancement import MIN_LESION_CORRELATION_VOXELS
    from DCEDiffLib.evaluation.protocol import linear_predictor_r

    enhancement = np.random.default_rng(3).random((2, 10, 10))
    mask = np.zeros(enhancement.shape, bool)
    mask.flat[:MIN_LESION_CORRELATION_VOXELS] = True
    out = linear_predictor_r({"t2w": enhancement * 2}, enhancement, {"lesion": mask})
    assert out["lesion"]["t2w"] == pytest.approx(1.0)
    mask.flat[0] = False
    assert linear_predictor_r({"t2w": enhancement}, enhancement, {"lesion": mask})["lesion"]["t2w"] is None


def test_paired_bootstrap_leaves_out_patients_without_a_finite_value():
    """paired_bootstrap: "Mean of a − b over patients with both values": a NaN (an undefined metric) is no value."""
    from DCEDiffLib.evaluation.protocol import paired_bootstrap

    result = paired_bootstrap([1.0, float("nan"), 3.0, None], [0.0, 0.0, 1.0, 5.0])
    assert result["n"] == 2 and result["mean"] == pytest.approx(1.5)
    low, high = result["ci95"]
    assert 1.0 <= low <= high <= 2.0


def test_the_best_gain_is_the_least_squares_gain():
    """best_gain_baseline: g = argmin ‖g·T1-pre − acquired‖² = Σ t·a / Σ t². T1-pre (1, 2), acquired (2, 2):
    g = 6/5 (a ratio of sums would give 4/3)."""
    from DCEDiffLib.evaluation.protocol import best_gain_baseline

    np.testing.assert_allclose(best_gain_baseline(np.array([1.0, 2.0]), np.array([2.0, 2.0])), [1.2, 2.4],
                               rtol=1e-6)
    np.testing.assert_array_equal(best_gain_baseline(np.zeros(3), np.ones(3)), np.zeros(3))


def test_calibration_reads_only_the_voxels_in_the_mask():
    """calibration / expected_error_calibration "restricted to mask when given": voxels outside the mask, here
    with an error anticorrelated with the std, change nothing."""
    from DCEDiffLib.evaluation.protocol import calibration, expected_error_calibration

    std = np.linspace(0.1, 1.0, 200)
    error = std.copy()
    error[100:] = 1.1 - std[100:]  # outside the mask: the error falls where the std rises
    mask = np.zeros(200, bool)
    mask[:100] = True
    assert calibration(std, error, mask)["spearman"] == pytest.approx(1.0)
    assert sum(b["voxels"] for b in calibration(std, error, mask)["curve"]) == 100
    result = expected_error_calibration(std, error, mask)
    assert result["spearman"] == pytest.approx(1.0) and result["ratio"] == pytest.approx(1.0)
