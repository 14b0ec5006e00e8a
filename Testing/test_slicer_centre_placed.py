"""The prostate centre from a markups node (scene_io.center_lps_from_markups) under slicer-core: only a placed
position counts. An ROI created in the selector but never placed sits at (0, 0, 0) RAS, and a point whose position
was cleared or marked missing keeps its old coordinates; (0, 0, 0) (the scanner's isocentre) usually lies inside the
T2W, so either used to centre the working grid there without a word instead of at the T2W's centre or an error."""

import sys
from pathlib import Path

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
    # the first *placed* point is the centre
    points.AddControlPoint(1.0, 2.0, 3.0)
    assert scene_io.center_lps_from_markups(points) == pytest.approx((-1.0, -2.0, 3.0))
