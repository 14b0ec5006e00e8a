""""Fill from study" (DCEDiff/DCEDiffSlicerLib/study_fill.py and the module's button) under the slicer-core wheel.

A phantom exam is exported as a DICOM study (DCEDiffLib/phantom/study_export.py: DCE as one series per time point,
no VIBE, so the T1-pre is the last DCE frame before contrast arrival), and every series becomes a real MRML scalar
volume node carrying ``DICOM.instanceUIDs`` as Slicer's DICOM module sets it. Test doubles, named as such:
``DicomDatabaseStandIn`` for ctkDICOMDatabase (a Qt object; it maps SOP Instance UIDs to the exported files, read
from their headers) and, for the button, the Qt widget stand-ins of Testing/test_slicer_module.py and
``ErrorDisplayStandIn`` (``slicer.util.tryWithErrorDisplay``'s message box). A study without a
PD series is filled for a model that needs PD and for one that does not, and then run through Apply: the real
engine in a subprocess, started by the real ``slicer.util.launchConsoleProcess`` with ``SlicerAppStandIn`` (test
double of ``slicer.app``, a Qt object) and ``ProcessEnvironmentStandIn`` (of QProcessEnvironment). DCE frames
exported back from Slicer as DCEDiff results (re-tagged copies, real DICOM files) are never filled in.
"""

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import study_fill  # noqa: E402
from DCEDiffLib.dicom_study import scan_study  # noqa: E402
from DCEDiffLib.errors import InputError  # noqa: E402
from shared_phantom_case import generated_case  # noqa: E402
from DCEDiffLib.phantom.study_export import write_phantom_study  # noqa: E402
from test_slicer_module import ParameterNodeStandIn, make_widget, modules, save_and_reopen  # noqa: E402,F401
from dicom_slice_io import SLICER_EXPORT_TAGS, write_retagged_series  # noqa: E402
from slicer_stand_ins import ErrorDisplayStandIn  # noqa: E402
from phantom_frames import fewer_frames  # noqa: E402

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


@pytest.fixture(scope="module")
def phantom_case():
    case = generated_case(3)
    return fewer_frames(case)


