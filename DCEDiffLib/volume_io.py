"""Reading and writing volumes: DICOM series folders, NIfTI, NRRD and MHA, with geometry kept exactly.

Images are SimpleITK images in LPS physical space; arrays from them are (k, j, i). Every volume that is read is
checked (:func:`validate_volume`) and returned as float32, so bad input fails here with a message that names it,
not deep inside registration or the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.atomic import atomic_path
from DCEDiffLib.compressed_integrity import data_damage
from DCEDiffLib.errors import InputError
from DCEDiffLib.missing_placement import missing_placement
from DCEDiffLib.native_stderr import captured_native_stderr
from DCEDiffLib.nifti_nonfinite import count_nonfinite, is_nifti
from DCEDiffLib.nifti_orientation import placement_disagreement, placement_not_read
from DCEDiffLib.nifti_write_check import nifti_shortfall, nifti_written_whole
from DCEDiffLib.progress import say

WRITABLE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
EXPECTED_INPUT = "a DICOM series folder or a NIfTI / NRRD / MHA file"

# Slice positions may differ from a perfectly regular stack by this much (rounding of the position tags).
SLICE_TOLERANCE_MM = 0.01
SLICE_TOLERANCE_FRACTION = 0.01  # of the slice spacing
ORIENTATION_TOLERANCE = 1e-4

_TAG_SERIES_UID = "0020|000e"
_TAG_SERIES_DESCRIPTION = "0008|103e"
_TAG_SERIES_NUMBER = "0020|0011"
_TAG_MODALITY = "0008|0060"
_TAG_MANUFACTURER = "0008|0070"
_TAG_POSITION = "0020|0032"
_TAG_ORIENTATION = "0020|0037"


# ----------------------------------------------------------------------------------------------- validation

def beyond_float32(array: np.ndarray) -> Optional[str]:
    """``has values beyond the float32 range (largest …; float32 holds up to ±…), the precision DCEDiff computes in``
    for finite voxels (doubles, wide integers) a float32 copy would make infinite, else None. The engine's input check
    and the Slicer module's node check both say it so."""
    if array.dtype.itemsize <= 4 or array.size == 0:
        return None
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    limit = float(np.finfo(np.float32).max)
    if not max(-low, high) > limit:
        return None
    largest = high if high >= -low else low
    return (f"has values beyond the float32 range (largest {largest:.4g}; float32 holds up to ±{limit:.4g}), the "
            "precision DCEDiff computes in")


def validate_volume(image: sitk.Image, name: str = "input", expect_3d: bool = True,
                    allow_constant: bool = False) -> None:
    """Raise :class:`InputError` naming ``name`` unless ``image`` is a usable scalar volume.

    Checks: one component per voxel; 3D with at least two voxels along every axis (``expect_3d``); more than one
    voxel; positive finite spacing and an invertible direction; no NaN/Inf voxels, nor doubles beyond float32's
    range (the precision every later step uses); not constant (unless ``allow_constant``, e.g. for a label map: a
    constant intensity image cannot be normalised).
    """
    if not isinstance(image, sitk.Image):
        raise InputError(f"{name}: expected a SimpleITK image, got {type(image).__name__}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name}: has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                         "(colour or vector image); expected a scalar (grey-value) volume")
    size = tuple(image.GetSize())
    if int(np.prod(size)) == 0:
        raise InputError(f"{name}: is empty (size {_size_text(size)}); expected a 3D volume")
    if int(np.prod(size)) == 1:
        raise InputError(f"{name}: has a single voxel; expected a 3D volume")
    if expect_3d:
        if image.GetDimension() == 2 or (image.GetDimension() == 3 and min(size) == 1):
            raise InputError(f"{name}: is a 2D image (size {_size_text(size)}); expected a 3D volume "
                             "with several slices")
        if image.GetDimension() != 3:
            raise InputError(f"{name}: is a {image.GetDimension()}D image (size {_size_text(size)}); "
                             "expected a single 3D volume")
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"{name}: has invalid voxel spacing {tuple(float(s) for s in spacing)}; expected positive "
                         "millimetres")
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)
    # orthonormal, not only |det| = 1: a stretched or sheared matrix of determinant 1 (kept by ITK's MHA reader and
    # by images handed over in memory) would give the working grid voxels of other sizes than its spacing says
    if not np.all(np.isfinite(direction)) or not np.allclose(direction.T @ direction, np.eye(dim), atol=1e-3):
        raise InputError(f"{name}: has an invalid orientation (direction matrix not orthonormal); "
                         "expected a volume with valid geometry")
    if image.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise InputError(f"{name}: has complex voxels; expected real intensities (magnitude image)")
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise InputError(f"{name}: has {bad} NaN or infinite voxels (of {array.size}); expected finite "
                             "intensities everywhere")
        beyond = beyond_float32(array)  # doubles as_float32 would make infinite
        if beyond:
            raise InputError(f"{name}: {beyond}; expected intensities within it (rescale the volume)")
    if not allow_constant:
        low, high = float(array.min()), float(array.max())
        if low == high:
            raise InputError(f"{name}: is constant (every voxel is {low:g}); expected an image with contrast "
                             "(a constant image cannot be normalised)")


