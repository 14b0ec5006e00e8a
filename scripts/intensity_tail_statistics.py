#!/usr/bin/env python3
"""The upper-tail spread of each input over a folder of cases, as preprocessing measures it (intensity_tail.py).

For every case folder of DATA_DIR (``dcediff phantom`` output, or any folder whose inputs ``dcediff train`` finds),
each input is put on the working grid the way training and synthesis do (``preprocess_case``; ``--no-register``:
scanner alignment, as for phantoms) and its spread (p99.5 − p0.5) / (p90 − p0.5) inside its coverage is recorded
with the plain percentile range (the heavy-tail rule itself switched off). Prints per input the number of cases,
median, 95th percentile and maximum: ``intensity_tail.TAIL_LIMITS`` must stay above the maximum of the model's
training cases, ``TAIL_TYPICAL`` is their median.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/intensity_tail_statistics.py runs/data_physiology [--no-register]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import DCEDiffLib.intensity_tail as intensity_tail  # noqa: E402
from DCEDiffLib.modalities import INPUT_MODALITIES  # noqa: E402
from DCEDiffLib.preprocess import preprocess_case  # noqa: E402
from DCEDiffLib.training.case_data import find_case_inputs, list_case_dirs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder of case folders")
    parser.add_argument("--no-register", action="store_true", help="use the scanner alignment (phantoms)")
    args = parser.parse_args()

    spreads = {m: [] for m in INPUT_MODALITIES}
    measured = {}
    original = intensity_tail.tame_heavy_tail

    def measure(array, params, modality, mask=None):  # record, never change: the plain percentile range
        measured[modality] = intensity_tail.tail_spread(intensity_tail.coverage_values(array, mask), params)
        return params, None

    import DCEDiffLib.preprocess as preprocess
    preprocess.tame_heavy_tail = measure
    try:
        for case_dir in list_case_dirs(args.data):
            inputs = {k: str(v) for k, v in find_case_inputs(case_dir).items() if k in INPUT_MODALITIES}
            measured.clear()
            preprocess_case(inputs, register=not args.no_register, optional=("pd",))
            for modality, spread in measured.items():
                spreads[modality].append(spread)
    finally:
        preprocess.tame_heavy_tail = original
    print("| input | cases | median | p95 | max | limit |")
    print("|---|---|---|---|---|---|")
    for modality, values in spreads.items():
        if values:
            limit = intensity_tail.TAIL_LIMITS.get(modality, "–")
            print(f"| {modality} | {len(values)} | {np.median(values):.2f} | {np.percentile(values, 95):.2f} | "
                  f"{max(values):.2f} | {limit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
