#!/usr/bin/env python3
"""Fit the expected-error map's factor in the drawn enhancement (``error_model.targets.<t>.enhancement_factor``) on
patients the networks never saw, and write it into the model card (copy the card's files first to keep the original).

For each case of ``--data`` the card synthesizes early/late at its default settings (1 sample). Over the body voxels
outside the learned trees' region (``voxel_corrector.REGION_RADIUS``: there the trees stand and the factor does not
act), the card's own edge-based estimate (edge table × level factor × radial factor) is compared with |error| in
quantile bins of the drawn enhancement |synthetic − T1-pre| (``error_map.fit_enhancement_factor``). Two variants
are scored first, K folds by patient (median over held-out patients of the Spearman of the estimate with |error| and of
mean |error| / mean estimate, over the same voxels):

- ``edges x enhancement``: the card's estimate times the factor;
- ``enhancement alone``: the edge table replaced by a constant (the factor then carries the whole ranking; the level
  and radial factors stay).

The variant with the higher held-out body Spearman (mean of the targets' medians) is fitted on all patients and
written; ``--dry-run`` stops after the scores. Never run it on validation or test patients you judge the result on.

    .venv/bin/python scripts/fit_enhancement_factor.py MODEL --data DATA_DIR [--cache DIR] [--cases N] [--bins 10]
        [--folds 3] [--dry-run]
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

VARIANTS = ("edges x enhancement", "enhancement alone")


def base_estimate(estimate_parts: dict, variant: str) -> np.ndarray:
    """The estimate the factor multiplies: the card's edge estimate with its level and radial factors, or (for
    ``enhancement alone``) those factors alone (the edge table taken as a constant 1)."""
    if variant == VARIANTS[0]:
        return estimate_parts["edge"] * estimate_parts["scale"]
    return estimate_parts["scale"]


def fit_variant(cases: list, variant: str, bins: int) -> dict:
    """The factor table of ``variant`` fitted on ``cases`` (dicts with edge, scale, error, drawn arrays)."""
    from DCEDiffLib.diffusion.error_map import fit_enhancement_factor

    return fit_enhancement_factor([base_estimate(c, variant) for c in cases], [c["error"] for c in cases],
                                  [c["drawn"] for c in cases], bins=bins)


def apply_factor(case: dict, variant: str, factor: dict) -> np.ndarray:
    """The variant's estimate of one case with the fitted factor."""
    return base_estimate(case, variant) * np.interp(case["drawn"], factor["nodes"], factor["factor"])


def held_out_scores(cases: list, bins: int, folds: int) -> dict:
    """Per variant (and the card's estimate as it is): median over held-out cases of the Spearman of the estimate
    with |error| and of mean |error| / mean estimate."""
    from DCEDiffLib.evaluation.protocol import spearman

    rows = {name: [] for name in ("card as it is",) + VARIANTS}
    for fold in range(folds):
        train = [c for i, c in enumerate(cases) if i % folds != fold]
        fitted = {variant: fit_variant(train, variant, bins) for variant in VARIANTS}
        for i, case in enumerate(cases):
            if i % folds != fold or case["error"].size < 50:
                continue
            estimates = {"card as it is": base_estimate(case, VARIANTS[0])}
            estimates.update({v: apply_factor(case, v, fitted[v]) for v in VARIANTS})
            for name, estimate in estimates.items():
                rows[name].append((float(spearman(estimate, case["error"])),
                                   float(case["error"].mean() / max(estimate.mean(), 1e-12))))
    return {name: {"spearman": round(float(np.median([r[0] for r in found])), 4),
                   "ratio": round(float(np.median([r[1] for r in found])), 4), "cases": len(found)}
            for name, found in rows.items()}


