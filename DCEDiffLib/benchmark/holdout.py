"""Held-out cases for the quality measurements: phantom cases the model never saw, or a user's data folder.

Generated cases use domain A (the training domain) and dataset seed 9000, far from the seeds the training
recipes use (1 for domain A, 2 for domain B; see docs/training.md). Case i's seed is
``phantom.generator.case_seed(9000, i)``, an independent stream, so no held-out patient equals a training one.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from DCEDiffLib.errors import InputError

HOLDOUT_DATASET_SEED = 9000
HOLDOUT_DOMAIN = "A"


def generate_holdout_cases(out_dir: Path, count: int, seed: int = HOLDOUT_DATASET_SEED,
                           domain: str = HOLDOUT_DOMAIN) -> List[Path]:
    """Write ``count`` phantom cases (NIfTI, no 4D series) into ``out_dir``; returns the case folders."""
    from DCEDiffLib.phantom.generator import generate_dataset

    return generate_dataset(Path(out_dir), count, domain=domain, seed=seed, fmt="nifti", include_series=False,
                            overwrite=True)


def holdout_cases(work_dir: Path, count: int, data_dir: Optional[Path] = None,
                  seed: int = HOLDOUT_DATASET_SEED, register: bool = True) -> List[Tuple[Path, object]]:
    """``count`` held-out cases as (case folder, ``CaseArrays``) pairs, each with acquired early/late DCE.

    From ``data_dir`` (its first ``count`` cases with acquired DCE) if given, else freshly generated phantom cases
    in ``work_dir/holdout``. Preprocessing (registration included unless ``register`` is False, which only
    tests use) is cached in ``work_dir/cache``.
    """
    from DCEDiffLib.training.case_data import list_case_dirs, load_case

    if count < 1:
        raise InputError(f"--cases {count}: expected 1 or more")
    work_dir = Path(work_dir)
    if data_dir is not None:
        case_dirs = list_case_dirs(Path(data_dir))
    else:
        folder = work_dir / "holdout"  # reused by a later run into the same folder when it has enough cases
        existing = list_case_dirs(folder) if (folder / "dataset.json").is_file() else []
        case_dirs = existing if len(existing) >= count else generate_holdout_cases(folder, count, seed)
    cases = []
    for case_dir in case_dirs:
        arrays = load_case(case_dir, work_dir / "cache", register=register)
        if arrays.targets is not None:
            cases.append((case_dir, arrays))
        if len(cases) == count:
            break
    if not cases:
        raise InputError(f"data folder {data_dir}: no case has acquired early and late DCE "
                         "(dce_early and dce_late); the quality measurements need them")
    return cases