@pytest.fixture(scope="module")
def study(phantom_case, tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "P-1"
    expected = write_phantom_study(phantom_case, root, omit=FEW, patient_id="P-1")
    return root, expected, DicomDatabaseStandIn(root)


@pytest.fixture(scope="module")
def study_without_pd(phantom_case, tmp_path_factory):
    """The same exam as a study with no PD series (many PI-RADS protocols; the VIBE is left out by FEW too)."""
    root = tmp_path_factory.mktemp("study_no_pd") / "P-2"
    expected = write_phantom_study(phantom_case, root, omit=FEW + ("pd_ref",), patient_id="P-2")
    assert "pd" not in expected
    return root, expected, DicomDatabaseStandIn(root)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(plain, dropout): a random-weight model whose card requires PD, and the same weights with a card listing
    optional_inputs ["pd"] (what training with augment.drop_pd writes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from random_model import save_copy_allowing_missing_pd, save_random_model

    plain = save_random_model(tmp_path_factory.mktemp("models"))
    return plain, save_copy_allowing_missing_pd(plain)


@pytest.fixture(autouse=True)
def scene():
    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


def load_as_slicer_does(root, database, scene, skip=(), pixels=False):
    """One scalar volume node per series, named like Slicer's DICOM loader names them, with DICOM.instanceUIDs
    (plus a volume that did not come from DICOM). ``pixels``: the nodes also hold the series' voxels and geometry
    (for a run of the engine). Returns series number → node."""
    from DCEDiffLib.dicom_study import read_study_volume
    from DCEDiffSlicerLib import scene_io

    uid_of = {path: uid for uid, path in database.files.items()}
    nodes = {}
    for series in scan_study(root).series:
        if series.description in skip:
            continue
        name = f"{series.number}: {series.description}"
        if pixels:
            node = scene_io.image_to_volume_node(read_study_volume(series.volumes()[0], name), name, scene)
        else:
            node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
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


@pytest.fixture(scope="module")
def study_with_vibe(phantom_case, tmp_path_factory):
    """The same exam with its VIBE series: the T1-pre is then the 20° VIBE, another series than the DCE."""
    root = tmp_path_factory.mktemp("study_vibe") / "P-3"
    expected = write_phantom_study(phantom_case, root, omit=tuple(f for f in FEW if f != "vibe"), patient_id="P-3")
    return root, expected, DicomDatabaseStandIn(root)


def test_a_vibe_t1pre_brings_the_dce_pre_contrast_frame_and_none_otherwise(study_with_vibe, study, scene):
    """With a T1-pre of another series, the fill also selects the DCE's last frame before contrast arrival (the
    engine's StudyPicks.baseline) for the acquired DCE's intensity scale; with the T1-pre taken from the DCE series
    there is none, and an earlier selection is cleared."""
    from DCEDiffLib.study_roles import pick_roles

    root, expected, database = study_with_vibe
    nodes = load_as_slicer_does(root, database, scene)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert fill.nodes["t1pre"] is nodes[expected["t1pre"]]
    frame = pick_roles(scan_study(root)).baseline.frame_index
    assert fill.nodes["dce_baseline"] is nodes[expected["dce_numbers"][frame]]
    assert any(line.startswith("dce_baseline") for line in fill.lines)
    p = ParameterNodeStandIn(t2w=None, pd=None, adc=None, t1pre=None, dceEarly=None, dceLate=None, dceBaseline=None)
    study_fill.apply_fill(p, fill)
    assert p.dceBaseline is fill.nodes["dce_baseline"] and p.dceEarly is fill.nodes["dce_early"]
    assert "pre-contrast frame is not loaded" not in fill.message()
    # the frame's series loaded split in two (no volume of its own): the status line says what that costs
    _split_node(scene, nodes[expected["dce_numbers"][frame]])
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert "dce_baseline" not in fill.nodes and "dce_early" in fill.nodes
    assert "pre-contrast frame is not loaded as a volume of its own" in fill.message()
    scene.Clear(1)
    root, expected, database = study
    load_as_slicer_does(root, database, scene)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert "dce_baseline" not in fill.nodes
    p = ParameterNodeStandIn(t2w=None, pd=None, adc=None, t1pre=None, dceEarly=None, dceLate=None, dceBaseline="old")
    study_fill.apply_fill(p, fill)
    assert p.dceBaseline is None


def test_without_a_loaded_dce_the_vibe_t1pre_is_filled_as_before_and_the_status_says_it_is_undated(
        study_with_vibe, scene):
    """With the DCE frames not loaded, nothing dates the VIBEs against the DCE: the neutral-named one acquired after it
    ('t1_vibe_fs_tra', 25°) is still filled in as the T1-pre (the engine's pick), but its line and the status line
    now say that it is pre-contrast by its name only; with the DCE loaded nothing is said."""
    root, expected, database = study_with_vibe
    dce = [s.description for s in scan_study(root).series if s.description.startswith("Twist_dynamic")]
    nodes = load_as_slicer_does(root, database, scene, skip=dce)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    neutral = next(s.number for s in scan_study(root).series if s.description == "t1_vibe_fs_tra")
    assert fill.nodes["t1pre"] is nodes[neutral]
    (line,) = [line for line in fill.lines if line.startswith("t1pre")]
    assert "not dated: no DCE series in the study to date it by" in line
    assert (f"Check: T1-pre #{neutral} 't1_vibe_fs_tra': not dated: no DCE series in the study to date it by, taken "
            "as pre-contrast by its name/description only") in fill.message()
    scene.Clear(1)
    load_as_slicer_does(root, database, scene)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert fill.nodes["t1pre"].GetName().startswith(f"{expected['t1pre']}: ") and fill.warnings == []
    assert "not dated" not in fill.message() and "Check:" not in fill.message()


@pytest.fixture(scope="module")
def study_with_exported_dce(study, tmp_path_factory):
    """The exam plus its DCE frames exported back from Slicer as DCEDiff results into the same study (Manufacturer
    "DCEDiff (SYNTHETIC image, not acquired)", #301, the description edited to "early DCE" in the export dialog),
    written as real DICOM files with their own UIDs (Testing/dicom_slice_io.py)."""
    root, expected, _ = study
    copy = tmp_path_factory.mktemp("exported") / "P-1"
    shutil.copytree(root, copy)
    for number in expected["dce_numbers"]:
        (folder,) = [p for p in copy.iterdir() if p.name.split(".", 1)[0] == str(number)]
        write_retagged_series(folder.iterdir(), copy / f"exported-{number}",
                              dict(SLICER_EXPORT_TAGS, **{"0008|103e": "early DCE"}))
    return copy, expected, DicomDatabaseStandIn(copy)


def test_a_dcediff_result_exported_to_dicom_and_loaded_back_is_never_filled_in(study_with_exported_dce, scene):
    """T2W, PD, ADC and the exported copies of the DCE are loaded, not the acquired frames (nor the post-contrast
    T1): before, the copies were filled in as the acquired early and late DCE (a synthesis scored against itself) and
    their pre-arrival frame as the T1-pre; now they are skipped and named, and the T1-pre is not found."""
    root, expected, database = study_with_exported_dce
    acquired = [s.description for s in scan_study(root).series if s.description.startswith(("Twist_dynamic", "t1_"))]
    nodes = load_as_slicer_does(root, database, scene, skip=acquired)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert not {"dce_early", "dce_late"} & set(fill.nodes)
    assert fill.missing == ["t1pre"] and fill.nodes["t2w"] is nodes[expected["t2w"]]
    skipped = [line for line in fill.lines if line.startswith("skipped   #301 'early DCE'")]
    assert len(skipped) == len(expected["dce_numbers"]) and "synthetic DCEDiff result" in skipped[0]
    assert "Skipped, as synthetic DCEDiff results (never an input): #301 'early DCE'" in fill.message()


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


def test_a_phantom_loaded_from_dicom_is_still_a_phantom_after_the_scene_is_saved_and_reloaded(study, scene,
                                                                                                tmp_path, monkeypatch):
    """A phantom study's files carry the phantom mark (Manufacturer); a saved scene does not: Slicer writes a volume
    loaded from DICOM again as .nrrd, and after a reload the node's file was that .nrrd, so a phantom case was
    flagged out of distribution. The node's DICOM.instanceUIDs is saved with the scene: its first file in the DICOM
    database decides, and the exported input keeps the mark. The node is not modified; a file the database no longer
    has is not marked (the safe side)."""
    from DCEDiffLib.data_source import NOT_MARKED, PHANTOM, input_source
    from DCEDiffLib.dicom_study import read_study_volume
    from DCEDiffSlicerLib import scene_io

    root, expected, database = study
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    (series,) = [s for s in scan_study(root).series if s.number == expected["t2w"]]
    node = scene_io.image_to_volume_node(read_study_volume(series.volumes()[0], "T2W"), "T2W", scene)
    uid_of = {path: uid for uid, path in database.files.items()}
    node.SetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE, " ".join(uid_of[f.path] for f in series.files))
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(series.files[0].path)      # what Slicer's DICOM loader leaves: the series' files
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert scene_io.node_source(node) == PHANTOM
    storage.SetFileName(str(tmp_path / "T2W.nrrd"))  # Save: the volume written again, without the mark
    assert storage.WriteData(node) and input_source(tmp_path / "T2W.nrrd") == NOT_MARKED
    reopened = save_and_reopen(scene, tmp_path)      # a new session opens the saved scene
    loaded = reopened.GetFirstNodeByName("T2W")
    assert loaded.GetStorageNode().GetFileName() == str(tmp_path / "T2W.nrrd")
    attributes = {name: loaded.GetAttribute(name) for name in loaded.GetAttributeNames()}
    assert scene_io.node_source(loaded) == PHANTOM
    assert input_source(scene_io.write_volume_node(loaded, tmp_path / "input" / "t2w.nrrd", "T2W")) == PHANTOM
    assert {name: loaded.GetAttribute(name) for name in loaded.GetAttributeNames()} == attributes  # untouched
    monkeypatch.setattr(slicer, "dicomDatabase", DicomDatabaseStandIn(tmp_path), raising=False)  # files gone
    assert scene_io.node_source(loaded) == NOT_MARKED
    reopened.Clear(1)


def test_the_button_fills_the_selectors_through_the_logic(modules, study, scene, monkeypatch):
    DCEDiff, _ = modules
    root, expected, database = study
    nodes = load_as_slicer_does(root, database, scene)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", ErrorDisplayStandIn())
    widget, p = make_widget(DCEDiff, monkeypatch)
    widget.onFillFromStudy()
    assert p.t2w is nodes[expected["t2w"]] and p.adc is nodes[expected["adc"]]
    assert p.dceLate is nodes[expected["dce_late"][0]] and p.t1pre is not None
    assert widget.ui.statusLabel.text.startswith("Filled from the study")
    assert any(line.startswith("t2w") for line in widget.ui.logTextEdit.lines)


def test_a_study_without_pd_fills_the_rest_and_leaves_pd_empty_only_for_a_model_that_can_do_without_it(
        study_without_pd, scene):
    root, expected, database = study_without_pd
    nodes = load_as_slicer_does(root, database, scene)
    other_exam = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "PD of another exam")
    # a model that needs PD (no optional inputs): the rest is filled, PD is named with why the model needs it
    strict = study_fill.fill_from_study(scene, database.fileForInstance)
    assert strict.missing == ["pd"] and strict.absent == [] and "pd" not in strict.nodes
    assert ("Not found: PD (select by hand). PD is required by the selected model (the model needs it; a model "
            "trained with augment.drop_pd") in strict.message()
    p = ParameterNodeStandIn(t2w=None, pd=other_exam, adc=None, t1pre=None, dceEarly=None, dceLate=None)
    study_fill.apply_fill(p, strict)
    assert p.pd is other_exam and p.t2w is nodes[expected["t2w"]]  # a required role keeps its selection
    # a model trained without PD: PD is absent, not missing, and its selector is left empty
    fill = study_fill.fill_from_study(scene, database.fileForInstance, optional=("pd",))
    assert fill.missing == [] and fill.absent == ["pd"] and "pd" not in fill.nodes
    assert fill.nodes["t2w"] is nodes[expected["t2w"]] and fill.nodes["adc"] is nodes[expected["adc"]]
    assert fill.nodes["t1pre"].GetName().startswith(f"{expected['dce_numbers'][0]}: Twist_dynamic")
    assert any(line.startswith("note: no PD found") and "without PD" in line for line in fill.lines)
    # the log shows the pick lines, then fill.notes: each note once (the picks' own notes end the pick lines)
    assert not {f"note: {note}" for note in fill.notes} & set(fill.lines)
    message = fill.message()
    assert "No PD in the study: left empty; the selected model runs without it." in message
    assert "Not found" not in message and "required" not in message
    p = ParameterNodeStandIn(t2w=None, pd=other_exam, adc=None, t1pre=None, dceEarly=None, dceLate=None)
    study_fill.apply_fill(p, fill)
    assert p.pd is None and p.adc is nodes[expected["adc"]] and p.t1pre is fill.nodes["t1pre"]
    # a study that has a PD series fills it whatever the model allows
    with pytest.raises(InputError, match="only pd can be left out"):
        study_fill.fill_from_study(scene, database.fileForInstance, optional=("adc",))


