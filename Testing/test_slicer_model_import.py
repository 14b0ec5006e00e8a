"""*Import model…* keeps its own copy of the model: the engine checks the chosen file, and the file, its card and the
files the card names are copied into ``<slicer.app.cachePath>/DCEDiff/models/<name>-<SHA-256 prefix>/``; that copy
is the parameter node's ``modelFile``, with the model's name and SHA-256 in its ``DCEDiff.ImportedModel`` attribute.

Before, only the chosen file's path was remembered: a model moved or deleted after the import, or a scene opened on
another computer, gave "model card … missing" in the panel and a failed run.

Real parts: the shipped model (copied to a temporary folder), the engine's import in a child Python
(``python -m DCEDiffLib.model_store``, started by the real ``slicer.util.launchConsoleProcess``), a real engine run,
a real ``vtkMRMLScriptedModuleNode`` saved and reopened in a real scene. Stand-ins, for what the slicer-core wheel
has no Qt for: those of Testing/test_slicer_widget_lifecycle.py (``qt``, the parameter node wrapper, the panel's
widgets), ``SlicerAppStandIn`` (``slicer.app``: a temporary ``cachePath`` and ``temporaryPath``, this process's
startup environment), ``FileDialogStandIn`` (the file picked in ``qt.QFileDialog``), ``ErrorDisplayStandIn``
(``slicer.util.tryWithErrorDisplay``'s message box, Testing/slicer_stand_ins.py) and ``setupPythonRequirements``
(the packages are installed here; its dialog cannot run)."""

import hashlib
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
    """(module, widget, cache root, pick, box): the panel with Slicer's cache in ``tmp_path``; ``pick(path)`` sets
    the file the next *Import model…* dialog returns; ``box.shown``: the error messages shown."""
    app = SlicerAppStandIn(tmp_path / "temporary")
    app.cachePath = str(tmp_path / "SlicerIO")  # qSlicerCoreApplication::cachePath creates it when read
    (tmp_path / "temporary").mkdir()
    (tmp_path / "SlicerIO").mkdir()
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None)
    box = ErrorDisplayStandIn()
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", box)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, parent=None, mode="ask": False)
    picked = []
    # FileDialogStandIn: qt.QFileDialog.getOpenFileName returns the file the test picked
    monkeypatch.setattr(DCEDiff.qt.QFileDialog, "getOpenFileName", lambda *args: picked[-1], raising=False)
    widget = make_widget(DCEDiff)
    return DCEDiff, widget, tmp_path / "SlicerIO" / "DCEDiff" / "models", picked.append, box


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


def test_a_second_import_of_the_same_model_reuses_its_cache_entry(panel, tmp_path):
    _, widget, root, pick, box = panel
    pick(str(user_copy(tmp_path / "Downloads")))
    widget.onImportModel()
    cached = Path(widget._parameterNode.modelFile)
    inode = cached.stat().st_ino
    widget.onImportModel()  # the same file again
    assert box.shown == []
    assert Path(widget._parameterNode.modelFile) == cached and cached.stat().st_ino == inode  # not copied again
    assert widget.ui.statusLabel.text == f"Model {SHIPPED} imported (already in the cache)."
    assert entries(root) == [cached.parent.name]


@pytest.mark.parametrize("damage", ["truncated", "pickled"])
def test_a_corrupt_model_is_refused_and_leaves_nothing_in_the_cache(panel, tmp_path, damage):
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
