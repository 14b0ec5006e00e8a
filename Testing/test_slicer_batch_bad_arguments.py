"""DCEDiffBatch.py refuses by name, before the engine starts, three inputs that a batch-mode audit found going
through or refused late: a NIfTI input with NaN voxels (Slicer's reader loads them as 0, so the run exited 0 where
``dcediff synthesize`` refuses the file), a ``--timeout`` of 0, below 0 or nan (the engine was started and stopped,
"did not finish within 0 s" for -5; nan meant no limit) and a ``--center`` that is nan/inf or outside the T2W (the
engine refused it after loading the model, in LPS, naming no option).

Stand-ins: the Qt side of DCEDiff.py (Testing/test_slicer_module.py's); ``slicer.util.loadVolume`` (Slicer's IO
manager is not in the slicer-core wheel): a recorder, or the module's own SimpleITK reader
(``scene_io.read_volume_node``) where the test needs the T2W's geometry; the logic's ``process`` is a recorder, so no
engine runs."""

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_module import CASE, modules, scene  # noqa: E402,F401  (fixtures)
from test_slicer_batch_before_work import inputs  # noqa: E402  (the four sample-case inputs as options)

pytestmark = pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")


@pytest.fixture
def recorded(modules, monkeypatch):
    """(DCEDiffBatch, calls): ``calls`` records each load ("load", path) and the "process" call."""
    DCEDiff, DCEDiffBatch = modules
    from DCEDiffSlicerLib import scene_io

    calls = []

    def load(path, properties=None):
        calls.append(("load", path))
        return scene_io.read_volume_node(path, properties["name"])

    monkeypatch.setattr(slicer.util, "loadVolume", load)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, **kwargs: None)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", lambda self, *a, **k: calls.append("process")
                        or DCEDiff.DCEDiffResult({}, {}, 1.0, cancelled=True))
    return DCEDiffBatch, calls


def test_a_nifti_input_with_nan_voxels_is_refused_by_name_before_anything_is_loaded(recorded, tmp_path, capsys):
    import SimpleITK as sitk

    DCEDiffBatch, calls = recorded
    image = sitk.ReadImage(str(CASE / "pd.nii.gz"), sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(image)
    values[2, 10:12, 10:15] = np.nan
    holed = sitk.GetImageFromArray(values)
    holed.CopyInformation(image)
    path = tmp_path / "pd_nan.nii.gz"
    sitk.WriteImage(holed, str(path))
    assert not np.isnan(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).any()  # ITK reads them as 0
    code = DCEDiffBatch.main(inputs(pd=str(path)) + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR and calls == [], (calls, err)
    assert f"(--pd): {path} has 10 NaN or infinite voxels" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("timeout", ["0", "-5", "nan"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused_before_the_run(recorded, tmp_path, capsys,
                                                                                       timeout):
    DCEDiffBatch, calls = recorded
    code = DCEDiffBatch.main(inputs() + ["--timeout", timeout, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR and calls == [], (calls, err)
    assert f"--timeout {timeout}: expected a positive number of seconds" in err, err


def test_a_centre_outside_the_t2w_is_refused_by_name_in_ras_before_the_run(recorded, tmp_path, capsys):
    DCEDiffBatch, calls = recorded
    for center in ("nan,0,0", "1,2,inf"):
        code = DCEDiffBatch.main(inputs() + ["--center", center, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == DCEDiffBatch.EXIT_ERROR and calls == [], (center, calls, err)
        assert f"--center {center!r}: expected three numbers" in err, err
    # RAS (1, 2, 3) lies inside the oblique T2W's RAS bounding box but outside its voxel box (the engine's test)
    code = DCEDiffBatch.main(inputs() + ["--center", "1,2,3", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR and "process" not in calls, (calls, err)
    assert "--center 1,2,3: outside the T2W" in err and "centred at R,A,S -4.7,-15.5,32.7 mm" in err, err
    calls.clear()
    # the T2W's own centre, in RAS: the run goes on
    assert DCEDiffBatch.main(inputs() + ["--center", "-4.7,-15.5,32.7", "--out", str(tmp_path / "out")]) \
        == DCEDiffBatch.EXIT_CANCELLED
    assert "process" in calls
