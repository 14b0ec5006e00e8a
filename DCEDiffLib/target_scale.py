"""How the DCE targets are scaled for the model: relative to the T1 pre-contrast image.

T1-pre is the pre-contrast baseline of the same T1-weighted sequence as the DCE frames, so expressing the targets
on the T1-pre's scale keeps the *amount* of enhancement (a DCE voxel that doubles its pre-contrast signal stays
doubled). Normalising each target by its own percentiles would erase exactly that, and the output could not be
mapped back to an intensity scale at inference time, when no acquired DCE exists.

The T1-pre's robust range [low, high] maps to [-1, -1 + 2/f]; [-1, 1] covers targets up to ``f`` times that range
(f = ``RANGE_FACTOR``: late gland enhancement roughly doubles the signal; arteries enhance more and may clip).
"""

from __future__ import annotations

from DCEDiffLib.normalization import NormParams

RANGE_FACTOR = 3.0


def target_norm_params(t1pre: NormParams, range_factor: float = RANGE_FACTOR) -> NormParams:
    """Normalisation parameters of the DCE targets derived from the T1-pre's parameters."""
    span = t1pre.high - t1pre.low
    return NormParams(low=t1pre.low, high=t1pre.low + range_factor * span,
                      low_percentile=t1pre.low_percentile, high_percentile=t1pre.high_percentile)
