"""Preprocessing of one exam, as the paper does it, made robust: read → register to T2W → working grid → normalise.

:func:`preprocess_case` returns a :class:`PreprocessedCase` (everything on the 160×160×16 working grid, with the
normalisation parameters and registration results); :func:`write_preprocessed` writes it as
``<modality>.nii.gz``, ``transforms/<modality>.tfm`` and ``preprocess.json`` (``dcediff preprocess``), and
:func:`load_preprocessed` reads such a folder back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffLib import __version__
from DCEDiffLib.data_source import PHANTOM, input_source, is_dcediff_result
from DCEDiffLib.errors import InputError
from DCEDiffLib.intensity_sign import looks_negated, negated_reason, sign_measure
from DCEDiffLib.intensity_tail import tame_heavy_tail
from DCEDiffLib.modalities import (ACQUIRED_BASELINE, DESCRIPTIONS, INPUT_MODALITIES, MISSING_INPUT_VALUE,
                                   OPTIONAL_INPUTS, TARGET_MODALITIES)
from DCEDiffLib.normalization import NormParams, fit_normalization, normalize
from DCEDiffLib.progress import CancelHook, check_cancel, say as progress_say  # `say` is a local name here
from DCEDiffLib.registration import RegistrationResult
from DCEDiffLib.registration_schedule import register_series, unregistered
from DCEDiffLib.volume_io import read_volume, write_volume
from DCEDiffLib.working_grid import (GRID_SIZE, GRID_SPACING, WorkingGrid, coverage_mask, make_working_grid,
                                     resample_to_grid)

REGISTERED = ("pd", "adc", "t1pre") + TARGET_MODALITIES   # all but the T2W; the T1-pre before the DCE frames
LABEL_KEYS = ("labels", "prostate_mask")                   # label maps drawn in T2W space: no registration
SPACING_RANGE_MM = (0.05, 20.0)                            # plausible MR voxel sizes
MIN_COVERAGE = 0.10                                        # of the working grid, per input
MIN_VOXELS_PER_AXIS = 4                                    # ITK's recursive Gaussian (registration) needs 4
MAX_NEGATIVE_ADC_FRACTION = 0.01                           # ADC is ≥ 0; a few noisy voxels are tolerated
NAMES = {**{m: DESCRIPTIONS[m] for m in INPUT_MODALITIES + TARGET_MODALITIES + (ACQUIRED_BASELINE,)},
         "labels": "label map", "prostate_mask": "prostate mask"}
KNOWN_INPUTS = INPUT_MODALITIES + TARGET_MODALITIES + (ACQUIRED_BASELINE,) + LABEL_KEYS
PREPROCESS_FORMAT = 1


@dataclasses.dataclass
class PreprocessedCase:
    """One exam on the working grid.

    ``images``: modality → image on the grid (float32 intensities on the original scale; label maps keep their
    integer type); ``norm``: modality → normalisation parameters (the four inputs); ``registration``: modality →
    :class:`RegistrationResult`; ``coverage``: modality → fraction of the grid inside that series' field of view;
    ``t2w``: the original T2W (or, read back from disk, an empty image with its geometry) for pasting back.
    """

    grid: WorkingGrid
    t2w: sitk.Image
    images: Dict[str, sitk.Image]
    norm: Dict[str, NormParams]
    registration: Dict[str, RegistrationResult]
    coverage: Dict[str, float]
    sources: Dict[str, str] = dataclasses.field(default_factory=dict)
    crop_centre: dict = dataclasses.field(default_factory=dict)  # crop_centre_lps, crop_centre_source, ...
    # modality → why its intensity range was set from the bulk (intensity_tail.py); empty for phantom-like exams
    intensity_notes: Dict[str, str] = dataclasses.field(default_factory=dict)
    # input modality → (k, j, i) booleans: the grid inside that series' field of view; kept in memory only (a case
    # read back from disk has none), for synthesis's T1-pre coverage record (t1pre_coverage.py)
    coverage_masks: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    # input modality → voxel size and field of view of the series as read (ood.series_geometry), kept in memory only:
    # the out-of-distribution check's geometry, whatever the input was (a file, a DICOM folder, a study's series)
    input_geometry: Dict[str, dict] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def normalized(self, modality: str) -> np.ndarray:
        """A condition modality normalised to [-1, 1] (float32 (k, j, i), not clipped)."""
        if modality not in self.norm:
            raise InputError(f"{modality}: not a normalised input of this case (has {', '.join(self.norm)})")
        return normalize(sitk.GetArrayFromImage(self.images[modality]), self.norm[modality])

    @property
    def missing_inputs(self) -> List[str]:
        """Non-contrast inputs this case was made without (only optional ones can be), in input order."""
        return [m for m in INPUT_MODALITIES if m not in self.norm]

    def to_dict(self) -> dict:
        """The content of ``preprocess.json``."""
        t2w = self.t2w
        return {
            "format": PREPROCESS_FORMAT, "dcediff_version": __version__,
            "working_grid": self.grid.to_dict(),
            "t2w_geometry": {"size": list(t2w.GetSize()), "spacing": list(t2w.GetSpacing()),
                             "origin": list(t2w.GetOrigin()), "direction": list(t2w.GetDirection())},
            "normalization": {m: p.to_dict() for m, p in self.norm.items()},
            "registration": {m: r.to_dict() for m, r in self.registration.items()},
            "coverage": {m: round(float(c), 4) for m, c in self.coverage.items()},
            "modalities": sorted(self.images), "sources": self.sources, "missing_inputs": self.missing_inputs,
            **({"missing_inputs_note": missing_inputs_note(self.missing_inputs)} if self.missing_inputs else {}),
            **self.crop_centre,
            **({"intensity_notes": dict(self.intensity_notes)} if self.intensity_notes else {}),
            "axis_order": "arrays are (k, j, i); coordinates LPS mm; transforms map T2W points to the series",
        }


def missing_inputs_note(missing: Sequence[str]) -> str:
    """What a case preprocessed without some (optional) inputs holds, and who can use it (``preprocess.json``
    ``missing_inputs_note``, ``dcediff preprocess``'s note). No model is consulted here: the model that reads the
    case decides (its card's ``optional_inputs``)."""
    names = " and ".join(_name(m) for m in missing)
    files = ", ".join(f"{m}.nii.gz" for m in missing)
    dropout = ", ".join(f"augment.drop_{m}" for m in missing)
    return (f"preprocessed WITHOUT {names}: not given, so not registered, resampled or normalised (no {files}); a "
            f"model whose card lists {', '.join(missing)} in optional_inputs gets the constant MISSING_INPUT_VALUE "
            f"({MISSING_INPUT_VALUE:g}, normalised units) in that channel, as in training with {dropout} "
            "(pipeline.condition_array); other models, dcediff train and dcediff evaluate need every input")


def _name(key: str) -> str:
    return f"{NAMES.get(key, key)} ({key})"


MAX_LABEL_VALUES = 256   # distinct values of a label map; an MR image rounded to integers has thousands


def _as_label_map(image: sitk.Image, key: str) -> sitk.Image:
    """A label map as integers (a float one rounded to the nearest label), refused when it cannot be one: values
    beyond int16 (they would wrap around) or more distinct values than any label map has (an image given as one)."""
    rounded = sitk.Round(image)
    values = sitk.GetArrayViewFromImage(rounded)
    low, high = float(values.min()), float(values.max())
    if low < -32768 or high > 32767:
        raise InputError(f"{_name(key)}: values {low:g} to {high:g}; expected integer labels within -32768 to 32767 "
                         "(a label map)")
    distinct = len(np.unique(values))
    if distinct > MAX_LABEL_VALUES:
        raise InputError(f"{_name(key)}: {distinct} distinct values; expected a label map (at most "
                         f"{MAX_LABEL_VALUES} labels), not an image")
    return sitk.Cast(rounded, sitk.sitkInt16)


def _check_spacing(image: sitk.Image, key: str) -> None:
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    low, high = SPACING_RANGE_MM
    if np.any(spacing < low) or np.any(spacing > high):
        shown = tuple(round(float(s), 4) for s in spacing)  # plain floats: numpy 2 would print np.float64(...)
        raise InputError(f"{_name(key)}: voxel spacing {shown} mm is outside "
                         f"{low:g}–{high:g} mm; expected an MR volume with plausible voxel sizes (check the "
                         "file's header units)")


def _check_extent(image: sitk.Image, key: str) -> None:
    """Refuse a series with fewer than :data:`MIN_VOXELS_PER_AXIS` voxels along an axis (e.g. 2 or 3 slices):
    registration smooths every axis and ended in an ITK traceback naming no series."""
    size = tuple(int(n) for n in image.GetSize())
    if min(size) < MIN_VOXELS_PER_AXIS:
        raise InputError(f"{_name(key)}: size {'×'.join(map(str, size))} voxels has fewer than "
                         f"{MIN_VOXELS_PER_AXIS} along an axis; expected a volume with at least "
                         f"{MIN_VOXELS_PER_AXIS} voxels (slices) along every axis")


def _check_adc(image: sitk.Image) -> None:
    values = sitk.GetArrayViewFromImage(image)
    negative = float(np.mean(values < 0))
    if negative > MAX_NEGATIVE_ADC_FRACTION:
        measure = sign_measure(values)
        if looks_negated(measure):  # a sign-flipped export: say so, not "a DWI or a difference image"
            raise InputError(negated_reason(_name("adc"), measure, "an ADC map (apparent diffusion coefficient ≥ 0, "
                                                                   "e.g. in 10⁻⁶ mm²/s)"))
        raise InputError(f"{_name('adc')}: {negative:.1%} of the voxels are negative; expected an ADC map "
                         "(apparent diffusion coefficient ≥ 0, e.g. in 10⁻⁶ mm²/s), not a DWI or a difference "
                         "image")


def missing_inputs(inputs: Mapping[str, object]) -> List[str]:
    """The non-contrast inputs not given (absent, None or empty), in input order."""
    return [m for m in INPUT_MODALITIES if inputs.get(m) is None or (isinstance(inputs.get(m), str) and not
                                                                    inputs.get(m))]


def check_required_inputs(inputs: Mapping[str, object], optional: Sequence[str] = ()) -> None:
    """Refuse a non-mapping, unknown keys, values that are neither a path nor a SimpleITK image, and missing inputs
    other than ``optional`` ones (those a model can do without)."""
    if not isinstance(inputs, Mapping):
        raise InputError(f"inputs: expected a mapping of modality → path or SimpleITK image (e.g. {{'t2w': ...}}), "
                         f"got {type(inputs).__name__}")
    unknown = sorted(set(inputs) - set(KNOWN_INPUTS))
    if unknown:
        raise InputError(f"unknown input(s) {', '.join(unknown)}; expected {', '.join(KNOWN_INPUTS)}")
    missing = [m for m in missing_inputs(inputs) if m not in optional]
    if missing:
        raise InputError(f"missing input(s): {', '.join(_name(m) for m in missing)}; expected all four "
                         "non-contrast inputs T2W, PD, ADC and T1 pre-contrast")
    for key, value in inputs.items():
        if value is not None and not isinstance(value, (str, os.PathLike, sitk.Image)):
            raise InputError(f"{_name(key)}: expected a path (DICOM series folder, NIfTI/NRRD/MHA file) or a "
                             f"SimpleITK image, got {type(value).__name__}")


def read_inputs(inputs: Mapping[str, object], optional: Sequence[str] = ()) -> Dict[str, sitk.Image]:
    """Read and check every given input (paths or SimpleITK images) as float32, label maps as integers.
    ``optional``: inputs that may be missing (``modalities.OPTIONAL_INPUTS`` a model was trained to do without)."""
    unknown_optional = sorted(set(optional) - set(OPTIONAL_INPUTS))
    if unknown_optional:
        raise InputError(f"optional input(s) {', '.join(unknown_optional)}: only {', '.join(OPTIONAL_INPUTS)} can be "
                         "left out")
    check_required_inputs(inputs, optional)
    if (inputs.get("dce_early") is None) != (inputs.get("dce_late") is None):
        raise InputError("acquired DCE: give both the early and the late image, or neither")
    if inputs.get(ACQUIRED_BASELINE) is not None and inputs.get("dce_early") is None:
        raise InputError(f"{_name(ACQUIRED_BASELINE)}: given without the acquired DCE; expected it beside the early "
                         "and late frames (it only puts them on the T1-pre's intensity scale)")
    images = {}
    for key, source in inputs.items():
        if source is None or (isinstance(source, str) and source == ""):
            continue
        is_label = key in LABEL_KEYS
        image = read_volume(source, name=_name(key), allow_constant=is_label)
        if not is_label and is_dcediff_result(image):  # scored against itself, a synthesis has no error at all
            raise InputError(f"{_name(key)}: {source if isinstance(source, (str, Path)) else 'the image'} is a "
                             "DCEDiff result (synthetic; its header says so), not an acquired image; expected an "
                             "acquired series")
        if is_label:
            image = _as_label_map(image, key)
        else:  # label maps are resampled only, never registered
            _check_extent(image, key)
        _check_spacing(image, key)
        images[key] = image
    _check_adc(images["adc"])
    for first, second in same_image_in_two_roles(images):
        progress_say(f"dcediff: warning: {_name(first)} and {_name(second)} are the same image (identical voxels "
                     "and geometry): the model expects a different acquisition for each role; a copy of one file "
                     "was likely given for both")
    return images


def same_image_in_two_roles(images: Mapping[str, sitk.Image]) -> List[Tuple[str, str]]:
    """Pairs of roles (not label maps) whose images are identical: the same series given twice under two paths
    (a copy, or a DICOM folder and its NIfTI conversion). Geometry is compared first, voxels only when it agrees."""
    keys = [k for k in images if k not in LABEL_KEYS]
    pairs = []
    for index, first in enumerate(keys):
        for second in keys[index + 1:]:
            if {first, second} == {"t1pre", ACQUIRED_BASELINE}:
                continue  # the DCE's own pre-contrast frame may be the T1-pre itself (one series): no mistake
            a, b = images[first], images[second]
            if a.GetSize() != b.GetSize() or not all(
                    np.allclose(x, y, atol=1e-3) for x, y in ((a.GetSpacing(), b.GetSpacing()),
                                                              (a.GetOrigin(), b.GetOrigin()),
                                                              (a.GetDirection(), b.GetDirection()))):
                continue
            if np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)):
                pairs.append((first, second))
    return pairs