def _size_text(size) -> str:
    return "×".join(str(s) for s in size)


def as_float32(image: sitk.Image) -> sitk.Image:
    """A float32 copy of ``image`` with the same geometry (integer DICOM/NIfTI data included)."""
    if image.GetPixelID() == sitk.sitkFloat32:
        return sitk.Image(image)
    if image.GetDimension() == 4:  # SimpleITK's Cast is not built for 4D integer images
        converted = sitk.GetImageFromArray(sitk.GetArrayViewFromImage(image).astype(np.float32), isVector=False)
        converted.CopyInformation(image)
        return converted
    return sitk.Cast(image, sitk.sitkFloat32)


# ----------------------------------------------------------------------------------------------- files

def read_volume(path, name: str = "input", series_uid: Optional[str] = None, expect_3d: bool = True,
                allow_constant: bool = False) -> sitk.Image:
    """Read one input volume as a validated float32 SimpleITK image (LPS geometry kept exactly).

    ``path`` is a DICOM series folder (see :func:`read_dicom_series`; ``series_uid`` picks a series in a folder
    that holds several) or a NIfTI / NRRD / MHA file. ``name`` (e.g. "T2W") names the input in error messages.
    A 4D file with a single volume is accepted as 3D; ``expect_3d=False`` accepts 2D and 4D images too.
    """
    if isinstance(path, sitk.Image):
        validate_volume(path, name, expect_3d, allow_constant)
        return _without_subnormal_geometry(as_float32(path))
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise InputError(f"{name}: expected {EXPECTED_INPUT} (a path) or a SimpleITK image, got "
                         f"{type(path).__name__ if str(path) else 'an empty path'}")
    path = Path(path)
    if not path.exists():
        raise InputError(f"{name}: {path} does not exist; expected {EXPECTED_INPUT}")
    if path.is_dir():
        return read_dicom_series(path, series_uid=series_uid, name=name, allow_constant=allow_constant)
    image = _read_file(path, name, expect_3d)
    validate_volume(image, f"{name} ({path})", expect_3d, allow_constant)
    return _without_subnormal_geometry(as_float32(image))


def _without_subnormal_geometry(image: sitk.Image) -> sitk.Image:
    """Zero subnormal (< 2.2e-308) origin/direction components in place and return ``image`` (a fresh copy).

    Such values are floating-point dust (no scanner writes them), but ITK's SVD of a direction matrix that holds
    them fails deep inside resampling and registration; zero is the same geometry to within 1e-308 mm.
    """
    tiny = np.finfo(float).tiny

    def clean(values):
        return tuple(0.0 if 0.0 < abs(v) < tiny else float(v) for v in values)

    direction, origin = image.GetDirection(), image.GetOrigin()
    if clean(direction) != tuple(direction) or clean(origin) != tuple(origin):
        image.SetDirection(clean(direction))
        image.SetOrigin(clean(origin))
    return image


