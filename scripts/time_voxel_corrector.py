#!/usr/bin/env python3
"""Time a card's voxel corrector (``VoxelCorrector.correct``) on one case, three repeats, after one synthesis.

    .venv/bin/python scripts/time_voxel_corrector.py MODEL CASE_DIR [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume, voxel_corrector_inputs
    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.training.case_data import load_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("case", type=Path)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args(argv)
    model = load_model(args.model)
    if model.corrector is None:
        raise SystemExit(f"{args.model}: the card names no voxel corrector")
    conditions = model_conditions(model, load_case(args.case, args.cache))
    synthetic = synthesize_volume(model, conditions, samples=1, seed=0, device="cpu", voxel_corrector=False).mean
    ordered, zero = voxel_corrector_inputs(model.card, conditions)
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        model.corrector.correct(synthetic, ordered, zero)
        seconds.append(time.perf_counter() - started)
    print(f"{args.model}: correct() {', '.join(f'{s:.2f}' for s in seconds)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
