"""How much of each tissue lies above the top of the targets' range (the model can draw at most that top).

The DCE targets are scaled so that [-1, 1] covers up to ``target_scale.RANGE_FACTOR`` × the T1-pre's span; training
clips the targets at +1 and synthesis clamps its output there. For each case of a phantom data folder (the cached,
normalised targets; not clipped in the cache), the share of voxels above +1 per region (lesion, gland, vessel, all)
and target is counted; cases are grouped by the family digits of their name (case_80xx → "80", as
scripts/generate_phantom_groups.sh numbers them).

    .venv/bin/python scripts/target_range_exceedance.py runs/data_val5 --cache runs/cache
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGIONS = ("lesion", "gland", "vessel", "all")
SHARE_OF_NOTE = 0.05


def region_masks(labels: np.ndarray, legend: Dict[str, int]) -> Dict[str, np.ndarray]:
    """Boolean masks of :data:`REGIONS` (a region whose label the legend lacks is empty)."""
    def label(name):
        return labels == legend[name] if name in legend else np.zeros(labels.shape, bool)
    return {"lesion": label("lesion"), "gland": label("peripheral_zone") | label("transition_zone"),
            "vessel": label("vessel"), "all": np.ones(labels.shape, bool)}


def above_top_counts(targets: np.ndarray, labels: np.ndarray, legend: Dict[str, int], target_names) -> dict:
    """(target, region) → (voxels above +1, voxels) for one case; ``targets`` (T, K, H, W) normalised."""
    counts = {}
    for index, name in enumerate(target_names):
        for region, mask in region_masks(labels, legend).items():
            if mask.any():
                counts[(name, region)] = (int((targets[index][mask] > 1.0).sum()), int(mask.sum()))
    return counts


def main(argv=None) -> int:
    from DCEDiffLib.modalities import TARGET_MODALITIES
    from DCEDiffLib.training.case_data import list_case_dirs, load_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args(argv)
    totals: Dict[tuple, list] = {}
    for case_dir in list_case_dirs(args.data):
        case = load_case(case_dir, args.cache)
        if case.labels is None or case.targets is None:
            continue
        family = case_dir.name[len("case_"):][:2]
        for (target, region), (above, voxels) in above_top_counts(case.targets, case.labels, case.legend,
                                                                  TARGET_MODALITIES).items():
            row = totals.setdefault((family, target, region), [0, 0, 0])
            row[0] += above
            row[1] += voxels
            row[2] += int(above > SHARE_OF_NOTE * voxels)
    print(f"family target region: share of voxels above the range top (cases with more than {SHARE_OF_NOTE:.0%})")
    for (family, target, region), (above, voxels, cases) in sorted(totals.items()):
        print(f"  {family} {target:<10} {region:<7} {above / voxels:7.2%}  ({cases})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
