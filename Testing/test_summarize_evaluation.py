"""scripts/summarize_evaluation.py --against: paired differences between the models of two evaluate runs."""

import pytest

from script_module import load_script


def _load_script():
    return load_script("summarize_evaluation")


def _run(psnr_by_case, seed=0):
    """A metrics.json document as `dcediff evaluate` writes it, reduced to what the paired table reads."""
    rows = []
    for case, psnr in psnr_by_case.items():
        target = {"whole": {"psnr": psnr}, "enhancement": {"prostate": {"pearson": psnr / 100.0}}}
        rows.append({"case": case, "early": target, "late": target})
    return {"meta": {"seed": seed, "sampler": "dpmpp", "steps": 5, "samples": 1, "data": "d"},
            "cases": {"model": rows}}


def test_paired_against_uses_only_common_patients_and_their_differences():
    script = _load_script()
    new = _run({"case_1": 30.0, "case_2": 31.0, "case_3": 29.0})
    old = _run({"case_1": 29.0, "case_2": 30.0, "case_9": 10.0})  # case_9 is not in the new run: left out
    text = script.paired_against(new, old, "previous")
    assert "2 patients in common" in text
    early = next(line for line in text.splitlines() if line.startswith("| early"))
    assert "+1.00 [+1.00, +1.00]" in early            # PSNR: +1 dB on both common patients
    assert "+0.01 [+0.01, +0.01]" in early            # prostate r follows the same rows
    assert early.count("–") == 3                        # body, lesion, ratio absent in both runs: no number made up


def test_paired_against_refuses_runs_of_different_protocols():
    script = _load_script()
    with pytest.raises(SystemExit, match="meta.seed differs"):
        script.paired_against(_run({"case_1": 30.0}, seed=0), _run({"case_1": 29.0}, seed=1), "previous")
    with pytest.raises(SystemExit, match="no patient in common"):
        script.paired_against(_run({"case_1": 30.0}), _run({"case_2": 29.0}), "previous")


def test_paired_against_takes_a_relative_and_an_absolute_name_of_one_data_folder(tmp_path, monkeypatch):
    script = _load_script()
    (tmp_path / "data").mkdir()
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    relative, absolute = _run({"case_1": 30.0}), _run({"case_1": 29.0})
    relative["meta"]["data"], absolute["meta"]["data"] = "data", str(tmp_path / "data")
    assert "+1.00" in script.paired_against(relative, absolute, "previous")
    absolute["meta"]["data"] = str(tmp_path / "other")
    with pytest.raises(SystemExit, match="meta.data differs"):
        script.paired_against(relative, absolute, "previous")


def test_the_header_names_compared_models_that_ran_another_step_count():
    script = _load_script()
    meta = _run({"case_1": 30.0})["meta"]
    assert script.steps_text(meta) == "5 steps"  # a run from before steps_by_method
    meta.update(steps=2, steps_by_method={"model": 2, "shipped": 5, "same": 2})
    assert script.steps_text(meta) == "2 steps (shipped 5)"
