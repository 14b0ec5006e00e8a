"""Rigid registration of one series (PD, ADC, T1-pre, DCE) to the T2W of the same exam.

Series of one exam share the scanner's frame of reference, so registration starts from the scanner alignment
(identity in physical space) — never from aligning image centres, since fields of view differ — and refines a
rigid (Euler3D) correction with Mattes mutual information, multi-resolution, inside a sphere around the gland.
A correction that is implausibly large for motion within one exam, or that does not improve the similarity, is
reported and not applied: the scanner alignment is kept.

Transforms follow the SimpleITK convention: they map a point of T2W (fixed) space to the moving image's space.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

# Within one exam the patient moves a few millimetres and degrees; more than this is a failed registration.
MAX_TRANSLATION_MM = 15.0
MAX_ROTATION_DEG = 10.0
REGION_RADIUS_MM = 40.0          # the similarity is measured in this sphere around the gland centre
HISTOGRAM_BINS = 32
SAMPLING_FRACTION = 0.25
SAMPLING_SEED = 20240617         # fixed: same inputs give the same transform, run after run
SHRINK_FACTORS = (4, 2, 1)
SMOOTHING_SIGMAS_MM = (2.0, 1.0, 0.0)
MIN_IMPROVEMENT = 1e-4           # Mattes metric must drop by at least this much to count as an improvement


@dataclasses.dataclass
class RegistrationResult:
    """Outcome of registering one series to the T2W.

    ``transform`` maps T2W points to the moving series (identity when the correction was not applied);
    ``metric_before``/``metric_after`` are Mattes mutual information values (lower is better) at the scanner
    alignment and at the found correction; ``translation_mm``/``rotation_deg`` are the size of that correction.
    """

    modality: str
    transform: sitk.Transform
    applied: bool
    metric_before: Optional[float]
    metric_after: Optional[float]
    translation_mm: float
    rotation_deg: float
    reason: str

    def to_dict(self) -> dict:
        """JSON-ready summary (the transform itself is written as an ITK .tfm file)."""
        return {"applied": self.applied, "metric": "Mattes mutual information (lower is better)",
                "metric_before": _round(self.metric_before), "metric_after": _round(self.metric_after),
                "translation_mm": round(float(self.translation_mm), 3),
                "rotation_deg": round(float(self.rotation_deg), 3), "reason": self.reason,
                "parameters": [float(p) for p in self.transform.GetParameters()]}


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def identity_result(modality: str, reason: str) -> RegistrationResult:
    """A result that keeps the scanner alignment (registration skipped)."""
    return RegistrationResult(modality, sitk.Euler3DTransform(), False, None, None, 0.0, 0.0, reason)


def region_mask(fixed: sitk.Image, center_lps: Sequence[float], radius_mm: float = REGION_RADIUS_MM) -> sitk.Image:
    """A uint8 mask on the fixed image's grid: 1 inside the sphere of ``radius_mm`` around ``center_lps``."""
    size = fixed.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in reversed(size)), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()])
    matrix = np.asarray(fixed.GetDirection(), dtype=float).reshape(3, 3) @ np.diag(fixed.GetSpacing())
    points = (matrix @ index).T + np.asarray(fixed.GetOrigin())
    inside = np.linalg.norm(points - np.asarray(center_lps, dtype=float), axis=1) <= radius_mm
    mask = sitk.GetImageFromArray(inside.reshape(tuple(reversed(size))).astype(np.uint8))
    mask.CopyInformation(fixed)
    return mask


def correction_size(transform: sitk.Euler3DTransform, center_lps: Sequence[float],
                    radius_mm: float = REGION_RADIUS_MM) -> tuple:
    """(largest displacement in mm over the region sphere's surface and centre, rotation angle in degrees)."""
    rotation = np.asarray(transform.GetMatrix(), dtype=float).reshape(3, 3)
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(rotation) - 1.0) / 2.0))))
    center = np.asarray(center_lps, dtype=float)
    probes = [center] + [center + radius_mm * s * axis for axis in np.eye(3) for s in (-1.0, 1.0)]
    shift = max(float(np.linalg.norm(np.asarray(transform.TransformPoint(tuple(p))) - p)) for p in probes)
    # Report the translation at the gland centre (what a reader means by "shift"), bounded by the worst probe.
    at_center = float(np.linalg.norm(np.asarray(transform.TransformPoint(tuple(center))) - center))
    return at_center, angle, shift


def _method(mask: sitk.Image, fixed: sitk.Image, iterations: int) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING_FRACTION, SAMPLING_SEED)
    method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3, numberOfIterations=iterations,
                                                    relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS_MM))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def _metric_value(fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image, transform: sitk.Transform) -> float:
    """Mattes MI at full resolution over the whole region (all voxels, so before/after compare fairly)."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetInitialTransform(sitk.Euler3DTransform(transform), inPlace=False)
    try:
        return float(method.MetricEvaluate(fixed, moving))
    except RuntimeError:
        return float("nan")  # e.g. too few overlapping samples


def register_rigid(fixed: sitk.Image, moving: sitk.Image, modality: str, center_lps: Sequence[float],
                   radius_mm: float = REGION_RADIUS_MM, iterations: int = 100,
                   max_translation_mm: float = MAX_TRANSLATION_MM,
                   max_rotation_deg: float = MAX_ROTATION_DEG) -> RegistrationResult:
    """Rigidly register ``moving`` to ``fixed`` (the T2W), starting from the scanner alignment.

    The similarity is measured inside a sphere of ``radius_mm`` around ``center_lps`` (the gland). Returns a
    :class:`RegistrationResult`; the correction is applied only when it is plausible (at most
    ``max_translation_mm`` anywhere in the sphere and ``max_rotation_deg``) and lowers the metric.
    """
    fixed32 = sitk.Cast(fixed, sitk.sitkFloat32)
    moving32 = sitk.Cast(moving, sitk.sitkFloat32)
    mask = region_mask(fixed32, center_lps, radius_mm)
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        return identity_result(modality, "the region around the gland centre is outside the T2W; alignment kept")
    initial = sitk.Euler3DTransform()
    initial.SetCenter(tuple(float(c) for c in center_lps))  # rotate about the gland, not the image corner
    before = _metric_value(fixed32, moving32, mask, initial)
    method = _method(mask, fixed32, iterations)
    euler = sitk.Euler3DTransform(initial)
    method.SetInitialTransform(euler, inPlace=True)  # the optimiser updates ``euler`` itself
    try:
        method.Execute(fixed32, moving32)
    except RuntimeError as exc:
        result = identity_result(modality, f"registration failed ({str(exc).strip().splitlines()[-1][:160]}); "
                                           "scanner alignment kept")
        result.metric_before = before
        return result
    after = _metric_value(fixed32, moving32, mask, euler)
    at_center, angle, worst = correction_size(euler, center_lps, radius_mm)
    if worst > max_translation_mm or angle > max_rotation_deg:
        reason = (f"correction implausibly large ({worst:.1f} mm, {angle:.1f}°; at most {max_translation_mm:g} mm "
                  f"and {max_rotation_deg:g}° expected within one exam); scanner alignment kept")
        return RegistrationResult(modality, sitk.Euler3DTransform(), False, before, after, at_center, angle, reason)
    if not (math.isfinite(before) and math.isfinite(after)) or after > before - MIN_IMPROVEMENT:
        reason = "correction does not improve the similarity; scanner alignment kept"
        return RegistrationResult(modality, sitk.Euler3DTransform(), False, before, after, at_center, angle, reason)
    return RegistrationResult(modality, euler, True, before, after, at_center, angle, "applied")
