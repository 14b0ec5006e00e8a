"""The exported model of a run: the EMA weights (with the frozen mean network for a residual run) and their card.

A mixin of ``Trainer`` (trainer.py): its methods read the trainer's own attributes (``config``, ``ctx``,
``network`` ...).
"""

from __future__ import annotations

from pathlib import Path


class ModelExport:
    """The model card and the safetensors export of the EMA weights (mixin of ``Trainer``)."""

    def model_card(self, metrics: dict) -> dict:
        """The JSON model card of the current weights."""
        from DCEDiffLib.training.model_card import make_model_card

        training = {
            "data": "see split.json in the run folder",
            "train_cases": len(self.data["train"]),
            "validation_cases": len(self.data["validation"]),
            "steps": self.step,
            # DDP: the processes of each segment of the run (resumed with another count: several) and the slices
            # one step averages over now
            "processes": list(self.process_counts),
            "global_batch_size": int(self.config["batch_size"]) * self.ctx.world_size,
            "recipe_changes": list(self.recipe_changes),  # resumed with --change-recipe: at which step, what
            "recipe": {k: self.config[k] for k in ("batch_size", "crop_size", "lr", "lr_schedule", "warmup_steps",
                                                   "ema_decay", "grad_clip", "flip_left_right", "objective", "without",
                                                   "parameterization", "region_weights", "augment",
                                                   "lesion_slice_share", "lesion_contrast_weight",
                                                   "lesion_correlation_weight", "lesion_correlation_region",
                                                   "lesion_ring_px", "context_slices", "aux_segmentation_weight",
                                                   "regression_norm", "absolute_adc", "t1pre_clip_consistent")},
        }
        residual = None
        if self.mean_model is not None:
            mean_card = self.mean_model.card
            residual = {"mean_network": {"preset": mean_card["architecture"].get("preset", ""),
                                         "config": mean_card["architecture"]["config"],
                                         "parameterization": mean_card.get("parameterization", "image"),
                                         "training": mean_card.get("training", {}),
                                         "metrics": mean_card.get("metrics", {})},
                        "residual_scale": self.residual_scale}
            if self.context_slices:
                residual["mean_network"]["context_slices"] = self.context_slices
            if self.absolute_adc:
                residual["mean_network"]["absolute_adc"] = True
        card = make_model_card(self.network_config, objective=self.config["objective"],
                               conditions=self.conditions, preset=self.config["model"].get("preset", "paper"),
                               training=training, metrics=metrics,
                               parameterization=self.config["parameterization"], residual=residual,
                               optional_inputs=self.optional_inputs(),
                               context_slices=self.context_slices if self.config["objective"] == "regression" else 0,
                               absolute_adc=self.absolute_adc and self.config["objective"] == "regression")
        if self.initial_sampling:
            card["sampling"] = dict(self.initial_sampling)
        if self._t1pre_clip_consistent():
            from DCEDiffLib.intensity_tail import CARD_FIELD

            card[CARD_FIELD] = True
        return card

    def optional_inputs(self) -> list:
        """The card's ``optional_inputs``: PD when this run drops it (``augment.drop_pd`` > 0) and, for a residual
        run, the frozen mean network was trained so too (else only a warning: the mean never saw a missing PD)."""
        from DCEDiffLib.training.model_card import optional_inputs_of_training

        augment = self.config.get("augment") or {}
        mean_card = self.mean_model.card if self.mean_model is not None else None
        optional = optional_inputs_of_training(augment, self.conditions, mean_card)
        if mean_card is not None:
            for modality in sorted(set(optional_inputs_of_training(augment, self.conditions)) - set(optional)):
                if not getattr(self, "_warned_optional", False):
                    self._say(f"warning: augment.drop_{modality} > 0, but the mean model was not trained without "
                              f"{modality} (its card has no optional_inputs); the exported model requires {modality}")
                    self._warned_optional = True
        return optional

    def export_model(self, stem: Path, metrics: dict) -> None:
        """Save the EMA weights as a model (safetensors + card)."""
        from DCEDiffLib.diffusion.model_files import save_model
        from DCEDiffLib.diffusion.presets import build_network

        model = build_network(self.network_config)
        self.ema.copy_to(model)
        if self.mean_model is not None:  # one file holds the frozen mean network and the residual network
            from DCEDiffLib.diffusion.residual import ResidualDiffusionModel

            card = self.model_card(metrics)
            combined = ResidualDiffusionModel(card["mean_network"]["config"], self.network_config, self.conditions,
                                              card["normalization"]["target_range_factor"], self.residual_scale,
                                              card["mean_network"]["parameterization"])
            combined.mean_network.load_state_dict(self.mean_model.network.state_dict())
            combined.mean_context_slices = self.context_slices
            combined.mean_absolute_adc = self.absolute_adc
            combined.residual_network.load_state_dict(model.state_dict())
            save_model(combined, card, stem.with_suffix(".safetensors"))
            return
        save_model(model, self.model_card(metrics), stem.with_suffix(".safetensors"))
