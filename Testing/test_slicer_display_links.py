"""What linking the comparison views (DCEDiff/DCEDiffSlicerLib/result_display.py: ``SetLinkedControl`` on their
slice composite nodes, view group 0) does in Slicer, under Slicer's own ``vtkMRMLSliceLinkLogic`` and
``vtkMRMLSliceLogic`` (real, from the slicer-core wheel). The slice view controller (Qt) cannot run here; the calls
it makes on a volume choice (qMRMLSliceControllerWidget.cxx: Start/EndSliceCompositeNodeInteraction around
SetBackgroundVolumeID) and on a scroll are made here the same way. docs/slicer.md describes the result."""

import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import result_display as rd  # noqa: E402
from test_slicer_display import make_result, scene  # noqa: E402,F401  (Slicer's start-up scene)


def slice_logic(name):
    """The slice logic Slicer's layout manager makes for a slice view (it finds or makes the composite node)."""
    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLScene(slicer.mrmlScene)
    logic.SetSliceNode(slicer.mrmlScene.GetSingletonNode(name, "vtkMRMLSliceNode"))
    return logic


def test_linked_comparison_views_share_the_slice_and_zoom_and_a_volume_chosen_in_one_of_them():
    """Slicer's link (vtkMRMLSliceLinkLogic) broadcasts a linked view's slice position and field of view to the
    other slice views of its view group, and a background, foreground or label volume (and opacity) chosen in its
    controller to every slice composite node of the group: all comparison views, and Slicer's own Red view, which
    shares view group 0. The module's docs said "linked for slice, pan and zoom" only."""
    link = slicer.vtkMRMLSliceLinkLogic()
    link.SetMRMLScene(slicer.mrmlScene)
    red = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceNode", "Red")   # Slicer's own axial view
    red.SetLayoutName("Red")
    red.SetOrientationToAxial()
    logics = []
    try:
        t2w, nodes, acquired = make_result(with_acquired=True)
        summary = rd.show_comparison(nodes, acquired, reference=t2w)
        logics = [slice_logic(name) for name in list(summary["views"]) + ["Red"]]
        acquired_early, synthetic_late = logics[0], logics[list(summary["views"]).index("DCEDiffSyntheticLate")]
        # a scroll and a zoom in one view (the slice view's interactor: Start/EndSliceNodeInteraction)
        acquired_early.StartSliceNodeInteraction(slicer.vtkMRMLSliceNode.SliceToRASFlag
                                                 | slicer.vtkMRMLSliceNode.FieldOfViewFlag)
        acquired_early.SetSliceOffset(2.5)
        acquired_early.GetSliceNode().SetFieldOfView(40.0, 40.0, 1.0)
        acquired_early.EndSliceNodeInteraction()
        for logic in logics[1:]:
            assert logic.GetSliceOffset() == pytest.approx(2.5), logic.GetSliceNode().GetName()
            assert logic.GetSliceNode().GetFieldOfView()[0] == pytest.approx(40.0), logic.GetSliceNode().GetName()
        # a background volume chosen in the controller of one view is put in every view of the group
        synthetic_late.StartSliceCompositeNodeInteraction(slicer.vtkMRMLSliceCompositeNode.BackgroundVolumeFlag)
        synthetic_late.GetSliceCompositeNode().SetBackgroundVolumeID(t2w.GetID())
        synthetic_late.EndSliceCompositeNodeInteraction()
        backgrounds = {logic.GetSliceNode().GetName(): logic.GetSliceCompositeNode().GetBackgroundVolumeID()
                       for logic in logics}
        assert backgrounds == {name: t2w.GetID() for name in backgrounds} and "Red" in backgrounds
        # the overlays are left: only what was chosen is broadcast
        composite = logics[list(summary["views"]).index("DCEDiffResidualEarly")].GetSliceCompositeNode()
        assert composite.GetForegroundVolumeID() == nodes["residual_early"].GetID()
    finally:
        for logic in logics:
            logic.SetMRMLScene(None)
        link.SetMRMLScene(None)