def case_arrays(model, case, tables: dict) -> dict:
    """Per target: the edge estimate, its level × radial scale, |error| and the drawn enhancement over the body
    voxels outside the trees' region, as float32 arrays."""
    from DCEDiffLib.diffusion.error_map import _edge_estimate, level_factor
    from DCEDiffLib.diffusion.synthesis import synthesize_volume, voxel_corrector_inputs
    from DCEDiffLib.diffusion.voxel_corrector import region_weight
    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask
    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.normalization import normalize
    from DCEDiffLib.ood import gland_radius
    from DCEDiffLib.t1pre_level import conditions_gland_level

    conditions = model_conditions(model, case)
    result = synthesize_volume(model, conditions, samples=1, seed=0, device="cpu", adc_norm=case.norm.get("adc"))
    _, zero = voxel_corrector_inputs(model.card, conditions)
    level = conditions_gland_level(conditions, model.card["conditions"])
    radius = gland_radius(zero.shape)
    outside = region_weight(radius) == 0
    out = {}
    for i, target in enumerate(model.card["targets"]):
        table = tables[target]
        acquired = case.raw(target)
        keep = derive_body_mask(acquired) & outside
        radial = table.get("radial")
        scale = level_factor(table, level) * (np.interp(radius, radial["nodes"], radial["factor"]) if radial else 1.0)
        scale = np.broadcast_to(scale, zero.shape)
        out[target] = {"edge": _edge_estimate(result.mean[i], table)[keep].astype(np.float32),
                       "scale": np.asarray(scale)[keep].astype(np.float32),
                       "error": np.abs(result.mean[i] - normalize(acquired, case.norm[target]))[keep]
                       .astype(np.float32),
                       "drawn": np.abs(result.mean[i] - zero)[keep].astype(np.float32)}
    return out


def main(argv=None) -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.diffusion.error_map import error_models_of_card
    from DCEDiffLib.diffusion.model_files import check_card, load_model, model_paths
    from DCEDiffLib.training.case_data import load_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", type=Path, required=True,
                        help="phantom cases with acquired DCE (not validation/test)")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--cases", type=int, default=0, help="at most this many cases (0: all)")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="score the variants; do not write the card")
    args = parser.parse_args(argv)

    model = load_model(args.model)
    card_path = model_paths(args.model)[1]
    tables = error_models_of_card(model.card, model.card["targets"])
    if tables is None:
        raise SystemExit(f"{card_path}: the card has no error_model to add a factor to (scripts/fit_error_model.py)")
    if any("enhancement_factor" in table for table in tables.values()):
        raise SystemExit(f"{card_path}: the card already has an enhancement_factor; start from a card without one")
    folders = sorted(p for p in args.data.iterdir() if p.name.startswith("case_") and p.is_dir())
    folders = folders[:args.cases] if args.cases else folders
    if len(folders) < 2 * args.folds:
        raise SystemExit(f"{args.data}: {len(folders)} cases; at least {2 * args.folds} are needed for "
                         f"{args.folds} folds")
    cases = {t: [] for t in model.card["targets"]}
    for folder in folders:
        found = case_arrays(model, load_case(folder, args.cache), tables)
        for target, arrays in found.items():
            cases[target].append(arrays)
        print(f"{folder.name} done", flush=True)

    scores = {t: held_out_scores(cases[t], args.bins, args.folds) for t in cases}
    for target, rows in scores.items():
        for name, row in rows.items():
            print(f"{target}: {name}: held-out body Spearman {row['spearman']:+.3f}, ratio {row['ratio']:.3f} "
                  f"({row['cases']} patients)", flush=True)
    chosen = max(VARIANTS, key=lambda v: np.mean([scores[t][v]["spearman"] for t in scores]))
    print(f"chosen: {chosen}")
    if args.dry_run:
        return 0
    card = json.loads(json.dumps(model.card))
    for target in cases:
        entry = card["error_model"]["targets"][target]
        factor = fit_variant(cases[target], chosen, args.bins)
        entry["enhancement_factor"] = dict(factor, nodes=[round(v, 5) for v in factor["nodes"]],
                                           factor=[round(v, 4) for v in factor["factor"]],
                                           variant=chosen, held_out=scores[target],
                                           fitted_on=f"{len(folders)} patients of {args.data}, body voxels outside "
                                                     "the trees' region, 1 sample; scripts/fit_enhancement_factor.py")
        if chosen == VARIANTS[1]:  # the edge table becomes a constant 1: the factor carries the ranking
            entry["edges_before_enhancement"] = {"nodes": entry["nodes"], "mean_abs_error": entry["mean_abs_error"]}
            entry["nodes"], entry["mean_abs_error"] = [0.0, 1.0], [1.0, 1.0]
        print(f"{target}: enhancement_factor nodes {entry['enhancement_factor']['nodes']} "
              f"factor {entry['enhancement_factor']['factor']}")
    check_card(card, card_path)
    write_text_atomic(card_path, json.dumps(card, indent=2))
    print(f"wrote the enhancement_factor into {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
