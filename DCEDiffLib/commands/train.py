"""``dcediff train``: train a DCE-diff model (or the regression baseline) on a folder of cases."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional

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
    parser.add_argument("--without", action="append", choices=INPUT_MODALITIES, default=None, type=str.lower,
                        help="drop a condition modality (repeatable), e.g. --without adc for the ADC ablation")
    parser.add_argument("--objective", choices=["diffusion", "regression", "residual"],
                        help="override the config: 'regression' trains the deterministic L1 baseline")
    parser.add_argument("--iterations", type=int, help="override the config's number of iterations")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps in this run (resume later)")
    parser.add_argument("--max-minutes", type=float, metavar="M",
                        help="stop at the first step after M minutes of training (validated, checkpointed and "
                             "exported as at the last step; resume later): for a machine lent for a fixed time")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=1, help="processes for preprocessing raw cases")
    parser.add_argument("--cache", type=Path,
                        help="folder for preprocessed-case caches, shareable between runs (default: OUT/cache)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint (start over)")
    parser.add_argument("--change-recipe", action="store_true",
                        help="resume the checkpoint although the config changes what it learns (a curriculum's next "
                             "stage: other weights, augmentation, learning rate); without it such a resume is "
                             "refused. The model card records each change and its step")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, interrupted=interrupted_message)


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.training.config import load_config, make_config
    from DCEDiffLib.training.config_checks import check_training_config

    config = load_config(args.config)
    overrides = {}
    if args.without is not None:
        overrides["without"] = sorted(set(args.without), key=INPUT_MODALITIES.index)
    if args.objective:
        overrides["objective"] = args.objective
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    from DCEDiffLib.errors import InputError

    if args.max_minutes is not None and not args.max_minutes > 0:
        raise InputError(f"--max-minutes {args.max_minutes}: expected a positive number of minutes")
    if args.max_steps is not None and args.max_steps < 1:  # 0 or less exported the untrained network as the model
        raise InputError(f"--max-steps {args.max_steps}: expected a positive number of steps")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: expected a positive number of processes")
    config = make_config({**config, **overrides})
    check_training_config(config)  # every value, before any case is loaded or any folder made
    out = Path(args.out)
    before = None if not out.is_dir() else {p.name for p in out.iterdir()}  # a folder of the user's, or a run's
    _check_data_and_split(args)
    try:
        return _train(args, config)
    except BaseException:
        _remove_failed_run(out, before)
        raise


def _train(args: argparse.Namespace, config: dict) -> int:
    from DCEDiffLib.training.split import describe_split
    from DCEDiffLib.training.trainer import Trainer

    trainer = Trainer.from_folder(config, args.data, args.out, device=args.device,
                                  preprocess_workers=args.workers, show_progress=not args.quiet,
                                  cache_dir=args.cache)
    try:
        if trainer.ctx.is_main:
            print(f"[dcediff train] {describe_split(trainer.data['split'])}; see {Path(args.out) / 'split.json'}",
                  flush=True)
        if not args.fresh:
            trainer.resume(change_recipe=args.change_recipe)
        max_seconds = None if args.max_minutes is None else 60.0 * args.max_minutes
        summary = trainer.run(max_steps=args.max_steps, max_seconds=max_seconds)
    finally:
        trainer.close()
    if trainer.ctx.is_main:
        print(json.dumps(summary))
    return 0


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _check_data_and_split(args: argparse.Namespace) -> None:
    """Enough cases to train and validate; an existing split.json usable (or, with --fresh, removed so that the
    split is made again from the data folder)."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.training.case_data import list_case_dirs
    from DCEDiffLib.training.split import read_split

    from DCEDiffLib.atomic import check_writable_location, refuse_output_inside_input

    check_writable_location(args.out, f"--out {args.out}")  # before the cases load (an hour on a big folder)
    if args.cache is not None and not Path(args.cache).is_dir():  # an existing shared cache may be read-only
        check_writable_location(args.cache, f"--cache {args.cache}")
    refuse_output_inside_input(args.out, "--out", args.data, "--data",
                               "checkpoints and the cache would be written among the cases")
    cases = list_case_dirs(args.data)
    if len(cases) < 2:
        raise InputError(f"--data {args.data}: {len(cases)} case; training needs at least 2 (1 for training, 1 for "
                         "validation), e.g. dcediff phantom --cases 3; a folder of DICOM studies becomes cases with "
                         "dcediff dataset --root DIR --out CASES")
    split_path = Path(args.out) / "split.json"
    if not split_path.is_file():
        return
    if args.fresh:
        if _is_main_process():
            split_path.unlink()
        return
    try:
        split = read_split(split_path)
        sizes = {key: len(split[key]) for key in ("train", "validation")}
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{split_path} is not a split written by dcediff train; remove it or use --fresh") from None
    empty = [key for key, size in sizes.items() if size == 0]
    if empty:
        raise InputError(f"{split_path} has no {' and no '.join(empty)} case (made by an older version from "
                         f"{len(cases)} cases); re-run with --fresh to split again")


def _remove_failed_run(out: Path, before: Optional[set]) -> None:
    """A run that fails before its first checkpoint leaves nothing: the run folder if this command created it
    (``before`` None), else only what it added to the existing folder (split.json, config.json, ...)."""
    import shutil

    if not _is_main_process() or not out.is_dir() or any((out / "checkpoints").glob("last*")):
        return
    if before is None:
        shutil.rmtree(out, ignore_errors=True)
        return
    for added in [p for p in out.iterdir() if p.name not in before]:
        if added.is_dir() and not added.is_symlink():
            shutil.rmtree(added, ignore_errors=True)
        else:
            added.unlink(missing_ok=True)


def interrupted_message(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves behind: the checkpoints written so far (the run resumes from the last one)."""
    checkpoints = sorted((Path(args.out) / "checkpoints").glob("last*"))
    if checkpoints:
        return (f"interrupted; the last checkpoint in {Path(args.out) / 'checkpoints'} is kept (steps after it are "
                "lost): re-run the same command to resume from it")
    return ("interrupted before the first checkpoint; nothing to resume (a new run folder is removed, and what the "
            "run added to an existing one)")
