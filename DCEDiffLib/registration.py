"""Rigid registration of one series (PD, ADC, T1-pre, DCE) to the T2W of the same exam.

Series of one exam share the scanner's frame of reference, so registration starts from the scanner alignment
(identity in physical space) — never from aligning image centres, since fields of view differ — and refines a
rigid (Euler3D) correction with Mattes mutual information, multi-resolution, inside a sphere around the gland.
A correction that is implausibly large for motion within one exam, or that does not improve the similarity, is
reported and not applied: the scanner alignment is kept.

Transforms follow the SimpleITK convention: they map a point of T2W (fixed) space to the moving image's space.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import threading
from typing import Callable, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.errors import CancelledError
from DCEDiffLib.modalities import DESCRIPTIONS

# Within one exam the patient moves a few millimetres and degrees; more than this is a failed registration.
MAX_TRANSLATION_MM = 15.0
MAX_ROTATION_DEG = 10.0
REGION_RADIUS_MM = 40.0          # the similarity is measured in this sphere around the gland centre...
# ...or a larger one for series whose 40 mm sphere holds too little structure: on 18 phantom exams the T1-pre's median
# error against the true motion fell from 1.37 to 0.36 mm at 80 mm, the ADC's from 0.92 to 0.50 mm, and on the real
# ProstateX ADC and T1-weighted stand-ins known perturbations were recovered as well or better (docs/preprocessing.md).
# The PD takes 60 mm (2026-12-07): at 80 mm ProstateX-0001's PD reference scan drifts by 4 mm; at 60 mm on 16 phantoms
# its error against the true motion fell from 1.24 to 0.93 mm (real anatomy) and 0.69 to 0.28 mm (procedural).
REGION_RADIUS_BY_SERIES_MM = {"adc": 80.0, "t1pre": 80.0, "pd": 60.0}
# A DCE frame's self-check registers its moved copy in the T1-pre's 80 mm sphere, while the frame itself stays
# registered in 40 mm. In 40 mm the copy of a real-anatomy frame stopped 2-4 mm short (false alarms on 7 of 36 exams),
# and registering the frames themselves in 80 mm moved them off their T1-pre (docs/preprocessing.md, "The frames' own
# checks on real anatomy"). Leaving the strongest enhancement out of the copy's metric as well (session 45) pushed two
# checks towards the tolerance, one over it, and was dropped (docs/preprocessing.md, "Domain B").
FRAME_CHECK_RADIUS_MM = 80.0
HISTOGRAM_BINS = 32
SHRINK_FACTORS = (2, 1)          # on the fixed image resampled to the moving series' resolution
SMOOTHING_SIGMAS_MM = (2.0, 0.0)
QUANTITATIVE = ("adc",)          # maps without coil shading: not bias-flattened
MIN_IMPROVEMENT = 1e-4           # Mattes metric must drop by at least this much to count as an improvement
FLATTEN_SIGMA_MM = 15.0          # coil bias flattening: divide by a Gaussian-smoothed copy of the image
FOV_MARGIN_MM = 6.0              # region samples stay this far inside the moving series' field of view
LEARNING_RATE_MM = 0.5           # largest step of the optimiser (physical shift in mm)
# The optimiser stops when its step falls below this (mm, as the scales are physical shifts). The T1-pre and the DCE
# frames, the critical path of an exam's registrations, stop at 0.01 mm: on 32 phantom exams the T1-pre's error
# against the true motion was unchanged (median 0.24 mm either way) and it took 24 % less time, up to 2.6x less on
# the sample case; the frames stayed on the T1-pre (0.00 mm median on 16). The last halvings below 0.01 mm only chased
# the metric's noise. The PD and the ADC keep 0.001 mm (at
# 0.01 the ADC's median error rose by 0.055 mm; docs/performance.md, "The optimiser's stopping step").
MIN_STEP_MM = 1e-3
MIN_STEP_BY_SERIES_MM = {"t1pre": 1e-2, "dce_early": 1e-2, "dce_late": 1e-2}
# The T1-pre's rigid optimiser starts from the scanner alignment, without the translation-only stage first: on phantom
# exams that stage's optimum led it into a local one (case_000 of seed 2050: 4.61 mm from the true motion, 1.92 mm
# without it; 2 of 32 better, none worse; on 48 fresh patients no case worse by more than 0.05 mm), and it costs a
# third of the time (docs/preprocessing.md, "The T1-pre without the translation stage").
RIGID_FROM_THE_START = ("t1pre",)
# Reference scans with little gland contrast: when the guard rejects their intensity registration, retry on
# gradient magnitudes (edges), which ProstateX-0001's PD needs (docs/preprocessing.md).
EDGE_FALLBACK = ("pd",)
EDGE_SIGMA_MM = 1.5
# ITK's multi-threaded registration sums partial results in an order that varies from run to run: the same exam
# registered twice gave T1-pre parameters differing by 0.002, enough to change the synthetic images (issue 16).
# Registration runs its ITK filters on this many threads, which makes the correction bit-identical between runs
# and independent of the machine's core count (the random sample below is seeded).
REGISTRATION_THREADS = 1
# The ADC's metric takes the moving image's exact gradient (not ITK's copy smoothed by its largest voxel size, 3.5 mm
# on a domain-B ADC, which walked the optimiser 0.8-14 mm off the true motion) on a seeded 25 % random sample of the
# region (with every voxel, the exact gradient fell into a far basin on the sample phantom). On 28 fresh phantoms the
# ADC's median error against the true motion fell from 0.43 to 0.22 mm, ADCs beyond 1 mm from 4 to 1, 56 % faster;
# the shipped card scored on validation patients passed its rule (docs/preprocessing.md, "The exact gradient on a
# seeded random sample"; docs/model_quality.md, "The card scored with ER").
# The T1-pre takes the same set-up (ER-T1): on 28 fresh phantoms (seeds 777600-777603) its median error against the
# true motion fell from 0.59 to 0.19 mm, T1-pres beyond 1 mm from 6 to 1, refusals from 2 to 0, every family's median
# by 0.26-0.46 mm, 44 % faster (median per case); the sample phantom's T1-pre 1.12 -> 0.30 mm. One case went the
# other way (2.45 -> 5.35 mm, its self-check said DISAGREES) (docs/preprocessing.md, "The T1-pre on a seeded random
# sample"); the shipped card on validation patients: PSNR +0.03 to +0.52 dB, r within -0.016 (docs/model_quality.md,
# "The T1-pre on the ADC's set-up").
# The PD likewise (ER-PD): on 28 fresh phantoms (777610-777613) 0.49 -> 0.28 mm median, beyond 1 mm 3 -> 1, none
# worse by 0.2 mm, 56 % faster; ProstateX-0001's PD self-check from DISAGREES (2.45 mm) to agrees (0.67 mm); the card
# on validation: PSNR -0.03 to +0.04 dB, r within +-0.005 (docs/preprocessing.md, "The PD on the same set-up").
SAMPLED_EXACT_GRADIENT_SERIES = ("adc", "t1pre", "pd")
SAMPLED_SHARE = 0.25
SAMPLING_SEED = 65
# Multi-start (only with the self-check, only after the guard rejected the scanner-alignment start): starting
# positions (rotation axis index in LPS or None, degrees, shift in mm) about the gland centre, screened at the coarse
# level; the best few are refined and, best metric first, self-checked (docs/preprocessing.md).
MULTI_START_SHIFT_MM = 5.0
MULTI_START_DEG = 3.0
MULTI_STARTS = tuple([(None, 0.0, tuple(s * MULTI_START_SHIFT_MM * e for e in row))
                      for row in np.eye(3).tolist() for s in (1.0, -1.0)] +
                     [(axis, s * MULTI_START_DEG, (0.0, 0.0, 0.0)) for axis in range(3) for s in (1.0, -1.0)])
MULTI_START_ITERATIONS = 50      # per stage, coarse level only
MULTI_START_REFINED = 2          # best coarse starts refined at both levels
MAX_CHECKED_CANDIDATES = 1       # guard-passing candidates self-checked, best metric first


@dataclasses.dataclass
class RegistrationResult:
    """Outcome of registering one series to the T2W.

    ``transform`` maps T2W points to the moving series (identity when the correction was not applied);
    ``metric_before``/``metric_after`` are Mattes mutual information values (lower is better) at the scanner
    alignment and at the found correction; ``translation_mm``/``rotation_deg`` are the size of that correction
    (displacement at the gland centre, rotation angle; of the rejected correction when it was not applied).
    ``self_check``: the perturbation self-check (:mod:`DCEDiffLib.registration_check`), when it ran;
    ``start``/``multi_start``: which start of the multi-start was applied and what was tried.
    """

    modality: str
    transform: sitk.Transform
    applied: bool
    metric_before: Optional[float]
    metric_after: Optional[float]
    translation_mm: float
    rotation_deg: float
    reason: str
    self_check: Optional[dict] = None
    start: Optional[str] = None
    multi_start: Optional[dict] = None
    registered_to: str = "t2w"   # "t1pre" for the DCE frames (register_through): the correction is relative to it

    def to_dict(self) -> dict:
        """JSON-ready summary (the transform itself is written as an ITK .tfm file)."""
        applied_mm, applied_deg = (self.translation_mm, self.rotation_deg) if self.applied else (0.0, 0.0)
        summary = {"applied": self.applied, "metric": "Mattes mutual information (lower is better)",
                   "metric_before": _round(self.metric_before), "metric_after": _round(self.metric_after),
                   "translation_mm": round(float(self.translation_mm), 3),
                   "rotation_deg": round(float(self.rotation_deg), 3), "reason": self.reason,
                   "correction": {"at_gland_centre_mm": round(float(applied_mm), 3),
                                  "rotation_deg": round(float(applied_deg), 3),
                                  "meaning": "the applied correction (0 when the scanner alignment was kept): "
                                             "displacement at the gland centre and rotation angle"},
                   # the correction's own parameters (a DCE frame's: its step from the T1-pre, as translation_mm)
                   "parameters": [float(p) for p in _correction(self.transform).GetParameters()],
                   "transform": transform_record(self.transform),  # all it takes to rebuild it
                   "registered_to": self.registered_to}
        if self.self_check is not None:
            summary["self_check"] = self.self_check
        if self.multi_start is not None:
            summary["multi_start"] = self.multi_start
        return summary


def _correction(transform: sitk.Transform) -> sitk.Transform:
    """The transform a result reports: a DCE frame's composite (step, then the reference's registration applied
    first) reports its step; SimpleITK's ``GetParameters`` of the composite would give the reference's."""
    return transform.GetNthTransform(0) if transform.GetName() == "CompositeTransform" else transform


def transform_record(transform: sitk.Transform) -> dict:
    """A JSON record that rebuilds ``transform`` (T2W point, LPS mm → series point): its kind, parameters and fixed
    parameters (the centre of rotation), a composite as its components. The same transform is written as
    ``transforms/<series>.tfm`` where the command writes transforms."""
    if transform.GetName() == "CompositeTransform":
        return {"kind": "CompositeTransform",
                "components": [transform_record(transform.GetNthTransform(i))
                               for i in range(transform.GetNumberOfTransforms())],
                "meaning": "applied from the last component to the first: the reference series' registration to "
                           "the T2W, then the step from the reference to this series"}
    return {"kind": transform.GetName(), "parameters": [float(p) for p in transform.GetParameters()],
            "fixed_parameters": [float(p) for p in transform.GetFixedParameters()],
            # Euler3D's fixed parameters are four: the centre, then ITK's ComputeZYX flag (which rotation order)
            "meaning": "ITK's order (Euler3DTransform: the angles about x, y, z in radians, then the translation in "
                       "mm); fixed parameters: the centre of rotation (LPS mm), then ITK's ComputeZYX flag (0: the "
                       "rotation is Rz·Rx·Ry)"}


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def identity_result(modality: str, reason: str) -> RegistrationResult:
    """A result that keeps the scanner alignment (registration skipped)."""
    return RegistrationResult(modality, sitk.Euler3DTransform(), False, None, None, 0.0, 0.0, reason)


@dataclasses.dataclass
class StagedRegistration:
    """A registration whose correction is done and whose self-check may still be to run.

    ``result`` holds the correction that will be applied (final: the check cannot change it) and ``finish()``, when
    not None, runs the self-check and returns the result with ``self_check`` filled in. The two halves take about
    the same time, so a schedule that runs them as separate tasks packs an exam's registrations onto the cores better
    (registration_schedule.py); where the check decides the correction (the multi-start), it has already run and
    ``finish`` is None.
    """

    result: RegistrationResult
    finish: Optional[Callable[[], RegistrationResult]] = None

    def complete(self) -> RegistrationResult:
        """The result with its self-check run (what :func:`register_rigid` returns)."""
        return self.result if self.finish is None else self.finish()


def register_through(reference: sitk.Image, reference_result: RegistrationResult, moving: sitk.Image, modality: str,
                     center_lps: Sequence[float], check: bool = False) -> RegistrationResult:
    """Register ``moving`` to ``reference`` — a series already registered to the T2W by ``reference_result`` — and
    compose the two, so that the result maps T2W points to ``moving`` like :func:`register_rigid`'s.

    What the DCE frames need: the enhancement is a frame minus the T1-pre, so a frame must sit on the T1-pre to
    within a fraction of a voxel, which two independent registrations to the T2W do not give (on phantom exams
    whose T1-pre and frames share one motion they disagreed by 0.9–1.2 mm, up to 3 mm; docs/preprocessing.md).
    Between two T1-weighted gradient echoes the registration is nearly exact, and frames of the T1-pre's own series
    come out at its transform. ``center_lps`` is in T2W space; the similarity is measured around its image in the
    reference. The reported correction (``translation_mm``, ``rotation_deg``, ``applied``, ``self_check``) is the
    step from the reference to ``moving``; ``registered_to`` names the reference.
    """
    return start_through(reference, reference_result, moving, modality, center_lps, check=check).complete()


def start_through(reference: sitk.Image, reference_result: RegistrationResult, moving: sitk.Image, modality: str,
                  center_lps: Sequence[float], check: bool = False) -> StagedRegistration:
    """:func:`register_through` with its self-check left to ``finish()`` (:class:`StagedRegistration`)."""
    centre = reference_result.transform.TransformPoint(tuple(float(c) for c in center_lps))
    # No multi-start: a frame of the reference's own series finds no better similarity than the identity, which the
    # guard counts as a rejection, and 12 starts cost ~6 s a frame for nothing (the self-check still runs).
    # The check's moved copy is registered in FRAME_CHECK_RADIUS_MM.
    copy_setup = dict(check_radius_mm=FRAME_CHECK_RADIUS_MM) if check else {}
    staged = start_rigid(reference, moving, modality, centre, check=check, multi_start=False, **copy_setup)
    name = DESCRIPTIONS.get(reference_result.modality, reference_result.modality)

    def composed(step: RegistrationResult) -> RegistrationResult:
        composite = sitk.CompositeTransform([step.transform, reference_result.transform])  # reference's applied first
        # a refused step leaves the series on the reference as acquired, which follows the reference's registration:
        # not the scanner's alignment, as the guard's own words (written for a registration to the T2W) would say
        step_reason = step.reason.replace("; scanner alignment kept", f"; kept on the {name} as acquired")
        reason = f"registered to the {name} (then its registration to the T2W): {step_reason}"
        return dataclasses.replace(step, transform=composite, reason=reason, registered_to=reference_result.modality)

    finish = None if staged.finish is None else (lambda: composed(staged.finish()))
    return StagedRegistration(composed(staged.result), finish)


def region_mask(fixed: sitk.Image, center_lps: Sequence[float], radius_mm: float = REGION_RADIUS_MM,
                moving: Optional[sitk.Image] = None, margin_mm: float = FOV_MARGIN_MM) -> sitk.Image:
    """A uint8 mask on the fixed image's grid: 1 inside the sphere of ``radius_mm`` around ``center_lps`` and,
    if ``moving`` is given, at least ``margin_mm`` inside the moving image's field of view.

    Keeping the samples away from the moving series' edges matters: otherwise a small motion changes which
    samples count, and mutual information can improve by sliding the series out of the region.
    """
    size = fixed.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in reversed(size)), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()])
    matrix = np.asarray(fixed.GetDirection(), dtype=float).reshape(3, 3) @ np.diag(fixed.GetSpacing())
    points = (matrix @ index).T + np.asarray(fixed.GetOrigin())
    inside = np.linalg.norm(points - np.asarray(center_lps, dtype=float), axis=1) <= radius_mm
    if moving is not None:
        m_matrix = np.asarray(moving.GetDirection(), dtype=float).reshape(3, 3) @ np.diag(moving.GetSpacing())
        m_index = np.linalg.solve(m_matrix, (points - np.asarray(moving.GetOrigin())).T).T
        margin = margin_mm / np.asarray(moving.GetSpacing(), dtype=float)
        upper = np.asarray(moving.GetSize(), dtype=float) - 1.0 - margin
        inside &= np.all((m_index >= margin) & (m_index <= upper), axis=1)
    mask = sitk.GetImageFromArray(inside.reshape(tuple(reversed(size))).astype(np.uint8))
    mask.CopyInformation(fixed)
    return mask


def flatten_bias(image: sitk.Image, sigma_mm: float = FLATTEN_SIGMA_MM) -> sitk.Image:
    """``image`` divided by a Gaussian-smoothed copy of itself (float32 copy; the input is not modified).

    Surface-coil shading (e.g. the bright anterior wall of a PD reference scan) varies slowly; dividing it out
    leaves the tissue boundaries that mutual information can align. A floor keeps the air from blowing up.
    """
    image = sitk.Cast(image, sitk.sitkFloat32)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, float(sigma_mm)))
    values = sitk.GetArrayFromImage(image)
    floor = max(0.05 * float(np.percentile(smooth, 99)), 1e-6)
    flat = sitk.GetImageFromArray((values / np.maximum(smooth, floor)).astype(np.float32))
    flat.CopyInformation(image)
    return flat


def _match_resolution(fixed: sitk.Image, moving: sitk.Image) -> sitk.Image:
    """``fixed`` resampled (Gaussian-smoothed first) so that no axis is finer than the moving series' finest voxel
    size (its in-plane pixel, as a rule; an axis already coarser, e.g. the T2W's slices, stays as it is): detail the
    moving image cannot show only adds noise to the metric, and costs time."""
    spacing = np.maximum(np.asarray(fixed.GetSpacing(), dtype=float), min(moving.GetSpacing()))
    if np.allclose(spacing, fixed.GetSpacing()):
        return fixed
    sigma = np.sqrt(np.maximum(spacing ** 2 - np.asarray(fixed.GetSpacing()) ** 2, 1e-4)) / 2.3548  # ITK needs > 0
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(fixed, sitk.sitkFloat32), [float(v) for v in sigma])
    size = [max(1, int(round(n * old / new))) for n, old, new in zip(fixed.GetSize(), fixed.GetSpacing(), spacing)]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing([float(v) for v in spacing])
    reference.SetDirection(fixed.GetDirection())
    # keep the physical box: the first voxel centre moves by half the change of voxel size
    shift = np.asarray(fixed.GetDirection(), dtype=float).reshape(3, 3) @ ((spacing - fixed.GetSpacing()) / 2.0)
    reference.SetOrigin([float(v) for v in np.asarray(fixed.GetOrigin()) + shift])
    return sitk.Resample(smooth, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _crop_to_region(image: sitk.Image, center_lps: Sequence[float], radius_mm: float) -> sitk.Image:
    """The part of ``image`` inside the bounding box of the region sphere (smaller pyramids: faster, same result
    where the metric is measured)."""
    matrix = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3) @ np.diag(image.GetSpacing())
    center_index = np.linalg.solve(matrix, np.asarray(center_lps, dtype=float) - np.asarray(image.GetOrigin()))
    half = radius_mm / np.asarray(image.GetSpacing(), dtype=float) + 2.0  # voxels, with a margin for smoothing
    size = np.asarray(image.GetSize())
    low = np.clip(np.floor(center_index - half), 0, size - 1).astype(int)
    high = np.clip(np.ceil(center_index + half), 0, size - 1).astype(int)
    if np.any(high < low):
        return image
    return sitk.RegionOfInterest(image, [int(v) for v in high - low + 1], [int(v) for v in low])


def correction_size(transform: sitk.Euler3DTransform, center_lps: Sequence[float],
                    radius_mm: float = REGION_RADIUS_MM) -> tuple:
    """(displacement at the centre in mm, rotation angle in degrees, largest displacement in mm over the centre and
    six points of the region sphere's surface)."""
    rotation = np.asarray(transform.GetMatrix(), dtype=float).reshape(3, 3)
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(rotation) - 1.0) / 2.0))))
    center = np.asarray(center_lps, dtype=float)
    probes = [center] + [center + radius_mm * s * axis for axis in np.eye(3) for s in (-1.0, 1.0)]
    shift = max(float(np.linalg.norm(np.asarray(transform.TransformPoint(tuple(p))) - p)) for p in probes)
    # Report the translation at the gland centre (what a reader means by "shift"), bounded by the worst probe.
    at_center = float(np.linalg.norm(np.asarray(transform.TransformPoint(tuple(center))) - center))
    return at_center, angle, shift


