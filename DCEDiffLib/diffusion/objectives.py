"""Training objectives: the paper's Algorithm 1 and the deterministic regression baseline."""

from __future__ import annotations

from typing import Optional

import torch

from DCEDiffLib.diffusion.schedules import TRAIN_SCHEDULE, gammas

_TRAIN_GAMMAS = torch.from_numpy(gammas(TRAIN_SCHEDULE))  # float64, γ_1..γ_T
REGRESSION_GAMMA = 1.0  # the regression network is told "no noise" and gets zeros in the target channels


def sample_training_gammas(batch: int, generator: Optional[torch.Generator] = None,
                           device="cpu") -> torch.Tensor:
    """γ drawn uniformly between γ(t−1) and γ(t) of the training schedule, t uniform (Palette/SR3)."""
    steps = len(_TRAIN_GAMMAS)
    t = torch.randint(1, steps, (batch,), generator=generator, device=device)
    u = torch.rand(batch, generator=generator, device=device, dtype=torch.float64)
    table = _TRAIN_GAMMAS.to(device)
    low, high = table[t - 1], table[t]
    return (high - low) * u + low


def _weighted_mean(values: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of ``values`` (B, C, H, W), weighted per pixel by ``weights`` (B, H, W) when given."""
    if weights is None:
        return values.mean()
    w = weights[:, None].to(values.dtype).expand_as(values)
    return (values * w).sum() / w.sum()


def diffusion_loss(network, cond: torch.Tensor, target: torch.Tensor,
                   generator: Optional[torch.Generator] = None,
                   weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Algorithm 1: ỹ = √γ·y0 + √(1−γ)·ε with ε shaped like the *target*; MSE between ε and the prediction
    (weighted per pixel by ``weights`` (B, H, W) when given)."""
    gamma = sample_training_gammas(target.shape[0], generator, target.device)
    noise = torch.randn(target.shape, generator=generator, device=target.device, dtype=target.dtype)
    g = gamma.to(target.dtype)[:, None, None, None]
    noisy = g.sqrt() * target + (1 - g).sqrt() * noise
    predicted = network(torch.cat([cond, noisy], dim=1), gamma.float())
    return _weighted_mean((predicted.float() - noise.float()) ** 2, weights)


def predict_regression(network, cond: torch.Tensor) -> torch.Tensor:
    """One forward pass of a regression model: inputs [cond, zeros], γ = 1; returns y0 (B, 2, H, W)."""
    out_channels = getattr(network, "out_channels", 2)
    zeros = torch.zeros((cond.shape[0], out_channels) + tuple(cond.shape[2:]), device=cond.device, dtype=cond.dtype)
    gamma = torch.full((cond.shape[0],), REGRESSION_GAMMA, device=cond.device)
    return network(torch.cat([cond, zeros], dim=1), gamma)


REGRESSION_NORMS = ("l1", "l2")
# Where the lesion-correlation term takes its r: inside the lesion (its inner pattern only), or over the lesion and
# the ring of gland around it (the pattern and the lesion's level against its surroundings: the CNR's sign)
CORRELATION_REGIONS = ("lesion", "lesion_and_ring")


def regression_loss(network, cond: torch.Tensor, target: torch.Tensor, base: Optional[torch.Tensor] = None,
                    weights: Optional[torch.Tensor] = None, contrast_masks: Optional[torch.Tensor] = None,
                    contrast_weight: float = 0.0, gain: Optional[torch.Tensor] = None, norm: str = "l1",
                    correlation_weight: float = 0.0, correlation_region: str = "lesion") -> torch.Tensor:
    """The deterministic baseline: the same network trained with L1 (``norm`` "l1", the default: its optimum is the
    conditional median) or the squared error ("l2": the conditional mean) on y0 in one step. y0 = base + gain × the
    network's output (the enhancement and relative parameterizations; None: 0 and 1); ``weights`` (B, H, W) weight
    the pixels. With
    ``contrast_masks`` (B, 2, H, W: lesion, ring) and ``contrast_weight`` > 0, plus that weight times
    :func:`lesion_contrast_loss`; with ``correlation_weight`` > 0, plus that weight times
    :func:`lesion_correlation_loss` of the enhancement (y0 − base) inside the lesion mask, or inside the lesion and
    its ring (``correlation_region`` "lesion_and_ring")."""
    if norm not in REGRESSION_NORMS:
        raise ValueError(f"regression norm {norm!r}; expected one of {REGRESSION_NORMS}")
    if correlation_region not in CORRELATION_REGIONS:
        raise ValueError(f"correlation region {correlation_region!r}; expected one of {CORRELATION_REGIONS}")
    predicted = predict_regression(network, cond).float()
    if gain is not None:
        predicted = predicted * gain.float()
    if base is not None:
        predicted = predicted + base.float()
    error = predicted - target.float()
    loss = _weighted_mean(error.abs() if norm == "l1" else error ** 2, weights)
    if contrast_masks is not None and contrast_weight > 0:
        loss = loss + contrast_weight * lesion_contrast_loss(predicted, target.float(), contrast_masks)
    if contrast_masks is not None and correlation_weight > 0:
        zero = base.float() if base is not None else 0.0
        region = contrast_masks[:, :1] if correlation_region == "lesion" else contrast_masks.amax(1, keepdim=True)
        # min_voxels counts the lesion's own pixels in both regions, so the same crops count
        loss = loss + correlation_weight * lesion_correlation_loss(predicted - zero, target.float() - zero,
                                                                   region, counted=contrast_masks[:, :1])
    return loss


def lesion_contrast(image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per crop and channel, mean inside the lesion minus mean in the ring of gland around it: (B, C) from an
    image (B, C, H, W) and masks (B, 2, H, W) (lesion, ring); 0 where a crop lacks either."""
    lesion, ring = masks[:, :1].to(image.dtype), masks[:, 1:2].to(image.dtype)
    inside = (image * lesion).sum((2, 3)) / lesion.sum((2, 3)).clamp(min=1)
    around = (image * ring).sum((2, 3)) / ring.sum((2, 3)).clamp(min=1)
    return inside - around


def lesion_contrast_loss(predicted: torch.Tensor, target: torch.Tensor, masks: torch.Tensor,
                         min_voxels: int = 4) -> torch.Tensor:
    """L1 between the predicted and the acquired lesion contrast (:func:`lesion_contrast`), averaged over the crops
    with at least ``min_voxels`` lesion and ring pixels; 0 (with a gradient path) when no crop has them.

    Why: a per-voxel loss lets a lesion of ~100 voxels fade to the gland's level at little cost (the fifth and
    sixth steps of docs/model_quality.md); this term prices the lesion's level against its surroundings directly.
    """
    counts = masks.sum((2, 3))  # (B, 2)
    valid = ((counts[:, 0] >= min_voxels) & (counts[:, 1] >= min_voxels)).to(predicted.dtype)[:, None]
    error = (lesion_contrast(predicted, masks) - lesion_contrast(target, masks)).abs() * valid
    return error.sum() / (valid.sum() * predicted.shape[1]).clamp(min=1)


def masked_correlation(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pearson r between ``predicted`` and ``target`` (B, C, H, W) over the pixels of ``mask`` (B, 1, H, W), per
    crop and channel: (B, C); 0 where the mask is empty or either side is constant there."""
    m = mask.to(predicted.dtype)
    count = m.sum((2, 3)).clamp(min=1)
    p = predicted - (predicted * m).sum((2, 3), keepdim=True) / count[..., None, None]
    t = target - (target * m).sum((2, 3), keepdim=True) / count[..., None, None]
    covariance = (p * t * m).sum((2, 3))
    # The epsilon keeps the gradient finite on a flat prediction (a network that draws no lesion yet)
    spread = ((p * p * m).sum((2, 3)) * (t * t * m).sum((2, 3)) + 1e-12).sqrt()
    return covariance / spread


def lesion_correlation_loss(predicted: torch.Tensor, target: torch.Tensor, lesion: torch.Tensor,
                            min_voxels: int = 16, counted: Optional[torch.Tensor] = None) -> torch.Tensor:
    """1 − Pearson r (:func:`masked_correlation`) between the predicted and the acquired enhancement inside the
    mask ``lesion`` (B, 1, H, W), averaged over the crops with at least ``min_voxels`` pixels in ``counted`` (default:
    that mask) and both channels; 0 (with a gradient path) when no crop has them. 0 for a prediction that follows the
    acquired pattern up to scale and offset, 2 for its negative.

    Why: the per-voxel L1 prices a lesion's level; the lesion r of issue 12 measures its pattern, which L1 lets a
    network flatten where it is unsure. This term is blind to level and scale, so it adds what L1 does not.
    """
    counted = lesion if counted is None else counted
    valid = (counted.sum((2, 3))[:, 0] >= min_voxels).to(predicted.dtype)[:, None]  # (B, 1)
    error = (1 - masked_correlation(predicted, target, lesion)) * valid
    return error.sum() / (valid.sum() * predicted.shape[1]).clamp(min=1)
