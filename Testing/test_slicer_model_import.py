"""*Import model…* keeps its own copy of the model: the engine checks the chosen file, and the file, its card and the
files the card names are copied into ``<model folder>/<name>-<SHA-256 prefix>/``, the model folder being
``DCEDiff/models`` beside Slicer's user settings (``slicer.app.slicerUserSettingsFilePath``) or ``$DCEDIFF_MODEL_DIR``;
that copy is the parameter node's ``modelFile``, with the model's name and SHA-256 in its ``DCEDiff.ImportedModel``
attribute.

Before, only the chosen file's path was remembered: a model moved or deleted after the import, or a scene opened on
another computer, gave "model card … missing" in the panel and a failed run. Then the copies were kept in Slicer's
cache folder (``slicer.app.cachePath``), which Slicer's *Clear cache* deletes whole: the imported model was gone.

Real parts: the shipped model (copied to a temporary folder), the engine's import in a child Python
(``python -m DCEDiffLib.model_store``, started by the real ``slicer.util.launchConsoleProcess``), a real engine run,
a real ``vtkMRMLScriptedModuleNode`` saved and reopened in a real scene. Stand-ins, for what the slicer-core wheel
has no Qt for: those of Testing/test_slicer_widget_lifecycle.py (``qt``, the parameter node wrapper, the panel's
widgets), ``SlicerAppStandIn`` (``slicer.app``: a temporary ``cachePath``, ``slicerUserSettingsFilePath`` and
``temporaryPath``, this process's startup environment), ``FileDialogStandIn`` (the file picked in
``qt.QFileDialog``), ``ErrorDisplayStandIn`` (``slicer.util.tryWithErrorDisplay``'s message box,
Testing/slicer_stand_ins.py) and ``setupPythonRequirements`` (the packages are installed here; its dialog cannot
run). *Clear cache* is done as Slicer's ``vtkCacheManager::ClearCache`` does it, on the real folder."""

import hashlib
import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slicer_stand_ins import ErrorDisplayStandIn  # noqa: E402
from test_slicer_study_fill import SlicerAppStandIn  # noqa: E402
from test_slicer_widget_lifecycle import DCEDiff, _load, make_widget  # noqa: E402,F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "Resources" / "Models"
CASE = ROOT / "Resources" / "SampleData" / "phantom_case"
SHIPPED = "dcediff_cpu_phantom"
SHIPPED_FILES = (f"{SHIPPED}.safetensors", f"{SHIPPED}.json", f"{SHIPPED}.error_trees.safetensors")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def panel(DCEDiff, monkeypatch, tmp_path):  # noqa: F811  (the fixture of test_slicer_widget_lifecycle)
    """(module, widget, model folder, pick, box): the panel with Slicer's cache (``tmp_path/SlicerIO``) and user
    settings (``tmp_path/settings/slicer.org/Slicer.ini``) in ``tmp_path``; ``pick(path)`` sets the file the next
    *Import model…* dialog returns; ``box.shown``: the error messages shown."""
    app = SlicerAppStandIn(tmp_path / "temporary")
    app.cachePath = str(tmp_path / "SlicerIO")  # qSlicerCoreApplication::cachePath creates it when read
    app.slicerUserSettingsFilePath = str(tmp_path / "settings" / "slicer.org" / "Slicer.ini")
    (tmp_path / "temporary").mkdir()
    (tmp_path / "SlicerIO").mkdir()
    (tmp_path / "settings" / "slicer.org").mkdir(parents=True)
    monkeypatch.delenv("DCEDIFF_MODEL_DIR", raising=False)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None)
    box = ErrorDisplayStandIn()
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", box)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, parent=None, mode="ask": False)
    picked = []
    # FileDialogStandIn: qt.QFileDialog.getOpenFileName returns the file the test picked
    monkeypatch.setattr(DCEDiff.qt.QFileDialog, "getOpenFileName", lambda *args: picked[-1], raising=False)
    widget = make_widget(DCEDiff)
    return DCEDiff, widget, tmp_path / "settings" / "slicer.org" / "DCEDiff" / "models", picked.append, box


