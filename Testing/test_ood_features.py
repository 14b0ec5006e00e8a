"""The out-of-distribution check's features at their definitions (found by a mutation audit, session 53): the
left-right shading ramp's sign and size, the noise as a Gaussian sigma, the raw ADC's 99th percentile, reasons worst
first, an ADC in wrong units."""

import numpy as np
import pytest

NAMES = ("t2w", "pd", "adc", "t1pre")
GRID = (16, 160, 160)  # (K, H, W), the working grid


def _offsets(width: int) -> np.ndarray:
    return (np.arange(width) - (width - 1) / 2) / (width / 2)


def _flat_exam(value: float = 0.0) -> np.ndarray:
    """Four condition volumes, every voxel at ``value`` (normalised units; body everywhere above -0.8)."""
    return np.full((len(NAMES),) + GRID, value, dtype=np.float32)


def _card_from(cases):
    from DCEDiffLib import ood

    return ood.training_statistics([dict(c, gland_region="central ellipsoid", conditions=list(NAMES))
                                    for c in cases])


def test_left_right_ramp_is_measured_with_its_sign_and_centre_to_edge_size():
    """The bias_lr feature is 'the rise from the centre to the edge (normalised units, signed)'. A T2W that rises
    by 0.3 from the centre line to the high-column edge must read +0.3, the mirrored ramp -0.3. Cards already
    shipped store signed centres/ranges measured this way, so a flipped sign would silently compare every exam
    against the wrong side of the training range."""
    from DCEDiffLib import ood

    conditions = _flat_exam()
    conditions[0] += (0.3 * _offsets(GRID[2]))[None, None, :]
    rising = ood.input_statistics(conditions, NAMES)["modalities"]["t2w"]["bias_lr"]
    assert rising == pytest.approx(0.3, abs=1e-3)
    conditions = _flat_exam()
    conditions[0] -= (0.3 * _offsets(GRID[2]))[None, None, :]
    falling = ood.input_statistics(conditions, NAMES)["modalities"]["t2w"]["bias_lr"]
    assert falling == pytest.approx(-0.3, abs=1e-3)


def test_noise_feature_is_the_gaussian_sigma_of_the_noise():
    """_noise is documented as 'scaled to a Gaussian σ': on a flat body plus i.i.d. Gaussian noise of σ = 0.05 the
    estimate must be 0.05 (≈ 400 000 neighbour differences: the sampling error is far below 2 %). Without the
    1/√2 (a difference of two noisy voxels has σ√2) it reads 0.0707."""
    from DCEDiffLib import ood

    conditions = _flat_exam()
    conditions[0] += np.random.default_rng(0).normal(0.0, 0.05, GRID).astype(np.float32)
    noise = ood.input_statistics(conditions, NAMES)["modalities"]["t2w"]["noise"]
    assert noise == pytest.approx(0.05, rel=0.02)


def test_raw_adc_body_p99_is_the_99th_percentile():
    """adc.body_p99 is reported as the '99th percentile in the body'. Raw ADC uniform on 0..2000 over the whole
    (body) grid: its 99th percentile is 1980 (the 95th would be 1900)."""
    from DCEDiffLib import ood

    raw = np.random.default_rng(1).uniform(0.0, 2000.0, GRID)
    adc = ood.input_statistics(_flat_exam(), NAMES, adc_raw=raw)["adc"]
    assert adc["body_p99"] == pytest.approx(1980.0, rel=0.005)


def test_reasons_come_worst_first():
    """ood_score: 'reasons explain every feature above its threshold, worst first'. Two correlations beyond their
    thresholds: the T2W–PD one (8 spreads off) must come before the T2W–ADC one (6 spreads off), whatever their
    names' alphabetical order."""
    from DCEDiffLib import ood

    cases = [{"modalities": {}, "correlations": {"t2w|pd": p, "t2w|adc": a}}
             for p, a in ((0.50, 0.20), (0.52, 0.22), (0.48, 0.18), (0.51, 0.21), (0.49, 0.19))]
    card = _card_from(cases)
    exam = {"gland_region": "central ellipsoid", "modalities": {},
            "correlations": {"t2w|pd": 0.50 - 0.40, "t2w|adc": 0.20 + 0.30}}
    result = ood.ood_score(exam, card)
    assert result["flagged"] and len(result["reasons"]) == 2
    assert result["features"]["corr.t2w|pd"] > result["features"]["corr.t2w|adc"] > 1.0
    assert result["reasons"][0].startswith("T2-weighted (t2w) vs proton density (pd)"), result["reasons"]
    assert result["reasons"][1].startswith("T2-weighted (t2w) vs ADC"), result["reasons"]


def test_an_adc_far_above_the_training_values_is_said_to_be_in_wrong_units():
    """The ADC reason names a units problem on both sides: values ~1000x smaller (mm²/s) and values 'far too large'
    (> 100x the training centre). A gland median 200x the training cases' (≈ 260 000 for ≈ 1300) is not an ADC
    in 10^-6 mm²/s and must be said to be so."""
    from DCEDiffLib import ood

    cases = [{"modalities": {}, "adc": {"gland_median": v, "body_p99": None}}
             for v in (1200.0, 1300.0, 1400.0, 1250.0, 1350.0)]
    card = _card_from(cases)
    exam = {"gland_region": "central ellipsoid", "modalities": {},
            "adc": {"gland_median": 1300.0 * 200, "body_p99": None}}
    result = ood.ood_score(exam, card)
    assert result["flagged"]
    assert "far too large" in result["reasons"][0] and "wrong units" in result["reasons"][0], result["reasons"]
