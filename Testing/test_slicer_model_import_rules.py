"""The rules of where an imported model is kept and found again (docs/slicer.md, step 3; session 61, mutation audit
round 21): the model folder is ``$DCEDIFF_MODEL_DIR`` when it is set, else ``DCEDiff/models`` beside Slicer's user
settings file, and never relative to the engine's working folder; a scene whose recorded copy is missing uses the
same model (same SHA-256, the weights file of the recorded name in a ``<name>-<SHA-256 prefix>`` folder) from the
model folder first, then from the folder in Slicer's cache where earlier DCEDiff versions kept their copies, with
the parameter node's record updated to the copy used; a copy that is still there is used as it is; where none is
found, the panel names both folders searched. At Apply, a copy in that old folder is copied into the model folder
(only one in that folder, not one beside it, nor one already in the model folder set inside the cache).

Each test asserts what the rule says, so that the bug it was written for (named in its docstring) fails it.

Real parts: the shipped model and copies of it made by the engine's ``DCEDiffLib.model_store`` (as *Import model…*
does, in this process or in the engine's child Python), real folders, a real scene saved and reopened. Stand-ins:
those of Testing/test_slicer_model_import.py (``panel``: ``slicer.app``, the file dialog, the error display,
``setupPythonRequirements``; Qt's widgets from Testing/test_slicer_widget_lifecycle.py), which the slicer-core wheel
cannot run."""

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_model_import import (CASE, MODELS, SHIPPED, SHIPPED_FILES, apply_starts_with,  # noqa: E402,F401
                                      old_cache_copy, panel, reopen_scene, set_record, sha256,
                                      user_copy)
from test_slicer_widget_lifecycle import DCEDiff  # noqa: E402,F401  (fixture used by panel)

DIGEST = sha256(MODELS / SHIPPED_FILES[0])
WINDOWS_PATH = f"C:\\Users\\someone\\AppData\\Roaming\\slicer.org\\DCEDiff\\models\\x\\{SHIPPED_FILES[0]}"


def model_folder_copy(root: Path, source: Path) -> Path:
    """The engine's copy of the model at ``source`` in the model folder ``root`` (what *Import model…* makes, here
    or in another Slicer of this user)."""
    from DCEDiffLib import model_store

    return Path(model_store.store_model(source, root)["path"])


def record_of(widget) -> dict:
    return json.loads(widget._parameterNode.parameterNode.GetAttribute("DCEDiff.ImportedModel"))


# -- the model folder -----------------------------------------------------------------------------------------------

def test_a_blank_DCEDIFF_MODEL_DIR_is_not_set(DCEDiff, tmp_path):  # noqa: F811
    """An empty or blank variable names no folder: the folder beside the settings is used (bugs: any value taken,
    the current folder for an empty one; spaces not stripped, a folder named by blanks)."""
    settings = tmp_path / "slicer.org" / "Slicer.ini"
    for value in ("", "   "):
        assert DCEDiff.model_import.model_root(str(settings), {"DCEDIFF_MODEL_DIR": value}) == \
            tmp_path / "slicer.org" / "DCEDiff" / "models"


