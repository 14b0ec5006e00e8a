"""The paper preset on a GPU: 1000 ancestral steps × 16 slices in bf16, and the fraction of the GPU's measured
matrix throughput it reaches (``scripts/gpu_benchmark.py``, ``dcediff benchmark --gpu-paper``).

Steps, in one call:

1. Measure the device's dense matrix throughput: a square ``matmul_n`` × ``matmul_n`` bf16 matmul repeated, best
   of several timings (2 n³ FLOP each). This is the "hardware allows" reference, measured rather than taken from a
   data sheet (clocks, power limits and MIG slices differ between machines).
2. Count the network's FLOPs per 160 × 160 slice (``torch.utils.flop_counter``, as in the CPU throughput table).
3. Synthesize one volume of random conditions (16 slices) with the project's own code path
   (``synthesize_volume``: all slices in one batch, ``inference_mode``, channels_last, bf16 autocast), ddpm over the
   1000-step schedule; optionally through ``torch.compile`` ("default", or "reduce-overhead" = CUDA graphs), whose
   warm-up is timed separately.
4. Achieved FLOP/s = FLOPs per slice × slices × NFE / seconds; fraction = achieved / measured matmul peak.

Everything but the device is a parameter, so the same code runs on a CPU with a tiny network in the tests.
Weights are random unless a model is given: the time does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from DCEDiffLib.benchmark.timing import synchronize
from DCEDiffLib.modalities import INPUT_MODALITIES, TARGET_MODALITIES

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


def matmul_flops(n: int) -> float:
    """FLOPs of one n × n by n × n matrix product (n³ multiply-adds)."""
    return 2.0 * float(n) ** 3


def measure_matmul_peak(device: str, dtype: torch.dtype = torch.bfloat16, n: int = 8192, repeats: int = 10,
                        warmup: int = 3) -> dict:
    """Best-of-``repeats`` dense matmul throughput (TFLOP/s) of ``device`` in ``dtype``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(warmup):
        torch.matmul(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "best_s": best,
            "tflops": matmul_flops(n) / best / 1e12}


def achieved(flops_per_slice: float, slices: int, nfe: int, seconds: float, peak_tflops: float) -> dict:
    """Achieved TFLOP/s of a sampling run and its fraction of the measured matmul peak."""
    total = float(flops_per_slice) * slices * nfe
    tflops = total / seconds / 1e12
    return {"total_tflop": total / 1e12, "achieved_tflops": tflops,
            "fraction_of_matmul_peak": tflops / peak_tflops if peak_tflops > 0 else None}


def random_model(preset: str = "paper", seed: int = 0):
    """A ``LoadedModel`` of ``preset`` with random weights (timing only; the card has what synthesis reads)."""
    from DCEDiffLib.diffusion.model_files import LoadedModel
    from DCEDiffLib.diffusion.presets import build_network, network_config

    torch.manual_seed(seed)
    network = build_network(network_config(preset)).eval()
    card = {"conditions": list(INPUT_MODALITIES), "targets": list(TARGET_MODALITIES), "objective": "diffusion",
            "architecture": {"name": "palette-guided-unet", "config": network_config(preset)}}
    return LoadedModel(network, card, Path(f"<random {preset}>"))


