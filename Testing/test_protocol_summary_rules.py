"""The evaluation's protocol summary at its definition: medians leave undefined cases out, and the paired differences
are model − other method (found by a mutation audit)."""

import pytest


def _row(r_t2w):
    regions = {region: {"t2w": r_t2w} for region in ("body", "prostate", "lesion")}
    return {"linear_predictors": {"early": regions, "late": regions}, "calibration": {}}


def _case(psnr):
    target = {"whole": {"psnr": psnr, "ssim": None}, "enhancement": {"body": {"pearson": None}}}
    return {"early": target, "late": target}


def test_protocol_medians_leave_undefined_cases_out():
    """evaluation_runner._protocol_summary: "medians of the per-case protocol values": a case whose value is None
    (undefined) is not a zero; the median of 0.2, None, 0.6 is that of 0.2 and 0.6."""
    from DCEDiffLib.evaluation_runner import _protocol_summary

    summary = _protocol_summary([_row(0.2), _row(None), _row(0.6)], {"model": []})
    assert summary["linear_predictors_median"]["early"]["body"]["t2w"] == pytest.approx(0.4)
    summary = _protocol_summary([_row(None), _row(None)], {"model": []})
    assert summary["linear_predictors_median"]["late"]["lesion"]["t2w"] is None


def test_paired_differences_are_the_model_minus_the_other_method():
    """"paired bootstrap differences (model − other method)": a model 10 dB above the identity baseline on every
    patient has a positive difference of +10 dB, and its interval lies above zero."""
    from DCEDiffLib.evaluation_runner import _protocol_summary

    results = {"model": [_case(30.0), _case(31.0), _case(32.0)], "identity": [_case(20.0), _case(21.0), _case(22.0)]}
    summary = _protocol_summary([], results)
    assert set(summary["paired_differences"]) == {"identity"}
    psnr = summary["paired_differences"]["identity"]["early"]["psnr_whole"]
    assert psnr["mean"] == pytest.approx(10.0) and psnr["n"] == 3
    assert min(psnr["ci95"]) > 0
    assert summary["paired_differences"]["identity"]["late"]["ssim_whole"]["mean"] is None  # undefined on both sides