def refuse_series_off_the_centre(images: Mapping[str, sitk.Image], centre_lps: Sequence[float], source: str) -> None:
    """Refuse, before any registration, a series whose field of view does not contain the crop centre: it images
    another region (e.g. an abdominal T2W picked from a study, or a wrong file), and a registration there has
    nothing to align (it used to end in an ITK error naming no series)."""
    off = []
    for key, image in images.items():
        if key in LABEL_KEYS:
            continue
        index = np.asarray(image.TransformPhysicalPointToContinuousIndex([float(c) for c in centre_lps]))
        if np.any(index < -0.5) or np.any(index > np.asarray(image.GetSize()) - 0.5):
            off.append(_name(key))
    if off:
        whence = {"prostate model": "the prostate model on the T2W", "user": "--center",
                  "field-of-view centre": "the T2W's field-of-view centre"}.get(source, source)
        hint = ("One of them is likely the wrong series (in a study: pick it with --series ROLE=NUMBER), or --center "
                "lies outside it")
        others = [k for k in images if k not in LABEL_KEYS and k != "t2w"]
        if source != "user" and len(others) > 1 and len(off) == len(others):
            # the centre comes from the T2W: when no other series reaches it, the T2W is the one out of place
            hint = (f"None of the {len(others)} other series reaches it, so the T2W (--t2w) is the likely odd one "
                    "out: another region, or a header that places it elsewhere (an origin or orientation changed "
                    "by an export)")
        raise InputError(f"{', '.join(off)}: the field of view does not contain the crop centre "
                         f"{tuple(round(float(c), 1) for c in centre_lps)} LPS mm (from {whence}); expected series of "
                         f"one exam that all image the prostate. {hint}")