def compile_network(model, mode: str):
    """Wrap the model's network in ``torch.compile(mode=...)`` ("none": unchanged)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r}: expected one of {COMPILE_MODES}")
    if mode != "none":
        model.network = torch.compile(model.network, mode=mode, dynamic=False)
    return model


def run_gpu_paper(device: str = "cuda", preset: str = "paper", model_path: Optional[str] = None, slices: int = 16,
                  size: int = 160, steps: int = 1000, precision: str = "bf16", compile_mode: str = "none",
                  measured_steps: Optional[int] = None, matmul_n: int = 8192, matmul_repeats: int = 10,
                  seed: int = 0) -> dict:
    """The whole GPU measurement (see the module docstring); returns a JSON-ready dict.

    ``measured_steps`` < the NFE times only that many evaluations and extrapolates (marked ``extrapolated``).
    """
    from DCEDiffLib.benchmark.machine import machine_info
    from DCEDiffLib.benchmark.sampler_sweep import SamplerRun, time_volume
    from DCEDiffLib.benchmark.throughput import count_forward_flops, parameter_count

    if model_path:
        from DCEDiffLib.diffusion.model_files import load_model

        model = load_model(model_path)
        preset = str(model.card["architecture"].get("preset", Path(model_path).stem))
    else:
        model = random_model(preset, seed)
    flops = count_forward_flops(model.network, size)
    params = parameter_count(model.network)
    mm_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    peak = measure_matmul_peak(device, mm_dtype, matmul_n, matmul_repeats)
    conditions = np.random.default_rng(seed).uniform(-1, 1, (len(model.card["conditions"]), slices, size, size))
    conditions = conditions.astype(np.float32)
    run = SamplerRun("ddpm", steps)
    # The layout synthesize_volume uses, set before compiling so the compiled graph sees its final strides.
    model.network = model.network.to(device).to(memory_format=torch.channels_last)
    compile_mode = compile_mode or "none"
    compile_network(model, compile_mode)
    # Warm-up (and compilation): a few evaluations at the measured shape, timed separately.
    start = time.perf_counter()
    time_volume(model, conditions, run, max_evaluations=3, seed=seed, device=device, precision=precision)
    warmup_s = time.perf_counter() - start
    timed = time_volume(model, conditions, run, max_evaluations=measured_steps, seed=seed, device=device,
                        precision=precision)
    rates = achieved(flops, slices, timed["nfe"], timed["seconds"], peak["tflops"])
    return {"machine": machine_info(device), "preset": preset, "parameters": params, "size": size,
            "slices": slices, "steps": steps, "nfe": timed["nfe"], "precision": precision,
            "compile": compile_mode, "warmup_s": round(warmup_s, 3),
            "seconds": timed["seconds"], "seconds_per_step": timed["seconds_per_nfe"],
            "extrapolated": timed["extrapolated"], "measured_nfe": timed["measured_nfe"],
            "gflop_per_slice_forward": flops / 1e9, "matmul_peak": peak, **rates,
            "memory": timed["memory"]}


def summary_line(result: dict) -> str:
    frac = result.get("fraction_of_matmul_peak")
    gpu = (result.get("machine") or {}).get("cuda") or {}
    return (f"{result['preset']} preset, {result['steps']} steps × {result['slices']} slices, {result['precision']}, "
            f"compile={result['compile']} on {gpu.get('name', result['machine'].get('cpu'))}: "
            f"{result['seconds']:.2f} s{' (extrapolated)' if result['extrapolated'] else ''}, "
            f"{result['achieved_tflops']:.1f} TFLOP/s = "
            f"{(100 * frac) if frac is not None else float('nan'):.1f} % of the measured "
            f"{result['matmul_peak']['dtype']} matmul peak ({result['matmul_peak']['tflops']:.1f} TFLOP/s)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_benchmark.json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", help="model .safetensors (default: random weights of --preset)")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--compile", default="all", choices=COMPILE_MODES + ("all",),
                        help="torch.compile mode; 'all' (default) measures none, default and reduce-overhead "
                             "(CUDA graphs) one after another")
    parser.add_argument("--measured-steps", type=int, help="time only this many steps and extrapolate")
    parser.add_argument("--matmul-n", type=int, default=8192)


def main(argv=None) -> int:
    """``scripts/gpu_benchmark.py``: expected errors (no GPU, a bad model) end in one stderr line, exit code 2."""
    import sys

    from DCEDiffLib.errors import DCEDiffError

    parser = argparse.ArgumentParser(prog="gpu_benchmark.py", description=" ".join(__doc__.split("\n\n")[0].split()))
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except DCEDiffError as exc:
        print(f"gpu_benchmark.py: error: {exc}", file=sys.stderr)
        return 2


def run_from_args(args: argparse.Namespace) -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.evaluation.metrics import json_safe

    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        from DCEDiffLib.errors import InputError

        raise InputError(f"--device {args.device}: torch sees no CUDA GPU on this machine; run it on a GPU machine "
                         "(or pass --device cpu --preset tiny for a dry run of the machinery)")
    modes = ["none", "default", "reduce-overhead"] if args.compile == "all" else [args.compile]
    results = []
    for mode in modes:
        try:
            result = run_gpu_paper(args.device, args.preset, args.model, args.slices, args.size, args.steps,
                                   args.precision, mode, args.measured_steps, args.matmul_n)
        except Exception as exc:  # a compile mode failing (no compiler, …) must not lose the other results
            if mode == "none":
                raise
            result = {"compile": mode, "error": f"{type(exc).__name__}: {exc}"}
        results.append(result)
        print(summary_line(result) if "error" not in result else f"compile={mode}: {result['error']}", flush=True)
    good = [r for r in results if "error" not in r]
    best = min(good, key=lambda r: r["seconds"])
    out = {"best": best, "runs": results}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(args.out) / "gpu_benchmark.json", json.dumps(json_safe(out), indent=1, default=str))
    print(f"best: {summary_line(best)}")
    return 0
