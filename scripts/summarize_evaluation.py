"""Print the model-quality tables of one or more `dcediff evaluate` outputs as Markdown.

    python scripts/summarize_evaluation.py out/eval/metrics.json [--title "domain A, K=1"] \
        [--families "A=case_4,B=case_6"]   # also one method table per family of cases (case-name prefix)
        [--against shipped=out/eval_before/metrics.json]   # paired differences against another run's model

Per method (rows) and target: whole-grid PSNR and SSIM (mean ± std over patients), enhancement Pearson r in the
body, prostate and lesions (median over patients), lesion CNR agreement (share of lesions whose synthetic CNR has
the acquired CNR's sign, and share within 50 % of its size), FID; then the model's paired differences against
every other method with 95 % bootstrap intervals, the single-input linear predictors, the calibration and the
through-plane consistency.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _get(node, *path):
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _num(value):
    if isinstance(value, (int, float)) and np.isfinite(value):
        return float(value)
    return None


def _stat(values, digits=2):
    values = [v for v in (_num(v) for v in values) if v is not None]
    if not values:
        return "–"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def _median(values, digits=2):
    values = [v for v in (_num(v) for v in values) if v is not None]
    return f"{np.median(values):.{digits}f}" if values else "–"


def lesion_agreement(rows, target):
    """(share with the right CNR sign, share within 50 % of the acquired CNR, lesions counted)."""
    sign, size, n = 0, 0, 0
    for row in rows:
        for lesion in _get(row, target, "lesions", "per_lesion") or []:
            syn, acq = _num(lesion.get("cnr_synthetic")), _num(lesion.get("cnr_acquired"))
            if syn is None or acq is None or acq == 0:
                continue
            n += 1
            sign += int(np.sign(syn) == np.sign(acq))
            size += int(abs(syn - acq) <= 0.5 * abs(acq))
    return (sign / n if n else None, size / n if n else None, n)


def method_table(document: dict) -> str:
    cases = document["cases"]
    fid = _get(document, "meta", "fid") or {}
    lines = ["| method | target | PSNR (dB) | SSIM | r body | r prostate | r lesion | prostate enh. ratio | CNR sign | "
             "CNR ±50 % | FID |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, rows in cases.items():
        for target in ("early", "late"):
            sign, size, n = lesion_agreement(rows, target)
            f = _num(_get(fid, method, target, "fid"))
            lines.append(" | ".join([
                f"| {method}", target,
                _stat([_get(r, target, "whole", "psnr") for r in rows]),
                _stat([_get(r, target, "whole", "ssim") for r in rows], 3),
                _median([_get(r, target, "enhancement", "body", "pearson") for r in rows]),
                _median([_get(r, target, "enhancement", "prostate", "pearson") for r in rows]),
                _median([_get(r, target, "enhancement", "lesion", "pearson") for r in rows]),
                _median([_get(r, target, "enhancement", "prostate", "mean_ratio") for r in rows]),
                "–" if sign is None else f"{sign:.2f} (n={n})",
                "–" if size is None else f"{size:.2f}",
                "–" if f is None else f"{f:.0f}"]) + " |")
    return "\n".join(lines)


def paired_table(document: dict) -> str:
    paired = _get(document, "meta", "protocol", "paired_differences") or {}
    lines = ["| model − method | target | PSNR (dB) | SSIM | r body | r prostate | r lesion |", "|---|---|---|---|---|---|---|"]

    from DCEDiffLib.evaluation.protocol import format_paired as cell

    for other, per_target in paired.items():
        for target in ("early", "late"):
            p = per_target[target]
            lines.append(f"| {other} | {target} | {cell(p['psnr_whole'])} | {cell(p['ssim_whole'], 3)} | "
                         f"{cell(p['r_body'])} | {cell(p['r_prostate'])} | {cell(p['r_lesion'])} |")
    return "\n".join(lines)


def predictor_table(document: dict) -> str:
    lp = _get(document, "meta", "protocol", "linear_predictors_median") or {}
    lines = ["| target | region | " + " | ".join(["t2w", "pd", "adc", "t1pre"]) + " |", "|---|---|---|---|---|---|"]
    for target, regions in lp.items():
        for region, values in regions.items():
            cells = ["–" if values.get(m) is None else f"{values[m]:.2f}" for m in ("t2w", "pd", "adc", "t1pre")]
            lines.append(f"| {target} | {region} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def calibration_text(document: dict) -> str:
    cal = _get(document, "meta", "protocol", "calibration_median") or {}
    if not cal:
        return "(one sample: no uncertainty map)"
    parts = [f"{t}: Spearman(std, |error|) body {_fmt(v.get('body'))}, prostate {_fmt(v.get('prostate'))}"
             for t, v in cal.items()]
    curve_lines = []
    for row in (_get(document, "meta", "protocol", "per_case") or [])[:1]:
        for t, regions in row.get("calibration", {}).items():
            curve = regions.get("body", {}).get("curve", [])
            pairs = ", ".join(f"{c['std_mean']:.0f}→{c['rmse']:.0f}" for c in curve)
            curve_lines.append(f"calibration curve ({row['case']}, {t}, body; std → RMSE per std decile): {pairs}")
    return "; ".join(parts) + "\n\n" + "\n\n".join(curve_lines)


def expected_error_text(document: dict) -> str:
    """The card's expected-error map against the actual error (median over patients, and one case's curve)."""
    cal = _get(document, "meta", "protocol", "expected_error_calibration_median") or {}
    if not cal:
        return "(the model card has no error model)"
    parts = [f"{t}: Spearman(expected, |error|) body {_fmt(v['body']['spearman'])}, prostate "
             f"{_fmt(v['prostate']['spearman'])}; mean |error| / mean expected body {_fmt(v['body']['ratio'])}, "
             f"prostate {_fmt(v['prostate']['ratio'])}" for t, v in cal.items()]
    curve_lines = []
    for row in (_get(document, "meta", "protocol", "per_case") or [])[:1]:
        for t, regions in row.get("expected_error_calibration", {}).items():
            curve = regions.get("body", {}).get("curve", [])
            pairs = ", ".join(f"{c['expected_mean']:.0f}→{c['abs_error_mean']:.0f}" for c in curve)
            curve_lines.append(f"expected-error curve ({row['case']}, {t}, body; expected → mean |error| per "
                               f"decile): {pairs}")
    return "; ".join(parts) + "\n\n" + "\n\n".join(curve_lines)


def through_plane_text(document: dict) -> str:
    """Per method and target: median over patients of the body's through-plane roughness ratio and difference r."""
    parts = []
    for method, rows in document["cases"].items():
        cells = []
        for target in ("early", "late"):
            ratio = _median([_get(r, target, "through_plane", "roughness_ratio") for r in rows])
            r = _median([_get(r, target, "through_plane", "pearson") for r in rows])
            cells.append(f"{target} ratio {ratio}, r {r}")
        parts.append(f"{method}: " + "; ".join(cells))
    return " | ".join(parts)


