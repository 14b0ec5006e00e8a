"""scripts/compare_error_maps.py: two cards' expected-error maps on the same patients, and the refit rule."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("compare_error_maps", ROOT / "scripts" / "compare_error_maps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metrics(tmp_path: Path, name: str, prostate_rho, body_rho=0.2, ratio=1.0, cases=("case_1", "case_2", "case_3"),
             data="A", body_ratio=0.8, psnr=None):
    """A metrics.json as `dcediff evaluate` writes its per-patient expected-error calibration."""
    rows = []
    for index, case in enumerate(cases):
        region = {"body": {"spearman": body_rho + 0.01 * index, "ratio": body_ratio},
                  "prostate": {"spearman": prostate_rho + 0.01 * index, "ratio": ratio}}
        rows.append({"case": case, "expected_error_calibration": {"early": region, "late": region}})
    folder = tmp_path / name
    folder.mkdir()
    metrics = {"meta": {"data": f"runs/{data}", "protocol": {"per_case": rows}}}
    if psnr is not None:  # the synthesis's own numbers per patient, as `dcediff evaluate` writes them
        phase = {"whole": {"psnr": psnr}, "enhancement": {"body": {"pearson": 0.8}, "prostate": {"pearson": 0.7}}}
        metrics["cases"] = {"model": [{"early": phase, "late": phase} for _ in cases]}
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return str(folder / "metrics.json")


def test_a_gain_in_the_gland_passes_and_a_loss_or_a_moved_body_fails(tmp_path, capsys):
    compare = _script()
    reference = _metrics(tmp_path, "ref", 0.10)
    assert compare.main(["--candidate", _metrics(tmp_path, "gain", 0.13), "--reference", reference, "--json",
                         str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "| early | prostate | 0.140 / 0.110 | +0.030" in out and "passes the rule" in out
    written = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert written["passes"] is True and written["patients"] == 3
    assert written["table"]["late_prostate"]["spearman_median"] == [0.14, 0.11]

    result = compare.compare(compare.calibration_rows([_metrics(tmp_path, "small", 0.11)]),
                             compare.calibration_rows([reference]))
    assert not result["passes"]  # +0.01 is below the bar of +0.02
    moved = compare.compare(compare.calibration_rows([_metrics(tmp_path, "body", 0.13, body_rho=0.25)]),
                            compare.calibration_rows([reference]))
    assert [ok for _, ok in moved["checks"]] == [True, True, False, True]
    promising = compare.compare(compare.calibration_rows([_metrics(tmp_path, "ratio", 0.13, ratio=0.5)]),
                                compare.calibration_rows([reference]))
    assert [ok for _, ok in promising["checks"]] == [True, True, True, False]


def test_several_files_pool_and_other_patients_or_no_map_are_refused(tmp_path, capsys):
    compare = _script()
    pooled = compare.calibration_rows([_metrics(tmp_path, "a", 0.1), _metrics(tmp_path, "b", 0.1, cases=("x",),
                                                                               data="B")])
    assert [case for case, _ in pooled] == ["runs/A/case_1", "runs/A/case_2", "runs/A/case_3", "runs/B/x"]
    other = _metrics(tmp_path, "other", 0.1, cases=("case_1", "case_2", "case_9"))
    assert compare.main(["--candidate", other, "--reference", _metrics(tmp_path, "ref", 0.1)]) == 2
    assert "different patients" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.json").write_text(json.dumps({"meta": {"protocol": {"per_case": [
        {"case": "case_1", "expected_error_calibration": {}}]}}}), encoding="utf-8")
    assert compare.main(["--candidate", str(empty / "metrics.json"), "--reference", other]) == 2
    assert "no expected-error calibration" in capsys.readouterr().err


def test_the_size_rule_wants_the_body_ratio_nearer_one_and_the_rankings_kept(tmp_path):
    compare = _script()
    reference = compare.calibration_rows([_metrics(tmp_path, "ref", 0.10)])  # body ratio 0.8 in _metrics
    same_rankings = _metrics(tmp_path, "same", 0.10, body_ratio=1.02)
    result = compare.compare(compare.calibration_rows([same_rankings]), reference, rule="size")
    assert result["passes"] and len(result["checks"]) == 4
    # the trees' rule asks for a gland gain this change does not make
    assert not compare.compare(compare.calibration_rows([same_rankings]), reference, rule="trees")["passes"]
    unchanged = compare.compare(reference, reference, rule="size")  # 0.8 is outside 0.85 … 1.18, and no nearer 1
    assert [ok for _, ok in unchanged["checks"]] == [False, True, True, True]


def test_the_refit_rule_takes_no_loss_in_the_gland_and_a_body_ratio_in_range(tmp_path):
    compare = _script()
    reference = compare.calibration_rows([_metrics(tmp_path, "ref", 0.10)])
    # the same ranking passes only once the body ratio is in range (0.8 in _metrics is below 0.85)
    assert [ok for _, ok in compare.compare(reference, reference, rule="refit")["checks"]] == [True, True, True,
                                                                                               True, False]
    in_range = _metrics(tmp_path, "same", 0.10, body_ratio=0.95)
    assert compare.compare(compare.calibration_rows([in_range]), reference, rule="refit")["passes"]
    worse = compare.compare(compare.calibration_rows([_metrics(tmp_path, "worse", 0.09)]), reference, rule="refit")
    assert [ok for _, ok in worse["checks"]][:2] == [False, True]  # −0.01 on average: worse, though within 0.02


def test_the_body_rule_wants_a_clear_body_gain_the_size_kept_and_the_same_syntheses(tmp_path, capsys):
    compare = _script()
    reference = _metrics(tmp_path, "ref", 0.10, body_rho=0.10, body_ratio=1.0, psnr=30.0)
    better = _metrics(tmp_path, "better", 0.11, body_rho=0.20, body_ratio=1.05, psnr=30.0)
    assert compare.main(["--candidate", better, "--reference", reference, "--rule", "body"]) == 0
    assert "passes the rule" in capsys.readouterr().out
    resynthesized = _metrics(tmp_path, "resynth", 0.11, body_rho=0.20, body_ratio=1.05, psnr=30.5)
    assert compare.main(["--candidate", resynthesized, "--reference", reference, "--rule", "body"]) == 0
    out = capsys.readouterr().out
    assert "does not pass" in out
    assert "same syntheses on both sides (each patient's PSNR and enhancement r)  FAIL" in out
    rows = compare.calibration_rows([reference])
    small = compare.compare(compare.calibration_rows([_metrics(tmp_path, "small", 0.10, body_rho=0.13)]), rows,
                            rule="body")
    assert [ok for _, ok in small["checks"]] == [False, False, True, True, True]  # +0.03 only; body ratio 0.8
    gland = compare.compare(compare.calibration_rows([_metrics(tmp_path, "gland", 0.15, body_rho=0.2,
                                                               body_ratio=1.0)]), rows, rule="body")
    assert [ok for _, ok in gland["checks"]] == [True, True, False, True, True]  # the gland's ranking moved
    no_numbers = _metrics(tmp_path, "bare", 0.11, body_rho=0.20)
    assert compare.main(["--candidate", no_numbers, "--reference", reference, "--rule", "body"]) == 2
    assert "no per-patient PSNR" in capsys.readouterr().err