def _read_file(path: Path, name: str, expect_3d: bool) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        damage = data_damage(path)  # a corrupt stream can already garble the header: say so, not "no reader"
        if damage:
            raise _damaged(name, path, damage) from exc
        raise InputError(f"{name}: {path} is not a readable image ({_itk_reason(exc)}); expected {EXPECTED_INPUT}"
                         ) from exc
    size = tuple(reader.GetSize())
    is_dicom = reader.HasMetaDataKey(_TAG_SERIES_UID)
    if is_dicom and reader.GetDimension() == 3 and size[2] == 1:
        raise InputError(f"{name}: {path} is a single DICOM slice; expected the folder that holds the whole "
                         f"series ({path.parent})")
    if is_dicom:  # a multi-frame (enhanced) file read as a volume: refused as a marked series folder is
        _refuse_dcediff_result(_header_series(reader), f"the DICOM file {path}", name)
    if expect_3d and reader.GetDimension() == 4 and size[3] > 1:
        raise InputError(f"{name}: {path} is a 4D image with {size[3]} volumes (size {_size_text(size)}); "
                         "expected a single 3D volume (choose one time point or b-value)")
    if is_nifti(path):  # ITK reads a truncated NIfTI (plain or gzipped) without a word, the rest as zeros
        short = nifti_shortfall(path)
        if short is not None:
            raise InputError(f"{name}: {path} is truncated: it holds {short[0]} bytes of the {short[1]} its header "
                             "describes (an incomplete copy or download; the NIfTI reader would give the rest as "
                             "zeros); expected a complete NIfTI file")
    damage = data_damage(path)  # ITK reads a corrupt compressed stream as noise, and a short .mha as "no such file"
    if damage:
        raise _damaged(name, path, damage)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{name}: {path} could not be read ({_itk_reason(exc)}); expected {EXPECTED_INPUT}"
                         ) from exc
    unplaced = missing_placement(path)  # read at origin 0, identity axes: say so before a misleading refusal
    if unplaced:
        say(f"dcediff: warning: {name}: {unplaced}")
    if expect_3d and image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = sitk.Extract(image, list(image.GetSize()[:3]) + [0], [0, 0, 0, 0])  # 3D stored as 4D
    if is_nifti(path):  # the NIfTI reader returns NaN/Inf voxels as 0: count them in the file
        counted = count_nonfinite(path)
        if counted is not None and counted[0] > 0:
            raise InputError(f"{name}: {path} has {counted[0]} NaN or infinite voxels (of {counted[1]}) in the file "
                             "(the NIfTI reader would give them as 0); expected finite intensities everywhere")
        misplaced = placement_not_read(path, image)  # ITK fills a bad pixdim with 1 mm without a word of ours
        if misplaced:
            raise InputError(f"{name}: {misplaced}")
        disagreement = placement_disagreement(path, image)
        if disagreement:
            say(f"dcediff: warning: {name}: {disagreement}")
    return image


def _damaged(name: str, path: Path, damage: str) -> InputError:
    return InputError(f"{name}: {path} is damaged: {damage}; expected an intact file (copy or download it again)")


