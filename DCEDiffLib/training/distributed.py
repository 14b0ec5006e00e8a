"""Single process or torchrun: the same training command runs on CPU, one GPU, or G GPUs with DDP."""

from __future__ import annotations

import dataclasses
import os

import torch


@dataclasses.dataclass
class DistContext:
    """Rank, world size and device of this process."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op when not distributed)."""
        if self.distributed:
            torch.distributed.barrier()

    def average_gradients(self, parameters) -> None:
        """Average the gradients of parameters DDP does not manage (a training-only head) over the ranks, as DDP
        does for the network's, so every rank takes the same step (no-op when not distributed)."""
        if not self.distributed:
            return
        for parameter in parameters:
            if parameter.grad is not None:
                torch.distributed.all_reduce(parameter.grad)
                parameter.grad /= self.world_size


def setup(device: str = "auto") -> DistContext:
    """Initialise from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) if present.

    Backend: NCCL with one GPU per process when CUDA is used, gloo on CPU (Testing/test_ddp.py: 2 gloo processes).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        from DCEDiffLib.errors import InputError

        raise InputError("device cuda requested, but no CUDA GPU is available to torch; use --device cpu")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world_size, local_rank, dev)


def teardown(ctx: DistContext) -> None:
    """Leave the process group cleanly."""
    if ctx.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
