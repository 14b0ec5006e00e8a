"""The synthetic early/late DCE of a run as DERIVED, SYNTHETIC-marked DICOM MR series in the T2W's study, put into
Slicer's DICOM database, from where the DICOM module sends them to PACS (*Send results to DICOM database*).

Scene code only: the series are written by the engine's writer, the one ``dcediff synthesize --dicom`` uses
(:mod:`DCEDiffLib.dicom_results`: ImageType ``DERIVED\\SECONDARY\\OTHER``, SeriesDescription ``SYNTHETIC [OOD-WARNING]
[NO-PD] early DCE (DCEDiff)``, Manufacturer ``DCEDiff (SYNTHETIC image, not acquired)``, the provenance line in
DerivationDescription and ImageComments, new UIDs, the T2W's patient, study and frame of reference). This file finds
what it needs in the scene: the result nodes (``DCEDiff.Synthetic`` and ``DCEDiff.Role`` ``synthetic_early`` /
``synthetic_late``), the T2W's DICOM files (its ``DICOM.instanceUIDs`` → the DICOM database, as *Fill from study*),
the T2W's own grid (its DICOM series read with SimpleITK), and the label and flags from the result nodes'
attributes (as ``scene_io.load_results`` sets them). Slicer's own *DICOM → Export* cannot mark a series DERIVED
(CreateDICOMSeries writes ``ORIGINAL\\PRIMARY``; ``scene_io.tag_for_dicom_export``).

Imports ``slicer`` only for the defaults (``slicer.dicomDatabase``, ``DICOMLib.DICOMUtils.importDicom``); runs under
the PyPI ``slicer-core`` wheel with those given (``Testing/test_slicer_dicom_export.py``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffSlicerLib.study_fill import INSTANCE_UIDS_ATTRIBUTE, dicom_files

SERIES_ROLES = {"synthetic_early": "early", "synthetic_late": "late"}
SERIES_NUMBER_TAG = "0020,0011"  # ctkDICOMDatabase.fileValue's form of a tag
DEFAULT_SUBFOLDER = "DCEDiff"  # under the DICOM database's folder, as Slicer's DICOMweb import keeps its downloads
WHAT = "Send to DICOM database"


@dataclasses.dataclass
class DicomExport:
    """What :func:`export_results_to_dicom` wrote and imported: the folder, the study joined, and per result
    ("early"/"late") the series' description, number, SeriesInstanceUID and folder."""

    folder: Path
    study_uid: str
    series: Dict[str, Dict[str, object]]

    def message(self) -> str:
        """One line for the status label."""
        listed = "; ".join(f"#{info['series_number']} {info['description']}" for info in self.series.values())
        return (f"Written as DERIVED DICOM series in the T2W's study and added to the DICOM database: {listed} "
                f"(folder {self.folder}). Send them to PACS from the DICOM module.")


def synthetic_series_nodes(nodes) -> Dict[str, object]:
    """"early"/"late" → the synthetic DCE result node among ``nodes`` (a run's ``{role: node}`` or any iterable of
    nodes): those flagged ``DCEDiff.Synthetic`` whose ``DCEDiff.Role`` is ``synthetic_early``/``synthetic_late``
    (residual, uncertainty and expected-error maps are not images of the patient and are not sent)."""
    from DCEDiffSlicerLib.scene_io import ROLE_ATTRIBUTE, SYNTHETIC_ATTRIBUTE

    found: Dict[str, object] = {}
    for node in (nodes.values() if isinstance(nodes, dict) else nodes or ()):
        get = getattr(node, "GetAttribute", None)
        if get is None or node.GetScene() is None or (get(SYNTHETIC_ATTRIBUTE) or "").lower() != "true":
            continue
        short = SERIES_ROLES.get(get(ROLE_ATTRIBUTE) or "")
        if short is not None:
            found[short] = node
    return found


