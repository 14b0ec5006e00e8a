"""``dcediff synthesize``: synthetic early/late DCE for a user's own exam."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from DCEDiffLib.commands.common import (add_input_arguments, add_progress_argument, add_sampling_arguments,
                                        collect_inputs, parse_center, progress_callback)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synthesize", help="synthesize early/late DCE from T2W, PD, ADC and T1-pre",
        description="Registers PD/ADC/T1-pre (and acquired DCE) to the T2W, synthesizes early and late DCE on the "
                    "160x160x16 working grid, and writes synthetic_early/late.nii.gz (labelled synthetic), "
                    "uncertainty maps (--samples > 1), residuals and metrics.json (acquired DCE given), "
                    "report.png and synthesis.json.")
    add_input_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--t2w-grid", action="store_true", help="also write the results resampled onto the T2W grid")
    parser.add_argument("--no-register", action="store_true", help="trust the scanner alignment (skip registration)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist unless --overwrite)")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.pipeline import synthesize_to_folder

    inputs = collect_inputs(args)
    callback, close = progress_callback(args, "synthesize")
    try:
        output = synthesize_to_folder(
            inputs, args.out, t2w_grid=args.t2w_grid, overwrite=args.overwrite, progress=callback,
            model_path=args.model, sampler=args.sampler, steps=args.steps, samples=args.samples, seed=args.seed,
            device=args.device, center_lps=parse_center(args.center), register=not args.no_register,
            warm_start=args.warm_start)
    finally:
        close()
    summary = {"out": str(args.out), "seconds": output.provenance.get("total_seconds"),
               "nfe": output.provenance["nfe"], "device": output.provenance["device"]}
    if output.metrics is not None:
        summary["metrics"] = _headline(output.metrics)
    if not args.progress_lines:
        print(json.dumps(summary, indent=1, default=str))
    return 0


def _headline(metrics: dict) -> dict:
    """PSNR/SSIM/MAE on the whole grid, per target, for the console."""
    out = {}
    for target, values in metrics.items():
        whole = values.get("whole") if isinstance(values, dict) else None
        if isinstance(whole, dict):
            out[target] = {k: whole.get(k) for k in ("psnr", "ssim", "mae")}
    return out
