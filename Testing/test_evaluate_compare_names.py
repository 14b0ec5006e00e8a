"""`dcediff evaluate --compare model=OTHER` replaced the model's own row with OTHER's results while metrics.md still
named --model (and gave OTHER's step count as the model's); `--compare identity=OTHER` ran OTHER and then wrote the
identity baseline over its row; `--compare a=X --compare a=Y` kept Y alone (found by a bug hunt). Such names are now
refused before any case is read, and a name given twice is refused too."""

from pathlib import Path

import pytest

from DCEDiffLib.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"
MODELS = Path(__file__).resolve().parents[1] / "Resources" / "Models"
MODEL = MODELS / "dcediff_cpu_phantom.safetensors"
REGRESSION = MODELS / "dcediff_cpu_phantom_regression.safetensors"


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "case_a").mkdir(parents=True)
    (data / "case_a" / "t2w.nii.gz").symlink_to(SAMPLE / "t2w.nii.gz")
    return data


@pytest.mark.parametrize("name", ["model", "identity", "t1pre_gain", "mean_enhancement"])
def test_a_compare_name_of_an_evaluation_row_is_refused(tmp_path, capsys, name):
    out = tmp_path / "ev"
    code = main(["evaluate", "--model", str(MODEL), "--data", str(_data(tmp_path)), "--no-fid", "--no-regression",
                 "--compare", f"{name}={REGRESSION}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--compare {name}=...: '{name}' is the name of a row every evaluation writes" in err
    assert not out.exists() and not (tmp_path / ".ev.cache").exists()


def test_a_compare_name_given_twice_is_refused(tmp_path, capsys):
    out = tmp_path / "ev"
    code = main(["evaluate", "--model", str(MODEL), "--data", str(_data(tmp_path)), "--no-fid",
                 "--compare", f"other={REGRESSION}", "--compare", f"other={MODEL}", "--out", str(out)])
    assert code == 2
    assert "--compare other: given twice" in capsys.readouterr().err
    assert not out.exists()
