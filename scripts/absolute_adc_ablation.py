"""Does a mean network use its absolute-ADC channel (DCEDiffLib/diffusion/absolute_adc.py)? Scores, on a split's
validation patients, the shipped mean, the given mean with each case's true ADC normalisation, and the same mean with
a neutral one (0..3000 for every case: the channel then is a fixed affine map of the normalised ADC and carries
nothing the normalised channel does not). If "neutral" scores like "candidate", the channel is not used.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/absolute_adc_ablation.py MEAN.safetensors \
           [--data runs/data_physiology] [--split runs/mean5/split.json] [--cache runs/cache] [--max-cases N]
Prints each case's early lesion r, then per metric and phase the medians and the paired means against the shipped
mean (the per-case metrics are those of ``dcediff evaluate``: ``evaluation_runner.PAIRED_METRICS``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from DCEDiffLib.diffusion.model_files import load_model  # noqa: E402
from DCEDiffLib.evaluation.case_evaluation import evaluate_case  # noqa: E402
from DCEDiffLib.evaluation_runner import PAIRED_METRICS, _spacing_kji, case_metric, synthesize_arrays  # noqa: E402
from DCEDiffLib.modalities import TARGET_MODALITIES  # noqa: E402
from DCEDiffLib.normalization import NormParams  # noqa: E402
from DCEDiffLib.training.case_data import load_case  # noqa: E402

SHORT = {"dce_early": "early", "dce_late": "late"}
NEUTRAL = NormParams(0.0, 3000.0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mean", help="a regression model whose card has absolute_adc")
    parser.add_argument("--shipped", default="Resources/Models/dcediff_cpu_phantom_regression")
    parser.add_argument("--data", type=Path, default=Path("runs/data_physiology"))
    parser.add_argument("--split", type=Path, default=Path("runs/mean5/split.json"))
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
    parser.add_argument("--max-cases", type=int, default=None)
    args = parser.parse_args(argv)
    names = json.loads(args.split.read_text())["validation"][:args.max_cases]
    shipped, candidate = load_model(args.shipped), load_model(args.mean)
    rows = {"shipped": [], "candidate": [], "neutral": []}
    for name in names:
        case = load_case(args.data / name, args.cache)
        acquired = {SHORT[t]: case.raw(t) for t in TARGET_MODALITIES}
        neutral = copy.copy(case)  # the same arrays; only the ADC's normalisation differs
        neutral.norm = dict(case.norm, adc=NEUTRAL)
        for key, model, variant in (("shipped", shipped, case), ("candidate", candidate, case),
                                    ("neutral", candidate, neutral)):
            prediction = synthesize_arrays(model, variant, "dpmpp", 5, 1, 0, "cpu")
            metrics = evaluate_case(prediction, acquired, case.raw("t1pre"), labels=case.labels, legend=case.legend,
                                    spacing=_spacing_kji(case.grid))
            rows[key].append({f"{m}.{p}": case_metric(metrics, p, path) for m, path in PAIRED_METRICS.items()
                              for p in ("early", "late")})
        print(name, {k: round(v[-1]["r_lesion.early"] or float("nan"), 3) for k, v in rows.items()}, flush=True)
    for metric in ("psnr_whole", "r_prostate", "r_lesion"):
        for phase in ("early", "late"):
            key = f"{metric}.{phase}"
            values = {k: np.array([r[key] for r in v], float) for k, v in rows.items()}
            line = [f"{key:18s}"] + [f"{k} median {np.nanmedian(v):.3f}" for k, v in values.items()]
            line += [f"{k}−shipped {np.nanmean(values[k] - values['shipped']):+.4f}" for k in ("candidate", "neutral")]
            print("  ".join(line))


if __name__ == "__main__":
    main()