def _method(mask: sitk.Image, modality: str, iterations: int, learning_rate: float,
            levels: int = 2) -> sitk.ImageRegistrationMethod:
    """The optimiser set-up for ``modality`` (its smallest step: :data:`MIN_STEP_BY_SERIES_MM`); ``levels`` = 1
    runs only the coarse level (multi-start screening)."""
    method = sitk.ImageRegistrationMethod()
    _set_metric(method, mask, modality)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=learning_rate,
                                                    minStep=MIN_STEP_BY_SERIES_MM.get(modality, MIN_STEP_MM),
                                                    numberOfIterations=iterations, relaxationFactor=0.5,
                                                    gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS[:levels]))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS_MM[:levels]))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def _set_metric(method: sitk.ImageRegistrationMethod, mask: sitk.Image, modality: str) -> None:
    """``modality``'s metric, one for the optimiser and for :func:`_metric_value`: Mattes MI over ``mask`` with linear
    interpolation, on every voxel of the region (a smooth, deterministic metric) with ITK's moving-image gradient, or
    for :data:`SAMPLED_EXACT_GRADIENT_SERIES` on the seeded random sample with the exact gradient."""
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    if modality in SAMPLED_EXACT_GRADIENT_SERIES:
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(SAMPLED_SHARE, SAMPLING_SEED)
        method.MetricUseMovingImageGradientFilterOff()
    else:
        method.SetMetricSamplingStrategy(method.NONE)
    method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)


