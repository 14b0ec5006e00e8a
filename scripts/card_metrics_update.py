#!/usr/bin/env python3
"""Write a shipped step's measurements into its two model cards (docs/model_quality.md, "Scored once …" sections).

After a candidate passed its rule on validation and its one fresh scoring (scripts/score_fresh_sets.sh), its cards
(scripts/build_candidate_card.py's folder) get, in ``metrics``:

- ``validation_60_version4_patients``: the mean network alone against the previous card's mean on the validation
  patients (paired mean [95 % bootstrap low, high] per phase, as scripts/judge_candidate.py computes them);
- ``previous_card``: the previous card's weights hash, validation loss and validation entry;
- on the residual card only, ``fresh_test`` (medians over patients, PSNR as a mean, and the paired differences
  against the previous card, per fresh set and pooled) and ``previous_fresh_test`` (the previous card's).

Usage: .venv/bin/python scripts/card_metrics_update.py CANDIDATE_DIR PREVIOUS_DIR --validation VAL_METRICS_JSON
           --validation-patients TEXT --fresh FRESH_OUT_DIR --step "fifty-first" --date 2026-12-04
Each card is rewritten atomically (a temporary file, then a rename); the weights and their hash are not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_candidate import judge, paired_differences, bootstrap_interval  # noqa: E402
from pool_fresh_sets import patient_psnr, patient_r  # noqa: E402

RESIDUAL, MEAN = "dcediff_cpu_phantom", "dcediff_cpu_phantom_regression"
SETS = (("A", "A_procedural"), ("P", "P_real_anatomy"), ("B", "B_procedural_domain_B"))
PHASES = ("early", "late")


def _triple(mean, interval) -> list:
    low, high = interval if interval else (None, None)
    return [round(float(mean), 3), None if low is None else round(low, 3), None if high is None else round(high, 3)]


def validation_entry(document: dict, previous_sha: str, patients: str, step: str) -> dict:
    """The mean against the previous mean on the validation patients (``model`` against ``shipped``)."""
    result = judge([document], min_lesion_gain=-1.0)
    entry = {"patients": patients,
             "compared": f"the mean network alone against the previous card's mean ({previous_sha[:8]}...), paired "
                         "mean [95 % bootstrap]; lesion r over patients with at least 20 lesion voxels"}
    for key, name in (("lesion_r", "r_lesion_minus_previous"), ("prostate_r", "r_prostate_minus_previous"),
                      ("psnr_db", "psnr_db_minus_previous")):
        entry[name] = [_triple(result[key][p], result["ci95"][key][p]) for p in PHASES]
    right = result["early_cnr_sign"]["lesions_right"]
    entry["early_lesion_cnr_sign"] = f"{right[0]} against {right[1]} of {result['lesions_early']} lesions"
    entry["details"] = f"docs/model_quality.md ({step} step)"
    return entry


def fresh_set_entry(document: dict) -> dict:
    """Medians (PSNR: mean) and paired differences against ``shipped`` for one fresh set."""
    model, shipped = document["cases"]["model"], document["cases"]["shipped"]

    def median_r(region, phase):
        return round(float(np.median([r for r in patient_r(document, region, phase) if r is not None])), 2)

    entry = {"psnr_db": [round(float(np.mean(patient_psnr(document, p))), 2) for p in PHASES],
             "r_prostate": [median_r("prostate", p) for p in PHASES],
             "r_lesion": [median_r("lesion", p) for p in PHASES]}
    for name, path in (("minus_shipped_psnr_whole", ("whole", "psnr")),
                       ("minus_shipped_r_prostate", ("enhancement", "prostate", "pearson")),
                       ("minus_shipped_r_lesion", ("enhancement", "lesion", "pearson"))):
        entry[name] = []
        for p in PHASES:
            d = paired_differences(model, shipped, p, *path)
            entry[name].append(_triple(d.mean(), bootstrap_interval(d)))
    return entry


def fresh_entry(fresh_dir: Path, previous_sha: str, step: str, date: str) -> dict:
    """The card's ``fresh_test``: every set of ``fresh_dir`` ({A,P,B}_K1/metrics.json) and the pooled differences."""
    entry = {"scored": f"once, {date} ({step} step): this card, 1 sample, default settings, FID on A only; medians "
                       "over patients (PSNR: mean), early / late; paired minus the previous card "
                       f"({previous_sha[:8]}..., as 'shipped') as [mean, 95 % bootstrap low, high]; lesion r over "
                       "patients with at least 20 lesion voxels; phantom generator version 4; "
                       "scripts/score_fresh_sets.sh",
             "details": f"docs/model_quality.md ({step} step)"}
    documents = []
    for short, label in SETS:
        document = json.loads((fresh_dir / f"{short}_K1" / "metrics.json").read_text(encoding="utf-8"))
        documents.append(document)
        dataset = json.loads((Path(document["meta"]["data"]) / "dataset.json").read_text(encoding="utf-8"))
        name = f"{label}_seed_{dataset['seed']}_{len(document['cases']['model'])}_patients"
        entry[name] = fresh_set_entry(document)
        fid = document["meta"].get("fid")
        if isinstance(fid, dict):  # FID on A only: meta.fid[method][target]["fid"]
            for method, key in (("model", "fid"), ("shipped", "fid_previous_card"),
                                ("regression", "fid_regression_mean")):
                per_target = fid.get(method)
                if isinstance(per_target, dict):
                    entry[name][key] = [round(float(per_target[t]["fid"]), 1) for t in ("early", "late")
                                        if isinstance((per_target.get(t) or {}).get("fid"), (int, float))]
    pooled = judge(documents, min_lesion_gain=-1.0)
    entry[f"pooled_{pooled['patients']}_minus_shipped"] = {k: pooled[k] for k in
                                                          ("lesion_r", "prostate_r", "psnr_db", "early_cnr_sign")}
    return entry


