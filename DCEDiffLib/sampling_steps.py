"""How many sampler steps a model runs when the user does not say (plain Python, no torch: the Slicer module reads
it too, to show the model's own count in its steps box).

A residual model's card may carry ``sampling.residual_steps``: the count chosen on validation patients and scored
on a fresh set for the default sampler (docs/model_quality.md, "One residual step as the card's default"). Every
other model, and every other sampler, keeps the engine's default ``defaults.DEFAULT_STEPS``."""

from __future__ import annotations

import math
import numbers
from typing import Optional

from DCEDiffLib import defaults
from DCEDiffLib.errors import InputError


def resolve_steps(card: dict, sampler: str, steps: Optional[int] = None) -> int:
    """The sampler's step count: ``steps`` when given (1 or more); else, for a residual model sampled with the
    default sampler, the card's ``sampling.residual_steps``; else ``defaults.DEFAULT_STEPS``. The card's count was
    measured with the default sampler only, so another sampler keeps the engine's default."""
    if steps is not None:
        # NaN and inf are no step count (int() of them raises ValueError/OverflowError, not a clear InputError)
        if (isinstance(steps, bool) or not isinstance(steps, numbers.Real) or not math.isfinite(steps)
                or int(steps) != steps or steps < 1):
            raise InputError(f"steps {steps!r}: expected 1 or more")
        return int(steps)
    if isinstance(card, dict) and card.get("objective") == "residual" and sampler == defaults.DEFAULT_SAMPLER:
        sampling = card.get("sampling") if isinstance(card.get("sampling"), dict) else {}
        return int(sampling.get("residual_steps", defaults.DEFAULT_STEPS))
    return defaults.DEFAULT_STEPS
