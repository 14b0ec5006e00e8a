"""A DCEDiff result exported with Slicer's DICOM module (Export to DICOM → DICOMScalarVolumePlugin) says it is
synthetic: the result nodes' subject-hierarchy items carry the ``DICOM.<tag>`` attributes that the export reads
(DCEDiff/DCEDiffSlicerLib/scene_io.py, ``tag_for_dicom_export``), and the items sit in the T2W's study, whose study
and patient tags the export copies. Real slicer-core MRML scene and subject hierarchy node.

Stand-in: ``exported_series_tags`` is the test's copy of how Slicer fills an exportable's series tags
(DICOMScalarVolumePlugin.examineForExport's defaults, then qSlicerDICOMTagEditorWidget::setExportables' rule: a
default tag is replaced by the series item's "DICOM.<tag>" attribute). The real export needs Slicer's Qt widgets
and the CreateDICOMSeries CLI, which do not run under slicer-core; the source lines are cited in scene_io.py."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_module import scene  # noqa: E402,F401  (fixture: a fresh scene)
from test_slicer_saved_results import by_name, result_folder, save_bundle_and_reopen  # noqa: E402

# Slicer's Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py:654-667 (main 583e9b3): the series tags
EXPORT_DEFAULTS = {"SeriesDescription": "No series description", "Modality": "CT",
                   "Manufacturer": "Unknown manufacturer", "Model": "Unknown model", "SeriesDate": "",
                   "SeriesTime": "", "ContentDate": "", "ContentTime": "", "SeriesNumber": "301",
                   "SeriesInstanceUID": "", "FrameOfReferenceUID": ""}
PREFIX = "DICOM."
T2W_SERIES = {"DICOM.SeriesDescription": "t2_tse_tra", "DICOM.Modality": "MR", "DICOM.Manufacturer": "SIEMENS"}
STUDY = {"DICOM.StudyInstanceUID": "1.2.3.4", "DICOM.StudyDescription": "MR prostate"}
PATIENT = {"DICOM.PatientID": "ProstateX-0000", "DICOM.PatientName": "Pat^One"}


def exported_series_tags(sh, item) -> dict:
    """Stand-in (see the module docstring): the series tags Slicer's scalar volume export writes for ``item``."""
    return {tag: sh.GetItemAttribute(item, PREFIX + tag) if sh.HasItemAttribute(item, PREFIX + tag) else default
            for tag, default in EXPORT_DEFAULTS.items()}


def attributes(sh, item) -> dict:
    return {name: sh.GetItemAttribute(item, name) for name in sh.GetItemAttributeNames(item)}


def loaded_from_dicom(scene, t2w):
    """The T2W as Slicer's DICOM module leaves it: in a study under a patient, with DICOM.* attributes on all three
    (DICOMPlugin.addSeriesInSubjectHierarchy)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Pat^One")
    study = sh.CreateStudyItem(patient, "MR prostate")
    series = sh.GetItemByDataNode(t2w) or sh.CreateItem(study, t2w)
    sh.SetItemParent(series, study)
    for item, values in ((patient, PATIENT), (study, STUDY), (series, T2W_SERIES)):
        for name, value in values.items():
            sh.SetItemAttribute(item, name, value)
    return sh, patient, study, series


def test_an_exported_result_says_synthetic_and_lands_in_the_t2w_study(scene, tmp_path):
    t2w = scene_io.image_to_volume_node(result_folder(tmp_path / "out"), "Pat: 1/T2W")
    side = json.loads((tmp_path / "out" / "synthesis.json").read_text(encoding="utf-8"))
    side["missing_inputs"] = ["pd"]
    (tmp_path / "out" / "synthesis.json").write_text(json.dumps(side), encoding="utf-8")
    sh, patient, study, series = loaded_from_dicom(scene, t2w)
    before = [attributes(sh, item) for item in (series, study, patient)]

    nodes = scene_io.load_results(tmp_path / "out", t2w)

    volumes = {key: node for key, node in nodes.items() if key != "metrics"}
    assert len(volumes) == 8
    for key, node in volumes.items():
        item = sh.GetItemByDataNode(node)
        assert sh.GetItemParent(item) == study and sh.GetItemParent(study) == patient, key  # study/patient tags
        tags = exported_series_tags(sh, item)
        kind, target = key.rsplit("_", 1)
        what = "" if kind == "synthetic" else kind.replace("_", " ") + " "
        assert tags["SeriesDescription"] == f"SYNTHETIC OOD-WARNING NO-PD {what}{target} DCE (DCEDiff)"
        assert tags["Modality"] == "MR", key  # the export's default "CT" would write a CT image in HU
        assert tags["Manufacturer"] == "DCEDiff (SYNTHETIC image, not acquired)", key
        assert tags["Model"] == "DCEDiff model tiny;model:é", key
        assert all(len(tags[t]) <= 64 for t in ("SeriesDescription", "Manufacturer", "Model")), tags  # VR LO
    # the T2W's own series, its study and its patient keep what the DICOM module gave them
    assert [attributes(sh, item) for item in (series, study, patient)] == before
    assert attributes(sh, series) == T2W_SERIES


def test_the_export_tags_outlive_a_saved_and_reopened_scene(scene, tmp_path):
    """a result exported in a later session, from the saved scene (.mrb), still says synthetic."""
    t2w = scene_io.image_to_volume_node(result_folder(tmp_path / "out"), "Pat: 1/T2W")
    loaded_from_dicom(scene, t2w)
    name = scene_io.load_results(tmp_path / "out", t2w)["synthetic_late"].GetName()
    reopened = save_bundle_and_reopen(scene, tmp_path / "bundle")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(reopened)
    tags = exported_series_tags(sh, sh.GetItemByDataNode(by_name(reopened, name)))
    assert tags["SeriesDescription"] == "SYNTHETIC OOD-WARNING late DCE (DCEDiff)"
    assert (tags["Modality"], tags["Manufacturer"]) == ("MR", "DCEDiff (SYNTHETIC image, not acquired)")


def test_a_long_model_name_is_cut_at_the_dicom_lo_length(scene):
    """Round-18 mutation audit. tag_for_dicom_export: SeriesDescription, Manufacturer and Model are VR LO, 'at most 64
    characters': a model name of 100 characters is cut to exactly 64, keeping its start; a short one is whole."""
    node = slicer.util.addVolumeFromArray(np.zeros((2, 2, 2), dtype=np.float32), name="result")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = sh.GetItemByDataNode(node) or sh.CreateItem(sh.GetSceneItemID(), node)
    scene_io.tag_for_dicom_export(node, "synthetic_early", {"model": "m" * 100}, ["OOD-WARNING"])
    model = sh.GetItemAttribute(item, PREFIX + "Model")
    assert len(model) == 64 and model == ("DCEDiff model " + "m" * 100)[:64]
    scene_io.tag_for_dicom_export(node, "synthetic_early", {"model": "m" * 50}, ["OOD-WARNING"])
    assert sh.GetItemAttribute(item, PREFIX + "Model") == "DCEDiff model " + "m" * 50   # 64 characters: whole
