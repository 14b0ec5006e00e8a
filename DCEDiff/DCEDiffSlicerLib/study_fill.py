"""Fill the input selectors from the DICOM study loaded into the scene ("Fill from study").

The rules are the engine's (:mod:`DCEDiffLib.study_roles`, the same as ``dcediff synthesize --study``); this file
only connects them to the scene: a volume node loaded by Slicer's DICOM module carries the SOP Instance UIDs of its
files in the attribute ``DICOM.instanceUIDs``; the DICOM database gives each UID's file; the engine scans those
files' headers (SimpleITK, no pixel data except the DCE frames when the T1-pre is the last frame before contrast
arrival) and picks a series (and frame) per role; each pick is mapped back to the volume node loaded from exactly
those files. A DCEDiff result exported to DICOM and loaded back (SeriesDescription "SYNTHETIC ...", Manufacturer
"DCEDiff ...") is skipped by the engine's rules, named in the lines and the status line. Imports ``slicer`` only
for the default scene; runs under the PyPI ``slicer-core`` wheel.

A DCE series with several temporal positions is loaded by Slicer's DICOM module, by default, as a volume sequence
(MultiVolumeImporterPlugin: a ``vtkMRMLSequenceNode`` whose items carry their frame's ``DICOM.instanceUIDs``, a
browser, and one proxy scalar volume node holding, attributes included, whatever item the browser shows). Every item
is scanned, so the engine sees the whole series; a proxy node is never picked (its content follows the browser);
a picked frame becomes a scalar volume node of its own, a copy of that item (found again by the next fill).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"
# engine role → DCEDiffParameterNode attribute
PARAMETERS = {"t2w": "t2w", "pd": "pd", "adc": "adc", "t1pre": "t1pre", "dce_early": "dceEarly",
              "dce_late": "dceLate", "dce_baseline": "dceBaseline"}
LABELS = {"t2w": "T2W", "pd": "PD", "adc": "ADC", "t1pre": "T1 pre-contrast", "dce_early": "acquired early DCE",
          "dce_late": "acquired late DCE", "dce_baseline": "acquired DCE pre-contrast frame"}


@dataclasses.dataclass
class StudyFill:
    """What "Fill from study" found: role → volume node, the engine's pick lines, what is missing, a summary."""

    nodes: Dict[str, object]
    lines: List[str]
    missing: List[str]           # required roles (t2w, pd, adc, t1pre) with no pick or no loaded node
    notes: List[str]             # beyond the pick lines' own notes: scan warnings, series not loaded as volumes
    study: str                   # "patient P, study UID"
    absent: List[str] = dataclasses.field(default_factory=list)   # optional roles the study lacks (PD), allowed
    optional: Tuple[str, ...] = ()  # the roles the selected model can do without (its card's optional_inputs)
    not_loaded: List[str] = dataclasses.field(default_factory=list)  # roles picked whose volume is not in the scene
    copied: List[str] = dataclasses.field(default_factory=list)  # roles whose frame was copied out of a sequence
    # loaded series that are DCEDiff results (exported to DICOM, read back from the database): never filled in
    skipped: List[str] = dataclasses.field(default_factory=list)
    # picks to check by eye (the engine's StudyPicks.warnings): a T1-pre no loaded DCE series could date
    warnings: List[str] = dataclasses.field(default_factory=list)

    def message(self) -> str:
        """One line for the status label."""
        from DCEDiffSlicerLib.process_runner import MODEL_OPTIONAL_INPUTS, model_needs_input

        filled = ", ".join(LABELS[r] for r in PARAMETERS if r in self.nodes) or "nothing"
        text = f"Filled from the study ({self.study}): {filled}."
        if self.copied:
            text += (" Copied out of the loaded volume sequence as volumes of their own: "
                     + ", ".join(LABELS[r] for r in self.copied) + ".")
        if self.skipped:
            text += (" Skipped, as synthetic DCEDiff results (never an input): " + ", ".join(self.skipped) + ".")
        text += "".join(f" Check: {warning}." for warning in self.warnings)
        if self.absent:
            text += (" No " + " or ".join(LABELS[r] for r in self.absent) + " in the study: left empty; the "
                     "selected model runs without it.")
        if self.missing:
            text += " Not found: " + ", ".join(LABELS[r] for r in self.missing) + " (select by hand)."
        if "dce_baseline" in self.not_loaded and "dce_early" in self.nodes:
            text += (" The acquired DCE's pre-contrast frame is not loaded as a volume of its own: the acquired DCE is "
                     "compared on its own intensity scale (select that frame by hand to compare it on the T1 "
                     "pre-contrast's).")
        for role in self.missing:  # PD for a model that was not trained without it
            if role in MODEL_OPTIONAL_INPUTS and role not in self.optional:
                text += f" {LABELS[role]} is required by the selected model ({model_needs_input(role)})."
        return text


