"""session-56 mutation audit round 15: rules of DCEDiff/DCEDiffSlicerLib/scene_io.py that no earlier test could fail.

Real MRML nodes from the slicer-core wheel (no Slicer application, no ../shared data); each test names the mutation
it kills."""

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_scene import scene  # noqa: E402,F401  (a fresh scene per test, autouse)


def translation(name, shift_ras):
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    matrix = np.eye(4)
    matrix[:3, 3] = shift_ras
    node.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    return node


def test_the_centre_is_the_last_placed_point_of_a_point_list():
    """center_lps_from_markups: "a point list's last placed point". Kills placed[-1] -> placed[0] (S09; the rule was
    the first placed point until placing the centre again was found to add a point, see
    Testing/test_slicer_centre_placed.py): with three placed points the last one is taken, and an unplaced last
    point is skipped for the last placed one."""
    points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "centre")
    points.AddControlPoint(10.0, 20.0, 30.0)
    points.AddControlPoint(-1.0, -2.0, 3.0)
    points.AddControlPoint(7.0, 8.0, 9.0)
    assert scene_io.center_lps_from_markups(points) == pytest.approx((-7.0, -8.0, 9.0))
    points.UnsetNthControlPointPosition(2)
    assert scene_io.center_lps_from_markups(points) == pytest.approx((1.0, 2.0, 3.0))


def test_an_roi_centre_is_taken_where_slicer_shows_it_under_its_parent_transform():
    """center_lps_from_markups: "an ROI's centre ... (world coordinates)". Kills GetCenterWorld -> GetCenter (S10):
    an ROI under a translation is shown shifted by it; the engine must get that centre, in LPS."""
    roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    roi.SetCenter(-4.0, 7.0, -9.0)
    roi.SetSize(20.0, 20.0, 20.0)
    roi.SetAndObserveTransformNodeID(translation("shift", (5.0, -3.0, 2.0)).GetID())
    # world RAS = (1, 4, -7); LPS = (-R, -A, S)
    assert scene_io.center_lps_from_markups(roi) == pytest.approx((-1.0, -4.0, -7.0))


def test_removing_a_result_node_removes_its_display_and_storage_nodes(tmp_path):
    """remove_nodes: "Remove nodes and their display and storage nodes from their scene". Kills dropping the helper
    removal (S21): an orphan display node, storage node and colour-legend node stay in the scene (and in a saved
    .mrml) after the result is gone."""
    import SimpleITK as sitk

    path = tmp_path / "synthetic_early.nii.gz"
    sitk.WriteImage(sitk.Image(6, 5, 4, sitk.sitkFloat32) + 2.0, str(path))
    before = {slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())}
    node = scene_io.read_volume_node(path, "T2W synthetic early DCE")
    node.AddDefaultStorageNode()
    helpers = [node.GetDisplayNode(), node.GetStorageNode()]
    assert all(h is not None and h.GetScene() is slicer.mrmlScene for h in helpers)
    scene_io.remove_nodes([node])
    assert node.GetScene() is None
    assert all(h.GetScene() is None for h in helpers)
    after = {slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())}
    assert after <= before


def test_a_node_loaded_from_dicom_is_not_marked_where_there_is_no_dicom_database(monkeypatch):
    """node_source looks a DICOM-loaded node's first file up in Slicer's DICOM database; a Slicer without one (the
    DICOM module not loaded: no slicer.dicomDatabase, or no database set up: None) leaves the node not marked,
    as a file the database no longer has does, instead of failing the export of the input. Audit round 16: kills
    the None check dropped (C03) and slicer.dicomDatabase read without a default (C04)."""
    from DCEDiffLib.data_source import NOT_MARKED
    from DCEDiffSlicerLib.study_fill import INSTANCE_UIDS_ATTRIBUTE

    node = slicer.util.addVolumeFromArray(np.ones((4, 5, 6), dtype=np.float32), name="T2W")
    node.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, "2.25.11 2.25.12")
    monkeypatch.delattr(slicer, "dicomDatabase", raising=False)
    assert scene_io.node_source(node) == NOT_MARKED
    monkeypatch.setattr(slicer, "dicomDatabase", None, raising=False)
    assert scene_io.node_source(node) == NOT_MARKED


def test_a_node_loaded_from_a_patients_dicom_files_is_not_marked(tmp_path, monkeypatch):
    """node_source: for a node loaded from DICOM, 'the mark of its first file in Slicer's DICOM database'; a file in
    the database is not a phantom for being there. A patient's slice (no phantom mark) leaves the node not marked,
    so its result keeps the out-of-distribution checks. Audit round 16: kills any database file taken for a
    phantom's (C06)."""
    import SimpleITK as sitk

    from DCEDiffLib.data_source import NOT_MARKED, input_source
    from DCEDiffSlicerLib.study_fill import INSTANCE_UIDS_ATTRIBUTE
    from test_slicer_study_fill import DicomDatabaseStandIn

    path = tmp_path / "IM0001.dcm"
    sitk.WriteImage(sitk.Image(8, 8, sitk.sitkInt16) + 100, str(path))
    assert input_source(path) == NOT_MARKED
    database = DicomDatabaseStandIn(tmp_path)
    (uid,) = database.files
    assert database.fileForInstance(uid) == str(path)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    node = slicer.util.addVolumeFromArray(np.ones((4, 5, 6), dtype=np.float32), name="T2W")
    node.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, uid)
    assert scene_io.node_source(node) == NOT_MARKED