class ProcessEnvironmentStandIn:
    """Test double of QProcessEnvironment (what slicer.app.startupEnvironment() returns): this process's."""

    def __init__(self, environ):
        self.environ = dict(environ)

    def keys(self):
        return list(self.environ)

    def value(self, key):
        return self.environ[key]


class SlicerAppStandIn:
    """Test double of slicer.app (qSlicerApplication, a Qt object): a temporary folder, no Slicer home (the engine
    then runs in this Python), no layout manager (as in batch mode), the startup environment for the real
    slicer.util.launchConsoleProcess; Slicer's cache folder and user settings file named in the temporary folder
    (not made: nothing is kept there unless a test does)."""

    def __init__(self, temporary):
        self.temporaryPath, self.slicerHome = str(temporary), ""
        self.cachePath = str(Path(temporary) / "SlicerCache")
        self.slicerUserSettingsFilePath = str(Path(temporary) / "settings" / "Slicer.ini")

    def layoutManager(self):
        return None

    def startupEnvironment(self):
        return ProcessEnvironmentStandIn(os.environ)


@pytest.mark.slow  # a real engine run (registration of ADC and T1-pre, one sampling step) in a fresh Python
def test_fill_from_a_study_without_pd_then_apply_runs_the_engine_without_pd(modules, study_without_pd, models,
                                                                            scene, monkeypatch, tmp_path, caplog):
    import logging

    from DCEDiffSlicerLib import scene_io

    DCEDiff, _ = modules
    plain, dropout = models
    root, expected, database = study_without_pd
    nodes = load_as_slicer_does(root, database, scene, pixels=True)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", ErrorDisplayStandIn())
    errors = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, *a, **k: errors.append(text))  # Qt message box
    widget, p = make_widget(DCEDiff, monkeypatch)

    # the selected model needs PD: T2W, ADC and T1-pre are filled, PD is named, Apply stays disabled
    p.modelFile = str(plain)
    widget.onFillFromStudy()
    assert p.t2w is nodes[expected["t2w"]] and p.adc is nodes[expected["adc"]] and p.t1pre is not None
    assert p.pd is None
    assert "Not found: PD" in widget.ui.statusLabel.text and "augment.drop_pd" in widget.ui.statusLabel.text
    widget._updateApplyButton()
    assert not widget.ui.applyButton.enabled

    # a model trained without PD: the same study fills without complaint and Apply runs without PD
    p.modelFile = str(dropout)
    widget.onFillFromStudy()
    status = widget.ui.statusLabel.text
    assert "No PD in the study" in status and "Not found" not in status and p.pd is None
    assert any("no PD found" in line for line in widget.ui.logTextEdit.lines)
    widget._updateApplyButton()
    assert widget.ui.applyButton.enabled and "without PD" in widget.ui.applyButton.toolTip
    p.dceEarly = p.dceLate = None  # two registrations fewer (residuals and metrics are covered elsewhere)
    p.steps = 1
    monkeypatch.setattr(slicer, "app", SlicerAppStandIn(tmp_path), raising=False)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None)
    with caplog.at_level(logging.INFO):
        widget.onApplyButton()
    assert widget.logic.isRunning, (widget.ui.statusLabel.text, errors)
    (command,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DCEDiff: running ")]
    assert " --t2w " in command and " --adc " in command and " --t1pre " in command and " --pd " not in command
    assert f"--model {dropout}" in command
    deadline = time.monotonic() + 600
    while widget.logic.isRunning:  # what the module's QTimer does every 200 ms
        widget.logic._poll()
        assert time.monotonic() < deadline, "the engine did not finish in 600 s"
        time.sleep(0.2)
    log = "\n".join(widget.ui.logTextEdit.lines)
    assert errors == [] and widget.ui.statusLabel.text.startswith("Done"), (widget.ui.statusLabel.text, log)
    assert "Made without PD" in widget.ui.statusLabel.text
    assert "made WITHOUT proton density (PD)" in log
    made = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
    synthetic = [n for n in made if n.GetAttribute(scene_io.MISSING_ATTRIBUTE) == "pd"]
    assert synthetic and all("(without PD)" in n.GetName() for n in synthetic)
    assert any("early" in n.GetName() for n in synthetic) and any("late" in n.GetName() for n in synthetic)


def _split_node(scene, node):
    """Slicer's DICOM loader can split one series into several volumes: the node keeps the first half of its
    instance UIDs, a second node gets the rest. The series (all its files) is then scanned, picked, and loaded
    as no volume of its own."""
    uids = node.GetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE).split()
    assert len(uids) >= 2
    half = len(uids) // 2
    node.SetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE, " ".join(uids[:half]))
    other = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", node.GetName() + " (part 2)")
    other.SetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE, " ".join(uids[half:]))


