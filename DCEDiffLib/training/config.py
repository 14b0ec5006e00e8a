"""Training configuration: the paper's recipe as the default, JSON files for experiments.

A config file is JSON with any subset of the keys of ``PAPER_RECIPE`` (nested dicts merge); an unknown key is an
error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Optional

from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import INPUT_MODALITIES

OBJECTIVES = ("diffusion", "regression", "residual")

# DCE-diff (CVPRW 2024) recipe on top of Palette's defaults.
PAPER_RECIPE = {
    "model": {"preset": "paper"},          # network preset, plus any network-config overrides
    "objective": "diffusion",              # "diffusion" (paper), "regression" (deterministic L1) or "residual"
    # regression output: "image" (y0), "enhancement" (y0 − zero enhancement) or "relative" (the enhancement over
    # the T1-pre's own signal; diffusion.residual)
    "parameterization": "image",
    "mean_model": "",                      # objective "residual": the trained regression model it diffuses around
    "init_weights": "",                    # a trained model file whose network weights start this run (fine-tuning
                                           # without the run's checkpoint; same objective and network config)
    "region_weights": {},                  # extra loss weight per phantom label, e.g. {"lesion": 4}; "urine": the
                                           # bladder deeper than URINE_DEPTH_MM (batches.urine_mask)
    "augment": {},                         # intensity randomization (training/augmentation.py), e.g. {"gamma": 0.3}
    "lesion_slice_share": 0.0,             # share of batch items drawn from lesion slices, cropped around a lesion
    "lesion_contrast_weight": 0.0,         # regression only: weight of the L1 on lesion-minus-ring contrast per crop
    "lesion_correlation_weight": 0.0,      # regression only: weight of 1 − Pearson r of the enhancement inside
                                           # the lesion per crop (diffusion/objectives.py lesion_correlation_loss)
    "lesion_correlation_region": "lesion",  # where that r is taken: "lesion", or "lesion_and_ring" (the lesion and
                                           # the ring of gland around it, so the lesion's level against its
                                           # surroundings is part of the pattern)
    "lesion_ring_px": 3,                   # width of that ring of gland around the lesions, in-plane pixels
    "regression_norm": "l1",               # regression only: "l1" (conditional median) or "l2" (squared error:
                                           # the conditional mean)
    "aux_segmentation_weight": 0.0,        # regression only: weight of an auxiliary zone/lesion segmentation loss
                                           # on the network's last features (training/auxiliary_segmentation.py)
    "without": [],                         # condition modalities to drop, e.g. ["adc"] for the ADC ablation
    "context_slices": 0,                   # regression only: the conditions of ±n neighbouring slices as extra
                                           # inputs (2.5D, diffusion/slice_context.py); a residual run takes its
                                           # mean network's
    "absolute_adc": False,                 # regression only: the ADC in absolute units as one more input
                                           # channel (diffusion/absolute_adc.py); a residual run takes its mean's
    "t1pre_clip_consistent": False,        # targets relative to the T1-pre as the model sees it (clipped at the top
                                           # of its range); the card then has synthesis add the clipped excess back
                                           # (training/clipped_t1pre.py)
    "iterations": 260000,
    "batch_size": 4,
    "crop_size": 160,                      # random square crop of the 160x160 slices
    "lr": 1e-4,
    "warmup_steps": 10000,                 # linear learning-rate warm-up
    "lr_schedule": "constant",             # after the warm-up: "constant" (the paper) or "cosine" (to 0 at the end)
    "adam_betas": [0.9, 0.999],
    "weight_decay": 0.0,
    "grad_clip": 1.0,                      # max global gradient norm; 0 disables
    "ema_decay": 0.9999,                   # with warm-up min(decay, (1+n)/(10+n)) so short runs work
    "flip_left_right": True,               # the only augmentation that is anatomically sound
    "split": [0.8, 0.1, 0.1],              # train/validation/test fractions, by patient
    "split_seed": 0,
    "seed": 0,
    "checkpoint_every": 1000,
    "validate_every": 1000,
    "validation_slices": 32,               # fixed validation slices for the validation loss
    "lesion_validation": False,            # regression only: also score the lesion r of the predicted enhancement
                                           # on the validation lesion slices; export best_lesion (lesion_validation.py)
    "sample_image_every": 5000,            # PNG of a validation sample (0 disables)
    "sample_steps": 10,
    "log_every": 50,
    "tensorboard": False,
    "mixed_precision": "auto",             # "auto": bf16 autocast on CUDA, fp32 on CPU; or "bf16"/"fp32"
    "threads": 0,                          # CPU threads (0: torch default)
    "loader_workers": 0,                   # processes that build batches ahead (step_loader.py; 0: in the trainer)
}


def _merge(base: dict, override: dict, where: str) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key not in base:
            raise InputError(f"training config: unknown key '{where}{key}'; known keys: {', '.join(sorted(base))}")
        if isinstance(base[key], dict) and key not in ("model", "region_weights", "augment"):
            merged[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _regression_only(config: dict, key: str, why: str = "") -> None:
    """Refuse a key set away from its default (PAPER_RECIPE) unless the run trains a regression (mean) network."""
    value = config[key]
    if value != PAPER_RECIPE[key] and config["objective"] != "regression":
        raise InputError(f"training config: {key} {value!r} needs objective 'regression'{why}; this run's objective "
                         f"is {config['objective']!r}")


def make_config(overrides: Optional[dict] = None) -> dict:
    """The paper recipe with ``overrides`` applied and checked."""
    config = _merge(PAPER_RECIPE, overrides or {}, "")
    if not isinstance(config["without"], list):  # a bare "adc" was read letter by letter; 5 was a traceback
        raise InputError(f"training config: without {config['without']!r}; expected a list such as [\"adc\"]")
    bad = [m for m in config["without"] if m not in INPUT_MODALITIES]
    if bad:
        raise InputError(f"training config: cannot drop {bad}; expected a subset of {list(INPUT_MODALITIES)}")
    if config["objective"] not in OBJECTIVES:
        raise InputError(f"training config: objective {config['objective']!r}; expected one of {', '.join(OBJECTIVES)}")
    if config["parameterization"] not in ("image", "enhancement", "relative"):
        raise InputError(f"training config: parameterization {config['parameterization']!r}; expected 'image', "
                         "'enhancement' or 'relative'")
    if config["lr_schedule"] not in ("constant", "cosine"):
        raise InputError(f"training config: lr_schedule {config['lr_schedule']!r}; expected 'constant' or 'cosine'")
    if config["objective"] == "residual" and not config["mean_model"]:
        raise InputError("training config: objective 'residual' needs 'mean_model', the path of a trained "
                         "regression model (dcediff train with objective 'regression')")
    from DCEDiffLib.training.augmentation import check_augmentation

    try:
        check_augmentation(config["augment"] if isinstance(config["augment"], dict) else {"?": 0})
    except ValueError as exc:
        raise InputError(f"training config: {exc}") from None
    weights = config["region_weights"]
    if not isinstance(weights, dict) or any(not isinstance(v, (int, float)) or not 0 <= v < math.inf
                                            for v in weights.values()):  # NaN compares false: refused here too
        raise InputError(f"training config: region_weights {weights!r}; expected {{label name: extra weight ≥ 0}}")
    share = config["lesion_slice_share"]
    if not isinstance(share, (int, float)) or not 0 <= float(share) <= 0.9:
        raise InputError(f"training config: lesion_slice_share {share!r}; expected a number in [0, 0.9]")
    contrast = config["lesion_contrast_weight"]
    if not isinstance(contrast, (int, float)) or contrast < 0:
        raise InputError(f"training config: lesion_contrast_weight {contrast!r}; expected a number ≥ 0")
    _regression_only(config, "lesion_contrast_weight", " (the contrast of a sample is not trained)")
    correlation = config["lesion_correlation_weight"]
    if not isinstance(correlation, (int, float)) or isinstance(correlation, bool) or correlation < 0:
        raise InputError(f"training config: lesion_correlation_weight {correlation!r}; expected a number ≥ 0")
    _regression_only(config, "lesion_correlation_weight", " (the pattern of a sample is not trained)")
    from DCEDiffLib.diffusion.objectives import CORRELATION_REGIONS

    if config["lesion_correlation_region"] not in CORRELATION_REGIONS:
        raise InputError(f"training config: lesion_correlation_region {config['lesion_correlation_region']!r}; "
                         f"expected one of {list(CORRELATION_REGIONS)}")
    if not isinstance(config["lesion_validation"], bool):
        raise InputError(f"training config: lesion_validation {config['lesion_validation']!r}; expected true or false")
    _regression_only(config, "lesion_validation", " (a sample's lesion r is noise from step to step)")
    if config["lesion_validation"] and "t1pre" in config["without"]:
        raise InputError("training config: lesion_validation measures the enhancement over the T1-pre; it cannot "
                         "be used with 't1pre' in 'without'")
    from DCEDiffLib.diffusion.objectives import REGRESSION_NORMS

    if config["regression_norm"] not in REGRESSION_NORMS:
        raise InputError(f"training config: regression_norm {config['regression_norm']!r}; expected one of "
                         f"{list(REGRESSION_NORMS)}")
    _regression_only(config, "regression_norm")
    segmentation = config["aux_segmentation_weight"]
    if not isinstance(segmentation, (int, float)) or isinstance(segmentation, bool) or segmentation < 0:
        raise InputError(f"training config: aux_segmentation_weight {segmentation!r}; expected a number ≥ 0")
    _regression_only(config, "aux_segmentation_weight", " (the mean network)")
    if segmentation and (contrast or correlation):
        raise InputError("training config: aux_segmentation_weight together with lesion_contrast_weight or "
                         "lesion_correlation_weight; expected one of them (their batches differ)")
    from DCEDiffLib.diffusion.slice_context import check_context_slices

    try:
        check_context_slices(config["context_slices"])
    except ValueError as exc:
        raise InputError(f"training config: {exc}") from None
    _regression_only(config, "context_slices", " (the mean network of a residual model; the residual network takes "
                     "its mean's context)")
    if not isinstance(config["absolute_adc"], bool):
        raise InputError(f"training config: absolute_adc {config['absolute_adc']!r}; expected true or false")
    _regression_only(config, "absolute_adc", " (the mean network of a residual model; the residual network takes "
                     "its mean's)")
    if config["absolute_adc"] and "adc" in config["without"]:
        raise InputError("training config: absolute_adc with the ADC among 'without'; expected the ADC as a condition")
    if not isinstance(config["t1pre_clip_consistent"], bool):
        raise InputError(f"training config: t1pre_clip_consistent {config['t1pre_clip_consistent']!r}; expected true "
                         "or false")
    if config["t1pre_clip_consistent"] and "t1pre" in config["without"]:
        raise InputError("training config: t1pre_clip_consistent with the T1-pre among 'without'; expected the T1-pre "
                         "as a condition")
    ring = config["lesion_ring_px"]
    if not isinstance(ring, int) or isinstance(ring, bool) or not 1 <= ring <= 16:  # true is not 1 pixel
        raise InputError(f"training config: lesion_ring_px {ring!r}; expected an integer in 1..16")
    crop = config["crop_size"]  # a string or null was a traceback here; check_training_config wants an integer
    if not isinstance(crop, (int, float)) or isinstance(crop, bool) or not 16 <= crop <= 160:
        raise InputError(f"training config: crop_size {crop!r}; expected an integer in 16..160")
    return config


def load_config(path: Optional[Path]) -> dict:
    """Read a JSON config file (None → the paper recipe)."""
    if path is None:
        return make_config()
    path = Path(path)
    if path.is_dir():
        raise InputError(f"training config {path} is a folder; expected a JSON file such as configs/cpu_phantom.json")
    try:
        overrides = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"training config {path} does not exist") from None
    except ValueError as exc:
        raise InputError(f"training config {path} is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise InputError(f"training config {path}: expected a JSON object")
    return make_config(overrides)


def condition_modalities(config: dict) -> list:
    """The condition channels a model trained with ``config`` sees, in order."""
    return [m for m in INPUT_MODALITIES if m not in config["without"]]
