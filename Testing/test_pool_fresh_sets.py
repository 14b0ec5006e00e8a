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