def test_a_required_series_not_loaded_as_a_volume_of_its_own_is_missing_and_keeps_its_selection(study, scene):
    """docs/slicer.md: 'a role the study lacks (or whose series or DCE frame is not loaded as a volume of its
    own) is named and keeps its selection'."""
    root, expected, database = study
    nodes = load_as_slicer_does(root, database, scene)
    _split_node(scene, nodes[expected["adc"]])
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert "adc" not in fill.nodes and fill.missing == ["adc"]
    assert any("not loaded as a volume of its own" in note for note in fill.notes)
    assert "ADC" not in fill.message().split("Not found")[0]  # not listed as filled
    p = ParameterNodeStandIn(t2w=None, pd=None, adc="kept", t1pre=None, dceEarly=None, dceLate=None)
    study_fill.apply_fill(p, fill)
    assert p.adc == "kept" and p.t2w is nodes[expected["t2w"]]


def test_one_acquired_dce_found_alone_clears_both_dce_selectors(study, scene):
    """docs/slicer.md: 'the acquired DCE selectors are cleared unless both were found' (Apply needs both or
    neither)."""
    root, expected, database = study
    nodes = load_as_slicer_does(root, database, scene)
    _split_node(scene, nodes[expected["dce_late"][0]])
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert "dce_early" in fill.nodes and "dce_late" not in fill.nodes  # the scenario: early found, late not
    p = ParameterNodeStandIn(t2w=None, pd=None, adc=None, t1pre=None, dceEarly="old early", dceLate="old late")
    study_fill.apply_fill(p, fill)
    assert p.dceEarly is None and p.dceLate is None


