"""Patient-level train/validation/test split: a case (patient) is never split across sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from DCEDiffLib.errors import InputError


def split_cases(names: Sequence[str], fractions=(0.8, 0.1, 0.1), seed: int = 0,
                patients: Optional[Mapping[str, str]] = None) -> Dict[str, List[str]]:
    """Split case names into train/validation/test by patient, reproducibly from ``seed``.

    ``patients`` ({name: patient}, e.g. :func:`~DCEDiffLib.training.case_identity.patient_groups`): the cases of
    one patient (two studies, or a copy) always go to the same set, and the counts are counted in patients. Without
    it, or when every case is its own patient, each case is a patient (the same split as before patients were
    known).
    Training always gets at least one patient, and so does validation when its fraction is non-zero; the test set
    gets one (when its fraction is non-zero) only from 3 patients on: 2 give 1 training + 1 validation patient.
    """
    names = sorted(names)
    groups: Dict[str, List[str]] = {}
    for name in names:
        groups.setdefault((patients or {}).get(name, f"case {name}"), []).append(name)
    if len(groups) < len(names):
        units = sorted(groups.values())  # each patient's cases, in the order of its first case name
        if len(units) < 2:
            raise InputError(f"need at least 2 patients to split into training and validation, got {len(names)} "
                             f"cases of one patient ({next(iter(groups))})")
        split = split_cases([members[0] for members in units], fractions, seed)
        by_first = {members[0]: members for members in units}
        for key in ("train", "validation", "test"):
            split[key] = sorted(n for first in split[key] for n in by_first[first])
        return split
    if len(names) < 2:
        raise InputError(f"need at least 2 cases to split into training and validation, got {len(names)}")
    fractions = tuple(fractions)
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0 or fractions[0] <= 0:
        raise InputError(f"split fractions {list(fractions)}: expected three non-negative numbers summing to 1 "
                         "(train, validation, test), with a non-zero training fraction")
    order = np.random.default_rng(seed).permutation(len(names))
    minimum = [1, 1 if fractions[1] > 0 else 0, 1 if fractions[2] > 0 and len(names) >= 3 else 0]
    counts = [max(int(round(f * len(names))), low) for f, low in zip(fractions, minimum)]
    while sum(counts) > len(names):  # take from the set with most cases above its minimum
        counts[int(np.argmax([c - low for c, low in zip(counts, minimum)]))] -= 1
    counts[0] = len(names) - counts[1] - counts[2]
    shuffled = [names[i] for i in order]
    train = sorted(shuffled[:counts[0]])
    val = sorted(shuffled[counts[0]:counts[0] + counts[1]])
    test = sorted(shuffled[counts[0] + counts[1]:])
    return {"train": train, "validation": val, "test": test, "seed": seed}


def describe_split(split: dict) -> str:
    """One line: how many cases each set got (and why there is no test case, when there is none)."""
    counts = {key: len(split.get(key, [])) for key in ("train", "validation", "test")}
    text = f"split by patient: {counts['train']} training, {counts['validation']} validation, {counts['test']} test case(s)"
    if counts["test"] == 0:
        text += " (no test case: 3 or more cases and a non-zero test fraction give one)"
    return text


def write_split(path: Path, split: dict) -> None:
    """Write the split as JSON (atomically)."""
    from DCEDiffLib.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(split, indent=2))


def read_split(path: Path) -> dict:
    """Read a split written by :func:`write_split`; :class:`InputError` naming the path when it is a folder (a run
    folder given for its split.json), missing, not JSON or not a split."""
    path = Path(path)
    if path.is_dir():
        hint = f" (this run folder's split is {path / 'split.json'})" if (path / "split.json").is_file() else ""
        raise InputError(f"split {path} is a folder; expected a split.json file written by dcediff train{hint}")
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"split {path} does not exist; expected a split.json file written by dcediff train") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"split {path} could not be read as JSON ({exc}); expected a split.json file written by "
                         "dcediff train") from None
    if not isinstance(split, dict) or not all(isinstance(split.get(k), list) for k in ("train", "validation", "test")):
        absent = [k for k in ("train", "validation", "test") if isinstance(split, dict) and k not in split]
        raise InputError(f"split {path}: expected a JSON object with train/validation/test lists of case names"
                         + (f" (it has no {', no '.join(absent)}: is it a split.json written by dcediff train?)"
                            if absent else ""))
    return split
