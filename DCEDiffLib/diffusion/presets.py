"""Network presets: the paper's network, the CPU-sized shipped network, and a tiny one for tests."""

from __future__ import annotations

import copy

from torch import nn

PRESETS = {
    # DCE-diff = Palette defaults: 62,640,770 parameters (6→2), ≈160.9 GFLOP per 160×160 forward pass.
    "paper": {"inner_channels": 64, "channel_mults": [1, 2, 4, 8], "res_blocks": 2, "dropout": 0.2,
              "attention_rates": [], "attention_heads": 1},
    # The shipped CPU model: ≈3.5 M parameters, ≈16.9 GFLOP per 160×160 forward pass.
    "cpu": {"inner_channels": 32, "channel_mults": [1, 2, 2, 4], "res_blocks": 1, "dropout": 0.0,
            "attention_rates": [], "attention_heads": 1},
    # Tests only. Four levels, so the middle attention sees 20×20 positions on the 160×160 grid (with two levels
    # it would be 80×80: gigabytes and minutes per step).
    "tiny": {"inner_channels": 16, "channel_mults": [1, 1, 2, 2], "res_blocks": 1, "dropout": 0.0,
             "attention_rates": [], "attention_heads": 1},
}
CONFIG_KEYS = {"in_channels", "out_channels", "inner_channels", "channel_mults", "res_blocks", "dropout",
               "attention_rates", "attention_heads"}


def network_config(preset: str = "paper", **overrides) -> dict:
    """A full network configuration: a preset with any field overridden (6 inputs, 2 outputs by default)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown network preset {preset!r}; expected one of {', '.join(PRESETS)}")
    config = {"in_channels": 6, "out_channels": 2, **copy.deepcopy(PRESETS[preset])}
    unknown = set(overrides) - CONFIG_KEYS
    if unknown:
        raise ValueError(f"unknown network setting(s) {sorted(unknown)}; expected some of {sorted(CONFIG_KEYS)}")
    config.update(overrides)
    return config


def build_network(config: dict) -> nn.Module:
    """The U-Net described by a full configuration (see :func:`network_config`)."""
    from DCEDiffLib.diffusion.unet import DenoisingUNet

    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ValueError(f"unknown network setting(s) {sorted(unknown)}")
    return DenoisingUNet(**config)