def newest_run_for_t2w(t2w, scene=None) -> Dict[str, object]:
    """The newest run's ``{"synthetic_early": node, "synthetic_late": node}`` in the scene made from ``t2w`` (result
    nodes whose node reference ``scene_io.T2W_REFERENCE_ROLE`` is the T2W, as ``scene_io.load_results`` sets it and
    a saved scene keeps), or ``{}`` when there is none. A run is the nodes sharing one ``DCEDiff.Run`` id; the newest
    is the run whose synthetic early/late node comes last in the scene's node order, which is the order the nodes
    were added and the order a saved .mrml is written and read back in (no clock is involved). Early and late
    always come from that one run: where it lacks one of them (deleted), the answer is ``{}``, never the other from
    an older run, nor an older run in its place. Only strings are compared: cheap enough for a button's state."""
    from DCEDiffSlicerLib.scene_io import ROLE_ATTRIBUTE, RUN_ATTRIBUTE, SYNTHETIC_ATTRIBUTE, T2W_REFERENCE_ROLE

    t2w_id = t2w.GetID() if hasattr(t2w, "GetID") else None  # None: nothing selected
    scene = scene if scene is not None else (t2w.GetScene() if t2w_id else None)
    if scene is None or not t2w_id:
        return {}
    runs: Dict[str, Dict[str, object]] = {}
    newest = None
    for node in scene.GetNodes():  # one pass over the collection, in order
        role = node.GetAttribute(ROLE_ATTRIBUTE)
        run = node.GetAttribute(RUN_ATTRIBUTE)
        if (role not in SERIES_ROLES or not run or (node.GetAttribute(SYNTHETIC_ATTRIBUTE) or "").lower() != "true"
                or node.GetNodeReferenceID(T2W_REFERENCE_ROLE) != t2w_id):
            continue
        runs.setdefault(run, {})[role] = node  # a copy of a result later in the scene stands for it
        newest = run
    found = runs.get(newest, {})
    return found if len(found) == len(SERIES_ROLES) else {}


def t2w_dicom_files(t2w, file_for_instance: Callable[[str], str]) -> List[str]:
    """The DICOM files of the T2W node, through its ``DICOM.instanceUIDs`` and the database; ValueError naming what
    is missing when it was not loaded from DICOM or its files are no longer in the database."""
    if t2w is None:
        raise ValueError(f"{WHAT}: no T2W; expected the T2W the results were made from")
    uids = (t2w.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    if not uids:
        raise ValueError(f"{WHAT}: the T2W {t2w.GetName()!r} was not loaded from DICOM (no {INSTANCE_UIDS_ATTRIBUTE}"
                         "), so there is no study for the series to join; expected a T2W loaded with the DICOM "
                         "module (or use DICOM → Export, which writes them as ORIGINAL images)")
    files = dicom_files(t2w, file_for_instance)
    if len(files) != len(uids):
        raise ValueError(f"{WHAT}: {len(uids) - len(files)} of the {len(uids)} DICOM files of the T2W "
                         f"{t2w.GetName()!r} are no longer in the DICOM database; expected its series in the database "
                         "(import the study again)")
    return files


def t2w_reference(files: List[str], name: str) -> sitk.Image:
    """The T2W's own grid, its DICOM series read with the engine's reader (the grid the series are written on)."""
    from DCEDiffLib.dicom_study import read_study_volume, scan_files

    studies = scan_files(files, f"the DICOM files of the T2W {name!r}")
    series = [s for study in studies for s in study.series]
    volumes = series[0].volumes() if len(series) == 1 else []
    if len(volumes) != 1:
        raise ValueError(f"{WHAT}: the DICOM files of the T2W {name!r} hold {len(series)} series and "
                         f"{len(volumes)} volume(s); expected one series of one volume")
    return read_study_volume(volumes[0], f"T2W {name!r}")


def image_in_t2w_frame(node, t2w) -> sitk.Image:
    """The result node as a float32 SimpleITK image on its own grid (LPS), in the T2W's DICOM frame: results are
    made in world coordinates, where a parent transform of the T2W puts it; its inverse brings them back onto the
    T2W's files. The nodes are not modified."""
    from DCEDiffSlicerLib.scene_io import LPS_FROM_RAS, node_ijk_to_ras, volume_node_to_image

    image = volume_node_to_image(node, node.GetName())
    world_from_t2w = node_ijk_to_ras(t2w, world=True) @ np.linalg.inv(node_ijk_to_ras(t2w, world=False))
    if np.allclose(world_from_t2w, np.eye(4), atol=1e-9):
        return image
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    ijk_to_lps[:3, 3] = image.GetOrigin()
    local = LPS_FROM_RAS @ np.linalg.inv(world_from_t2w) @ LPS_FROM_RAS @ ijk_to_lps
    spacing = np.linalg.norm(local[:3, :3], axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (local[:3, :3] / spacing).ravel()])
    image.SetOrigin([float(v) for v in local[:3, 3]])
    return image


