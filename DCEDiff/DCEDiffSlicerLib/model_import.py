"""*Import model…* (plain Python, no Slicer import): the model the user picks is checked by the engine and copied
into DCEDiff's model folder (``DCEDiffLib/model_store.py``, run in the engine's process: torch never runs in Slicer's
own), and the module remembers the copy, with the model's name and SHA-256 for when the copy is not there (a scene
opened on another computer): the same model is then looked for by its SHA-256 (:func:`find_stored_copy`).

The model folder (:func:`model_root`) is ``$DCEDIFF_MODEL_DIR`` when set, else ``<settings folder>/DCEDiff/models``,
the settings folder being the one of ``slicer.app.slicerUserSettingsFilePath`` (``Slicer.ini``: per user, for all
Slicer versions; ``~/.config/slicer.org`` on Linux and macOS, ``%APPDATA%/slicer.org`` on Windows, the application
home in a portable install), where Slicer keeps its own downloads (ScreenCapture's ffmpeg, user terminologies).
It is not Slicer's cache folder (``slicer.app.cachePath``, where DCEDiff up to now kept its copies): *Clear cache* in
Slicer's settings (``vtkCacheManager::ClearCache``) deletes that folder whole, and imported models are kept for months.
Copies an earlier DCEDiff left in the cache (:func:`legacy_cache_root`) still run and are still found by SHA-256;
one that a parameter node names is copied into the model folder at Apply (:func:`move_legacy_copy`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from DCEDiffSlicerLib import process_runner

# set on the module's parameter node (saved with the scene) beside its modelFile: {"path", "name", "sha256"}
RECORD_ATTRIBUTE = "DCEDiff.ImportedModel"
IMPORT_TIMEOUT_SECONDS = 600.0  # reading and hashing a large model on a slow disk; a hung child is killed after it
MODEL_DIR_VARIABLE = "DCEDIFF_MODEL_DIR"  # the model folder, instead of the one beside Slicer's user settings


class ModelImportError(RuntimeError):
    """The model was not imported; the message says why (the engine's refusal, naming the file)."""


@dataclasses.dataclass
class ImportedModel:
    """The copy that runs (``path``, its .safetensors), the model's ``name`` and weights' ``sha256``, and whether an
    identical copy was already in the model folder (``reused``)."""

    path: str
    name: str
    sha256: str
    reused: bool = False

    def record(self) -> str:
        """The JSON text stored in :data:`RECORD_ATTRIBUTE`."""
        return json.dumps({"path": self.path, "name": self.name, "sha256": self.sha256})


def model_root(user_settings_file: str, environ: Optional[Mapping[str, str]] = None) -> Path:
    """Where imported models are kept: ``$DCEDIFF_MODEL_DIR`` (``environ``, default ``os.environ``) when set, else
    ``<folder of user_settings_file>/DCEDiff/models`` (pass ``slicer.app.slicerUserSettingsFilePath``)."""
    override = (os.environ if environ is None else environ).get(MODEL_DIR_VARIABLE, "").strip()
    if override:
        return Path(override).expanduser().absolute()
    if not user_settings_file:
        raise ModelImportError(f"no folder for imported models: Slicer named no user settings file; set "
                               f"{MODEL_DIR_VARIABLE} to a writable folder")
    return Path(user_settings_file).absolute().parent / "DCEDiff" / "models"


def legacy_cache_root(slicer_cache_path: str) -> Path:
    """Where DCEDiff kept imported models before (``<slicer_cache_path>/DCEDiff/models``): only searched, never
    written, since Slicer's *Clear cache* deletes it."""
    return Path(slicer_cache_path) / "DCEDiff" / "models"


def import_command(python: str, weights: str, root: Path) -> list:
    """``<python> -m DCEDiffLib.model_store WEIGHTS ROOT``; run it with the working directory
    :func:`process_runner.engine_root`."""
    return [str(python), "-m", "DCEDiffLib.model_store", str(Path(weights).absolute()), str(root)]


def import_model(weights: str, root: Path, python: str, launch: Callable = process_runner.default_launch,
                 timeout: float = IMPORT_TIMEOUT_SECONDS) -> ImportedModel:
    """Check ``weights`` with the engine and copy it into ``root`` (blocking); raises :class:`ModelImportError`
    with the engine's reason when the model is refused or cannot be copied."""
    runner = process_runner.ProcessRunner(import_command(python, weights, root), cwd=str(process_runner.engine_root()),
                                          launch=launch).start()
    result = runner.wait(timeout=timeout)
    if not result.ok:
        raise ModelImportError(result.error or f"model {weights} was not imported (the engine stopped)")
    for line in reversed(result.log_tail):
        if line.startswith("{"):
            stored = json.loads(line)
            return ImportedModel(stored["path"], stored["name"], stored["sha256"], bool(stored.get("reused")))
    raise ModelImportError(f"model {weights}: the engine said nothing about its copy; last output: "
                           + " | ".join(result.log_tail[-5:]))


def find_stored_copy(model_file: str, record: Optional[dict], roots: Iterable[Path]) -> Optional[ImportedModel]:
    """The same imported model elsewhere when its recorded copy ``model_file`` is missing: the weights file of that
    name in a ``<name>-<SHA-256 prefix>`` folder of one of ``roots`` (in order) whose SHA-256 is the record's
    (:func:`read_record`). None when ``model_file`` is there, when there is no record, or no such copy."""
    if not model_file or Path(model_file).is_file() or not record:
        return None
    from DCEDiffLib.file_digest import file_digest  # plain hashlib: fine in Slicer's process
    from DCEDiffLib.model_store import SHA_PREFIX  # the folder names the engine writes (no torch at import)

    digest = str(record.get("sha256") or "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        return None
    weights_name = re.split(r"[\\/]", model_file)[-1]  # a scene saved on Windows names it with backslashes
    for root in roots:
        try:
            folders = sorted(Path(root).glob(f"*-{digest[:SHA_PREFIX]}"))  # hidden partial folders end .partial
        except OSError:
            continue
        for folder in folders:
            candidate = folder / weights_name
            try:
                if candidate.is_file() and file_digest(candidate, "sha256") == digest:
                    return ImportedModel(str(candidate), str(record.get("name") or weights_name), digest,
                                         reused=True)
            except OSError:  # unreadable: not this copy
                continue
    return None


def read_record(text: Optional[str], model_file: str) -> Optional[dict]:
    """The stored record (:data:`RECORD_ATTRIBUTE`) when it describes ``model_file``; None otherwise (no record, a
    scene of an older DCEDiff, or a model path set some other way since)."""
    try:
        record = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(record, dict) or not model_file or record.get("path") != model_file:
        return None
    return record


def missing_model_message(model_file: str, record: Optional[dict], searched: Iterable[Path] = ()) -> Optional[str]:
    """What to tell the user when the imported model's weights are not at ``model_file`` (None when they are, or
    for the shipped model): the model's name and SHA-256 when the scene recorded them, the folders ``searched``
    for it (:func:`find_stored_copy`), and to import it again."""
    if not model_file or Path(model_file).is_file():
        return None
    if record:
        where = ", ".join(str(root) for root in searched)
        return (f"The imported model {record.get('name')} (SHA-256 {record.get('sha256')}) is not on this computer: "
                f"{model_file} is missing (a scene from another computer, or the copy was deleted)"
                + (f" and no copy with this SHA-256 is in {where}" if where else "")
                + ". Import the model file again with Import model…, or use the shipped model.")
    return (f"The imported model file {model_file} is missing. Import the model file again with Import model…, or "
            "use the shipped model.")


def legacy_copy_to_move(model_file: str, legacy_root: Path, root: Optional[Path],
                        tried: Iterable[str] = ()) -> Optional[Path]:
    """The copy to move into the model folder ``root`` at Apply: ``model_file`` when it is an existing file in the
    folder of Slicer's cache where earlier DCEDiff versions kept imported models (``legacy_root``,
    :func:`legacy_cache_root`), which *Clear cache* deletes. None for the shipped model (empty), a missing file, a
    file elsewhere, a file already in ``root`` (``$DCEDIFF_MODEL_DIR`` set inside that cache folder: nowhere else to
    go) or one in ``tried`` (its move failed before: the user was told, once). ``root`` None: no model folder."""
    from DCEDiffLib.atomic import path_inside  # links resolved: a cache reached through a link is the cache

    if not model_file or model_file in set(tried):
        return None
    path = Path(model_file)
    if (not path.is_file() or not path_inside(path, Path(legacy_root))
            or (root is not None and path_inside(path, root))):
        return None
    return path


@dataclasses.dataclass
class LegacyMove:
    """What became of a copy in Slicer's cache at Apply: ``imported``, the copy in the model folder to use (None
    when the move failed and the copy in the cache still runs), and ``message``, what to tell the user."""

    imported: Optional[ImportedModel]
    message: str


def move_failed_message(name: str, legacy: Path, root: Optional[Path], error: object) -> str:
    """What to tell the user once when the copy ``legacy`` of the model ``name`` could not go into ``root``."""
    folder = f"the model folder {root}" if root is not None else "a model folder"
    return (f"The imported model {name} is still used from Slicer's cache ({legacy}): it could not be copied into "
            f"{folder} ({error}). Slicer's Clear cache would delete it: make the folder writable, or set "
            f"{MODEL_DIR_VARIABLE} to a writable folder, and restart Slicer (its next Apply tries again), "
            "or import the model again with Import model….")


def move_legacy_copy(model_file: str, legacy_root: Path, user_settings_file: str, python: str,
                     record: Optional[dict] = None, tried: Iterable[str] = (),
                     launch: Callable = process_runner.default_launch, timeout: float = IMPORT_TIMEOUT_SECONDS,
                     environ: Optional[Mapping[str, str]] = None) -> Optional[LegacyMove]:
    """Copy the imported model ``model_file`` into the model folder (:func:`model_root` of ``user_settings_file``
    and ``environ``) by the engine's import run with ``python`` (:func:`import_model`: checked, an identical copy
    reused) when it is a copy in Slicer's cache (:func:`legacy_copy_to_move`); None when it is not. The copy in the
    cache is kept: another Slicer version's scene may name it. Never raises: the move must not stop a run, so a
    failure (no model folder, one not writable, the engine's refusal) is a message saying why, naming ``record``'s
    model (:func:`read_record`)."""
    try:
        root: Optional[Path] = model_root(user_settings_file, environ)
        no_root = None
    except ModelImportError as error:
        root, no_root = None, error
    legacy = legacy_copy_to_move(model_file, legacy_root, root, tried)
    if legacy is None:
        return None
    name = str((record or {}).get("name") or legacy.stem)
    if root is None:
        return LegacyMove(None, move_failed_message(name, legacy, root, no_root))
    try:
        imported = import_model(str(legacy), root, python, launch=launch, timeout=timeout)
    except Exception as error:  # any reason: the run goes on with the copy in the cache, the user is told why
        return LegacyMove(None, move_failed_message(name, legacy, root, error))
    already = " (the same model was already there)" if imported.reused else ""
    return LegacyMove(imported, f"Moved the imported model {imported.name} out of Slicer's cache into "
                                f"{Path(imported.path).parent}{already}, where Clear cache does not delete it; "
                                f"the copy in the cache ({legacy}) is left for other Slicer versions.")