def user_copy(folder: Path) -> Path:
    """The shipped model's three files copied to ``folder`` (where a user keeps a downloaded model)."""
    folder.mkdir(parents=True)
    for name in SHIPPED_FILES:
        shutil.copyfile(MODELS / name, folder / name)
    return folder / SHIPPED_FILES[0]


def entries(root: Path) -> list:
    """Everything in the cache root, hidden partial folders included."""
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.slow  # a real engine run (registration, one sampling step) in a child Python
def test_an_imported_model_still_runs_after_the_picked_file_is_deleted(panel, tmp_path):
    _, widget, root, pick, box = panel
    weights = user_copy(tmp_path / "Downloads")
    before = {name: sha256(weights.parent / name) for name in SHIPPED_FILES}
    pick(str(weights))
    widget.onImportModel()
    assert box.shown == []
    p = widget._parameterNode
    digest = before[SHIPPED_FILES[0]]
    entry = root / f"{SHIPPED}-{digest[:16]}"
    assert Path(p.modelFile) == entry / SHIPPED_FILES[0]
    assert sorted(f.name for f in entry.iterdir()) == sorted(SHIPPED_FILES)  # the card's error-map file too
    assert {name: sha256(weights.parent / name) for name in SHIPPED_FILES} == before  # the original untouched
    assert widget.ui.modelInfoLabel.text.startswith(f"Imported model: {SHIPPED}; trained on")
    assert f"Model {SHIPPED} imported." == widget.ui.statusLabel.text

    shutil.rmtree(weights.parent)  # the user tidies up the download
    from DCEDiffSlicerLib import scene_io

    volumes = [scene_io.load_phantom_volume(CASE / f"{key}.nii.gz", key) for key in ("t2w", "pd", "adc", "t1pre")]
    result = widget.logic.process(*volumes, model=p.modelFile, steps=1, device="cpu", showResult=False,
                                  timeoutSeconds=300)
    assert result.nodes["synthetic_early"] is not None and result.nodes["synthetic_late"] is not None
    assert result.provenance["model"] == SHIPPED


def test_a_second_import_of_the_same_model_reuses_its_copy(panel, tmp_path):
    _, widget, root, pick, box = panel
    pick(str(user_copy(tmp_path / "Downloads")))
    widget.onImportModel()
    cached = Path(widget._parameterNode.modelFile)
    inode = cached.stat().st_ino
    widget.onImportModel()  # the same file again
    assert box.shown == []
    assert Path(widget._parameterNode.modelFile) == cached and cached.stat().st_ino == inode  # not copied again
    assert widget.ui.statusLabel.text == f"Model {SHIPPED} imported (already in the model folder)."
    assert entries(root) == [cached.parent.name]


