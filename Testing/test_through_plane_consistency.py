"""Slice-to-slice consistency (DCEDiffLib/evaluation/consistency.py) and its place in evaluate_case."""

import numpy as np
import pytest

from DCEDiffLib.evaluation.case_evaluation import evaluate_case
from DCEDiffLib.evaluation.consistency import through_plane_consistency


def smooth_volume(seed=0, shape=(12, 32, 32)):
    """Anatomy that changes slowly through the slices: a blob drifting and growing from slice to slice."""
    k, y, x = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    rng = np.random.default_rng(seed)
    cy, cx = 16 + 0.5 * k + rng.normal(0, 0.1), 16 - 0.3 * k
    return 100.0 + 50.0 * np.exp(-(((y - cy) ** 2 + (x - cx) ** 2) / (20.0 + 3.0 * k)))


def test_a_copy_is_consistent_and_flicker_is_caught():
    acquired = smooth_volume()
    same = through_plane_consistency(acquired, acquired)
    assert same["roughness_ratio"] == pytest.approx(1.0) and same["pearson"] == pytest.approx(1.0)
    assert same["pairs"] == 11 * 32 * 32
    # the same image with a gain that alternates from slice to slice: what a slice-by-slice model could draw
    flicker = acquired * (1.0 + 0.05 * (-1.0) ** np.arange(12))[:, None, None]
    scored = through_plane_consistency(flicker, acquired)
    assert scored["roughness_ratio"] > 3.0 and scored["pearson"] < 0.5
    # a synthesis that is the same on every slice changes nowhere: roughness 0, correlation undefined
    flat = np.repeat(acquired[:1], 12, axis=0)
    scored = through_plane_consistency(flat, acquired)
    assert scored["roughness_ratio"] == 0.0 and scored["pearson"] is None


def test_the_mask_selects_pairs_of_neighbouring_voxels():
    acquired = smooth_volume()
    mask = np.zeros(acquired.shape, bool)
    mask[3:6, 8:24, 8:24] = True  # slices 3, 4, 5: pairs (3, 4) and (4, 5)
    assert through_plane_consistency(acquired, acquired, mask)["pairs"] == 2 * 16 * 16
    mask[:] = False
    mask[::2] = True  # no two neighbouring slices
    assert through_plane_consistency(acquired, acquired, mask) == {"roughness_ratio": None, "pearson": None, "pairs": 0}
    assert through_plane_consistency(acquired[:1], acquired[:1])["roughness_ratio"] is None
    with pytest.raises(ValueError, match="K, H, W"):
        through_plane_consistency(acquired, acquired[:, :8])


def test_evaluate_case_reports_it_per_target():
    acquired = smooth_volume()
    t1pre = acquired * 0.8
    flicker = acquired * (1.0 + 0.05 * (-1.0) ** np.arange(12))[:, None, None]
    result = evaluate_case({"early": acquired, "late": flicker}, {"early": acquired, "late": acquired}, t1pre)
    assert result["early"]["through_plane"]["roughness_ratio"] == pytest.approx(1.0)
    assert result["late"]["through_plane"]["roughness_ratio"] > 3.0
    assert result["late"]["through_plane"]["pairs"] > 0


def test_an_empty_body_gives_no_through_plane_numbers():
    """Like every body metric: an empty body mask is reported as None, not as a whole-grid value labelled body."""
    acquired = smooth_volume()
    result = evaluate_case({"early": acquired}, {"early": acquired}, acquired * 0.8,
                           body_mask=np.zeros(acquired.shape, bool))
    assert result["early"]["through_plane"] == {"roughness_ratio": None, "pearson": None, "pairs": 0}
