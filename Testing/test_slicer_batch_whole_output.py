"""DCEDiffBatch.py writes its --out whole or not at all. It wrote the result files one by one into --out: a write
that failed part way (a full disk, an unwritable file) left the .nrrd files written before it in --out without
DCEDiff.json, the file that marks them synthetic. Real MRML nodes and storage nodes of the slicer-core wheel; the
failing write is real (a result volume node whose image data holds no voxels, which Slicer's volume storage node
fails to write); Slicer's qSlicerCoreIOManager is the named stand-in of Testing/test_slicer_scene_hunt.py
(slicer-core has no Qt application)."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_module import modules  # noqa: E402,F401  (the Qt stand-ins of the module tests)
from test_slicer_scene import scene  # noqa: E402,F401  (a fresh scene per test, autouse)
from test_slicer_scene_hunt import CoreIOManagerStandIn  # noqa: E402  (Slicer's saveNodes, as that file uses it)


def failing_result(DCEDiff):
    """A result whose first node writes and whose second cannot (image data without voxels: WriteData fails)."""
    import vtk

    early = slicer.util.addVolumeFromArray(np.ones((3, 4, 5), dtype=np.float32), name="synthetic_early")
    late = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "synthetic_late")
    late.SetAndObserveImageData(vtk.vtkImageData())
    return DCEDiff.DCEDiffResult({"synthetic_early": early, "synthetic_late": late}, {"model": "m"}, 1.0)


@pytest.mark.parametrize("existing", [False, True], ids=["new-out", "empty-out"])
def test_a_write_failing_part_way_leaves_no_partial_output(modules, tmp_path, monkeypatch, existing):
    DCEDiff, DCEDiffBatch = modules
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(coreIOManager=CoreIOManagerStandIn), raising=False)
    out = tmp_path / "results"
    if existing:
        out.mkdir()
    with pytest.raises(RuntimeError, match=r"could not write .*results/synthetic_late\.nrrd") as failure:
        DCEDiffBatch.finishRun(failing_result(DCEDiff), out)
    if existing:
        assert out.is_dir() and list(out.iterdir()) == [], "the empty --out given must stay as it was"
    else:
        assert not out.exists(), f"a half-written --out is left: {sorted(p.name for p in out.iterdir())}"
    assert [p.name for p in tmp_path.iterdir()] == (["results"] if existing else []), "a temporary folder is left"
    assert f"nothing was written to --out {out}" in str(failure.value)


def test_the_whole_output_appears_when_every_write_succeeds(modules, tmp_path, monkeypatch):
    """The same result without the failing node: --out holds the volume and its marks file, and nothing else is
    left beside it (the temporary folder became --out)."""
    DCEDiff, DCEDiffBatch = modules
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(coreIOManager=CoreIOManagerStandIn), raising=False)
    result = failing_result(DCEDiff)
    del result.nodes["synthetic_late"]
    out = tmp_path / "results"
    assert DCEDiffBatch.finishRun(result, out) == DCEDiffBatch.EXIT_OK
    assert sorted(p.name for p in out.iterdir()) == [DCEDiffBatch.MARKS_FILE, "synthetic_early.nrrd"]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
