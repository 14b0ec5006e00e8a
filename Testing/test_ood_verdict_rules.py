"""The out-of-distribution verdict at its thresholds (found by a mutation audit): an exam is flagged, and a feature
given a reason, only ABOVE its threshold (ratio 1.0 is the edge of what training showed); a swapped-series guess
needs the exchanged exam to fit or to score less than half; the data-domain rule flags an exam as soon as one input
is not a marked phantom. Cards written by hand from the documented fields, with values exact in binary."""

from DCEDiffLib import ood
from DCEDiffLib.data_source import PHANTOM

NOT_MARKED = "not marked"  # any source other than PHANTOM


def _card(centres: dict) -> dict:
    """A card with one linear feature per modality (left-right ramp), spread 0.25 and threshold 1."""
    return {"version": ood.STATISTICS_VERSION, "conditions": list(centres), "features": {
        f"{m}.bias_lr": {"kind": "linear", "centre": c, "scale": 0.25, "threshold": 1.0, "training_range": [c, c]}
        for m, c in centres.items()}}


def _exam(ramps: dict) -> dict:
    return {"gland_region": "central ellipsoid", "modalities": {m: {"bias_lr": v} for m, v in ramps.items()}}


def test_a_ratio_of_exactly_one_is_the_edge_of_the_training_data_not_beyond_it():
    """ood_score: 'flagged above 1' and 'reasons explain every feature above its threshold': a ramp 0.25 from
    the centre is 1 spread, ratio 1.0: not flagged, no reason; 0.3125 (ratio 1.25) is flagged with its reason."""
    card = _card({"t2w": 0.0})
    edge = ood.ood_score(_exam({"t2w": 0.25}), card)
    assert edge["score"] == 1.0 and edge["flagged"] is False and edge["reasons"] == []
    assert "within" in ood.summary_line(edge)
    beyond = ood.ood_score(_exam({"t2w": 0.3125}), card)
    assert beyond["score"] == 1.25 and beyond["flagged"] is True and len(beyond["reasons"]) == 1


def test_a_swap_is_named_only_when_the_exchanged_exam_scores_less_than_half():
    """docs/ood.md: 'if the exchanged exam fits (score <= 1 or less than half), the first reason says X and Y look
    swapped'. Centres T2W 0 and PD 1 (ratio = |value - centre| / 0.25). T2W 1.0 and PD 0.5 score 4; exchanged,
    2.0: exactly half, not less, so no swap is named. Exchanged to 0.5 (a fit) or from 6 to 2 (below half): named."""
    card = _card({"t2w": 0.0, "pd": 1.0})
    half = ood.ood_score(_exam({"t2w": 1.0, "pd": 0.5}), card)
    assert half["score"] == 4.0 and half["flagged"]
    assert "swapped" not in half and not any("look swapped" in r for r in half["reasons"])
    fits = ood.ood_score(_exam({"t2w": 1.0, "pd": 0.125}), card)  # exchanged: t2w 0.125 → 0.5, pd 1.0 → 0
    assert fits["swapped"] == ["t2w", "pd"] and "look swapped" in fits["reasons"][0]
    closer = ood.ood_score(_exam({"t2w": 1.5, "pd": 0.5}), card)  # score 6; exchanged: t2w 2.0, pd 2.0 → 2 < 3
    assert closer["score"] == 6.0 and closer["swapped"] == ["t2w", "pd"]
    assert "comes much closer" in closer["reasons"][0]


def test_one_input_that_is_not_a_marked_phantom_is_enough_for_a_phantom_only_card():
    """apply_data_domain: a phantom-only model 'flags every exam whose inputs are not all marked as DCEDiff
    phantoms': a phantom's T2W and PD with a real exam's ADC is flagged, and the reason names the ADC only."""
    result = ood.ood_score(_exam({"t2w": 0.0}), _card({"t2w": 0.0}))
    assert not result["flagged"]
    sources = {"t2w": PHANTOM, "pd": PHANTOM, "adc": NOT_MARKED}
    ood.apply_data_domain(result, {"kind": "phantom", "description": "DCEDiff phantoms: test"}, sources)
    assert result["flagged"] and result["score"] == ood.DOMAIN_MISMATCH_RATIO
    (reason,) = result["reasons"]
    named = reason.split(": not a DCEDiff phantom")[0]
    assert "ADC" in named and "T2-weighted" not in named and "proton density" not in named


