"""The negated-input rule at its documented edges (DCEDiffLib/intensity_sign.py and its use in ood.py; found by the
round-18 mutation audit): the share and range are of the FINITE NONZERO voxels, an image with none has no measure
(and is no negated image), an input not given is not measured, and a negated input's reason stays ahead of a
swapped-series guess about two other inputs. Values exact in binary; cards written from the documented fields."""

import numpy as np

from DCEDiffLib import ood
from DCEDiffLib.intensity_sign import NEGATED_SHARE, looks_negated, negated_reason, sign_measure
from DCEDiffLib.modalities import INPUT_MODALITIES


def test_the_measure_is_of_the_finite_nonzero_voxels_only():
    """sign_measure: 'the finite nonzero voxels': NaN and ±inf (a reader's fill, a division by zero) and the zeros
    outside the field of view are neither counted nor the range; with none left there is no measure."""
    values = np.array([[-4.0, -2.0, 0.0, 0.0], [np.nan, np.nan, np.inf, -np.inf]])
    measure = sign_measure(values)
    assert measure == {"negative_share": 1.0, "min": -4.0, "max": -2.0}
    assert sign_measure(np.array([1.0, -3.0, 0.0, 0.0])) == {"negative_share": 0.5, "min": -3.0, "max": 1.0}
    assert sign_measure(np.zeros((2, 3))) is None
    assert sign_measure(np.array([0.0, np.nan, np.inf])) is None
    assert not values[0, 2] and np.isnan(values[1, 0])  # the input is not changed


def test_no_measure_is_no_negated_image_and_its_words_give_the_range_low_to_high():
    """looks_negated(None) is False (an all-zero or all-NaN input: nothing to judge), also inside ood_score; the
    reason names the range from its minimum to its maximum."""
    assert looks_negated(None) is False
    assert looks_negated({"negative_share": NEGATED_SHARE, "min": -1.0, "max": 1.0}) is True
    card = {"version": ood.STATISTICS_VERSION, "conditions": ["t2w"], "features": {
        "t2w.bias_lr": {"kind": "linear", "centre": 0.0, "scale": 0.25, "threshold": 1.0, "training_range": [0, 0]}}}
    exam = {"gland_region": "central ellipsoid", "modalities": {"t2w": {"bias_lr": 0.0}}, "sign": {"t2w": None}}
    result = ood.ood_score(exam, card)
    assert not result["flagged"] and "negated" not in result and result["reasons"] == []
    measure = sign_measure(np.array([-500.0, -2.0, 3.0] + [-1.0] * 97))
    assert "(-500 to 3)" in negated_reason("PD", measure, "x")


def test_an_input_not_given_is_not_measured_for_its_sign():
    """input_statistics: 'missing: inputs that were not given ... left out of every statistic': a missing PD's
    raw intensities (here negated) give no sign entry and no negated verdict."""
    rng = np.random.default_rng(0)
    conditions = rng.uniform(-1.0, 1.0, size=(len(INPUT_MODALITIES), 4, 16, 16))
    raw = {m: rng.uniform(1.0, 100.0, size=(4, 16, 16)) for m in INPUT_MODALITIES}
    raw["pd"] = -raw["pd"]
    given = ood.input_statistics(conditions, INPUT_MODALITIES, raw_intensities=raw)
    assert looks_negated(given["sign"]["pd"])   # the control: measured when given
    without = ood.input_statistics(conditions, INPUT_MODALITIES, raw_intensities=raw, missing=["pd"])
    assert set(without["sign"]) == {"t2w", "adc", "t1pre"} and ood.negated_inputs(without) == []


def test_a_negated_input_stays_ahead_of_a_swap_of_two_other_inputs():
    """ood_score: a negated input 'is named first'; a swap of two other inputs that makes the exam fit still gets
    its reason, right after it. Centres T2W 0, PD 1, T1-pre 0 (ratio = |value - centre| / 0.25): T2W 1.0 and PD
    0.125 exchanged fit; the T1-pre is negated."""
    card = {"version": ood.STATISTICS_VERSION, "conditions": ["t2w", "pd", "t1pre"], "features": {
        f"{m}.bias_lr": {"kind": "linear", "centre": c, "scale": 0.25, "threshold": 1.0, "training_range": [c, c]}
        for m, c in (("t2w", 0.0), ("pd", 1.0), ("t1pre", 0.0))}}
    exam = {"gland_region": "central ellipsoid",
            "modalities": {"t2w": {"bias_lr": 1.0}, "pd": {"bias_lr": 0.125}, "t1pre": {"bias_lr": 0.0}},
            "sign": {"t1pre": {"negative_share": 1.0, "min": -900.0, "max": -1.0}}}
    result = ood.ood_score(exam, card)
    assert result["negated"] == ["t1pre"] and result["swapped"] == ["t2w", "pd"]
    assert result["reasons"][0].startswith("T1 pre-contrast (t1pre): every nonzero voxel is negative"), result
    assert "look swapped" in result["reasons"][1], result["reasons"]