def _metric_value(fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image, transform: sitk.Transform,
                  modality: str) -> float:
    """Mattes MI at full resolution over the region, sampled as the optimiser of ``modality`` samples it (the same
    sample at every call, so before/after compare fairly and the guard judges the metric that was optimised)."""
    method = sitk.ImageRegistrationMethod()
    _set_metric(method, mask, modality)
    method.SetInitialTransform(sitk.Euler3DTransform(transform), inPlace=False)
    try:
        return float(method.MetricEvaluate(fixed, moving))
    except RuntimeError:
        return float("nan")  # e.g. too few overlapping samples


def region_radius(modality: str) -> float:
    """Radius (mm) of the sphere around the gland in which ``modality`` is registered."""
    return REGION_RADIUS_BY_SERIES_MM.get(modality, REGION_RADIUS_MM)


def register_rigid(fixed: sitk.Image, moving: sitk.Image, modality: str, center_lps: Sequence[float],
                   **options) -> RegistrationResult:
    """Rigidly register ``moving`` to ``fixed`` (the T2W), starting from the scanner alignment.

    The T2W is cropped around the gland and brought to the series' resolution; both images are bias-flattened
    (:func:`flatten_bias`), except for quantitative maps such as ADC; a translation is optimised first, then the rigid
    transform. The similarity is measured inside a sphere of ``radius_mm`` around ``center_lps`` (the gland;
    default :func:`region_radius` of the modality). Returns a :class:`RegistrationResult`; the correction is applied
    only when it is plausible (at most ``max_translation_mm`` anywhere in the sphere and ``max_rotation_deg``) and
    lowers the metric. For series in :data:`EDGE_FALLBACK` whose intensity registration the guard rejects, the
    registration is repeated on gradient magnitudes (edges) under the same guard.

    ``check``: run the perturbation self-check (:mod:`DCEDiffLib.registration_check`) and put its result in
    ``self_check``. Only with the check, a series whose registration the guard rejects is retried from
    :data:`MULTI_STARTS` (a few rotated and shifted starting positions): the candidates that pass the guard are
    tried best metric first, and the first that passes the self-check is applied (a candidate the check cannot
    confirm is never applied). ``multi_start=False`` leaves the multi-start out (the self-check still runs).
    ``check_radius_mm``: register the check's moved copy in another sphere; by default in the series' own. The check
    then also asks whether a second setup lands where this one did (``self_check["copy_setup"]`` records it).
    ``options`` are :func:`start_rigid`'s keywords (``radius_mm``, ``iterations``, ``learning_rate``,
    ``max_translation_mm``, ``max_rotation_deg``, ``check``, ``multi_start``, ``check_radius_mm``).
    """
    return start_rigid(fixed, moving, modality, center_lps, **options).complete()


