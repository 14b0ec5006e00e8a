"""The loss of each objective (diffusion, regression, residual around the frozen mean) and what it trains towards:
the residual's scale, the regression's parameterization, targets over the clipped T1-pre, lesion masks for the
lesion terms.

A mixin of ``Trainer`` (trainer.py): its methods read the trainer's own attributes (``config``, ``ctx``,
``network`` ...).
"""

from __future__ import annotations

from typing import Optional

import torch

from DCEDiffLib.modalities import TARGET_MODALITIES
from DCEDiffLib.training.batches import fixed_slices


class TrainingLoss:
    """The objective's loss and its terms (mixin of ``Trainer``)."""

    @torch.no_grad()
    def _mean_of(self, cond: torch.Tensor) -> torch.Tensor:
        from DCEDiffLib.diffusion.residual import predict_mean

        card = self.mean_model.card
        return predict_mean(self.mean_model.network, cond, card.get("parameterization", "image"),
                            card["conditions"], card["normalization"]["target_range_factor"]).clamp(-1, 1)

    def _measure_residual_scale(self) -> float:
        """Std of (target − μ) over fixed training slices: the residual is divided by it to be of unit scale. The
        targets are the ones the loss diffuses (over the clipped T1-pre where the run keeps to it; until session 54
        the scale was measured on unclipped targets, so such a run's residual was not of unit scale)."""
        cond, target = fixed_slices(self.data["train"], 64, self.conditions, seed=99,
                                    context_slices=self.context_slices, absolute_adc=self.absolute_adc,
                                    t1pre_clip_range_factor=self._t1pre_clip_factor())
        residuals = []
        for start in range(0, len(cond), 8):
            c = cond[start:start + 8].to(self.ctx.device)
            residuals.append((target[start:start + 8].to(self.ctx.device) - self._mean_of(c)).float().cpu())
        return round(float(torch.cat(residuals).std()), 5)

    def _needs_lesion_masks(self) -> bool:
        """Whether the batches carry lesion masks: the lesion-contrast and lesion-correlation terms read them."""
        return bool(self.config["lesion_contrast_weight"] or self.config["lesion_correlation_weight"])

    def _parameterization_terms(self, cond: torch.Tensor):
        """(base, gain) of this regression's parameterization: y0 = base + gain × output (None: 0 and 1)."""
        from DCEDiffLib.diffusion.residual import parameterization_terms
        from DCEDiffLib.target_scale import RANGE_FACTOR

        return parameterization_terms(cond, self.config["parameterization"], self.conditions, RANGE_FACTOR,
                                      len(TARGET_MODALITIES))

    def _loss(self, network, cond: torch.Tensor, target: torch.Tensor, generator: torch.Generator,
              weights: Optional[torch.Tensor] = None, contrast_masks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The training loss of this objective; ``contrast_masks`` (training only) add the lesion-contrast term."""
        from DCEDiffLib.diffusion.objectives import diffusion_loss, regression_loss

        with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if self.config["objective"] == "regression":
                base, gain = self._parameterization_terms(cond)
                return regression_loss(network, cond, target, base, weights, contrast_masks,
                                       self.config["lesion_contrast_weight"], gain, self.config["regression_norm"],
                                       self.config["lesion_correlation_weight"],
                                       self.config["lesion_correlation_region"])
            if self.config["objective"] == "residual":
                mean = self._mean_of(cond).to(cond.dtype)
                residual = (target - mean) / self.residual_scale
                return diffusion_loss(network, torch.cat([cond[:, :len(self.conditions)], mean], 1), residual,
                                      generator=generator, weights=weights)
            return diffusion_loss(network, cond, target, generator=generator, weights=weights)

    def _t1pre_clip_consistent(self) -> bool:
        """Whether the targets lie over the clipped T1-pre: the config's ``t1pre_clip_consistent``, or a residual
        run's mean network trained so (the residual must not learn back the excess its mean left out)."""
        from DCEDiffLib.intensity_tail import adds_excess_back

        return bool(self.config["t1pre_clip_consistent"]) or (self.mean_model is not None
                                                             and adds_excess_back(self.mean_model.card))

    def _t1pre_clip_factor(self):
        """The targets' range factor when the targets lie over the clipped T1-pre, else None."""
        from DCEDiffLib.target_scale import RANGE_FACTOR

        return RANGE_FACTOR if self._t1pre_clip_consistent() else None