def preprocess_case(inputs: Mapping[str, object], center_lps: Optional[Sequence[float]] = None,
                    register: bool = True, progress=None, should_cancel: Optional[CancelHook] = None,
                    grid_size: Sequence[int] = GRID_SIZE, grid_spacing: Sequence[float] = GRID_SPACING,
                    find_prostate: bool = False, warn: Optional[Callable[[str], None]] = None,
                    self_check: bool = False, optional: Sequence[str] = ()) -> PreprocessedCase:
    """Register every series to the T2W, resample onto the working grid and fit the normalisation.

    ``inputs`` maps ``t2w, pd, adc, t1pre`` (required), ``dce_early, dce_late`` (optional, together),
    ``labels``/``prostate_mask`` (optional, in T2W space) to a path (DICOM folder, NIfTI/NRRD/MHA file) or a
    SimpleITK image. ``center_lps`` is the prostate centre in LPS mm. Without it the crop is centred on the T2W
    field-of-view centre or, with ``find_prostate`` (what ``dcediff synthesize``/``preprocess`` do), on the gland
    the TAPS model finds (:mod:`DCEDiffLib.prostate_localization`; its mask becomes ``prostate_mask`` on the grid
    unless one was given); when the model is not installed or finds no gland, ``warn`` (default: stderr) says why
    and the field-of-view centre is used. ``progress(step, total)`` is called after each registration.
    ``self_check`` (what ``dcediff synthesize``/``preprocess`` do): each registration is checked by registering a
    copy of the series moved by a known 3°/5 mm (:mod:`DCEDiffLib.registration_check`; a rejected one is retried
    from several starts); the result is in ``registration[m].self_check`` and a disagreement is also said through
    ``warn``. Inputs are never modified. ``optional``: inputs that may be missing (``modalities.OPTIONAL_INPUTS``,
    for a model trained to do without them): a missing one is not registered, resampled nor normalised
    (``PreprocessedCase.missing_inputs`` lists it); the caller fills its channel (``pipeline.condition_array``).
    """
    from DCEDiffLib.ood import series_geometry

    images = read_inputs(inputs, optional)
    t2w = images["t2w"]
    geometry = {k: series_geometry(images[k]) for k in INPUT_MODALITIES if k in images}
    phantom = find_prostate and center_lps is None and input_source(inputs["t2w"]) == PHANTOM
    location = _crop_centre(t2w, center_lps, find_prostate, should_cancel, warn, phantom)
    grid = make_working_grid(t2w, center_lps if center_lps is not None else location.centre_lps,
                             size=grid_size, spacing=grid_spacing)
    if location.mask is not None and "prostate_mask" not in images:
        images["prostate_mask"] = sitk.Cast(location.mask, sitk.sitkInt16)
    to_register = [m for m in REGISTERED if m in images]
    refuse_series_off_the_centre(images, grid.center_lps, location.source)
    if register:  # side by side where the cores allow; the DCE frames through the T1-pre (registration_schedule)
        registration = register_series(t2w, images, to_register, grid.center_lps, self_check=self_check,
                                       should_cancel=should_cancel, progress=progress)
    else:
        registration = unregistered(to_register, progress, should_cancel)
    for modality in to_register:
        check = registration[modality].self_check or {}
        if check.get("agrees") is False:  # said for the frames too, whose check is of their step to the T1-pre
            say = warn or (lambda text: progress_say(f"dcediff: warning: {text}"))
            say(f"registration self-check of {_name(modality)}: {check['summary']}")
    check_cancel(should_cancel)

    on_grid: Dict[str, sitk.Image] = {}
    coverage: Dict[str, float] = {}
    norm: Dict[str, NormParams] = {}
    intensity_notes: Dict[str, str] = {}
    masks: Dict[str, np.ndarray] = {}
    for key, image in images.items():
        # the pre-contrast DCE frame follows the early frame of its series (it only gives the DCE's intensity scale)
        moved_as = "dce_early" if key == ACQUIRED_BASELINE else key
        transform = registration[moved_as].transform if moved_as in registration else None
        interpolator = "nearest" if key in LABEL_KEYS else "linear"
        on_grid[key] = resample_to_grid(image, grid, transform, interpolator=interpolator, name=_name(key))
        inside = coverage_mask(grid, image, transform)
        coverage[key] = float(np.mean(inside))
        if key in LABEL_KEYS:
            continue
        if coverage[key] < MIN_COVERAGE:
            raise InputError(f"{_name(key)}: covers only {coverage[key]:.1%} of the working grid around the prostate "
                             f"centre {tuple(round(c, 1) for c in grid.center_lps)} LPS mm; expected a series of "
                             f"the same exam covering the prostate (at least {MIN_COVERAGE:.0%})")
        if key in INPUT_MODALITIES:
            masks[key] = np.asarray(inside, dtype=bool)
            values = sitk.GetArrayViewFromImage(on_grid[key])
            norm[key] = fit_normalization(values, mask=inside, name=_name(key))
            norm[key], note = tame_heavy_tail(values, norm[key], key, mask=inside)
            if note:
                intensity_notes[key] = note
                (warn or (lambda text: progress_say(f"dcediff: note: {text}")))(note)
    sources = {k: str(v) for k, v in inputs.items() if isinstance(v, (str, Path))}
    return PreprocessedCase(grid, t2w, on_grid, norm, registration, coverage, sources, location.to_dict(),
                            intensity_notes, coverage_masks=masks,
                            input_geometry={k: g for k, g in geometry.items() if g is not None})


