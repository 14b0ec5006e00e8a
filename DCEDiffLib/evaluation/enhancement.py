"""Enhancement maps (target − T1-pre on the target's intensity scale) and how well a synthesis reproduces them.

Whole-image PSNR/SSIM mostly measure the anatomy a DCE frame shares with T1-pre; the enhancement map is what
synthesis adds. ``enhancement = target − m(T1-pre)`` where ``m`` maps T1-pre onto the target's intensity scale.
The same ``m`` (fitted on the acquired data only) serves the synthetic and the acquired target, so the synthesis
cannot influence its own reference. Because ``m`` cancels in the difference, the enhancement MAE equals the
raw-intensity MAE in the same region divided by the enhancement's range; the mapping matters for the correlation,
for that range and for the lesion ranking.

Mapping methods (``fit_target_scale``), none learned from training data:

- ``identity``: T1-pre already is on the target's scale. Exact when T1-pre is the pre-contrast frame of the same DCE
  sequence (the phantom, ProstateX-style data, DCEDiff's own training data; see ``target_scale``). The default.
- ``body_median``: a pure gain ``m(x) = a·x`` with ``a = median(target in body) / median(T1-pre in body)`` (MR
  magnitude images have no offset). For a T1-pre from another sequence or scanner setting. Enhancing tissue raises
  the target's median a little, so fit it on the least-enhanced target (early).
- ``reference_tissue``: the same gain fitted on a non-enhancing reference tissue (fat, else muscle, from the labels)
  instead of the whole body; less biased by enhancement, needs labels.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

from DCEDiffLib.errors import InputError

MAPPING_METHODS = ("identity", "body_median", "reference_tissue")


@dataclasses.dataclass(frozen=True)
class TargetScaleMapping:
    """``m(x) = scale·x + offset``: T1-pre intensities on the target's intensity scale."""

    method: str = "identity"
    scale: float = 1.0
    offset: float = 0.0

    def apply(self, t1pre: np.ndarray) -> np.ndarray:
        """T1-pre on the target's scale: float32, or float64 for a float64 T1-pre (the identity mapping returns the
        values unchanged, as a copy)."""
        t1pre = np.asarray(t1pre)
        # float64 kept: rounding a float64 T1-pre to float32 left ~1e-5 noise in an identity prediction's
        # "zero" enhancement, which then correlated (r ≈ 0.01) instead of being undefined
        dtype = np.result_type(t1pre.dtype, np.float32)
        if self.scale == 1.0 and self.offset == 0.0:
            return t1pre.astype(dtype, copy=True)
        return (self.scale * t1pre.astype(np.float64) + self.offset).astype(dtype)

    def to_dict(self) -> dict:
        return {"method": self.method, "scale": float(self.scale), "offset": float(self.offset)}


def _median_ratio(reference: np.ndarray, t1pre: np.ndarray, mask: np.ndarray, what: str) -> float:
    if not mask.any():
        raise InputError(f"T1-pre scale mapping: the {what} mask is empty")
    denominator = float(np.median(t1pre[mask]))
    numerator = float(np.median(reference[mask]))
    if not denominator > 0 or not numerator > 0:
        raise InputError(f"T1-pre scale mapping: median intensity in the {what} is not positive "
                         f"(T1-pre {denominator:g}, target {numerator:g}); expected magnitude images")
    return numerator / denominator


