"""What `dcediff synthesize` tells the user on phantom exams, and whether its registration alarms are right.

Each case folder of each phantom dataset is run through the real command (`python -m DCEDiffLib.cli synthesize`
with its T2W, PD, ADC, T1-pre and acquired early/late DCE, as a user gives an exam; no labels, no centre), in its own
process. From what comes back:
- every line the command printed on stderr, sorted into the kinds of docs/ood.md "Measured" (an unknown line is
  kept whole, so nothing is hidden), and synthesis.json's out-of-distribution score and flag;
- each registration against the case's true motion (case.json; mean distance over the 40 mm sphere around the
  gland centre, as scripts/phantom_registration_errors.py measures it), beside its self-check verdict: a check that
  disagrees on a series registered to within ALARM_MM is a false alarm, one that agrees on a series off by more is
  a silent miss.

Usage: .venv/bin/python scripts/alarm_table.py DATASET [DATASET ...] --out DIR [--model MODEL] [--json F]
Prints one JSON line per exam, then a table per anatomy family × domain (docs/ood.md). The datasets are only read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from DCEDiffLib.phantom.acquisition import true_series_points  # noqa: E402
from DCEDiffLib.registration import REGION_RADIUS_MM  # noqa: E402
from DCEDiffLib.registration_check import sphere_points, transform_points  # noqa: E402
from DCEDiffLib.training.case_data import find_case_inputs  # noqa: E402

SERIES = ("pd", "adc", "t1pre", "dce_early", "dce_late")
OPTIONS = {"t2w": "--t2w", "pd": "--pd", "adc": "--adc", "t1pre": "--t1pre", "dce_early": "--dce-early",
           "dce_late": "--dce-late"}
# The self-check's own tolerance: a registration within it of the true motion is right
ALARM_MM = 1.5
# The kinds of console line docs/ood.md counts, first match wins (matched case-insensitively)
LINE_KINDS = (
    ("ood warning", r"OUT OF the model's training distribution"),
    ("ood: within", r"within the model's training distribution"),
    ("registration self-check disagrees", r"self-check.*DISAGREES"),
    ("crop on the field-of-view centre", r"crop centred on the T2W field-of-view centre"),
    ("correction not applied", r"registration correction not applied|correction to the .* not applied"),
    ("heavy-tail note", r"bright tail"),
    ("low T1-pre rescale", r"synthetic enhancement was scaled"),
    ("post-contrast T1-pre", r"post-contrast|contrast had been given|brighter than the T1"),
    ("acquired scale", r"acquired DCE divided|pre-contrast DCE frame could not|acquired DCE .* scale"),
    ("T1-pre coverage", r"T1-pre does not cover"),
)


def line_kind(line: str) -> str:
    """The kind of one stderr line (LINE_KINDS), or "other: <the line>"."""
    for kind, pattern in LINE_KINDS:
        if re.search(pattern, line, flags=re.IGNORECASE):
            return kind
    return "other: " + line.strip()[:160]


def said_lines(stderr: str) -> List[str]:
    """The warnings and notes among the command's stderr lines (progress bars and blank lines left out)."""
    keep = []
    for line in stderr.splitlines():
        text = line.strip()
        if text and re.match(r"(DCEDiff|dcediff)[: ]", text) and not text.startswith("DCEDIFF_PROGRESS"):
            keep.append(text)
    return keep


def rebuild_transform(record: dict) -> sitk.Transform:
    """The transform a synthesis.json registration record describes (registration.transform_record)."""
    if record.get("kind") == "CompositeTransform":
        composite = sitk.CompositeTransform(3)
        for component in record["components"]:
            composite.AddTransform(rebuild_transform(component))
        return composite
    if record.get("kind") != "Euler3DTransform":
        raise ValueError(f"transform kind {record.get('kind')!r}: expected Euler3DTransform or CompositeTransform")
    euler = sitk.Euler3DTransform()
    euler.SetFixedParameters(record["fixed_parameters"])
    euler.SetParameters(record["parameters"])
    return euler


def registration_rows(synthesis: dict, meta: dict) -> Dict[str, dict]:
    """Per series: error against the true motion (mm, 40 mm sphere), applied or not, and the self-check's verdict."""
    points = sphere_points(meta["anatomy"]["gland_centre_lps"], REGION_RADIUS_MM, 5.0)
    rows = {}
    for series, record in (synthesis.get("registration") or {}).items():
        if series not in SERIES or "transform" not in record:
            continue
        mapped = transform_points(rebuild_transform(record["transform"]), points)
        error = float(np.linalg.norm(mapped - true_series_points(meta, series, points), axis=1).mean())
        check = record.get("self_check") or {}
        rows[series] = {"error_mm": round(error, 3), "applied": record.get("applied"),
                        "check_agrees": check.get("agrees"), "check_mm": check.get("mean_disagreement_mm")}
    return rows


