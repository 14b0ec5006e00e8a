"""The acquired DCE's intensity scale against the T1-pre's, where the two come from different series.

The synthesis is on the T1-pre's intensity scale: the model was trained with the T1-pre as the DCE's own
pre-contrast frame (target_scale.py). On a real exam the T1-pre is often a separate VIBE and the DCE a TWIST, each
with its own receiver gain and flip angle; the acquired DCE is then ``a`` times what it would be on the T1-pre's
scale. Left as it is, every comparison mixes that gain in: PSNR and MAE measure it, and the acquired enhancement
(acquired − T1-pre) carries ``(a − 1) × T1-pre`` — the anatomy of the T1-pre, bright fat included — so even its
correlation with the synthetic enhancement is not the model's (docs/real_exams.md, "The acquired DCE on the
T1-pre's scale").

The DCE's own last frame before contrast arrival holds that gain and no enhancement. Its body median over the
T1-pre's (the ratio of the two medians over the working-grid voxels where both image the body) is ``a``; the acquired
frames divided by it are on the T1-pre's scale.
Only a global gain is taken out: a VIBE at another flip angle also weighs T1 differently per tissue, which no single
number removes.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

ACQUIRED_SCALE_RANGE = (0.5, 2.5)  # acquired early DCE / T1-pre in the body, for one sequence and receiver gain
BODY_FRACTION = 0.1                # body: above this fraction of the pre-contrast frame's 99.5th percentile
MIN_BODY_VOXELS = 100
# A pre-contrast frame this far from the T1-pre's scale is more likely another image (a copy of a late frame, a PD)
# than a receiver gain: the division is still made, with a warning to check the frame.
PLAUSIBLE_GAIN = (0.1, 10.0)
# The gland's relative enhancement (frame / T1-pre − 1, medians) of a real DCE is ~0.6 early and ~1.2 late, a slow
# cancer's 0.3 early (../shared/reference/realism-targets.md); both frames below this, the T1-pre looks post-contrast
# (or the DCE pre-contrast): a wide margin, so that a weakly enhancing exam is not flagged.
MIN_GLAND_ENHANCEMENT = 0.15


def baseline_gain(baseline: np.ndarray, t1pre: np.ndarray) -> Tuple[Optional[float], int]:
    """(gain, voxels): the median of the DCE's pre-contrast frame over the median of the T1-pre, both over the body
    voxels (pre-contrast frame above :data:`BODY_FRACTION` of its 99.5th percentile, both finite, T1-pre above 0) of
    one grid. (None, voxels) when fewer than :data:`MIN_BODY_VOXELS` remain."""
    frame = np.asarray(baseline, dtype=np.float64)
    t1 = np.asarray(t1pre, dtype=np.float64)
    if frame.shape != t1.shape:
        raise ValueError(f"pre-contrast DCE frame {frame.shape} and T1-pre {t1.shape}: expected one grid")
    finite = np.isfinite(frame) & np.isfinite(t1)
    if not finite.any():
        return None, 0
    body = finite & (frame > BODY_FRACTION * np.percentile(frame[finite], 99.5)) & (t1 > 0)
    voxels = int(body.sum())
    if voxels < MIN_BODY_VOXELS:
        return None, voxels
    return float(np.median(frame[body]) / np.median(t1[body])), voxels


def to_t1pre_scale(acquired: Dict[str, np.ndarray], baseline: np.ndarray,
                   t1pre: np.ndarray) -> Tuple[Dict[str, np.ndarray], dict]:
    """The acquired frames divided by :func:`baseline_gain` (new float32 arrays; the inputs are not modified), and
    the record for synthesis.json. Unchanged, with the reason in the record, when the gain cannot be measured."""
    gain, voxels = baseline_gain(baseline, t1pre)
    record = {"method": "the acquired DCE divided by the body median of its own pre-contrast frame over the "
                        "T1-pre's (medians over the working-grid voxels where both image the body): both on the "
                        "T1-pre's intensity scale", "body_voxels": voxels}
    if gain is None or not gain > 0:
        record.update(applied=False, gain=gain, reason=f"too few body voxels ({voxels}) or no positive gain")
        return dict(acquired), record
    record.update(applied=True, gain=round(gain, 5))
    low, high = PLAUSIBLE_GAIN
    if not low <= gain <= high:
        record["warning"] = (f"the pre-contrast DCE frame is {gain:.3g}× the T1-pre in the body (a receiver gain is "
                             f"expected within {low:g}–{high:g}×): check that it is the DCE's own last frame before "
                             "contrast arrival; the acquired DCE was divided by it")
    return {name: (np.asarray(values, dtype=np.float64) / gain).astype(np.float32)
            for name, values in acquired.items()}, record


def acquired_scale_note(acquired_early: np.ndarray, t1pre: np.ndarray) -> Optional[str]:
    """Words when the acquired DCE and the T1-pre are on different intensity scales (their body medians more than
    :data:`ACQUIRED_SCALE_RANGE` apart: another sequence or receiver gain) and nothing brought them together. None
    when they agree."""
    early = np.asarray(acquired_early, dtype=np.float64)
    finite = early[np.isfinite(early)]
    if finite.size == 0:
        return None
    body = early > BODY_FRACTION * np.percentile(finite, 99.5)
    if body.sum() < MIN_BODY_VOXELS:
        return None
    t1 = np.asarray(t1pre, dtype=np.float64)[body]
    below = float(np.median(t1[np.isfinite(t1)])) if np.isfinite(t1).any() else 0.0
    if below <= 0:
        return None
    ratio = float(np.median(early[body])) / below
    low, high = ACQUIRED_SCALE_RANGE
    if low <= ratio <= high:
        return None
    return (f"the acquired early DCE is {ratio:.2g}× the T1-pre in the body (expected {low:g}–{high:g}× for one "
            "sequence and receiver gain): they are on different intensity scales, and the synthetic DCE is on the "
            "T1-pre's, so PSNR and MAE against the acquired DCE measure the scale, and its enhancement (acquired − "
            "T1-pre) carries a multiple of the T1-pre; give the DCE's own pre-contrast frame (--dce-baseline; a "
            "--study finds it) to bring the acquired DCE onto the T1-pre's scale")


def gland_enhancement(acquired: Dict[str, np.ndarray], t1pre: np.ndarray,
                      gland: np.ndarray) -> Dict[str, Optional[float]]:
    """Relative enhancement of each acquired frame over the T1-pre in the gland: the frame's median over the T1-pre's
    (both over the gland voxels where both are finite and the T1-pre above 0) minus 1, on one grid and scale; None
    for a frame with fewer than :data:`MIN_BODY_VOXELS` such voxels."""
    t1 = np.asarray(t1pre, dtype=np.float64)
    out: Dict[str, Optional[float]] = {}
    for name, values in acquired.items():
        frame = np.asarray(values, dtype=np.float64)
        inside = np.asarray(gland, dtype=bool) & np.isfinite(frame) & np.isfinite(t1) & (t1 > 0)
        below = float(np.median(t1[inside])) if inside.sum() >= MIN_BODY_VOXELS else 0.0
        out[name] = round(float(np.median(frame[inside])) / below - 1.0, 4) if below > 0 else None
    return out


def post_contrast_t1pre_note(enhancement: Dict[str, Optional[float]]) -> Optional[str]:
    """Words when no acquired frame is brighter than the T1-pre in the gland by :data:`MIN_GLAND_ENHANCEMENT`
    (``enhancement``: :func:`gland_enhancement`, on the T1-pre's scale): the T1-pre looks post-contrast, or the DCE
    pre-contrast. None when a frame enhances or none could be measured."""
    measured = {name: value for name, value in enhancement.items() if value is not None}
    if not measured or max(measured.values()) >= MIN_GLAND_ENHANCEMENT:
        return None
    said = ", ".join(f"{name} {value:+.2f}" for name, value in measured.items())
    return (f"the acquired DCE is hardly brighter than the T1-pre in the gland (relative enhancement {said}; a real "
            f"DCE gives about +0.6 early and +1.2 late, flagged below +{MIN_GLAND_ENHANCEMENT:g}): the T1-pre looks "
            "post-contrast (or the DCE frames pre-contrast); a post-contrast T1-pre makes the synthetic enhancement "
            "wrong (about twice too bright): check that the T1-pre is the pre-contrast image")
