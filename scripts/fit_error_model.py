#!/usr/bin/env python3
"""Fit a model's expected-error map on VALIDATION patients and write it into the model card (``error_model``).

For each validation case the model synthesizes early/late at its default settings (1 sample); per target, the
in-plane gradient magnitude of the synthetic image (normalised units) is binned by its quantiles over the body
voxels of all cases, and each bin gets the mean |synthetic − acquired| seen there (DCEDiffLib/diffusion/error_map.py);
then the radial factor: mean |error| over the mean edge-based estimate in shells of distance from the grid centre
(``--no-radial`` leaves it out). The card is rewritten atomically; the weights are not touched. Never run it on test
patients. The card's factors fitted on top of the old table (``t1pre_level_factor``, ``enhancement_factor``) are not
kept: refit them after it (scripts/fit_level_factor.py, scripts/fit_enhancement_factor.py).

``--cross-validate K`` first scores the recipe on held-out validation patients (K folds by case; median over the
held-out patients of Spearman(expected, |error|) and mean |error| / mean expected, in the body and in the prostate
label), for the edges alone and with the radial factor; ``--dry-run`` stops there without writing the card.

    .venv/bin/python scripts/fit_error_model.py MODEL --data DATA_DIR --split RUN/split.json [--cache DIR] [--cases N]
        [--cross-validate 3] [--dry-run]
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

PROSTATE_LABELS = ("peripheral_zone", "transition_zone", "lesion")


def fit_tables(cases, bins: int, radial: bool) -> dict:
    """One target's table from ``cases`` = [(synthetic, body mask, |error|, prostate mask or None), ...]."""
    from DCEDiffLib.diffusion.error_map import edge_feature, expected_error, fit_error_model, fit_radial_factor
    from DCEDiffLib.ood import gland_radius

    table = fit_error_model([edge_feature(m)[b] for m, b, _, _ in cases], [e[b] for _, b, e, _ in cases], bins=bins)
    if radial:
        radius = gland_radius(cases[0][0].shape)
        fitted = fit_radial_factor([expected_error(m, table)[b] for m, b, _, _ in cases],
                                   [e[b] for _, b, e, _ in cases], [radius[b] for _, b, _, _ in cases])
        table["radial"] = {key: [round(v, 4) for v in values] for key, values in fitted.items()}
    return table


def held_out_scores(cases, bins: int, folds: int) -> dict:
    """Median over held-out cases of (Spearman, mean |error| / mean expected) per region, edges alone and radial."""
    from DCEDiffLib.diffusion.error_map import expected_error
    from DCEDiffLib.evaluation.protocol import spearman

    rows = {"edges": [], "edges + radial": []}
    for fold in range(folds):
        train = [c for i, c in enumerate(cases) if i % folds != fold]
        for variant, radial in (("edges", False), ("edges + radial", True)):
            table = fit_tables(train, bins, radial)
            for i, (mean, body, error, prostate) in enumerate(cases):
                if i % folds != fold:
                    continue
                expected = expected_error(mean, table)
                row = {}
                for region, mask in (("body", body), ("prostate", prostate)):
                    if mask is not None and mask.sum() >= 50:
                        row[region] = (float(spearman(expected[mask], error[mask])),
                                       float(error[mask].mean() / max(expected[mask].mean(), 1e-12)))
                rows[variant].append(row)
    out = {}
    for variant, variant_rows in rows.items():
        out[variant] = {}
        for region in ("body", "prostate"):
            values = [r[region] for r in variant_rows if region in r]
            if values:
                out[variant][region] = {"spearman": round(float(np.median([v[0] for v in values])), 3),
                                        "ratio": round(float(np.median([v[1] for v in values])), 3),
                                        "cases": len(values)}
    return out


def main() -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.diffusion.error_map import ERROR_MODEL_VERSION, FEATURE, edge_feature
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
    parser.add_argument("--cross-validate", type=int, default=0, metavar="K",
                        help="first score the recipe on held-out validation patients (K folds)")
    parser.add_argument("--dry-run", action="store_true", help="do not write the card")
    args = parser.parse_args()

    names = json.loads(args.split.read_text(encoding="utf-8"))["validation"]
    if args.cases:
        names = names[:args.cases]
    model = load_model(args.model)
    card_path = model_paths(args.model)[1]
    targets = model.card["targets"]
    cases = {t: [] for t in targets}  # per target: (synthetic, body mask, |error|, prostate mask or None) per case
    for name in names:
        case = load_case(args.data / name, args.cache)
        result = synthesize_volume(model, model_conditions(model, case), samples=1, seed=0, device="cpu",
                                   adc_norm=case.norm.get("adc"))
        prostate = None
        if case.labels is not None and case.legend:
            prostate = np.isin(case.labels, [case.legend[k] for k in PROSTATE_LABELS if k in case.legend])
        for i, t in enumerate(targets):
            acquired = case.raw(t)
            error = np.abs(result.mean[i] - normalize(acquired, case.norm[t]))
            cases[t].append((result.mean[i], derive_body_mask(acquired), error, prostate))
        print(f"{name} done", flush=True)
    if args.cross_validate:
        for t in targets:
            print(f"{t}: held out ({args.cross_validate} folds): "
                  f"{json.dumps(held_out_scores(cases[t], args.bins, args.cross_validate))}", flush=True)
    if args.dry_run:
        return 0
    block = {"version": ERROR_MODEL_VERSION, "feature": FEATURE, "region": "body",
             "radial": None if args.no_radial else "factor per shell of distance from the grid centre (ood.gland_radius)",
             "targets": {},
             "fitted_on": f"{len(names)} validation patients of {args.data} ({args.split}), 1 sample, default "
                          "settings; scripts/fit_error_model.py"}
    for t in targets:
        table = fit_tables(cases[t], args.bins, radial=not args.no_radial)
        f = np.concatenate([edge_feature(m)[b] for m, b, _, _ in cases[t]])
        e = np.concatenate([err[b] for _, b, err, _ in cases[t]])
        predicted = np.interp(f, table["nodes"], table["mean_abs_error"])
        block["targets"][t] = {"nodes": table["nodes"], "mean_abs_error": table["mean_abs_error"],
                               "spearman_on_fit": round(float(spearman(predicted, e)), 4)}
        if "radial" in table:
            block["targets"][t]["radial"] = table["radial"]
        print(f"{t}: Spearman(edge estimate, |error|) on the fitted voxels {block['targets'][t]['spearman_on_fit']:+.3f}"
              + (f"; radial factor {table['radial']}" if "radial" in table else ""))
    learned = (model.card.get("error_model") or {}).get("learned")
    if learned:  # the trees around the prostate do not read the edge tables: they stay
        block["learned"] = learned
    card = dict(model.card, error_model=block)
    check_card(card, card_path)
    write_text_atomic(card_path, json.dumps(card, indent=2))
    print(f"wrote error_model into {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