def _itk_reason(exc: Exception) -> str:
    """The informative last line of an ITK exception message."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    return reason[:200]


# ----------------------------------------------------------------------------------------------- DICOM

def _unread_files_hint(folder: Path, series_files: List[str]) -> str:
    """Where a slice is missing, the files of ``folder`` that cannot be read as DICOM (a truncated or corrupt slice
    is dropped by GDCM without a word): named, so that the user finds the broken file. Only on that error path."""
    taken = {Path(f).name for f in series_files}
    unread = sorted(p.name for p in Path(folder).iterdir() if p.is_file() and p.name not in taken
                    and not p.name.startswith(".") and read_header(p) is None)
    if not unread:
        return ""
    return (f"; {len(unread)} file(s) in the folder cannot be read as DICOM, perhaps the missing slice(s): "
            f"{', '.join(unread[:3])}{', …' if len(unread) > 3 else ''}")


def damaged_dicom_files(folder: Path, taken) -> List[str]:
    """The files of ``folder`` (not its sub-folders, hidden files left out) other than ``taken`` that are DICOM files
    of an image class but that GDCM cannot read: a truncated or corrupt slice, which GDCM drops without a word. A
    slice dropped at either end of a stack leaves regular spacing behind, so no gap check notices it. A report or
    presentation state beside the slices is no slice (:mod:`DCEDiffLib.dicom_part10`)."""
    from DCEDiffLib.dicom_part10 import looks_like_image_file

    taken = {Path(f).name for f in taken}
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.is_file() and p.name not in taken and not p.name.startswith(".")
                  and looks_like_image_file(p) and read_header(p) is None)


def refuse_damaged_dicom(folder: Path, taken, name: str) -> None:
    """:class:`InputError` naming the damaged DICOM files of ``folder`` (see :func:`damaged_dicom_files`)."""
    damaged = damaged_dicom_files(folder, taken)
    if damaged:
        raise damaged_files_error(f"{name}: {len(damaged)} DICOM file(s) in {folder}", damaged)


def damaged_files_error(what: str, damaged: List[str]) -> InputError:
    """The error for slices that cannot be read (a series folder given as a file, or a series of a --study)."""
    return InputError(f"{what} cannot be read (truncated or corrupt): {', '.join(damaged[:3])}"
                      f"{', …' if len(damaged) > 3 else ''}; the series would be read without them, a slice short; "
                      "expected every file of the series readable (restore the file, or remove it if it does not "
                      "belong to the series)")


def list_dicom_series(folder) -> List[Dict[str, object]]:
    """The DICOM series in ``folder`` (not its sub-folders): one dict per series with ``series_uid``,
    ``description``, ``number``, ``modality``, ``manufacturer``, ``num_files`` and ``files`` (sorted as GDCM returns
    them)."""
    folder = Path(folder)
    series = []
    with captured_native_stderr():  # ITK prints a two-line "No Series were found" warning above our own error
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    for uid in uids:
        files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
        info = {"series_uid": uid, "description": "", "number": "", "modality": "", "manufacturer": "",
                "num_files": len(files), "files": files}
        if files:
            header = read_header(Path(files[0]))
            if header is not None:
                for key, tag in (("description", _TAG_SERIES_DESCRIPTION), ("number", _TAG_SERIES_NUMBER),
                                 ("modality", _TAG_MODALITY), ("manufacturer", _TAG_MANUFACTURER)):
                    if header.HasMetaDataKey(tag):
                        info[key] = header.GetMetaData(tag).strip()
        series.append(info)
    return series


def read_header(path: Path) -> Optional[sitk.ImageFileReader]:
    """A reader that has read only the header of ``path`` (geometry, tags), or None if it cannot be read."""
    from DCEDiffLib.dicom_part10 import compressed
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with captured_native_stderr(enabled=compressed(Path(path))):  # a codestream GDCM cannot parse: OpenJPEG prints
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            return None
    return reader


def _describe_series(series: List[Dict[str, object]]) -> str:
    return "; ".join(f"{s['series_uid']} (#{s['number']} '{s['description']}', {s['num_files']} files)"
                     for s in series)


def read_dicom_series(folder, series_uid: Optional[str] = None, name: str = "input",
                      allow_constant: bool = False) -> sitk.Image:
    """Read one DICOM series from ``folder`` as a float32 image, slices sorted along the slice normal.

    Refused with :class:`InputError`: a folder without DICOM, several series when ``series_uid`` does not name
    one, slices with different orientations, duplicate slice positions (e.g. DWI with several b-values stacked in
    one series), missing or unevenly spaced slices, slices not stacked along their normal, and a series DCEDiff
    wrote as a result (exported to DICOM by the Slicer module: :func:`DCEDiffLib.data_source.dicom_result_mark`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{name}: {folder} is not a folder; expected a DICOM series folder")
    series = list_dicom_series(folder)
    if not series:
        hint = ""
        if any(p.is_dir() for p in folder.iterdir()):
            hint = " (it has sub-folders: give the folder of one series itself)"
        raise InputError(f"{name}: folder {folder} contains no DICOM series{hint}; expected {EXPECTED_INPUT}")
    if series_uid is not None:
        chosen = [s for s in series if s["series_uid"] == series_uid]
        if not chosen:
            raise InputError(f"{name}: folder {folder} has no series {series_uid}; it holds "
                             f"{_describe_series(series)}")
    elif len(series) > 1:
        raise InputError(f"{name}: folder {folder} holds {len(series)} DICOM series: {_describe_series(series)}; "
                         "expected one series per folder: give that series' own folder, or read the folder as a "
                         "study (dcediff synthesize --study FOLDER --series ROLE=NUMBER)")
    else:
        chosen = series
    _refuse_dcediff_result(chosen[0], f"the DICOM series in {folder}", name)
    image = read_slice_stack(chosen[0]["files"], folder, name)  # a slice dropped inside the stack: a gap, said there
    refuse_damaged_dicom(folder, [f for s in series for f in s["files"]], name)  # one dropped at either end
    validate_volume(image, f"{name} ({folder})", expect_3d=True, allow_constant=allow_constant)
    return _without_subnormal_geometry(as_float32(image))


def _refuse_dcediff_result(series: Dict[str, object], what: str, name: str) -> None:
    """:class:`InputError` before any pixel is read when the series (a :func:`list_dicom_series` entry, or the
    same keys from one file's header) is a DCEDiff result by its header: as the acquired DCE a synthesis would be
    scored against itself (a zero residual, perfect metrics), as an input it is no acquired image (the NIfTI/NRRD
    results are refused by their own mark). ``what`` names where it was found ("the DICOM series in FOLDER")."""
    from DCEDiffLib.data_source import dicom_result_mark

    mark = dicom_result_mark(str(series["description"]), str(series["manufacturer"]))
    if mark:
        raise InputError(f"{name}: {what} (#{series['number'] or '?'} "
                         f"'{series['description']}') is a DCEDiff result (synthetic: its {mark}), not an acquired "
                         "image; expected an acquired series")


def _header_series(reader: sitk.ImageFileReader) -> Dict[str, object]:
    """The :func:`list_dicom_series` keys a DICOM file's header gives (description, number, manufacturer)."""
    return {key: reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
            for key, tag in (("description", _TAG_SERIES_DESCRIPTION), ("number", _TAG_SERIES_NUMBER),
                             ("manufacturer", _TAG_MANUFACTURER))}


def read_slice_stack(files: List[str], folder: Path, name: str) -> sitk.Image:
    """The DICOM files of one series (checked to form one regular stack, read in slice order) as one image,
    unvalidated; ``folder`` and ``name`` name them in errors."""
    from DCEDiffLib.dicom_part10 import DECOMPRESS_HINT, compressed, transfer_syntax, transfer_syntax_text
    ordered = _sorted_slice_files(files, folder, name)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in ordered])
    packed = compressed(Path(ordered[0]))
    # a decoder that fails prints once per file (OpenJPEG: "Invalid marker size"): kept off the console, quoted below
    with captured_native_stderr(enabled=packed) as said:
        try:
            return reader.Execute() if len(ordered) > 1 else sitk.ReadImage(str(ordered[0]))
        except RuntimeError as exc:
            failure = exc
    if not packed:
        raise InputError(f"{name}: DICOM series in {folder} could not be read ({_itk_reason(failure)})") from failure
    decoder = f"; the decoder said: {said[0][:120]}" if said else ""
    raise InputError(f"{name}: DICOM series in {folder} could not be read: its pixel data are compressed in transfer "
                     f"syntax {transfer_syntax_text(transfer_syntax(Path(ordered[0])))}, which this reader (GDCM) "
                     f"could not decode ({_itk_reason(failure)}{decoder}); {DECOMPRESS_HINT}") from failure


