"""Scan a DICOM study folder: headers only, grouped into series and volumes; read back one chosen volume.

A study folder may hold nested folders, any file names, and files of several series mixed in one folder (as a
PACS export, a TCIA download or a scanner CD lays them out). :func:`scan_study` reads every file's header (no
pixel data: about 1–2 ms per file), groups the files by SeriesInstanceUID and, inside a series, by volume (one
volume per temporal position when a dynamic series stores many time points). Role recognition lives in
:mod:`DCEDiffLib.study_roles`; this module only describes what is there.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.dicom_part10 import (DECOMPRESS_HINT, compressed, media_storage_class, multi_frame_header,
                                     transfer_syntax, transfer_syntax_text)
from DCEDiffLib.dicom_text import decode_tag
from DCEDiffLib.errors import InputError
from DCEDiffLib.native_stderr import captured_native_stderr

# Header tags read from every file (SimpleITK/GDCM "gggg|eeee" keys).
TAGS = {
    "study_uid": "0020|000d", "series_uid": "0020|000e", "series_number": "0020|0011",
    "description": "0008|103e", "protocol": "0018|1030", "sequence_name": "0018|0024", "image_type": "0008|0008",
    "modality": "0008|0060", "patient_id": "0010|0020", "study_date": "0008|0020", "study_description": "0008|1030",
    "flip_angle": "0018|1314", "repetition_time": "0018|0080", "echo_time": "0018|0081",
    "b_value": "0018|9087", "position": "0020|0032", "orientation": "0020|0037",
    "temporal_position": "0020|0100", "temporal_positions": "0020|0105", "trigger_time": "0018|1060",
    "acquisition_time": "0008|0032", "content_time": "0008|0033", "series_time": "0008|0031",
    "instance_number": "0020|0013", "rows": "0028|0010", "columns": "0028|0011", "pixel_spacing": "0028|0030",
    "acquisition_type": "0018|0023", "sop_uid": "0008|0018", "frames": "0028|0008", "character_set": "0008|0005",
    "manufacturer": "0008|0070", "frame_of_reference": "0020|0052", "contrast_agent": "0018|0010",
}
# a dynamic (DCE) acquisition by its name (Siemens TWIST/"dyn", GE DISCO, Philips 4D-TRAK, "perf", "dce")
DYNAMIC_TEXT = re.compile(r"dyn|dce|twist|perfusion|(?<![a-z])perf(?![a-z])|tricks|disco|4d")
# DWI and its derived maps, by name, image type or sequence ("adc"/"fa" as words: not "radcliffe", "fat")
DIFFUSION_TEXT = re.compile(r"diff|dwi|dti|mddw|trace|bval|(?<![a-z])adc(?![a-z])|(?<![a-z])fa(?![a-z])")
DIFFUSION_TYPES = {"DIFFUSION", "ADC", "TRACEW", "FA", "EADC", "EXP", "CALC_BVALUE"}
DIFFUSION_SEQUENCE = re.compile(r"ep_b|epse|ep2d|re_b")
SLICE_POSITION_DECIMALS = 2     # frames of one enhanced file closer than 0.01 mm are at the same slice position
# files of a series whose positions agree within 0.1 mm (at most a tenth of the slice spacing) are at one slice
# position: an export's rounding or a little table drift between the frames of a DCE must not make new positions
POSITION_TOLERANCE_MM = 0.1
POSITION_TOLERANCE_FRACTION = 0.1
MAX_LISTED_WARNINGS = 10        # unreadable files named one by one; the rest are counted
DAY_S = 86400.0
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"   # MR Image Storage; enhanced MR and its other sub-classes under it
TIMING = ("flip_angle", "repetition_time", "echo_time")   # TAGS at a classic file's top level, MR_TIMING's names


@dataclasses.dataclass
class DicomFile:
    """The header facts of one DICOM image file that grouping and ordering need."""

    path: str
    position: Optional[Tuple[float, float, float]]
    orientation: Optional[Tuple[float, ...]]
    temporal_position: Optional[int]
    trigger_time_ms: Optional[float]
    acquisition_time_s: Optional[float]
    content_time_s: Optional[float]
    b_value: Optional[float]
    instance_number: Optional[int]
    frames: int = 1                         # NumberOfFrames: > 1 for an enhanced (multi-frame) MR file
    frame_positions: Tuple[Tuple[float, float, float], ...] = ()   # per-frame ImagePositionPatient (multi-frame)
    # (name, value) of the flip angle, TR and TE a multi-frame file keeps in its functional groups, where its top
    # level lacks one of them (dicom_part10.functional_group_timing)
    functional_timing: Tuple[Tuple[str, float], ...] = ()


@dataclasses.dataclass
class Volume:
    """One 3D volume of a series: its files and, for a dynamic series, its time point."""

    files: List[DicomFile]
    temporal_position: Optional[int] = None
    time_s: Optional[float] = None         # seconds from the series' first volume (None: unknown)
    ordered_by: Optional[str] = None       # what put a dynamic series' volumes in order, when no time did


@dataclasses.dataclass
class SeriesInfo:
    """One DICOM series of a study, described from its headers (values of the first file unless noted)."""

    uid: str
    number: Optional[int]
    description: str
    protocol: str
    sequence_name: str
    image_type: Tuple[str, ...]             # upper case, e.g. ("DERIVED", "PRIMARY", "DIFFUSION", "ADC")
    modality: str
    study_uid: str
    patient_id: str
    study_date: str
    flip_angle: Optional[float]
    repetition_time: Optional[float]
    echo_time: Optional[float]
    acquisition_type: str                   # "2D" / "3D" / ""
    rows: Optional[int]
    columns: Optional[int]
    pixel_spacing: Optional[Tuple[float, float]]
    files: List[DicomFile]
    b_values: Tuple[float, ...] = ()        # distinct DiffusionBValue values over the files
    temporal_positions_declared: Optional[int] = None   # NumberOfTemporalPositions
    series_time_s: Optional[float] = None   # earliest AcquisitionTime/ContentTime/SeriesTime of the series
    orientation: str = "unknown"            # "axial" / "coronal" / "sagittal" / "mixed" / "unknown"
    folders: Tuple[str, ...] = ()
    manufacturer: str = ""                  # a DCEDiff result exported to DICOM says so here (data_source)
    frame_of_reference: str = ""            # FrameOfReferenceUID: series that share one share scanner coordinates
    contrast_agent: str = ""                # ContrastBolusAgent (0018,0010): set when contrast had been given
    _volumes: Optional[List[Volume]] = dataclasses.field(default=None, repr=False, compare=False)
    _num_positions: Optional[int] = dataclasses.field(default=None, repr=False, compare=False)
    _position_ids: Optional[Dict[str, Optional[int]]] = dataclasses.field(default=None, repr=False, compare=False)
    _position_tolerance: float = dataclasses.field(default=POSITION_TOLERANCE_MM, repr=False, compare=False)

    @property
    def num_files(self) -> int:
        return len(self.files)

    @property
    def num_positions(self) -> int:
        """Distinct slice positions (a dynamic or stacked-DWI series has fewer than files; an enhanced file that holds
        one stack has one per frame). Computed once."""
        if self._num_positions is None:
            self._num_positions = self.files[0].frames if self.one_file_stack else \
                len({self.position_key(f) for f in self.files})
        return self._num_positions

    def position_key(self, f: DicomFile) -> Optional[int]:
        """Which slice position of the series the file ``f`` is at (None: it has no ImagePositionPatient): files
        whose positions agree within :attr:`position_tolerance` share one (:func:`_slice_position_ids`)."""
        if self._position_ids is None:
            self._position_ids, self._position_tolerance = _slice_position_ids(self.files)
        return self._position_ids[f.path]

    @property
    def position_tolerance(self) -> float:
        """How close (mm) two files' positions are to be one slice position: 0.1 mm, at most a tenth of the slice
        spacing."""
        self.position_key(self.files[0])
        return self._position_tolerance

    @property
    def one_file_stack(self) -> bool:
        """One enhanced (multi-frame) file whose frames lie at distinct slice positions: one volume, which GDCM reads
        with its geometry (a file whose frames repeat positions holds several time points or b-values: not one)."""
        if len(self.files) != 1 or self.files[0].frames < 2:
            return False
        positions = self.files[0].frame_positions
        return len(positions) == self.files[0].frames and \
            len({tuple(np.round(p, SLICE_POSITION_DECIMALS)) for p in positions}) == len(positions)

    @property
    def multi_frame(self) -> bool:
        """Stored as multi-frame files (enhanced MR: a whole stack in one file), not one file per slice."""
        return any(f.frames > 1 for f in self.files)

    @property
    def diffusion(self) -> bool:
        """DWI and its derived maps (ADC, TRACEW, FA, calculated b-values)."""
        return bool(DIFFUSION_TYPES & set(self.image_type)) or bool(self.b_values) or \
            bool(DIFFUSION_TEXT.search(self.text)) or bool(DIFFUSION_SEQUENCE.search(self.sequence_name.lower()))

    @property
    def named_dynamic(self) -> bool:
        """A dynamic acquisition by its headers alone: by name or sequence, or NumberOfTemporalPositions > 1; never
        a diffusion series (Siemens names its DWI "…DYNDIST", for its dynamic distortion correction)."""
        if self.diffusion:
            return False
        return bool(DYNAMIC_TEXT.search(self.text)) or "dyn" in self.sequence_name.lower() or \
            (self.temporal_positions_declared or 0) > 1

    @property
    def text(self) -> str:
        """Description and protocol name in lower case (what name rules search)."""
        return f"{self.description} {self.protocol}".lower()

    def label(self) -> str:
        """``#6 't2_tse_tra'``: how the series is named in messages."""
        number = "?" if self.number is None else str(self.number)
        return f"#{number} '{self.description}'"

    def volumes(self) -> List[Volume]:
        """The series split into 3D volumes: one per temporal position when slice positions repeat.

        Splitting uses the first of TemporalPositionIdentifier, TriggerTime, AcquisitionTime, ContentTime that
        gives volumes with one file at every slice position of the series (never a part of a frame). Without any of
        them (an anonymiser may blank the times) a series that is dynamic by its headers (:attr:`named_dynamic`: a
        multi-echo series repeats its positions too, and is not one) whose every position repeats equally often, with
        one b-value at most, is split by InstanceNumber: the n-th file of each position, in InstanceNumber order,
        belongs to the n-th volume (``ordered_by``).
        Otherwise the whole series is one volume (the reader then refuses duplicate positions, e.g. a DWI series
        with several b-values stacked). Computed once."""
        if self._volumes is None:
            self._volumes = self._split_volumes()
        return list(self._volumes)

    def _split_volumes(self) -> List[Volume]:
        if self.num_positions == self.num_files or self.one_file_stack:
            return [Volume(list(self.files))]
        for key in ("temporal_position", "trigger_time_ms", "acquisition_time_s", "content_time_s"):
            values = [getattr(f, key) for f in self.files]
            if any(v is None for v in values):
                continue
            groups: Dict[float, List[DicomFile]] = {}
            for f, v in zip(self.files, values):
                groups.setdefault(v, []).append(f)
            if len(groups) < 2:
                continue
            # every volume holds every slice position once: a tag that differs from slice to slice (ContentTime, a
            # 2D acquisition's AcquisitionTime) would otherwise cut each frame into one-slice "volumes"
            if all(len(g) == self.num_positions == len({self.position_key(f) for f in g}) for g in groups.values()):
                return _timed_volumes([groups[v] for v in sorted(groups)])
        return self._volumes_by_instance_number() or [Volume(list(self.files))]

    def _volumes_by_instance_number(self) -> Optional[List[Volume]]:
        """Volumes of a repeated-position series with no time tags, by InstanceNumber (None where that cannot
        be: a position missing, a number missing or repeated, several b-values: a stacked DWI, not a dynamic)."""
        numbers = [f.instance_number for f in self.files]
        if not self.named_dynamic or len(self.b_values) > 1 or any(n is None for n in numbers) or \
                len(set(numbers)) != len(numbers):
            return None
        by_position: Dict[object, List[DicomFile]] = {}
        for f in sorted(self.files, key=lambda f: f.instance_number):
            by_position.setdefault(self.position_key(f), []).append(f)
        counts = {len(files) for files in by_position.values()}
        if None in by_position or len(counts) != 1 or counts.pop() < 2:
            return None
        frames = zip(*by_position.values())
        return [Volume(list(files), ordered_by="InstanceNumber (no time tags)") for files in frames]

    def summary(self) -> str:
        """One line for listings: number, description, files, orientation, flip angle, image type."""
        parts = [self.label(), f"{self.num_files} files", self.orientation]
        if self.multi_frame:
            parts.append(f"multi-frame ({max(f.frames for f in self.files)} frames in a file)")
        if self.flip_angle is not None:
            parts.append(f"flip {self.flip_angle:g}°")
        if self.image_type:
            parts.append("\\".join(self.image_type[:4]))
        return ", ".join(parts)


