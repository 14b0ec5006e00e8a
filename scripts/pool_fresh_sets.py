#!/usr/bin/env python3
"""Pool the per-patient enhancement r of several fresh test sets scored with one configuration.

One fresh set of ten patients holds one or two lesions each, so its median lesion r swings with the lesions it
happens to draw (docs/model_quality.md lists 0.12 to 0.56 early over eight sets). Pooling the patients of sets that
were scored with the same model and settings gives one estimate with an interval, without scoring anyone again:

    .venv/bin/python scripts/pool_fresh_sets.py runs/quality17/A_K1/metrics.json runs/quality18/A_K1/metrics.json ...

Refuses sets scored with another model, sampler, step count, sample count or seed, and a data folder given twice
(the same patients counted twice). Prints, per region and phase, the number of patients, the median over patients
with a 95 % percentile-bootstrap interval (resampling patients), the share of patients at or above the goal, and
each set's own median; then the lesion r per lesion group (lesion_r_by_group.py's groups) where the data folders
are there to read each case.json; then the model against the single-input linear predictors of the evaluation's
protocol (issue 17 asks the model to beat them widely). ``--minus OTHER ...`` adds these sets minus other pooled
sets (e.g. domain B − A): whole-grid PSNR and the prostate / lesion r, with bootstrap intervals over the patients of
each side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lesion_r_by_group import group_of  # noqa: E402  (a sibling script: one definition of the lesion groups)

REGIONS = ("body", "prostate", "lesion")
PHASES = ("early", "late")
SAME_SETTINGS = ("model", "sampler", "steps", "samples", "seed")
DEFAULT_GOALS = {"body": 0.7, "prostate": 0.7, "lesion": 0.5}   # issue 12's goals (body: the prostate's bar)


def load_sets(paths: List[Path]) -> List[dict]:
    """The metrics.json documents, checked to be one configuration on distinct patients (SystemExit otherwise)."""
    documents = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    first = documents[0]["meta"]
    seen_data = {}
    for path, document in zip(paths, documents):
        meta = document["meta"]
        for key in SAME_SETTINGS:
            if meta.get(key) != first.get(key):
                raise SystemExit(f"{path}: meta.{key} is {meta.get(key)!r} where {paths[0]} has {first.get(key)!r}; "
                                 "pool only sets scored with one configuration")
        data = str(Path(meta.get("data", "")).resolve())
        if data in seen_data:
            raise SystemExit(f"{path} and {seen_data[data]} scored the same data folder {meta.get('data')!r}: "
                             "its patients would count twice")
        seen_data[data] = path
    return documents


def patient_r(document: dict, region: str, phase: str, method: str = "model") -> List[Optional[float]]:
    """One enhancement r per patient of one set (None where the region is absent or r undefined)."""
    values = []
    for entry in document["cases"][method]:
        r = entry[phase]["enhancement"].get(region, {}).get("pearson")
        values.append(float(r) if isinstance(r, (int, float)) and np.isfinite(r) else None)
    return values


def patient_psnr(document: dict, phase: str, method: str = "model") -> List[float]:
    """Whole-grid PSNR (dB) per patient of one set."""
    return [float(entry[phase]["whole"]["psnr"]) for entry in document["cases"][method]
            if isinstance(entry[phase]["whole"].get("psnr"), (int, float))]


def difference_table(documents: List[dict], others: List[dict], method: str = "model",
                     resamples: int = 4000, seed: int = 0) -> str:
    """Markdown: pooled sets minus other pooled sets (e.g. domain B − A, other patients: unpaired), whole-grid PSNR
    (difference of means) and prostate / lesion r (difference of medians), with percentile-bootstrap intervals that
    resample the patients of each side."""
    rng = np.random.default_rng(seed)
    lines = ["| quantity | phase | this − other [95 % interval] | this | other |", "|---|---|---|---|---|"]
    for name in ("psnr", "prostate", "lesion"):
        for phase in PHASES:
            sides = []
            for docs in (documents, others):
                if name == "psnr":
                    sides.append(np.array([v for d in docs for v in patient_psnr(d, phase, method)]))
                else:
                    sides.append(np.array([v for d in docs for v in patient_r(d, name, phase, method)
                                           if v is not None]))
            if not all(side.size for side in sides):
                continue
            stat = np.mean if name == "psnr" else np.median
            draws = [stat(rng.choice(sides[0], sides[0].size)) - stat(rng.choice(sides[1], sides[1].size))
                     for _ in range(resamples)]
            low, high = np.percentile(draws, [2.5, 97.5])
            label = "whole-grid PSNR (dB, mean)" if name == "psnr" else f"{name} r (median)"
            lines.append(f"| {label} | {phase} | {stat(sides[0]) - stat(sides[1]):+.2f} [{low:+.2f}, {high:+.2f}] | "
                         f"{stat(sides[0]):.2f} (n {sides[0].size}) | {stat(sides[1]):.2f} (n {sides[1].size}) |")
    return "\n".join(lines)


def median_interval(values: np.ndarray, resamples: int = 4000, seed: int = 0) -> tuple:
    """Median of ``values`` and the 2.5 / 97.5 percentiles of the median over bootstrap resamples of them."""
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(resamples, len(values))), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(np.median(values)), float(low), float(high)


def pooled_table(documents: List[dict], goals: Dict[str, float], method: str = "model") -> str:
    """Markdown: per region × phase, patients, pooled median [95 % interval], share ≥ goal, per-set medians."""
    lines = [f"| region | phase | patients | median [95 % interval] | share ≥ goal | per-set medians |",
             "|---|---|---|---|---|---|"]
    for region in REGIONS:
        for phase in PHASES:
            per_set = [[v for v in patient_r(d, region, phase, method) if v is not None] for d in documents]
            pooled = np.array([v for values in per_set for v in values])
            if pooled.size == 0:
                continue
            median, low, high = median_interval(pooled)
            goal = goals[region]
            set_medians = ", ".join(f"{np.median(v):.2f}" if v else "–" for v in per_set)
            lines.append(f"| {region} | {phase} | {pooled.size} | {median:.2f} [{low:.2f}, {high:.2f}] | "
                         f"{np.mean(pooled >= goal):.2f} (≥ {goal:g}) | {set_medians} |")
    return "\n".join(lines)


def predictor_table(documents: List[dict], method: str = "model") -> Optional[str]:
    """Markdown: the model's r against the single-input linear predictors of the evaluation's protocol (|r| fitted on
    the patient itself, so an upper bound for them), pooled: medians and the share of patients the model beats the
    best of the four on. None when the sets carry no protocol rows."""
    inputs = ("t2w", "pd", "adc", "t1pre")
    lines = ["| region | phase | patients | model | " + " | ".join(inputs) + " | best input | model ahead |",
             "|---|---|---|---|" + "---|" * len(inputs) + "---|---|"]
    for region in REGIONS:
        for phase in PHASES:
            rows = []
            for document in documents:
                per_case = (document["meta"].get("protocol") or {}).get("per_case")
                if not per_case:
                    return None
                by_case = {row["case"]: row for row in per_case}
                for entry in document["cases"][method]:
                    r = entry[phase]["enhancement"].get(region, {}).get("pearson")
                    linear = (by_case.get(entry["case"], {}).get("linear_predictors", {}).get(phase) or {}).get(region)
                    if isinstance(r, (int, float)) and linear and all(linear.get(i) is not None for i in inputs):
                        rows.append([r] + [linear[i] for i in inputs] + [max(linear[i] for i in inputs)])
            if not rows:
                continue
            values = np.array(rows, dtype=float)
            medians = np.median(values, axis=0)
            lines.append(f"| {region} | {phase} | {len(values)} | {medians[0]:.2f} | "
                         + " | ".join(f"{m:.2f}" for m in medians[1:-1])
                         + f" | {medians[-1]:.2f} | {np.mean(values[:, 0] > values[:, -1]):.2f} |")
    return "\n".join(lines)


def lesion_group_table(documents: List[dict], method: str = "model") -> Optional[str]:
    """Markdown: pooled median lesion r per lesion group; None when a set's data folder is not there."""
    groups: Dict[str, List[List[Optional[float]]]] = {}
    sizes = []
    for document in documents:
        data = Path(document["meta"].get("data", ""))
        for entry in document["cases"][method]:
            case_file = data / entry["case"] / "case.json"
            if not case_file.is_file():
                return None
            case_json = json.loads(case_file.read_text(encoding="utf-8"))
            if not (case_json.get("lesions") or case_json.get("anatomy", {}).get("lesions")):
                continue
            per_lesion = entry["early"].get("lesions", {}).get("per_lesion", [])
            r = [entry[p]["enhancement"].get("lesion", {}).get("pearson") for p in PHASES]
            groups.setdefault(group_of(case_json, per_lesion), []).append(r)
            sizes.append((sum(p["voxels"] for p in per_lesion), r))
    lines = ["| lesion group | patients | median lesion r early | late |", "|---|---|---|---|"]
    for group, rows in sorted(groups.items()):
        medians = [np.median([r[i] for r in rows if r[i] is not None] or [np.nan]) for i in (0, 1)]
        lines.append(f"| {group} | {len(rows)} | {medians[0]:.2f} | {medians[1]:.2f} |")
    voxels = np.array([v for v, _ in sizes], dtype=float)
    size_r = []
    for i in (0, 1):  # does the lesion r follow the lesions' size? (rank correlation over patients)
        keep = np.array([r[i] is not None for _, r in sizes])
        if keep.sum() > 2:
            lesion_r = np.array([r[i] for _, r in sizes if r[i] is not None])
            ranks = [np.argsort(np.argsort(x)) for x in (voxels[keep], lesion_r)]
            size_r.append(f"{np.corrcoef(*ranks)[0, 1]:+.2f}")
    lines.append(f"\nLesion voxels per patient: median {np.median(voxels):.0f}; Spearman (voxels, lesion r) "
                 f"early / late {' / '.join(size_r) or '–'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, nargs="+", help="metrics.json of `dcediff evaluate`, one per set")
    parser.add_argument("--method", default="model")
    parser.add_argument("--minus", type=Path, nargs="+", metavar="METRICS",
                        help="other sets (e.g. domain A's, when the positional ones are domain B's): print this − "
                             "other for PSNR and the prostate / lesion r")
    parser.add_argument("--goal", action="append", default=[], metavar="REGION=R",
                        help="the r a patient should reach (default body/prostate 0.7, lesion 0.5)")
    args = parser.parse_args(argv)
    goals = dict(DEFAULT_GOALS)
    for item in args.goal:
        region, _, value = item.partition("=")
        if region not in REGIONS or not value:
            raise SystemExit(f"--goal {item!r}: expected REGION=R with REGION one of {', '.join(REGIONS)}")
        goals[region] = float(value)
    documents = load_sets(args.metrics)
    print(f"{len(documents)} sets pooled ({', '.join(d['meta'].get('data', '?') for d in documents)}), "
          f"method {args.method}:\n")
    print(pooled_table(documents, goals, args.method))
    groups = lesion_group_table(documents, args.method)
    if groups is not None:
        print("\n" + groups)
    predictors = predictor_table(documents, args.method)
    if predictors is not None:
        print("\nAgainst the single-input linear predictors (in-sample |r|, an upper bound for them):\n")
        print(predictors)
    if args.minus:
        others = load_sets(args.minus)
        if documents[0]["meta"].get("model") != others[0]["meta"].get("model"):
            raise SystemExit("--minus: the other sets were scored with another model")
        print(f"\nThese sets − {', '.join(d['meta'].get('data', '?') for d in others)}:\n")
        print(difference_table(documents, others, args.method))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
