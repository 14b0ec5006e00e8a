"""The PNG of validation slices a run writes every ``sample_image_every`` steps (``samples/step_XXXXXXX.png``).

A mixin of ``Trainer`` (trainer.py): its methods read the trainer's own attributes (``config``, ``ctx``,
``network`` ...).
"""

from __future__ import annotations

from pathlib import Path

import torch


class SampleImage:
    """Synthetic validation slices beside the acquired ones (mixin of ``Trainer``)."""

    @torch.no_grad()
    def write_sample_image(self) -> Path:
        """PNG of validation slices: T2W, acquired early/late, EMA-model samples (DPM-Solver++, few steps)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from DCEDiffLib.diffusion.presets import build_network
        from DCEDiffLib.diffusion.samplers import sample
        from DCEDiffLib.diffusion.objectives import predict_regression

        model = build_network(self.network_config).to(self.ctx.device)
        self.ema.copy_to(model)
        model.eval()
        cond = self.val_cond[:2].to(self.ctx.device)
        if self.config["objective"] == "regression":
            from DCEDiffLib.diffusion.residual import apply_parameterization
            from DCEDiffLib.target_scale import RANGE_FACTOR

            synthetic = apply_parameterization(predict_regression(model, cond), cond, self.config["parameterization"],
                                               self.conditions, RANGE_FACTOR)
        elif self.config["objective"] == "residual":
            mean = self._mean_of(cond)
            own = cond[:, :len(self.conditions)]
            residual = sample(lambda y, g: model(torch.cat([own, mean, y], 1), g), (len(cond), 2) + cond.shape[2:],
                              sampler="dpmpp", steps=self.config["sample_steps"], seed=0, device=self.ctx.device)
            synthetic = (mean + self.residual_scale * residual).clamp(-1, 1)
        else:
            synthetic = sample(lambda y, g: model(torch.cat([cond, y], 1), g), (len(cond), 2) + cond.shape[2:],
                               sampler="dpmpp", steps=self.config["sample_steps"], seed=0,
                               device=self.ctx.device)
        fig, axes = plt.subplots(len(cond), 5, figsize=(12, 2.6 * len(cond)), squeeze=False)
        for row in range(len(cond)):
            panels = [(cond[row, 0], "T2W"), (self.val_target[row, 0], "acquired early"),
                      (synthetic[row, 0], "synthetic early"), (self.val_target[row, 1], "acquired late"),
                      (synthetic[row, 1], "synthetic late")]
            for ax, (image, title) in zip(axes[row], panels):
                ax.imshow(image.float().cpu().numpy(), cmap="gray", vmin=-1, vmax=1)
                ax.set_title(title, fontsize=9)
                ax.axis("off")
        fig.suptitle(f"step {self.step} — SYNTHETIC images are model output", fontsize=10)
        path = self.out_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path
