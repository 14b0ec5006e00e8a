"""``dcediff train``: train a DCE-diff model (or the regression baseline) on a folder of cases."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from DCEDiffLib.modalities import INPUT_MODALITIES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on a folder of cases (single process, or under torchrun for DDP)",
        description="Train on a folder of cases (output of 'dcediff phantom' or 'dcediff preprocess'). "
                    "The default configuration is the paper's recipe; a JSON config overrides any key. "
                    "Re-running the same command resumes from the last checkpoint. "
                    "Multi-GPU: torchrun --nproc_per_node=G -m DCEDiffLib.cli train ...")
    parser.add_argument("--config", type=Path, help="JSON config (see configs/); default: the paper recipe")
    parser.add_argument("--data", type=Path, required=True, help="folder of case folders")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, model)")
    parser.add_argument("--without", action="append", choices=INPUT_MODALITIES, default=None,
                        help="drop a condition modality (repeatable), e.g. --without adc for the ADC ablation")
    parser.add_argument("--objective", choices=["diffusion", "regression", "residual"],
                        help="override the config: 'regression' trains the deterministic L1 baseline")
    parser.add_argument("--iterations", type=int, help="override the config's number of iterations")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps in this run (resume later)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=1, help="processes for preprocessing raw cases")
    parser.add_argument("--cache", type=Path,
                        help="folder for preprocessed-case caches, shareable between runs (default: OUT/cache)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint (start over)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.training.config import load_config, make_config
    from DCEDiffLib.training.trainer import Trainer

    config = load_config(args.config)
    overrides = {}
    if args.without is not None:
        overrides["without"] = sorted(set(args.without), key=INPUT_MODALITIES.index)
    if args.objective:
        overrides["objective"] = args.objective
    if args.iterations:
        overrides["iterations"] = args.iterations
    config = make_config({**config, **overrides})
    trainer = Trainer.from_folder(config, args.data, args.out, device=args.device,
                                  preprocess_workers=args.workers, show_progress=not args.quiet,
                                  cache_dir=args.cache)
    try:
        if not args.fresh:
            trainer.resume()
        summary = trainer.run(max_steps=args.max_steps)
    finally:
        trainer.close()
    if trainer.ctx.is_main:
        print(json.dumps(summary))
    return 0
