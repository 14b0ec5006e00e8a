"""Registration errors of the preprocessing on phantom exams, against the true motion in each case.json.

For every case folder: ``preprocess_case`` (the path training, evaluation and synthesis take; crop on the field-of-view
centre as ``dcediff train``/``evaluate`` do) registers PD, ADC, T1-pre and the DCE frames; each transform is compared
with the motion the generator applied (mean distance over the 40 mm sphere around the gland centre), beside the error
of doing nothing (the scanner alignment). ``frame − T1-pre`` is how far each DCE frame's transform lies from the
T1-pre's: the enhancement (frame − T1-pre) is only as sharp as that. ``--independent`` also registers each DCE frame
to the T2W on its own (what the preprocessing did before the frames were registered to the T1-pre), for comparison.
``--self-check`` runs the perturbation self-check as ``dcediff synthesize`` does and records, per series, its
disagreement (``<series>_check_mm``; ``<series>_check_region_mm``: over the series' registration sphere) and
verdict (``<series>_agrees``): a verdict that says DISAGREES on a series registered to within a voxel is a false
alarm the user sees.

Usage: .venv/bin/python scripts/phantom_registration_errors.py CASE_DIR [CASE_DIR ...] [--independent] [--self-check]
       [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from DCEDiffLib.phantom.acquisition import true_series_points  # noqa: E402
from DCEDiffLib.preprocess import preprocess_case  # noqa: E402
from DCEDiffLib.registration import REGION_RADIUS_MM, register_rigid  # noqa: E402
from DCEDiffLib.registration_check import sphere_points, transform_points  # noqa: E402
from DCEDiffLib.training.case_data import find_case_inputs  # noqa: E402

SERIES = ("pd", "adc", "t1pre", "dce_early", "dce_late")
FRAMES = ("dce_early", "dce_late")


def measure_case(case_dir: Path, independent: bool, self_check: bool = False) -> dict:
    """Errors (mm) of one case's registrations against its true motion (and, with ``self_check``, the check's
    disagreement in mm and its verdict)."""
    meta = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
    inputs = find_case_inputs(case_dir)
    case = preprocess_case(inputs, self_check=self_check, warn=lambda text: None)
    points = sphere_points(meta["anatomy"]["gland_centre_lps"], REGION_RADIUS_MM, 5.0)
    mapped = {m: transform_points(case.registration[m].transform, points) for m in SERIES}
    row = {"case": case_dir.name}
    t2w = sitk.ReadImage(str(inputs["t2w"]), sitk.sitkFloat32) if independent else None
    for m in SERIES:
        truth = true_series_points(meta, m, points)
        row[m] = float(np.linalg.norm(mapped[m] - truth, axis=1).mean())
        row[f"{m}_scanner"] = float(np.linalg.norm(points - truth, axis=1).mean())
        if self_check:
            check = case.registration[m].self_check or {}
            row[f"{m}_check_mm"] = float(check.get("mean_disagreement_mm", float("nan")))
            row[f"{m}_agrees"] = check.get("agrees")
            region = check.get("registration_region") or {}  # over the series' registration sphere, if larger
            row[f"{m}_check_region_mm"] = float(region.get("mean_disagreement_mm", row[f"{m}_check_mm"]))
    for m in FRAMES:
        row[f"{m}_vs_t1pre"] = float(np.linalg.norm(mapped[m] - mapped["t1pre"], axis=1).mean())
        if independent:
            alone = register_rigid(t2w, sitk.ReadImage(str(inputs[m]), sitk.sitkFloat32), m,
                                   case.grid.center_lps)
            alone_points = transform_points(alone.transform, points)
            alone_error = np.linalg.norm(alone_points - true_series_points(meta, m, points), axis=1)
            row[f"{m}_independent"] = float(alone_error.mean())
            row[f"{m}_independent_vs_t1pre"] = float(np.linalg.norm(alone_points - mapped["t1pre"], axis=1).mean())
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+", type=Path)
    parser.add_argument("--independent", action="store_true",
                        help="also register each DCE frame to the T2W on its own (the former preprocessing)")
    parser.add_argument("--self-check", action="store_true",
                        help="run the registration self-check and record its disagreement and verdict per series")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    rows = []
    for case_dir in args.cases:
        rows.append(measure_case(case_dir, args.independent, args.self_check))
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    print(f"\n{len(rows)} cases; mean error over the 40 mm sphere (mm), median [max]:")
    keys = [k for k in rows[0] if k != "case" and not k.endswith("_agrees")]
    for key in keys:
        values = np.array([r[key] for r in rows])
        print(f"  {key:32s} {np.median(values):5.2f} [{values.max():5.2f}]")
    for key in (k for k in rows[0] if k.endswith("_agrees")):
        print(f"  {key:32s} {sum(r[key] is False for r in rows)} of {len(rows)} disagree")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
