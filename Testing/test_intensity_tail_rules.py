"""Bright-tail rules at their definitions (found by a mutation audit): the spread is measured on finite values only
and is infinite (no division by zero) when the bulk sits at the range's low end, and a model trained over the
clipped T1-pre gets the excess back wherever the T1-pre is clipped (the T1-pre read only when something is added)."""

import numpy as np
import pytest

from DCEDiffLib.intensity_tail import (CARD_FIELD, TAIL_TYPICAL, clipped_t1pre_excess, coverage_values,
                                       t1pre_excess_to_add, tame_heavy_tail)
from DCEDiffLib.normalization import NormParams, fit_normalization


def test_non_finite_voxels_do_not_hide_a_heavy_tail():
    """coverage_values gives 'the finite values ... inside mask': a few NaN voxels (outside a series' field of
    view after resampling) must not change the spread, nor keep a heavy tail from being tamed."""
    rng = np.random.default_rng(1)
    values = rng.normal(300.0, 60.0, 20000).clip(1, None)
    values[:600] *= 6.0  # a hot spot: 3 % of the voxels, six times as bright
    params = fit_normalization(values)
    tamed, note = tame_heavy_tail(values, params, "t1pre")
    assert note is not None
    holed = np.concatenate([values, [np.nan, np.inf, -np.inf] * 10])
    assert coverage_values(holed).size == values.size
    again, again_note = tame_heavy_tail(holed, params, "t1pre")
    assert again_note is not None
    p90 = np.percentile(values, 90)
    assert again.high == pytest.approx(params.low + TAIL_TYPICAL["t1pre"] * (p90 - params.low))
    assert again == tamed


def test_the_excess_comes_back_wherever_a_clipped_t1pre_model_clips():
    """clipped_t1pre_excess: with ``always`` (a card trained over the clipped T1-pre) the excess above the range is
    given wherever the T1-pre is clipped, even when the tail rule left the range alone (no note); without it and
    without a note, none."""
    params = NormParams(0.0, 100.0)
    t1pre = np.array([[50.0, 100.0, 130.0, 400.0]], np.float32)
    assert clipped_t1pre_excess(t1pre, params, {}) is None
    np.testing.assert_array_equal(clipped_t1pre_excess(t1pre, params, {}, always=True), [[0.0, 0.0, 30.0, 300.0]])
    np.testing.assert_array_equal(clipped_t1pre_excess(t1pre, params, {"t1pre": "tamed"}), [[0.0, 0.0, 30.0, 300.0]])


def test_a_bulk_at_the_bottom_of_the_range_has_an_infinite_spread_and_is_left_alone():
    """tail_spread: '(high − low) / (p90 − low) ... (inf if p90 == low)': a series whose 90th percentile is its low
    end (a mostly empty coverage) gives no division by zero, and the rule then leaves its range alone."""
    from DCEDiffLib.intensity_tail import tail_spread

    values = np.zeros(1000)
    values[-50:] = np.linspace(10.0, 100.0, 50)
    params = NormParams(0.0, 100.0)
    assert np.percentile(values, 90) == params.low
    assert tail_spread(values, params) == float("inf")
    assert tame_heavy_tail(values, params, "pd") == (params, None)


def test_the_synthesis_adds_back_what_its_card_or_the_tail_rule_asks_and_reads_the_t1pre_only_then():
    """t1pre_excess_to_add, the one rule of synthesize, evaluate and benchmark: a card trained over the clipped
    T1-pre gets the T1-pre's excess back at every clipped voxel, even where the tail rule left the range alone (no
    note); without such a card, only after the tail rule set the range; otherwise nothing, and the T1-pre is not
    read (evaluate would load it from every case's folder for nothing). Audit round 16: kills the card's field
    ignored (I01, I02) and the T1-pre read before knowing whether it is needed (I06)."""
    params = NormParams(0.0, 100.0)
    reads = []

    def read_t1pre():
        reads.append("t1pre")
        return np.array([[50.0, 100.0, 130.0]], np.float32)

    assert t1pre_excess_to_add({}, {}, params, read_t1pre) is None and reads == []
    np.testing.assert_array_equal(t1pre_excess_to_add({CARD_FIELD: True}, {}, params, read_t1pre), [[0.0, 0.0, 30.0]])
    np.testing.assert_array_equal(t1pre_excess_to_add({}, {"t1pre": "tamed"}, params, read_t1pre), [[0.0, 0.0, 30.0]])
    assert reads == ["t1pre", "t1pre"]