def fit_target_scale(t1pre: np.ndarray, reference: np.ndarray, method: str = "identity",
                     body_mask: Optional[np.ndarray] = None,
                     tissue_mask: Optional[np.ndarray] = None) -> TargetScaleMapping:
    """Fit the mapping of T1-pre onto the intensity scale of ``reference`` (an *acquired* target, ideally early).

    ``body_mask`` is required by ``body_median``; ``tissue_mask`` (non-enhancing reference tissue) by
    ``reference_tissue``. See the module docstring for the methods.
    """
    if method not in MAPPING_METHODS:
        raise InputError(f"enhancement mapping method {method!r}: expected one of {', '.join(MAPPING_METHODS)}")
    t1pre = np.asarray(t1pre, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if t1pre.shape != reference.shape:
        raise InputError(f"T1-pre shape {t1pre.shape} does not match the target shape {reference.shape}")
    if method == "identity":
        return TargetScaleMapping("identity", 1.0, 0.0)
    if method == "body_median":
        if body_mask is None:
            raise InputError("enhancement mapping 'body_median' needs a body mask")
        return TargetScaleMapping(method, _median_ratio(reference, t1pre, np.asarray(body_mask, bool), "body"), 0.0)
    if tissue_mask is None:
        raise InputError("enhancement mapping 'reference_tissue' needs a label map whose legend names fat or muscle")
    return TargetScaleMapping(method, _median_ratio(reference, t1pre, np.asarray(tissue_mask, bool),
                                                    "reference tissue"), 0.0)


def enhancement_map(target: np.ndarray, t1pre_on_target_scale: np.ndarray) -> np.ndarray:
    """``target − T1-pre`` (T1-pre already mapped to the target's scale), float64."""
    return np.asarray(target, dtype=np.float64) - np.asarray(t1pre_on_target_scale, dtype=np.float64)


def enhancement_range(acquired_enhancement: np.ndarray, mask: Optional[np.ndarray] = None,
                      low_percentile: float = 0.5, high_percentile: float = 99.5) -> Optional[float]:
    """Robust range (high − low percentile) of the acquired enhancement inside ``mask``; None if empty or zero."""
    values = np.asarray(acquired_enhancement, dtype=np.float64)
    if mask is not None:
        values = values[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [low_percentile, high_percentile])
    span = float(high - low)
    return span if span > 0 else None


# Lesion enhancement r needs this many lesion voxels: over n voxels two unrelated maps correlate at about ±1/√(n − 1)
# (±0.23 at 20), and over 2 voxels r is ±1 whatever was drawn. A patient whose lesions are smaller (the phantom's tiny
# lesions) has no lesion r; the validation of the forty-sixth step (docs/model_quality.md) lost −2.0 on one 2-voxel
# lesion that the model drew as well as before.
MIN_LESION_CORRELATION_VOXELS = 20


def pearson(x: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None,
            names: Tuple[str, str] = ("synthetic enhancement", "acquired enhancement")
            ) -> Tuple[Optional[float], Optional[str]]:
    """Pearson correlation of ``x`` and ``y`` inside ``mask``: ``(r, None)``, or ``(None, reason)`` when undefined.

    Undefined when fewer than two voxels remain or either map is constant (zero variance — e.g. the identity
    baseline, whose enhancement is exactly 0 everywhere). Constant means a standard deviation at most 1e-9 times
    the larger magnitude of the two maps, so float round-off of an all-zero map cannot pose as a correlation.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        x, y = x[mask], y[mask]
    else:
        x, y = x.ravel(), y.ravel()
    if x.size < 2:
        return None, f"correlation undefined: {x.size} voxel(s) in the region, need at least 2"
    scale = max(float(np.max(np.abs(x))), float(np.max(np.abs(y))), np.finfo(np.float64).tiny)
    for values, name in ((x, names[0]), (y, names[1])):
        if float(np.std(values)) <= 1e-9 * scale:
            return None, (f"correlation undefined: the {name} is constant (zero variance) in the region"
                          + (" — no enhancement predicted" if float(np.max(np.abs(values))) <= 1e-9 * scale else ""))
    r = float(np.corrcoef(x, y)[0, 1])
    return float(np.clip(r, -1.0, 1.0)), None


def compare_enhancement(synthetic_enhancement: np.ndarray, acquired_enhancement: np.ndarray,
                        data_range: Optional[float], mask: Optional[np.ndarray] = None) -> dict:
    """MAE and PSNR (as fractions of ``data_range``) and Pearson r of two enhancement maps inside ``mask``.

    Returns ``{"mae", "psnr", "pearson", "mean_ratio"}`` plus ``"pearson_reason"`` when the correlation is
    undefined. MAE and PSNR are None for an empty region or without a usable ``data_range``; PSNR is ``math.inf`` for
    a perfect match. ``mean_ratio`` = mean synthetic / mean acquired enhancement in the region: the relative
    enhancement's scale error (both share the T1-pre), the sim-to-real issue's "within ±30 %"; None when the
    acquired mean is not positive.
    """
    from DCEDiffLib.evaluation.metrics import mae, psnr

    out = {"mae": None, "psnr": None, "pearson": None, "mean_ratio": None}
    if mask is not None and not np.asarray(mask, bool).any():
        out["pearson_reason"] = "correlation undefined: the region is empty"
        return out
    selected = np.asarray(mask, bool) if mask is not None else slice(None)
    acquired_mean = float(np.mean(np.asarray(acquired_enhancement, dtype=np.float64)[selected]))
    if acquired_mean > 0:
        out["mean_ratio"] = float(np.mean(np.asarray(synthetic_enhancement, dtype=np.float64)[selected])) / acquired_mean
    if data_range is not None and data_range > 0:
        syn = np.asarray(synthetic_enhancement, dtype=np.float64) / data_range
        acq = np.asarray(acquired_enhancement, dtype=np.float64) / data_range
        out["mae"] = mae(syn, acq, mask)
        out["psnr"] = psnr(syn, acq, 1.0, mask)
    r, reason = pearson(synthetic_enhancement, acquired_enhancement, mask)
    out["pearson"] = r
    if reason is not None:
        out["pearson_reason"] = reason
    return out
