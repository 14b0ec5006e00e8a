"""scripts/pool_fresh_sets.py: one estimate over several fresh sets scored with one configuration."""

import json

import numpy as np
import pytest

from script_module import load_script


def _set(data, lesion_r, prostate_r=0.8, model="m.safetensors", seed=0):
    """A metrics.json document as `dcediff evaluate` writes it, reduced to what the pooling reads."""
    rows = []
    for i, r in enumerate(lesion_r):
        phase = {"enhancement": {"prostate": {"pearson": prostate_r},
                                 "lesion": {} if r is None else {"pearson": r}},
                 "lesions": {"per_lesion": [] if r is None else [{"voxels": 50}]}}
        rows.append({"case": f"case_{i:03d}", "early": phase, "late": phase})
    return {"meta": {"model": model, "sampler": "dpmpp", "steps": 5, "samples": 1, "seed": seed, "data": str(data)},
            "cases": {"model": rows}}


def _write(path, document):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_pooled_median_counts_every_patient_of_every_set_once(tmp_path):
    script = load_script("pool_fresh_sets")
    sets = [_set(tmp_path / "a", [0.1, 0.2, None]), _set(tmp_path / "b", [0.6, 0.7, 0.9])]
    table = script.pooled_table(sets, script.DEFAULT_GOALS)
    lesion_early = next(line for line in table.splitlines() if line.startswith("| lesion | early"))
    cells = [c.strip() for c in lesion_early.strip("|").split("|")]
    assert cells[2] == "5"                                   # the patient without a lesion r is left out
    assert cells[3].startswith("0.60 [")                     # median of 0.1, 0.2, 0.6, 0.7, 0.9
    assert cells[4].startswith("0.60 (≥ 0.5)")               # 3 of 5 at or above the lesion goal
    assert cells[5] == "0.15, 0.70"                          # each set's own median
    low, high = (float(x) for x in cells[3].split("[")[1].rstrip("]").split(","))
    assert 0.1 <= low <= 0.6 <= high <= 0.9


def test_interval_is_a_bootstrap_of_the_median():
    script = load_script("pool_fresh_sets")
    same = script.median_interval(np.full(12, 0.4))
    assert same == pytest.approx((0.4, 0.4, 0.4))
    spread = script.median_interval(np.linspace(0.0, 1.0, 41))
    assert spread[0] == pytest.approx(0.5) and spread[1] < 0.5 < spread[2]


def test_refuses_other_settings_and_a_data_folder_counted_twice(tmp_path):
    script = load_script("pool_fresh_sets")
    first = _write(tmp_path / "1.json", _set(tmp_path / "a", [0.5]))
    other_model = _write(tmp_path / "2.json", _set(tmp_path / "b", [0.5], model="other.safetensors"))
    other_seed = _write(tmp_path / "3.json", _set(tmp_path / "b", [0.5], seed=1))
    again = _write(tmp_path / "4.json", _set(tmp_path / "a", [0.7]))
    with pytest.raises(SystemExit, match="meta.model"):
        script.load_sets([first, other_model])
    with pytest.raises(SystemExit, match="meta.seed"):
        script.load_sets([first, other_seed])
    with pytest.raises(SystemExit, match="count twice"):
        script.load_sets([first, again])


def test_lesion_groups_read_each_case_json_and_are_skipped_without_them(tmp_path):
    script = load_script("pool_fresh_sets")
    document = _set(tmp_path / "d", [0.3, 0.9])
    assert script.lesion_group_table([document]) is None       # no case.json there: no group table
    for i, kind in enumerate(("less_enhancing", "textbook")):
        _write(tmp_path / "d" / f"case_{i:03d}" / "case.json", {"lesions": [{"kind": kind}]})
    table = script.lesion_group_table([document])
    assert "| a less-enhancing lesion | 1 | 0.30 | 0.30 |" in table
    assert "| textbook, >= 20 voxels | 1 | 0.90 | 0.90 |" in table


def test_difference_of_two_pooled_families_is_this_minus_other(tmp_path):
    script = load_script("pool_fresh_sets")
    this = [_set(tmp_path / "b", [0.8, 0.9, 0.7], prostate_r=0.9)]
    other = [_set(tmp_path / "a", [0.2, 0.3, 0.4], prostate_r=0.7)]
    for document, psnr in ((this[0], 29.0), (other[0], 30.0)):
        for entry in document["cases"]["model"]:
            entry["early"] = {**entry["early"], "whole": {"psnr": psnr}}
            entry["late"] = entry["early"]
    table = script.difference_table(this, other)
    assert "| whole-grid PSNR (dB, mean) | early | -1.00 [-1.00, -1.00] | 29.00 (n 3) | 30.00 (n 3) |" in table
    assert "| prostate r (median) | late | +0.20 [+0.20, +0.20] |" in table
    lesion = next(line for line in table.splitlines() if line.startswith("| lesion r (median) | early"))
    assert lesion.split("|")[3].strip().startswith("+0.50 [")      # median 0.8 − median 0.3


def test_predictor_table_compares_the_model_with_the_best_single_input(tmp_path):
    script = load_script("pool_fresh_sets")
    document = _set(tmp_path / "a", [0.6, 0.2])
    assert script.predictor_table([document]) is None                  # no protocol rows: no table
    linear = [{"t2w": 0.1, "pd": 0.2, "adc": 0.5, "t1pre": 0.3}, {"t2w": 0.4, "pd": 0.1, "adc": 0.1, "t1pre": 0.1}]
    document["meta"]["protocol"] = {"per_case": [
        {"case": f"case_{i:03d}", "linear_predictors": {p: {"lesion": linear[i]} for p in ("early", "late")}}
        for i in range(2)]}
    table = script.predictor_table([document])
    row = next(line for line in table.splitlines() if line.startswith("| lesion | early"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == ["2", "0.40", "0.25", "0.15", "0.30", "0.20", "0.45", "0.50"]  # ahead on 1 of 2 (0.6 > 0.5)