def label_and_flags(node) -> Tuple[str, List[str], Dict[str, object]]:
    """(provenance line, description flags, provenance) from a result node's attributes, as the engine writes them
    for ``--dicom``: the line of ``pipeline.provenance_text`` (with ". WARNING: <out-of-distribution summary>" where
    the run was flagged), flags ``OOD-WARNING`` / ``NO-PD``."""
    from DCEDiffLib.ood import summary_line
    from DCEDiffLib.pipeline import OOD_DESCRIP, missing_descrip, provenance_text
    from DCEDiffSlicerLib.scene_io import MISSING_ATTRIBUTE, OOD_ATTRIBUTE, PROVENANCE_PREFIX

    provenance: Dict[str, object] = {}
    for key in node.GetAttributeNames():
        if key.startswith(PROVENANCE_PREFIX):
            text = node.GetAttribute(key) or ""
            provenance[key[len(PROVENANCE_PREFIX):]] = _attribute_value(text)
    for key in ("dcediff_version", "model", "sampler", "steps", "seed", "samples"):  # a scene of an older DCEDiff
        provenance.setdefault(key, "unknown")
    label = provenance_text(provenance)
    flags: List[str] = []
    ood = json.loads(node.GetAttribute(OOD_ATTRIBUTE) or "null")
    if isinstance(ood, dict):
        flags.append(OOD_DESCRIP)
        score, threshold = ood.get("score"), ood.get("threshold")
        if isinstance(score, (int, float)) and isinstance(threshold, (int, float)):
            summary = summary_line({"checked": True, "flagged": True, **ood})
            more = len(ood.get("reasons") or []) - 1
            summary += f" (+{more} more reason(s) in synthesis.json)" if more > 0 else ""
        else:
            summary = "inputs OUT OF the model's training distribution"
        label += f". WARNING: {summary}"
    missing = [m for m in (node.GetAttribute(MISSING_ATTRIBUTE) or "").split(",") if m]
    if missing:
        flags.append(missing_descrip(missing))
    return label, flags, provenance


def _attribute_value(text: str):
    """A provenance attribute back as the engine had it: JSON for lists and dicts, whole numbers as int."""
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return int(text) if text.lstrip("-").isdigit() else text