@dataclasses.dataclass
class Study:
    """The series of one DICOM study (one StudyInstanceUID) found under ``root``."""

    root: str
    study_uid: str
    patient_id: str
    study_date: str
    series: List[SeriesInfo]
    skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)   # (file, reason)
    # image files GDCM cannot read for their transfer syntax (file, "UID (name)"): series the study cannot see
    undecodable: List[Tuple[str, str]] = dataclasses.field(default_factory=list)

    def by_number(self, number: int) -> List[SeriesInfo]:
        return [s for s in self.series if s.number == number]



# ----------------------------------------------------------------------------------------------- scanning

def scan_folder(root, warn: Optional[Callable[[str], None]] = None, name: Optional[str] = None) -> List[Study]:
    """Every DICOM study under ``root`` (all sub-folders, any file names), from headers only.

    Files that are not readable DICOM images are skipped; ``warn`` (default: :func:`warnings.warn`) gets one
    message naming them (as ``name``, default ``--study ROOT``). Hidden files and folders (names starting with a
    dot) are ignored."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"--study {root}: does not exist; expected a folder holding one DICOM study")
    if not root.is_dir():
        raise InputError(f"--study {root}: is a file; expected a folder holding one DICOM study")
    return _scan(_walk_files(root), str(root), warn, name or f"--study {root}")


def scan_files(paths: Iterable, label: str, warn: Optional[Callable[[str], None]] = None) -> List[Study]:
    """Every DICOM study among the given files (headers only), as :func:`scan_folder` groups a folder's files.

    For files that are already known one by one, e.g. the files behind the volumes a DICOM browser loaded;
    ``label`` names them in messages and becomes the studies' ``root``."""
    return _scan((Path(p) for p in paths), label, warn, label)


