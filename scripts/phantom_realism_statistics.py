#!/usr/bin/env python3
"""What the phantom's randomization produces, next to what real exams show (realism-targets.md).

Generates N cases (the case seeds and anatomy families ``dcediff phantom --cases N --seed S --anatomy A`` would
give them; in memory, nothing is written) or reads the case folders of ``--data DIR``, measures each with
``DCEDiffLib.phantom.realism.measure_case`` (per-tissue medians over the label masks, relative enhancement against
the T1-pre at the early/middle and late/last DCE frames, lesions against the gland around them) and prints a
Markdown table: per statistic the number of values (cases, or lesions for lesion rows), the median and the
10th–90th percentile over them, and the real-exam figure it should be compared with.

Example (the table in docs/phantom.md, "What the randomization produces"; ~5 s per case on 2 busy cores):
``OMP_NUM_THREADS=1 .venv/bin/python scripts/phantom_realism_statistics.py --cases 24 --seed 2024 --anatomy mixed``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from DCEDiffLib.phantom.acquisition import DOMAINS  # noqa: E402
from DCEDiffLib.phantom.generator import ANATOMY_FAMILIES, case_seed, generate_case  # noqa: E402
from DCEDiffLib.phantom.realism import collect, measure_case, summarize  # noqa: E402

# Real-exam figures (../shared/reference/realism-targets.md: ProstateX-0000 for ADC/T2W/PD, the I2CVB 3T fat-sat
# exam for enhancement at ~137 s = middle frame and 266 s = last frame; docs/phantom.md for the fat/T1-pre
# correlation on ProstateX). Only for display: they are one patient each, not ranges to copy.
REAL_TARGETS: Dict[str, str] = {
    "adc.gland": "central gland 1320 (voxels 1094–1645), ProstateX-0000",
    "adc.peripheral_zone": "1400–2000 (literature)",
    "adc.transition_zone": "1100–1500 (literature)",
    "adc.centre_box": "1320 (16×16×4 at the ADC grid centre, ProstateX-0000)",
    "re_early.gland": "PZ 0.93, central gland 1.15 (I2CVB)",
    "re_late.gland": "PZ 1.07, central gland 1.21 (I2CVB)",
    "re_early.peripheral_zone": "0.93 (I2CVB)",
    "re_late.peripheral_zone": "1.07 (I2CVB)",
    "re_early.transition_zone": "central gland 1.15 (I2CVB)",
    "re_late.transition_zone": "central gland 1.21 (I2CVB)",
    "re_late_minus_early.gland": "> 0: PZ +0.14, central gland +0.06 (I2CVB)",
    "re_early.fat": "≈ 0 (fat hardly enhances)",
    "re_late.fat": "≈ 0 (fat hardly enhances)",
    "re_late.fat_minus_gland": "< 0",
    "re_early.vessel": "strongest tissue (no measured figure)",
    "re_early.vessel_minus_strongest_other": "> 0",
    "lesion[textbook].adc": "600–1000 (literature, csPCa); 1104 with partial volume (ProstateX-0000)",
    "lesion[less_enhancing].adc": "1104 with partial volume (ProstateX-0000)",
    "lesion[textbook].adc_around": "1204 (ring, ProstateX-0000)",
    "lesion[less_enhancing].adc_around": "1204 (ring, ProstateX-0000)",
    "lesion[textbook].adc_minus_around": "−100 (ProstateX-0000, partial volume); < 0",
    "lesion[less_enhancing].adc_minus_around": "−100 (ProstateX-0000, partial volume); < 0",
    "lesion[textbook].t2w_ratio": "0.35 (ProstateX-0000)",
    "lesion[less_enhancing].t2w_ratio": "0.35 (ProstateX-0000)",
    "lesion[textbook].pd_ratio": "0.90 (ProstateX-0000)",
    "lesion[less_enhancing].pd_ratio": "0.90 (ProstateX-0000)",
    "lesion[textbook].re_early_minus_around": "> 0 (textbook: earlier, stronger wash-in)",
    "lesion[textbook].re_late_minus_around": "smaller than early (wash-out)",
    "lesion[less_enhancing].re_early": "0.64 (I2CVB cancer)",
    "lesion[less_enhancing].re_late": "0.81 (I2CVB cancer)",
    "lesion[less_enhancing].re_early_minus_around": "−0.29 (I2CVB cancer − PZ)",
    "lesion[less_enhancing].re_late_minus_around": "−0.26 (I2CVB cancer − PZ)",
    "fat_suppressed_share": "both occur: ProstateX not fat suppressed, I2CVB fat-sat",
    "fat_t1pre_rank[not fat suppressed]": "1 (fat brightest on T1-pre, ProstateX)",
    "fat_to_muscle_t1pre[not fat suppressed]": "> 1 (fat bright)",
    "body_enhancement_t1pre_r[not fat suppressed]": "−0.49 (ProstateX)",
    "fat_to_muscle_t1pre[fat suppressed]": "< 1 (fat dark)",
}
SHARE_ROWS = {"fat_suppressed_share"}
# Rows in display order: a leading tissue/lesion block, then anything else collect() produced.
ORDER = ("adc.", "lesion[textbook].adc", "lesion[less_enhancing].adc", "lesion[textbook].t2w", "lesion[textbook].pd",
         "lesion[less_enhancing].t2w", "lesion[less_enhancing].pd", "re_early.", "re_late.", "re_late_minus",
         "lesion[textbook].re", "lesion[less_enhancing].re", "fat_", "body_")


def generate_and_measure(cases: int, seed: int, anatomy: str, domain: str, log=print) -> List[Dict[str, object]]:
    """Measure ``cases`` fresh cases, seeded as ``dcediff phantom --seed`` seeds them (in memory)."""
    measurements = []
    for index in range(cases):
        s = case_seed(seed, index)
        start = time.perf_counter()
        # The procedural family is called exactly as generate_dataset calls it (its default path).
        family = {} if anatomy == "procedural" else {"anatomy": anatomy}
        case = generate_case(s, domain, f"case_{index:03d}", **family)
        generated = time.perf_counter()
        measurements.append(measure_case(case))
        log(f"case {index:3d} seed {s:10d} {case.params['anatomy_family']:10s} "
            f"fat suppressed {str(case.params['dce']['t1_fat_suppressed']):5s} lesions "
            f"{[l['kind'] for l in case.params['lesions']]}  generate {generated - start:.1f} s, "
            f"measure {time.perf_counter() - generated:.1f} s")
    return measurements


def measure_folder(data: Path, log=print) -> List[Dict[str, object]]:
    """Measure every case folder (``*/case.json``) of ``data``."""
    folders = sorted(p.parent for p in data.glob("*/case.json"))
    if not folders:
        raise SystemExit(f"{data}: no case folders (*/case.json)")
    measurements = []
    for folder in folders:
        measurements.append(measure_case(folder))
        log(f"{folder.name}: measured")
    return measurements


def _order_key(name: str):
    for rank, prefix in enumerate(ORDER):
        if name.startswith(prefix):
            return rank, name
    return len(ORDER), name


def table(values: Dict[str, List[float]]) -> str:
    """Markdown table: statistic, n, median, 10th–90th percentile, real-exam figure."""
    lines = ["| statistic | n | median | 10th–90th pct | real exams |", "|---|---|---|---|---|"]
    for name in sorted(values, key=_order_key):
        s = summarize(values[name])
        if name in SHARE_ROWS:  # 0/1 per case: the share is the informative number
            share = float(np.mean(values[name]))
            lines.append(f"| {name} | {s['n']} | {share:.2f} (share) | – | {REAL_TARGETS.get(name, '')} |")
            continue
        digits = 0 if abs(s["median"]) >= 100 else 2
        fmt = lambda v: f"{v:.{digits}f}"
        lines.append(f"| {name} | {s['n']} | {fmt(s['median'])} | {fmt(s['p10'])} – {fmt(s['p90'])} | "
                     f"{REAL_TARGETS.get(name, '')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=24, help="number of fresh cases (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed, as dcediff phantom --seed")
    parser.add_argument("--anatomy", choices=ANATOMY_FAMILIES, default="procedural")
    parser.add_argument("--domain", choices=DOMAINS, default="A")
    parser.add_argument("--data", type=Path, help="measure the case folders of DIR instead of generating cases")
    parser.add_argument("--json", type=Path, help="also write every case's measurement to this JSON file")
    args = parser.parse_args(argv)
    log = lambda text: print(text, file=sys.stderr, flush=True)
    if args.data is not None:
        measurements = measure_folder(args.data, log)
        source = f"--data {args.data}"
    else:
        if args.cases < 1 or args.seed < 0:
            parser.error("--cases must be positive and --seed non-negative")
        measurements = generate_and_measure(args.cases, args.seed, args.anatomy, args.domain, log)
        source = f"--cases {args.cases} --seed {args.seed} --anatomy {args.anatomy} --domain {args.domain}"
    families = sorted({m["anatomy_family"] for m in measurements})
    print(f"{len(measurements)} cases ({source}; families {', '.join(families)}); "
          f"{sum(len(m['lesions']) for m in measurements)} lesions\n")
    print(table(collect(measurements)))
    if args.json is not None:
        args.json.write_text(json.dumps(measurements, indent=1, default=float) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