def _crop_centre(t2w: sitk.Image, center_lps, find_prostate: bool, should_cancel, warn, phantom: bool = False):
    """The :class:`~DCEDiffLib.prostate_localization.ProstateLocation` the crop is centred on (``phantom``: the T2W
    input carries the DCEDiff phantom mark, said with a missing gland)."""
    from DCEDiffLib.prostate_localization import SOURCE_FOV, SOURCE_USER, ProstateLocation, locate_prostate
    from DCEDiffLib.working_grid import field_of_view_center

    if center_lps is not None:  # checked by make_working_grid (a clear error names the centre)
        try:
            centre = tuple(float(c) for c in center_lps)
        except (TypeError, ValueError):
            centre = ()
        return ProstateLocation(centre if len(centre) == 3 else (float("nan"),) * 3, SOURCE_USER)
    if not find_prostate:
        return ProstateLocation(field_of_view_center(t2w), SOURCE_FOV)
    say = warn or (lambda text: progress_say(f"dcediff: warning: {text}"))
    return locate_prostate(t2w, should_cancel=should_cancel, warn=say, phantom=phantom)


def write_preprocessed(case: PreprocessedCase, out_dir, overwrite: bool = False) -> Path:
    """Write ``<modality>.nii.gz`` (working grid), ``transforms/<modality>.tfm`` and ``preprocess.json``,
    all or nothing."""
    from DCEDiffLib.atomic import PREPROCESS_RECORD, atomic_directory

    with atomic_directory(out_dir, overwrite=overwrite, records=(PREPROCESS_RECORD,)) as tmp:
        for key, image in case.images.items():
            write_volume(image, tmp / f"{key}.nii.gz", {"description": f"DCEDiff working grid: {_name(key)}"})
        (tmp / "transforms").mkdir()
        for key, result in case.registration.items():
            sitk.WriteTransform(result.transform, str(tmp / "transforms" / f"{key}.tfm"))
        (tmp / "preprocess.json").write_text(json.dumps(case.to_dict(), indent=2), encoding="utf-8")
    return Path(out_dir)


