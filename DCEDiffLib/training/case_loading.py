"""The cases of a training run: the data folder split by patient (or a resumed run's ``split.json``), each
training and validation case preprocessed once into the cache (by a pool of worker processes) and loaded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List, Optional

import torch

from DCEDiffLib.errors import InputError
from DCEDiffLib.training.case_data import list_case_dirs, load_case, naming_the_case
from DCEDiffLib.training.case_identity import check_same_patients, identities, patient_groups
from DCEDiffLib.training.split import read_split, split_cases, write_split


def load_split_cases(data_dir: Path, out_dir: Path, config: dict, ctx, workers: int = 1,
                     report: Optional[Callable[[str], None]] = None, cache_dir: Optional[Path] = None) -> dict:
    """Split the data folder by patient (or reuse ``split.json`` of a resumed run) and load every case."""
    case_dirs = {p.name: p for p in list_case_dirs(data_dir)}
    split_path = out_dir / "split.json"
    if split_path.is_file():
        split = read_split(split_path)
        missing = [n for key in ("train", "validation") for n in split[key] if n not in case_dirs]
        if missing:
            raise InputError(f"{split_path} names cases missing from {data_dir}: {', '.join(missing[:5])}")
        check_same_patients(split, case_dirs, split["train"] + split["validation"], f"--data {data_dir}")
        added = sorted(set(case_dirs) - {n for key in ("train", "validation", "test") for n in split.get(key, [])})
        if added and report:
            report(f"note: {len(added)} case(s) of {data_dir} are not in this run's split.json ("
                   f"{', '.join(added[:5])}{', …' if len(added) > 5 else ''}) and are not used; a new run (--fresh, "
                   "or a new --out) splits them in")
    else:
        patients = patient_groups(case_dirs)  # two studies (or copies) of one patient go to one set
        split = split_cases(list(case_dirs), tuple(config["split"]), config["split_seed"], patients)
        # which patients the names stand for: a resumed run or an evaluation checks them (case_identity.py)
        split["data"] = str(Path(data_dir).resolve())
        split["identities"] = identities(case_dirs, sorted(case_dirs))
        split["patients"] = {name: patients[name] for name in sorted(case_dirs)}
        if ctx.is_main:
            write_split(split_path, split)
    cache = Path(cache_dir) if cache_dir else out_dir / "cache"
    names = split["train"] + split["validation"]
    if ctx.is_main:  # rank 0 preprocesses and caches; the others then read the cache
        _load_parallel([case_dirs[n] for n in names], cache, workers, report)
    ctx.barrier()
    loaded = {n: load_case(case_dirs[n], cache) for n in names}
    without_dce = [n for n in names if loaded[n].targets is None]
    if without_dce:  # a training or validation case needs what the model learns to draw
        raise InputError(f"--data {data_dir}: {len(without_dce)} case(s) have no acquired DCE (dce_early and "
                         f"dce_late): {', '.join(without_dce[:5])}{', …' if len(without_dce) > 5 else ''}; expected "
                         "training cases with both (dcediff dataset puts cases without DCE in no_dce/, which "
                         "training does not read): move them out of the data folder")
    return {"split": split, "train": [loaded[n] for n in split["train"]],
            "validation": [loaded[n] for n in split["validation"]]}


def _load_parallel(dirs: List[Path], cache: Path, workers: int, report) -> None:
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    if workers > 1 and len(dirs) > 1:
        # the worker processes share the cores: one registration at a time in each
        with ProcessPoolExecutor(workers, initializer=_one_thread_worker) as pool:
            for index, _ in enumerate(pool.map(_cache_one, dirs, [cache] * len(dirs))):
                if report and (index + 1) % 10 == 0:
                    report(f"preprocessed {index + 1}/{len(dirs)} cases")
    else:
        for index, d in enumerate(dirs):
            _cache_one(d, cache)
            if report and (index + 1) % 10 == 0:
                report(f"preprocessed {index + 1}/{len(dirs)} cases")
    if report:
        report(f"{len(dirs)} training and validation cases ready (test cases are not loaded) in "
               f"{time.perf_counter() - started:.0f} s")


def _one_thread_worker() -> None:
    """Initializer of the preprocessing pool's processes: one registration and one torch thread each (they share
    the cores). Only there: set in the training process itself, the thread limit would outlive the loading and slow
    every training step (a run with --workers 1 trained on one core)."""
    from DCEDiffLib.registration_schedule import limit_workers

    limit_workers(1)
    torch.set_num_threads(1)


def _cache_one(case_dir: Path, cache: Path) -> None:
    # Returns nothing on purpose: a pool worker would otherwise send every case's arrays back to be thrown away
    with naming_the_case(case_dir):  # a preprocessed case's errors say "case NAME", not which folder
        load_case(case_dir, cache)
