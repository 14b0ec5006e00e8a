#!/usr/bin/env python3
"""Time a card's tree stages on one case, three repeats each, after one synthesis without them: the voxel corrector
(``VoxelCorrector.correct``) and the learned expected-error map (``LearnedErrorMap.blend``), whichever it has; with
the SHA-256 of each stage's output, so that runs with different ``--threads`` (threads walking the trees' chunks,
``voxel_corrector.PREDICT_THREADS``; default: the module's) can be checked for identical results.

    .venv/bin/python scripts/time_tree_stages.py MODEL CASE_DIR [--cache DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import hashlib
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
    parser.add_argument("--threads", type=int, help="threads walking the trees' chunks (default: the module's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        from DCEDiffLib.diffusion import voxel_corrector

        voxel_corrector.PREDICT_THREADS = max(1, args.threads)
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
            output = stage(result.mean, ordered, zero, edge)
            seconds.append(time.perf_counter() - started)
        digest = hashlib.sha256(output.tobytes()).hexdigest()[:16]
        print(f"{args.model}: {name} {', '.join(f'{s:.2f}' for s in seconds)} s, output sha256 {digest}…")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
