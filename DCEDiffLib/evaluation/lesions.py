"""Lesion conspicuity: is a lesion as visible in the synthetic DCE as in the acquired one?

Per connected lesion component (``scipy.ndimage.label``, face connectivity in 3D):

- ring: the lesion dilated in-plane (slice by slice; slices are about as thick as the ring is wide) by an ellipse of
  ``ring_mm`` (default 4 mm; 3 voxels when the spacing is unknown), minus every lesion voxel, intersected with the
  prostate when a prostate mask exists;
- CNR = (mean lesion − mean ring) / std ring (population std, ddof = 0), in the synthetic and the acquired image;
- relative CNR error = (CNR_synthetic − CNR_acquired) / |CNR_acquired|;
- rank against the gland: is the lesion's median enhancement above the median enhancement of the gland (prostate
  outside all lesions)? Also the gland percentile of the lesion's median (fraction of gland voxels below it).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

DEFAULT_RING_MM = 4.0
DEFAULT_RING_VOXELS = 3


def ring_footprint(spacing: Optional[Sequence[float]] = None, ring_mm: float = DEFAULT_RING_MM) -> np.ndarray:
    """A (1, h, w) elliptical structuring element of radius ``ring_mm`` in-plane (3 voxels without spacing)."""
    if spacing is None:
        rj = ri = DEFAULT_RING_VOXELS
    else:
        rj = max(1, int(round(ring_mm / float(spacing[1]))))
        ri = max(1, int(round(ring_mm / float(spacing[2]))))
    jj, ii = np.mgrid[-rj:rj + 1, -ri:ri + 1]
    return ((jj / rj) ** 2 + (ii / ri) ** 2 <= 1.0)[None]


def contrast_to_noise(image: np.ndarray, lesion: np.ndarray, ring: np.ndarray) -> Tuple[Optional[float], Optional[str]]:
    """(mean lesion − mean ring) / std ring; ``(None, reason)`` for an empty ring or a constant ring."""
    if not lesion.any():
        return None, "empty lesion"
    if not ring.any():
        return None, "no gland tissue around the lesion (empty ring)"
    ring_values = np.asarray(image, dtype=np.float64)[ring]
    noise = float(np.std(ring_values))
    if noise == 0.0:
        return None, "the ring around the lesion is constant (zero standard deviation)"
    contrast = float(np.mean(np.asarray(image, dtype=np.float64)[lesion])) - float(np.mean(ring_values))
    return contrast / noise, None


def relative_error(value: Optional[float], reference: Optional[float]) -> Optional[float]:
    """(value − reference) / |reference|; None when either is missing or the reference is 0."""
    if value is None or reference is None or reference == 0.0:
        return None
    return (value - reference) / abs(reference)


def _rank(lesion_values: np.ndarray, gland_values: np.ndarray) -> Tuple[Optional[bool], Optional[float]]:
    if gland_values.size == 0 or lesion_values.size == 0:
        return None, None
    if constant_enhancement(lesion_values, gland_values):  # no ranking drawn (the identity baseline): not "below"
        return None, None
    lesion_median = float(np.median(lesion_values))
    above = bool(lesion_median > float(np.median(gland_values)))
    percentile = float(np.mean(gland_values < lesion_median))
    return above, percentile


def constant_enhancement(lesion_values: np.ndarray, gland_values: np.ndarray) -> bool:
    """Whether the enhancement is one value over the lesion and the gland (within 1e-9 of its magnitude, as
    ``enhancement.pearson`` decides "constant"): the lesion is then neither above nor below the gland's median."""
    values = np.concatenate([np.ravel(lesion_values), np.ravel(gland_values)]).astype(np.float64)
    scale = max(float(np.max(np.abs(values))), np.finfo(np.float64).tiny)
    return float(np.ptp(values)) <= 1e-9 * scale


def _mean(values: List[Optional[float]]) -> Optional[float]:
    numbers = [v for v in values if v is not None]
    return float(np.mean(numbers)) if numbers else None