def dicom_files(node, file_for_instance: Callable[[str], str]) -> List[str]:
    """The files of ``node``'s ``DICOM.instanceUIDs`` that ``file_for_instance`` (uid → file, "" if unknown) finds;
    [] for a node not loaded from DICOM."""
    uids = (node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    return [f for f in (file_for_instance(uid) for uid in uids) if f]


def sequence_browsers(scene) -> list:
    """Every sequence browser node of ``scene``."""
    return [scene.GetNthNodeByClass(i, "vtkMRMLSequenceBrowserNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode"))]


def dicom_volume_nodes(scene, file_for_instance: Callable[[str], str]) -> List[Tuple[object, List[str]]]:
    """(volume node, its DICOM files) for every scalar volume node of ``scene`` loaded from DICOM. UIDs the
    database has no file for are left out; a node with no file left is skipped, and so is the proxy node of a
    sequence browser: it holds (with its ``DICOM.instanceUIDs``) whichever item the browser shows, no fixed volume
    (:func:`dicom_sequence_frames` gives the items)."""
    browsers = sequence_browsers(scene)
    found = []
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
        if any(browser.IsProxyNodeID(node.GetID()) for browser in browsers):
            continue
        files = dicom_files(node, file_for_instance)
        if files:
            found.append((node, files))
    return found


def dicom_sequence_frames(scene, file_for_instance: Callable[[str], str]) -> List[Tuple[object, int, List[str]]]:
    """(sequence node, item number, its DICOM files) for every scalar volume item of the scene's sequence nodes
    that carries ``DICOM.instanceUIDs``: a DCE series loaded by Slicer's DICOM module as a volume sequence (the
    MultiVolumeImporterPlugin default), one item a temporal position."""
    found = []
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceNode")):
        sequence = scene.GetNthNodeByClass(index, "vtkMRMLSequenceNode")
        for item in range(sequence.GetNumberOfDataNodes()):
            data = sequence.GetNthDataNode(item)
            if data is None or not data.IsA("vtkMRMLScalarVolumeNode") or data.IsA("vtkMRMLLabelMapVolumeNode"):
                continue
            files = dicom_files(data, file_for_instance)
            if files:
                found.append((sequence, item, files))
    return found


