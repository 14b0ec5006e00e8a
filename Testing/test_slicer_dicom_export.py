"""*Send results to DICOM database* (DCEDiff/DCEDiffSlicerLib/dicom_export.py) under the slicer-core wheel: a run's
synthetic early/late DCE written by the engine's writer (DCEDiffLib/dicom_results.py) as DERIVED, SYNTHETIC-marked MR
series in the T2W's study, on the T2W's DICOM grid, and handed to the DICOM database.

Real parts: a phantom exam exported as a DICOM study (DCEDiffLib/phantom/study_export.py, real files on disk), the
T2W as a real MRML scalar volume node carrying ``DICOM.instanceUIDs`` as Slicer's DICOM module sets it, result nodes
made by the module's own ``scene_io.load_results`` from an engine output folder, the series read back with
SimpleITK's series reader. Stand-ins, named as such (neither runs outside Slicer's application: both are Qt/CTK):
``DicomDatabaseStandIn`` for ctkDICOMDatabase (``slicer.dicomDatabase``: instance UID → file from the headers of the
files on disk; the study's series and their series numbers), ``ImportStandIn`` for
``DICOMLib.DICOMUtils.importDicom`` (records the folder, then indexes its files into the database stand-in, as
ctkDICOMIndexer does), put in ``sys.modules`` as ``DICOMLib.DICOMUtils`` for the button; for the button, the Qt
widget stand-ins of Testing/test_slicer_module.py and ``ErrorDisplayStandIn`` (the message box of
``slicer.util.tryWithErrorDisplay``). In a reopened scene the parameter node's T2W, which Slicer's
parameterNodeWrapper restores from the scene, is set on ``ParameterNodeStandIn`` by the test.
"""

import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import dicom_export, scene_io, study_fill  # noqa: E402
from DCEDiffLib.dicom_study import read_study_volume, scan_study  # noqa: E402
from DCEDiffLib.phantom.generator import generate_case  # noqa: E402
from DCEDiffLib.phantom.study_export import PARTS, write_phantom_study  # noqa: E402
from phantom_frames import fewer_frames  # noqa: E402
from slicer_stand_ins import ErrorDisplayStandIn  # noqa: E402
from test_slicer_module import make_widget, modules, save_and_reopen  # noqa: E402,F401

KEEP = ("t2_tra", "adc", "pd_ref")  # a few series: the study's series numbers; fewer files to write
PROVENANCE = {"model": "tiny-model", "model_sha256": "ab" * 32, "sampler": "dpmpp", "steps": 1, "seed": 7,
              "samples": 1, "dcediff_version": "9.9.9", "missing_inputs": ["pd"]}
OOD = {"flagged": True, "checked": True, "score": 1.5, "threshold": 1.0,
       "reasons": ["T2W level far from training", "ADC range unusual"]}


class DicomDatabaseStandIn:
    """Test double of ctkDICOMDatabase: fileForInstance, seriesForStudy, filesForSeries, fileValue ("gggg,eeee"),
    isOpen, databaseDirectory; ``index(folder)`` adds a folder's files, as ctkDICOMIndexer does."""

    def __init__(self, directory):
        self.databaseDirectory = str(directory)
        self.isOpen = True
        self.files, self.headers = {}, {}

    def index(self, folder):
        for path in Path(folder).rglob("*.dcm"):
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            self.files[reader.GetMetaData("0008|0018").strip()] = str(path)
            self.headers[str(path)] = {key: reader.GetMetaData(key).strip() for key in reader.GetMetaDataKeys()}

    def fileForInstance(self, uid):
        return self.files.get(uid, "")

    def fileValue(self, path, tag):
        return self.headers.get(str(path), {}).get(tag.replace(",", "|").lower(), "")

    def seriesForStudy(self, study_uid):
        return sorted({h.get("0020|000e") for h in self.headers.values() if h.get("0020|000d") == study_uid})

    def filesForSeries(self, series_uid, hits=-1):
        files = sorted(p for p, h in self.headers.items() if h.get("0020|000e") == series_uid)
        return files if hits < 0 else files[:hits]


