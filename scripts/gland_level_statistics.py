#!/usr/bin/env python3
"""Where the gland sits on the normalised T1-pre of phantom exams, and a candidate rule built on it (not in the engine).

For every case folder in DATA_DIR (preprocessed as training does, ``--cache`` shared with it), the level of the
gland (median of the T1-pre in the working grid's central ellipsoid, as a fraction of the T1-pre's intensity range)
as the model sees it, split by the exam's fat suppression (``case.json`` ``dce.t1_fat_suppressed``). Prints one line
per case, then per group the count, minimum, median and maximum, and how many cases lie below
``GLAND_LEVEL_LIMIT``.

    .venv/bin/python scripts/gland_level_statistics.py runs/data_physiology --cache runs/cache

:func:`place_gland` is the candidate "gland as the T1-pre's reference tissue" rule of docs/preprocessing.md: for a
T1-pre whose gland lies below every training exam's level, the range top that puts it at the typical level. It was
measured (``scripts/bright_fat_check.py``, which applies it inside the preprocessing) and is NOT in the engine: it
brings the gland's relative enhancement toward the truth but costs body and prostate r.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from DCEDiffLib.modalities import INPUT_MODALITIES  # noqa: E402
from DCEDiffLib.normalization import NormParams  # noqa: E402
from DCEDiffLib.ood import gland_region  # noqa: E402
from DCEDiffLib.training.case_data import list_case_dirs, load_case  # noqa: E402
from DCEDiffLib.working_grid import GRID_SPACING  # noqa: E402

# The cached conditions are already normalised to [-1, 1]: measure the level on that scale.
UNIT = NormParams(-1.0, 1.0)
# The candidate rule's constants (the phantom's training exams: lowest level 0.154, non-fat-suppressed median 0.239)
GLAND_LEVEL_LIMIT = 0.15
GLAND_LEVEL_TYPICAL = 0.23
MIN_GLAND_VOXELS = 200


def gland_level(t1pre: np.ndarray, params: NormParams, spacing_mm: Sequence[float],
                mask: Optional[np.ndarray] = None) -> Optional[float]:
    """Where the gland's median lies in ``params``' range (0 = low, 1 = high) on a (K, H, W) T1-pre on the working
    grid with ``spacing_mm`` (i, j, k); the gland is the central ellipsoid (the grid is centred on the prostate),
    within ``mask`` (the series' coverage) when given. None when fewer than :data:`MIN_GLAND_VOXELS` voxels remain
    or the range is empty."""
    region = gland_region(np.shape(t1pre), spacing_mm)
    if mask is not None:
        region &= np.asarray(mask, dtype=bool)
    values = np.asarray(t1pre)[region]
    values = values[np.isfinite(values)]
    if values.size < MIN_GLAND_VOXELS or not params.high > params.low:
        return None
    return float((np.median(values) - params.low) / (params.high - params.low))


def place_gland(t1pre: np.ndarray, params: NormParams, spacing_mm: Sequence[float],
                mask: Optional[np.ndarray] = None) -> Tuple[NormParams, Optional[str]]:
    """``params`` unchanged with ``None``, or the range whose top puts the gland at :data:`GLAND_LEVEL_TYPICAL`,
    with a note saying why (the candidate rule, see the module docstring). ``t1pre``/``mask``: the T1-pre on the
    working grid and its coverage, as the normalisation was fitted on."""
    level = gland_level(t1pre, params, spacing_mm, mask)
    if level is None or level <= 0 or level >= GLAND_LEVEL_LIMIT:
        return params, None
    median = params.low + level * (params.high - params.low)
    placed = NormParams(params.low, params.low + (median - params.low) / GLAND_LEVEL_TYPICAL,
                        params.low_percentile, params.high_percentile)
    note = (f"t1pre: the gland (central ellipsoid) lies at {level:.2f} of the intensity range, below every "
            f"training case ({GLAND_LEVEL_LIMIT:g}): range top set so that it lies at {GLAND_LEVEL_TYPICAL:g}, as on "
            f"a typical non-fat-suppressed training exam ({params.high:.6g} → {placed.high:.6g})")
    return placed, note


def with_gland_rule(tame_heavy_tail):
    """``preprocess``'s heavy-tail step followed, for the T1-pre, by the candidate gland rule (its note appended)."""
    def tame_then_place(values, params, modality, mask=None):
        params, note = tame_heavy_tail(values, params, modality, mask=mask)
        if modality != "t1pre":
            return params, note
        params, placed = place_gland(values, params, GRID_SPACING, mask=mask)
        notes = [n for n in (note, placed) if n]
        return params, "; ".join(notes) if notes else None
    return tame_then_place


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder of phantom case folders")
    parser.add_argument("--cache", type=Path, default=None, help="preprocessed-case cache (shared with training)")
    parser.add_argument("--json", type=Path, default=None, help="also write the per-case levels here")
    args = parser.parse_args(argv)
    rows = []
    for case_dir in list_case_dirs(args.data):
        case = load_case(case_dir, args.cache)
        level = gland_level(case.conditions[INPUT_MODALITIES.index("t1pre")], UNIT, GRID_SPACING)
        info = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
        suppressed = bool(info.get("dce", {}).get("t1_fat_suppressed", True))
        rows.append({"case": case_dir.name, "fat_suppressed": suppressed, "level": level})
        print(f"{case_dir.name}: gland level {level:.3f} ({'fat-suppressed' if suppressed else 'not fat-suppressed'})",
              flush=True)
    for name, keep in (("fat-suppressed", True), ("not fat-suppressed", False), ("all", None)):
        levels = [r["level"] for r in rows if r["level"] is not None and (keep is None or r["fat_suppressed"] == keep)]
        if levels:
            below = sum(level < GLAND_LEVEL_LIMIT for level in levels)
            print(f"{name}: {len(levels)} cases, gland level min {min(levels):.3f}, median {np.median(levels):.3f}, "
                  f"max {max(levels):.3f}; below the candidate rule's limit {GLAND_LEVEL_LIMIT:g}: {below}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
