"""Residual diffusion over a regression mean (CorrDiff, Mardani et al. 2024) and the enhancement parameterization.

- *Enhancement parameterization* of a regression network: it predicts the change from zero enhancement (the T1-pre
  mapped to the targets' scale, see ``target_scale``), not the image, so an untrained network already returns
  "no enhancement" and all its capacity goes to where contrast arrives.
- *Relative-enhancement parameterization*: the network's output is scaled per pixel by the T1-pre's own signal,
  ``y0 = zero + (zero + 1 + floor) / (reference + floor) · output``, so it predicts something proportional to the
  relative enhancement (S_post − S_pre) / S_pre. Why: what contrast does to a tissue is relative to its
  pre-contrast signal, and that signal's place on the normalised scale changes from exam to exam (fat-suppressed or
  not, a bright coil hot spot, a real exam's heavy tail): on the validation phantoms the gland's T1-pre sits at
  0.13–0.62 of the targets' unit while its relative enhancement stays 0.8–1.3 (docs/model_quality.md, tenth step).
  A receive bias multiplies pre- and post-contrast signal alike, and so cancels from this output as well.
- *Residual diffusion*: a deterministic network predicts the conditional mean ``μ``; a diffusion network, given the
  conditions and ``μ``, generates the normalised residual ``r = (y − μ) / s``; the output is ``μ + s·r``. The mean
  carries the PSNR and the lesions; the residual carries the texture a mean blurs away and, over several samples,
  the uncertainty. A residual of small variance needs few sampler steps.

Both networks live in one :class:`ResidualDiffusionModel`, saved as one safetensors file (keys ``mean_network.*``
and ``residual_network.*``) with one model card.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from DCEDiffLib.diffusion.objectives import predict_regression

PARAMETERIZATIONS = ("image", "enhancement", "relative")
# The relative parameterization's constants (targets' units, where zero signal is 0 after "+ 1"): the floor keeps
# dark tissue able to enhance; the reference (a typical gland's T1-pre level) makes the scale 1 there, so a network
# trained under the enhancement parameterization is a sensible start for fine-tuning under this one.
RELATIVE_FLOOR = 0.05
RELATIVE_REFERENCE = 0.25


def zero_enhancement(cond: torch.Tensor, conditions: Sequence[str], range_factor: float,
                     targets: int = 2) -> torch.Tensor:
    """Both targets as if nothing enhanced: the T1-pre condition channel on the targets' scale ([-1, 1] of the
    T1-pre becomes [-1, -1 + 2/f], see ``target_scale``). ``cond`` (B, C, H, W) in the order of ``conditions``."""
    conditions = list(conditions)
    if "t1pre" not in conditions:
        raise ValueError(f"the enhancement parameterization needs the T1-pre condition; got {conditions}")
    index = conditions.index("t1pre")
    t1pre = cond[:, index:index + 1]
    return ((t1pre + 1.0) / float(range_factor) - 1.0).repeat(1, targets, 1, 1)


def parameterization_terms(cond: torch.Tensor, parameterization: str, conditions: Sequence[str],
                           range_factor: float, targets: int = 2):
    """``(base, gain)`` such that y0 = base + gain · network output (either may be None: 0 and 1).

    image: (None, None); enhancement: (zero enhancement, None); relative: (zero enhancement,
    (zero + 1 + RELATIVE_FLOOR) / (RELATIVE_REFERENCE + RELATIVE_FLOOR))."""
    if parameterization == "image":
        return None, None
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization {parameterization!r}; expected one of {PARAMETERIZATIONS}")
    base = zero_enhancement(cond, conditions, range_factor, targets)
    if parameterization == "enhancement":
        return base, None
    return base, (base + 1.0 + RELATIVE_FLOOR) / (RELATIVE_REFERENCE + RELATIVE_FLOOR)


def apply_parameterization(out: torch.Tensor, cond: torch.Tensor, parameterization: str, conditions: Sequence[str],
                           range_factor: float) -> torch.Tensor:
    """y0 from a regression network's raw output ``out`` (B, T, H, W) under ``parameterization``."""
    base, gain = parameterization_terms(cond, parameterization, conditions, range_factor, out.shape[1])
    if gain is not None:
        out = out * gain.to(out.dtype)
    if base is not None:
        out = out + base.to(out.dtype)
    return out


def predict_mean(network: nn.Module, cond: torch.Tensor, parameterization: str, conditions: Sequence[str],
                 range_factor: float) -> torch.Tensor:
    """y0 of a regression network: its output under ``parameterization`` (see :func:`parameterization_terms`)."""
    return apply_parameterization(predict_regression(network, cond), cond, parameterization, conditions,
                                  range_factor)


class ResidualDiffusionModel(nn.Module):
    """A regression mean network and a residual diffusion network, used together.

    ``forward(x, gamma)`` is the residual network's ε-prediction for x = [conditions, μ, noisy residual], so the
    samplers can drive it like any diffusion network; :meth:`mean` gives μ.
    """

    def __init__(self, mean_config: dict, residual_config: dict, conditions: Sequence[str],
                 range_factor: float, residual_scale: float, mean_parameterization: str = "enhancement"):
        from DCEDiffLib.diffusion.unet import DenoisingUNet

        super().__init__()
        # The residual network is registered first: forward() is its forward, and tools that look for the first
        # convolution to learn the input width (benchmark.throughput) must find its input, not the mean's.
        self.residual_network = DenoisingUNet(**residual_config)
        self.mean_network = DenoisingUNet(**mean_config)
        self.conditions = list(conditions)
        self.range_factor = float(range_factor)
        self.residual_scale = float(residual_scale)
        self.mean_parameterization = mean_parameterization
        self.out_channels = int(residual_config.get("out_channels", 2))
        self.temperature = 1.0  # scales the sampled residual; the card's sampling.residual_temperature sets it
        self.mean_flip_average = False  # the card's sampling.mean_flip_average sets it
        self.mean_context_slices = 0  # the card's mean_network.context_slices (2.5D mean, diffusion/slice_context)
        self.mean_absolute_adc = False  # the card's mean_network.absolute_adc (diffusion/absolute_adc.py)

    def mean(self, cond: torch.Tensor) -> torch.Tensor:
        """The regression mean μ (B, 2, H, W), clamped to the targets' range. ``cond``: the slices' conditions
        followed by their neighbours' when ``mean_context_slices`` > 0 (``slice_context.volume_with_context``)
        and by the absolute-ADC channel when ``mean_absolute_adc``; the residual network reads only the first C.

        With ``mean_flip_average`` it is the average of the network on the slice and on its left-right mirror image
        (mirrored back): the mean network was trained with left-right flips, so both are estimates of the same
        conditional mean, and their average keeps what they agree on and halves what they draw at random."""
        mu = predict_mean(self.mean_network, cond, self.mean_parameterization, self.conditions, self.range_factor)
        if self.mean_flip_average:
            # Left-right is the column (last) axis of a T2W-oriented working grid (training.batches flips it too).
            mirrored = predict_mean(self.mean_network, cond.flip(-1), self.mean_parameterization, self.conditions,
                                    self.range_factor).flip(-1)
            mu = 0.5 * (mu + mirrored)
        return mu.clamp(-1.0, 1.0)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        return self.residual_network(x, gamma)

    def combine(self, mean: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """μ + s·r, clamped to the targets' range."""
        return (mean + self.residual_scale * residual).clamp(-1.0, 1.0)
