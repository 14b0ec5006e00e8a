"""A heavy bright tail in a gradient-echo input: set its intensity range from the bulk, not from the hot spot.

On real exams the pelvic phased array's near field makes the fat under the anterior coil several times brighter
than the fat elsewhere (ProstateX-0000/0001: the top 2 % of the working grid on the PD series is that fat, 4× the
fat's median). The 99.5th percentile that sets the normalised range then sits on that hot spot, and the whole
rest of the T1-pre is squeezed into the bottom of the range: the gland at 0.04–0.05 of it where every phantom the
model was trained on has 0.2–0.3. The model then draws its enhancement on a scale it has never seen (gland RE 2–3.7
on a T1-weighted stand-in; docs/real_exams.md).

The rule: the spread of the upper tail, (p99.5 − p0.5) / (p90 − p0.5), is measured on each GRE input (PD, T1-pre)
inside its coverage. When it is above every training case's (:data:`TAIL_LIMITS`; the phantom's 114 training and
validation cases reach 2.10 for PD and 2.02 for T1-pre), the range is set so that the 90th percentile sits where it
sits in a typical training case (:data:`TAIL_TYPICAL`, the phantom's median). Cases within the limit are not
touched, so phantom exams are normalised exactly as in training. Voxels above the new range are clipped for the
model like any other; for the T1-pre, the pipeline adds their excess back to the synthetic images (fat under the
coil does not enhance, so its synthetic signal is its own T1-pre plus what the model drew at the clip level).
Measured with ``.venv/bin/python scripts/intensity_tail_statistics.py DATA_DIR`` (docs/preprocessing.md).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from DCEDiffLib.normalization import NormParams, denormalize

TAIL_LIMITS = {"pd": 2.2, "t1pre": 2.2}     # above the phantom's largest (2.10 PD, 2.02 T1-pre, 114 cases)
TAIL_TYPICAL = {"pd": 1.26, "t1pre": 1.26}  # the phantom's median spread (both 1.26)
TAIL_PERCENTILE = 90.0
# A model card field: its networks were trained on targets over the clipped T1-pre (training/clipped_t1pre.py), so
# synthesis adds the excess back at every clipped voxel, not only where the heavy-tail rule set the range.
CARD_FIELD = "t1pre_excess_added_back"


def tail_spread(values: np.ndarray, params: NormParams) -> float:
    """(high − low) / (p90 − low): how far the top of the range lies beyond the bulk (inf if p90 == low)."""
    return _spread(float(np.percentile(values, TAIL_PERCENTILE)), params)


def _spread(p90: float, params: NormParams) -> float:
    return float((params.high - params.low) / (p90 - params.low)) if p90 > params.low else float("inf")


def coverage_values(array: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """The finite values of ``array`` inside ``mask`` (all of them without one), flattened: what the spread is
    measured on."""
    values = np.asarray(array)
    values = values[np.asarray(mask, dtype=bool)] if mask is not None else values.ravel()
    return values[np.isfinite(values)]


def tame_heavy_tail(array: np.ndarray, params: NormParams, modality: str,
                    mask: Optional[np.ndarray] = None) -> Tuple[NormParams, Optional[str]]:
    """``params`` unchanged with ``None``, or the range set from the 90th percentile with a note saying why.

    ``array``/``mask``: the modality on the working grid and its coverage, as the normalisation was fitted on.
    Only modalities in :data:`TAIL_LIMITS` are considered."""
    if modality not in TAIL_LIMITS:
        return params, None
    values = coverage_values(array, mask)
    if values.size == 0:
        return params, None
    p90 = float(np.percentile(values, TAIL_PERCENTILE))
    spread = _spread(p90, params)
    if not np.isfinite(spread) or spread <= TAIL_LIMITS[modality]:
        return params, None
    tamed = NormParams(params.low, params.low + TAIL_TYPICAL[modality] * (p90 - params.low),
                       params.low_percentile, params.high_percentile)
    share = float(np.mean(values > tamed.high))
    note = (f"{modality}: bright tail {spread:.2f}× the bulk (99.5th over 90th percentile; the training cases "
            f"reach {TAIL_LIMITS[modality]:g}), likely a receive coil's near field: intensity range set from the "
            f"90th percentile ({params.high:.6g} → {tamed.high:.6g}); {share:.1%} of the voxels lie above it")
    return tamed, note


def adds_excess_back(card: dict) -> bool:
    """Whether a model card was trained on targets over the clipped T1-pre (its synthesis adds the excess back at
    every clipped voxel)."""
    return bool(card.get(CARD_FIELD, False))


def clipped_t1pre_excess(t1pre: np.ndarray, params: NormParams, notes, always: bool = False) -> Optional[np.ndarray]:
    """What the T1-pre (original intensities) has above its range where the rule set that range (``"t1pre"`` in
    ``notes``), or wherever it is clipped with ``always`` (a model trained on targets over the clipped T1-pre,
    training/clipped_t1pre.py), to be added back to the synthetic images: those voxels were clipped for the model.
    None otherwise."""
    if "t1pre" not in (notes or {}) and not always:
        return None
    return np.maximum(np.asarray(t1pre, dtype=np.float32) - np.float32(params.high), 0)


def t1pre_excess_to_add(card: dict, notes, params: NormParams,
                        read_t1pre: Callable[[], np.ndarray]) -> Optional[np.ndarray]:
    """What synthesis adds back to each synthetic image of a model with ``card``, or None: the T1-pre's excess
    over its range (:func:`clipped_t1pre_excess`) where the rule set that range (``"t1pre"`` in ``notes``), or at
    every clipped voxel for a card with :data:`CARD_FIELD`. ``read_t1pre()`` gives the T1-pre on its original scale
    (the voxels to be scored or written); it is called only when an excess can be needed. The one rule behind
    ``dcediff synthesize``, ``dcediff evaluate`` and ``dcediff benchmark``."""
    always = adds_excess_back(card)
    if "t1pre" not in (notes or {}) and not always:
        return None  # nothing to add: the T1-pre is not read
    return clipped_t1pre_excess(read_t1pre(), params, notes, always=always)


def synthetic_intensity(prediction: np.ndarray, params: NormParams, excess: Optional[np.ndarray]) -> np.ndarray:
    """A normalised target prediction on the DCE's intensity scale (``params``, float32) with ``excess``
    (:func:`t1pre_excess_to_add`, same shape, or None) added back: the synthetic image users get."""
    values = denormalize(prediction, params)
    return values if excess is None else (values + excess).astype(np.float32)