def load_preprocessed(case_dir) -> PreprocessedCase:
    """Read a folder written by :func:`write_preprocessed` back into a :class:`PreprocessedCase`."""
    case_dir = Path(case_dir)
    meta_path = case_dir / "preprocess.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta_path}: not a readable preprocess.json ({exc}); expected the output of "
                         "'dcediff preprocess'") from exc
    if meta.get("format") != PREPROCESS_FORMAT:
        raise InputError(f"{meta_path}: format {meta.get('format')!r}; expected {PREPROCESS_FORMAT}")
    grid = WorkingGrid.from_dict(meta["working_grid"])
    geometry = meta["t2w_geometry"]
    t2w = sitk.Image([int(s) for s in geometry["size"]], sitk.sitkUInt8)
    t2w.SetSpacing(geometry["spacing"])
    t2w.SetOrigin(geometry["origin"])
    t2w.SetDirection(geometry["direction"])
    images = {}
    for key in meta["modalities"]:
        images[key] = read_volume(case_dir / f"{key}.nii.gz", name=_name(key), allow_constant=True)
        if key in LABEL_KEYS:
            images[key] = sitk.Cast(sitk.Round(images[key]), sitk.sitkInt16)
    norm = {m: NormParams.from_dict(p) for m, p in meta["normalization"].items()}
    registration = {}
    for key, info in meta["registration"].items():
        transform = sitk.ReadTransform(str(case_dir / "transforms" / f"{key}.tfm"))
        registration[key] = RegistrationResult(key, transform, bool(info["applied"]), info.get("metric_before"),
                                               info.get("metric_after"), float(info["translation_mm"]),
                                               float(info["rotation_deg"]), str(info.get("reason", "")),
                                               info.get("self_check"), None, info.get("multi_start"),
                                               str(info.get("registered_to", "t2w")))
    crop_centre = {k: v for k, v in meta.items() if k.startswith(("crop_centre", "prostate_"))}
    return PreprocessedCase(grid, t2w, images, norm, registration, dict(meta.get("coverage", {})),
                            dict(meta.get("sources", {})), crop_centre, dict(meta.get("intensity_notes", {})))
