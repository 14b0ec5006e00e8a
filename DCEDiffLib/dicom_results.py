"""The synthetic early/late DCE as DICOM MR series in the T2W's study (``dcediff synthesize --dicom``), to send to
PACS next to the exam.

Each series lies on the T2W's own grid (the result pasted back, ``working_grid.paste_back``), one file per slice,
and joins the T2W's study: patient, study and frame-of-reference tags are copied from the T2W's DICOM header. It
says it is synthetic wherever a viewer or a reader looks: ImageType ``DERIVED\\SECONDARY\\OTHER``, SeriesDescription
``SYNTHETIC [OOD-WARNING] [NO-PD] early DCE (DCEDiff)`` (the form of the Slicer module's export), Manufacturer
``DCEDiff (SYNTHETIC image, not acquired)``, DerivationDescription and ImageComments with the provenance line,
BurnedInAnnotation NO. Those marks make :func:`DCEDiffLib.data_source.dicom_result_mark` refuse the series as an
input and the study reader skip it. New SeriesInstanceUIDs and SOPInstanceUIDs (``2.25.<uuid>``); series numbers
9001/9002 unless the study uses them. Pixels: float → int16 (uint16 when nothing is negative) with one
RescaleSlope per series (intercept 0, so a zero stays zero).
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.data_source import RESULT_DESCRIP, RESULT_MANUFACTURER
from DCEDiffLib.dicom_slices import MR_IMAGE_STORAGE, write_slice
from DCEDiffLib.errors import InputError

DICOM_FOLDER = "dicom"
SERIES_FOLDERS = {"early": "synthetic_early", "late": "synthetic_late"}
SERIES_NUMBERS = (9001, 9002)
MANUFACTURER = f"{RESULT_MANUFACTURER} (SYNTHETIC image, not acquired)"  # as the Slicer module's export says
# copied from the T2W's header so that the series join its patient, study and frame of reference
STUDY_TAGS = {
    "0010|0010": "PatientName", "0010|0020": "PatientID", "0010|0030": "PatientBirthDate", "0010|0040": "PatientSex",
    "0020|000d": "StudyInstanceUID", "0008|0020": "StudyDate", "0008|0030": "StudyTime", "0020|0010": "StudyID",
    "0008|0050": "AccessionNumber", "0008|0090": "ReferringPhysicianName", "0008|1030": "StudyDescription",
    "0020|0052": "FrameOfReferenceUID", "0018|5100": "PatientPosition",
}
# the T2W's own, kept because the series lie on its slices: the nominal thickness (a T2W with a gap between its
# slices has a thickness below their spacing), the anatomy, the frame of reference's position reference
T2W_TAGS = {"0018|0050": "SliceThickness", "0018|0015": "BodyPartExamined", "0020|1040": "PositionReferenceIndicator"}
# Type 2 attributes (DICOM PS3.3 C.8.3.1, C.7.4.1) present and empty: no acquisition made these images (ScanOptions,
# MRAcquisitionType, RepetitionTime, EchoTime, EchoTrainLength), and a T2W without a PositionReferenceIndicator;
# without them a validator (dciodvfy) calls every file non-conformant
EMPTY_TYPE2_TAGS = ("0018|0022", "0018|0023", "0018|0080", "0018|0081", "0018|0091", "0020|1040")
IMAGE_TYPE = "DERIVED\\SECONDARY\\OTHER"   # an MR image needs value 3 (C.8.3.1.1.1); OTHER: not an MPR, map, ...
LO_LENGTH, ST_LENGTH, LT_LENGTH = 64, 1024, 10240   # SeriesDescription, DerivationDescription, ImageComments
NOT_DICOM_HINT = ("expected a DICOM T2W (--t2w DICOM_SERIES_FOLDER, or --study EXAM_DIR), or leave --dicom out "
                  "(the NIfTI results are written either way)")


def new_uid() -> str:
    """A new, globally unique DICOM UID: ``2.25.<the integer of a random UUID>``."""
    return f"2.25.{uuid.uuid4().int}"


@dataclasses.dataclass
class DicomTarget:
    """Where the DICOM results go: the T2W header they copy (``study``: tag → decoded text) and, per result
    ("early"/"late"), the new series' folder (relative to the output folder), SeriesInstanceUID and number;
    ``t2w``: the T2W's own tags the series keep (:data:`T2W_TAGS`; one absent or empty is left to the writer)."""

    t2w_file: str
    study: Dict[str, str]
    series: Dict[str, Dict[str, object]]
    t2w: Dict[str, str] = dataclasses.field(default_factory=dict)
    # the patient direction (LPS) in which the T2W's InstanceNumbers grow; None: unknown (numbered along the grid)
    instance_axis: Optional[Tuple[float, float, float]] = None

    def to_dict(self) -> dict:
        """The synthesis.json record ``dicom``: what was written, and into which study."""
        return {"study_instance_uid": self.study.get("0020|000d", ""), "t2w_header_from": self.t2w_file,
                "series": {SERIES_FOLDERS[short]: dict(info) for short, info in self.series.items()}}


