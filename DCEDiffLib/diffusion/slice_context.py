"""2.5D context for the mean network: the neighbouring slices' conditions as extra input channels.

The working grid has 16 slices 3 mm apart, and a lesion or the gland's edge usually spans several of them. A 2D
network decides from one slice whether a dark spot on the ADC is a lesion or noise; its neighbours make that
evidence two or three times larger. With ``n`` context slices the mean network sees, per slice k, the conditions of
slices k, k−1, k+1, …, k−n, k+n (centre first, so every rule that reads "the T1-pre channel" of the conditions —
the enhancement parameterization's zero enhancement — still finds it among the first C channels). Beyond the
volume's ends the end slice is repeated (the grid holds the prostate well inside its 16 slices).

A trained 2D mean network becomes a 2.5D one without changing what it computes
(:func:`widen_first_convolution`): the new input channels get zero weights, so fine-tuning starts from the shipped
network's function and learns only how much the neighbours add.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import nn

MAX_CONTEXT_SLICES = 2


def context_offsets(context_slices: int) -> List[int]:
    """Slice offsets in channel-group order: [0, −1, +1, −2, +2, …] up to ±``context_slices``."""
    n = check_context_slices(context_slices)
    offsets = [0]
    for distance in range(1, n + 1):
        offsets += [-distance, distance]
    return offsets


def check_context_slices(value) -> int:
    """``value`` as an int in 0..MAX_CONTEXT_SLICES; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CONTEXT_SLICES:
        raise ValueError(f"context_slices {value!r}: expected an integer in 0..{MAX_CONTEXT_SLICES}")
    return value


def slice_with_context(volume: np.ndarray, k: int, context_slices: int,
                       channels: Optional[Sequence[int]] = None) -> np.ndarray:
    """Slice ``k`` of ``volume`` (C, K, H, W) with its neighbours: (C·(2n+1), H, W), groups in
    :func:`context_offsets` order, the end slice repeated beyond the volume; ``channels`` selects and orders the
    channels (default: all)."""
    last = volume.shape[1] - 1
    rows = slice(None) if channels is None else list(channels)
    return np.concatenate([volume[rows, min(max(k + offset, 0), last)] for offset in context_offsets(context_slices)])


def volume_with_context(slices: torch.Tensor, context_slices: int) -> torch.Tensor:
    """Every slice of a volume (K, C, H, W), in order, with its neighbours: (K, C·(2n+1), H, W)."""
    if not context_slices:
        return slices
    index = torch.arange(slices.shape[0], device=slices.device)
    groups = [slices[(index + offset).clamp(0, slices.shape[0] - 1)] for offset in context_offsets(context_slices)]
    return torch.cat(groups, dim=1)


def first_convolution(network: nn.Module) -> nn.Conv2d:
    """The convolution that reads a U-Net's input (the first Conv2d of its first input block)."""
    for module in network.input_blocks[0].modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError("the network has no input convolution")


@torch.no_grad()
def widen_first_convolution(source: nn.Module, target: nn.Module, conditions: int, context_slices: int) -> None:
    """Load a 2D network's weights (``source``, input [C conditions, T targets]) into a network built for
    ``context_slices`` (``target``, input [C·(2n+1) conditions, T targets]) so that it computes the same function:
    every tensor is copied, the input convolution's weights for the neighbours' channels are zero."""
    from DCEDiffLib.diffusion.network_growth import insert_zero_input_channels

    old = first_convolution(source)
    new = first_convolution(target)
    expected = conditions * (2 * context_slices + 1) + (old.in_channels - conditions)
    if new.in_channels != expected:
        raise ValueError(f"the widened network reads {new.in_channels} channels; {conditions} conditions with "
                         f"{context_slices} context slices and {old.in_channels - conditions} target channels need "
                         f"{expected}")
    # the neighbours' channels go between the slice's own conditions and the target channels
    insert_zero_input_channels(source, target, position=conditions, count=conditions * 2 * context_slices)
