"""Forward-pass throughput of a network: slices per second, achieved GFLOP/s and peak memory per batch size.

The FLOP count comes from ``torch.utils.flop_counter.FlopCounterMode`` on one batch-1 forward (convolutions,
matrix products and attention; element-wise operations are not counted, as is usual), multiplied by the batch.
"""

from __future__ import annotations

from typing import Iterable, List, Optional

import torch

from DCEDiffLib.benchmark.forward import ForwardMode, example_inputs, forward_call, prepare_network
from DCEDiffLib.benchmark.memory import PeakMemory
from DCEDiffLib.benchmark.timing import time_call


def network_in_channels(network: torch.nn.Module) -> int:
    """Input channels of the network's first convolution (conditions + noisy targets)."""
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            return int(module.in_channels)
    raise ValueError("network has no Conv2d layer; cannot tell its input channels")


def parameter_count(network: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in network.parameters()))


def count_forward_flops(network: torch.nn.Module, size: int = 160, batch: int = 1,
                        in_channels: Optional[int] = None) -> int:
    """FLOPs (2 × multiply-adds) of one forward pass at ``batch`` × ``size`` × ``size`` on the CPU in fp32."""
    from torch.utils.flop_counter import FlopCounterMode

    in_channels = in_channels or network_in_channels(network)
    mode = ForwardMode("fp32", False, "inference")
    prepared = prepare_network(network, mode, "cpu")
    x, gamma = example_inputs(batch, in_channels, size, "cpu", mode)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        prepared(x, gamma)
    return int(counter.get_total_flops())


def measure_forward(network: torch.nn.Module, batch: int, size: int, mode: ForwardMode, device: str = "cpu",
                    repeats: int = 3, warmup: int = 1, flops_per_slice: Optional[int] = None,
                    prepared: Optional[torch.nn.Module] = None) -> dict:
    """Time one forward pass at ``batch`` in ``mode``; returns seconds, slices/s, GFLOP/s and peak memory."""
    in_channels = network_in_channels(network)
    prepared = prepared if prepared is not None else prepare_network(network, mode, device)
    x, gamma = example_inputs(batch, in_channels, size, device, mode)
    call = forward_call(prepared, x, gamma, mode, device)
    with PeakMemory(device) as peak:
        timing = time_call(call, repeats=repeats, warmup=warmup, device=device)
    seconds = timing.median
    row = {"batch": int(batch), "size": int(size), "mode": mode.label, "precision": mode.precision,
           "channels_last": mode.channels_last, "grad": mode.grad,
           "seconds_per_forward": round(seconds, 5), "slices_per_s": round(batch / seconds, 3),
           "timing": timing.to_dict(), "memory": peak.result()}
    if flops_per_slice:
        row["gflops_per_s"] = round(flops_per_slice * batch / seconds / 1e9, 2)
    return row


def preset_throughput(name: str, network: torch.nn.Module, batch_sizes: Iterable[int], modes: List[ForwardMode],
                      size: int = 160, device: str = "cpu", repeats: int = 3, warmup: int = 1) -> dict:
    """Throughput of one network (one preset) for every batch size and mode."""
    flops = count_forward_flops(network, size)
    rows = []
    for mode in modes:
        prepared = prepare_network(network, mode, device)
        for batch in batch_sizes:
            rows.append(measure_forward(network, batch, size, mode, device, repeats, warmup, flops, prepared))
        del prepared
    return {"preset": name, "parameters": parameter_count(network), "size": int(size),
            "gflops_per_forward": round(flops / 1e9, 3), "rows": rows}
