"""scripts/fit_level_factor.py: the factor of each T1 protocol is its patients' median body ratio; the leave-one-out
check; patients inside the gap or too few on a side are refused."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import fit_level_factor as fit  # noqa: E402

GAP = (0.376, 0.472)


def test_each_side_gets_its_median_ratio_and_dividing_by_it_centres_both():
    levels = [0.2, 0.25, 0.3, 0.35, 0.7, 0.8, 0.9]
    ratios = [0.5, 0.6, 0.55, 0.58, 1.4, 1.6, 1.5]
    assert fit.group_factors(levels, ratios, GAP) == [0.565, 1.5]
    check = fit.leave_one_out(levels, ratios, GAP)
    assert check["inside_before"] == pytest.approx(4 / 7, abs=0.01) and check["inside_after"] == 1.0
    assert check["median_before"] == 0.6 and 0.9 <= check["median_after"] <= 1.1


def test_patients_inside_the_gap_or_too_few_on_a_side_are_refused():
    with pytest.raises(SystemExit, match="inside the gap"):
        fit.group_factors([0.2, 0.3, 0.35, 0.42, 0.8, 0.9, 0.7], np.ones(7), GAP)
    with pytest.raises(SystemExit, match="at least 3"):
        fit.group_factors([0.2, 0.3, 0.8, 0.9, 0.7], np.ones(5), GAP)


def test_a_refit_multiplies_the_factors_the_evaluated_card_applied():
    """The ratios of a card that already had level factors were measured with them: the refit keeps them and
    corrects what is left (a card without factors gets the medians themselves)."""
    levels = [0.2, 0.25, 0.3, 0.35, 0.7, 0.8, 0.9]
    ratios = [0.5, 0.6, 0.55, 0.58, 1.4, 1.6, 1.5]
    applied = {"t1pre_level_factor": {"feature": "t1pre.gland_level", "nodes": list(GAP), "factor": [0.5, 2.0]}}
    factors, before = fit.refit_factors(levels, ratios, GAP, applied)
    assert before == [0.5, 2.0] and factors == [0.2825, 3.0]
    assert fit.refit_factors(levels, ratios, GAP, {}) == ([0.565, 1.5], [1.0, 1.0])


def test_leaving_out_the_gap_keeps_both_sides_and_their_edges():
    levels = [0.2, 0.376, 0.40, 0.45, 0.472, 0.9]
    kept = fit.outside_gap(levels, GAP)
    assert kept == [0, 1, 4, 5]
    assert fit.group_factors([levels[i] for i in kept] + [0.3, 0.8], [1.0] * 6, GAP) == [1.0, 1.0]