def start_rigid(fixed: sitk.Image, moving: sitk.Image, modality: str, center_lps: Sequence[float],
                radius_mm: Optional[float] = None, iterations: int = 100,
                learning_rate: float = LEARNING_RATE_MM,
                max_translation_mm: float = MAX_TRANSLATION_MM,
                max_rotation_deg: float = MAX_ROTATION_DEG, check: bool = False,
                multi_start: bool = True, check_radius_mm: Optional[float] = None) -> StagedRegistration:
    """:func:`register_rigid` with its self-check left to ``finish()`` wherever the check cannot change the
    correction (:class:`StagedRegistration`); the multi-start, whose check picks the correction, runs here whole."""
    radius_mm = region_radius(modality) if radius_mm is None else float(radius_mm)
    limits = (radius_mm, iterations, learning_rate, max_translation_mm, max_rotation_deg)
    with itk_threads(REGISTRATION_THREADS):
        result, candidates = _register(fixed, moving, modality, center_lps, *limits,
                                       multi_start=check and multi_start)
        if not check:
            return StagedRegistration(result)
        from DCEDiffLib.registration_check import CHECK_ANGLE_DEG, CHECK_SHIFT_MM, self_check

        # The copy was moved by the known perturbation on top of the series' own motion: its guard allows that much
        # more, so that a series that moved near the limits is not reported as failing the check.
        copy_radius = radius_mm if check_radius_mm is None else float(check_radius_mm)
        extra_mm = CHECK_SHIFT_MM + copy_radius * math.sin(math.radians(CHECK_ANGLE_DEG))
        copy_limits = (copy_radius, iterations, learning_rate, max_translation_mm + extra_mm,
                       max_rotation_deg + CHECK_ANGLE_DEG)

        def again(copy: sitk.Image, multi: bool) -> RegistrationResult:  # the copy's registration, in its setup
            found, others = _register(fixed, copy, modality, center_lps, *copy_limits, multi_start=multi)
            return found if found.applied or not others else others[0]

        def checked(outcome) -> dict:
            record = outcome.to_dict()
            if copy_radius != radius_mm:
                record["copy_setup"] = {"radius_mm": copy_radius, "series_radius_mm": radius_mm}
            return record

        if result.applied or not candidates:
            # the series registered from the scanner alignment: so must its copy (no multi-start, which is cheap);
            # the check only reports, so it can run later, as a task of its own
            def finish() -> RegistrationResult:
                with itk_threads(REGISTRATION_THREADS):
                    result.self_check = checked(self_check(moving, center_lps, result.transform,
                                                           lambda c: again(c, False), copy_radius))
                return result

            return StagedRegistration(result, finish)
        tried = []
        for candidate in candidates[:MAX_CHECKED_CANDIDATES]:
            outcome = self_check(moving, center_lps, candidate.transform, lambda c: again(c, True), copy_radius)
            tried.append(f"{candidate.start}: metric {candidate.metric_after:.4f}, self-check "
                         f"{outcome.mean_mm:.2f} mm")
            if outcome.agrees:
                candidate.self_check = checked(outcome)
                candidate.reason = (f"applied from multi-start ({candidate.start}; best metric of the starts that "
                                    f"passed the guard, confirmed by the self-check) after the scanner-alignment "
                                    f"start was rejected: {result.reason}")
                candidate.multi_start = {"rejected_default": result.reason, "tried": tried,
                                         "passed_guard": len(candidates), "starts": len(MULTI_STARTS)}
                return StagedRegistration(candidate)
            last = outcome
        result.multi_start = {"tried": tried, "passed_guard": len(candidates), "starts": len(MULTI_STARTS)}
        result.reason += (f"; multi-start: {len(candidates)} of {len(MULTI_STARTS)} starts passed the guard, the "
                          f"best did not pass the self-check ({last.mean_mm:.2f} mm)")
        result.self_check = checked(self_check(moving, center_lps, result.transform, lambda c: again(c, False),
                                               copy_radius))
        return StagedRegistration(result)


