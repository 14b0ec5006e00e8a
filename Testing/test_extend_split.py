"""scripts/extend_split.py: a base split extended by the new cases of a data folder, refusing unexpected counts."""

import json

from script_module import load_script

extend_split = load_script("extend_split")


def _data(tmp_path, names):
    data = tmp_path / "data"
    for n in names:
        (data / n).mkdir(parents=True)
    return data


def test_new_cases_are_appended_after_the_base_training_list(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"train": ["case_200", "case_100"], "validation": ["case_400"], "test": []}))
    data = _data(tmp_path, ["case_100", "case_200", "case_400", "case_7302", "case_7301"])
    out = tmp_path / "out.json"
    assert extend_split.main([str(base), str(data), str(out), "--train", "4", "--validation", "1"]) == 0
    split = json.loads(out.read_text())
    assert split == {"train": ["case_200", "case_100", "case_7301", "case_7302"], "validation": ["case_400"],
                     "test": []}


def test_a_half_generated_folder_is_refused_and_nothing_is_written(tmp_path, capsys):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"train": ["case_100"], "validation": ["case_400"], "test": []}))
    data = _data(tmp_path, ["case_100", "case_400", "case_7300"])
    out = tmp_path / "out.json"
    assert extend_split.main([str(base), str(data), str(out), "--train", "3", "--validation", "1"]) == 2
    assert not out.exists()
    assert "expected 3 training and 1 validation cases, found 2 and 1" in capsys.readouterr().err
