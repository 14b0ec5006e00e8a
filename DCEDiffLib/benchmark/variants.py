"""Forward-pass optimisations measured one by one on the same network, inputs and batch.

Baseline: fp32, NCHW, ``no_grad`` (what the paper's reference code does). Each variant reports its time per
forward, its speed-up over the baseline and, for reduced precision, the relative error of its output
(‖out − out_fp32‖ / ‖out_fp32‖ on the same inputs). The thread row repeats the fastest variant with one thread.
"""

from __future__ import annotations

from typing import List

import torch

from DCEDiffLib.benchmark.forward import ForwardMode, example_inputs, forward_call, prepare_network
from DCEDiffLib.benchmark.throughput import measure_forward, network_in_channels

BASELINE = ForwardMode("fp32", False, "no_grad")
VARIANTS = (
    ("autograd on (no no_grad block)", ForwardMode("fp32", False, "grad")),
    ("inference_mode", ForwardMode("fp32", False, "inference")),
    ("channels_last", ForwardMode("fp32", True, "inference")),
    ("bf16 autocast", ForwardMode("bf16", False, "inference")),
    ("bf16 autocast + channels_last", ForwardMode("bf16", True, "inference")),
)


def relative_error(network: torch.nn.Module, mode: ForwardMode, batch: int, size: int, device: str) -> float:
    """‖out_mode − out_fp32‖ / ‖out_fp32‖ for the same inputs."""
    in_channels = network_in_channels(network)
    reference_mode = ForwardMode("fp32", False, "inference")
    x, gamma = example_inputs(batch, in_channels, size, device, reference_mode, seed=1)
    reference = forward_call(prepare_network(network, reference_mode, device), x, gamma, reference_mode, device)()
    if mode.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = forward_call(prepare_network(network, mode, device), x, gamma, mode, device)()
    return float((out.float() - reference.float()).norm() / reference.float().norm().clamp_min(1e-12))


def measure_variants(network: torch.nn.Module, batch: int = 4, size: int = 160, device: str = "cpu",
                     repeats: int = 3, warmup: int = 1, include_threads: bool = True) -> List[dict]:
    """The optimisation table: one row per variant (see the module docstring)."""
    # Discarded first pass: timed right after the `paper` preset's large batches, the baseline ran 1.6x slow in
    # the full benchmark, inflating every speed-up (docs/performance.md, P2).
    measure_forward(network, batch, size, BASELINE, device, 1, warmup)
    base = measure_forward(network, batch, size, BASELINE, device, repeats, warmup)
    rows = [{"variant": "baseline (fp32, NCHW, no_grad)", **base, "speedup": 1.0, "relative_error": 0.0}]
    for name, mode in VARIANTS:
        row = measure_forward(network, batch, size, mode, device, repeats, warmup)
        row["variant"] = name
        row["speedup"] = round(base["seconds_per_forward"] / row["seconds_per_forward"], 3)
        row["relative_error"] = relative_error(network, mode, 1, size, device) if mode.precision != "fp32" else 0.0
        rows.append(row)
    if include_threads and device == "cpu" and torch.get_num_threads() > 1:
        best = min(rows[1:], key=lambda r: r["seconds_per_forward"])
        mode = ForwardMode(best["precision"], best["channels_last"], best["grad"])
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            single = measure_forward(network, batch, size, mode, device, repeats, warmup)
        finally:
            torch.set_num_threads(threads)
        single["variant"] = f"{best['variant']}, 1 thread instead of {threads}"
        single["speedup"] = round(base["seconds_per_forward"] / single["seconds_per_forward"], 3)
        single["thread_scaling"] = round(single["seconds_per_forward"] / best["seconds_per_forward"], 3)
        single["relative_error"] = best["relative_error"]
        rows.append(single)
    return rows