@pytest.fixture(scope="module")
def other_study(phantom_case, tmp_path_factory):
    """Another exam (other patient, other UIDs: study_key) of the same phantom, as a second DICOM study."""
    from DCEDiffLib.phantom.study_export import write_phantom_study

    root = tmp_path_factory.mktemp("other_study") / "P-9"
    expected = write_phantom_study(phantom_case, root, omit=FEW, patient_id="P-9", study_key="-other")
    return root, expected, DicomDatabaseStandIn(root)


def test_with_two_studies_in_the_scene_the_selected_t2ws_study_is_filled(study, other_study, scene):
    """docs/slicer.md: 'With volumes of several studies in the scene, the study of the selected T2W is used'
    (and without one, a ValueError lists the studies)."""
    root1, expected1, database1 = study
    root2, expected2, database2 = other_study
    assert not set(database1.files) & set(database2.files)  # two exams: no shared instance UID
    nodes1 = load_as_slicer_does(root1, database1, scene)
    nodes2 = load_as_slicer_does(root2, database2, scene)
    files = {**database1.files, **database2.files}

    def lookup(uid):
        return files.get(uid, "")

    with pytest.raises(ValueError, match="2 DICOM studies"):
        study_fill.fill_from_study(scene, lookup)
    for nodes, expected, patient in ((nodes1, expected1, "P-1"), (nodes2, expected2, "P-9")):
        fill = study_fill.fill_from_study(scene, lookup, preferred=nodes[expected["t2w"]])
        assert fill.study.startswith(f"patient {patient},"), fill.study
        assert fill.nodes["t2w"] is nodes[expected["t2w"]] and fill.nodes["adc"] is nodes[expected["adc"]]
