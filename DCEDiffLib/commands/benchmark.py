"""``dcediff benchmark``: speed and quality of the samplers against the paper's 1000-step sampler, in one process.

``dcediff benchmark --out DIR [--quick]`` writes DIR/benchmark.json and DIR/benchmark.md (see docs/performance.md);
``dcediff benchmark --gpu-paper --out DIR`` times the paper preset, 1000 steps × 16 slices in bf16 on a CUDA GPU
and the fraction of the GPU's measured matmul throughput it reaches (also ``scripts/gpu_benchmark.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark", help="speed and quality of the samplers against the paper's 1000-step sampler",
        description="Measures, in one process and on the same inputs: forward-pass throughput (shipped and paper "
                    "presets), whole-volume synthesis time per sampler and step count, the naive 1000-step loop "
                    "(the baseline), quality against steps on held-out phantom cases (vs the acquired DCE and vs "
                    "the 1000-step result, K-sample averages) and one volume end to end; beside the model, the "
                    "shipped regression U-Net (the learned baseline: time per volume and quality on the same "
                    "slices). Writes benchmark.json and benchmark.md. Measurements cut short by the limits below "
                    "are extrapolated and marked.")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: 1 case, 1 slice, fewer batch sizes and repeats, more extrapolation")
    parser.add_argument("--model", help="model .safetensors (with its .json card); default: the shipped model")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="synthesis precision (auto: as `dcediff synthesize`: bf16 on CUDA and on CPUs "
                             "with native bf16, fp32 elsewhere; DCEDiffLib/precision.py)")
    parser.add_argument("--data", type=Path, help="folder of held-out cases with acquired DCE "
                                                  "(default: freshly generated phantom cases, seed 9000)")
    parser.add_argument("--cases", type=_positive, help="held-out cases for quality (default 3; quick 1)")
    parser.add_argument("--quality-slices", type=_positive,
                        help="central slices per case scored by every sampler (default 2; quick 1)")
    parser.add_argument("--ddpm-slices", type=_positive,
                        help="slices timed for the 1000-step sampler (default 16; quick 4), rest extrapolated")
    parser.add_argument("--ddpm-steps", type=_positive,
                        help="steps timed for the 1000-step sampler (default 20; quick 3), rest extrapolated")
    parser.add_argument("--fast-slices", type=_positive,
                        help="slices timed for the fast samplers and the learned baseline, alike so that their "
                             "rows compare (default all; quick 4), rest extrapolated")
    parser.add_argument("--naive-slices", type=_positive, help="slices timed for the naive loop (default 2)")
    parser.add_argument("--naive-steps", type=_positive, help="steps timed for the naive loop (default 20)")
    parser.add_argument("--repeats", type=_positive, help="timed repeats per forward-pass measurement (default 3)")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end volume")
    parser.add_argument("--end-to-end-case", type=Path, metavar="DIR",
                        help="case folder timed end to end (default: the first case of --data, else the shipped "
                             "sample case)")
    parser.add_argument("--no-regression", action="store_true",
                        help="do not measure the shipped regression U-Net (the learned baseline) beside the model "
                             "(as `dcediff evaluate --no-regression`)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu-paper", action="store_true",
                        help="instead: the paper preset on a CUDA GPU, 1000 steps × 16 slices, bf16, and the "
                             "fraction of the GPU's measured matmul throughput (writes gpu_benchmark.json)")
    parser.add_argument("--preset", choices=["paper", "cpu", "tiny"],
                        help="--gpu-paper: the network preset timed with random weights (default paper; tiny with "
                             "--device cpu for a dry run)")
    parser.add_argument("--gpu-compile", default="all", choices=["none", "default", "reduce-overhead", "all"],
                        help="--gpu-paper: torch.compile modes to time (default all; reduce-overhead = CUDA graphs)")
    # Tests and machinery checks only (hidden): random weights, a shorter reference, a crop, no registration.
    parser.add_argument("--random-preset", help=argparse.SUPPRESS)
    parser.add_argument("--reference-steps", type=_positive, help=argparse.SUPPRESS)
    parser.add_argument("--crop", type=_positive, help=argparse.SUPPRESS)
    parser.add_argument("--no-register", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--throughput-presets", help=argparse.SUPPRESS)
    parser.add_argument("--throughput-size", type=_positive, help=argparse.SUPPRESS)
    parser.add_argument("--fast-steps", help=argparse.SUPPRESS)
    parser.add_argument("--k-values", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def _ints(text: str):
    return tuple(int(v) for v in text.split(",") if v.strip())


def settings_from_args(args: argparse.Namespace):
    """BenchmarkSettings from the command line (quick or full defaults, then the given limits)."""
    from DCEDiffLib.benchmark.runner import full_settings, quick_settings

    overrides = {"model": args.model, "device": args.device, "precision": args.precision, "data": args.data,
                 "seed": args.seed, "random_preset": args.random_preset}
    for option, field in (("cases", "cases"), ("quality_slices", "quality_slices"), ("ddpm_slices", "ddpm_slices"),
                          ("ddpm_steps", "ddpm_steps_measured"), ("fast_slices", "fast_slices"),
                          ("naive_slices", "naive_slices"), ("naive_steps", "naive_steps"),
                          ("repeats", "repeats"), ("reference_steps", "reference_steps"), ("crop", "crop"),
                          ("throughput_size", "throughput_size")):
        value = getattr(args, option)
        if value is not None:
            overrides[field] = value
    if args.end_to_end_case is not None:
        overrides["end_to_end_case"] = args.end_to_end_case
    if args.no_end_to_end:
        overrides["end_to_end"] = False
    if args.no_regression:
        overrides["regression"] = False
    if args.no_register:
        overrides["register"] = False
    if args.throughput_presets is not None:
        overrides["throughput_presets"] = tuple(p for p in args.throughput_presets.split(",") if p)
    if args.fast_steps:
        overrides["fast_steps"] = _ints(args.fast_steps)
    if args.k_values:
        overrides["k_values"] = _ints(args.k_values)
    return quick_settings(**overrides) if args.quick else full_settings(**overrides)


def run(args: argparse.Namespace) -> int:
    if args.preset and not args.gpu_paper:
        from DCEDiffLib.errors import InputError

        raise InputError(f"--preset {args.preset}: applies to --gpu-paper only (the CPU benchmark times the model "
                         "given by --model, default the shipped one)")
    if args.gpu_paper:
        from DCEDiffLib.benchmark.gpu import run_from_args

        preset = args.preset or args.random_preset or "paper"
        gpu_args = argparse.Namespace(out=args.out, device="cuda" if args.device == "auto" else args.device,
                                      model=args.model, preset=preset, slices=16, size=160,
                                      steps=args.reference_steps or 1000, precision="bf16",
                                      compile=args.gpu_compile, measured_steps=None, matmul_n=8192)
        return run_from_args(gpu_args)

    from DCEDiffLib.benchmark.report import headline_timings, write_report
    from DCEDiffLib.benchmark.runner import run_benchmark
    from DCEDiffLib.extras import require_extra

    require_extra("benchmark")  # its quality part, reached after minutes of timing; --gpu-paper needs neither

    settings = settings_from_args(args)
    out = Path(args.out)
    result = run_benchmark(settings, out / "work")
    path = write_report(result, out)
    keys = ("speedup_vs_naive_ddpm1000", "psnr_gap_db_default_vs_ddpm1000", "ssim_gap_default_vs_ddpm1000",
            "default_nfe", "default_volume_seconds", "end_to_end_seconds", "end_to_end_inputs_only_seconds",
            "regression_volume_seconds",
            "peak_inference_memory_mb")
    print(json.dumps({k: result.get(k) for k in keys}, indent=1))
    for label, how in headline_timings(result):  # the rows compared side by side say how each was timed
        print(f"{label}: {how}")
    for target in result["targets"]:
        print(target["line"])
    print(f"wrote {path} and {path.with_suffix('.md')} ({result['total_seconds']} s)")
    return 0