def _scan(paths: Iterable[Path], root: str, warn: Optional[Callable[[str], None]], name: str) -> List[Study]:
    warn = warn or (lambda message: warnings.warn(message, stacklevel=4))
    headers: Dict[str, List[Tuple[DicomFile, sitk.ImageFileReader]]] = {}
    skipped: List[Tuple[str, str]] = []
    undecodable: List[Tuple[str, str]] = []
    instances: Dict[tuple, str] = {}
    repeated: List[str] = []
    for path in paths:
        reader, reason = _read_header(path)
        if reader is None:
            skipped.append((str(path), reason))
            if reason.startswith("transfer syntax") and (media_storage_class(path) or "").startswith(MR_STORAGE):
                undecodable.append((str(path), transfer_syntax_text(transfer_syntax(path))))
            continue
        uid = _tag(reader, "series_uid")
        facts = _file_facts(path, reader)
        # the same instance twice (a series exported twice): same SOPInstanceUID and same slice, read once; a tool
        # that gives every slice one UID makes no repeats of them (their positions or numbers differ)
        instance = (uid, _tag(reader, "sop_uid"), *dataclasses.astuple(dataclasses.replace(facts, path="")))
        if instance[1] and instance in instances:
            repeated.append(f"{path} (= {instances[instance]})")
            continue
        instances[instance] = str(path)
        headers.setdefault(uid, []).append((facts, reader))
    if repeated:
        more = f"; and {len(repeated) - MAX_LISTED_WARNINGS} more" if len(repeated) > MAX_LISTED_WARNINGS else ""
        warn(f"{name}: {len(repeated)} file(s) repeat an image already found (same SOPInstanceUID, e.g. a series "
             f"exported twice), each read once: {'; '.join(repeated[:MAX_LISTED_WARNINGS])}{more}")
    if skipped:
        listed = "; ".join(f"{p} ({r})" for p, r in skipped[:MAX_LISTED_WARNINGS])
        more = f"; and {len(skipped) - MAX_LISTED_WARNINGS} more" if len(skipped) > MAX_LISTED_WARNINGS else ""
        hint = f"; to read them, {DECOMPRESS_HINT}" if undecodable else ""
        warn(f"{name}: skipped {len(skipped)} file(s) that are not readable DICOM images: {listed}{more}{hint}")
    studies: Dict[str, Study] = {}
    midnight = _midnight_in_studies(headers)
    for uid, entries in headers.items():
        cut = midnight.get(_tag(entries[0][1], "study_uid"))
        series = _series_info(uid, [(_after_midnight(f, cut), r) for f, r in entries] if cut is not None else entries,
                              cut)
        study = studies.get(series.study_uid)
        if study is None:
            study = studies[series.study_uid] = Study(str(root), series.study_uid, series.patient_id,
                                                      series.study_date, [], skipped, undecodable)
        study.series.append(series)
    for study in studies.values():
        study.series.sort(key=lambda s: (s.number is None, s.number or 0, s.series_time_s or 0.0, s.uid))
    return sorted(studies.values(), key=lambda s: (s.patient_id, s.study_date, s.study_uid))


