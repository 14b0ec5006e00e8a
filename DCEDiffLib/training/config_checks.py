"""Up-front checks of a training configuration, before any case is loaded or any run folder is made.

``make_config`` (config.py) refuses unknown keys; this checks the values: the network preset and its overrides
(the network is built on PyTorch's meta device, so a setting that cannot build fails here, in milliseconds, and not
after preprocessing), numbers and their ranges. Every problem is an :class:`InputError` naming the key and what
was expected, so ``dcediff train`` ends with one error line and exit code 2.
"""

from __future__ import annotations

import math
import numbers
from DCEDiffLib.errors import InputError
from DCEDiffLib.model_registry import resolve_model

# key → (minimum, maximum or None, integer?)
NUMBERS = {
    "iterations": (1, None, True), "batch_size": (1, None, True), "crop_size": (16, 160, True),
    "warmup_steps": (0, None, True), "checkpoint_every": (1, None, True), "validate_every": (1, None, True),
    "validation_slices": (1, None, True), "sample_image_every": (0, None, True), "sample_steps": (1, None, True),
    "log_every": (1, None, True), "threads": (0, None, True), "loader_workers": (0, None, True),
    "seed": (0, None, True), "split_seed": (0, None, True),
    "lr": (0, None, False), "weight_decay": (0, None, False), "grad_clip": (0, None, False),
    "ema_decay": (0, 1, False),
}
PRECISIONS = ("auto", "bf16", "fp32")


def _number(config: dict, key: str) -> None:
    low, high, integer = NUMBERS[key]
    value = config[key]
    kind = "an integer" if integer else "a number"
    # NaN passes every comparison below: an ema_decay of NaN exported a model of NaN weights with exit code 0
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok:
        raise InputError(f"training config: {key} {value!r}; expected {kind}")
    if value < low or (high is not None and value > high) or (key in ("lr", "ema_decay") and value == low):
        bounds = f"{low}..{high}" if high is not None else f"≥ {low}"
        if key == "lr":
            bounds = "> 0"
        elif key == "ema_decay":
            bounds = "in (0, 1]"
        raise InputError(f"training config: {key} {value!r}; expected {kind} {bounds}")


def check_network(config: dict) -> dict:
    """The network configuration ``config['model']`` describes (preset + overrides), built on the meta device."""
    import torch

    from DCEDiffLib.diffusion.presets import PRESETS, build_network, network_config

    model = config["model"]
    if not isinstance(model, dict):
        raise InputError(f"training config: model {model!r}; expected an object such as {{\"preset\": \"cpu\"}}")
    preset = model.get("preset", "paper")
    if preset not in PRESETS:
        raise InputError(f"training config: model.preset {preset!r}; expected one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in model.items() if k != "preset"}
    fixed = sorted({"in_channels", "out_channels"} & set(overrides))
    if fixed:
        raise InputError(f"training config: model.{fixed[0]} is set by the conditions and targets; remove it")
    try:
        network = network_config(preset, **overrides)
    except ValueError as exc:
        raise InputError(f"training config: model: {exc}") from None
    try:
        with torch.device("meta"):
            build_network(network)
    except Exception as exc:  # noqa: BLE001 - any failure to build is a bad setting
        raise InputError(f"training config: model {model}: the network cannot be built ({exc})") from None
    return network


def check_training_config(config: dict) -> None:
    """Raise :class:`InputError` for the first bad value of a merged config (``make_config``'s result)."""
    check_network(config)
    for key in NUMBERS:
        _number(config, key)
    if config["mixed_precision"] not in PRECISIONS:
        raise InputError(f"training config: mixed_precision {config['mixed_precision']!r}; expected one of "
                         f"{', '.join(PRECISIONS)}")
    betas = config["adam_betas"]
    if (not isinstance(betas, (list, tuple)) or len(betas) != 2
            or not all(isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas)):
        raise InputError(f"training config: adam_betas {betas!r}; expected two numbers in [0, 1)")
    split = config["split"]
    if (not isinstance(split, (list, tuple)) or len(split) != 3
            or not all(isinstance(f, numbers.Real) and f >= 0 for f in split)
            or abs(sum(split) - 1.0) > 1e-6 or split[0] <= 0 or split[1] <= 0):
        raise InputError(f"training config: split {split!r}; expected three fractions (train, validation, test) "
                         "≥ 0 summing to 1, with training and validation above 0")
    if config["objective"] == "residual" and not resolve_model(str(config["mean_model"])).is_file():
        raise InputError(f"training config: mean_model {config['mean_model']!r} does not exist; expected a trained "
                         "regression model (.safetensors with its .json card)")
    if config["init_weights"] and not resolve_model(str(config["init_weights"])).is_file():
        raise InputError(f"training config: init_weights {config['init_weights']!r} does not exist; expected a "
                         "trained model of the same objective (.safetensors with its .json card)")
