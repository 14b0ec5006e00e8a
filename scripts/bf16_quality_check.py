#!/usr/bin/env python3
"""bf16 against fp32 on the CPU: the shipped model (or --model) on the shipped sample case (or --case).

Preprocesses the case once (registration included, as `dcediff synthesize` does), then samples the same volume
with the same seed in fp32 and bf16, alternating the order each round, and prints one JSON document:
max/mean |bf16 − fp32| of the synthetic volumes on the DCE intensity scale (also as a fraction of the acquired
DCE's 0.5–99.5 percentile range), PSNR/SSIM of each against the acquired DCE (whole grid, as metrics.json), the
prostate enhancement correlation, and the sampling seconds of every round, wall-clock and the process's CPU
time (medians reported; CPU time is the fairer comparison on a machine shared with other work). The bound that
``--precision auto`` relies on is in DCEDiffLib/precision.py and docs/performance.md ("bf16 on the CPU").

    nice -n 19 .venv/bin/python scripts/bf16_quality_check.py --rounds 3 [--samples 1] [--threads 1] [--out X.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="default: the shipped model")
    parser.add_argument("--case", type=Path, help="default: the shipped phantom case")
    parser.add_argument("--rounds", type=int, default=3, help="fp32 + bf16 runs back to back, this many times")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's); with 1, CPU time is the "
                                                     "work done, whatever else the machine runs")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    import SimpleITK as sitk
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from DCEDiffLib import precision as precision_rules
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.evaluation.case_evaluation import evaluate_case
    from DCEDiffLib.evaluation.metrics import robust_bounds
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR, resolve_model
    from DCEDiffLib.normalization import denormalize
    from DCEDiffLib.pipeline import _legend
    from DCEDiffLib.preprocess import preprocess_case
    from DCEDiffLib.target_scale import target_norm_params
    from DCEDiffLib.training.case_data import find_case_inputs

    weights = resolve_model(args.model)
    model = load_model(weights)
    case_dir = args.case or SAMPLE_CASE_DIR
    inputs = {k: str(v) for k, v in find_case_inputs(Path(case_dir)).items()
              if k in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late", "labels")}
    case = preprocess_case(inputs, register=True)
    cond = np.stack([case.normalized(m) for m in model.card["conditions"]]).astype(np.float32)
    tnorm = target_norm_params(case.norm["t1pre"])
    acquired = {s: sitk.GetArrayFromImage(case.images[f"dce_{s}"]).astype(np.float32) for s in ("early", "late")}
    t1pre = sitk.GetArrayFromImage(case.images["t1pre"]).astype(np.float32)
    labels = sitk.GetArrayFromImage(case.images["labels"]) if "labels" in case.images else None
    legend = _legend(inputs)

    seconds = {"fp32": [], "bf16": []}
    cpu_seconds = {"fp32": [], "bf16": []}  # CPU time of this process (all threads): less hurt by other load
    volumes = {}
    for round_index in range(args.rounds):
        order = ("fp32", "bf16") if round_index % 2 == 0 else ("bf16", "fp32")
        for name in order:
            cpu_started = time.process_time()
            result = synthesize_volume(model, cond, samples=args.samples, seed=args.seed, device="cpu",
                                       precision=name, adc_norm=case.norm.get("adc"))
            cpu_seconds[name].append(round(time.process_time() - cpu_started, 2))
            seconds[name].append(round(result.seconds, 2))
            values = {s: denormalize(result.mean[i], tnorm) for i, s in enumerate(("early", "late"))}
            if name in volumes:  # same seed, same precision: the runs must agree
                drift = max(float(np.abs(values[s] - volumes[name][s]).max()) for s in values)
                assert drift < 1e-3, f"{name} not reproducible between rounds ({drift})"
            volumes[name] = values
            print(f"round {round_index + 1} {name}: {result.seconds:.2f} s wall, {cpu_seconds[name][-1]:.2f} s CPU",
                  file=sys.stderr, flush=True)

    report = {"model": weights.name, "weights_sha256": model.card.get("weights_sha256"),
              "objective": model.card.get("objective", "diffusion"), "case": str(case_dir),
              "samples": args.samples, "seed": args.seed, "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "native_bf16_flags": precision_rules.native_bf16_flags(),
              "load_average_1min": round(__import__("os").getloadavg()[0], 2),
              "seconds": seconds, "median_seconds": {k: statistics.median(v) for k, v in seconds.items()},
              "cpu_seconds": cpu_seconds,
              "median_cpu_seconds": {k: statistics.median(v) for k, v in cpu_seconds.items()}, "targets": {}}
    report["speedup_bf16_wall"] = round(report["median_seconds"]["fp32"] / report["median_seconds"]["bf16"], 3)
    report["speedup_bf16_cpu"] = round(report["median_cpu_seconds"]["fp32"] / report["median_cpu_seconds"]["bf16"],
                                       3)
    scores = {name: evaluate_case(volumes[name], acquired, t1pre, labels=labels, legend=legend)
              for name in ("fp32", "bf16")}
    for s in ("early", "late"):
        low, high = robust_bounds(acquired[s])
        delta = np.abs(volumes["bf16"][s] - volumes["fp32"][s])
        row = {"max_abs_diff": float(delta.max()), "mean_abs_diff": float(delta.mean()),
               "acquired_range_0.5_99.5": float(high - low),
               "mean_abs_diff_fraction_of_range": float(delta.mean() / (high - low)),
               "max_abs_diff_fraction_of_range": float(delta.max() / (high - low))}
        for name in ("fp32", "bf16"):
            whole = scores[name][s]["whole"]
            row[f"psnr_{name}"] = whole["psnr"]
            row[f"ssim_{name}"] = whole["ssim"]
            row[f"prostate_enhancement_r_{name}"] = scores[name][s]["enhancement"].get("prostate", {}).get("pearson")
        row["psnr_diff_db"] = row["psnr_bf16"] - row["psnr_fp32"]
        report["targets"][s] = row
    worst_mean = max(r["mean_abs_diff_fraction_of_range"] for r in report["targets"].values())
    worst_psnr = max(abs(r["psnr_diff_db"]) for r in report["targets"].values())
    bound = precision_rules.BF16_BOUND
    report["bound"] = bound
    report["within_bound"] = bool(worst_mean < bound["mean_abs_diff_fraction"] and worst_psnr < bound["psnr_db"])
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
