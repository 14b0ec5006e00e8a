"""The JSON model card written next to trained weights (format: ``DCEDiffLib.diffusion.model_files``)."""

from __future__ import annotations

from typing import List, Optional, Sequence

from DCEDiffLib import __version__
from DCEDiffLib.modalities import DESCRIPTIONS, TARGET_MODALITIES
from DCEDiffLib.target_scale import RANGE_FACTOR


def make_model_card(network_config: dict, objective: str, conditions: Sequence[str], preset: str,
                    training: dict, metrics: Optional[dict] = None, parameterization: str = "image",
                    residual: Optional[dict] = None, optional_inputs: Sequence[str] = (),
                    context_slices: int = 0, absolute_adc: bool = False) -> dict:
    """Everything a user (and the loader) needs to know about a model, except the weights' hash.

    ``save_model`` adds ``weights_sha256``. ``residual`` ({"mean_network": ..., "residual_scale": s}) describes the
    frozen mean network of a residual-diffusion model (objective "residual"). ``optional_inputs``: the inputs the
    model was trained to do without (modality dropout, see :func:`optional_inputs_of_training`); written only when
    not empty. ``context_slices`` (regression only): the network also reads the conditions of ±n neighbouring
    slices (``diffusion.slice_context``); written only when > 0. ``absolute_adc`` (regression only): it also reads
    the ADC in absolute units (``diffusion.absolute_adc``); written only when true.
    """
    from DCEDiffLib.diffusion.model_files import FORMAT_NAME, FORMAT_VERSION
    from DCEDiffLib.diffusion.schedules import INFERENCE_SCHEDULE, TRAIN_SCHEDULE

    conditions = list(conditions)
    if objective == "residual":
        outputs = [f"predicted noise of the residual ({t} − mean) / residual_scale" for t in TARGET_MODALITIES]
        inputs = ([f"{m}: {DESCRIPTIONS[m]} (condition)" for m in conditions]
                  + [f"mean {t} of the mean network (condition)" for t in TARGET_MODALITIES]
                  + [f"noisy residual of {t}" for t in TARGET_MODALITIES])
    else:
        outputs = [f"predicted noise of {t}" if objective == "diffusion" else f"predicted {t}"
                   for t in TARGET_MODALITIES]
        inputs = [f"{m}: {DESCRIPTIONS[m]} (condition)" for m in conditions]
        if context_slices:
            from DCEDiffLib.diffusion.slice_context import context_offsets

            inputs += [f"{m} of the slice {offset:+d} (condition, 2.5D context)"
                       for offset in context_offsets(context_slices)[1:] for m in conditions]
        if absolute_adc:
            inputs.append("adc in absolute units: ADC / 1000 (10^-6 mm^2/s) - 1, clipped to [-1, 2] (condition)")
        inputs += [f"noisy {t}: {DESCRIPTIONS[t]}" for t in TARGET_MODALITIES]
    card = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": {"name": "palette-guided-unet", "preset": preset, "config": dict(network_config)},
        "objective": objective,
        "schedules": {"train": dict(TRAIN_SCHEDULE), "inference": dict(INFERENCE_SCHEDULE)},
        "conditions": conditions,
        "targets": list(TARGET_MODALITIES),
        "channel_meaning": {"input": inputs, "output": outputs},
        "normalization": {
            "method": "percentile", "low_percentile": 0.5, "high_percentile": 99.5, "range": [-1, 1],
            "targets": f"relative to T1-pre: its [p0.5, p99.5] maps to [-1, -1 + 2/{RANGE_FACTOR:g}]",
            "target_range_factor": RANGE_FACTOR,
        },
        "working_grid": {"size": [160, 160, 16], "spacing": [1.5, 1.5, 3.0]},
        "training": training,
        "metrics": metrics or {},
        "created_by": f"dcediff {__version__}",
    }
    if objective == "regression" and parameterization != "image":
        card["parameterization"] = parameterization  # output + zero enhancement = y0 (see diffusion.residual)
    if objective == "regression" and context_slices:
        card["context_slices"] = int(context_slices)
    if objective == "regression" and absolute_adc:
        card["absolute_adc"] = True
    if residual is not None:
        card.update(residual)
    if optional_inputs:
        card["optional_inputs"] = [m for m in conditions if m in set(optional_inputs)]
    return card


def _recipe_drop(training: object, modality: str) -> float:
    recipe = training.get("recipe") if isinstance(training, dict) else None
    augment = recipe.get("augment") if isinstance(recipe, dict) else None
    value = augment.get(f"drop_{modality}", 0.0) if isinstance(augment, dict) else 0.0
    return float(value) if isinstance(value, (int, float)) else 0.0


def optional_inputs_of_training(augment: dict, conditions: Sequence[str],
                                mean_card: Optional[dict] = None) -> List[str]:
    """The inputs a model trained with ``augment`` can do without: each optional input (``modalities.OPTIONAL_INPUTS``)
    among ``conditions`` whose ``augment.drop_<input>`` is > 0 (the channel was set to ``MISSING_INPUT_VALUE`` in
    training). A residual model (``mean_card``: the card of the frozen mean network it wraps) needs it of both
    networks: the mean network's card lists it in ``optional_inputs`` or, for a card written before that field
    existed, its training recipe has ``augment.drop_<input>`` > 0."""
    from DCEDiffLib.modalities import OPTIONAL_INPUTS

    out = []
    for modality in OPTIONAL_INPUTS:
        if modality not in conditions or not float((augment or {}).get(f"drop_{modality}", 0.0) or 0.0) > 0:
            continue
        if mean_card is not None and modality not in (mean_card.get("optional_inputs") or ()) \
                and not _recipe_drop(mean_card.get("training"), modality) > 0:
            continue
        out.append(modality)
    return out
