"""`dcediff evaluate --out DATA/CASE/ev` wrote its results, and its default case cache (.ev.cache, ~10 MB a case),
into the data folder it read, inside a case folder even (found by a bug hunt; `dcediff train` refuses the same
--out). It is refused before any case is read, naming both options, and the data folder is left as it was."""

from pathlib import Path

import pytest

from DCEDiffLib.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"
MODEL = Path(__file__).resolve().parents[1] / "Resources" / "Models" / "dcediff_cpu_phantom.safetensors"


@pytest.mark.parametrize("where", ["data", "case"])
def test_an_output_folder_inside_the_data_folder_is_refused(tmp_path, capsys, where):
    data = tmp_path / "data"
    (data / "case_a").mkdir(parents=True)
    (data / "case_a" / "t2w.nii.gz").symlink_to(SAMPLE / "t2w.nii.gz")
    out = data / "ev" if where == "data" else data / "case_a" / "ev"
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    code = main(["evaluate", "--model", str(MODEL), "--data", str(data), "--out", str(out), "--no-fid"])
    assert code != 0
    assert f"--out {out}: lies inside --data {data}" in capsys.readouterr().err
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