def _sorted_slice_files(files: List[str], folder: Path, name: str) -> List[str]:
    """The slice files ordered along the slice normal, after checking that they form one regular stack."""
    if len(files) == 1:
        return files  # a single (possibly multi-frame) file: validate_volume checks the result
    positions, orientations, sizes = [], [], {}
    for path in files:
        header = read_header(Path(path))
        if header is None or not (header.HasMetaDataKey(_TAG_POSITION) and header.HasMetaDataKey(_TAG_ORIENTATION)):
            raise InputError(f"{name}: DICOM file {path} has no slice position/orientation; expected an image "
                             f"series with geometry in {folder}")
        sizes.setdefault(tuple(header.GetSize()[:2]), path)
        if len(sizes) > 1:  # the series reader would fail with a bare "Size: [...]"
            (first, first_path), (other, other_path) = list(sizes.items())[:2]
            raise InputError(f"{name}: DICOM series in {folder} mixes slice sizes: {other_path} is "
                             f"{_size_text(other)} pixels, {first_path} {_size_text(first)}; expected slices of one "
                             "size (one stack of one acquisition)")
        try:
            positions.append([float(v) for v in header.GetMetaData(_TAG_POSITION).split("\\")])
            orientations.append([float(v) for v in header.GetMetaData(_TAG_ORIENTATION).split("\\")])
        except ValueError as exc:
            raise InputError(f"{name}: DICOM file {path} has an unreadable slice position or orientation") from exc
    positions = np.asarray(positions, dtype=float)
    orientations = np.asarray(orientations, dtype=float)
    if positions.shape[1] != 3 or orientations.shape[1] != 6:
        raise InputError(f"{name}: DICOM series in {folder} has malformed position/orientation tags")
    if np.max(np.abs(orientations - orientations[0])) > ORIENTATION_TOLERANCE:
        raise InputError(f"{name}: DICOM series in {folder} mixes slices of different orientations; expected one "
                         "stack of parallel slices (a localizer series cannot be used)")
    row, col = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    distinct = int(np.sum(gaps > SLICE_TOLERANCE_MM)) + 1
    if distinct < len(files):
        volumes = f", {len(files) // distinct} volumes" if len(files) % distinct == 0 else ""
        raise InputError(f"{name}: DICOM series in {folder} has duplicate slice positions ({len(files)} images at "
                         f"{distinct} distinct positions{volumes}), e.g. several b-values, echoes or time points "
                         "stacked in one series; expected one image per slice position (use a single-volume series "
                         "such as the ADC map; from a dynamic DCE series the study reader picks the T1-pre, early "
                         "and late frames: dcediff synthesize --study DIR)")
    spacing = float(np.median(gaps))
    tolerance = max(SLICE_TOLERANCE_MM, SLICE_TOLERANCE_FRACTION * spacing)
    worst = float(np.max(np.abs(gaps - spacing)))
    if worst > tolerance:
        big = gaps > spacing + tolerance
        kind = "missing slices" if np.any(big) and np.all(np.abs(gaps[~big] - spacing) <= tolerance) else \
            "unevenly spaced slices"
        raise InputError(f"{name}: DICOM series in {folder} has {kind} (slice gaps from {gaps.min():.3f} to "
                         f"{gaps.max():.3f} mm, expected {spacing:.3f} mm everywhere)"
                         f"{_unread_files_hint(folder, files)}"
                         "; expected a complete series with regular slice spacing")
    lateral = positions - positions[0] - np.outer(along - along[0], normal)
    if np.max(np.linalg.norm(lateral, axis=1)) > tolerance:
        raise InputError(f"{name}: DICOM series in {folder} is not stacked along the slice normal (sheared or "
                         "tilted stack); expected slices stacked perpendicular to their plane")
    return [files[i] for i in order]


