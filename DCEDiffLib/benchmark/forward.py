"""One forward pass of a denoising network under a chosen execution mode (precision, memory format, autograd).

Every forward-pass measurement of the benchmark goes through :class:`ForwardMode` and :func:`forward_call`, so
that "bf16 + channels_last" means the same thing in the throughput table, in the optimisation table and in the
GPU script.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from typing import Callable, Tuple

import torch

GRAD_MODES = ("grad", "no_grad", "inference")
PRECISIONS = ("fp32", "bf16")


@dataclasses.dataclass(frozen=True)
class ForwardMode:
    """How a forward pass runs: ``precision`` "fp32" or "bf16" (autocast), ``channels_last`` memory format,
    ``grad`` "grad" (autograd recording, as code without a no-grad block), "no_grad" or "inference"."""

    precision: str = "fp32"
    channels_last: bool = False
    grad: str = "inference"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: expected one of {PRECISIONS}")
        if self.grad not in GRAD_MODES:
            raise ValueError(f"grad mode {self.grad!r}: expected one of {GRAD_MODES}")

    @property
    def label(self) -> str:
        grad = {"grad": "autograd on", "no_grad": "no_grad", "inference": "inference_mode"}[self.grad]
        return f"{self.precision}, {'channels_last' if self.channels_last else 'NCHW'}, {grad}"


def grad_context(mode: ForwardMode):
    """The autograd context of ``mode``."""
    if mode.grad == "inference":
        return torch.inference_mode()
    if mode.grad == "no_grad":
        return torch.no_grad()
    return contextlib.nullcontext()


def autocast_context(mode: ForwardMode, device: str):
    """bf16 autocast on the device's type, or nothing for fp32."""
    if mode.precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_network(network: torch.nn.Module, mode: ForwardMode, device: str) -> torch.nn.Module:
    """A copy of ``network`` on ``device`` in eval mode and ``mode``'s memory format (the original is untouched)."""
    prepared = copy.deepcopy(network).to(device).eval()
    if mode.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    if mode.grad != "grad":
        for parameter in prepared.parameters():
            parameter.requires_grad_(False)
    return prepared


def example_inputs(batch: int, in_channels: int, size: int, device: str, mode: ForwardMode,
                   seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random network inputs (x: (batch, in_channels, size, size), gamma: (batch,)) on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, size, size, generator=generator).to(device)
    if mode.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    gamma = torch.rand(batch, generator=generator).to(device)
    return x, gamma


def forward_call(network: torch.nn.Module, x: torch.Tensor, gamma: torch.Tensor, mode: ForwardMode,
                 device: str) -> Callable[[], torch.Tensor]:
    """A no-argument callable that runs one forward pass of a prepared network in ``mode``."""
    def run() -> torch.Tensor:
        with grad_context(mode), autocast_context(mode, device):
            out = network(x, gamma)
        return out

    return run