def frame_volume(scene, sequence, item: int):
    """A new scalar volume node holding a deep copy of item ``item`` of ``sequence`` (voxels, geometry, and the
    attributes, ``DICOM.instanceUIDs`` included), named ``<sequence> frame <index value>``, under the parent
    transform of the sequence's proxy node and next to it in the subject hierarchy."""
    from DCEDiffSlicerLib.scene_io import place_next_to

    data = sequence.GetNthDataNode(item)
    name = f"{sequence.GetName()} frame {sequence.GetNthIndexValue(item)}"
    node = scene.AddNewNodeByClass(data.GetClassName(), scene.GenerateUniqueName(name))
    node.CopyContent(data, True)
    node.CreateDefaultDisplayNodes()
    proxy = next((p for p in (b.GetProxyNode(sequence) for b in sequence_browsers(scene)) if p is not None), None)
    if proxy is not None:
        node.SetAndObserveTransformNodeID(proxy.GetTransformNodeID())
        place_next_to(node, proxy)
    return node


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def fill_from_study(scene=None, file_for_instance: Optional[Callable[[str], str]] = None,
                    preferred=None, optional: Sequence[str] = ()) -> StudyFill:
    """Pick T2W, PD, ADC, T1-pre and the acquired DCE among the volume nodes loaded from DICOM.

    ``file_for_instance(uid)`` → file path (default: ``slicer.dicomDatabase.fileForInstance``). When the scene holds
    volumes of several studies, the study of ``preferred`` (e.g. the selected T2W) is used; without one that
    decides, ValueError lists the studies. ValueError when no volume of the scene was loaded from DICOM.
    ``optional``: the roles the selected model can do without (``model_cards.optional_inputs``: PD for a model
    trained with augment.drop_pd); a study without such a series is then not missing it but ``absent`` (the engine's
    ``pick_roles(optional=...)``, as ``dcediff synthesize --study``)."""
    from DCEDiffLib.dicom_study import scan_files
    from DCEDiffLib.study_roles import pick_roles

    if scene is None:
        import slicer

        scene = slicer.mrmlScene
    if file_for_instance is None:
        file_for_instance = _database_lookup()
    loaded = dicom_volume_nodes(scene, file_for_instance)
    frames = dicom_sequence_frames(scene, file_for_instance)
    if not loaded and not frames:
        raise ValueError("Fill from study: no volume in the scene was loaded from DICOM (attribute "
                         f"{INSTANCE_UIDS_ATTRIBUTE}); expected a study loaded with the DICOM module")
    warnings: List[str] = []
    every = [files for _, files in loaded] + [files for _, _, files in frames]
    studies = scan_files(sorted({f for files in every for f in files}), "the loaded DICOM volumes",
                         warn=warnings.append)
    if not studies:
        raise ValueError("Fill from study: the files of the loaded DICOM volumes are not readable DICOM images "
                         f"({'; '.join(warnings) or 'no file'}); expected the files of a DICOM database")
    study = _choose_study(studies, loaded, preferred)
    picks = pick_roles(study, require=False, optional=optional)
    by_files = {frozenset(_key(f) for f in files): node for node, files in loaded}
    frame_of = {frozenset(_key(f) for f in files): (sequence, item) for sequence, item, files in frames}
    nodes: Dict[str, object] = {}
    not_loaded: List[str] = []
    copied: List[str] = []
    notes = list(warnings)  # the picks' own notes end picks.lines() already
    # the DCE's own pre-contrast frame, where the T1-pre is another series: it puts the acquired DCE on the T1-pre's
    # intensity scale (DCEDiffLib/acquired_scale.py)
    chosen = dict(picks.picks, **({"dce_baseline": picks.baseline} if picks.baseline is not None else {}))
    for role, pick in chosen.items():
        key = frozenset(_key(f.path) for f in pick.volume.files)
        node = by_files.get(key)
        if node is None and key in frame_of:  # a frame of a volume sequence: a volume of its own, found next time
            sequence, item = frame_of[key]
            node = by_files[key] = frame_volume(scene, sequence, item)
            copied.append(role)
            notes.append(f"{LABELS[role]}: series {pick.series.label()} frame {pick.frame_index} is item "
                         f"{sequence.GetNthIndexValue(item)} of the volume sequence {sequence.GetName()!r}; copied "
                         f"into the volume {node.GetName()!r} (the sequence's proxy shows whichever item is browsed)")
        if node is None:
            where = f" frame {pick.frame_index}" if pick.frame_index is not None else ""
            notes.append(f"{LABELS[role]}: series {pick.series.label()}{where} is not loaded as a volume of its own")
            not_loaded.append(role)
            continue
        nodes[role] = node
    missing = [r for r in ("t2w", "pd", "adc", "t1pre") if r not in nodes and r not in picks.absent]
    label = f"patient {study.patient_id or '?'}, study {study.study_uid}"
    return StudyFill(nodes, picks.lines(), missing, notes, label, list(picks.absent), tuple(optional), not_loaded,
                     copied, [s.label() for s, _ in picks.skipped_series], list(picks.warnings))


def _choose_study(studies: Sequence, loaded, preferred):
    if len(studies) == 1:
        return studies[0]
    if preferred is not None:
        files = next((set(map(_key, f)) for node, f in loaded if node is preferred), set())
        for study in studies:
            if any(_key(d.path) in files for s in study.series for d in s.files):
                return study
    listed = "; ".join(f"patient {s.patient_id or '?'}, date {s.study_date or '?'} ({len(s.series)} series)"
                       for s in studies)
    raise ValueError(f"Fill from study: the scene holds volumes of {len(studies)} DICOM studies ({listed}); "
                     "expected one, or select a T2W of the study to use first")


def apply_fill(parameterNode, fill: StudyFill) -> None:
    """Set the selectors to the filled nodes. Required roles not found keep their selection; an optional role the
    study lacks (``absent``: PD, for a model that can do without it) is cleared, so that no series of another exam
    is used in its place; the acquired DCE selectors are cleared unless both were found (Apply needs both or
    neither), and so is the DCE's pre-contrast frame unless the study gave one."""
    for role in ("t2w", "pd", "adc", "t1pre"):
        if role in fill.nodes:
            setattr(parameterNode, PARAMETERS[role], fill.nodes[role])
        elif role in fill.absent:
            setattr(parameterNode, PARAMETERS[role], None)
    both = "dce_early" in fill.nodes and "dce_late" in fill.nodes
    for role in ("dce_early", "dce_late", "dce_baseline"):  # the pre-contrast frame only beside both frames
        setattr(parameterNode, PARAMETERS[role], fill.nodes.get(role) if both else None)


def _database_lookup() -> Callable[[str], str]:
    import slicer

    database = getattr(slicer, "dicomDatabase", None)
    if database is None:
        raise ValueError("Fill from study: Slicer has no DICOM database open; expected a study loaded with the "
                         "DICOM module")
    return lambda uid: database.fileForInstance(uid) or ""
