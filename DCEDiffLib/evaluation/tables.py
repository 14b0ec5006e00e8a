"""Summaries over cases and the files an evaluation writes: metrics.json, metrics.csv, metrics.md.

:func:`aggregate` turns a list of per-case results (from ``evaluate_case``) into mean ± std per metric. Only finite
values enter the mean and the standard deviation (population std, ddof = 0, std = 0 for one case); ``n`` counts
them, ``n_none`` counts cases where the value is undefined (None) or absent, ``n_inf`` cases with an infinite value
(the PSNR of a perfect prediction). Sections ``info``, ``notes``, ``case`` and per-lesion lists are not aggregated.
:func:`format_value` writes one value with metrics.md's digits, for every other place that shows one (the Slicer
metrics table, report.png's words, the demo's and evaluate's console summaries, the model card line).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from DCEDiffLib.errors import InputError

NOT_AGGREGATED = ("info", "notes", "case")

# One line per metric: the legend of metrics.md and metrics.json.
METRIC_LEGEND = {
    "psnr": "PSNR (dB) = 10·log10(1 / MSE) on intensities scaled to [0, 1] by the acquired volume's 0.5th/99.5th "
            "percentiles (synthetic scaled with the same bounds, both clipped); higher is better, ∞ = identical.",
    "ssim": "SSIM: scikit-image structural similarity per slice (uniform 7×7 window, K1 0.01, K2 0.03, data range 1) "
            "on the same [0, 1] scale, map averaged over the region's voxels away from the 3-pixel slice border.",
    "mae": "MAE: mean |synthetic − acquired| on the same [0, 1] scale (fraction of the acquired robust range).",
    "regions": "whole = the whole working grid; body = intensity-thresholded body mask (> 0.1 × 99.5th percentile "
               "of the acquired target, closed and hole-filled per slice); prostate = zones ∪ lesions of the labels.",
    "enhancement": "enhancement = target − T1-pre on the target's scale (same-sequence identity mapping by default); "
                   "enh. MAE/PSNR use the acquired enhancement's 0.5–99.5 percentile range (body) as data range.",
    "pearson": "enh. r: Pearson correlation of synthetic and acquired enhancement in the region; undefined when either "
               "is constant (the identity baseline predicts no enhancement).",
    "mean_ratio": "enh. ratio: mean synthetic / mean acquired enhancement in the region (1 = the right scale; "
                  "the relative enhancement's error, since both share the T1-pre).",
    "cnr": "CNR = (mean lesion − mean ring) / std ring, ring = lesion dilated in-plane by 4 mm (3 voxels without "
           "spacing) minus lesions, within the prostate; rel. error = (CNR_syn − CNR_acq) / |CNR_acq|.",
    "above_gland_median": "above median: fraction of lesions whose median enhancement exceeds the gland's median "
                          "enhancement (gland = prostate outside lesions), synthetic vs acquired.",
    "fid": "FID / KID: Fréchet distance and kernel (polynomial, unbiased MMD², ×10³ in the table) distance of "
           "FID-Inception pool3 features of synthetic vs acquired slices; relative only below ~2000 slices.",
    "baselines": "identity = T1-pre as the prediction (zero enhancement); mean_enhancement = T1-pre + the training "
                 "set's mean enhancement per T1-pre intensity bin (no anatomy).",
}


# -- aggregation ---------------------------------------------------------------------------------------------------
def _numeric(value) -> Tuple[str, Optional[float]]:
    """('finite', x), ('inf', ±inf), ('none', None) or ('skip', None) for a leaf value."""
    if value is None:
        return "none", None
    if isinstance(value, bool):
        return "skip", None
    if isinstance(value, (int, float, np.integer, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "none", None
        return ("inf", value) if math.isinf(value) else ("finite", value)
    if value in ("inf", "-inf"):
        return "inf", math.inf if value == "inf" else -math.inf
    return "skip", None


def _leaves(tree: dict, prefix: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], object]]:
    for key, value in tree.items():
        if not prefix and key in NOT_AGGREGATED:
            continue
        path = prefix + (str(key),)
        if isinstance(value, dict):
            yield from _leaves(value, path)
        elif not isinstance(value, (list, tuple)):
            kind, _ = _numeric(value)
            if kind != "skip":
                yield path, value


def summarize(values: List[object]) -> dict:
    """``{"mean", "std", "n", "n_none", "n_inf"}`` of one metric's values over cases (see the module docstring)."""
    finite, n_none, n_inf = [], 0, 0
    for value in values:
        kind, number = _numeric(value)
        if kind == "finite":
            finite.append(number)
        elif kind == "inf":
            n_inf += 1
        else:
            n_none += 1
    mean = float(np.mean(finite)) if finite else None
    std = float(np.std(finite)) if finite else None
    return {"mean": mean, "std": std, "n": len(finite), "n_none": n_none, "n_inf": n_inf}


