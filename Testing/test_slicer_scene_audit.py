"""What an adversarial audit of the module's scene code found (session 63), with real MRML nodes from slicer-core:

- the T2W deleted in the Data module while the engine ran (the panel's selectors are locked, the scene is not): the
  results were added all the same, named after the deleted node, at the top of the subject hierarchy, each with a
  node reference to a node no longer in the scene; an acquired DCE deleted meanwhile was still put in the comparison
  views, which then showed an empty column;
- an input the engine refused (e.g. a one-slice T2W: "is a 2D image") was named by the path of its temporary copy,
  ``<Slicer temp>/DCEDiff-…/inputs/t2w.nrrd``, deleted when the run ended, not by the volume node the user picked;
- a scalar volume node whose image data has dimensions but no voxel array (never allocated) gave numpy/VTK's
  ``'NoneType' object has no attribute 'GetDataType'`` instead of a message naming the input.

Real MRML nodes, real files and real engine subprocesses. Stand-ins, for what the slicer-core wheel has no Qt for:
the Qt stand-ins of Testing/test_slicer_module.py (``modules``), ``TimerStandIn`` (qt.QTimer), ``AppStandIn``
(``slicer.app``: a layout manager and ``processEvents``), ``slicer.util.resetSliceViews`` (needs the slice widgets) and
``SlicerAppStandIn`` of Testing/test_slicer_study_fill.py (``slicer.app`` for the real
``slicer.util.launchConsoleProcess``)."""

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402
import vtk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import process_runner as pr  # noqa: E402
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_contract import result_folder  # noqa: E402
from test_slicer_display import scene  # noqa: E402,F401  (the scene as Slicer's start-up sets it up)
from test_slicer_module import TimerStandIn, modules  # noqa: E402,F401  (the Qt stand-ins)
from test_slicer_study_fill import SlicerAppStandIn  # noqa: E402

CASE = ROOT / "Resources" / "SampleData" / "phantom_case"


def _ended_job(DCEDiff, work, t2w, acquired=None, outcomes=None):
    """A run whose engine has written ``work``/out and ended: the next timer tick (``_poll``) finishes it."""
    runner = pr.ProcessRunner([sys.executable, "-c", "print('done')"]).start()
    runner.wait(timeout=60)
    return DCEDiff._Job(runner, work, t2w, time.monotonic(), acquired is not None,
                        outcomes.append if outcomes is not None else None, TimerStandIn(), acquired=acquired)


def _volumes(scene):
    return [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]


def test_a_t2w_removed_from_the_scene_during_the_run_adds_nothing_and_says_so(modules, scene, tmp_path):
    DCEDiff, _ = modules
    logic = DCEDiff.DCEDiffLogic()
    work = tmp_path / "DCEDiff-run"
    t2w = result_folder(work / "out")  # what the engine wrote; t2w: the T2W the run was started on
    t2w.SetName("T2 AX")
    outcomes = []
    logic._job = _ended_job(DCEDiff, work, t2w, outcomes=outcomes)
    scene.RemoveNode(t2w)  # Data module → Delete, while the engine ran
    count = scene.GetNumberOfNodes()
    logic._poll()
    (outcome,) = outcomes
    assert isinstance(outcome, RuntimeError), outcome
    assert "T2W: 'T2 AX' was removed from the scene while DCEDiff ran" in str(outcome)
    assert "nothing was added" in str(outcome)
    assert scene.GetNumberOfNodes() == count and _volumes(scene) == []
    assert not logic.isRunning and not work.exists()


def test_an_acquired_dce_removed_during_the_run_is_not_put_in_the_comparison(modules, scene, monkeypatch, tmp_path):
    DCEDiff, _ = modules
    AppStandIn = types.SimpleNamespace(layoutManager=lambda: object(), processEvents=lambda: None)
    monkeypatch.setattr(slicer, "app", AppStandIn, raising=False)
    monkeypatch.setattr(slicer.util, "resetSliceViews", lambda: None)
    logic = DCEDiff.DCEDiffLogic()
    work = tmp_path / "DCEDiff-run"
    t2w = result_folder(work / "out")
    early, late = (scene_io.image_to_volume_node(scene_io.volume_node_to_image(t2w), name)
                   for name in ("DCE early", "DCE late"))
    removed_id = early.GetID()
    outcomes = []
    logic._job = _ended_job(DCEDiff, work, t2w, acquired={"early": early, "late": late}, outcomes=outcomes)
    scene.RemoveNode(early)
    logic._poll()
    (outcome,) = outcomes
    assert isinstance(outcome, DCEDiff.DCEDiffResult) and "synthetic_early" in outcome.nodes, outcome
    backgrounds = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode").GetBackgroundVolumeID()
                   for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]
    assert removed_id not in backgrounds, "a deleted volume was put in a comparison view (an empty column)"
    # the early row shows the T2W in its first column instead, the late row its acquired DCE
    assert t2w.GetID() in backgrounds and late.GetID() in backgrounds


def test_an_input_the_engine_refuses_is_named_by_its_volume_node_not_its_temporary_copy(modules, scene, monkeypatch,
                                                                                      tmp_path):
    """A real engine run (the shipped model; it stops at reading the inputs, a few seconds) on a one-slice T2W."""
    DCEDiff, _ = modules
    monkeypatch.setattr(slicer, "app", SlicerAppStandIn(tmp_path), raising=False)
    image = sitk.ReadImage(str(CASE / "t2w.nii.gz"), sitk.sitkFloat32)
    middle = image.GetSize()[2] // 2
    t2w = scene_io.image_to_volume_node(image[:, :, middle:middle + 1], "T2 AX one slice")
    pd, adc, t1pre = (scene_io.read_volume_node(CASE / f"{key}.nii.gz", key.upper()) for key in ("pd", "adc", "t1pre"))
    count = scene.GetNumberOfNodes()
    with pytest.raises(RuntimeError) as refused:
        DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1pre, steps=1, device="cpu", showResult=False,
                                       timeoutSeconds=300)
    message = str(refused.value)
    assert "is a 2D image" in message, message
    assert "(volume 'T2 AX one slice')" in message and "inputs/t2w.nrrd" not in message, message
    assert "DCEDiff-" not in message, message
    assert scene.GetNumberOfNodes() == count and not list(tmp_path.glob("DCEDiff-*"))


def test_a_volume_whose_image_data_holds_no_voxel_array_is_refused_by_name(scene):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not allocated")
    data = vtk.vtkImageData()
    data.SetDimensions(8, 8, 4)  # dimensions, but AllocateScalars never called
    node.SetAndObserveImageData(data)
    with pytest.raises(ValueError, match="ADC: not allocated has no image data"):
        scene_io.volume_node_to_image(node, "ADC")
    assert node.GetImageData() is data and data.GetPointData().GetScalars() is None  # the input is left as it was
    # a node with voxels is still exported (the check asks for an array, not for more)
    values = slicer.util.addVolumeFromArray(np.ones((4, 8, 8), np.float32), name="allocated")
    assert scene_io.volume_node_to_image(values, "ADC").GetSize() == (8, 8, 4)