def test_DCEDIFF_MODEL_DIR_with_a_tilde_is_in_the_home_folder(DCEDiff, tmp_path, monkeypatch):  # noqa: F811
    """``~/…`` is the user's home, as a shell would read it (bug: a folder named ``~`` in the working folder)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = DCEDiff.model_import.model_root(str(tmp_path / "Slicer.ini"), {"DCEDIFF_MODEL_DIR": "~/dce models"})
    assert root == tmp_path / "home" / "dce models"


def test_the_environment_passed_is_the_one_read(DCEDiff, tmp_path, monkeypatch):  # noqa: F811
    """``environ`` given, even empty, replaces ``os.environ`` (bug: an empty mapping read as "not given")."""
    monkeypatch.setenv("DCEDIFF_MODEL_DIR", str(tmp_path / "from os.environ"))
    assert DCEDiff.model_import.model_root(str(tmp_path / "slicer.org" / "Slicer.ini"), {}) == \
        tmp_path / "slicer.org" / "DCEDiff" / "models"


def test_without_a_settings_file_or_DCEDIFF_MODEL_DIR_there_is_no_model_folder(DCEDiff, tmp_path):  # noqa: F811
    """No settings file named and no variable: an error naming the variable, not a relative ``DCEDiff/models`` in
    whatever folder the process runs in (bug: the check dropped); the variable alone is enough."""
    with pytest.raises(DCEDiff.model_import.ModelImportError, match="set DCEDIFF_MODEL_DIR"):
        DCEDiff.model_import.model_root("", {})
    assert DCEDiff.model_import.model_root("", {"DCEDIFF_MODEL_DIR": str(tmp_path / "m")}) == tmp_path / "m"


def test_a_relative_settings_path_is_taken_from_slicers_working_folder(DCEDiff, tmp_path, monkeypatch):  # noqa: F811
    """The engine's child runs in the engine's folder: a relative model folder would be another folder there (bug:
    the settings path not made absolute)."""
    monkeypatch.chdir(tmp_path)
    root = DCEDiff.model_import.model_root(str(Path("settings") / "Slicer.ini"), {})
    assert root.is_absolute() and root == tmp_path / "settings" / "DCEDiff" / "models"


def test_a_relative_DCEDIFF_MODEL_DIR_is_kept_in_slicers_working_folder(panel, tmp_path, monkeypatch):  # noqa: F811
    """A relative ``DCEDIFF_MODEL_DIR`` is read from the folder Slicer runs in, though the engine's import runs in
    the engine's folder (bug: the variable's path passed on relative, the copy made under the engine)."""
    _, widget, root, pick, box = panel
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DCEDIFF_MODEL_DIR", "relative models")
    pick(str(user_copy(tmp_path / "Downloads")))
    widget.onImportModel()
    copy = Path(widget._parameterNode.modelFile)
    assert box.shown == []
    assert copy == tmp_path / "relative models" / f"{SHIPPED}-{DIGEST[:16]}" / SHIPPED_FILES[0] and copy.is_file()


# -- a recorded copy that is missing --------------------------------------------------------------------------------

def test_a_recorded_copy_that_is_there_is_used_as_it_is(DCEDiff, tmp_path):  # noqa: F811
    """``find_stored_copy`` looks elsewhere only when the recorded copy is missing: an old copy still in Slicer's
    cache is not exchanged for the model folder's (bug: the ``is_file`` check dropped)."""
    model_import = DCEDiff.model_import
    source = user_copy(tmp_path / "Downloads")
    old = old_cache_copy(tmp_path / "SlicerIO", source)
    model_folder_copy(tmp_path / "models", source)
    record = {"path": str(old), "name": SHIPPED, "sha256": DIGEST}
    assert model_import.find_stored_copy(str(old), record, [tmp_path / "models"]) is None


@pytest.mark.parametrize("model_dir", [None, "shared models"])
def test_a_copy_left_in_slicers_cache_is_found_when_the_scene_names_another_place(panel, tmp_path, caplog,
                                                                                  monkeypatch, model_dir):
    """The model is only in the folder in Slicer's cache where an earlier DCEDiff kept it (not cleared), the scene
    names a copy on another computer: the old folder is searched too, and the record names the copy used with the
    recorded name and SHA-256 (bugs: the old folder never searched, looked for in the settings folder or in
    ``$DCEDIFF_MODEL_DIR``; the record's name replaced by the file's)."""
    _, widget, root, _, box = panel
    if model_dir:
        monkeypatch.setenv("DCEDIFF_MODEL_DIR", str(tmp_path / model_dir))
    old = old_cache_copy(tmp_path / "SlicerIO", user_copy(tmp_path / "Downloads"))
    set_record(widget, WINDOWS_PATH)
    reopen_scene()
    assert Path(widget._parameterNode.modelFile) == old
    assert record_of(widget) == {"path": str(old), "name": SHIPPED, "sha256": DIGEST}
    assert widget.ui.modelInfoLabel.text.startswith(f"Imported model: {SHIPPED}; trained on")
    models = tmp_path / model_dir if model_dir else root
    apply_starts_with(widget, models / old.parent.name / old.name, caplog)  # moved out of the cache at Apply
    assert box.shown == [] and old.is_file()


def test_the_model_folder_is_searched_before_slicers_cache(panel, tmp_path):  # noqa: F811
    """The same model in both folders: the model folder's copy is used, the one *Clear cache* does not delete
    (bugs: the old folder searched first, by the panel or by ``find_stored_copy``)."""
    _, widget, root, _, box = panel
    source = user_copy(tmp_path / "Downloads")
    old_cache_copy(tmp_path / "SlicerIO", source)
    copy = model_folder_copy(root, source)
    set_record(widget, WINDOWS_PATH)
    reopen_scene()
    assert Path(widget._parameterNode.modelFile) == copy and record_of(widget)["path"] == str(copy)
    assert box.shown == []