def paired_against(document: dict, other: dict, label: str) -> str:
    """Paired differences of this run's model against ``other``'s model on the patients both scored.

    For two `dcediff evaluate` runs of different models on the same cases with the same seed, sampler and samples
    (checked): the same numbers ``--compare`` would give, without synthesizing the other model again.
    """
    from DCEDiffLib.evaluation.protocol import format_paired, paired_bootstrap
    from DCEDiffLib.evaluation_runner import PAIRED_METRICS, case_metric

    for key in ("seed", "sampler", "steps", "samples", "data"):
        mine, yours = _get(document, "meta", key), _get(other, "meta", key)
        if key == "data" and isinstance(mine, str) and isinstance(yours, str):
            # one run may name the folder relative to the working directory, the other absolute
            mine, yours = str(Path(mine).resolve()), str(Path(yours).resolve())
        if mine != yours:
            raise SystemExit(f"--against {label}: meta.{key} differs ({_get(document, 'meta', key)!r} here, "
                             f"{_get(other, 'meta', key)!r} there); expected two runs of the same protocol")
    theirs = {row["case"]: row for row in other["cases"]["model"]}
    pairs = [(row, theirs[row["case"]]) for row in document["cases"]["model"] if row["case"] in theirs]
    if not pairs:
        raise SystemExit(f"--against {label}: no patient in common")
    paths = {"PSNR (dB)": PAIRED_METRICS["psnr_whole"], "r body": PAIRED_METRICS["r_body"],
             "r prostate": PAIRED_METRICS["r_prostate"], "r lesion": PAIRED_METRICS["r_lesion"],
             "prostate enh. ratio": ("enhancement", "prostate", "mean_ratio")}

    lines = [f"Paired differences, model − {label} ({len(pairs)} patients in common; mean, 95 % bootstrap "
             "interval):\n", "| target | " + " | ".join(paths) + " |", "|---|" + "---|" * len(paths)]
    for target in ("early", "late"):
        cells = []
        for path in paths.values():
            d = paired_bootstrap([case_metric(a, target, path) for a, _ in pairs],
                                 [case_metric(b, target, path) for _, b in pairs])
            cells.append(format_paired(d))
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(v):
    return "–" if v is None else f"{v:.2f}"


