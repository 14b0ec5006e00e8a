"""Choose a residual model's sampling settings on VALIDATION patients (never the test set).

    python scripts/tune_residual_sampling.py MODEL --data runs/data_A --split runs/mean/split.json \
        --cache runs/cache [--starts none,0.5,0.8] [--steps 3,5] [--temperatures 1,0.5] [--cases 3] [--fid]

For each (start level, steps, residual temperature) it synthesizes every chosen validation case with one sample and prints whole-grid
PSNR and enhancement Pearson r in the prostate and the lesions (means over cases and early/late), and the seconds;
with ``--fid`` also each setting's FID and KID against the acquired slices (as ``dcediff evaluate`` computes them),
once all settings are synthesized.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> int:
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.evaluation.case_evaluation import evaluate_case
    from DCEDiffLib.evaluation.metrics import decode_value
    from DCEDiffLib.modalities import INPUT_MODALITIES, TARGET_MODALITIES
    from DCEDiffLib.model_registry import resolve_model
    from DCEDiffLib.normalization import denormalize
    from DCEDiffLib.training.case_data import list_case_dirs, load_case
    from DCEDiffLib.training.split import read_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--starts", default="none,0.5,0.8")
    parser.add_argument("--steps", default="5")
    parser.add_argument("--temperatures", default="1.0")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fid", action="store_true", help="also FID/KID of every setting (slow on a CPU)")
    args = parser.parse_args()
    predictions = {}

    model = load_model(resolve_model(args.model))
    names = set(read_split(args.split)["validation"])
    cases = [load_case(d, args.cache) for d in list_case_dirs(args.data) if d.name in names][:args.cases]
    channels = [INPUT_MODALITIES.index(m) for m in model.card["conditions"]]
    print(f"validation cases: {', '.join(c.name for c in cases)}")
    print("start | steps | temperature | PSNR (dB) | r prostate | r lesion | seconds")
    settings = [(start, int(steps), float(t)) for start in args.starts.split(",")
                for steps in args.steps.split(",") for t in args.temperatures.split(",")]
    for start, steps, temperature in settings:
        model.network.temperature = temperature
        psnr, r_pro, r_les, seconds = [], [], [], 0.0
        for case in cases:
            began = time.perf_counter()
            result = synthesize_volume(model, case.conditions[channels], steps=steps, samples=1, seed=args.seed,
                                       device="cpu", warm_start=start, adc_norm=case.norm.get("adc"))
            seconds += time.perf_counter() - began
            synthetic = {t.split("_")[1]: denormalize(result.mean[i], case.norm[t])
                         for i, t in enumerate(TARGET_MODALITIES)}
            acquired = {t.split("_")[1]: case.raw(t) for t in TARGET_MODALITIES}
            if args.fid:
                predictions.setdefault(f"start {start}, steps {steps}, temperature {temperature:g}", []).append(synthetic)
            metrics = evaluate_case(synthetic, acquired, case.raw("t1pre"), labels=case.labels,
                                    legend=case.legend)
            for target in ("early", "late"):
                psnr.append(decode_value(metrics[target]["whole"]["psnr"]))
                r_pro.append(decode_value(metrics[target]["enhancement"]["prostate"]["pearson"]))
                r_les.append(decode_value(metrics[target]["enhancement"]["lesion"]["pearson"]))

        def mean(values):
            values = [v for v in values if v is not None]
            return float(np.mean(values)) if values else float("nan")

        print(f"{start} | {steps} | {temperature:g} | {mean(psnr):.2f} | {mean(r_pro):.3f} | {mean(r_les):.3f} | "
              f"{seconds / len(cases):.1f}", flush=True)
    if args.fid:
        from DCEDiffLib.evaluation_runner import fid_of_predictions

        for name, scores in fid_of_predictions(predictions, cases).items():
            if name == "skipped":
                print(f"FID/KID skipped: {scores}")
                continue
            print(name + ": " + "; ".join(f"{t} FID {v['fid']:.1f} KID {v['kid']['mean']:.4f} ± {v['kid']['std']:.4f}"
                                          for t, v in scores.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
