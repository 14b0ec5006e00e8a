#!/usr/bin/env python3
"""Which per-voxel map ranks the synthesis error best? Sample spread against simple proxies, on VALIDATION cases.

The model-quality issue asks for an uncertainty map whose Spearman correlation with |error| is high. The shipped
default (the residual sampled at a low temperature by a deterministic ODE sampler) gives a sample std that hardly
ranks the error (docs/model_quality.md). This script measures, on the same cases and the same error (of the mean
over K samples at the shipped settings), Spearman(map, |error|) in the body and the prostate for:

- ``std@T``: the sample std over K samples at residual temperature T (each temperature in --temperatures);
- ``|enhancement|``: the magnitude of the predicted enhancement (mean − T1-pre mapped to the target scale);
- ``gradient``: the in-plane gradient magnitude of the mean prediction (edges, where registration and partial
  volume put the error).

Never run it on test patients (docs/model_quality.md: an honest protocol).

    .venv/bin/python scripts/uncertainty_sources.py --data VALIDATION_DIR [--cache DIR] [--samples 4] \
        [--temperatures 0.25,1] [--cases 6]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> int:
    from DCEDiffLib.diffusion.error_map import edge_feature
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask, region_masks
    from DCEDiffLib.evaluation.protocol import spearman
    from DCEDiffLib.modalities import INPUT_MODALITIES, TARGET_MODALITIES
    from DCEDiffLib.model_registry import resolve_model
    from DCEDiffLib.normalization import denormalize
    from DCEDiffLib.training.case_data import list_case_dirs, load_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--temperatures", default="0.25,1")
    parser.add_argument("--cases", type=int, default=6)
    args = parser.parse_args()

    model = load_model(resolve_model(args.model))
    shipped_temperature = float(model.network.temperature)
    channels = [INPUT_MODALITIES.index(m) for m in model.card["conditions"]]
    temperatures = [float(t) for t in args.temperatures.split(",")]
    rows = {}
    for case_dir in list_case_dirs(args.data)[:args.cases]:
        case = load_case(case_dir, args.cache)
        conditions = case.conditions[channels]
        results = {}
        for temperature in sorted(set(temperatures) | {shipped_temperature}):
            model.network.temperature = temperature
            results[temperature] = synthesize_volume(model, conditions, samples=args.samples, seed=0, device="cpu",
                                                     adc_norm=case.norm.get("adc"))
        masks, _ = region_masks(case.labels, case.legend, conditions.shape[1:])
        t1pre = case.raw("t1pre")
        for index, target in enumerate(TARGET_MODALITIES):
            phase = target.split("_")[1]
            acquired = case.raw(target)
            mean = denormalize(results[shipped_temperature].mean[index], case.norm[target])
            error = np.abs(mean - acquired)
            # std is a difference of two intensities: scale it with the target's normalisation slope
            scale = float(denormalize(np.ones(1), case.norm[target])[0] - denormalize(np.zeros(1), case.norm[target])[0])
            maps = {f"std@{t:g}": results[t].std[index] * scale for t in temperatures}
            maps["|enhancement|"] = np.abs(mean - t1pre)
            maps["gradient"] = edge_feature(mean)
            regions = {"body": derive_body_mask(acquired), "prostate": masks["prostate"]}
            for name, values in maps.items():
                for region, mask in regions.items():
                    if mask is not None and mask.sum() > 50:
                        rows.setdefault((name, region, phase), []).append(spearman(values[mask], error[mask]))
        print(f"{case.name} done", flush=True)
    model.network.temperature = shipped_temperature
    print(f"\nSpearman(map, |error of the mean at T = {shipped_temperature:g}|), median over cases "
          f"(K = {args.samples}, {args.cases} cases)")
    print("map | body early | body late | prostate early | prostate late")
    names = list(dict.fromkeys(key[0] for key in rows))
    for name in names:
        cells = []
        for region in ("body", "prostate"):
            for phase in ("early", "late"):
                values = [v for v in rows.get((name, region, phase), []) if v is not None]
                cells.append(f"{np.median(values):+.2f}" if values else "–")
        print(f"{name} | " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
