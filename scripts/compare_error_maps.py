#!/usr/bin/env python3
"""Compare the expected-error maps of two cards on the same patients (their `dcediff evaluate` runs as ``model``).

The expected-error map does not change the synthesis, so two cards with the same networks and different maps are
compared on the per-patient calibration rows of ``meta.protocol.per_case`` (Spearman of the expected error with
|error| and the ratio mean |error| / mean expected, in the body and the prostate, early and late). Several
metrics.json per side pool their patients (e.g. the A, P and B fresh sets); the two sides must hold the same
patients in the same order.

    python scripts/compare_error_maps.py --candidate A/metrics.json [...] --reference B/metrics.json [...]
        [--rule trees|size|refit|body] [--json OUT.json]

Prints, per phase and region, the medians of both sides and the paired mean difference of the Spearman with a 95 %
bootstrap interval over patients, then one of the rules of docs/model_quality.md (``--rule``): ``trees`` for refitted
trees (mean prostate Spearman median gain ≥ +0.02, neither phase down by more than 0.02, body Spearman within ±0.01,
prostate ratio inside 0.75 … 1.33), ``size`` for a new size of the map (body ratio inside 0.85 … 1.18 and nearer
1 than the reference's, body Spearman within ±0.01, prostate Spearman within ±0.02, prostate ratio inside
0.75 … 1.33), ``refit`` for trees and sizes refitted on new weights' own output, against the map those weights
carried over (mean prostate Spearman median change ≥ 0, neither phase down by more than 0.02, body Spearman within
±0.01, prostate ratio inside 0.75 … 1.33, body ratio inside 0.85 … 1.18), ``body`` for a new ranking of the body's
error (body Spearman median up by ≥ +0.05 in each phase with the paired 95 % interval above 0, body ratio inside
0.85 … 1.18, prostate Spearman within ±0.02, prostate ratio inside 0.75 … 1.33, and the same syntheses: each patient's
PSNR and enhancement r equal on both sides). Exit status 0 whether it passes or not
(2 on bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_candidate import bootstrap_interval  # noqa: E402

PHASES = ("early", "late")
REGIONS = ("body", "prostate")
MIN_PROSTATE_GAIN = 0.02
MAX_PHASE_LOSS = 0.02
MAX_BODY_CHANGE = 0.01
RATIO_RANGE = (0.75, 1.33)
BODY_RATIO_RANGE = (0.85, 1.18)
MAX_GLAND_CHANGE = 0.02
MIN_BODY_GAIN = 0.05


def calibration_rows(paths) -> list:
    """The per-patient ``expected_error_calibration`` rows of several metrics.json, in order: (patient, row) pairs,
    the patient named by its data folder (``meta.data``) and case."""
    rows = []
    for index, path in enumerate(paths):
        metrics = json.loads(Path(path).read_text(encoding="utf-8"))
        per_case = (metrics.get("meta", {}).get("protocol") or {}).get("per_case") or []
        found = [(row["case"], row.get("expected_error_calibration") or {}) for row in per_case]
        if not found or not all(calibration for _, calibration in found):
            raise SystemExit(f"{path}: no expected-error calibration per patient (a card without an error model?)")
        source = metrics.get("meta", {}).get("data") or f"file {index + 1}"  # the patients' folder, as evaluated
        rows.extend((f"{source}/{case}", calibration) for case, calibration in found)
    return rows


def synthesis_rows(paths) -> list:
    """Per patient of several metrics.json (in order), the synthesis's own numbers: whole-grid PSNR and enhancement r
    in the body and the prostate, early and late (a map cannot change them)."""
    rows = []
    for path in paths:
        try:
            for entry in json.loads(Path(path).read_text(encoding="utf-8"))["cases"]["model"]:
                rows.append(tuple(entry[p]["whole"]["psnr"] for p in PHASES)
                            + tuple(entry[p]["enhancement"][r]["pearson"] for p in PHASES for r in REGIONS))
        except (KeyError, TypeError) as error:
            raise SystemExit(f"{path}: no per-patient PSNR and enhancement r of the model ({error!r})") from error
    return rows


def values(rows, phase: str, region: str, key: str) -> np.ndarray:
    """One calibration number per patient."""
    return np.asarray([row[phase][region][key] for _, row in rows], dtype=float)


def compare(candidate, reference, rule: str = "trees", same_syntheses: bool = True) -> dict:
    """Medians of both sides and paired Spearman differences per phase and region, and the verdict of ``rule``
    ("trees": :func:`tree_checks`; "size": :func:`size_checks`; "refit"; "body": :func:`body_checks`, which also
    takes ``same_syntheses``)."""
    if [case for case, _ in candidate] != [case for case, _ in reference]:
        raise SystemExit("the two sides hold different patients (or another order)")
    table = {}
    for phase in PHASES:
        for region in REGIONS:
            cand_rho, ref_rho = values(candidate, phase, region, "spearman"), values(reference, phase, region,
                                                                                      "spearman")
            table[(phase, region)] = {
                "spearman": (float(np.median(cand_rho)), float(np.median(ref_rho))),
                "ratio": (float(np.median(values(candidate, phase, region, "ratio"))),
                          float(np.median(values(reference, phase, region, "ratio")))),
                "paired": float(np.mean(cand_rho - ref_rho)), "interval": bootstrap_interval(cand_rho - ref_rho)}
    rules = {"size": size_checks, "refit": refit_checks, "body": lambda t: body_checks(t, same_syntheses)}
    checks = rules.get(rule, tree_checks)(table)
    return {"table": table, "checks": checks, "passes": all(ok for _, ok in checks), "patients": len(candidate)}


def tree_checks(table: dict) -> list:
    """The rule for refitted trees (they must rank the gland better): the mean prostate Spearman median gain
    ≥ +0.02, neither phase down by more than 0.02, the body Spearman within ±0.01, the prostate ratio in range."""
    gains = _spearman_changes(table, "prostate")
    return [(f"mean prostate Spearman median gain {np.mean(gains):+.3f} (≥ +{MIN_PROSTATE_GAIN})",
             bool(np.mean(gains) >= MIN_PROSTATE_GAIN)),
            _phase_loss_check(gains),
            _body_spearman_check(table),
            _prostate_ratio_check(table)]


def size_checks(table: dict) -> list:
    """The rule for a new size of the map (level factors): the body ratio inside 0.85 … 1.18 and closer to 1 than
    the reference's in both phases, the body Spearman within ±0.01, the prostate Spearman within ±0.02, the prostate
    ratio in range."""
    ratios = [table[(p, "body")]["ratio"] for p in PHASES]
    gland = _spearman_changes(table, "prostate")
    return [(f"body ratio {ratios[0][0]:.2f} / {ratios[1][0]:.2f} against {ratios[0][1]:.2f} / {ratios[1][1]:.2f} "
             f"(inside {BODY_RATIO_RANGE[0]} … {BODY_RATIO_RANGE[1]} and closer to 1)",
             all(BODY_RATIO_RANGE[0] <= c <= BODY_RATIO_RANGE[1] and abs(c - 1) < abs(r - 1) for c, r in ratios)),
            _body_spearman_check(table),
            (f"prostate Spearman median change {gland[0]:+.3f} / {gland[1]:+.3f} (within ±{MAX_GLAND_CHANGE})",
             bool(max(abs(g) for g in gland) <= MAX_GLAND_CHANGE)),
            _prostate_ratio_check(table)]


def refit_checks(table: dict) -> list:
    """The rule for a map refitted on new weights' output (trees and level factors together), against the map the
    weights carried over: it must not rank the gland worse on average (mean prostate Spearman median change ≥ 0),
    neither phase down by more than 0.02, the body Spearman within ±0.01, both ratios in range."""
    gains = _spearman_changes(table, "prostate")
    ratios = [table[(p, "body")]["ratio"][0] for p in PHASES]
    return [(f"mean prostate Spearman median change {np.mean(gains):+.3f} (≥ 0)", bool(np.mean(gains) >= 0)),
            _phase_loss_check(gains),
            _body_spearman_check(table),
            _prostate_ratio_check(table),
            (f"body ratio {ratios[0]:.2f} / {ratios[1]:.2f} (inside {BODY_RATIO_RANGE[0]} … {BODY_RATIO_RANGE[1]})",
             all(BODY_RATIO_RANGE[0] <= r <= BODY_RATIO_RANGE[1] for r in ratios))]


def body_checks(table: dict, same_syntheses: bool) -> list:
    """The rule for a new ranking of the body's error (a factor in the drawn enhancement): the body Spearman median
    up by ≥ MIN_BODY_GAIN in each phase with the paired interval above 0, the body ratio in range, the prostate
    Spearman within ±0.02, the prostate ratio in range, and the syntheses the same."""
    body = _spearman_changes(table, "body")
    lows = [(table[(p, "body")]["interval"] or (float("nan"),))[0] for p in PHASES]
    ratios = [table[(p, "body")]["ratio"][0] for p in PHASES]
    gland = _spearman_changes(table, "prostate")
    return [(f"body Spearman median change {body[0]:+.3f} / {body[1]:+.3f} (≥ +{MIN_BODY_GAIN} each), paired interval "
             f"lows {lows[0]:+.3f} / {lows[1]:+.3f} (> 0)", bool(min(body) >= MIN_BODY_GAIN and min(lows) > 0)),
            (f"body ratio {ratios[0]:.2f} / {ratios[1]:.2f} (inside {BODY_RATIO_RANGE[0]} … {BODY_RATIO_RANGE[1]})",
             all(BODY_RATIO_RANGE[0] <= r <= BODY_RATIO_RANGE[1] for r in ratios)),
            (f"prostate Spearman median change {gland[0]:+.3f} / {gland[1]:+.3f} (within ±{MAX_GLAND_CHANGE})",
             bool(max(abs(g) for g in gland) <= MAX_GLAND_CHANGE)),
            _prostate_ratio_check(table),
            ("the same syntheses on both sides (each patient's PSNR and enhancement r)", bool(same_syntheses))]


def _spearman_changes(table: dict, region: str) -> list:
    """Candidate − reference Spearman median of ``region``, per phase."""
    return [table[(p, region)]["spearman"][0] - table[(p, region)]["spearman"][1] for p in PHASES]


def _phase_loss_check(gains: list) -> tuple:
    """Neither phase's prostate Spearman median down by more than MAX_PHASE_LOSS."""
    return (f"prostate Spearman median change by phase {gains[0]:+.3f} / {gains[1]:+.3f} (none below "
            f"−{MAX_PHASE_LOSS})", bool(min(gains) >= -MAX_PHASE_LOSS))