def lesion_conspicuity(synthetic: np.ndarray, acquired: np.ndarray, synthetic_enhancement: np.ndarray,
                       acquired_enhancement: np.ndarray, lesion_mask: np.ndarray,
                       prostate_mask: Optional[np.ndarray] = None, spacing: Optional[Sequence[float]] = None,
                       ring_mm: float = DEFAULT_RING_MM) -> Tuple[dict, List[str]]:
    """Conspicuity of every lesion component; returns ``({"summary": ..., "per_lesion": [...]}, notes)``.

    ``synthetic``/``acquired``: the target images (any common intensity scale); ``*_enhancement``: their
    enhancement maps; masks are boolean (K, H, W); ``spacing``: (k, j, i) voxel size in mm, if known.
    """
    from scipy import ndimage

    notes: List[str] = []
    lesion_mask = np.asarray(lesion_mask, dtype=bool)
    components, count = ndimage.label(lesion_mask)
    prostate = None if prostate_mask is None else np.asarray(prostate_mask, dtype=bool)
    if prostate is None and count:
        notes.append("lesions: no prostate mask; rings are not restricted to the gland and the gland-median rank "
                     "is undefined")
    gland = None if prostate is None else (prostate & ~lesion_mask)
    if gland is not None and count and not gland.any():
        notes.append("lesions: the prostate has no voxel outside the lesions; gland-median rank undefined")
    footprint = ring_footprint(spacing, ring_mm)
    syn_enh = np.asarray(synthetic_enhancement, dtype=np.float64)
    acq_enh = np.asarray(acquired_enhancement, dtype=np.float64)
    per_lesion = []
    for index in range(1, count + 1):
        lesion = components == index
        ring = ndimage.binary_dilation(lesion, structure=footprint) & ~lesion_mask
        if prostate is not None:
            ring &= prostate
        cnr_syn, reason_syn = contrast_to_noise(synthetic, lesion, ring)
        cnr_acq, reason_acq = contrast_to_noise(acquired, lesion, ring)
        for reason, which in ((reason_syn, "synthetic"), (reason_acq, "acquired")):
            if reason is not None:
                notes.append(f"lesion {index}: {which} CNR undefined — {reason}")
        gland_syn = syn_enh[gland] if gland is not None else np.empty(0)
        gland_acq = acq_enh[gland] if gland is not None else np.empty(0)
        syn_above, syn_pct = _rank(syn_enh[lesion], gland_syn)
        acq_above, acq_pct = _rank(acq_enh[lesion], gland_acq)
        per_lesion.append({
            "lesion": index,
            "voxels": int(lesion.sum()),
            "ring_voxels": int(ring.sum()),
            "centroid_kji": [round(float(c), 1) for c in ndimage.center_of_mass(lesion)],
            "cnr_synthetic": cnr_syn,
            "cnr_acquired": cnr_acq,
            "cnr_relative_error": relative_error(cnr_syn, cnr_acq),
            "synthetic_above_gland_median": syn_above,
            "acquired_above_gland_median": acq_above,
            "synthetic_gland_percentile": syn_pct,
            "acquired_gland_percentile": acq_pct,
        })

    def fraction(key: str) -> Optional[float]:
        flags = [row[key] for row in per_lesion if row[key] is not None]
        return float(np.mean(flags)) if flags else None

    agree = [row["synthetic_above_gland_median"] == row["acquired_above_gland_median"] for row in per_lesion
             if row["synthetic_above_gland_median"] is not None and row["acquired_above_gland_median"] is not None]
    relative = [row["cnr_relative_error"] for row in per_lesion]
    summary = {
        "n_lesions": int(count),
        "cnr_synthetic": _mean([row["cnr_synthetic"] for row in per_lesion]),
        "cnr_acquired": _mean([row["cnr_acquired"] for row in per_lesion]),
        "cnr_relative_error": _mean(relative),
        "cnr_abs_relative_error": _mean([None if v is None else abs(v) for v in relative]),
        "fraction_above_gland_median_synthetic": fraction("synthetic_above_gland_median"),
        "fraction_above_gland_median_acquired": fraction("acquired_above_gland_median"),
        "above_gland_median_agreement": float(np.mean(agree)) if agree else None,
    }
    return {"summary": summary, "per_lesion": per_lesion}, notes
