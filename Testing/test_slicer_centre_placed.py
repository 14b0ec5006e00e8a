"""The prostate centre from a markups node (scene_io.center_lps_from_markups) under slicer-core: only a placed
position counts. An ROI created in the selector but never placed sits at (0, 0, 0) RAS, and a point whose position
was cleared or marked missing keeps its old coordinates; (0, 0, 0) (the scanner's isocentre) usually lies inside the
T2W, so either used to centre the working grid there without a word instead of at the T2W's centre or an error."""

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_module import scene  # noqa: E402,F401  (a fresh MRML scene per test, autouse)


def test_an_roi_that_was_never_placed_is_refused_not_read_as_the_origin():
    roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "R")  # "Create new ROI" in the selector
    with pytest.raises(ValueError, match=r"prostate centre: R is not placed \(no control point"):
        scene_io.center_lps_from_markups(roi)
    roi.SetCenter(5.0, 6.0, 7.0)
    roi.SetSize(20.0, 20.0, 20.0)  # as drawn in a view
    assert scene_io.center_lps_from_markups(roi) == pytest.approx((-5.0, -6.0, 7.0))


@pytest.mark.parametrize("clear", ["UnsetNthControlPointPosition", "SetNthControlPointPositionMissing"])
def test_a_point_whose_position_was_cleared_is_not_used(clear):
    points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "P")
    points.AddControlPoint(10.0, 20.0, 30.0)
    getattr(points, clear)(0)
    with pytest.raises(ValueError, match="prostate centre: P has no placed point"):
        scene_io.center_lps_from_markups(points)
    # the placed point is the centre
    points.AddControlPoint(1.0, 2.0, 3.0)
    assert scene_io.center_lps_from_markups(points) == pytest.approx((-1.0, -2.0, 3.0))


def place_with_the_mouse(points, position_ras):
    """One click of Slicer's place mode in a slice view, through the real code that picks the control point it
    fills: ``vtkSlicerMarkupsWidget::UpdatePreviewPoint`` (Modules/Loadable/Markups/VTKWidgets/
    vtkSlicerMarkupsWidget.cxx) asks the display node's ``UpdateActiveControlPointWorld`` for the preview point at
    ``GetControlPointPlacementStartIndex()`` while the mouse moves, and ``PlacePoint`` sets that preview point
    defined on the click. Only the view (renderer, mouse event) is missing here: the event data carries the world
    position the view would have computed."""
    display = points.GetDisplayNode()
    event = slicer.vtkMRMLInteractionEventData()
    event.SetWorldPosition(list(position_ras))
    orientation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    preview = display.UpdateActiveControlPointWorld(points.GetControlPointPlacementStartIndex(), event, orientation,
                                                    "", "", points.PositionPreview)
    display.UpdateActiveControlPointWorld(preview, event, orientation, "", "", points.PositionDefined)


def test_placing_the_centre_again_moves_it_to_the_new_point():
    """The place button next to the selector (qSlicerMarkupsPlaceWidget, default ShowPlaceMultipleMarkupsOption) is
    never disabled for a point list (no required number of points: GetControlPointPlacementComplete() is false), and
    a placement appends a control point after the placed ones (vtkMRMLMarkupsDisplayNode::UpdateActiveControlPointWorld:
    "If active index is not valid, use the next undefined point, if none, create new point"). A user who places the
    centre, sees it is off and places it again has two points; the first-placed rule sent the old, wrong one to the
    engine without a word (the working grid centred on it, the prostate possibly cropped out)."""
    points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "C")  # "Create new point list"
    points.CreateDefaultDisplayNodes()
    place_with_the_mouse(points, (40.0, 50.0, 60.0))  # a first try, off the prostate
    assert scene_io.center_lps_from_markups(points) == pytest.approx((-40.0, -50.0, 60.0))
    place_with_the_mouse(points, (1.0, 2.0, 3.0))  # placed again, at the prostate
    assert points.GetNumberOfControlPoints() == 2  # Slicer kept the first try
    assert scene_io.center_lps_from_markups(points) == pytest.approx((-1.0, -2.0, 3.0))
    # under a parent transform the point is placed in world coordinates and read back in world coordinates
    shift = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    matrix = np.eye(4)
    matrix[:3, 3] = (5.0, -3.0, 2.0)
    shift.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    points.SetAndObserveTransformNodeID(shift.GetID())
    place_with_the_mouse(points, (-7.0, 8.0, 9.0))  # where the user clicked in the view (world RAS)
    assert scene_io.center_lps_from_markups(points) == pytest.approx((7.0, -8.0, 9.0))