def write_atomically(path: Path, card: dict) -> None:
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidate", type=Path, help="the candidate's card folder (build_candidate_card.py --out)")
    parser.add_argument("previous", type=Path, help="the previous cards (a copy of Resources/Models)")
    parser.add_argument("--validation", type=Path, required=True, help="the mean's validation metrics.json")
    parser.add_argument("--validation-patients", required=True, help="who the validation patients are")
    parser.add_argument("--fresh", type=Path, required=True, help="score_fresh_sets.sh's OUT_DIR")
    parser.add_argument("--step", required=True, help='the step\'s name in docs/model_quality.md, e.g. "fifty-first"')
    parser.add_argument("--date", required=True)
    args = parser.parse_args(argv)
    previous = {n: json.loads((args.previous / f"{n}.json").read_text(encoding="utf-8")) for n in (RESIDUAL, MEAN)}
    validation = json.loads(args.validation.read_text(encoding="utf-8"))
    mean_entry = validation_entry(validation, previous[MEAN]["weights_sha256"], args.validation_patients, args.step)
    for name in (RESIDUAL, MEAN):
        path = args.candidate / f"{name}.json"
        card = json.loads(path.read_text(encoding="utf-8"))
        before = previous[name]["metrics"]
        metrics = card.setdefault("metrics", {})
        metrics["validation_60_version4_patients"] = mean_entry
        metrics["previous_card"] = {"weights_sha256": previous[name]["weights_sha256"],
                                    "validation_loss": before.get("validation_loss"),
                                    "validation_60_version4_patients": before.get("validation_60_version4_patients")}
        if name == RESIDUAL:
            metrics["fresh_test"] = fresh_entry(args.fresh, previous[name]["weights_sha256"], args.step, args.date)
            metrics["previous_fresh_test"] = before.get("fresh_test")
        write_atomically(path, card)
        print(f"{path}: metrics {sorted(metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
