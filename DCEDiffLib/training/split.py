"""Patient-level train/validation/test split: a case (patient) is never split across sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from DCEDiffLib.errors import InputError


def split_cases(names: Sequence[str], fractions=(0.8, 0.1, 0.1), seed: int = 0) -> Dict[str, List[str]]:
    """Split case names into train/validation/test by patient, reproducibly from ``seed``.

    Every set with a non-zero fraction gets at least one case when there are enough cases.
    """
    names = sorted(names)
    if len(names) < 2:
        raise InputError(f"need at least 2 cases to split into training and validation, got {len(names)}")
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise InputError(f"split fractions {fractions}: expected three non-negative numbers summing to 1")
    order = np.random.default_rng(seed).permutation(len(names))
    counts = [int(round(f * len(names))) for f in fractions]
    for index, fraction in enumerate(fractions):  # at least one case in each requested set
        if fraction > 0 and counts[index] == 0:
            counts[index] = 1
    while sum(counts) > len(names):
        counts[int(np.argmax(counts))] -= 1
    counts[0] = len(names) - counts[1] - counts[2]
    shuffled = [names[i] for i in order]
    train = sorted(shuffled[:counts[0]])
    val = sorted(shuffled[counts[0]:counts[0] + counts[1]])
    test = sorted(shuffled[counts[0] + counts[1]:])
    return {"train": train, "validation": val, "test": test, "seed": seed}


def write_split(path: Path, split: dict) -> None:
    """Write the split as JSON (atomically)."""
    from DCEDiffLib.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(split, indent=2))


def read_split(path: Path) -> dict:
    """Read a split written by :func:`write_split`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