def test_a_half_written_or_set_aside_folder_is_not_a_copy(panel, tmp_path):  # noqa: F811
    """Only ``<name>-<SHA-256 prefix>`` folders hold copies: the hidden ``….partial`` folder of an import still being
    written and the ``….old`` one set aside by a replacement are not used, though they hold the weights (bug: a
    folder that merely contains the prefix taken)."""
    _, widget, root, _, box = panel
    for suffix in ("pid4242-host.x1y2.partial", "pid4242-host.x1y2.old"):
        user_copy(root / f".{SHIPPED}-{DIGEST[:16]}.{suffix}")
    set_record(widget, WINDOWS_PATH)
    reopen_scene()
    assert widget._parameterNode.modelFile == WINDOWS_PATH
    assert "is not on this computer" in widget.ui.modelInfoLabel.text


def test_the_copy_is_found_under_its_own_file_name(panel, tmp_path):  # noqa: F811
    """The weights file's name is the recorded one, letter case included, taken after the last ``\\`` of a Windows
    path (bug: the name lower-cased, as a case-insensitive Windows path might be)."""
    _, widget, root, _, box = panel
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    # the card and the error map's file keep their names inside the card: only the weights and card are renamed
    shutil.copyfile(MODELS / SHIPPED_FILES[0], downloads / "Prostate_DCE.safetensors")
    shutil.copyfile(MODELS / SHIPPED_FILES[1], downloads / "Prostate_DCE.json")
    shutil.copyfile(MODELS / SHIPPED_FILES[2], downloads / SHIPPED_FILES[2])
    copy = model_folder_copy(root, downloads / "Prostate_DCE.safetensors")
    set_record(widget, WINDOWS_PATH.replace(SHIPPED_FILES[0], "Prostate_DCE.safetensors"))
    reopen_scene()
    assert Path(widget._parameterNode.modelFile) == copy and copy.name == "Prostate_DCE.safetensors"
    assert box.shown == []


def test_a_checksum_in_capitals_is_the_same_checksum(DCEDiff, tmp_path):  # noqa: F811
    """Hex digits are read without regard to case; the copy found carries the checksum as the engine writes it
    (bugs: an upper-case record never matched; the record's spelling passed on)."""
    copy = model_folder_copy(tmp_path / "models", user_copy(tmp_path / "Downloads"))
    record = {"path": WINDOWS_PATH, "name": SHIPPED, "sha256": DIGEST.upper()}
    found = DCEDiff.model_import.find_stored_copy(WINDOWS_PATH, record, [tmp_path / "models"])
    assert found is not None and Path(found.path) == copy and found.sha256 == DIGEST


@pytest.mark.parametrize("recorded", ["a**", DIGEST[:16], "../" + DIGEST[3:]])
def test_a_record_whose_checksum_is_not_a_sha256_finds_nothing(panel, tmp_path, recorded):  # noqa: F811
    """A scene's record whose checksum is not 64 hex digits (edited, damaged) matches no copy and the panel says
    the model is missing; it is never read as a file pattern (bug: the check dropped, ``**`` raising in the panel's
    observer)."""
    _, widget, root, _, box = panel
    model_folder_copy(root, user_copy(tmp_path / "Downloads"))
    p = widget._parameterNode
    p.parameterNode.SetAttribute("DCEDiff.ImportedModel",
                                 json.dumps({"path": WINDOWS_PATH, "name": SHIPPED, "sha256": recorded}))
    p.modelFile = WINDOWS_PATH
    assert p.modelFile == WINDOWS_PATH and "is not on this computer" in widget.ui.modelInfoLabel.text


def test_a_missing_model_names_both_folders_searched(panel, tmp_path):  # noqa: F811
    """Where no copy is found, the panel names the model folder and the old folder in Slicer's cache, both searched
    (bug: only the first named)."""
    _, widget, root, _, box = panel
    set_record(widget, WINDOWS_PATH)
    label = widget.ui.modelInfoLabel.text
    assert f"no copy with this SHA-256 is in {root}, {tmp_path / 'SlicerIO' / 'DCEDiff' / 'models'}" in label


def test_a_missing_copy_set_outside_a_scene_load_is_found_too(panel, tmp_path):  # noqa: F811
    """The rule is the parameter node's, not the scene reader's: a model path and record set by a script, with the
    model in the model folder, switch to that copy at once (bug: the search only while a scene loads)."""
    _, widget, root, _, box = panel
    copy = model_folder_copy(root, user_copy(tmp_path / "Downloads"))
    set_record(widget, WINDOWS_PATH)
    assert Path(widget._parameterNode.modelFile) == copy and record_of(widget)["path"] == str(copy)
    assert widget.ui.modelInfoLabel.text.startswith(f"Imported model: {SHIPPED}; trained on")