def export_results_to_dicom(nodes, t2w, out_dir=None, database=None,
                            import_folder: Optional[Callable[..., bool]] = None) -> DicomExport:
    """Write the synthetic early/late DCE among ``nodes`` (a run's result nodes) as DICOM MR series in the study of
    the T2W node ``t2w``, on the T2W's DICOM grid, and add them to the DICOM database.

    ``out_dir``: a new (or empty) folder to write into, whose files the database then copies; default: a new folder
    ``DCEDiff/<date-time>`` in the database's own folder, indexed where it is. ``database``: default
    ``slicer.dicomDatabase``; ``import_folder(folder, database, copyFiles)``: default
    ``DICOMLib.DICOMUtils.importDicom``. Refused with ValueError naming what is missing, and nothing written: no
    DICOM database, no synthetic result node, a T2W not loaded from DICOM or whose files left the database. The
    folder is written whole or not at all; a failed import keeps it and says so."""
    from DCEDiffLib.atomic import atomic_directory
    from DCEDiffLib.dicom_results import dicom_target, series_description, write_dicom_results
    from DCEDiffLib.dicom_study import read_dicom_header, tag_text
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.working_grid import paste_back

    if database is None:
        import slicer

        database = getattr(slicer, "dicomDatabase", None)
    if database is None or not database.isOpen:
        raise ValueError(f"{WHAT}: Slicer has no DICOM database open; expected one (open the DICOM module once)")
    results = synthetic_series_nodes(nodes)
    if not results:
        raise ValueError(f"{WHAT}: no synthetic early or late DCE result node (DCEDiff.Synthetic, role "
                         "synthetic_early/synthetic_late) in the scene; expected the results of a DCEDiff run "
                         "(Apply first)")
    name = t2w.GetName() if t2w is not None else "T2W"
    files = t2w_dicom_files(t2w, lambda uid: database.fileForInstance(uid) or "")
    reference = t2w_reference(files, name)
    try:
        target = dicom_target(files, used_series_numbers(database, files), name=f"T2W {name!r}")
        images = {short: paste_back(image_in_t2w_frame(node, t2w), reference) for short, node in results.items()}
    except InputError as exc:
        raise ValueError(f"{WHAT}: {exc}") from exc
    label, flags, provenance = label_and_flags(results.get("early") or results["late"])
    copy = out_dir is not None
    folder = Path(out_dir) if copy else _new_folder(Path(database.databaseDirectory) / DEFAULT_SUBFOLDER)
    try:
        with atomic_directory(folder) as tmp:
            write_dicom_results(images, tmp, target, label, flags, provenance, shown_as=str(folder))
    except InputError as exc:
        raise ValueError(f"{WHAT}: {exc}") from exc
    if import_folder is None:
        from DICOMLib import DICOMUtils

        import_folder = DICOMUtils.importDicom
    series = {short: {"description": series_description(short, flags), "folder": str(folder / info["folder"]),
                      "series_number": info["series_number"],
                      "series_instance_uid": info["series_instance_uid"]}
              for short, info in target.series.items() if short in images}
    if not import_folder(str(folder), database, copy):
        raise ValueError(f"{WHAT}: the series were written to {folder} but the DICOM database did not import them "
                         "(see the Python console); import that folder with the DICOM module")
    header = read_dicom_header(files[0])
    return DicomExport(folder, tag_text(header, "0020|000d") if header is not None else "", series)


def used_series_numbers(database, t2w_files: List[str]) -> List[int]:
    """The series numbers of the T2W's study in the database (a series sent before is there too), so that new
    series take others; the T2W's own number where the database cannot list the study's series."""
    from DCEDiffLib.dicom_study import read_dicom_header, tag_text

    header = read_dicom_header(t2w_files[0])
    study_uid = tag_text(header, "0020|000d") if header is not None else ""
    numbers = [tag_text(header, "0020|0011")] if header is not None else []
    for series_uid in (database.seriesForStudy(study_uid) if study_uid else ()):
        first = database.filesForSeries(series_uid, 1)
        if first:
            numbers.append(database.fileValue(first[0], SERIES_NUMBER_TAG))
    return [int(n) for n in (str(n).strip() for n in numbers) if n.isdigit()]


def _new_folder(parent: Path) -> Path:
    """A folder name under ``parent`` that does not exist yet: ``<date>-<time>``, then ``-2``, ``-3``, ..."""
    stem = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, count = parent / stem, 1
    while folder.exists():
        count += 1
        folder = parent / f"{stem}-{count}"
    return folder
