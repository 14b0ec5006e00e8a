"""Is an input negated? A sign-flipped export of an image whose values are never below zero.

T2W, PD and T1-pre are magnitude images and an ADC is a diffusion coefficient: all are >= 0 (0 outside the field of
view or the body). Exported negated, every nonzero voxel is negative. Normalisation maps the negated image onto
[-1, 1] with its contrast inverted, and the out-of-distribution check then sees "another contrast": its swapped-series
guess would name a swap (a negated T1-pre looks more like the PD than like a T1-pre), and exchanging the files fixes
nothing. This rule names the sign flip itself (``ood.ood_score``, ``preprocess._check_adc``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

# A negated image: at least this share of its nonzero voxels below zero. Interpolation and noise leave a magnitude
# image with at most a few negative voxels (the ADC tolerates 1 %, preprocess.MAX_NEGATIVE_ADC_FRACTION).
NEGATED_SHARE = 0.99


def sign_measure(values: np.ndarray) -> Optional[dict]:
    """``{"negative_share", "min", "max"}`` of the finite nonzero voxels of ``values`` (raw intensities):
    the share below zero and the range; None when no voxel is finite and nonzero."""
    values = np.asarray(values)
    values = values[np.isfinite(values) & (values != 0)]
    if values.size == 0:
        return None
    return {"negative_share": float(np.mean(values < 0)), "min": float(values.min()), "max": float(values.max())}


def looks_negated(measure: Optional[dict]) -> bool:
    """True when a :func:`sign_measure` says the image is negated (``NEGATED_SHARE`` or more of it below zero)."""
    return bool(measure) and float(measure["negative_share"]) >= NEGATED_SHARE


def negated_reason(name: str, measure: dict, expected: str) -> str:
    """One sentence for a negated input: ``name`` (e.g. "T1 pre-contrast (t1pre)"), its range, what was expected."""
    every = "every nonzero voxel is negative" if measure["negative_share"] >= 1.0 else (
        f"{measure['negative_share']:.1%} of the nonzero voxels are negative")
    return (f"{name}: {every} ({measure['min']:.4g} to {measure['max']:.4g}): the intensities look negated (a "
            f"sign-flipped export?); expected {expected}: negate the image back (a swap of files does not help)")