def three_step_model(folder: Path) -> Path:
    """The shipped model under the name ``three_steps`` with its card's own count (``sampling.residual_steps``) 3
    instead of 1: another model to the steps box, the same weights."""
    folder.mkdir(parents=True)
    card = json.loads((MODELS / SHIPPED_FILES[1]).read_text(encoding="utf-8"))
    card["sampling"]["residual_steps"] = 3
    (folder / "three_steps.json").write_text(json.dumps(card), encoding="utf-8")
    shutil.copyfile(MODELS / SHIPPED_FILES[0], folder / "three_steps.safetensors")
    shutil.copyfile(MODELS / SHIPPED_FILES[2], folder / SHIPPED_FILES[2])
    return folder / "three_steps.safetensors"


def test_the_steps_box_shows_the_count_of_the_model_found(panel, tmp_path):  # noqa: F811
    """From the shipped model (1 step) to a recorded model found in the model folder whose card says 3: the box
    follows to the model's own count, as for any change of model (bug: the copy found taken for the model shown
    before, so that the steps rule never ran)."""
    _, widget, root, _, box = panel
    copy = model_folder_copy(root, three_step_model(tmp_path / "Downloads"))
    p = widget._parameterNode
    assert p.steps == 1  # the shipped model's own count
    p.parameterNode.SetAttribute("DCEDiff.ImportedModel",
                                 json.dumps({"path": WINDOWS_PATH.replace(SHIPPED, "three_steps"),
                                             "name": "three_steps", "sha256": DIGEST}))
    p.modelFile = WINDOWS_PATH.replace(SHIPPED, "three_steps")
    assert Path(p.modelFile) == copy and p.steps == 3


def set_inputs(widget) -> None:
    """The phantom case's four inputs on the parameter node (each a parameter change: the panel looks again)."""
    from DCEDiffSlicerLib import scene_io

    p = widget._parameterNode
    p.t2w, p.pd, p.adc, p.t1pre = (scene_io.load_phantom_volume(CASE / f"{key}.nii.gz", key)
                                   for key in ("t2w", "pd", "adc", "t1pre"))