# ----------------------------------------------------------------------------------------------- writing

def write_volume(image: sitk.Image, path: str | os.PathLike,
                 metadata: Optional[Dict[str, str]] = None, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` atomically (temporary name, then rename), with optional key/value metadata.

    NRRD and MHA store the metadata as key/value fields; NIfTI stores ``metadata['description']`` (if given) in
    its 80-character ``descrip`` header field. Returns the final path.
    """
    path = Path(path)
    if not str(path).endswith(WRITABLE_SUFFIXES):
        raise InputError(f"output file {path}: unsupported extension; expected one of {', '.join(WRITABLE_SUFFIXES)}")
    image = sitk.Image(image)  # never modify the caller's image
    for key, value in (metadata or {}).items():
        if str(path).endswith((".nii", ".nii.gz")):
            if key == "description":  # ITK writes ITK_FileNotes into the NIfTI descrip field
                # the field holds 79 bytes (not characters): cut the UTF-8 text on a character boundary
                notes = str(value).encode("utf-8")[:79].decode("utf-8", errors="ignore")
                image.SetMetaData("ITK_FileNotes", notes)
        else:
            image.SetMetaData(key, str(value))
    try:
        with atomic_path(path) as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
            if not tmp.exists():
                raise InputError(f"output file {path}: its temporary file was removed while it was written "
                                 "(another process cleaning this folder?)")
            if is_nifti(Path(str(path))) and not nifti_written_whole(tmp):  # ITK's NIfTI writer does not raise
                raise InputError(f"output file {path}: written incompletely ({_free_space_words(tmp.parent)}); "
                                 "expected room for the whole file")
    except RuntimeError as exc:
        raise InputError(f"output file {path}: could not be written ({str(exc).strip().splitlines()[-1]})") from exc
    return path


def _free_space_words(folder: Path) -> str:
    try:
        free = os.statvfs(folder)
        return f"{free.f_bavail * free.f_frsize / 1e6:.1f} MB free on its disk: likely full"
    except (OSError, AttributeError):
        return "the disk is likely full"