def t2w_dicom_files(path, option: str = "--t2w") -> Tuple[List[str], List[int]]:
    """The files of the DICOM T2W given as ``path`` (a series folder, or one multi-frame DICOM file) and its series
    number(s), for ``--dicom``; :class:`InputError` naming ``option`` when it is no DICOM series (a NIfTI/NRRD/MHA
    file has no study to join). Headers only: cheap, called before any slow work."""
    from DCEDiffLib.dicom_study import read_dicom_header, tag_text
    from DCEDiffLib.volume_io import list_dicom_series

    path = Path(path)
    if not path.exists():
        raise InputError(f"--dicom: {option} {path} does not exist; {NOT_DICOM_HINT}")
    if path.is_dir():
        series = list_dicom_series(path)
        if len(series) != 1:
            found = "no DICOM series" if not series else f"{len(series)} DICOM series"
            raise InputError(f"--dicom: {option} {path} holds {found}; {NOT_DICOM_HINT}")
        numbers = [int(series[0]["number"])] if str(series[0]["number"]).isdigit() else []
        return [str(f) for f in series[0]["files"]], numbers
    header = read_dicom_header(path) if path.is_file() else None
    if header is None:
        raise InputError(f"--dicom: {option} {path} is not a DICOM series (a NIfTI, NRRD or MHA file belongs to no "
                         f"DICOM study the synthetic series could join); {NOT_DICOM_HINT}")
    number = tag_text(header, "0020|0011")
    return [str(path)], [int(number)] if number.isdigit() else []


def dicom_target(t2w_files: Sequence[str], used_numbers: Iterable[int] = (), name: str = "T2W") -> DicomTarget:
    """The :class:`DicomTarget` for a T2W made of ``t2w_files``: its header's study tags, fresh UIDs, and series
    numbers that none of ``used_numbers`` (the study's) takes."""
    from DCEDiffLib.dicom_study import read_dicom_header, tag_text

    header, source = None, ""
    for source in t2w_files:
        header = read_dicom_header(source)
        if header is not None:
            break
    if header is None:
        raise InputError(f"--dicom: {name}: no readable DICOM header in {source or 'its files'}; {NOT_DICOM_HINT}")
    study = {tag: tag_text(header, tag) for tag in STUDY_TAGS}
    if not study["0020|000d"]:
        raise InputError(f"--dicom: {name} ({source}) has no StudyInstanceUID: there is no study to join; "
                         f"{NOT_DICOM_HINT}")
    if not study["0020|0052"]:  # both series must share one frame of reference; GDCM would give each its own
        study["0020|0052"] = new_uid()
    numbers = series_numbers(used_numbers)
    series = {short: {"folder": f"{DICOM_FOLDER}/{folder}", "series_instance_uid": new_uid(),
                      "series_number": number}
              for (short, folder), number in zip(SERIES_FOLDERS.items(), numbers)}
    return DicomTarget(str(source), study, series, {tag: tag_text(header, tag) for tag in T2W_TAGS},
                       instance_axis(t2w_files))


