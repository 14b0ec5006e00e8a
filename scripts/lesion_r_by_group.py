#!/usr/bin/env python3
"""Where does the lesion r go? Per-patient lesion enhancement r of a `dcediff evaluate` metrics.json, grouped by the
patients' lesions (from each phantom case's case.json and the per-lesion voxel counts of the evaluation): all lesions
smaller than 20 voxels on the working grid (a pattern of partial volume only; not noise, see
lesion_r_ceiling.py), at least one less-enhancing lesion
(drawn brighter than the gland by a model that cannot tell the kind), or textbook lesions of 20 voxels or more.
Prints the median lesion r (early, late) per group and the patients in it.

    .venv/bin/python scripts/lesion_r_by_group.py runs/val6/metrics.json --data runs/data_physiology
"""
import argparse
import json
from pathlib import Path

import numpy as np

SMALL_VOXELS = 20


def group_of(case_json: dict, per_lesion: list) -> str:
    """The group of one patient with lesions (see the module docstring)."""
    lesions = case_json.get("lesions") or case_json.get("anatomy", {}).get("lesions") or []
    if sum(p["voxels"] for p in per_lesion) < SMALL_VOXELS:
        return f"all lesions < {SMALL_VOXELS} voxels"
    if any(lesion["kind"] == "less_enhancing" for lesion in lesions):
        return "a less-enhancing lesion"
    return f"textbook, >= {SMALL_VOXELS} voxels"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="the phantom data folder the evaluation read")
    parser.add_argument("--method", default="model")
    args = parser.parse_args(argv)
    metrics = json.loads(args.metrics.read_text(encoding="utf-8"))
    groups = {}
    for entry in metrics["cases"][args.method]:
        case_json = json.loads((args.data / entry["case"] / "case.json").read_text(encoding="utf-8"))
        if not (case_json.get("lesions") or case_json.get("anatomy", {}).get("lesions")):
            continue
        per_lesion = entry["early"].get("lesions", {}).get("per_lesion", [])
        r = [entry[t]["enhancement"].get("lesion", {}).get("pearson") for t in ("early", "late")]
        groups.setdefault(group_of(case_json, per_lesion), []).append((entry["case"], r))
    for group, rows in groups.items():
        medians = [np.median([r[i] for _, r in rows if r[i] is not None] or [np.nan]) for i in (0, 1)]
        print(f"{group}: {len(rows)} patients, median lesion r early {medians[0]:.2f} late {medians[1]:.2f} "
              f"({', '.join(name for name, _ in rows)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
