"""Which patient a case folder holds, so that a split made on one data folder is not applied to another.

Phantom folders are always named ``case_000``, ``case_001``, ...: a split (``split.json``) that names cases by folder
name alone fits any phantom folder, and a resumed run or ``dcediff evaluate --split`` on another folder would train on
or score other patients without a word. A case's identity comes from its ``case.json``: a phantom's generating seed
and anatomy family (domain B of a seed is the same patient), or a DICOM dataset case's StudyInstanceUID. Folders
without one are not checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional

from DCEDiffLib.errors import InputError


def case_identity(case_dir: Path) -> Optional[str]:
    """The patient of ``case_dir`` in words (from its case.json), or None when it does not say."""
    try:
        record = json.loads((Path(case_dir) / "case.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("seed") is not None:  # a phantom case: its seed and anatomy family make the patient (domain B of
        # the same seed is the same patient at another site, docs/phantom.md)
        return f"phantom seed {record['seed']} anatomy {record.get('anatomy_family', 'procedural')}"
    study = (record.get("dataset") or {}).get("study_instance_uid") if isinstance(record.get("dataset"), dict) else None
    return f"study {study}" if study else None


# PatientID values that name no one (anonymisation placeholders): such cases are told apart by their study
_NO_PATIENT_ID = {"", "anonymous", "anon", "anonymized", "anonymised", "unknown", "none", "0", "n/a"}


def patient_of(case_dir: Path) -> Optional[str]:
    """The person behind ``case_dir``, for a split by patient: a DICOM dataset case's PatientID (two studies of one
    patient are one patient), else its identity (:func:`case_identity`); None when the case does not say."""
    try:
        record = json.loads((Path(case_dir) / "case.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    dataset = record.get("dataset") if isinstance(record, dict) else None
    if isinstance(dataset, dict):
        patient_id = str(dataset.get("patient_id") or "").strip()
        if patient_id.lower() not in _NO_PATIENT_ID:
            return f"patient {patient_id}"
    return case_identity(case_dir)


def patient_groups(case_dirs: Mapping[str, Path]) -> Dict[str, str]:
    """{case name: patient} for :func:`DCEDiffLib.training.split.split_cases`; a case that does not say is its own
    patient. When one PatientID would hold every case (an anonymisation that gave all the same ID), the studies
    are used instead: a split of one patient is impossible, and such an ID says nothing."""
    groups = {name: patient_of(path) or f"case {name}" for name, path in case_dirs.items()}
    if len(groups) >= 2 and len(set(groups.values())) == 1:
        groups = {name: case_identity(path) or f"case {name}" for name, path in case_dirs.items()}
    return groups


def identities(case_dirs: Mapping[str, Path], names: Iterable[str]) -> Dict[str, str]:
    """{name: identity} for the named cases that have one."""
    out = {}
    for name in names:
        identity = case_identity(case_dirs[name]) if name in case_dirs else None
        if identity is not None:
            out[name] = identity
    return out


def check_same_patients(split: dict, case_dirs: Mapping[str, Path], names: Iterable[str], where: str) -> None:
    """Raise :class:`InputError` when a case of ``names`` in ``case_dirs`` is another patient than the one the split
    recorded under that name (a split written before identities were recorded is not checked)."""
    recorded = split.get("identities") or {}
    wrong: List[str] = []
    for name in names:
        if name in recorded and name in case_dirs:
            now = case_identity(case_dirs[name])
            if now is not None and now != recorded[name]:
                wrong.append(f"{name} is {now}, the split's {name} was {recorded[name]}")
    if wrong:
        made_on = f" (made on {split['data']})" if split.get("data") else ""
        raise InputError(f"{where}: the data folder holds other patients than the split{made_on} names: "
                         f"{'; '.join(wrong[:3])}{'; …' if len(wrong) > 3 else ''}. Use the data folder the split "
                         "was made on (a split names cases by folder name only)")
