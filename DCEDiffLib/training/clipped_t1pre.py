"""Targets relative to the T1-pre the model sees: clipped at the top of its normalised range.

The network reads its conditions clipped to [-1, 1], and with the enhancement parameterization it draws the step
over the T1-pre *as read*. Where the T1-pre lies above its range (the brightest fat, a receive coil's near field,
and far more of it under the training's coil and bias augmentation) the acquired target carries the T1-pre's excess
over the clip level, which the network cannot see: it learns to draw a share of that excess as "enhancement" at
every clipped voxel. On a real exam whose bright fat is clipped (``intensity_tail``), synthesis then adds the
excess back on top of what the network drew there, and the brightest fat comes out enhancing (docs/real_exams.md).

With ``t1pre_clip_consistent`` the training targets have that excess taken out (the network learns the enhancement
over the clipped T1-pre), and the card says so (``intensity_tail.CARD_FIELD``): synthesis and evaluation then add the
excess back at every clipped voxel, not only where the heavy-tail rule set the range (``intensity_tail``, the
inference side, owns the field and its reading).
"""

from __future__ import annotations

import numpy as np


def targets_over_clipped_t1pre(t1pre: np.ndarray, targets: np.ndarray, range_factor: float) -> np.ndarray:
    """``targets`` (T, H, W, on the targets' scale) less the normalised T1-pre's excess above 1 (``t1pre`` (H, W),
    not clipped), converted to the targets' scale (``range_factor`` times the T1-pre's span: excess / factor)."""
    excess = np.maximum(np.asarray(t1pre, dtype=np.float32) - np.float32(1.0), np.float32(0.0))
    return (np.asarray(targets, dtype=np.float32) - excess[None] / np.float32(range_factor)).astype(np.float32)