def instance_axis(t2w_files: Sequence[str]) -> Optional[Tuple[float, float, float]]:
    """The slice normal (LPS), signed so that the T2W's InstanceNumbers grow along it, from its files' headers: the
    synthetic series are numbered the same way, so that a viewer listing both by number shows the same slice order
    (the usual T2W is numbered head to feet, against its grid). None with fewer than two numbered, placed files."""
    from DCEDiffLib.dicom_study import read_dicom_header, tag_text

    placed = []
    for path in t2w_files:
        header = read_dicom_header(path)
        if header is None:
            continue
        try:
            number = int(tag_text(header, "0020|0013"))
            position = np.array([float(v) for v in tag_text(header, "0020|0032").split("\\")])
            orientation = np.array([float(v) for v in tag_text(header, "0020|0037").split("\\")])
        except ValueError:
            continue
        if position.shape == (3,) and orientation.shape == (6,):
            placed.append((number, position, np.cross(orientation[:3], orientation[3:])))
    if len(placed) < 2:
        return None
    placed.sort(key=lambda item: item[0])
    normal = placed[0][2] / (np.linalg.norm(placed[0][2]) or 1.0)
    step = float(np.dot(placed[-1][1] - placed[0][1], normal))
    if step == 0.0:
        return None
    return tuple(float(v) for v in (normal if step > 0 else -normal))


def instance_numbers(image: sitk.Image, axis: Optional[Sequence[float]]) -> List[int]:
    """InstanceNumber of each slice k of ``image``: 1..N along its grid, or N..1 where its slice axis runs against
    ``axis`` (:func:`instance_axis`)."""
    count = image.GetSize()[2]
    slice_axis = np.array(image.GetDirection()).reshape(3, 3)[:, 2]
    if axis is not None and float(np.dot(slice_axis, axis)) < 0:
        return [count - k for k in range(count)]
    return [k + 1 for k in range(count)]


def series_numbers(used: Iterable[int]) -> Tuple[int, int]:
    """9001 and 9002, or (when the study uses either) the two numbers after its highest."""
    used = {int(n) for n in used if n is not None}
    if not used.intersection(SERIES_NUMBERS):
        return SERIES_NUMBERS
    top = max(used)
    return top + 1, top + 2


def series_description(short: str, flags: Sequence[str] = ()) -> str:
    """``SYNTHETIC [flags] early DCE (DCEDiff)``, at most 64 characters (LO)."""
    return " ".join([RESULT_DESCRIP, *flags, f"{short} DCE", "(DCEDiff)"])[:LO_LENGTH]


def rescale(values: np.ndarray) -> Tuple[np.ndarray, str, bool]:
    """(stored integers, RescaleSlope as written, signed) for ``values``: int16 when any value is negative, else
    uint16; intercept 0 and the smallest slope (written with 8 digits, rounded up) that fits the largest
    magnitude, so that a value comes back within half a slope."""
    values = np.asarray(values, dtype=np.float64)
    signed = bool(values.size) and float(values.min()) < 0.0
    low, high = (-32768, 32767) if signed else (0, 65535)
    extent = float(np.max(np.abs(values))) if values.size else 0.0
    slope_text = f"{extent / high * (1.0 + 1e-6):.8g}" if extent > 0.0 else "1"
    stored = np.clip(np.rint(values / float(slope_text)), low, high)
    return stored, slope_text, signed


