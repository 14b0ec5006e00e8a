"""Paired cost of a missing PD from two `dcediff evaluate` runs of one model on the same cases: one with every input,
one with `--missing pd` (docs/model_quality.md, "What a missing PD costs the shipped card").

Usage: python scripts/missing_pd_cost.py FULL_EVAL_DIR NO_PD_EVAL_DIR
Prints, per phase, the median with and without PD of the whole-grid PSNR and the prostate and lesion enhancement r,
and the paired mean difference with a bootstrap 95 % interval over patients (5000 resamples, seed 0).
"""

import json
import sys
from pathlib import Path

import numpy as np


def model_cases(folder: Path) -> list:
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["cases"]["model"]


def bootstrap_interval(differences: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    means = [rng.choice(differences, len(differences)).mean() for _ in range(5000)]
    return np.percentile(means, [2.5, 97.5])


def main(full_dir: str, no_pd_dir: str) -> None:
    full, no_pd = model_cases(Path(full_dir)), model_cases(Path(no_pd_dir))
    if len(full) != len(no_pd):
        raise SystemExit(f"{full_dir} scored {len(full)} cases, {no_pd_dir} {len(no_pd)}: expected the same cases")
    rng = np.random.default_rng(0)
    print(f"{len(full)} patients")
    for target in ("early", "late"):
        quantities = {"PSNR (dB)": lambda c: c[target]["whole"]["psnr"],
                      "prostate r": lambda c: c[target]["enhancement"]["prostate"]["pearson"],
                      "lesion r": lambda c: c[target]["enhancement"].get("lesion", {}).get("pearson")}
        for name, get in quantities.items():
            pairs = [(get(a), get(b)) for a, b in zip(full, no_pd) if get(a) is not None and get(b) is not None]
            if not pairs:
                continue
            with_pd, without = (np.array(v) for v in zip(*pairs))
            difference = without - with_pd
            low, high = bootstrap_interval(difference, rng)
            print(f"  {target} {name}: with PD {np.median(with_pd):.3f}, without {np.median(without):.3f}; paired "
                  f"mean {difference.mean():+.3f} [{low:+.3f}, {high:+.3f}] (n={len(difference)})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
