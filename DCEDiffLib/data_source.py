"""Where an input comes from: a DCEDiff phantom, or anything else.

A model trained only on phantoms has never seen a real exam, and statistics of the inputs alone cannot always tell
a real exam from a phantom (docs/ood.md: a real exam given without PD scored inside the thresholds). The phantom
therefore marks what it writes, and the out-of-distribution check asks for that mark (``ood.apply_data_domain``):

- NIfTI: ``descrip`` starting with ``PHANTOM_MARK`` (``write_case``); NRRD/MHA: the key ``SOURCE_KEY``;
- DICOM: Manufacturer (0008,0070) = ``PHANTOM_MARK`` (``dicom_export``, ``study_export``);
- in memory: the image's metadata ``SOURCE_KEY`` (``generate_case`` sets it; readers of marked DICOM carry it);
- a file beside a phantom ``case.json`` (``"synthetic": true``, generator "DCEDiff phantom"): cases written
  before the files carried the mark.

Anything unmarked counts as "not a DCEDiff phantom": that is the safe side for a phantom-only model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

PHANTOM_MARK = "DCEDiff phantom (synthetic)"
PHANTOM = "DCEDiff phantom"
NOT_MARKED = "not marked as a DCEDiff phantom"
SOURCE_KEY = "DCEDiff_source"
_MANUFACTURER = "0008|0070"
_TEXT_KEYS = (SOURCE_KEY, "descrip", "ITK_FileNotes", "description", _MANUFACTURER)


SYNTHETIC_KEY = "DCEDiff_synthetic"  # "true" in every volume DCEDiff writes as a result (pipeline.write_outputs)
RESULT_DESCRIP = "SYNTHETIC"  # how a result's NIfTI descrip starts (pipeline.provenance_descrip)
# how the Slicer module tags a result for Slicer's DICOM export (DCEDiffSlicerLib.scene_io.tag_for_dicom_export):
# SeriesDescription "SYNTHETIC ... (DCEDiff)", Manufacturer "DCEDiff (SYNTHETIC image, not acquired)"
RESULT_MANUFACTURER = "DCEDiff"


def is_dcediff_result(image) -> bool:
    """Whether a SimpleITK image (with the metadata read from its file) is a volume DCEDiff wrote as a result: the
    key ``SYNTHETIC_KEY`` (NRRD/MHA), or a NIfTI ``descrip`` of ``pipeline.provenance_descrip``'s form
    ("SYNTHETIC ... seed=N"). A phantom's files are marked otherwise (``PHANTOM_MARK``) and are not results."""
    if image.HasMetaDataKey(SYNTHETIC_KEY) and image.GetMetaData(SYNTHETIC_KEY).strip().lower() == "true":
        return True
    text = image.GetMetaData("descrip").strip() if image.HasMetaDataKey("descrip") else ""
    return text.startswith(RESULT_DESCRIP + " ") and " seed=" in text


def dicom_result_mark(description: str, manufacturer: str) -> str:
    """Which tag marks a DICOM series as a DCEDiff result, e.g. ``SeriesDescription 'SYNTHETIC early DCE (DCEDiff)'``,
    or "" for any other series: a SeriesDescription starting with "SYNTHETIC" or a Manufacturer starting with
    "DCEDiff" (case-insensitive), as a result exported through Slicer's DICOM module says (and may come back from a
    PACS with its study). The phantom's Manufacturer (``PHANTOM_MARK``) is no such mark: a phantom is an input."""
    description, manufacturer = str(description or "").strip(), str(manufacturer or "").strip()
    if description.upper().startswith(RESULT_DESCRIP):
        return f"SeriesDescription {description!r}"
    if manufacturer.lower().startswith(RESULT_MANUFACTURER.lower()) and not _marked(manufacturer):
        return f"Manufacturer {manufacturer!r}"
    return ""


def _marked(text: str) -> bool:
    return str(text).strip().startswith(PHANTOM_MARK)


def mark_phantom(image) -> None:
    """Put the phantom mark on a SimpleITK image's metadata (kept in memory and in NRRD/MHA files)."""
    image.SetMetaData(SOURCE_KEY, PHANTOM_MARK)


def _metadata_marked(holder) -> bool:
    """``holder``: a SimpleITK image or a reader that has read a header."""
    return any(holder.HasMetaDataKey(key) and _marked(holder.GetMetaData(key)) for key in _TEXT_KEYS)


def phantom_case_params(case_dir: Path) -> Optional[dict]:
    """The parameters of a DCEDiff phantom case folder (its ``case.json``: ``"synthetic": true``, generator "DCEDiff
    phantom"), or None for any other folder."""
    try:
        params = json.loads((Path(case_dir) / "case.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(params, dict) and params.get("synthetic") is True and \
            str(params.get("generator", "")).startswith(PHANTOM):
        return params
    return None


def _beside_phantom_case_json(path: Path) -> bool:
    return phantom_case_params(path.parent) is not None


def _file_marked(path: Path) -> bool:
    from DCEDiffLib.volume_io import read_header

    header = read_header(path)
    return header is not None and _metadata_marked(header)


def _dicom_folder_marked(folder: Path) -> bool:
    """The first file of the folder that reads as an image decides (a phantom writes one series per folder)."""
    from DCEDiffLib.volume_io import read_header

    for path in sorted(p for p in folder.rglob("*") if p.is_file())[:20]:
        header = read_header(path)
        if header is not None:
            return _metadata_marked(header)
    return False


def input_source(value) -> str:
    """``PHANTOM`` when ``value`` (a path to a volume file or DICOM folder, or a SimpleITK image) carries the
    phantom mark, else ``NOT_MARKED``. Never raises: an unreadable input is simply not marked."""
    import SimpleITK as sitk

    try:
        if isinstance(value, sitk.Image):
            return PHANTOM if _metadata_marked(value) else NOT_MARKED
        path = Path(value)
        if path.is_dir():
            return PHANTOM if _dicom_folder_marked(path) else NOT_MARKED
        if path.is_file():
            return PHANTOM if (_file_marked(path) or _beside_phantom_case_json(path)) else NOT_MARKED
    except (TypeError, OSError, RuntimeError):
        pass
    return NOT_MARKED


def input_sources(inputs: Mapping[str, object], modalities: Sequence[str]) -> Dict[str, str]:
    """:func:`input_source` of each of ``modalities`` given in ``inputs`` (missing ones are left out)."""
    return {m: input_source(inputs[m]) for m in modalities if inputs.get(m) is not None}