def write_dicom_results(images: Dict[str, sitk.Image], out_dir: Path, target: DicomTarget, label: str,
                        flags: Sequence[str] = (), provenance: Optional[dict] = None, shown_as: str = "") -> None:
    """Write each of ``images`` ("early"/"late" → the result on the T2W grid) as the series ``target`` names, under
    ``out_dir`` (the output folder; the atomic write's temporary one). ``label``: the provenance line (with any
    warning); ``flags``: short warnings for the description; ``shown_as``: the output folder for messages. A file
    that cannot be written raises :class:`InputError` (the atomic write then keeps nothing)."""
    from DCEDiffLib import __version__
    from DCEDiffLib.dicom_study import read_dicom_header

    # GDCM's writer keeps RescaleSlope in a classic MR image only once its reader has set the process-wide
    # ForceRescaleInterceptSlope (ITK's reader does, on every read); else it writes Enhanced MR Image Storage
    if read_dicom_header(target.t2w_file) is None:
        raise InputError(f"--dicom: the T2W's DICOM file {target.t2w_file} can no longer be read; expected it "
                         "unchanged while the synthesis runs")
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    model = str((provenance or {}).get("model", "unknown"))
    for short, image in images.items():
        info = target.series[short]
        stored, slope, signed = rescale(sitk.GetArrayViewFromImage(image))
        quantised = sitk.GetImageFromArray(stored * float(slope))  # float64: GDCM divides by the slope and rounds
        quantised.CopyInformation(image)
        tags = {tag: value for tag, value in target.study.items() if value}
        tags.update({
            "0008|0005": "ISO_IR 192",   # UTF-8: the copied names decoded, the provenance line as it is
            "0008|0008": IMAGE_TYPE, "0008|0016": MR_IMAGE_STORAGE, "0008|0060": "MR",
            "0008|0070": MANUFACTURER, "0008|1090": f"DCEDiff model {model}"[:LO_LENGTH],
            "0018|1020": f"DCEDiff {__version__}"[:LO_LENGTH],
            "0008|103e": series_description(short, flags), "0008|2111": label[:ST_LENGTH],
            "0020|4000": label[:LT_LENGTH], "0028|0301": "NO",
            "0018|0020": "RM", "0018|0021": "NONE",   # ScanningSequence "research mode": no acquisition made it
            "0020|000e": str(info["series_instance_uid"]), "0020|0011": str(info["series_number"]),
            "0008|0012": date, "0008|0013": time, "0008|0021": date, "0008|0031": time,
            "0008|0023": date, "0008|0033": time,
            "0028|0100": "16", "0028|0101": "16", "0028|0102": "15", "0028|0103": "1" if signed else "0",
            "0028|1052": "0", "0028|1053": slope, "0028|1054": "US",
        })
        tags.update({tag: "" for tag in EMPTY_TYPE2_TAGS})
        kept = {tag: value for tag, value in target.t2w.items() if value}
        tags.update(kept)
        folder = Path(out_dir) / str(info["folder"])
        writer = sitk.ImageFileWriter()
        for k, number in enumerate(instance_numbers(quantised, target.instance_axis)):
            path = folder / f"IM{number:04d}.dcm"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                write_slice(quantised, k, dict(tags, **{"0020|0013": str(number), "0008|0018": new_uid()}), path,
                            writer, slice_spacing=True, slice_thickness=kept.get("0018|0050"))
            except (OSError, RuntimeError) as exc:
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                shown = Path(shown_as) / str(info["folder"]) / path.name if shown_as else path
                raise InputError(f"--dicom: {shown} could not be written ({reason}); expected a writable output "
                                 "folder with room for the DICOM series: nothing of this run was kept") from exc
            if k == 0:
                _check_storage_class(path)


def _check_storage_class(path: Path) -> None:
    """Refuse a file GDCM wrote as another SOP class than MR Image Storage (Enhanced MR when it would not keep the
    RescaleSlope in a classic MR image): PACS and viewers would take it for another kind of object."""
    from DCEDiffLib.dicom_study import read_dicom_header, tag_text

    header = read_dicom_header(path)
    written = tag_text(header, "0008|0016") if header is not None else "unreadable"
    if written != MR_IMAGE_STORAGE:
        raise InputError(f"--dicom: {path.name} was written as SOP class {written}, expected MR Image Storage "
                         f"({MR_IMAGE_STORAGE}); nothing of this run was kept")
