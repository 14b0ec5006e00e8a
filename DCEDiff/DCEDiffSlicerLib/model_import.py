"""*Import model…* (plain Python, no Slicer import): the model the user picks is checked by the engine and copied
into Slicer's cache folder (``DCEDiffLib/model_store.py``, run in the engine's process: torch never runs in Slicer's
own), and the module remembers the copy, with the model's name and SHA-256 for when the copy is not there (a scene
opened on another computer, Slicer's cache cleared).

The cache root is ``<slicer.app.cachePath>/DCEDiff/models``: Slicer's per-user cache folder (the same for every
Slicer version: ``Cache/Path`` of the user settings, default ``<user cache>/slicer.org/SlicerIO``), which
``qSlicerCoreApplication::cachePath`` creates when it is missing (Slicer 5.6 to 5.12 and main).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Optional

from DCEDiffSlicerLib import process_runner

# set on the module's parameter node (saved with the scene) beside its modelFile: {"path", "name", "sha256"}
RECORD_ATTRIBUTE = "DCEDiff.ImportedModel"
IMPORT_TIMEOUT_SECONDS = 600.0  # reading and hashing a large model on a slow disk; a hung child is killed after it


class ModelImportError(RuntimeError):
    """The model was not imported; the message says why (the engine's refusal, naming the file)."""


@dataclasses.dataclass
class ImportedModel:
    """The cached copy that runs (``path``, its .safetensors), the model's ``name`` and weights' ``sha256``, and
    whether an identical copy was already in the cache (``reused``)."""

    path: str
    name: str
    sha256: str
    reused: bool = False

    def record(self) -> str:
        """The JSON text stored in :data:`RECORD_ATTRIBUTE`."""
        return json.dumps({"path": self.path, "name": self.name, "sha256": self.sha256})


def cache_root(slicer_cache_path: str) -> Path:
    """Where imported models are kept: ``<slicer_cache_path>/DCEDiff/models``."""
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


def missing_model_message(model_file: str, record: Optional[dict]) -> Optional[str]:
    """What to tell the user when the imported model's weights are not at ``model_file`` (None when they are, or
    for the shipped model): the model's name and SHA-256 when the scene recorded them, and to import it again."""
    if not model_file or Path(model_file).is_file():
        return None
    if record:
        return (f"The imported model {record.get('name')} (SHA-256 {record.get('sha256')}) is not on this computer: "
                f"{model_file} is missing (a scene from another computer, or Slicer's cache was cleared). Import the "
                "model file again with Import model…, or use the shipped model.")
    return (f"The imported model file {model_file} is missing. Import the model file again with Import model…, or "
            "use the shipped model.")
