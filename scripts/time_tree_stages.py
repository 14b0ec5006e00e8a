#!/usr/bin/env python3
"""Time a card's tree stages on one case, three repeats each, after one synthesis without them: the voxel corrector
(``VoxelCorrector.correct``) and the learned expected-error map (``LearnedErrorMap.blend``), whichever it has.

    .venv/bin/python scripts/time_tree_stages.py MODEL CASE_DIR [--cache DIR]
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
    stages = {}
    if model.corrector is not None:
        stages["voxel corrector, correct()"] = lambda s, o, z, e: model.corrector.correct(s, o, z)
    if model.learned_error_map is not None:
        stages["learned error map, blend()"] = lambda s, o, z, e: model.learned_error_map.blend(s, o, z, e)
    if not stages:
        raise SystemExit(f"{args.model}: the card names no voxel corrector and no learned error map")
    case = load_case(args.case, args.cache)
    conditions = model_conditions(model, case)
    result = synthesize_volume(model, conditions, samples=1, seed=0, device="cpu", voxel_corrector=False,
                               adc_norm=case.norm.get("adc"))
    ordered, zero = voxel_corrector_inputs(model.card, conditions)
    edge = result.expected_error if result.expected_error is not None else result.mean * 0
    for name, stage in stages.items():
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            stage(result.mean, ordered, zero, edge)
            seconds.append(time.perf_counter() - started)
        print(f"{args.model}: {name} {', '.join(f'{s:.2f}' for s in seconds)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
