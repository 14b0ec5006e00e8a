"""Which folder ``dcediff phantom`` may write a dataset into: a new or empty one, or (``--overwrite``) a phantom
dataset an earlier run wrote. Checked before any case is generated, so that a refusal leaves nothing half-written.

A dataset folder holds ``dataset.json`` and ``case_000``, ``case_001``, ...; each case folder holds its
``case.json``. A case folder given as ``--out`` was written *into* (a dataset nested in a case) before this check;
it is refused, whatever ``--cases``, naming the dataset folder that holds it. A user's folder is never written into
with ``--overwrite``, nor a ``case_NNN`` in it that a phantom run did not write, nor a dataset whose case folder
the command runs in (``cd X/case_001; dcediff phantom --out .. --overwrite``: the case writer refused it only at its
turn, after case_000 was rewritten).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, List, Optional

from DCEDiffLib.atomic import CASE_RECORD, path_inside
from DCEDiffLib.errors import InputError

DATASET_RECORD = "dataset.json"


def _json_object(record: Path) -> Optional[dict]:
    """The JSON object in ``record``, or None (missing, unreadable, not a JSON object)."""
    try:
        value = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _generator(record: Path) -> Optional[str]:
    """The ``generator`` a JSON record names, or None (missing, unreadable, not a JSON object)."""
    return (_json_object(record) or {}).get("generator")


def _enclosing_case_folder(out_dir: Path) -> Optional[Path]:
    """``out_dir`` or the nearest folder above it that holds a ``case.json`` (a case folder), or None; looked for
    where ``out_dir`` leads (symlinks followed: the case's own path, whose parent is its dataset) and along the
    path as written, with "." and ".." taken away (``--out ..`` from inside a case folder is its dataset)."""
    for path in (out_dir.resolve(), Path(os.path.abspath(out_dir))):
        for folder in [path, *path.parents]:
            if (folder / CASE_RECORD).is_file():
                return folder
    return None


def check_phantom_output_folder(out_dir: Path, case_names: Iterable[str], overwrite: bool,
                                generator_name: str) -> None:
    """Raise :class:`InputError` (naming ``--out``) where a phantom dataset must not be written into ``out_dir``:
    a case folder or a folder inside one; without ``overwrite`` a non-empty folder; with ``overwrite`` a
    non-empty folder that no phantom run wrote (no phantom ``dataset.json`` nor phantom case), a ``dataset.json``
    of another writer or unreadable, a ``case_NNN`` of ``case_names`` that is not a phantom case (it would be
    replaced), or a case folder to be replaced or removed that holds the current folder."""
    case = _enclosing_case_folder(out_dir)
    if case is not None:
        itself = case in (out_dir.resolve(), Path(os.path.abspath(out_dir)))
        where = "is a case folder" if itself else f"lies inside the case folder {case}"
        raise InputError(f"--out {out_dir} {where} (it holds {CASE_RECORD}); expected a dataset folder (new, empty, "
                         f"or with --overwrite one holding {DATASET_RECORD}): give --out {case.parent} "
                         "--overwrite to write that dataset again, or a new folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise InputError(f"output folder {out_dir} already exists and is not empty; "
                         "choose a new folder or pass --overwrite")
    record = out_dir / DATASET_RECORD
    dataset = _json_object(record) if record.exists() else None
    if record.exists() and (dataset or {}).get("generator") != generator_name:
        if dataset is not None:
            raise InputError(f"--out {out_dir}: its {DATASET_RECORD} was not written by dcediff phantom; --overwrite "
                             "replaces only a phantom dataset: choose a new folder")
        # a phantom writes it atomically: damaged since; whose it was cannot be told, so it is not replaced
        raise InputError(f"--out {out_dir}: its {DATASET_RECORD} cannot be read as a JSON object (damaged?); "
                         "--overwrite replaces only a dataset whose record says dcediff phantom wrote it: remove "
                         f"{record} if this is a phantom dataset, or choose a new folder")
    phantom_cases = [p for p in out_dir.glob("case_*") if _generator(p / CASE_RECORD) == generator_name]
    if not record.exists() and not phantom_cases:
        raise InputError(f"--out {out_dir} was not written by dcediff phantom (it has no {DATASET_RECORD} nor "
                         "phantom case folders); --overwrite replaces only a phantom dataset: choose a new folder, "
                         "or empty this one yourself")
    case_names = list(case_names)
    for name in case_names:
        folder = out_dir / name
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and \
                _generator(folder / CASE_RECORD) != generator_name:
            raise InputError(f"--out {out_dir}: {folder} is not a phantom case (no {CASE_RECORD} of dcediff "
                             "phantom) and --overwrite would replace it: move it away or choose a new folder")
    _refuse_replacing_the_current_folder(out_dir, case_names, generator_name)


def _refuse_replacing_the_current_folder(out_dir: Path, case_names: List[str], generator_name: str) -> None:
    """InputError where the current folder is (inside) a case folder --overwrite replaces or removes: the case
    writer refuses it, but only when that case's turn comes, after the cases before it were rewritten."""
    try:
        here = Path.cwd()
    except OSError:  # the current folder itself was deleted
        return
    for folder in sorted(out_dir.glob("case_*")):
        if folder.is_dir() and path_inside(here, folder) and \
                (folder.name in case_names or _generator(folder / CASE_RECORD) == generator_name):
            raise InputError(f"--out {out_dir}: the current folder {here} is {folder.resolve()} or inside it, and "
                             "--overwrite replaces that case folder whole: run the command from outside it (e.g. "
                             f"from {out_dir.resolve()})")
