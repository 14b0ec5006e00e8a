"""Exponential moving average of the weights, with a warm-up so short runs still average sensibly."""

from __future__ import annotations

from typing import Dict

import torch


class EMA:
    """Shadow copy of a network's parameters: ``shadow = d·shadow + (1−d)·param`` with
    ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (Palette uses 0.9999 from the start, which
    averages over ~10k steps: longer than a short CPU run)."""

    def __init__(self, network: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.shadow: Dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in network.named_parameters()}

    @torch.no_grad()
    def update(self, network: torch.nn.Module) -> None:
        """Fold the current parameters into the average."""
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for name, p in network.named_parameters():
            self.shadow[name].mul_(d).add_(p.detach(), alpha=1.0 - d)

    @torch.no_grad()
    def copy_to(self, network: torch.nn.Module) -> None:
        """Load the averaged parameters into ``network``."""
        for name, p in network.named_parameters():
            p.copy_(self.shadow[name])