def aggregate(case_results: List[dict]) -> dict:
    """Mean ± std over cases of every numeric leaf, nested like one case result, plus ``n_cases``."""
    if not isinstance(case_results, list):
        raise InputError("aggregate: expected a list of case results")
    paths: Dict[Tuple[str, ...], None] = {}
    for case in case_results:
        for path, _ in _leaves(case):
            paths.setdefault(path)
    out: dict = {"n_cases": len(case_results)}
    for path in paths:
        values = []
        for case in case_results:
            node = case
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            values.append(node)
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = summarize(values)
    return out


# -- CSV -----------------------------------------------------------------------------------------------------------
CSV_COLUMNS = ("method", "case", "target", "group", "region", "metric", "value", "note")


def _csv_value(value) -> str:
    kind, number = _numeric(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if kind == "finite":
        return repr(number)
    if kind == "inf":
        return "inf" if number > 0 else "-inf"
    return ""


def _target_rows(target_result: dict) -> Iterator[Tuple[str, str, str, object, str]]:
    """(group, region, metric, value, note) rows of one target's result."""
    for key, section in target_result.items():
        if key == "enhancement":
            for region, values in section.items():
                for metric in ("mae", "psnr", "pearson", "mean_ratio"):
                    note = values.get(f"{metric}_reason") or ""
                    yield "enhancement", region, metric, values.get(metric), note
        elif key == "lesions":
            for metric, value in section.get("summary", {}).items():
                yield "lesions", "all_lesions", metric, value, ""
            for lesion in section.get("per_lesion", []):
                for metric, value in lesion.items():
                    if metric != "lesion" and not isinstance(value, (list, dict)):
                        yield "lesions", f"lesion_{lesion.get('lesion')}", metric, value, ""
        elif key == "through_plane":  # slice-to-slice consistency in the body (evaluation/consistency.py)
            for metric, value in section.items():
                yield "through_plane", "body", metric, value, ""
        elif isinstance(section, dict):
            for metric, value in section.items():
                yield "image", key, metric, value, ""


def csv_text(results: Dict[str, List[dict]]) -> str:
    """metrics.csv: one row per method × case × target × region × metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for method, cases in results.items():
        for index, case in enumerate(cases):
            name = str(case.get("case", index))
            for target, target_result in case.items():
                if target in NOT_AGGREGATED or not isinstance(target_result, dict):
                    continue
                for group, region, metric, value, note in _target_rows(target_result):
                    writer.writerow([method, name, target, group, region, metric, _csv_value(value), note])
    return buffer.getvalue()


# -- Markdown ------------------------------------------------------------------------------------------------------
def format_stat(stat: Optional[dict], digits: int = 3, factor: float = 1.0) -> str:
    """'mean ± std' of a :func:`summarize` result, with undefined/perfect counts; '–' when absent."""
    if not isinstance(stat, dict) or "n" not in stat:
        return "–"
    extra = []
    if stat.get("n_inf"):
        extra.append(f"{stat['n_inf']} perfect (∞)")
    if stat.get("n_none"):
        extra.append(f"{stat['n_none']} undefined")
    if stat["n"] == 0:
        if stat.get("n_inf") and not stat.get("n_none"):
            return "∞"
        return UNDEFINED if stat.get("n_none") else "–"
    if stat["n"] == 1:  # one case has no spread: "± 0.000" would read as a measured zero
        text = f"{stat['mean'] * factor:.{digits}f}"
        extra.insert(0, "1 case")
    else:
        text = f"{stat['mean'] * factor:.{digits}f} ± {stat['std'] * factor:.{digits}f}"
    return text + (f" ({', '.join(extra)})" if extra else "")


def _get(tree: dict, *path: str):
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _targets(summary: Dict[str, dict]) -> List[str]:
    seen: Dict[str, None] = {}
    for agg in summary.values():
        for key, value in agg.items():
            if isinstance(value, dict) and "whole" in value:
                seen.setdefault(key)
    return list(seen)


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


DIGITS = {"psnr": 2, "ssim": 3, "mae": 4, "pearson": 3, "cnr": 2}
UNDEFINED = "undefined"  # what metrics.md writes where a metric has no value


def format_value(value, metric: str) -> str:
    """One metric value as metrics.md writes it, for every reader that shows one (the Slicer metrics table):
    ``DIGITS[metric]`` decimals (PSNR 2, SSIM 3, MAE 4, r 3); '∞' / '-∞' for an infinite value (float or the JSON
    "inf" of :func:`~DCEDiffLib.evaluation.metrics.encode_value`); 'undefined' for None or NaN (empty region, no
    lesion, zero variance). More digits than these are noise at the scale the metrics are read."""
    if metric not in DIGITS:
        raise InputError(f"format_value: metric {metric!r} has no display precision; expected one of "
                         f"{', '.join(sorted(DIGITS))}")
    kind, number = _numeric(value)
    if kind == "finite":
        return f"{number:.{DIGITS[metric]}f}"
    if kind == "inf":
        return "∞" if number > 0 else "-∞"
    if kind == "none":
        return UNDEFINED
    raise InputError(f"format_value: {metric} value {value!r} is not a number; expected a number, 'inf', '-inf', "
                     "None or NaN")


UNITS = {"psnr": " dB"}


def format_with_unit(value, metric: str) -> str:
    """:func:`format_value` followed by the metric's unit ('27.12 dB', '∞ dB'), none after 'undefined': the words
    the console summaries and report.png write around one value."""
    text = format_value(value, metric)
    return text if text == UNDEFINED else text + UNITS.get(metric, "")


def markdown_text(summary: Dict[str, dict], meta: Optional[dict] = None) -> str:
    """metrics.md: the paper's table, region/enhancement and lesion tables, FID/KID, and the legend."""
    meta = meta or {}
    targets = _targets(summary)
    lines = ["# DCEDiff evaluation", ""]
    cases = {m: agg.get("n_cases", 0) for m, agg in summary.items()}
    lines.append("Cases per method: " + ", ".join(f"{m} {n}" for m, n in cases.items()) + ". Values: mean ± std "
                 "over cases (population std). All images are synthetic except the acquired reference.")
    for key in ("model", "sampler", "steps", "samples", "seed", "data", "split", "subset"):
        if meta.get(key) is not None:
            lines.append(f"- {key}: {meta[key]}")
    if meta.get("scored_cases_that_trained_the_model"):
        seen = meta["scored_cases_that_trained_the_model"]
        lines.append(f"- **not test numbers**: {len(seen)} scored case(s) trained or validated the model "
                     f"({', '.join(seen[:5])}{', …' if len(seen) > 5 else ''}; its run's split.json)")
    if meta.get("cases_without_acquired_dce"):  # left out by the evaluation: the case count above is smaller
        left_out = meta["cases_without_acquired_dce"]
        lines.append(f"- **not scored**: {len(left_out)} case(s) without acquired early/late DCE "
                     f"({', '.join(left_out[:5])}{', …' if len(left_out) > 5 else ''})")
    if "mean_enhancement" not in cases:
        lines.append("- no mean-enhancement baseline: it is fitted on training cases (--split RUN/split.json, or "
                     "--baseline-data DIR)")
    missing = meta.get("missing_inputs")
    if isinstance(missing, dict) and missing.get("inputs"):
        without = [name for name, ok in (missing.get("models_trained_without") or {}).items() if not ok]
        lines.append(f"- missing inputs: {', '.join(missing['inputs'])} — every method ran WITHOUT them (channel set "
                     f"to {missing.get('value')}, as in training's modality dropout)"
                     + (f"; not trained to do without them: {', '.join(without)}" if without else ""))
    lines += ["", "## Whole working grid (the paper's table)", ""]
    header = ["method"] + [f"{t} {label}" for t in targets
                           for label in ("PSNR (dB)", "SSIM", "MAE")]
    rows = [[method] + [format_stat(_get(agg, t, "whole", metric), DIGITS[metric])
                        for t in targets for metric in ("psnr", "ssim", "mae")]
            for method, agg in summary.items()]
    lines += _table(header, rows)

    lines += ["", "## Body, prostate and enhancement (what synthesis adds)", ""]
    header = ["method", "target", "body PSNR", "body SSIM", "prostate PSNR", "prostate SSIM", "prostate MAE",
              "enh. MAE (body)", "enh. PSNR (body)", "enh. r (body)", "enh. r (prostate)", "enh. r (lesion)"]
    rows = []
    for method, agg in summary.items():
        for t in targets:
            rows.append([method, t,
                         format_stat(_get(agg, t, "body", "psnr"), 2), format_stat(_get(agg, t, "body", "ssim"), 3),
                         format_stat(_get(agg, t, "prostate", "psnr"), 2),
                         format_stat(_get(agg, t, "prostate", "ssim"), 3),
                         format_stat(_get(agg, t, "prostate", "mae"), 4),
                         format_stat(_get(agg, t, "enhancement", "body", "mae"), 4),
                         format_stat(_get(agg, t, "enhancement", "body", "psnr"), 2),
                         format_stat(_get(agg, t, "enhancement", "body", "pearson"), 3),
                         format_stat(_get(agg, t, "enhancement", "prostate", "pearson"), 3),
                         format_stat(_get(agg, t, "enhancement", "lesion", "pearson"), 3)])
    lines += _table(header, rows)

    lines += ["", "## Lesion conspicuity", ""]
    header = ["method", "target", "lesions/case", "CNR synthetic", "CNR acquired", "CNR rel. error",
              "abs. CNR rel. error", "above gland median (synthetic)", "above gland median (acquired)",
              "agreement"]
    rows = []
    for method, agg in summary.items():
        for t in targets:
            s = _get(agg, t, "lesions", "summary") or {}
            rows.append([method, t, format_stat(s.get("n_lesions"), 1), format_stat(s.get("cnr_synthetic"), 2),
                         format_stat(s.get("cnr_acquired"), 2), format_stat(s.get("cnr_relative_error"), 2),
                         format_stat(s.get("cnr_abs_relative_error"), 2),
                         format_stat(s.get("fraction_above_gland_median_synthetic"), 2),
                         format_stat(s.get("fraction_above_gland_median_acquired"), 2),
                         format_stat(s.get("above_gland_median_agreement"), 2)])
    lines += _table(header, rows)

    lines += ["", "## FID / KID", ""]
    fid = meta.get("fid")
    if isinstance(fid, dict) and any(isinstance(v, dict) for v in fid.values()):
        fid_targets = [t for t in targets if any(isinstance(v, dict) and t in v for v in fid.values())]
        header = ["method"] + [f"{t} {label}" for t in fid_targets for label in ("FID", "KID ×10³", "slices")]
        rows = []
        for method, per_target in fid.items():
            if not isinstance(per_target, dict):
                continue
            row = [method]
            for t in fid_targets:
                entry = per_target.get(t) or {}
                kid = entry.get("kid")
                kid_mean = kid.get("mean") if isinstance(kid, dict) else kid
                kid_std = kid.get("std") if isinstance(kid, dict) else None
                row.append(f"{entry['fid']:.2f}" if isinstance(entry.get("fid"), (int, float)) else "–")
                row.append(f"{kid_mean * 1e3:.2f}" + (f" ± {kid_std * 1e3:.2f}" if kid_std is not None else "")
                           if isinstance(kid_mean, (int, float)) else "–")
                row.append(str(entry.get("slices", "–")))
            rows.append(row)
        lines += _table(header, rows)
    elif isinstance(fid, dict) and fid.get("skipped"):
        lines.append(f"Not computed: {fid['skipped']}")
    else:
        lines.append("Not computed.")

    lines += ["", "## Legend", ""]
    lines += [f"- **{key}**: {text}" for key, text in METRIC_LEGEND.items()]
    lines += ["- **undefined**: the metric has no value for that many cases (empty region, no labels, zero "
              "variance); see the notes in metrics.json. **perfect (∞)**: PSNR of an exact prediction, counted "
              "apart from the mean.", ""]
    return "\n".join(lines)


def write_metrics(out_dir, results: Dict[str, List[dict]], meta: Optional[dict] = None) -> Dict[str, Path]:
    """Write metrics.json (per case, summary, legend, meta), metrics.csv and metrics.md into ``out_dir``.

    ``results`` maps a method name (``model``, ``identity``, ``mean_enhancement``, ``regression``, …) to its list of
    case results from ``evaluate_case`` (each may carry a ``case`` name). Each file is written atomically.
    """
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.evaluation.metrics import json_safe

    if not isinstance(results, dict) or not results:
        raise InputError("write_metrics: expected a non-empty dict of method name → list of case results")
    out_dir = Path(out_dir)
    summary = {method: aggregate(cases) for method, cases in results.items()}
    document = {
        "meta": json_safe(meta or {}),
        "conventions": {
            "scaling": "per acquired volume: 0.5th/99.5th percentiles → [0, 1], clipped; the synthetic volume uses "
                       "the acquired volume's bounds",
            "values": "finite numbers; \"inf\" = PSNR of a perfect prediction; null = undefined (see notes)",
            "summary": "mean and population std over finite values; n, n_none (undefined), n_inf (infinite)",
        },
        "legend": METRIC_LEGEND,
        "summary": json_safe(summary),
        "cases": json_safe(results),
    }
    paths = {"json": out_dir / "metrics.json", "csv": out_dir / "metrics.csv", "md": out_dir / "metrics.md"}
    write_text_atomic(paths["json"], json.dumps(document, indent=1, allow_nan=False) + "\n")
    write_text_atomic(paths["csv"], csv_text(results))
    write_text_atomic(paths["md"], markdown_text(summary, meta))
    return paths
