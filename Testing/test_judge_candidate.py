"""scripts/judge_candidate.py: the validation rule of docs/model_quality.md on hand-made metrics whose paired
differences and CNR counts are known, each criterion failing on its own."""

import pytest

from script_module import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("judge_candidate")


def _row(lesion_r, prostate_r, psnr, cnr_pairs):
    """One patient's metrics.json row: the same numbers early and late; cnr_pairs (synthetic, acquired) early."""
    phase = {"whole": {"psnr": psnr}, "enhancement": {"lesion": {"pearson": lesion_r},
                                                      "prostate": {"pearson": prostate_r}}}
    early = dict(phase, lesions={"per_lesion": [{"cnr_synthetic": s, "cnr_acquired": a} for s, a in cnr_pairs]})
    return {"early": early, "late": phase}


def _document(candidate_rows, reference_rows):
    return {"cases": {"model": candidate_rows, "shipped": reference_rows}}


def test_a_candidate_that_gains_everywhere_passes(script):
    reference = [_row(0.50, 0.70, 30.0, [(1.0, 1.0), (-1.0, 1.0)]), _row(0.40, 0.80, 29.0, [(1.0, 1.0)])]
    candidate = [_row(0.55, 0.71, 30.1, [(1.0, 1.0), (1.0, 1.0)]), _row(0.45, 0.80, 29.0, [(1.0, 1.0)])]
    result = script.judge([_document(candidate, reference)])
    assert result["lesion_r"]["both"] == pytest.approx(0.05)
    assert result["prostate_r"]["both"] == pytest.approx(0.005)
    assert result["psnr_db"]["early"] == pytest.approx(0.05)
    assert result["early_cnr_sign"]["lesions_right"] == [3, 2]
    assert result["passes"]


@pytest.mark.parametrize("change, failing", [
    (dict(lesion_r=0.52), "lesion_r"),            # +0.02 < +0.03
    (dict(prostate_r=0.68), "prostate_r"),        # −0.02 < −0.01
    (dict(psnr=29.7), "psnr"),                    # −0.3 dB
    (dict(cnr=[(-1.0, 1.0)] * 10), "early_cnr_sign"),
])
def test_each_criterion_fails_on_its_own(script, change, failing):
    cnr = [(1.0, 1.0)] * 10
    reference = [_row(0.50, 0.70, 30.0, cnr)]
    candidate = [_row(change.get("lesion_r", 0.55), change.get("prostate_r", 0.70), change.get("psnr", 30.0),
                      change.get("cnr", cnr))]
    verdicts = script.judge([_document(candidate, reference)])["verdicts"]
    assert [k for k, v in verdicts.items() if not v] == [failing]


def test_a_lower_lesion_bar_lets_a_small_lesion_loss_pass_and_not_a_larger_one(script):
    cnr = [(1.0, 1.0)] * 10
    reference = [_row(0.50, 0.70, 30.0, cnr)]
    slightly_worse = _document([_row(0.495, 0.70, 30.0, cnr)], reference)
    worse = _document([_row(0.48, 0.70, 30.0, cnr)], reference)
    assert not script.judge([slightly_worse])["passes"]
    assert script.judge([slightly_worse], min_lesion_gain=-0.01)["passes"]
    assert not script.judge([worse], min_lesion_gain=-0.01)["verdicts"]["lesion_r"]


def test_documents_pool_their_patients_and_missing_values_are_skipped(script):
    a = _document([_row(0.6, 0.7, 30.0, [(1.0, 1.0)])], [_row(0.5, 0.7, 30.0, [(1.0, 1.0)])])
    b = _document([_row(None, 0.7, 30.0, [])], [_row(0.4, 0.7, 30.0, [])])   # no lesion r for the candidate
    result = script.judge([a, b])
    assert result["patients"] == 2
    assert result["lesion_r"]["early"] == pytest.approx(0.1)   # the second patient does not count
    with pytest.raises(KeyError, match="other"):
        script.judge([a], candidate="other")


def test_the_bootstrap_interval_holds_the_mean_and_is_reproducible(script):
    differences = [0.1, 0.2, 0.3, 0.0, 0.15]
    low, high = script.bootstrap_interval(differences)
    assert low < 0.15 < high and low >= 0.0 and high <= 0.3
    assert script.bootstrap_interval(differences) == [low, high]
    assert script.bootstrap_interval([0.1]) is None


def _phantom_folder(tmp_path, families):
    """A phantom folder whose case_NNN/case.json hold the given (anatomy family, domain) pairs."""
    import json
    for index, (family, domain) in enumerate(families):
        case = tmp_path / f"case_{index:03d}"
        case.mkdir()
        (case / "case.json").write_text(json.dumps({"anatomy_family": family, "domain": domain}))
    return tmp_path


def test_one_family_losing_prostate_r_fails_the_family_condition_while_the_pooled_rule_passes(script, tmp_path):
    cnr = [(1.0, 1.0)] * 4
    families = [("procedural", "A")] * 3 + [("prostatex", "A")]
    folder = _phantom_folder(tmp_path, families)
    reference = [_row(0.50, 0.70, 30.0, cnr) for _ in families]
    # procedural patients +0.01 prostate r each, the real-anatomy one −0.02: pooled −0.0025, family −0.02
    candidate = [_row(0.55, 0.71, 30.0, cnr) for _ in range(3)] + [_row(0.55, 0.68, 30.0, cnr)]
    document = dict(_document(candidate, reference), meta={"data": str(folder)})
    for index, row in enumerate(document["cases"]["model"]):
        row["case"] = f"case_{index:03d}"
    assert script.judge([document])["passes"]
    by_family = script.judge_families([document], [script._families_of(document)])
    assert sorted(by_family) == ["procedural A", "prostatex A"]
    assert by_family["procedural A"]["patients"] == 3 and by_family["procedural A"]["passes"]
    assert by_family["prostatex A"]["prostate_r"] == pytest.approx(-0.02)
    assert not by_family["prostatex A"]["passes"]


def test_a_family_losing_psnr_fails_and_a_case_without_case_json_is_unknown(script, tmp_path):
    folder = _phantom_folder(tmp_path, [("procedural", "B")])
    assert script.family_of_case(folder, "case_000") == "procedural B"
    assert script.family_of_case(folder, "case_404") == "unknown"
    document = _document([_row(0.5, 0.7, 29.7, [])], [_row(0.5, 0.7, 30.0, [])])
    result = script.judge_families([document], [["procedural B"]])
    assert result["procedural B"]["psnr_db"][0] == pytest.approx(-0.3) and not result["procedural B"]["passes"]
    with pytest.raises(ValueError, match="meta.data"):
        script._families_of(document)
