"""Validation of the EMA weights: the loss on fixed validation slices with fixed noise, and the lesion r on the
validation lesion slices (lesion_validation.py). ``Trainer.run`` keeps the best of each (``best.*``,
``best_lesion.*``).

A mixin of ``Trainer`` (trainer.py): its methods read the trainer's own attributes (``config``, ``ctx``,
``network`` ...).
"""

from __future__ import annotations

import torch

from DCEDiffLib.modalities import TARGET_MODALITIES


class EMAValidation:
    """The EMA weights scored on the validation slices (mixin of ``Trainer``)."""

    def _ema_network(self) -> torch.nn.Module:
        """A copy of the network holding the EMA weights, in eval mode, on the run's device."""
        from DCEDiffLib.diffusion.presets import build_network

        model = build_network(self.network_config).to(self.ctx.device)
        self.ema.copy_to(model)
        return model.eval()

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Loss of the EMA weights on fixed validation slices with fixed noise (comparable across steps)."""
        model = self._ema_network()
        generator = torch.Generator(device=self.ctx.device).manual_seed(4321)
        losses = []
        for start in range(0, len(self.val_cond), 8):
            cond = self.val_cond[start:start + 8].to(self.ctx.device)
            target = self.val_target[start:start + 8].to(self.ctx.device)
            losses.append(float(self._loss(model, cond, target, generator)) * len(cond))
        return sum(losses) / len(self.val_cond)

    @torch.no_grad()
    def lesion_validation(self) -> dict:
        """``{"lesion_r", "gland_r"}`` of the EMA weights on the validation lesion slices (lesion_validation.py)."""
        from DCEDiffLib.diffusion.objectives import predict_regression
        from DCEDiffLib.diffusion.residual import apply_parameterization, zero_enhancement
        from DCEDiffLib.target_scale import RANGE_FACTOR
        from DCEDiffLib.training.lesion_validation import score_regression_network

        model = self._ema_network()
        device = self.ctx.device

        def predict(cond: torch.Tensor) -> torch.Tensor:
            cond = cond.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = predict_regression(model, cond).float()
            return apply_parameterization(out, cond, self.config["parameterization"], self.conditions, RANGE_FACTOR)

        def zero(cond: torch.Tensor) -> torch.Tensor:
            return zero_enhancement(cond.to(device), self.conditions, RANGE_FACTOR, len(TARGET_MODALITIES))

        return score_regression_network(predict, self.lesion_slices, zero)