def steps_text(meta: dict) -> str:
    """'2 steps', and the compared models that ran another count (``meta.steps_by_method``: each card has its own
    count since sampling.residual_steps), e.g. '2 steps (shipped 5)'."""
    others = {name: n for name, n in (meta.get("steps_by_method") or {}).items()
              if name != "model" and n != meta["steps"]}
    return f"{meta['steps']} steps" + (f" ({', '.join(f'{k} {v}' for k, v in others.items())})" if others else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, nargs="+")
    parser.add_argument("--title", default="")
    parser.add_argument("--families", default="", help="NAME=PREFIX,...: a method table per group of cases whose "
                        "names start with PREFIX (e.g. validation patients of several phantom families)")
    parser.add_argument("--against", action="append", default=[], metavar="LABEL=METRICS_JSON",
                        help="paired differences of the model against the model of another evaluate run on the same "
                        "patients (same seed, sampler and samples)")
    args = parser.parse_args()
    for path in args.metrics:
        document = json.loads(path.read_text(encoding="utf-8"))
        meta = document["meta"]
        print(f"### {args.title or path.parent.name}\n")
        print(f"{len(meta['cases'])} patients ({', '.join(meta['cases'])}), data {meta['data']}, sampler "
              f"{meta['sampler']} {steps_text(meta)}, {meta['samples']} sample(s), seed {meta['seed']}\n")
        print(method_table(document), "\n")
        print("Paired differences, model − method (mean over patients, 95 % bootstrap interval):\n")
        print(paired_table(document), "\n")
        print("Single-input linear predictors, |r| with the acquired enhancement (median over patients):\n")
        print(predictor_table(document), "\n")
        print("Uncertainty: " + calibration_text(document), "\n")
        print("Expected error: " + expected_error_text(document), "\n")
        print("Through-plane consistency in the body (median over patients; roughness ratio 1 = as the scan, "
              "> 1 flicker; r of the slice-to-slice differences): " + through_plane_text(document), "\n")
        for item in args.against:
            label, _, other_path = item.partition("=")
            print(paired_against(document, json.loads(Path(other_path).read_text(encoding="utf-8")), label), "\n")
        for family, prefix in (item.split("=", 1) for item in filter(None, args.families.split(","))):
            subset = {m: [r for r in rows if str(r.get("case", "")).startswith(prefix)]
                      for m, rows in document["cases"].items()}
            count = len(next(iter(subset.values()), []))
            print(f"Family {family} ({count} patients named {prefix}*):\n")
            print(method_table(dict(document, cases=subset)), "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
