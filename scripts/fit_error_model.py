#!/usr/bin/env python3
"""Fit a model's expected-error map on VALIDATION patients and write it into the model card (``error_model``).

For each validation case the model synthesizes early/late at its default settings (1 sample); per target, the
in-plane gradient magnitude of the synthetic image (normalised units) is binned by its quantiles over the body
voxels of all cases, and each bin gets the mean |synthetic − acquired| seen there (DCEDiffLib/diffusion/error_map.py);
then the radial factor: mean |error| over the mean edge-based estimate in shells of distance from the grid centre
(``--no-radial`` leaves it out).
The card is rewritten atomically; the weights are not touched. Never run it on test patients.

    .venv/bin/python scripts/fit_error_model.py MODEL --data DATA_DIR --split RUN/split.json [--cache DIR] [--cases N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.diffusion.error_map import (ERROR_MODEL_VERSION, FEATURE, edge_feature, expected_error,
                                                fit_error_model, fit_radial_factor)
    from DCEDiffLib.ood import gland_radius
    from DCEDiffLib.diffusion.model_files import check_card, load_model, model_paths
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask
    from DCEDiffLib.evaluation.protocol import spearman
    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.normalization import normalize
    from DCEDiffLib.training.case_data import load_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True, help="split.json of the training run (its validation list)")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--cases", type=int, default=0, help="at most this many validation cases (0: all)")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--no-radial", action="store_true", help="edges only (the version of 2026-11-30, step 4)")
    args = parser.parse_args()

    names = json.loads(args.split.read_text(encoding="utf-8"))["validation"]
    if args.cases:
        names = names[:args.cases]
    model = load_model(args.model)
    card_path = model_paths(args.model)[1]
    targets = model.card["targets"]
    features = {t: [] for t in targets}
    errors = {t: [] for t in targets}
    means = {t: [] for t in targets}  # (synthetic, body mask, |error|) per case, for the radial factor
    for name in names:
        case = load_case(args.data / name, args.cache)
        result = synthesize_volume(model, model_conditions(model, case), samples=1, seed=0, device="cpu")
        for i, t in enumerate(targets):
            acquired = case.raw(t)
            body = derive_body_mask(acquired)
            feature = edge_feature(result.mean[i])
            error = np.abs(result.mean[i] - normalize(acquired, case.norm[t]))
            features[t].append(feature[body])
            errors[t].append(error[body])
            means[t].append((result.mean[i], body, error))
        print(f"{name} done", flush=True)
    block = {"version": ERROR_MODEL_VERSION, "feature": FEATURE, "region": "body",
             "radial": None if args.no_radial else "factor per shell of distance from the grid centre (ood.gland_radius)",
             "targets": {},
             "fitted_on": f"{len(names)} validation patients of {args.data} ({args.split}), 1 sample, default "
                          "settings; scripts/fit_error_model.py"}
    for t in targets:
        table = fit_error_model(features[t], errors[t], bins=args.bins)
        f, e = np.concatenate(features[t]), np.concatenate(errors[t])
        predicted = np.interp(f, table["nodes"], table["mean_abs_error"])
        block["targets"][t] = {"nodes": table["nodes"], "mean_abs_error": table["mean_abs_error"],
                               "spearman_on_fit": round(float(spearman(predicted, e)), 4)}
        if not args.no_radial:
            radius = gland_radius(means[t][0][0].shape)
            radial = fit_radial_factor([expected_error(m, table)[b] for m, b, _ in means[t]],
                                       [err[b] for _, b, err in means[t]], [radius[b] for _, b, _ in means[t]])
            block["targets"][t]["radial"] = {k: [round(v, 4) for v in values] for k, values in radial.items()}
            print(f"{t}: radial factor {block['targets'][t]['radial']}")
        print(f"{t}: Spearman(expected, |error|) on the fitted voxels {block['targets'][t]['spearman_on_fit']:+.3f}")
    card = dict(model.card, error_model=block)
    check_card(card, card_path)
    write_text_atomic(card_path, json.dumps(card, indent=2))
    print(f"wrote error_model into {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
