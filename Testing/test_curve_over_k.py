"""scripts/curve_over_k.py: the curve over K (issue 12) read from evaluate runs of one set at several K, each K paired
against K = 1 on the patients both scored."""

import json

import pytest

from script_module import load_script


def _run(psnr_by_case, calibration=None, data="fresh/A"):
    """A metrics.json document as `dcediff evaluate` writes it, reduced to what the curve reads."""
    rows = []
    for case, psnr in psnr_by_case.items():
        target = {"whole": {"psnr": psnr}, "enhancement": {"prostate": {"pearson": psnr / 100.0}}}
        rows.append({"case": case, "early": target, "late": target})
    protocol = {} if calibration is None else {"calibration_median": {t: {"body": calibration, "prostate": 0.05}
                                                                       for t in ("early", "late")}}
    return {"meta": {"data": data, "seconds": 12.0, "protocol": protocol}, "cases": {"model": rows}}


def _write(folder, name, document):
    (folder / name).mkdir(parents=True)
    (folder / name / "metrics.json").write_text(json.dumps(document))


def test_each_k_is_paired_against_k1_and_the_sample_spread_shows_from_k2(tmp_path):
    script = load_script("curve_over_k")
    _write(tmp_path, "A_K1", _run({"case_1": 30.0, "case_2": 31.0}))
    _write(tmp_path, "A_K4", _run({"case_1": 30.5, "case_2": 31.5}, calibration=0.12))
    _write(tmp_path, "B_K1", _run({"case_7": 28.0}, data="fresh/B"))
    table = script.curve_table(script.runs_by_set(tmp_path)).splitlines()
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line for line in table[2:]}
    assert set(rows) == {("A", "1"), ("A", "4"), ("B", "1")}
    k4 = rows[("A", "4")]
    assert "| 31.00 | 31.00 |" in k4                    # PSNR: mean over the two patients, early and late
    assert "+0.500 [+0.500, +0.500]" in k4             # +0.5 dB on both patients against K = 1
    assert "+0.005 [+0.005, +0.005]" in k4             # the prostate r of the same rows
    assert "0.12 / 0.05 ; 0.12 / 0.05" in k4           # the sample spread's Spearman, body / prostate
    assert "+0.000 [+0.000, +0.000]" in rows[("A", "1")]
    cells = [cell.strip() for cell in rows[("A", "1")].strip("|").split("|")]
    assert cells[-3:-1] == ["–", "–"]                  # one sample: no spread, and no expected-error map here


def test_a_set_without_k1_or_with_another_data_folder_is_refused(tmp_path):
    script = load_script("curve_over_k")
    _write(tmp_path / "one", "A_K2", _run({"case_1": 30.0}, calibration=0.1))
    with pytest.raises(SystemExit, match="no K = 1 run"):
        script.curve_table(script.runs_by_set(tmp_path / "one"))
    _write(tmp_path / "two", "A_K1", _run({"case_1": 30.0}))
    _write(tmp_path / "two", "A_K2", _run({"case_1": 30.0}, data="another/A"))
    with pytest.raises(SystemExit, match="meta.data differs"):
        script.curve_table(script.runs_by_set(tmp_path / "two"))
