"""``dcediff evaluate``: the paper's tables (PSNR, SSIM, MAE, FID; mean ± std per early/late) with baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from DCEDiffLib import defaults
from DCEDiffLib.commands.common import SAMPLERS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a model (and baselines) on held-out cases",
        description="Synthesizes every evaluation case, scores it against the acquired DCE (whole grid, body, "
                    "prostate; enhancement and lesion metrics) next to the trivial baselines, and writes "
                    "metrics.json, metrics.csv, metrics.md and report.png (best, median and worst case).")
    parser.add_argument("--model", required=True, help="model .safetensors (with its .json card)")
    parser.add_argument("--data", type=Path, required=True, help="folder of case folders")
    parser.add_argument("--split", type=Path,
                        help="split.json of a training run: evaluate its test cases and fit the mean-enhancement "
                             "baseline on its training cases (default: evaluate every case in --data)")
    parser.add_argument("--subset", choices=["test", "validation"], default="test",
                        help="which cases of --split to score: test (final numbers, once) or validation (tuning)")
    parser.add_argument("--baseline-data", type=Path,
                        help="cases to fit the mean-enhancement baseline on (default: the split's training cases)")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=MODEL",
                        help="another model evaluated the same way, e.g. regression=runs/reg/model.safetensors "
                             "or without_adc=runs/noadc/model.safetensors (repeatable)")
    parser.add_argument("--no-regression", action="store_true",
                        help="do not add the shipped regression U-Net (the learned baseline) as method 'regression'")
    parser.add_argument("--sampler", default=defaults.DEFAULT_SAMPLER, choices=SAMPLERS)
    parser.add_argument("--steps", type=int, default=None,
                        help="sampler steps for every model (default: each model's own count, its card's for a "
                             f"residual model with dpmpp, else {defaults.DEFAULT_STEPS})")
    parser.add_argument("--samples", type=int, default=defaults.DEFAULT_SAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--max-cases", type=int, help="evaluate at most this many cases (quick checks)")
    parser.add_argument("--cache", type=Path,
                        help="folder for preprocessed-case caches (shareable with training; default: the hidden "
                             "folder .OUT.cache beside --out, kept for a rerun, ~10 MB a case)")
    parser.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    parser.add_argument("--missing", action="append", default=[], metavar="INPUT", type=str.lower,
                        help="run every method with INPUT missing (only pd), its channel set as in training's "
                             "modality dropout (augment.drop_pd), to measure what a missing PD costs; meta records "
                             "it and which models were trained to do without it")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=run, interrupted=interrupted_message)


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.evaluation_runner import evaluate_models
    from DCEDiffLib.extras import require_extra

    require_extra("evaluate")  # a core install: refused here, not by a traceback after the first case's synthesis
    # counts and choices that need no case: refused before any case is read or the progress bar starts
    for name, value in (("samples", args.samples), ("steps", args.steps), ("max-cases", args.max_cases)):
        if value is not None and value < 1:
            raise InputError(f"--{name} {value}: expected 1 or more")
    if args.subset != "test" and args.split is None:
        raise InputError(f"--subset {args.subset}: only with --split RUN/split.json (without it every case in --data "
                         "is scored)")
    compare = {}
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--compare {item!r}: expected NAME=MODEL_PATH")
        if name in compare:  # the later one would replace the first without a word
            raise InputError(f"--compare {name}: given twice ({compare[name]} and {path}); expected one model per name")
        compare[name] = path
    if "regression" not in compare and not args.no_regression:
        from DCEDiffLib.model_registry import shipped_regression_path

        if shipped_regression_path().is_file():  # the learned baseline always stands beside the model
            compare["regression"] = str(shipped_regression_path())
    summary = evaluate_models(
        model_path=args.model, data_dir=args.data, out_dir=args.out, split_path=args.split,
        baseline_data=args.baseline_data, compare=compare, sampler=args.sampler, steps=args.steps,
        samples=args.samples, seed=args.seed, device=args.device, max_cases=args.max_cases,
        fid=not args.no_fid, overwrite=args.overwrite, cache_dir=args.cache,
        subset=args.subset, missing=args.missing)
    print(json.dumps(summary, indent=1, default=str, ensure_ascii=False))  # "27.90 ± 0.00", not "\u00b1"
    return 0


def interrupted_message(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves behind: no result folder, but the preprocessed cases, kept for the next run."""
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out.parent / f".{out.name}.cache"
    if cache.is_dir() and any(cache.iterdir()):
        return (f"interrupted; no partial output was kept. The preprocessed cases in {cache} are kept for a rerun "
                "(delete the folder to free the space)")
    return "interrupted; no partial output was kept"
