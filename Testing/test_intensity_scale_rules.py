"""Intensity-scale rules of normalization, target_scale and t1pre_level at their definitions (found by a mutation
audit): percentiles must satisfy low < high, normalize leaves its input alone, parameters read back keep both
percentiles, the targets keep the T1-pre's percentiles, and a card without a positive training minimum gives the
low-T1-pre rescale no factor."""

import numpy as np
import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.normalization import NormParams, fit_normalization, normalize


def test_equal_percentiles_are_refused_as_percentiles():
    """fit_normalization refuses 'the percentiles are not 0 <= low < high <= 100': equal percentiles are no range,
    whatever the image (the message names the percentiles, not the image's contrast)."""
    values = np.random.default_rng(0).uniform(0, 100, 1000)
    with pytest.raises(InputError, match=r"percentiles \(50.0, 50.0\); expected 0 <= low < high <= 100"):
        fit_normalization(values, low_percentile=50.0, high_percentile=50.0)
    params = fit_normalization(values, low_percentile=0.0, high_percentile=100.0)
    assert params.low == values.min() and params.high == values.max()


def test_normalize_does_not_modify_its_input():
    """normalize: 'the input array is not modified', a float64 array (which numpy would not copy) included."""
    values = np.array([100.0, 250.0, 400.0])
    out = normalize(values, NormParams(100.0, 400.0))
    np.testing.assert_array_equal(values, [100.0, 250.0, 400.0])
    np.testing.assert_allclose(out, [-1.0, 0.0, 1.0])


def test_parameters_read_back_keep_both_percentiles():
    """NormParams: 'the percentiles they were measured at are kept', through to_dict / from_dict as well (a range
    set from the 90th percentile by the bright-tail rule stays recorded as such)."""
    params = NormParams(12.0, 480.0, low_percentile=0.5, high_percentile=90.0)
    back = NormParams.from_dict(params.to_dict())
    assert back == params
    assert NormParams.from_dict({"low": 1.0, "high": 2.0}).high_percentile == 99.5


def test_the_targets_scale_keeps_the_t1pre_percentiles():
    """target_scale: the targets' parameters are derived from the T1-pre's, measured at its percentiles (low and
    high, e.g. 0.5 and 90 when the bright-tail rule set the range); only high moves, to low + factor x span."""
    from DCEDiffLib.target_scale import target_norm_params

    t1pre = NormParams(200.0, 500.0, low_percentile=0.5, high_percentile=90.0)
    targets = target_norm_params(t1pre, 3.0)
    assert (targets.low, targets.high) == (200.0, 1100.0)
    assert (targets.low_percentile, targets.high_percentile) == (0.5, 90.0)


def _card(minimum):
    return {"normalization": {"target_range_factor": 3.0},
            "input_statistics": {"features": {"t1pre.gland_level": {"kind": "level_lower", "minimum": minimum}}}}


def test_a_card_whose_minimum_is_not_positive_gives_no_factor():
    """training_minimum: a card without a (positive) minimum records no usable minimum; level / minimum would be
    undefined (0) or meaningless (< 0), so no factor whatever the level, one below 0 included (a gland whose median
    lies below the range's low: range_level of unclipped normalised values)."""
    from DCEDiffLib.t1pre_level import enhancement_factor, training_minimum

    for minimum in (0.0, -0.1):
        assert training_minimum(_card(minimum)) is None
        assert enhancement_factor(_card(minimum), -0.2) is None and enhancement_factor(_card(minimum), 0.05) is None
