"""Every metric of one case, for every target: the one function the evaluate command and the pipeline call.

Result layout (JSON-serialisable, see ``docs/evaluation.md``)::

    {"early": {"whole": {"psnr", "ssim", "mae"}, "body": {...}, "prostate": {...},
               "enhancement": {"whole"|"body"|"prostate"|"lesion": {"mae", "psnr", "pearson"[, "pearson_reason"]}},
               "lesions": {"summary": {...}, "per_lesion": [...]},
               "through_plane": {"roughness_ratio", "pearson", "pairs"}},   # in the body, evaluation/consistency.py
     "late": {...},
     "info": {"scaling", "enhancement_mapping", "masks", "settings"},
     "notes": ["why a value is None", ...]}

Values: finite floats; ``"inf"`` for the PSNR of a perfect prediction; ``None`` when undefined (empty mask, no
labels, zero variance), with the reason in ``notes`` or next to the value (``pearson_reason``). Never NaN.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from DCEDiffLib.errors import InputError

# Body mask: voxels brighter than this fraction of the acquired target's 99.5th percentile, closed and hole-filled
# per slice, largest 3D component. A fraction of a high percentile (not Otsu) because the working grid may be all
# tissue, where Otsu would split the body into two tissue classes.
BODY_FRACTION = 0.1
BODY_CLOSING_ITERATIONS = 2

PROSTATE_NAMES = {"prostate", "peripheral_zone", "transition_zone", "central_zone", "central_gland",
                  "anterior_fibromuscular_stroma", "pz", "tz", "cz", "afs"}
LESION_WORDS = ("lesion", "tumor", "tumour", "cancer")
REFERENCE_TISSUE_WORDS = ("fat", "muscle")  # non-enhancing reference for the 'reference_tissue' mapping, in order
REGIONS = ("whole", "body", "prostate")
ENHANCEMENT_REGIONS = ("whole", "body", "prostate", "lesion")


def _name(label_name: str) -> str:
    return str(label_name).strip().lower().replace(" ", "_").replace("-", "_")


def derive_body_mask(volume: np.ndarray, fraction: float = BODY_FRACTION) -> np.ndarray:
    """Body mask of a (K, H, W) volume: ``> fraction × 99.5th percentile``, per-slice closing (3×3, twice) and hole
    filling, then the largest 3D connected component."""
    from scipy import ndimage

    volume = np.asarray(volume, dtype=np.float64)
    high = float(np.percentile(volume, 99.5))
    if not high > 0:
        return np.zeros(volume.shape, dtype=bool)
    mask = volume > fraction * high
    pad = BODY_CLOSING_ITERATIONS + 1
    for k in range(mask.shape[0]):
        # Edge padding so that closing does not erode tissue that touches the edge of the grid.
        padded = np.pad(mask[k], pad, mode="edge")
        closed = ndimage.binary_closing(padded, iterations=BODY_CLOSING_ITERATIONS)[pad:-pad, pad:-pad]
        mask[k] = ndimage.binary_fill_holes(closed)
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(np.argmax(sizes))
    return mask


def region_masks(labels: Optional[np.ndarray], legend: Optional[Dict[str, int]],
                 shape: Tuple[int, ...]) -> Tuple[Dict[str, Optional[np.ndarray]], List[str]]:
    """Prostate, lesion and reference-tissue masks from a label map and its legend (name → value).

    The prostate is the union of the zone labels (peripheral/transition/central zone, central gland, prostate)
    and the lesion labels (names containing lesion, tumo(u)r or cancer). A mask is None when the legend names no
    such label; the notes say why.
    """
    notes: List[str] = []
    masks: Dict[str, Optional[np.ndarray]] = {"prostate": None, "lesion": None, "reference_tissue": None}
    if labels is None:
        notes.append("no label map: prostate and lesion metrics are None")
        return masks, notes
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise InputError(f"label map: shape {labels.shape} does not match the image shape {tuple(shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.array_equal(labels, np.round(labels)):
            raise InputError(f"label map: expected integer labels, got dtype {labels.dtype} with fractional values")
        labels = labels.astype(np.int64)
    if not legend:
        notes.append("label map without a legend (name → value): prostate and lesion metrics are None")
        return masks, notes
    try:
        values = {_name(k): int(v) for k, v in legend.items()}
    except (TypeError, ValueError) as exc:
        raise InputError(f"label legend: expected name → integer value, got {legend!r}") from exc
    lesion_values = [v for n, v in values.items() if any(w in n for w in LESION_WORDS)]
    zone_values = [v for n, v in values.items() if n in PROSTATE_NAMES or n.startswith("prostate")]
    if lesion_values:
        masks["lesion"] = np.isin(labels, lesion_values)
    else:
        notes.append("legend names no lesion label: lesion metrics are None")
    if zone_values:
        masks["prostate"] = np.isin(labels, zone_values + lesion_values)
    else:
        notes.append("legend names no prostate zone: prostate metrics are None")
    for word in REFERENCE_TISSUE_WORDS:
        tissue = [v for n, v in values.items() if word in n]
        if tissue:
            masks["reference_tissue"] = np.isin(labels, tissue)
            break
    return masks, notes


def _image_metrics(syn_unit: np.ndarray, acq_unit: np.ndarray, mask: Optional[np.ndarray]) -> dict:
    from DCEDiffLib.evaluation.metrics import mae, psnr, ssim

    return {"psnr": psnr(syn_unit, acq_unit, 1.0, mask), "ssim": ssim(syn_unit, acq_unit, 1.0, mask),
            "mae": mae(syn_unit, acq_unit, mask)}


def _empty_lesions(n_lesions: Optional[int] = 0) -> dict:
    """The lesion section of a case without lesions: ``n_lesions`` 0 when the label map has an (empty) lesion label,
    None when it has none (no label map, or no lesion in its legend), so that metrics.md says undefined, not 0."""
    return {"summary": {"n_lesions": n_lesions, "cnr_synthetic": None, "cnr_acquired": None,
                        "cnr_relative_error": None, "cnr_abs_relative_error": None,
                        "fraction_above_gland_median_synthetic": None, "fraction_above_gland_median_acquired": None,
                        "above_gland_median_agreement": None},
            "per_lesion": []}


def _target_order(synthetic: dict, acquired: dict) -> List[str]:
    if not isinstance(synthetic, dict) or not isinstance(acquired, dict):
        raise InputError("evaluate_case: synthetic and acquired must be dicts of target name → volume")
    if set(synthetic) != set(acquired) or not synthetic:
        raise InputError(f"evaluate_case: synthetic targets {sorted(synthetic)} and acquired targets "
                         f"{sorted(acquired)} must be the same non-empty set")
    preferred = ["early", "late", "dce_early", "dce_late"]
    return [t for t in preferred if t in acquired] + sorted(t for t in acquired if t not in preferred)


def evaluate_case(synthetic: Dict[str, np.ndarray], acquired: Dict[str, np.ndarray], t1pre: np.ndarray,
                  labels: Optional[np.ndarray] = None, legend: Optional[Dict[str, int]] = None,
                  body_mask: Optional[np.ndarray] = None, *, spacing: Optional[Sequence[float]] = None,
                  enhancement_method: str = "identity", low_percentile: float = 0.5,
                  high_percentile: float = 99.5, ring_mm: float = 4.0) -> dict:
    """Score a synthesis of one case against the acquired targets (see the module docstring for the result).

    ``synthetic``/``acquired``: target name (``early``, ``late``) → (K, H, W) volume on the working grid, on the
    acquired DCE's intensity scale; ``t1pre``: same grid, own scale (mapped by ``enhancement_method``, fitted on the
    first acquired target); ``labels``/``legend``: optional label map and name → value legend; ``body_mask``:
    optional, else derived from the first acquired target (:func:`derive_body_mask`); ``spacing``: (k, j, i) mm,
    for the lesion ring width. Inputs are not modified.
    """
    from DCEDiffLib.evaluation.enhancement import MIN_LESION_CORRELATION_VOXELS, compare_enhancement, \
        enhancement_map, enhancement_range, fit_target_scale
    from DCEDiffLib.evaluation.consistency import through_plane_consistency
    from DCEDiffLib.evaluation.lesions import lesion_conspicuity
    from DCEDiffLib.evaluation.metrics import SSIM_WINDOW, apply_scale, check_mask, check_volume, json_safe, \
        scale_to_unit

    targets = _target_order(synthetic, acquired)
    acq = {t: check_volume(acquired[t], f"acquired {t}") for t in targets}
    syn = {t: check_volume(synthetic[t], f"synthetic {t}") for t in targets}
    shape = acq[targets[0]].shape
    for t in targets:
        for kind, volume in (("acquired", acq[t]), ("synthetic", syn[t])):
            if volume.shape != shape:
                raise InputError(f"{kind} {t}: shape {volume.shape} differs from acquired {targets[0]} {shape}")
    t1 = check_volume(t1pre, "T1-pre")
    if t1.shape != shape:
        raise InputError(f"T1-pre: shape {t1.shape} differs from the targets' shape {shape}")

    notes: List[str] = []
    if body_mask is None:
        body = derive_body_mask(acq[targets[0]])
        body_source = f"derived from acquired {targets[0]} (> {BODY_FRACTION} × 99.5th percentile, closed, filled)"
    else:
        body = check_mask(body_mask, shape, "body mask")
        body_source = "given"
    if not body.any():
        notes.append("body mask is empty: body metrics are None")
    masks, region_notes = region_masks(labels, legend, shape)
    notes.extend(region_notes)
    region_mask = {"whole": None, "body": body, "prostate": masks["prostate"], "lesion": masks["lesion"]}
    for name in ("prostate", "lesion"):
        if masks[name] is not None and not masks[name].any():
            notes.append(f"{name} mask is empty in this case: {name} metrics are None")

    mapping = fit_target_scale(t1, acq[targets[0]], enhancement_method, body_mask=body,
                               tissue_mask=masks["reference_tissue"])
    # mapped in the T1-pre's own precision, as identity_baseline maps it, so its enhancement is exactly 0
    t1_mapped = mapping.apply(np.asarray(t1pre))

    result: dict = {}
    scaling: dict = {}
    for t in targets:
        acq_unit, bounds = scale_to_unit(acq[t], low_percentile, high_percentile, name=f"acquired {t}")
        syn_unit = apply_scale(syn[t], bounds)
        per_target: dict = {}
        for region in REGIONS:
            mask = region_mask[region]
            if region != "whole" and (mask is None or not mask.any()):
                per_target[region] = {"psnr": None, "ssim": None, "mae": None}
            else:
                per_target[region] = _image_metrics(syn_unit, acq_unit, mask)

        enh_syn = enhancement_map(syn[t], t1_mapped)
        enh_acq = enhancement_map(acq[t], t1_mapped)
        data_range = enhancement_range(enh_acq, body if body.any() else None, low_percentile, high_percentile)
        if data_range is None:
            notes.append(f"{t}: the acquired enhancement has no robust range (constant); enhancement MAE/PSNR None")
        per_target["enhancement"] = {}
        for region in ENHANCEMENT_REGIONS:
            mask = region_mask[region]
            if region in ("prostate", "lesion") and mask is None:
                per_target["enhancement"][region] = {"mae": None, "psnr": None, "pearson": None,
                                                     "pearson_reason": f"no {region} label"}
            else:
                per_target["enhancement"][region] = compare_enhancement(enh_syn, enh_acq, data_range, mask)
                if region == "lesion" and 0 < int(mask.sum()) < MIN_LESION_CORRELATION_VOXELS:
                    per_target["enhancement"][region]["pearson"] = None
                    per_target["enhancement"][region]["pearson_reason"] = (
                        f"correlation not reported: {int(mask.sum())} lesion voxel(s), fewer than "
                        f"{MIN_LESION_CORRELATION_VOXELS} (over n voxels unrelated maps correlate at about ±1/√(n − 1))")

        if masks["lesion"] is not None and masks["lesion"].any():
            lesions, lesion_notes = lesion_conspicuity(syn[t], acq[t], enh_syn, enh_acq, masks["lesion"],
                                                       masks["prostate"], spacing, ring_mm)
            notes.extend(f"{t}: {n}" for n in lesion_notes)
        else:
            lesions = _empty_lesions(None if masks["lesion"] is None else 0)
        per_target["lesions"] = lesions
        per_target["through_plane"] = through_plane_consistency(syn[t], acq[t], body)  # None values if body empty
        result[t] = per_target
        scaling[t] = {"low": bounds[0], "high": bounds[1], "enhancement_range": data_range}

    result["info"] = {
        "scaling": scaling,
        "enhancement_mapping": mapping.to_dict(),
        "masks": {"body": {"voxels": int(body.sum()), "source": body_source},
                  "prostate": None if masks["prostate"] is None else {"voxels": int(masks["prostate"].sum())},
                  "lesion": None if masks["lesion"] is None else {"voxels": int(masks["lesion"].sum())}},
        "settings": {"low_percentile": low_percentile, "high_percentile": high_percentile,
                     "ssim_window": SSIM_WINDOW, "ssim_gaussian_weights": False, "ring_mm": ring_mm,
                     "spacing": None if spacing is None else [float(s) for s in spacing]},
    }
    result["notes"] = list(dict.fromkeys(notes))  # each note once, in order
    return json_safe(result)
