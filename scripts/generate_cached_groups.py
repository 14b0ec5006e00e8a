"""Phantom groups generated and preprocessed in parallel, one process per group, with a split for training.

Why: on a machine with many cores and a GPU lent for minutes (docs/training.md), generating the patients one group
after the other and then preprocessing them is the slow part; here each of N processes generates its group and
caches its cases at once. The data folder is laid out as scripts/generate_phantom_groups.sh lays it out (the cases
linked as case_<group><two digits>), the cache is the one `dcediff train --cache` reads, and the split keeps the
last ``--validation-per-group`` cases of each group for validation.
Usage: python scripts/generate_cached_groups.py WORK_DIR DATA_DIR CACHE_DIR SPLIT_JSON FIRST_GROUP \
         "NAME SEED CASES ANATOMY DOMAIN" ... [--validation-per-group 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _one_group(work: Path, data: Path, cache: Path, index: int, spec: str) -> list:
    """Generate one group (unless its dataset.json exists), link and cache its cases; their linked names."""
    import torch

    from DCEDiffLib.registration_schedule import limit_workers
    from DCEDiffLib.training.case_data import load_case

    limit_workers(1)
    torch.set_num_threads(1)
    name, seed, cases, anatomy, domain = spec.split()
    out = work / "physiology" / name
    if not (out / "dataset.json").is_file():
        subprocess.run([sys.executable, "-m", "DCEDiffLib.cli", "phantom", "--cases", cases, "--seed", seed,
                        "--anatomy", anatomy, "--domain", domain, "--no-dce-series", "--out", str(out)],
                       check=True, cwd=REPO, env={**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"},
                       stdout=subprocess.DEVNULL)
    names = []
    for case in sorted(out.glob("case_*")):
        linked = data / f"case_{index}{case.name[len('case_0'):]}"
        if not linked.exists():
            linked.symlink_to(case.resolve())
        load_case(linked, cache)
        names.append(linked.name)
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("cache", type=Path)
    parser.add_argument("split", type=Path)
    parser.add_argument("first_group", type=int)
    parser.add_argument("groups", nargs="+", help='"NAME SEED CASES ANATOMY DOMAIN"')
    parser.add_argument("--validation-per-group", type=int, default=1)
    args = parser.parse_args(argv)
    for spec in args.groups:
        if len(spec.split()) != 5:
            parser.error(f"group {spec!r}: expected \"NAME SEED CASES ANATOMY DOMAIN\"")
    for folder in (args.work / "physiology", args.data, args.cache):
        folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    indices = range(args.first_group, args.first_group + len(args.groups))
    with ProcessPoolExecutor(len(args.groups)) as pool:
        per_group = list(pool.map(_one_group, [args.work] * len(args.groups), [args.data] * len(args.groups),
                                  [args.cache] * len(args.groups), indices, args.groups))
    keep = args.validation_per_group
    split = {"train": [n for names in per_group for n in names[:len(names) - keep]],
             "validation": [n for names in per_group for n in names[len(names) - keep:]], "test": []}
    args.split.parent.mkdir(parents=True, exist_ok=True)
    args.split.write_text(json.dumps(split, indent=1))
    print(f"{sum(map(len, per_group))} cases in {len(per_group)} groups generated and cached in "
          f"{time.perf_counter() - started:.0f} s: {len(split['train'])} training, {len(split['validation'])} "
          "validation", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