@pytest.mark.parametrize("damage", ["truncated", "pickled"])
def test_a_corrupt_model_is_refused_and_leaves_nothing_in_the_model_folder(panel, tmp_path, damage):
    module, widget, root, pick, box = panel
    weights = user_copy(tmp_path / "Downloads")
    data = weights.read_bytes()
    # pickled: what torch.save writes without zip (pickle protocol 4); never unpickled, refused by its first bytes
    weights.write_bytes(data[:len(data) // 2] if damage == "truncated" else pickle.dumps({"state_dict": [0.5] * 64}))
    pick(str(weights))
    expected = "does not match the card" if damage == "truncated" else "looks like a pickled PyTorch checkpoint"
    with pytest.raises(module.model_import.ModelImportError, match=expected):
        widget.onImportModel()  # shown, then raised again (Slicer's Qt slot logs the traceback)
    (shown,) = box.shown
    assert shown.startswith("The model was not imported.") and str(weights) in shown and expected in shown
    assert widget._parameterNode.modelFile == ""  # still the shipped model
    assert entries(root) == []  # no entry, no half-written folder


def test_a_reopened_scene_whose_cached_model_is_missing_names_the_model_and_its_checksum(panel, tmp_path):
    """The scene is saved, and opened where the cached copy is not (another computer, or Slicer's cache cleared):
    the panel and Apply name the model and its SHA-256 and say to import it again."""
    _, widget, root, pick, box = panel
    pick(str(user_copy(tmp_path / "Downloads")))
    widget.onImportModel()
    digest = sha256(MODELS / SHIPPED_FILES[0])
    slicer.mrmlScene.SetSaveToXMLString(1)
    slicer.mrmlScene.Commit()
    xml = slicer.mrmlScene.GetSceneXMLString()
    shutil.rmtree(root)  # the other computer has no such copy
    _load(xml)
    label = widget.ui.modelInfoLabel.text
    assert f"imported model {SHIPPED} (SHA-256 {digest})" in label and "is not on this computer" in label
    assert "Import the model file again" in label and "card" not in label
    with pytest.raises(ValueError, match="Import the model file again"):
        widget.onApplyButton()
    (shown,) = box.shown
    assert shown.startswith("DCEDiff could not start.") and digest in shown and "Import the model file again" in shown
    widget.onUseShippedModel()  # and the way back works
    assert widget._parameterNode.modelFile == "" and widget.ui.modelInfoLabel.text.startswith("Shipped model:")


def reopen_scene() -> None:
    """File > Save scene, then File > Load scene of the saved file (the scene is closed first, as Slicer does)."""
    slicer.mrmlScene.SetSaveToXMLString(1)
    slicer.mrmlScene.Commit()
    _load(slicer.mrmlScene.GetSceneXMLString())


def clear_cache(cache: Path) -> None:
    """What Slicer's Settings > Cache > Clear cache does (vtkCacheManager::ClearCache): the cache folder is removed
    with everything in it, then made again, empty."""
    shutil.rmtree(cache)
    cache.mkdir()


def apply_starts_with(widget, model: Path, caplog) -> None:
    """Apply with the phantom case: the model check passes and the engine starts with ``model`` (then stopped)."""
    import logging

    from DCEDiffSlicerLib import scene_io

    p = widget._parameterNode
    p.t2w, p.pd, p.adc, p.t1pre = (scene_io.load_phantom_volume(CASE / f"{key}.nii.gz", key)
                                   for key in ("t2w", "pd", "adc", "t1pre"))
    try:
        with caplog.at_level(logging.INFO):
            widget.onApplyButton()
        assert widget.logic.isRunning, widget.ui.statusLabel.text
    finally:
        widget.logic.shutdown()  # the run itself: test_an_imported_model_still_runs_after_the_picked_file_is_deleted
    (command,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DCEDiff: running ")]
    assert f"--model {model} " in command


def old_cache_copy(cache: Path, source: Path) -> Path:
    """A copy where DCEDiff kept imported models before (``<cachePath>/DCEDiff/models``), made by the engine."""
    from DCEDiffLib import model_store

    return Path(model_store.store_model(source, cache / "DCEDiff" / "models")["path"])


def set_record(widget, path: str) -> None:
    """The parameter node as a scene of an earlier DCEDiff left it: ``modelFile`` and its record naming ``path``."""
    p = widget._parameterNode
    record = f'{{"path": {json.dumps(path)}, "name": "{SHIPPED}", "sha256": "{sha256(MODELS / SHIPPED_FILES[0])}"}}'
    p.parameterNode.SetAttribute("DCEDiff.ImportedModel", record)
    p.modelFile = path


def test_an_imported_model_survives_slicers_clear_cache(panel, tmp_path, caplog):
    """Slicer's *Clear cache* deletes the whole cache folder: the copy is kept outside it, beside Slicer's user
    settings, so the reopened scene still runs the imported model."""
    _, widget, root, pick, box = panel
    pick(str(user_copy(tmp_path / "Downloads")))
    widget.onImportModel()
    copy = Path(widget._parameterNode.modelFile)
    clear_cache(tmp_path / "SlicerIO")
    reopen_scene()
    assert Path(widget._parameterNode.modelFile) == copy and copy.is_file()
    assert widget.ui.modelInfoLabel.text.startswith(f"Imported model: {SHIPPED}; trained on")
    apply_starts_with(widget, copy, caplog)
    assert box.shown == []
    assert copy.parent.parent == root and tmp_path / "SlicerIO" not in copy.parents


def test_a_scene_naming_a_copy_in_slicers_cache_still_runs_it(panel, tmp_path, caplog):
    """A scene saved by an earlier DCEDiff names its copy in Slicer's cache folder: where that copy is still there,
    the panel uses it as it is, and Apply runs it (the old DCEDiff's rule), moved first into the model folder."""
    _, widget, root, _, box = panel
    copy = old_cache_copy(tmp_path / "SlicerIO", user_copy(tmp_path / "Downloads"))
    set_record(widget, str(copy))
    reopen_scene()
    assert Path(widget._parameterNode.modelFile) == copy and entries(root) == []  # nothing copied before Apply
    assert widget.ui.modelInfoLabel.text.startswith(f"Imported model: {SHIPPED}; trained on")
    apply_starts_with(widget, root / copy.parent.name / copy.name, caplog)
    assert box.shown == []


def moved_message(widget) -> list:
    """The lines of the panel's log that tell of the imported model's move out of Slicer's cache."""
    return [line for line in widget.ui.logTextEdit.lines if "Slicer's cache" in line]


def test_apply_moves_a_copy_in_slicers_cache_into_the_model_folder(panel, tmp_path, caplog):
    """Before, a copy an earlier DCEDiff kept in Slicer's cache stayed there, used until the next *Clear cache*
    deleted it. Apply copies it into the model folder by the engine's import and the scene names that copy, with
    the steps typed kept (the same model); the cache's copy is left for another Slicer version's scenes."""
    _, widget, root, _, box = panel
    old = old_cache_copy(tmp_path / "SlicerIO", user_copy(tmp_path / "Downloads"))
    set_record(widget, str(old))
    reopen_scene()
    p = widget._parameterNode
    p.steps = 5
    moved = root / old.parent.name / old.name
    apply_starts_with(widget, moved, caplog)
    assert box.shown == [] and p.steps == 5
    assert Path(p.modelFile) == moved and sha256(moved) == sha256(old) and old.is_file()
    assert json.loads(p.parameterNode.GetAttribute("DCEDiff.ImportedModel")) == \
        {"path": str(moved), "name": SHIPPED, "sha256": sha256(old)}
    assert sorted(f.name for f in moved.parent.iterdir()) == sorted(SHIPPED_FILES)  # its card and error map too
    (told,) = moved_message(widget)
    assert told.startswith(f"Moved the imported model {SHIPPED} out of Slicer's cache into {moved.parent}, where "
                           "Clear cache does not delete it") and str(old) in told
    clear_cache(tmp_path / "SlicerIO")
    reopen_scene()
    assert Path(widget._parameterNode.modelFile) == moved  # outlives Clear cache


def test_a_move_that_fails_is_told_once_and_the_cache_copy_runs(panel, tmp_path, caplog, monkeypatch):
    """The model folder cannot be made (``DCEDIFF_MODEL_DIR`` names a file): Apply runs the copy in the cache as
    before and the log says why it was not moved; the next Apply neither tries again nor says it again."""
    _, widget, root, _, box = panel
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where the model folder would be", encoding="utf-8")
    monkeypatch.setenv("DCEDIFF_MODEL_DIR", str(blocker))
    old = old_cache_copy(tmp_path / "SlicerIO", user_copy(tmp_path / "Downloads"))
    set_record(widget, str(old))
    apply_starts_with(widget, old, caplog)
    assert box.shown == [] and widget._parameterNode.modelFile == str(old) and old.is_file()
    (told,) = moved_message(widget)
    assert told.startswith(f"The imported model {SHIPPED} is still used from Slicer's cache ({old}): it could not "
                           f"be copied into the model folder {blocker} (") and "DCEDIFF_MODEL_DIR" in told
    assert blocker.read_text(encoding="utf-8") == "a file where the model folder would be"
    caplog.clear()
    apply_starts_with(widget, old, caplog)
    assert moved_message(widget) == [] and box.shown == []


def test_a_model_outside_slicers_cache_is_not_moved(panel, tmp_path, caplog):
    """An imported model elsewhere (here a folder named like the cache's, beside it) runs where it is: nothing is
    copied into the model folder and nothing is said."""
    _, widget, root, _, box = panel
    elsewhere = old_cache_copy(tmp_path / "SlicerIO-other", user_copy(tmp_path / "Downloads"))
    set_record(widget, str(elsewhere))
    apply_starts_with(widget, elsewhere, caplog)
    assert widget._parameterNode.modelFile == str(elsewhere) and moved_message(widget) == []
    assert box.shown == [] and entries(root) == []


@pytest.mark.parametrize("recorded", ["slicer cache, since cleared", "another computer (Windows)"])
def test_a_missing_copy_is_found_by_its_checksum_in_the_model_folder(panel, tmp_path, caplog, recorded):
    """The scene names a copy that is gone (kept in Slicer's cache by an earlier DCEDiff and cleared, or saved on
    another computer) while the same model was imported here: the panel finds it by name and SHA-256 and uses it."""
    _, widget, root, pick, box = panel
    pick(str(user_copy(tmp_path / "Downloads")))
    widget.onImportModel()
    copy = Path(widget._parameterNode.modelFile)
    if recorded.startswith("slicer cache"):
        old = str(old_cache_copy(tmp_path / "SlicerIO", tmp_path / "Downloads" / SHIPPED_FILES[0]))
        clear_cache(tmp_path / "SlicerIO")
    else:
        old = f"C:\\Users\\someone\\AppData\\Roaming\\slicer.org\\DCEDiff\\models\\x\\{SHIPPED_FILES[0]}"
    set_record(widget, old)
    reopen_scene()
    p = widget._parameterNode
    assert Path(p.modelFile) == copy
    assert json.loads(p.parameterNode.GetAttribute("DCEDiff.ImportedModel"))["path"] == str(copy)  # saved so
    assert widget.ui.modelInfoLabel.text.startswith(f"Imported model: {SHIPPED}; trained on")
    apply_starts_with(widget, copy, caplog)
    assert box.shown == []


def test_a_copy_whose_checksum_differs_is_not_taken_for_the_recorded_model(panel, tmp_path):
    """A folder of the right name holding other weights (altered by hand) is not the recorded model."""
    _, widget, root, _, box = panel
    digest = sha256(MODELS / SHIPPED_FILES[0])
    folder = root / f"{SHIPPED}-{digest[:16]}"
    user_copy(folder)
    data = bytearray((folder / SHIPPED_FILES[0]).read_bytes())
    data[-1] ^= 1
    (folder / SHIPPED_FILES[0]).write_bytes(bytes(data))
    gone = str(tmp_path / "SlicerIO" / "DCEDiff" / "models" / folder.name / SHIPPED_FILES[0])
    set_record(widget, gone)
    assert widget._parameterNode.modelFile == gone
    label = widget.ui.modelInfoLabel.text
    assert "is not on this computer" in label and f"no copy with this SHA-256 is in {root}" in label


def test_the_model_folder_can_be_set_with_DCEDIFF_MODEL_DIR(panel, tmp_path, monkeypatch):
    _, widget, root, pick, box = panel
    monkeypatch.setenv("DCEDIFF_MODEL_DIR", str(tmp_path / "shared models"))
    pick(str(user_copy(tmp_path / "Downloads")))
    widget.onImportModel()
    copy = Path(widget._parameterNode.modelFile)
    assert copy.parent.parent == tmp_path / "shared models" and copy.is_file()
    assert box.shown == [] and entries(root) == []