def apply_command(widget, caplog) -> str:
    """Press Apply with nothing else changed; the command the engine was started with (then stopped)."""
    import logging

    try:
        with caplog.at_level(logging.INFO):
            widget.onApplyButton()
        assert widget.logic.isRunning, widget.ui.statusLabel.text
    finally:
        widget.logic.shutdown()
    (command,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DCEDiff: running ")]
    return command + " "


def test_a_model_that_came_after_the_scene_is_found_by_apply_with_the_steps_shown(panel, tmp_path, caplog):
    """The scene was opened before the model came to this computer (imported by another Slicer of this user, no
    parameter changed since): Apply looks again and runs that copy (bug: Apply only repeating the panel's message),
    with the count the box showed when Apply was pressed, 5, typed while the copy was missing: the same model found
    is no change of model (bugs: the switch run through the steps rule as a new model, the box moved to the card's
    1 under the user's eyes; so it was, until ``setImportedModel`` wrote the record and the path in one
    ModifiedEvent: the event between them reset the rule's model to the missing path)."""
    _, widget, root, _, box = panel
    set_record(widget, WINDOWS_PATH)
    set_inputs(widget)
    p = widget._parameterNode
    p.steps = 5
    assert "is not on this computer" in widget.ui.modelInfoLabel.text
    copy = model_folder_copy(root, user_copy(tmp_path / "Downloads"))
    command = apply_command(widget, caplog)
    assert f"--model {copy} " in command and "--steps 5 " in command
    assert box.shown == [] and p.steps == 5 and record_of(widget)["path"] == str(copy)


# -- a copy in Slicer's cache, moved at Apply -----------------------------------------------------------------------

def test_only_a_copy_inside_slicers_cache_is_moved(DCEDiff, tmp_path):  # noqa: F811
    """``legacy_copy_to_move`` takes an existing file inside the old folder only (bugs: a folder whose name merely
    starts like it, ``models-backup``, taken by a string prefix; a missing file moved; the shipped model's empty
    path read as the working folder; a failed move tried again)."""
    model_import = DCEDiff.model_import
    legacy, models = tmp_path / "SlicerIO" / "DCEDiff" / "models", tmp_path / "settings" / "DCEDiff" / "models"
    source = user_copy(tmp_path / "Downloads")
    old = old_cache_copy(tmp_path / "SlicerIO", source)
    beside = model_folder_copy(tmp_path / "SlicerIO" / "DCEDiff" / "models-backup", source)
    assert model_import.legacy_copy_to_move(str(old), legacy, models) == old
    assert model_import.legacy_copy_to_move(str(old), legacy, None) == old  # no model folder: still to be told
    for path in (str(beside), str(old.parent / "gone.safetensors"), "", str(source)):
        assert model_import.legacy_copy_to_move(path, legacy, models) is None, path
    assert model_import.legacy_copy_to_move(str(old), legacy, models, tried=[str(old)]) is None


def test_a_model_folder_set_inside_slicers_cache_moves_nothing(DCEDiff, tmp_path):  # noqa: F811
    """``DCEDIFF_MODEL_DIR`` naming the old folder itself (or one in it): the copy is already in the model folder,
    nothing is imported and nothing said (bug: the engine run to copy the model onto itself, "moved" told)."""
    legacy = tmp_path / "SlicerIO" / "DCEDiff" / "models"
    old = old_cache_copy(tmp_path / "SlicerIO", user_copy(tmp_path / "Downloads"))
    for model_dir in (legacy, legacy.parent):
        assert DCEDiff.model_import.move_legacy_copy(str(old), legacy, str(tmp_path / "Slicer.ini"), sys.executable,
                                                     environ={"DCEDIFF_MODEL_DIR": str(model_dir)}) is None


def test_without_a_model_folder_the_copy_stays_and_the_user_is_told(DCEDiff, tmp_path):  # noqa: F811
    """No settings file and no ``DCEDIFF_MODEL_DIR``: no move, the reason told, nothing raised (bug: the model
    folder's error stopping Apply)."""
    legacy = tmp_path / "SlicerIO" / "DCEDiff" / "models"
    old = old_cache_copy(tmp_path / "SlicerIO", user_copy(tmp_path / "Downloads"))
    moved = DCEDiff.model_import.move_legacy_copy(str(old), legacy, "", sys.executable,
                                                  {"name": "prostate", "sha256": DIGEST}, environ={})
    assert moved is not None and moved.imported is None
    assert moved.message.startswith(f"The imported model prostate is still used from Slicer's cache ({old}): it "
                                    "could not be copied into a model folder (no folder for imported models")


def test_a_move_whose_engine_cannot_start_is_told_not_raised(DCEDiff, tmp_path):  # noqa: F811
    """The engine's Python missing (a broken install): the launch itself fails (an ``OSError``, not the engine's
    refusal), and still the copy stays, nothing is raised and the user is told why, with the model folder named
    (found by a mutation audit: catching only ``ModelImportError`` passed the tests, and such a failure stopped
    Apply)."""
    legacy = tmp_path / "SlicerIO" / "DCEDiff" / "models"
    old = old_cache_copy(tmp_path / "SlicerIO", user_copy(tmp_path / "Downloads"))
    root = tmp_path / "models"
    moved = DCEDiff.model_import.move_legacy_copy(str(old), legacy, "", str(tmp_path / "no such python"),
                                                  {"name": "prostate", "sha256": DIGEST},
                                                  environ={"DCEDIFF_MODEL_DIR": str(root)})
    assert moved is not None and moved.imported is None and old.is_file()
    assert moved.message.startswith(f"The imported model prostate is still used from Slicer's cache ({old}): it "
                                    f"could not be copied into the model folder {root} (")
    assert "no such python" in moved.message  # the reason: the missing program


def test_a_move_onto_an_identical_copy_says_it_was_already_there(DCEDiff, tmp_path):  # noqa: F811
    """The engine reuses an identical copy already in the model folder, and the message says so; a first move does
    not (found by a mutation audit: dropping the 'already there' words passed the tests)."""
    legacy = tmp_path / "SlicerIO" / "DCEDiff" / "models"
    old = old_cache_copy(tmp_path / "SlicerIO", user_copy(tmp_path / "Downloads"))
    environ = {"DCEDIFF_MODEL_DIR": str(tmp_path / "models")}
    first = DCEDiff.model_import.move_legacy_copy(str(old), legacy, "", sys.executable, environ=environ)
    again = DCEDiff.model_import.move_legacy_copy(str(old), legacy, "", sys.executable, environ=environ)
    assert first.imported is not None and not first.imported.reused and "already there" not in first.message
    assert again.imported is not None and again.imported.reused and again.imported.path == first.imported.path
    assert "(the same model was already there)" in again.message
