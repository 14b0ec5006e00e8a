"""The learning rate of each training step: linear warm-up, then constant or a half cosine (``lr_schedule``)."""

from __future__ import annotations

import math


def learning_rate(config: dict, step: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then constant (``lr_schedule`` "constant", the paper's
    schedule) or a half cosine from ``lr`` down to 0 at ``iterations`` ("cosine": an annealing fine-tune; a run at a
    constant rate ends wherever its noise leaves it)."""
    warmup = int(config["warmup_steps"])
    if warmup > 0 and step + 1 < warmup:
        return config["lr"] * (step + 1) / warmup
    if config.get("lr_schedule", "constant") != "cosine":
        return config["lr"]
    span = max(int(config["iterations"]) - warmup, 1)
    progress = min(max(step + 1 - warmup, 0) / span, 1.0)
    return config["lr"] * 0.5 * (1.0 + math.cos(math.pi * progress))