def test_geometry_reasons_name_the_patient_axis_not_the_slice():
    """_reason for geometry features (series_geometry measures by patient axis, so a sagittal series' head–foot size
    is its in-plane pixel): the words say 'voxel size across the body', 'voxel size head–foot' and 'field of view
    across the body', not 'slice thickness'. Mutation audit: kills the old wording put back."""
    card = {"version": ood.STATISTICS_VERSION, "conditions": ["t2w"], "features": {
        f"geometry.t2w.{key}": {"kind": "log", "centre": 0.0, "scale": 0.05, "threshold": 1.0,
                                "training_range": [1.0, 1.0]} for key in ("inplane_mm", "slice_mm", "fov_mm")}}
    exam = {"gland_region": "central ellipsoid", "geometry": {"t2w": {"inplane_mm": 4.0, "slice_mm": 8.0,
                                                                     "fov_mm": 16.0}}}
    reasons = "\n".join(ood.ood_score(exam, card)["reasons"])
    assert "voxel size across the body (in-plane for an axial series) 4" in reasons
    assert "voxel size head–foot (the slice spacing of an axial series) 8" in reasons
    assert "field of view across the body 16" in reasons and "slice thickness" not in reasons


def test_a_negated_input_is_flagged_first_and_kept_out_of_the_swap_guess():
    """ood_score with ``statistics["sign"]`` (intensity_sign.NEGATED_SHARE: 99 % of the nonzero voxels below zero
    is negated, 98 % is not): a negated input is flagged at NEGATED_RATIO even inside every threshold, its reason
    comes first, and an exchange that would make the exam fit is not offered for it (a sign flip explains the misfit,
    a swap of files would not undo it); the data-domain reason goes after it."""
    card = _card({"t2w": 0.0, "pd": 1.0})
    share = {"negative_share": 0.99, "min": -500.0, "max": 2.0}
    inside = ood.ood_score({**_exam({"t2w": 0.0, "pd": 1.0}), "sign": {"pd": share}}, card)
    assert inside["flagged"] and inside["score"] == ood.NEGATED_RATIO and inside["negated"] == ["pd"]
    assert inside["reasons"][0].startswith("proton density (pd): 99.0% of the nonzero voxels are negative (-500 to 2)")
    assert list(inside["features"])[0] == "sign.pd"
    not_quite = ood.ood_score({**_exam({"t2w": 0.0, "pd": 1.0}), "sign": {"pd": {**share, "negative_share": 0.98}}},
                              card)
    assert not not_quite["flagged"] and "negated" not in not_quite and not_quite["reasons"] == []
    # exchanged, this exam fits (test above): with the PD negated no swap is named, and the PD reason leads
    fits = ood.ood_score({**_exam({"t2w": 1.0, "pd": 0.125}), "sign": {"pd": {**share, "negative_share": 1.0}}},
                         card)
    assert "swapped" not in fits and not any("look swapped" in r for r in fits["reasons"]), fits["reasons"]
    assert fits["reasons"][0].startswith("proton density (pd): every nonzero voxel is negative")
    ood.apply_data_domain(fits, {"kind": "phantom", "description": "DCEDiff phantoms: test"}, {"t2w": NOT_MARKED})
    assert "every nonzero voxel is negative" in fits["reasons"][0]
    # after the negated PD and the two ramps beyond ratio 2 (T2W 4, PD 3.5)
    assert "not a DCEDiff phantom" in fits["reasons"][3] and len(fits["reasons"]) == 4, fits["reasons"]


def test_features_are_listed_worst_first_with_a_negated_input_among_them_by_its_ratio():
    """ood_score: ``features`` worst first, as the reasons (docs/ood.md; the order synthesis.json shows), whatever
    added them: a negated PD (sign.pd at NEGATED_RATIO 2) goes after the ramps beyond 2 (T2W 4, PD 3.5) and before
    those under it; apply_data_domain keeps the same order (data_domain at 2 after sign.pd, which was there first).
    Round-18 mutation audit: kills the ratios listed without that sort (the negated input first)."""
    card = _card({"t2w": 0.0, "pd": 1.0, "t1pre": 0.0})
    exam = {**_exam({"t2w": 1.0, "pd": 0.125, "t1pre": 0.25}), "sign": {"pd": {"negative_share": 1.0, "min": -9.0,
                                                                             "max": 0.0}}}
    result = ood.ood_score(exam, card)
    assert result["negated"] == ["pd"]   # the control: the negated input is there
    assert result["features"] == {"t2w.bias_lr": 4.0, "pd.bias_lr": 3.5, "sign.pd": 2.0, "t1pre.bias_lr": 1.0}
    assert list(result["features"]) == ["t2w.bias_lr", "pd.bias_lr", "sign.pd", "t1pre.bias_lr"]
    ood.apply_data_domain(result, {"kind": "phantom", "description": "DCEDiff phantoms: test"}, {"t2w": NOT_MARKED})
    assert list(result["features"]) == ["t2w.bias_lr", "pd.bias_lr", "sign.pd", "data_domain", "t1pre.bias_lr"]
