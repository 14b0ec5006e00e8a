"""Which folder ``dcediff phantom`` may write a dataset into: a new or empty one, or (``--overwrite``) a phantom
dataset an earlier run wrote. Checked before any case is generated, so that a refusal leaves nothing half-written.

A dataset folder holds ``dataset.json`` and ``case_000``, ``case_001``, ...; each case folder holds its
``case.json``. A case folder given as ``--out`` was written *into* (a dataset nested in a case) before this check;
it is refused, whatever ``--cases``, naming the dataset folder that holds it. A user's folder is never written into
with ``--overwrite``, nor a ``case_NNN`` in it that a phantom run did not write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

from DCEDiffLib.atomic import CASE_RECORD
from DCEDiffLib.errors import InputError

DATASET_RECORD = "dataset.json"


def _generator(record: Path) -> Optional[str]:
    """The ``generator`` a JSON record names, or None (missing, unreadable, not a JSON object)."""
    try:
        value = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value.get("generator") if isinstance(value, dict) else None


def _enclosing_case_folder(out_dir: Path) -> Optional[Path]:
    """``out_dir`` or the nearest existing folder above it that holds a ``case.json`` (a case folder), or None."""
    for folder in [out_dir, *out_dir.absolute().parents]:
        if (folder / CASE_RECORD).is_file():
            return folder
    return None


def check_phantom_output_folder(out_dir: Path, case_names: Iterable[str], overwrite: bool,
                                generator_name: str) -> None:
    """Raise :class:`InputError` (naming ``--out``) where a phantom dataset must not be written into ``out_dir``:
    a case folder or a folder inside one; without ``overwrite`` a non-empty folder; with ``overwrite`` a
    non-empty folder that no phantom run wrote (no phantom ``dataset.json`` nor phantom case), a ``dataset.json``
    of another writer, or a ``case_NNN`` of ``case_names`` that is not a phantom case (it would be replaced)."""
    case = _enclosing_case_folder(out_dir)
    if case is not None:
        where = "is a case folder" if case == out_dir else f"lies inside the case folder {case}"
        raise InputError(f"--out {out_dir} {where} (it holds {CASE_RECORD}); expected a dataset folder (new, empty, "
                         f"or with --overwrite one holding {DATASET_RECORD}): give --out {case.absolute().parent} "
                         "--overwrite to write that dataset again, or a new folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise InputError(f"output folder {out_dir} already exists and is not empty; "
                         "choose a new folder or pass --overwrite")
    record = out_dir / DATASET_RECORD
    if record.exists() and _generator(record) != generator_name:
        raise InputError(f"--out {out_dir}: its {DATASET_RECORD} was not written by dcediff phantom; --overwrite "
                         "replaces only a phantom dataset: choose a new folder")
    phantom_cases = [p for p in out_dir.glob("case_*") if _generator(p / CASE_RECORD) == generator_name]
    if not record.exists() and not phantom_cases:
        raise InputError(f"--out {out_dir} was not written by dcediff phantom (it has no {DATASET_RECORD} nor "
                         "phantom case folders); --overwrite replaces only a phantom dataset: choose a new folder, "
                         "or empty this one yourself")
    for name in case_names:
        folder = out_dir / name
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and \
                _generator(folder / CASE_RECORD) != generator_name:
            raise InputError(f"--out {out_dir}: {folder} is not a phantom case (no {CASE_RECORD} of dcediff "
                             "phantom) and --overwrite would replace it: move it away or choose a new folder")