# The stop request of the registrations running in this thread (set by stop_when, for registration_schedule's tasks)
_stop_request: contextvars.ContextVar[Optional[threading.Event]] = contextvars.ContextVar("dcediff_registration_stop",
                                                                                           default=None)


@contextlib.contextmanager
def stop_when(request: threading.Event):
    """Registrations run inside, in this thread, end soon after ``request`` is set: the running optimiser stops at
    its next iteration and :class:`~DCEDiffLib.errors.CancelledError` is raised instead of a result. Unset, nothing
    changes: the iteration command only reads the flag, so results are bit-identical."""
    token = _stop_request.set(request)
    try:
        yield
    finally:
        _stop_request.reset(token)


def _execute(method: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image) -> None:
    """``method.Execute(fixed, moving)``, stopped early (and CancelledError raised) on the stop request of
    :func:`stop_when`. ``Abort()`` does not stop a registration in SimpleITK 2.5; ``StopRegistration()`` ends the
    current level only, so it is asked at every iteration (the next level then stops at its first)."""
    request = _stop_request.get()
    if request is None:
        method.Execute(fixed, moving)
        return
    _raise_if_stopped()

    def stop_if_asked():
        if request.is_set():
            method.StopRegistration()

    method.AddCommand(sitk.sitkIterationEvent, stop_if_asked)
    try:
        method.Execute(fixed, moving)
    finally:
        method.RemoveAllCommands()  # the command refers to the method: no cycle left behind
    _raise_if_stopped()  # the result of a stopped optimiser is not a registration