class ImportStandIn:
    """Test double of DICOMLib.DICOMUtils.importDicom(dicomDataDir, dicomDatabase, copyFiles): records each call and
    indexes the folder into the database stand-in; returns True as the real one does on success."""

    def __init__(self):
        self.calls = []

    def __call__(self, folder, database, copy_files):
        self.calls.append((folder, database, copy_files))
        database.index(folder)
        return True


def slicer_dicom_stand_ins(monkeypatch, database) -> "ImportStandIn":
    """Put ``database`` in as ``slicer.dicomDatabase`` and an :class:`ImportStandIn` as
    ``DICOMLib.DICOMUtils.importDicom`` (what the widget's button reaches through Slicer); returns the importer."""
    importer = ImportStandIn()
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    monkeypatch.setitem(sys.modules, "DICOMLib", types.SimpleNamespace(
        DICOMUtils=types.SimpleNamespace(importDicom=importer)))
    return importer


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "P-7"
    expected = write_phantom_study(fewer_frames(generate_case(5)), root,
                                   omit=[p for p in PARTS if p not in KEEP], patient_id="P-7")
    return root, expected


@pytest.fixture(autouse=True)
def scene():
    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


@pytest.fixture
def database(study, tmp_path):
    database = DicomDatabaseStandIn(tmp_path / "ctkDICOM")
    database.index(study[0])
    return database


def t2w_series(study):
    root, expected = study
    return next(s for s in scan_study(root).series if s.number == expected["t2w"])


def load_t2w(study, database, scene):
    """The T2W as Slicer's DICOM module loads it: its voxels and geometry, and DICOM.instanceUIDs."""
    series = t2w_series(study)
    name = f"{series.number}: {series.description}"
    node = scene_io.image_to_volume_node(read_study_volume(series.volumes()[0], name), name, scene)
    uid_of = {path: uid for uid, path in database.files.items()}
    node.SetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE, " ".join(uid_of[f.path] for f in series.files))
    return node


def run_results(t2w, folder: Path, scene, flagged=True):
    """The result nodes of a run, made by the module's scene_io.load_results from an engine output folder whose
    results lie on the T2W's grid in world coordinates (as the engine's t2w_grid/ copies do)."""
    engine_output(t2w, folder, flagged)
    return scene_io.load_results(folder, t2w, scene)


def engine_output(t2w, folder: Path, flagged=True) -> None:
    """An engine output folder for ``t2w``: synthetic and residual early/late on its world grid, synthesis.json."""
    grid = scene_io.volume_node_to_image(t2w)
    (folder / "t2w_grid").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for kind in ("synthetic", "residual"):
        for target in ("early", "late"):
            values = rng.uniform(0.0, 800.0, sitk.GetArrayViewFromImage(grid).shape).astype(np.float32)
            image = sitk.GetImageFromArray(values)
            image.CopyInformation(grid)
            sitk.WriteImage(image, str(folder / "t2w_grid" / f"{kind}_{target}.nii.gz"))
    side = {"provenance": PROVENANCE, "missing_inputs": ["pd"], "out_of_distribution": OOD if flagged else {}}
    (folder / "synthesis.json").write_text(json.dumps(side), encoding="utf-8")


def read_series(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOn()
    return reader.Execute(), reader


def reference_grid(study):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([f.path for f in t2w_series(study).volumes()[0].files])
    return reader.Execute()


def assert_on_grid(image, reference):
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-5)