def scan_study(root, warn: Optional[Callable[[str], None]] = None) -> Study:
    """The one DICOM study under ``root``; :class:`InputError` when there is none or several (listed)."""
    studies = scan_folder(root, warn)
    if not studies:
        raise InputError(f"--study {root}: holds no readable DICOM image files; expected a folder holding one "
                         "DICOM study (nested folders and any file names are fine)")
    if len(studies) > 1:
        listed = "; ".join(f"patient {s.patient_id or '?'}, date {s.study_date or '?'}, study {s.study_uid} "
                           f"({len(s.series)} series, in {_common_folder(s)})" for s in studies)
        raise InputError(f"--study {root}: holds {len(studies)} DICOM studies: {listed}; expected one study "
                         "(give the folder of one of them)")
    return studies[0]


def _walk_files(root: Path):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.upper() != "DICOMDIR":   # DICOMDIR: an index, no image
                yield Path(folder) / name


def _read_header(path: Path):
    """(reader, "") for a DICOM image file, else (None, reason)."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")    # DICOM only: any file name, no guessing from the extension
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOn()
    packed = compressed(path)
    # GDCM parses a compressed file's codestream header too: OpenJPEG's complaints must not flood the console
    with captured_native_stderr(enabled=packed) as said:
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            reader = None
    if reader is None:
        if packed:
            decoder = f" ({said[0][:120]})" if said else ""
            return None, (f"transfer syntax {transfer_syntax_text(transfer_syntax(path))}, which this reader "
                          f"(GDCM) cannot decode{decoder}")
        return None, "not a readable DICOM image"
    if not reader.HasMetaDataKey(TAGS["series_uid"]):
        return None, "no SeriesInstanceUID"
    return reader, ""


def read_dicom_header(path) -> Optional[sitk.ImageFileReader]:
    """A reader that has read the header of the DICOM image file ``path`` (any file name), or None when it is no
    readable DICOM image with a SeriesInstanceUID."""
    return _read_header(Path(path))[0]


def tag_text(reader: sitk.ImageFileReader, key: str) -> str:
    """The text of the tag ``key`` ("gggg|eeee") as Unicode, decoded with the file's SpecificCharacterSet and
    stripped; "" when absent."""
    if not reader.HasMetaDataKey(key):
        return ""
    text = reader.GetMetaData(key)
    # a Latin-1 description, or Japanese in 7-bit ISO 2022 (ASCII bytes and escapes): printable once decoded
    if key != TAGS["character_set"] and (not text.isascii() or "\x1b" in text):
        text = decode_tag(text, tag_text(reader, TAGS["character_set"]))
    return text.strip().strip("\x00").strip()


def _tag(reader: sitk.ImageFileReader, name: str) -> str:
    return tag_text(reader, TAGS[name])


def _float(text: str) -> Optional[float]:
    try:
        value = float(text.split("\\")[0])
    except (ValueError, IndexError):
        return None
    return value if np.isfinite(value) else None


def _int(text: str) -> Optional[int]:
    value = _float(text)
    return int(round(value)) if value is not None else None


def _floats(text: str, count: int) -> Optional[Tuple[float, ...]]:
    try:
        values = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return None
    return values if len(values) == count and all(np.isfinite(values)) else None


def dicom_time_seconds(text: str) -> Optional[float]:
    """DICOM TM ``hhmmss.ffffff`` (or ``hh:mm:ss``) → seconds after midnight; None when absent or malformed."""
    text = text.strip().replace(":", "")
    match = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(\.\d+)?", text)
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    return (int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) + (float(fraction) if fraction else 0.0))


def _file_facts(path: Path, reader: sitk.ImageFileReader) -> DicomFile:
    declared_frames = _tag(reader, "frames")
    frames = _int(declared_frames) or 1
    orientation = _floats(_tag(reader, "orientation"), 6)
    if orientation is None and frames > 1 and reader.GetDimension() == 3:
        # enhanced MR keeps its orientation in functional groups, which GDCM turns into the direction matrix
        direction = np.asarray(reader.GetDirection(), dtype=float).reshape(3, 3)
        orientation = tuple(float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]]))
    # functional groups come with NumberOfFrames (the multi-frame functional groups module requires it): a classic
    # file is not read again; a multi-frame one once, for its frames' positions and the timing its top level lacks
    lacks_timing = bool(declared_frames) and any(_float(_tag(reader, name)) is None for name in TIMING)
    positions, timing = multi_frame_header(path, positions=frames > 1, timing=lacks_timing)
    return DicomFile(
        path=str(path), position=_floats(_tag(reader, "position"), 3), frames=max(frames, 1),
        frame_positions=tuple(positions), functional_timing=tuple(sorted(timing.items())),
        orientation=orientation,
        temporal_position=_int(_tag(reader, "temporal_position")),
        trigger_time_ms=_float(_tag(reader, "trigger_time")),
        acquisition_time_s=dicom_time_seconds(_tag(reader, "acquisition_time")),
        content_time_s=dicom_time_seconds(_tag(reader, "content_time")),
        b_value=_float(_tag(reader, "b_value")), instance_number=_int(_tag(reader, "instance_number")))


def _midnight_in_studies(headers: Dict[str, List[Tuple[DicomFile, sitk.ImageFileReader]]]) -> Dict[str, float]:
    """StudyInstanceUID → the time of day (s) before which its times belong to the next day, for each study that went
    over midnight (23:58 → 00:03): its times (AcquisitionTime, ContentTime, SeriesTime) on the 24-hour clock leave
    their longest pause somewhere else than across midnight."""
    times: Dict[str, set] = {}
    for entries in headers.values():
        times.setdefault(_tag(entries[0][1], "study_uid"), set()).update(
            t for f, r in entries for t in (f.acquisition_time_s, f.content_time_s,
                                            dicom_time_seconds(_tag(r, "series_time"))) if t is not None)
    cuts = {}
    for uid, values in times.items():
        values = np.sort(np.fromiter(values, dtype=float))
        if len(values) < 2:
            continue
        gaps = np.diff(values)
        if gaps.max() > values[0] + DAY_S - values[-1]:  # the exam's pause is not the night: it ran over midnight
            cuts[uid] = float(values[int(np.argmax(gaps)) + 1])
    return cuts


def _next_day(seconds: Optional[float], cut: Optional[float]) -> Optional[float]:
    """A time of day of an exam that went over midnight (before ``cut``: after midnight) in seconds from the midnight
    before it started."""
    return seconds + DAY_S if seconds is not None and cut is not None and seconds < cut else seconds


def _after_midnight(f: DicomFile, cut: float) -> DicomFile:
    return dataclasses.replace(f, acquisition_time_s=_next_day(f.acquisition_time_s, cut),
                               content_time_s=_next_day(f.content_time_s, cut))


def _series_info(uid: str, entries: List[Tuple[DicomFile, sitk.ImageFileReader]],
                 midnight: Optional[float] = None) -> SeriesInfo:
    """The series ``uid`` from its files' facts and headers. ``midnight``: its study went over midnight, times of day
    before this one are the next day's (:func:`_midnight_in_studies`); the facts' times are counted on already
    (:func:`_after_midnight`), its SeriesTime here: a frame of 00:00:01 must not sort before one of 23:59:58, nor a
    series started then before the DCE."""
    entries = sorted(entries, key=lambda e: (e[0].instance_number is None, e[0].instance_number or 0, e[0].path))
    first = entries[0][1]
    files = [f for f, _ in entries]
    times = [t for f, r in entries for t in (f.acquisition_time_s, f.content_time_s,
                                             _next_day(dicom_time_seconds(_tag(r, "series_time")), midnight))
             if t is not None]
    spacing = _floats(_tag(first, "pixel_spacing"), 2)
    # an enhanced MR file keeps them in its functional groups, which GDCM does not read (read with the file's frame
    # positions by _file_facts): without its flip angle an enhanced VIBE is no PD or T1-pre candidate
    grouped = dict(files[0].functional_timing)
    timing = {name: _float(_tag(first, name)) for name in TIMING}
    timing = {name: grouped.get(name) if value is None else value for name, value in timing.items()}
    return SeriesInfo(
        uid=uid, number=_int(_tag(first, "series_number")), description=_tag(first, "description"),
        protocol=_tag(first, "protocol"), sequence_name=_tag(first, "sequence_name"),
        image_type=tuple(v.strip().upper() for v in _tag(first, "image_type").split("\\") if v.strip()),
        modality=_tag(first, "modality").upper(), study_uid=_tag(first, "study_uid"),
        patient_id=_tag(first, "patient_id"), study_date=_tag(first, "study_date"),
        flip_angle=timing["flip_angle"], repetition_time=timing["repetition_time"], echo_time=timing["echo_time"],
        acquisition_type=_tag(first, "acquisition_type").upper(),
        rows=_int(_tag(first, "rows")), columns=_int(_tag(first, "columns")),
        pixel_spacing=spacing, files=files,
        b_values=tuple(sorted({f.b_value for f in files if f.b_value is not None})),
        temporal_positions_declared=_int(_tag(first, "temporal_positions")),
        series_time_s=min(times) if times else None, orientation=_orientation_label(files),
        folders=tuple(sorted({str(Path(f.path).parent) for f in files})), manufacturer=_tag(first, "manufacturer"),
        frame_of_reference=_tag(first, "frame_of_reference"), contrast_agent=_tag(first, "contrast_agent"))


def _orientation_label(files: Sequence[DicomFile]) -> str:
    """Plane of the slices from ImageOrientationPatient: the axis the slice normal is closest to."""
    orientations = {tuple(np.round(f.orientation, 3)) for f in files if f.orientation is not None}
    if not orientations:
        return "unknown"
    labels = set()
    for o in orientations:
        normal = np.cross(o[:3], o[3:])
        labels.add(("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))])
    return labels.pop() if len(labels) == 1 else "mixed"


def slice_normal(files: Sequence[DicomFile]) -> np.ndarray:
    """The unit slice normal of the first file with an ImageOrientationPatient (patient z without one)."""
    for f in files:
        if f.orientation is not None:
            normal = np.cross(np.asarray(f.orientation[:3], float), np.asarray(f.orientation[3:], float))
            if np.linalg.norm(normal) > 0:
                return normal / np.linalg.norm(normal)
    return np.array([0.0, 0.0, 1.0])


def _slice_position_ids(files: Sequence[DicomFile]) -> Tuple[Dict[str, Optional[int]], float]:
    """(file path → slice position id, the tolerance used): files whose ImagePositionPatient lie within the
    tolerance of the first file of a position (in order along the slice normal) share its id; files without a
    position get None. Tolerance: POSITION_TOLERANCE_MM, at most POSITION_TOLERANCE_FRACTION of the slice spacing
    (the median gap between positions farther apart than POSITION_TOLERANCE_MM). Each position stays within the
    tolerance of its first file: a drift that adds up from frame to frame makes new positions, not one long one."""
    ids: Dict[str, Optional[int]] = {f.path: None for f in files}
    placed = [f for f in files if f.position is not None]
    if not placed:
        return ids, POSITION_TOLERANCE_MM
    points = np.asarray([f.position for f in placed], dtype=float)
    along = points @ slice_normal(files)
    order = np.argsort(along, kind="stable")
    gaps = np.diff(along[order])
    gaps = gaps[gaps > POSITION_TOLERANCE_MM]
    tolerance = min(POSITION_TOLERANCE_MM, POSITION_TOLERANCE_FRACTION * float(np.median(gaps))) if len(gaps) \
        else POSITION_TOLERANCE_MM
    anchors: List[int] = []         # the first file of every position, by index into ``placed``
    for i in order:
        match = None
        for k in range(len(anchors) - 1, -1, -1):   # anchors in order along the normal: the latest first
            if along[i] - along[anchors[k]] > tolerance:
                break
            if np.linalg.norm(points[i] - points[anchors[k]]) <= tolerance:
                match = k
                break
        if match is None:
            anchors.append(int(i))
            match = len(anchors) - 1
        ids[placed[i].path] = match
    return ids, tolerance


def _timed_volumes(groups: List[List[DicomFile]]) -> List[Volume]:
    """Volumes in temporal order, with times in seconds from the first (TriggerTime, else acquisition times)."""
    def first(values):
        values = [v for v in values if v is not None]
        return min(values) if values else None

    rows = []
    for files in groups:
        rows.append((first(f.temporal_position for f in files), first(f.trigger_time_ms for f in files),
                     first(f.acquisition_time_s for f in files), first(f.content_time_s for f in files), files))
    times: List[Optional[float]] = [None] * len(rows)
    for column, scale in ((1, 1e-3), (2, 1.0), (3, 1.0)):
        values = [r[column] for r in rows]
        if all(v is not None for v in values) and len(set(values)) == len(values):
            times = [(v - values[0]) * scale for v in values]
            break
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0] is None, rows[i][0] or 0,
                                                    times[i] if times[i] is not None else i))
    base = times[order[0]] if times[order[0]] is not None else 0.0
    return [Volume(rows[i][4], rows[i][0], None if times[i] is None else times[i] - base) for i in order]


def _common_folder(study: Study) -> str:
    folders = [f for s in study.series for f in s.folders]
    return os.path.commonpath(folders) if folders else study.root


# ----------------------------------------------------------------------------------------------- reading

def read_study_volume(volume: Volume, name: str) -> sitk.Image:
    """Read one volume (its files only) as a validated float32 image, slices sorted along the slice normal.

    The same checks as a DICOM series folder (:func:`DCEDiffLib.volume_io.read_dicom_series`): one regular
    stack of parallel slices; ``name`` (e.g. "T2W #6 't2_tse_tra'") names the input in errors."""
    from DCEDiffLib.data_source import PHANTOM, input_source, mark_phantom
    from DCEDiffLib.volume_io import read_slice_stack, read_volume

    paths = [f.path for f in volume.files]
    folder = Path(os.path.commonpath(paths)) if paths else Path(".")
    image = read_slice_stack(paths, folder, name)
    if len(volume.files) == 1 and volume.files[0].frames > 1:
        _check_frame_stack(image, volume.files[0], name)
    image = read_volume(image, name=name)
    if paths and input_source(paths[0]) == PHANTOM:  # the series reader drops tags: keep the phantom mark
        mark_phantom(image)
    return image


def _check_frame_stack(image: sitk.Image, file: DicomFile, name: str) -> None:
    """An enhanced file read as one volume: GDCM places it by its first frame and one spacing; refused unless its
    frames' own positions make that stack (every frame, one regular spacing along the slice normal)."""
    from DCEDiffLib.volume_io import SLICE_TOLERANCE_FRACTION, SLICE_TOLERANCE_MM

    positions = np.asarray(file.frame_positions, dtype=float)
    normal = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
    along = np.sort(positions @ normal) if len(positions) else positions
    gaps = np.diff(along)
    spacing = image.GetSpacing()[2]
    tolerance = max(SLICE_TOLERANCE_MM, SLICE_TOLERANCE_FRACTION * spacing)
    if image.GetDimension() != 3 or image.GetSize()[2] != len(positions) or len(gaps) == 0 or \
            np.max(np.abs(gaps - spacing)) > tolerance:
        raise InputError(f"{name}: the enhanced (multi-frame) file {file.path} is not one regular stack of "
                         f"{file.frames} frames (frame spacing {_range_text(gaps)} mm, read as "
                         f"{image.GetSize()[2]} slices {spacing:.3f} mm apart); expected classic MR images (one file "
                         "per slice): export the series so, or give it as a NIfTI file")


def _range_text(values) -> str:
    return "unknown" if len(values) == 0 else f"{np.min(values):.3f}–{np.max(values):.3f}"
