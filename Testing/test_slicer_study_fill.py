""""Fill from study" (DCEDiff/DCEDiffSlicerLib/study_fill.py and the module's button) under the slicer-core wheel.

A phantom exam is exported as a DICOM study (DCEDiffLib/phantom/study_export.py: DCE as one series per time point,
no VIBE, so the T1-pre is the last DCE frame before contrast arrival), and every series becomes a real MRML scalar
volume node carrying ``DICOM.instanceUIDs`` as Slicer's DICOM module sets it. Test doubles, named as such:
``DicomDatabaseStandIn`` for ctkDICOMDatabase (a Qt object; it maps SOP Instance UIDs to the exported files, read
from their headers) and, for the button, the Qt widget stand-ins of Testing/test_slicer_module.py.
"""

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import study_fill  # noqa: E402
from DCEDiffLib.dicom_study import scan_study  # noqa: E402
from DCEDiffLib.phantom.generator import generate_case  # noqa: E402
from DCEDiffLib.phantom.study_export import write_phantom_study  # noqa: E402
from test_slicer_module import ParameterNodeStandIn, make_widget, modules  # noqa: E402,F401  (fixture)

FEW = ("localizer", "t2_sag", "t2_cor", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb", "vibe")


class DicomDatabaseStandIn:
    """Test double of ctkDICOMDatabase (slicer.dicomDatabase): fileForInstance(uid) → the file, "" if unknown."""

    def __init__(self, folder):
        self.files = {}
        for path in Path(folder).rglob("*.dcm"):
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            self.files[reader.GetMetaData("0008|0018").strip()] = str(path)

    def fileForInstance(self, uid):
        return self.files.get(uid, "")


class TryWithErrorDisplayStandIn:
    """Test double of slicer.util.tryWithErrorDisplay (a Qt message box and wait cursor): lets errors through."""

    def __init__(self, message, waitCursor=False):
        self.message = message

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return False


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    case = generate_case(3)
    keep = list(range(0, len(case.params["dce"]["frame_times_s"]), 8))      # 5 DCE frames: fewer files
    params = json.loads(json.dumps(case.params))
    params["dce"]["frame_times_s"] = [case.params["dce"]["frame_times_s"][i] for i in keep]
    case = dataclasses.replace(case, params=params,
                               dce_series=sitk.JoinSeries([case.dce_series[:, :, :, i] for i in keep]))
    root = tmp_path_factory.mktemp("study") / "P-1"
    expected = write_phantom_study(case, root, omit=FEW, patient_id="P-1")
    return root, expected, DicomDatabaseStandIn(root)


@pytest.fixture(autouse=True)
def scene():
    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


def load_as_slicer_does(root, database, scene, skip=()):
    """One scalar volume node per series, named like Slicer's DICOM loader names them, with DICOM.instanceUIDs
    (plus a volume that did not come from DICOM). Returns series number → node."""
    uid_of = {path: uid for uid, path in database.files.items()}
    nodes = {}
    for series in scan_study(root).series:
        if series.description in skip:
            continue
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{series.number}: {series.description}")
        node.SetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE, " ".join(uid_of[f.path] for f in series.files))
        nodes[series.number] = node
    scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "a NIfTI file")
    return nodes


def test_fill_picks_every_role_among_the_loaded_volume_nodes(study, scene):
    root, expected, database = study
    nodes = load_as_slicer_does(root, database, scene)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    for role in ("t2w", "pd", "adc"):
        assert fill.nodes[role] is nodes[expected[role]], role
    for role in ("dce_early", "dce_late"):
        assert fill.nodes[role] is nodes[expected[role][0]], role
    # no VIBE: the T1-pre is the DCE frame before contrast arrival, a volume node of its own (one series per frame)
    t1pre = fill.nodes["t1pre"]
    assert t1pre.GetName().startswith(f"{expected['dce_numbers'][0]}: Twist_dynamic")
    assert fill.missing == [] and any(line.startswith("t1pre") and "before contrast arrival" in line
                                      for line in fill.lines)
    assert fill.message().startswith("Filled from the study (patient P-1, study 2.25.")


def test_a_role_that_is_not_loaded_is_named_and_the_rest_is_filled(study, scene):
    root, expected, database = study
    nodes = load_as_slicer_does(root, database, scene, skip=("ep2d_diff_tra_DYNDIST_ADC",))
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert fill.missing == ["adc"] and fill.nodes["t2w"] is nodes[expected["t2w"]]
    assert "Not found: ADC (select by hand)." in fill.message()
    p = ParameterNodeStandIn(t2w=None, pd=None, adc="kept", t1pre=None, dceEarly="old", dceLate="old")
    study_fill.apply_fill(p, fill)
    assert p.adc == "kept" and p.t2w is nodes[expected["t2w"]] and p.dceEarly is fill.nodes["dce_early"]


def test_no_volume_from_dicom_is_a_clear_error(study, scene):
    _, _, database = study
    scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "a NIfTI file")
    with pytest.raises(ValueError, match="no volume in the scene was loaded from DICOM .*DICOM.instanceUIDs"):
        study_fill.fill_from_study(scene, database.fileForInstance)


def test_the_button_fills_the_selectors_through_the_logic(modules, study, scene, monkeypatch):
    DCEDiff, _ = modules
    root, expected, database = study
    nodes = load_as_slicer_does(root, database, scene)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", TryWithErrorDisplayStandIn)
    widget, p = make_widget(DCEDiff, monkeypatch)
    widget.onFillFromStudy()
    assert p.t2w is nodes[expected["t2w"]] and p.adc is nodes[expected["adc"]]
    assert p.dceLate is nodes[expected["dce_late"][0]] and p.t1pre is not None
    assert widget.ui.statusLabel.text.startswith("Filled from the study")
    assert any(line.startswith("t2w") for line in widget.ui.logTextEdit.lines)