def alarm_verdict(row: dict) -> str:
    """'true alarm', 'false alarm', 'silent miss', 'right' or 'no check' for one series' row."""
    agrees, wrong = row.get("check_agrees"), row["error_mm"] > ALARM_MM
    if agrees is None:
        return "no check"
    if agrees is False:
        return "true alarm" if wrong else "false alarm"
    return "silent miss" if wrong else "right"


def run_exam(case_dir: Path, out_dir: Path, model: Optional[str], cache: Path) -> dict:
    """Run `dcediff synthesize` on one phantom case; the exam's row."""
    inputs = find_case_inputs(case_dir)
    meta = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
    command = [sys.executable, "-m", "DCEDiffLib.cli", "synthesize", "--out", str(out_dir), "--seed", "0"]
    for key, option in OPTIONS.items():
        if key in inputs:
            command += [option, str(inputs[key])]
    if model:
        command += ["--model", model]
    env = dict(os.environ, DCEDIFF_CACHE_DIR=str(cache))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, encoding="utf-8", errors="replace")
    row = {"exam": str(case_dir), "family": meta.get("anatomy_family"), "domain": meta.get("domain"),
           "fat_suppressed": (meta.get("dce") or {}).get("t1_fat_suppressed"), "returncode": done.returncode,
           "seconds": round(time.perf_counter() - started, 1)}
    lines = said_lines(done.stderr)
    row["said"] = [{"kind": line_kind(line), "line": line} for line in lines]
    if done.returncode != 0:
        row["error"] = done.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        return row
    synthesis = json.loads((out_dir / "synthesis.json").read_text(encoding="utf-8"))
    ood = synthesis.get("out_of_distribution") or {}
    row.update(ood_score=ood.get("score"), ood_flagged=bool(ood.get("flagged")), ood_reasons=ood.get("reasons", []),
               crop_source=synthesis.get("crop_centre_source"),
               registration=registration_rows(synthesis, meta))
    return row


def summary(rows: List[dict]) -> str:
    """Markdown tables per anatomy family × domain: OOD scores, stderr line kinds and registration alarms."""
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        groups.setdefault((row["family"], row["domain"]), []).append(row)
    out = ["| family × domain | exams | failed | OOD score median (range) | flagged |", "|---|---|---|---|---|"]
    for (family, domain), members in sorted(groups.items()):
        scores = np.array([r["ood_score"] for r in members if r.get("ood_score") is not None])
        text = f"{np.median(scores):.2f} ({scores.min():.2f}–{scores.max():.2f})" if scores.size else "–"
        out.append(f"| {family}, {domain} | {len(members)} | {sum(r['returncode'] != 0 for r in members)} | {text} | "
                   f"{sum(bool(r.get('ood_flagged')) for r in members)} |")
    order = sorted(groups)
    names = [f"{f}, {d}" for f, d in order]
    out += ["", "Exams with each kind of console line:", "", "| line | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names)]
    for kind in sorted({s["kind"] for r in rows for s in r["said"]}):
        counts = [sum(any(s["kind"] == kind for s in r["said"]) for r in groups[g]) for g in order]
        out.append(f"| {kind} | " + " | ".join(f"{c} of {len(groups[g])}" for c, g in zip(counts, order)) + " |")
    out += ["", f"Registration self-checks against the true motion (wrong: beyond {ALARM_MM} mm over the 40 mm "
            "sphere):", "", "| series | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for series in SERIES:
        cells = []
        for g in order:
            judged = [r["registration"][series] for r in groups[g] if series in (r.get("registration") or {})]
            verdicts = Counter(alarm_verdict(j) for j in judged)
            median = f"{np.median([j['error_mm'] for j in judged]):.2f} mm" if judged else "–"
            cells.append(f"{median}; true {verdicts['true alarm']}, false {verdicts['false alarm']}, "
                         f"missed {verdicts['silent miss']}")
        out.append(f"| {series} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path, help="phantom dataset folders (case_*/ inside)")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the exams' results")
    parser.add_argument("--model", help="a model file (default: the shipped one)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"--out {args.out}: expected a new or empty folder")
    cases = [c for d in args.datasets for c in sorted(d.glob("case_*")) if (c / "case.json").is_file()]
    if not cases:
        raise SystemExit("no phantom case folders (case_*/case.json) in " + ", ".join(map(str, args.datasets)))
    rows = []
    for number, case_dir in enumerate(cases):
        rows.append(run_exam(case_dir, args.out / f"{number:03d}_{case_dir.name}", args.model, args.out / "cache"))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print()
    print(summary(rows))
    return 0 if all(r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
