"""A T1-pre that sits lower on its normalised scale than any training exam: scale the synthetic enhancement down.

The model draws an additive enhancement step learnt on exams whose central gland lies at 0.154 or more of the
normalised T1-pre range (the card's ``input_statistics`` feature ``t1pre.gland_level``). On a T1-weighted exam
without fat suppression, bright fat sets the range and the gland lies lower (0.10 on the real exams' stand-ins);
the same additive step is then a larger relative one, and the synthetic gland's relative enhancement (RE) comes out
1.3–3× too high (docs/real_exams.md). Rescaling the *input* to put the gland back in range was tried and cost the
correlation (the model reads a rescaled T1-pre as an exam it does not know, docs/preprocessing.md); scaling the
*output's* enhancement by ``level / training minimum`` keeps every correlation exactly (one factor for the whole
volume) and brings the RE back to what the model draws on the exam before its fat was brightened
(``scripts/bright_fat_check.py --output-rescale``, docs/real_exams.md).

Applied by synthesis and evaluation alike (``pipeline.synthesize_case``, ``evaluation_runner``), in the model's
normalised units: y ← z + f·(y − z) with z the zero enhancement (the T1-pre on the targets' scale), the sample
spread and expected error times f. Exams at or above the minimum, and cards without the feature, are untouched.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

FEATURE = "t1pre.gland_level"
FLOOR = 0.3  # never scale the enhancement below 30 %: a gland this low is far outside anything measured
DEAD_BAND = 0.995  # the lowest training exam itself (its level is the minimum, up to float rounding) stays as is


def gland_level(t1pre: np.ndarray) -> float:
    """Where the central gland region (``ood.gland_region``) of a normalised (K, H, W) T1-pre lies, 0 (bottom of
    the range) to 1 (top): the OOD check's ``gland_level``."""
    from DCEDiffLib.ood import gland_region, range_level

    t1pre = np.asarray(t1pre, dtype=np.float32)
    return range_level(t1pre[gland_region(t1pre.shape)])


def conditions_gland_level(conditions: np.ndarray, names: Sequence[str]) -> Optional[float]:
    """:func:`gland_level` of the T1-pre channel of ``conditions`` (C, K, H, W, in ``names`` order), or None when
    there is no T1-pre channel."""
    names = list(names)
    if "t1pre" not in names:
        return None
    return gland_level(conditions[names.index("t1pre")])


def training_minimum(card: dict) -> Optional[float]:
    """The lowest T1-pre gland level of the card's training exams, or None when the card does not record it."""
    feature = ((card.get("input_statistics") or {}).get("features") or {}).get(FEATURE)
    if not isinstance(feature, dict) or not isinstance(feature.get("minimum"), (int, float)):
        return None
    return float(feature["minimum"]) if feature["minimum"] > 0 else None


def enhancement_factor(card: dict, level: float) -> Optional[float]:
    """``clip(level / minimum, FLOOR, 1)`` when ``level`` lies below the card's training minimum (by more than
    half a per cent), else None."""
    minimum = training_minimum(card)
    if minimum is None or not np.isfinite(level) or level >= DEAD_BAND * minimum:
        return None
    return float(np.clip(level / minimum, FLOOR, 1.0))


def rescale_low_t1pre(result, conditions: np.ndarray, names: Sequence[str], card: dict,
                      level: Optional[float] = None) -> Optional[dict]:
    """Scale ``result``'s synthetic enhancement (a ``synthesis.SynthesisResult``; changed in place) when the
    T1-pre of ``conditions`` (C, K, H, W, in ``names`` order) lies below the card's training minimum. ``level``: the
    gland level measured on the whole volume where ``conditions`` hold only some of its slices (the benchmark's
    scored slices); by default measured on ``conditions``. Returns what was done ({"factor", "gland_level",
    "training_minimum", "note"}) or None (nothing to do)."""
    if level is None:
        level = conditions_gland_level(conditions, names)
    if level is None:
        return None
    t1pre = np.asarray(conditions[list(names).index("t1pre")], dtype=np.float32)
    factor = enhancement_factor(card, level)
    if factor is None:
        return None
    range_factor = float(card.get("normalization", {}).get("target_range_factor", 3.0))
    zero = (np.clip(t1pre, -1.0, 1.0) + 1.0) / range_factor - 1.0  # the T1-pre on the targets' scale
    result.mean = (zero[None] + factor * (result.mean - zero[None])).astype(np.float32)
    if result.std is not None:
        result.std = (factor * result.std).astype(np.float32)
    if result.expected_error is not None:
        result.expected_error = (factor * result.expected_error).astype(np.float32)
    minimum = training_minimum(card)
    note = (f"the T1-pre's central gland lies at {level:.2f} of its normalised range, below every training exam "
            f"({minimum:.3f}); the synthetic enhancement was scaled by {factor:.2f} (docs/real_exams.md)")
    return {"factor": round(factor, 4), "gland_level": round(level, 4), "training_minimum": round(minimum, 6),
            "note": note}
