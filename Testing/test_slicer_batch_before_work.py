"""DCEDiffBatch.py refuses, before loading anything or starting the engine, what would waste a whole run or give a
wrong one: the same file for two roles (``--pd t2w.nii.gz``: the synthesis ran with the T2W as PD and exited 0, where
``dcediff synthesize`` refuses it) and an --out that cannot be created (a path under an existing file: the whole
synthesis ran, then "[Errno 20] Not a directory" without naming --out). Qt stand-ins of Testing/test_slicer_module.py;
the logic's process() is replaced by a recorder, so nothing runs."""

import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_module import CASE, modules, scene  # noqa: E402,F401  (fixtures)


@pytest.fixture
def recorded(modules, monkeypatch):
    DCEDiff, DCEDiffBatch = modules
    calls = []
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path, properties=None: calls.append(("load", path)))
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, **kwargs: None)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", lambda self, *a, **k: calls.append("process")
                        or DCEDiff.DCEDiffResult({}, {}, 1.0, cancelled=True))
    return DCEDiffBatch, calls


def inputs(**replace):
    files = {k: str(CASE / f"{k}.nii.gz") for k in ("t2w", "pd", "adc", "t1pre")}
    files.update(replace)
    return [f"--{k}={v}" for k, v in files.items()]


@pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")
def test_one_file_in_two_roles_is_refused_before_anything_is_loaded(recorded, tmp_path, capsys):
    DCEDiffBatch, calls = recorded
    code = DCEDiffBatch.main(inputs(pd=str(CASE / "t2w.nii.gz")) + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR and calls == [], (calls, err)
    assert "--t2w and --pd are the same series" in err, err
    # the DCE's own pre-contrast frame may be the T1-pre itself (one series)
    dce = [f"--dce-early={CASE / 'dce_early.nii.gz'}", f"--dce-late={CASE / 'dce_late.nii.gz'}",
           f"--dce-baseline={CASE / 't1pre.nii.gz'}"]
    assert DCEDiffBatch.main(inputs() + dce + ["--out", str(tmp_path / "out")]) == DCEDiffBatch.EXIT_CANCELLED
    assert "process" in calls


@pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")
def test_an_output_folder_that_cannot_be_created_is_refused_before_the_run(recorded, tmp_path, capsys):
    DCEDiffBatch, calls = recorded
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file, a_file / "out"):
        calls.clear()
        code = DCEDiffBatch.main(inputs() + ["--out", str(out)])
        err = capsys.readouterr().err
        assert code == DCEDiffBatch.EXIT_ERROR and calls == [], (out, calls, err)
        assert f"--out {out}:" in err, err
    assert DCEDiffBatch.main(inputs() + ["--out", str(tmp_path / "new" / "out")]) == DCEDiffBatch.EXIT_CANCELLED


def test_a_dicom_series_folder_as_an_input_says_what_takes_one(recorded, tmp_path, capsys):
    """A folder (a DICOM series, the likeliest) given as an input was refused as 'is not a file' only; the refusal
    now says batch mode reads volume files and names the engine command that reads series folders and studies."""
    DCEDiffBatch, calls = recorded
    folder = tmp_path / "T2W_DICOM"
    folder.mkdir()
    code = DCEDiffBatch.main(inputs(t2w=str(folder)) + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR and calls == [], (calls, err)
    assert f"(--t2w): {folder} is not a file" in err and "dcediff synthesize" in err and "--study" in err, err
    assert not (tmp_path / "out").exists()