def test_the_synthetic_dce_become_derived_series_of_the_t2ws_study_in_the_database(study, database, scene,
                                                                                     tmp_path):
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    before = {key: slicer.util.arrayFromVolume(node).copy() for key, node in nodes.items()}
    t2w_before = slicer.util.arrayFromVolume(t2w).copy()
    importer = ImportStandIn()
    study_numbers = {int(database.fileValue(path, "0020,0011")) for path in database.headers}

    sent = dicom_export.export_results_to_dicom(nodes, t2w, database=database, import_folder=importer)

    assert importer.calls == [(str(sent.folder), database, False)]  # indexed where it lies: in the database folder
    assert sent.folder.parent == Path(database.databaseDirectory) / "DCEDiff"
    header = database.headers[database.fileForInstance(t2w.GetAttribute("DICOM.instanceUIDs").split()[0])]
    assert sent.study_uid == header["0020|000d"]
    assert set(sent.series) == {"early", "late"}
    reference = reference_grid(study)
    for short, info in sent.series.items():
        image, reader = read_series(info["folder"])
        assert_on_grid(image, reference)
        slope = float(reader.GetMetaData(0, "0028|1053"))
        np.testing.assert_allclose(sitk.GetArrayFromImage(image), before[f"synthetic_{short}"],
                                   atol=slope / 2 + 1e-3)
        tags = {key: reader.GetMetaData(0, key).strip() for key in reader.GetMetaDataKeys(0)}
        assert tags["0008|0008"] == "DERIVED\\SECONDARY\\OTHER"
        assert tags["0008|103e"] == f"SYNTHETIC OOD-WARNING NO-PD {short} DCE (DCEDiff)" == info["description"]
        assert tags["0008|0070"] == "DCEDiff (SYNTHETIC image, not acquired)"
        assert tags["0008|1090"] == "DCEDiff model tiny-model"
        assert tags["0020|000d"] == header["0020|000d"] and tags["0020|0052"] == header["0020|0052"]
        assert tags["0010|0020"] == "P-7"
        assert tags["0020|000e"] == info["series_instance_uid"] != header["0020|000e"]
        assert int(tags["0020|0011"]) == info["series_number"]
        assert tags["0008|2111"].startswith("SYNTHETIC image generated by DCEDiff 9.9.9 — model tiny-model, "
                                            "sampler dpmpp, 1 step, seed 7, 1 sample(s); not an acquired image; "
                                            "made WITHOUT")
        assert "WARNING: inputs OUT OF the model's training distribution (score 1.50 > 1): T2W level far from " \
               "training (+1 more reason(s) in synthesis.json)" in tags["0008|2111"]
        assert database.seriesForStudy(sent.study_uid).count(info["series_instance_uid"]) == 1  # in the database
    assert {info["series_number"] for info in sent.series.values()}.isdisjoint(study_numbers)
    assert "#9001 SYNTHETIC" in sent.message() and str(sent.folder) in sent.message()
    for key, node in nodes.items():  # inputs never modified
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), before[key])
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(t2w), t2w_before)


def test_a_second_send_takes_the_next_series_numbers_and_a_folder_picked_is_copied(study, database, scene, tmp_path):
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene, flagged=False)
    importer = ImportStandIn()
    first = dicom_export.export_results_to_dicom(nodes, t2w, database=database, import_folder=importer)
    second = dicom_export.export_results_to_dicom(nodes, t2w, out_dir=tmp_path / "picked", database=database,
                                                  import_folder=importer)

    assert [info["series_number"] for info in first.series.values()] == [9001, 9002]
    assert [info["series_number"] for info in second.series.values()] == [9003, 9004]
    assert importer.calls[1] == (str(tmp_path / "picked"), database, True)  # the database keeps its own copy
    _, reader = read_series(second.series["late"]["folder"])
    assert reader.GetMetaData(0, "0008|103e").strip() == "SYNTHETIC NO-PD late DCE (DCEDiff)"
    assert "WARNING" not in reader.GetMetaData(0, "0008|2111")


