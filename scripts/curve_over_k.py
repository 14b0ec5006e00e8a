"""The curve over K (issue 12): the model's scores on one fresh set at each number of averaged samples K, and each
K's paired difference against K = 1, as a Markdown table.

    python scripts/curve_over_k.py runs5/curve     # reads <folder>/<set>_K<K>/metrics.json (scripts/curve_over_k.sh)

Per set and K: PSNR (mean over patients), prostate and lesion enhancement r (median), the paired PSNR and prostate r
against K = 1 (mean [95 % bootstrap interval]), the voxel-wise Spearman of the sample std with |error| (median over
patients, body / prostate; K ≥ 2) beside the card's expected-error map's, and the seconds the evaluation took.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from DCEDiffLib.evaluation.protocol import format_paired, paired_bootstrap
from DCEDiffLib.evaluation_runner import PAIRED_METRICS, case_metric

TARGETS = ("early", "late")


def runs_by_set(folder: Path) -> dict:
    """{set name: {K: metrics.json document}} for every <set>_K<K> folder holding a metrics.json."""
    found: dict = {}
    for path in sorted(Path(folder).glob("*_K*/metrics.json")):
        match = re.fullmatch(r"(.+)_K(\d+)", path.parent.name)
        if match:
            found.setdefault(match.group(1), {})[int(match.group(2))] = json.loads(path.read_text())
    return found


def _median(values) -> float | None:
    values = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    return float(np.median(values)) if values else None


def _pair(document: dict, reference: dict, target: str, path) -> str:
    mine = {row["case"]: row for row in document["cases"]["model"]}
    rows = [(mine[r["case"]], r) for r in reference["cases"]["model"] if r["case"] in mine]
    d = paired_bootstrap([case_metric(a, target, path) for a, _ in rows],
                         [case_metric(b, target, path) for _, b in rows])
    return format_paired(d, 3)


def _both(values) -> str:
    return " / ".join("–" if v is None else f"{v:.2f}" for v in values)


def row_cells(document: dict, reference: dict) -> list:
    """The table's cells for one set at one K (``reference``: the same set at K = 1)."""
    rows = document["cases"]["model"]
    protocol = document.get("meta", {}).get("protocol", {})
    std_cal = protocol.get("calibration_median") or {}
    map_cal = protocol.get("expected_error_calibration_median") or {}
    cells = []
    for target in TARGETS:
        psnr = [case_metric(r, target, PAIRED_METRICS["psnr_whole"]) for r in rows]
        cells.append(f"{np.mean([v for v in psnr if v is not None]):.2f}")
    cells.append(_both([_median(case_metric(r, t, PAIRED_METRICS["r_prostate"]) for r in rows) for t in TARGETS]))
    cells.append(_both([_median(case_metric(r, t, PAIRED_METRICS["r_lesion"]) for r in rows) for t in TARGETS]))
    for target in TARGETS:
        cells.append(_pair(document, reference, target, PAIRED_METRICS["psnr_whole"]))
        cells.append(_pair(document, reference, target, PAIRED_METRICS["r_prostate"]))
    cells.append(" ; ".join(_both([(std_cal.get(t) or {}).get(region) for region in ("body", "prostate")])
                            for t in TARGETS) if std_cal else "–")
    cells.append(" ; ".join(_both([((map_cal.get(t) or {}).get(region) or {}).get("spearman")
                                   for region in ("body", "prostate")]) for t in TARGETS) if map_cal else "–")
    cells.append(f"{document.get('meta', {}).get('seconds', float('nan')):.0f}")
    return cells


def curve_table(found: dict) -> str:
    header = ["set", "K", "PSNR early", "PSNR late", "prostate r", "lesion r", "ΔPSNR early vs K=1",
              "Δ prostate r early", "ΔPSNR late", "Δ prostate r late", "Spearman(std, |err|) body / prostate, "
              "early ; late", "expected-error map, the same", "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, by_k in sorted(found.items()):
        if 1 not in by_k:
            raise SystemExit(f"{name}: no K = 1 run to pair against")
        for k in sorted(by_k):
            data, k1_data = by_k[k].get("meta", {}).get("data"), by_k[1].get("meta", {}).get("data")
            if data != k1_data:
                raise SystemExit(f"{name}_K{k}: meta.data differs ({data!r} against {k1_data!r} at K = 1): expected "
                                 "one fresh set scored at each K")
            lines.append("| " + " | ".join([name, str(k)] + row_cells(by_k[k], by_k[1])) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder of <set>_K<K>/metrics.json (scripts/curve_over_k.sh)")
    found = runs_by_set(parser.parse_args(argv).folder)
    if not found:
        raise SystemExit("no <set>_K<K>/metrics.json found")
    print(curve_table(found))


if __name__ == "__main__":
    main()
