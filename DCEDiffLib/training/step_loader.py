"""The training batches of consecutive steps, built ahead by worker processes (config ``loader_workers``).

Why: on a GPU the network step is fast and building the crops in Python on one core is the bottleneck (measured on
the lent H200: 6–8 steps/s a run at batch 16, docs/training.md). The batches are addressed by step number
(``batches.SliceBatches``), so worker processes that build steps ahead change nothing in what a step sees: a run
with workers is bit-identical to one without, and resume stays exact.
"""

from __future__ import annotations

from typing import Iterator, Tuple

import torch

# What the trainer asks of SliceBatches, by name: "contrast" (with lesion/ring masks), "segmentation" (with classes)
# or "weighted" (conditions, targets, weights).
KINDS = ("contrast", "segmentation", "weighted")


def batch_for_step(batches, kind: str, step: int) -> Tuple:
    """(conditions, targets, weights, masks or None, classes or None) of ``step``."""
    if kind == "contrast":
        cond, target, weights, masks = batches.contrast_batch(step)
        return cond, target, weights, masks, None
    if kind == "segmentation":
        cond, target, weights, classes = batches.segmentation_batch(step)
        return cond, target, weights, None, classes
    if kind == "weighted":
        cond, target, weights = batches.weighted_batch(step)
        return cond, target, weights, None, None
    raise ValueError(f"unknown batch kind {kind!r}; expected one of {KINDS}")


class _Steps(torch.utils.data.Dataset):
    """Item i is the batch of step ``first + i``."""

    def __init__(self, batches, kind: str, first: int, count: int):
        self.batches, self.kind, self.first, self.count = batches, kind, first, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        return batch_for_step(self.batches, self.kind, self.first + index)


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # the workers share the cores with each other and the training process


def step_batches(batches, kind: str, first: int, end: int, workers: int = 0) -> Iterator[Tuple]:
    """The batches of steps ``first`` … ``end - 1`` in order; with ``workers`` > 0 built ahead by that many
    processes (two steps each in flight). The caller may stop early: the workers end with the iterator."""
    if workers <= 0:
        for step in range(first, end):
            yield batch_for_step(batches, kind, step)
        return
    loader = torch.utils.data.DataLoader(_Steps(batches, kind, first, end - first), batch_size=None, shuffle=False,
                                         num_workers=int(workers), prefetch_factor=2, worker_init_fn=_one_thread)
    iterator = iter(loader)
    try:
        yield from iterator
    finally:
        del iterator  # shuts the worker processes down now, not at garbage collection