def test_a_t2w_under_a_parent_transform_gets_its_series_on_its_own_dicom_grid(study, database, scene, tmp_path):
    """The results are made where Slicer shows the T2W (world coordinates); the series join the T2W's frame of
    reference, so they go back onto the T2W's DICOM files' grid."""
    t2w = load_t2w(study, database, scene)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "moved")
    matrix = np.eye(4)
    matrix[:3, 3] = (12.0, -7.0, 9.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    t2w.SetAndObserveTransformNodeID(transform.GetID())
    nodes = run_results(t2w, tmp_path / "out", scene)

    sent = dicom_export.export_results_to_dicom(nodes, t2w, database=database, import_folder=ImportStandIn())

    image, reader = read_series(sent.series["early"]["folder"])
    assert_on_grid(image, reference_grid(study))
    slope = float(reader.GetMetaData(0, "0028|1053"))
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), slicer.util.arrayFromVolume(nodes["synthetic_early"]),
                               atol=slope / 2 + 1e-3)


@pytest.mark.parametrize("case", ["not from DICOM", "files gone", "no results", "only maps", "no database"])
def test_refusals_name_what_is_missing_and_write_nothing(case, study, database, scene, tmp_path, monkeypatch):
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    given_database = database
    expected = {"not from DICOM": "was not loaded from DICOM (no DICOM.instanceUIDs)",
                "files gone": "are no longer in the DICOM database",
                "no results": "no synthetic early or late DCE result node",
                "only maps": "no synthetic early or late DCE result node",
                "no database": "Slicer has no DICOM database open"}[case]
    if case == "not from DICOM":
        t2w.RemoveAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE)
    elif case == "files gone":
        database.files = {uid: path for uid, path in list(database.files.items())[::2]}
    elif case == "no results":
        nodes = {}
    elif case == "only maps":
        nodes = {key: node for key, node in nodes.items() if not key.startswith("synthetic")}
    else:
        monkeypatch.delattr(slicer, "dicomDatabase", raising=False)
        given_database = None
    importer = ImportStandIn()

    with pytest.raises(ValueError, match="Send to DICOM database") as raised:
        dicom_export.export_results_to_dicom(nodes, t2w, out_dir=tmp_path / "picked", database=given_database,
                                             import_folder=importer)

    assert expected in str(raised.value)
    if case in ("not from DICOM", "files gone"):
        assert repr(t2w.GetName()) in str(raised.value)
    assert not (tmp_path / "picked").exists() and importer.calls == []
    assert not (Path(database.databaseDirectory) / "DCEDiff").exists()


def test_the_button_sends_the_last_runs_results_and_shows_a_refusal(modules, study, database, scene, tmp_path,
                                                                    monkeypatch):
    """The widget's button after a run ended through the logic's own end (_finish → onCompleted), with Slicer's
    DICOM database and DICOMLib.DICOMUtils as stand-ins (module docstring)."""
    from DCEDiffSlicerLib import process_runner

    DCEDiff, _ = modules
    importer = slicer_dicom_stand_ins(monkeypatch, database)
    box = ErrorDisplayStandIn()
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", box)
    t2w = load_t2w(study, database, scene)
    widget, _p = make_widget(DCEDiff, monkeypatch)
    widget._updateApplyButton()
    assert widget.ui.sendToDicomButton.enabled is False  # no run yet

    work = tmp_path / "DCEDiff-work"
    engine_output(t2w, work / "out", flagged=False)
    runner = process_runner.ProcessRunner([sys.executable, "-c", "print('done')"]).start()
    widget.logic._job = DCEDiff._Job(runner, work, t2w, time.monotonic(), False)
    widget.onCompleted(widget.logic._finish(runner.wait(timeout=30)))
    assert widget.ui.sendToDicomButton.enabled is True

    widget.onSendToDicom()
    assert len(importer.calls) == 1 and importer.calls[0][1] is database
    assert widget.ui.statusLabel.text.startswith("Written as DERIVED DICOM series in the T2W's study")
    assert "#9001 SYNTHETIC NO-PD early DCE (DCEDiff); #9002 SYNTHETIC NO-PD late DCE" in widget.ui.statusLabel.text

    t2w.RemoveAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE)  # e.g. a T2W of an older scene, loaded from a file
    with pytest.raises(ValueError, match="was not loaded from DICOM"):
        widget.onSendToDicom()
    assert box.shown[0].startswith("The results were not sent to the DICOM database.\n\nSend to DICOM database: "
                                   "the T2W")
    assert len(importer.calls) == 1

    for node in widget._lastResult.nodes.values():  # the results deleted: nothing left to send
        scene.RemoveNode(node)
    widget._updateApplyButton()
    assert widget.ui.sendToDicomButton.enabled is False


