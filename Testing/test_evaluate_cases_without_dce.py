"""`dcediff evaluate` on a data folder in which a case has no acquired DCE scored the other cases only and said
nothing: metrics.md read "model 1" for a folder of two, with no word of the case left out (found by a bug hunt;
`dcediff train` refuses such a case by name). It is now said on stderr and recorded in metrics.json
(meta.cases_without_acquired_dce) and metrics.md."""

import json
import shutil

from DCEDiffLib.cli import main
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

from random_model import save_random_model


def test_a_case_without_acquired_dce_is_named_as_not_scored(tmp_path, capsys):
    data = tmp_path / "data"
    for index, name in enumerate(("case_a", "case_b")):
        shutil.copytree(SAMPLE_CASE_DIR, data / name)
        record = json.loads((data / name / "case.json").read_text(encoding="utf-8"))
        record["seed"] = 920000 + index  # two patients, not two copies of one
        (data / name / "case.json").write_text(json.dumps(record), encoding="utf-8")
    for target in ("dce_early", "dce_late"):
        (data / "case_b" / f"{target}.nii.gz").unlink()
    model = save_random_model(tmp_path / "model")
    out = tmp_path / "out"
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--steps", "2", "--no-regression",
                 "--no-fid", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 of the 2 cases have no acquired early/late DCE and are not scored (case_b)" in err
    meta = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["meta"]
    assert meta["cases"] == ["case_a"] and meta["cases_without_acquired_dce"] == ["case_b"]
    assert "**not scored**: 1 case(s) without acquired early/late DCE (case_b)" in (out / "metrics.md").read_text(
        encoding="utf-8")
