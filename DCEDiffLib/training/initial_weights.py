"""The trained models a run starts from: the frozen mean network of a residual run (``mean_model``) and the weights
a fine-tune starts from (``init_weights``; possibly deepened, widened to context slices or given the absolute-ADC
channel, diffusion/network_growth.py).

A mixin of ``Trainer`` (trainer.py): its methods read the trainer's own attributes (``config``, ``ctx``,
``network`` ...).
"""

from __future__ import annotations

import json

import torch

from DCEDiffLib.diffusion.absolute_adc import reads_absolute_adc
from DCEDiffLib.diffusion.model_files import mean_context_slices
from DCEDiffLib.errors import InputError


class InitialWeights:
    """Loading the mean model and ``init_weights`` (mixin of ``Trainer``)."""

    def _load_mean_model(self, path: str):
        """The frozen regression model a residual run diffuses around (same conditions required)."""
        from DCEDiffLib.diffusion.model_files import load_model

        mean_model = load_model(path, device=str(self.ctx.device))
        if mean_model.card["objective"] != "regression":
            raise InputError(f"mean_model {path}: objective {mean_model.card['objective']!r}; a residual run needs "
                             "a regression model (dcediff train with objective 'regression')")
        if mean_model.card["conditions"] != self.conditions:
            raise InputError(f"mean_model {path}: conditions {mean_model.card['conditions']}; this run uses "
                             f"{self.conditions}")
        for parameter in mean_model.network.parameters():
            parameter.requires_grad_(False)
        return mean_model

    @torch.no_grad()
    def _load_initial_weights(self, path: str) -> None:
        """Start from a trained model's weights (``init_weights``): the same objective, conditions and network
        config are required, so a fine-tuning run cannot silently start from a different network. For a residual
        model file the residual network's weights are taken (its mean comes from ``mean_model``)."""
        from DCEDiffLib.diffusion.model_files import load_model
        from DCEDiffLib.diffusion.network_growth import deepen_res_blocks, insert_zero_input_channels, is_deepened

        model = load_model(path, device="cpu")
        card = model.card
        if card["objective"] != self.config["objective"]:
            raise InputError(f"init_weights {path}: objective {card['objective']!r}; this run trains "
                             f"{self.config['objective']!r}")
        if card["conditions"] != self.conditions:
            raise InputError(f"init_weights {path}: conditions {card['conditions']}; this run uses {self.conditions}")
        source_context = mean_context_slices(card) if card["objective"] == "regression" else 0
        widen = card["objective"] == "regression" and source_context == 0 and self.context_slices > 0
        # a mean network without the absolute-ADC channel may start one with it (never the other way round)
        source_absolute = reads_absolute_adc(card)  # False for any card but a regression one
        add_absolute = card["objective"] == "regression" and self.absolute_adc and not source_absolute
        if source_absolute and not self.absolute_adc:
            raise InputError(f"init_weights {path}: it reads the ADC in absolute units, this run does not; expected "
                             "absolute_adc true in the training config")
        if widen and add_absolute:
            raise InputError(f"init_weights {path}: widening to context slices and adding the absolute-ADC channel "
                             "in one run is not supported; expected one change at a time")
        own_config = dict(self.network_config)
        if widen or add_absolute:  # a narrower mean network starts this run: compare all but the input width
            own_config["in_channels"] = card["architecture"]["config"].get("in_channels")
        elif card["objective"] == "regression" and source_context != self.context_slices:
            raise InputError(f"init_weights {path}: it reads {source_context} context slices, this run "
                             f"{self.context_slices}; expected the same, or a 2D network (0) to widen")
        deepen = False
        if json.loads(json.dumps(card["architecture"]["config"])) != json.loads(json.dumps(own_config)):
            reason = "a network widened by input channels is not also deepened" if widen or add_absolute else ""
            try:  # a 1-block-per-level network may start a deeper one (network_growth.py); nothing else may differ
                deepen = not (widen or add_absolute) and is_deepened(card["architecture"]["config"], own_config)
            except ValueError as exc:
                reason = str(exc)
            if not deepen:
                raise InputError(f"init_weights {path}: its network config differs from this run's (preset "
                                 f"{self.config['model'].get('preset', 'paper')!r} and overrides: {reason}); expected "
                                 "the same, or the same with more residual blocks per level than its 1")
        source = model.network.residual_network if card["objective"] == "residual" else model.network
        if deepen:
            deepen_res_blocks(source, self.network)
            self._say(f"init_weights {path}: deepened from 1 to {own_config['res_blocks']} residual blocks per level "
                      "(the added blocks start as identities: the same function)")
        elif widen:
            from DCEDiffLib.diffusion.slice_context import widen_first_convolution

            widen_first_convolution(source, self.network, len(self.conditions), self.context_slices)
            self._say(f"init_weights {path}: a 2D network widened to {self.context_slices} context slices a side "
                      "(the neighbours' weights start at zero: the same function)")
        elif add_absolute:
            insert_zero_input_channels(source, self.network, len(self.conditions) * (2 * self.context_slices + 1))
            self._say(f"init_weights {path}: the absolute-ADC channel added (its weights start at zero: the same "
                      "function)")
        else:
            self.network.load_state_dict(source.state_dict())
        # A residual card's sampling settings (temperature, start) were chosen for the network being fine-tuned; a
        # card without them means temperature 1, which was −1.5 dB on validation once (docs/model_quality.md)
        if card["objective"] == "residual" and isinstance(card.get("sampling"), dict):
            sampling = dict(card["sampling"])
            sampling["chosen_on"] = (f"carried over from init_weights {path} (there: "
                                     f"{card['sampling'].get('chosen_on', 'no note')}); not re-tuned for this run")
            self.initial_sampling = sampling
