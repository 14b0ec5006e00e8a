#!/usr/bin/env python3
"""Fit the expected-error map's level by T1 protocol (``error_model.targets.<t>.t1pre_level_factor``) on VALIDATION
patients and write it into the model card (as ``fit_error_model.py`` does: copy the card's files first to keep the
original).

Reads a ``dcediff evaluate`` of the card on validation patients (its per-patient body ratio, mean |error| / mean
expected) and each patient's T1-pre gland level (``t1pre_level.gland_level`` of the model's conditions), splits the
patients at ``--gap`` (the two ends of the gap between the training exams' levels without and with fat suppression,
docs/model_quality.md, twenty-second step) and stores, per target, the median body ratio of each side as the factor at
that node: an exam's edge estimate is then multiplied by the factor interpolated at its level. When the evaluated card
already had level factors, its ratios were measured with them applied, so each side's new factor is the old factor
there times the median ratio (a refit keeps what the first fit corrected).

    .venv/bin/python scripts/fit_level_factor.py MODEL --evaluation EVAL/metrics.json --data DATA_DIR \\
        [--cache DIR] [--gap 0.376 0.472] [--leave-out-gap]

Refuses an evaluation of other weights (the evaluated model's SHA-256), patients whose level lies inside the gap (unless
``--leave-out-gap``: then they are left out of the fit), and sides with fewer than 3 patients.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

MIN_PER_GROUP = 3


def group_factors(levels, ratios, gap) -> list:
    """[median ratio of the patients at or below gap[0], median ratio of those at or above gap[1]]; SystemExit
    when a side has fewer than :data:`MIN_PER_GROUP` patients or a patient lies inside the gap."""
    levels, ratios = np.asarray(levels, float), np.asarray(ratios, float)
    low, high = levels <= gap[0], levels >= gap[1]
    if not np.all(low | high):
        raise SystemExit(f"patients with T1-pre gland levels {np.round(levels[~(low | high)], 3).tolist()} lie inside "
                         f"the gap {gap}: the two protocols are not separated there")
    if low.sum() < MIN_PER_GROUP or high.sum() < MIN_PER_GROUP:
        raise SystemExit(f"{int(low.sum())} patients below and {int(high.sum())} above the gap: at least "
                         f"{MIN_PER_GROUP} each are needed")
    return [round(float(np.median(ratios[low])), 4), round(float(np.median(ratios[high])), 4)]


def outside_gap(levels, gap) -> list:
    """Indices of the patients whose level is at or below ``gap[0]`` or at or above ``gap[1]`` (the fit's two sides;
    ``--leave-out-gap`` keeps only these)."""
    return [i for i, level in enumerate(levels) if not gap[0] < level < gap[1]]


def refit_factors(levels, ratios, gap, applied_table: dict):
    """(new factors, the factors the evaluated card applied at the two nodes): :func:`group_factors` times what was
    applied when the ratios were measured (``applied_table``: the evaluated card's table of the target; 1 where it has
    no level factor), so that a refit corrects what is left, not the whole error again."""
    from DCEDiffLib.diffusion.error_map import level_factor

    before = [level_factor(applied_table, g) for g in gap]
    return [round(f * b, 4) for f, b in zip(group_factors(levels, ratios, gap), before)], before


def leave_one_out(levels, ratios, gap, band=(0.6, 1.6)) -> dict:
    """Each patient's body ratio after dividing by the factor of its side fitted without it (the tree region, a few
    per cent of the body, is ignored): the share inside ``band`` and the median, before and after."""
    levels, ratios = np.asarray(levels, float), np.asarray(ratios, float)
    high = levels >= gap[1]
    after = np.array([ratios[i] / np.median(ratios[(np.arange(ratios.size) != i) & (high == high[i])])
                      for i in range(ratios.size)])
    inside = lambda values: round(float(np.mean((values >= band[0]) & (values <= band[1]))), 2)
    return {"inside_before": inside(ratios), "inside_after": inside(after),
            "median_before": round(float(np.median(ratios)), 2), "median_after": round(float(np.median(after)), 2)}


def main(argv=None) -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.diffusion.error_map import LEVEL_FEATURE
    from DCEDiffLib.diffusion.model_files import check_card, load_model, model_paths
    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.t1pre_level import conditions_gland_level
    from DCEDiffLib.training.case_data import load_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--evaluation", type=Path, required=True, help="metrics.json of dcediff evaluate on the card")
    parser.add_argument("--data", type=Path, required=True, help="the evaluated patients' case folders")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--gap", type=float, nargs=2, default=(0.376, 0.472))
    parser.add_argument("--leave-out-gap", action="store_true",
                        help="leave out the patients whose level lies inside the gap (they take interpolated factors "
                             "and belong to neither protocol) instead of refusing the evaluation")
    args = parser.parse_args(argv)

    model = load_model(args.model)
    metrics = json.loads(args.evaluation.read_text(encoding="utf-8"))
    meta = metrics["meta"]
    evaluated = Path(meta.get("model", ""))
    evaluated_card = load_model(evaluated).card if evaluated.is_file() else {}
    if evaluated_card.get("weights_sha256") != model.card.get("weights_sha256"):
        raise SystemExit(f"{args.evaluation}: an evaluation of {evaluated}, whose weights are not those of "
                         f"{args.model}")
    names, per_case = meta["cases"], meta["protocol"]["per_case"]
    levels = [conditions_gland_level(model_conditions(model, load_case(args.data / n, args.cache)),
                                     model.card["conditions"]) for n in names]
    if args.leave_out_gap:
        kept = outside_gap(levels, args.gap)
        if len(kept) < len(names):
            print(f"left out {len(names) - len(kept)} patients inside the gap: "
                  f"{[(names[i], round(levels[i], 3)) for i in range(len(names)) if i not in kept]}")
        names, per_case, levels = [names[i] for i in kept], [per_case[i] for i in kept], [levels[i] for i in kept]
    card = json.loads(json.dumps(model.card))
    block = card["error_model"]
    applied = (evaluated_card.get("error_model") or {}).get("targets") or {}
    for target, phase in zip(model.card["targets"], ("early", "late")):
        ratios = [c["expected_error_calibration"][phase]["body"]["ratio"] for c in per_case]
        factors, before = refit_factors(levels, ratios, args.gap, applied.get(target) or {})
        block["targets"][target]["t1pre_level_factor"] = {
            "feature": LEVEL_FEATURE, "nodes": [float(g) for g in args.gap], "factor": factors,
            "fitted_on": f"{len(names)} validation patients of {args.data} ({args.evaluation}): median body ratio "
                         f"(mean |error| / mean expected) of the exams at or below / at or above the nodes"
                         + (f", times the evaluated card's factors there ({before[0]:g}, {before[1]:g})"
                            if before != [1.0, 1.0] else "")}
        check = leave_one_out(levels, ratios, args.gap)
        print(f"{target}: factor {factors[0]} at level ≤ {args.gap[0]}, {factors[1]} at ≥ {args.gap[1]}; leave one "
              f"out: body ratio in 0.6–1.6 for {check['inside_before']} → {check['inside_after']} of the patients, "
              f"median {check['median_before']} → {check['median_after']}")
    card_path = model_paths(args.model)[1]
    check_card(card, card_path)
    write_text_atomic(card_path, json.dumps(card, indent=2))
    print(f"wrote the level factors into {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