def test_a_failed_import_names_the_folder_it_keeps(study, database, scene, tmp_path):
    """DICOMUtils.importDicom returns False (and logs) when the indexer fails: the series stay on disk, named."""
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)

    with pytest.raises(ValueError, match="did not import them") as raised:
        dicom_export.export_results_to_dicom(nodes, t2w, out_dir=tmp_path / "picked", database=database,
                                             import_folder=lambda folder, db, copy: False)

    assert str(tmp_path / "picked") in str(raised.value)
    assert len(list((tmp_path / "picked").rglob("*.dcm"))) == 2 * len(t2w_series(study).files)


def saved_and_reopened(scene, folder: Path):
    """The scene saved as ``folder``/scene.mrml by the scene's own writer (each volume written to a .nrrd by its
    storage node first, as Save does) and read back into a new scene, as a new Slicer session opens it."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, node in enumerate(list(scene.GetNodesByClass("vtkMRMLScalarVolumeNode"))):
        if node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
        node.GetStorageNode().SetFileName(str(folder / f"volume{index}.nrrd"))
        assert node.GetStorageNode().WriteData(node)
    return save_and_reopen(scene, folder)


def test_two_runs_give_the_newest_runs_pair_never_mixed_and_a_t2w_without_results_none(study, database, scene,
                                                                                       tmp_path):
    """newest_run_for_t2w: the run added last to the scene; a run that lost one of its pair gives nothing (neither
    the other run's node in its place nor the older run); another T2W's results never count."""
    t2w = load_t2w(study, database, scene)
    other = load_t2w(study, database, scene)
    first = run_results(t2w, tmp_path / "run1", scene)
    second = run_results(t2w, tmp_path / "run2", scene, flagged=False)
    run_results(other, tmp_path / "other", scene)  # newest in the scene, but of another T2W
    pair = ("synthetic_early", "synthetic_late")

    assert dicom_export.newest_run_for_t2w(t2w) == {key: second[key] for key in pair}
    assert first["synthetic_early"].GetNodeReference(scene_io.T2W_REFERENCE_ROLE) is t2w
    assert first["residual_late"].GetNodeReferenceID(scene_io.T2W_REFERENCE_ROLE) == t2w.GetID()  # every result
    scene.RemoveNode(second["synthetic_late"])
    assert dicom_export.newest_run_for_t2w(t2w) == {}  # not second's early with first's late, nor first's pair
    scene.RemoveNode(second["synthetic_early"])
    assert dicom_export.newest_run_for_t2w(t2w) == {key: first[key] for key in pair}
    fresh = load_t2w(study, database, scene)
    assert dicom_export.newest_run_for_t2w(fresh) == {} and dicom_export.newest_run_for_t2w(None) == {}


def test_a_reopened_scene_keeps_the_t2w_reference_and_the_button_sends_the_newest_pair(modules, study, database,
                                                                                       scene, tmp_path, monkeypatch):
    """After a scene with two runs is saved and reopened (no last run in the session), the button serves the T2W
    selected in the inputs: enabled, it sends the newer run's early and late; a T2W without results disables it.
    Stand-ins as in the module docstring."""
    DCEDiff, _ = modules
    importer = slicer_dicom_stand_ins(monkeypatch, database)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", ErrorDisplayStandIn())
    t2w = load_t2w(study, database, scene)
    first = run_results(t2w, tmp_path / "run1", scene)  # flagged: its series would say OOD-WARNING
    second = run_results(t2w, tmp_path / "run2", scene, flagged=False)
    ids = {key: node.GetID() for key, node in second.items()}

    reopened = saved_and_reopened(scene, tmp_path / "saved")
    monkeypatch.setattr(slicer, "mrmlScene", reopened)
    try:
        t2w_again = reopened.GetNodeByID(t2w.GetID())
        early = reopened.GetNodeByID(ids["synthetic_early"])
        assert early.GetNodeReference(scene_io.T2W_REFERENCE_ROLE) is t2w_again
        assert early.GetAttribute(scene_io.RUN_ATTRIBUTE) == second["synthetic_early"].GetAttribute(
            scene_io.RUN_ATTRIBUTE) != first["synthetic_early"].GetAttribute(scene_io.RUN_ATTRIBUTE)
        widget, p = make_widget(DCEDiff, monkeypatch)
        p.t2w = t2w_again  # what the parameter node restores with the scene
        widget._updateApplyButton()
        assert widget._lastResult is None and widget.ui.sendToDicomButton.enabled is True

        widget.onSendToDicom()

        assert len(importer.calls) == 1
        assert ("#9001 SYNTHETIC NO-PD early DCE (DCEDiff); #9002 SYNTHETIC NO-PD late DCE"
                in widget.ui.statusLabel.text)  # the newer run (not flagged), both of it
        image, _reader = read_series(Path(importer.calls[0][0]) / "dicom" / "synthetic_late")
        late = slicer.util.arrayFromVolume(reopened.GetNodeByID(ids["synthetic_late"]))
        np.testing.assert_allclose(sitk.GetArrayFromImage(image), late, atol=float(_reader.GetMetaData(
            0, "0028|1053")) / 2 + 1e-3)

        p.t2w = load_t2w(study, database, reopened)  # a T2W with no results
        widget._updateApplyButton()
        assert widget.ui.sendToDicomButton.enabled is False
        widget.onSendToDicom()
        assert len(importer.calls) == 1
    finally:
        reopened.Clear(1)


def test_a_last_run_whose_results_were_deleted_gives_way_to_the_newest_run_in_the_scene(modules, study, database,
                                                                                          scene, tmp_path, monkeypatch):
    """The last run of the session is what the button sends only while its synthetic early/late DCE are in the
    scene: the user deleted them, so the newest remaining run of the selected T2W is offered (and sent) instead of a
    button that stays on for nothing or off while results are there. Stand-ins as in the module docstring."""
    DCEDiff, _ = modules
    importer = slicer_dicom_stand_ins(monkeypatch, database)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", ErrorDisplayStandIn())
    t2w = load_t2w(study, database, scene)
    earlier = run_results(t2w, tmp_path / "run1", scene, flagged=False)
    last = run_results(t2w, tmp_path / "run2", scene)  # flagged: its series would say OOD-WARNING
    widget, p = make_widget(DCEDiff, monkeypatch)
    p.t2w = t2w
    widget._lastResult = types.SimpleNamespace(nodes=last, t2w=t2w)
    assert widget._resultsToSend()[0] is last
    for node in last.values():
        scene.RemoveNode(node)
    widget._updateApplyButton()
    assert widget.ui.sendToDicomButton.enabled is True
    nodes, chosen = widget._resultsToSend()
    assert chosen is t2w and {nodes[k].GetID() for k in nodes} == {earlier[k].GetID() for k in nodes}
    widget.onSendToDicom()
    assert len(importer.calls) == 1 and "OOD-WARNING" not in widget.ui.statusLabel.text