def _raise_if_stopped() -> None:
    """CancelledError when the stop request of :func:`stop_when` is set (between the steps of a registration)."""
    request = _stop_request.get()
    if request is not None and request.is_set():
        raise CancelledError("registration stopped: the run was cancelled")


@contextlib.contextmanager
def itk_threads(count: int):
    """ITK filters created inside use ``count`` threads; the previous default is restored afterwards."""
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(count)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _register(fixed: sitk.Image, moving: sitk.Image, modality: str, center_lps: Sequence[float], radius_mm: float,
              iterations: int, learning_rate: float, max_translation_mm: float,
              max_rotation_deg: float, multi_start: bool = False) -> tuple:
    """(result, multi-start candidates that passed the guard, best metric first; empty unless ``multi_start`` and
    the scanner-alignment start was rejected)."""
    fixed32 = _match_resolution(_crop_to_region(fixed, center_lps, radius_mm + 2 * FLATTEN_SIGMA_MM), moving)
    moving32 = sitk.Cast(moving, sitk.sitkFloat32)
    if modality not in QUANTITATIVE:  # a shaded series is compared with a flattened T2W; ADC with the T2W as is
        fixed32, moving32 = flatten_bias(fixed32), flatten_bias(moving32)
    mask = region_mask(fixed32, center_lps, radius_mm, moving32)
    _raise_if_stopped()  # the preparation above takes a few tenths of a second
    if np.count_nonzero(sitk.GetArrayViewFromImage(mask)) < 1000:
        return identity_result(modality, "the region around the gland centre is outside the T2W; alignment kept"), []
    limits = (radius_mm, iterations, learning_rate, max_translation_mm, max_rotation_deg)
    result = _guarded_attempt(fixed32, moving32, mask, modality, center_lps, *limits)
    if result.applied or result.reason.startswith("registration failed"):
        return result, []
    if modality in EDGE_FALLBACK:
        edges = [sitk.GradientMagnitudeRecursiveGaussian(image, EDGE_SIGMA_MM) for image in (fixed32, moving32)]
        retry = _guarded_attempt(edges[0], edges[1], mask, modality, center_lps, *limits)
        if retry.applied:
            retry.reason = (f"applied on edges (gradient magnitudes; metric values are of the edge images) after "
                            f"the intensity registration was rejected: {result.reason}")
            return retry, []
        fixed32, moving32 = edges  # PD: the multi-start runs on edges too
    if not multi_start:
        return result, []
    return result, _multi_start(fixed32, moving32, mask, modality, center_lps, *limits)