def _body_spearman_check(table: dict) -> tuple:
    body = _spearman_changes(table, "body")
    return (f"body Spearman median change {body[0]:+.3f} / {body[1]:+.3f} (within ±{MAX_BODY_CHANGE})",
            bool(max(abs(b) for b in body) < MAX_BODY_CHANGE))


def _prostate_ratio_check(table: dict) -> tuple:
    ratios = [table[(p, "prostate")]["ratio"][0] for p in PHASES]
    return (f"prostate ratio {ratios[0]:.2f} / {ratios[1]:.2f} (inside {RATIO_RANGE[0]} … {RATIO_RANGE[1]})",
            bool(all(RATIO_RANGE[0] <= r <= RATIO_RANGE[1] for r in ratios)))


def as_json(result: dict, candidate_paths, reference_paths, rule: str = "trees") -> dict:
    """The comparison as plain JSON: per phase and region the medians (candidate, reference), the paired mean
    Spearman difference and its interval; the checks; the inputs."""
    return {
        "patients": result["patients"], "rule": rule, "passes": result["passes"],
        "candidate": [str(p) for p in candidate_paths], "reference": [str(p) for p in reference_paths],
        "checks": [{"check": text, "passes": ok} for text, ok in result["checks"]],
        "table": {f"{phase}_{region}": {"spearman_median": [round(v, 4) for v in row["spearman"]],
                                        "ratio_median": [round(v, 3) for v in row["ratio"]],
                                        "spearman_paired": round(row["paired"], 4),
                                        "spearman_paired_95": [round(v, 4) for v in row["interval"] or []]}
                  for (phase, region), row in result["table"].items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", nargs="+", required=True, help="metrics.json of the candidate card's runs")
    parser.add_argument("--reference", nargs="+", required=True, help="metrics.json of the reference card's runs")
    parser.add_argument("--rule", choices=("trees", "size", "refit", "body"), default="trees",
                        help="trees: a refit of the learned trees must rank the gland better; size: a new size "
                             "(level factors) must bring the body ratio nearer 1 and keep the rankings; refit: a "
                             "map refitted on new weights' output must not rank worse and keep its size in range; "
                             "body: a new ranking of the body's error must rank it better, keep its size and the "
                             "syntheses")
    parser.add_argument("--json", type=Path, help="also write the table and the verdict here (for a model card)")
    args = parser.parse_args(argv)
    try:
        same = args.rule != "body" or synthesis_rows(args.candidate) == synthesis_rows(args.reference)
        result = compare(calibration_rows(args.candidate), calibration_rows(args.reference), args.rule, same)
    except SystemExit as error:
        print(f"compare_error_maps: {error}", file=sys.stderr)
        return 2
    print(f"expected-error maps, candidate against reference, {result['patients']} patients (medians; paired mean "
          "of the Spearman difference with its 95 % bootstrap interval)")
    print("| phase | region | Spearman candidate / reference | paired | ratio candidate / reference |")
    print("|---|---|---|---|---|")
    for (phase, region), row in result["table"].items():
        low, high = row["interval"] or (float("nan"), float("nan"))
        print(f"| {phase} | {region} | {row['spearman'][0]:.3f} / {row['spearman'][1]:.3f} | {row['paired']:+.3f} "
              f"[{low:+.3f}, {high:+.3f}] | {row['ratio'][0]:.2f} / {row['ratio'][1]:.2f} |")
    for text, ok in result["checks"]:
        print(f"  {text}  {'pass' if ok else 'FAIL'}")
    print("  passes the rule" if result["passes"] else "  does not pass the rule")
    if args.json is not None:
        from DCEDiffLib.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(as_json(result, args.candidate, args.reference, args.rule), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
