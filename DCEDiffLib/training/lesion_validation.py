"""Validation by the lesions: how well a regression (mean) network's predicted enhancement follows the acquired one
inside the lesions and the gland of the validation cases, the lesion r and prostate r that ``dcediff evaluate``
reports.

Why a second validation measure: the trainer's validation L1 (fixed random slices, ``validation_loss``) is dominated
by the body. In the thirtieth step of docs/model_quality.md the L1 kept falling (or stayed flat) over the last 1750
steps while the lesion r fell by 0.04–0.07; a checkpoint chosen by L1 is not the one that draws the lesions best.

What is measured, per validation case with a lesion label: every slice that holds a lesion voxel is predicted whole
(as at inference, without the flip average), the enhancement is the prediction minus the T1-pre on the targets'
scale (the enhancement parameterization's zero, ``diffusion.residual.zero_enhancement``), and the acquired one the
target minus the same. Pearson r is taken over the case's lesion voxels (and, on the same slices, its gland voxels),
per target (early, late); the score is the mean over cases and targets. The evaluation's r is over the whole volume
on the inference grid; this one sees only the lesion slices on the working grid, so the two agree in ranking, not in
value.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from DCEDiffLib.evaluation.case_evaluation import region_masks
from DCEDiffLib.evaluation.enhancement import pearson
from DCEDiffLib.modalities import INPUT_MODALITIES
from DCEDiffLib.training.batches import slice_conditions
from DCEDiffLib.training.case_data import CaseArrays


@dataclasses.dataclass
class LesionSlices:
    """The whole validation slices that hold a lesion: network inputs, targets and region masks.

    ``cond`` (N, C', H, W) and ``target`` (N, T, H, W) float32 as the network sees them; ``lesion`` and ``gland``
    (N, H, W) bool; ``case`` (N,) the index into ``names`` of the case each slice came from.
    """

    cond: torch.Tensor
    target: torch.Tensor
    lesion: np.ndarray
    gland: np.ndarray
    case: np.ndarray
    names: List[str]


def lesion_slices(cases: Sequence[CaseArrays], conditions_kept: Sequence[str] = INPUT_MODALITIES,
                  context_slices: int = 0, absolute_adc: bool = False) -> Optional[LesionSlices]:
    """Every slice with a lesion voxel of every case that has targets and a lesion label; None if there is none."""
    conds, targets, lesions, glands, case_index, names = [], [], [], [], [], []
    for case in cases:
        if case.targets is None or case.labels is None or not case.legend:
            continue
        masks, _ = region_masks(case.labels, case.legend, case.labels.shape)
        if masks.get("lesion") is None or not masks["lesion"].any():
            continue
        gland = masks["prostate"] if masks.get("prostate") is not None else np.zeros_like(masks["lesion"])
        names.append(case.name)
        for k in np.flatnonzero(masks["lesion"].any(axis=(1, 2))):
            conds.append(slice_conditions(case, int(k), conditions_kept, context_slices, absolute_adc))
            targets.append(np.clip(case.targets[:, k], -1, 1))
            lesions.append(masks["lesion"][k])
            glands.append(gland[k])
            case_index.append(len(names) - 1)
    if not conds:
        return None
    return LesionSlices(torch.from_numpy(np.stack(conds).astype(np.float32)),
                        torch.from_numpy(np.stack(targets).astype(np.float32)),
                        np.stack(lesions), np.stack(glands), np.asarray(case_index), names)


def region_correlations(predicted_enhancement: np.ndarray, acquired_enhancement: np.ndarray,
                        slices: LesionSlices) -> Dict[str, Optional[float]]:
    """Mean over cases and targets of the per-case Pearson r inside the lesions (``lesion_r``) and the gland
    (``gland_r``) of ``slices``; each None when no case gives a defined r. Arrays are (N, T, H, W)."""
    scores = {}
    for region, masks in (("lesion_r", slices.lesion), ("gland_r", slices.gland)):
        values = []
        for ci in range(len(slices.names)):
            rows = slices.case == ci
            mask = masks[rows]
            if not mask.any():
                continue
            for t in range(predicted_enhancement.shape[1]):
                r, _ = pearson(predicted_enhancement[rows, t], acquired_enhancement[rows, t], mask)
                if r is not None:
                    values.append(r)
        scores[region] = float(np.mean(values)) if values else None
    return scores


@torch.no_grad()
def score_regression_network(predict: Callable[[torch.Tensor], torch.Tensor], slices: LesionSlices,
                             zero: Callable[[torch.Tensor], torch.Tensor],
                             batch: int = 8) -> Dict[str, Optional[float]]:
    """:func:`region_correlations` of a regression network on ``slices``.

    ``predict(cond)`` returns y0 (B, T, H, W) on the targets' scale; ``zero(cond)`` the T1-pre on that scale (no
    enhancement), subtracted from the prediction and from the target alike.
    """
    predicted, acquired = [], []
    for start in range(0, len(slices.cond), batch):
        cond = slices.cond[start:start + batch]
        base = zero(cond).float()
        predicted.append((predict(cond).float().clamp(-1, 1) - base).cpu().numpy())
        acquired.append((slices.target[start:start + batch].to(base.device) - base).cpu().numpy())
    return region_correlations(np.concatenate(predicted), np.concatenate(acquired), slices)