def _start_transform(center_lps: Sequence[float], start: tuple) -> sitk.Euler3DTransform:
    """An Euler3D start about the gland centre: ``start`` = (rotation axis index or None, degrees, shift mm)."""
    euler = sitk.Euler3DTransform()
    euler.SetCenter(tuple(float(c) for c in center_lps))
    axis, degrees, shift = start
    if axis is not None:
        angles = [0.0, 0.0, 0.0]
        angles[axis] = math.radians(degrees)
        euler.SetRotation(*angles)
    euler.SetTranslation(tuple(float(v) for v in shift))
    return euler


def _describe_start(start: tuple) -> str:
    axis, degrees, shift = start
    if axis is not None:
        return f"start rotated {degrees:+g}° about the {'LPS'[axis]} axis"
    return "start shifted by (" + ", ".join(f"{v:+g}" for v in shift) + ") mm (LPS)"


def _multi_start(fixed32: sitk.Image, moving32: sitk.Image, mask: sitk.Image, modality: str,
                 center_lps: Sequence[float], radius_mm: float, iterations: int, learning_rate: float,
                 max_translation_mm: float, max_rotation_deg: float) -> list:
    """Register from every start of :data:`MULTI_STARTS` at the coarse level only (translation with the start's
    rotation held, then rigid), keep the :data:`MULTI_START_REFINED` best by the full-resolution metric, refine
    them at both levels and return those that pass the guard, best metric first."""
    identity = _start_transform(center_lps, (None, 0.0, (0.0, 0.0, 0.0)))
    before = _metric_value(fixed32, moving32, mask, identity, modality)
    coarse = []
    for start in MULTI_STARTS:
        euler = _start_transform(center_lps, start)
        try:
            for weights in ((0.0, 0.0, 0.0, 1.0, 1.0, 1.0), None):  # rotation held first, then everything
                method = _method(mask, modality, MULTI_START_ITERATIONS, learning_rate, levels=1)
                if weights is not None:
                    method.SetOptimizerWeights(list(weights))
                method.SetInitialTransform(euler, inPlace=True)
                _execute(method, fixed32, moving32)
        except RuntimeError:
            continue
        value = _metric_value(fixed32, moving32, mask, euler, modality)
        if math.isfinite(value):
            coarse.append((value, len(coarse), start, euler))
    candidates = []
    for _, _, start, euler in sorted(coarse, key=lambda item: item[:2])[:MULTI_START_REFINED]:
        try:
            method = _method(mask, modality, iterations, learning_rate)
            method.SetInitialTransform(euler, inPlace=True)
            _execute(method, fixed32, moving32)
        except RuntimeError:
            continue
        result = _guard(fixed32, moving32, mask, modality, center_lps, euler, before, radius_mm,
                        max_translation_mm, max_rotation_deg)
        if result.applied:
            result.start = _describe_start(start)
            candidates.append(result)
    return sorted(candidates, key=lambda r: r.metric_after)


def _guarded_attempt(fixed32: sitk.Image, moving32: sitk.Image, mask: sitk.Image, modality: str,
                     center_lps: Sequence[float], radius_mm: float, iterations: int, learning_rate: float,
                     max_translation_mm: float, max_rotation_deg: float) -> RegistrationResult:
    """Translation then rigid optimisation from the scanner alignment (rigid alone for
    :data:`RIGID_FROM_THE_START`), and the plausibility guard."""
    initial = sitk.Euler3DTransform()
    initial.SetCenter(tuple(float(c) for c in center_lps))  # rotate about the gland, not the image corner
    before = _metric_value(fixed32, moving32, mask, initial, modality)
    euler = sitk.Euler3DTransform(initial)
    try:
        # Translation first, then the full rigid transform from there: with low-contrast series (PD reference
        # scans) a rigid optimiser started cold can trade rotation for overlap and drift away. Not for the T1-pre,
        # whose translation-only optimum can lead the rigid stage into a local one (RIGID_FROM_THE_START).
        if modality not in RIGID_FROM_THE_START:
            shift = sitk.TranslationTransform(3)
            method = _method(mask, modality, iterations, learning_rate)
            method.SetInitialTransform(shift, inPlace=True)
            _execute(method, fixed32, moving32)
            euler.SetTranslation(shift.GetOffset())
        method = _method(mask, modality, iterations, learning_rate)
        method.SetInitialTransform(euler, inPlace=True)  # the optimiser updates ``euler`` itself
        _execute(method, fixed32, moving32)
    except RuntimeError as exc:
        result = identity_result(modality, f"registration failed ({str(exc).strip().splitlines()[-1][:160]}); "
                                           "scanner alignment kept")
        result.metric_before = before
        return result
    return _guard(fixed32, moving32, mask, modality, center_lps, euler, before, radius_mm, max_translation_mm,
                  max_rotation_deg)


def _guard(fixed32: sitk.Image, moving32: sitk.Image, mask: sitk.Image, modality: str,
           center_lps: Sequence[float], euler: sitk.Euler3DTransform, before: float, radius_mm: float,
           max_translation_mm: float, max_rotation_deg: float) -> RegistrationResult:
    """The plausibility guard: ``euler`` is applied only when it is small enough and lowers the metric."""
    after = _metric_value(fixed32, moving32, mask, euler, modality)
    at_center, angle, worst = correction_size(euler, center_lps, radius_mm)
    if worst > max_translation_mm or angle > max_rotation_deg:
        reason = (f"correction implausibly large ({worst:.1f} mm, {angle:.1f}°; at most {max_translation_mm:.1f} mm "
                  f"and {max_rotation_deg:g}° expected within one exam); scanner alignment kept")
        return RegistrationResult(modality, sitk.Euler3DTransform(), False, before, after, at_center, angle, reason)
    if not (math.isfinite(before) and math.isfinite(after)) or after > before - MIN_IMPROVEMENT:
        reason = "correction does not improve the similarity; scanner alignment kept"
        return RegistrationResult(modality, sitk.Euler3DTransform(), False, before, after, at_center, angle, reason)
    return RegistrationResult(modality, euler, True, before, after, at_center, angle, "applied")
