"""Relative enhancement by tissue on phantom cases, the model's against the acquired: does a tissue the model gets wrong
on a real exam (docs/real_exams.md: urine enhancing, vessels weak) also come out wrong where the answer is known?

For each case (working grid, as training and evaluation load it), the model's mean synthesis (1 sample, seed 0) and the
acquired DCE give RE = (S − S_T1pre) / S_T1pre; the median RE per tissue is printed for both, early and late, and the
medians over cases at the end. Tissues: urine (the bladder label deeper than
:data:`DCEDiffLib.phantom.realism.URINE_DEPTH_MM` from its edge), fat, muscle, vessel, gland (PZ ∪ TZ); a tissue with
fewer than :data:`MIN_VOXELS` voxels in a case's crop is left out there.

    .venv/bin/python scripts/phantom_tissue_enhancement.py MODEL --data runs/data_val5 --cache runs/cache \
        --cases case_8100 case_8101 … [--json OUT] [--against OTHER_JSON]

``--clipped`` also prints the acquired RE with the acquired DCE clipped at the top of the targets' range (what
training sees and the most the model can draw; scripts/target_range_exceedance.py). ``--json`` writes the per-case
medians; ``--against`` a --json of another model on the same cases prints, per target
and tissue, the median over cases of this model's RE ratio (model / acquired) beside the other's, and the mean paired
difference of the model RE.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from DCEDiffLib.phantom.realism import urine_mask  # noqa: E402

MIN_VOXELS = 20
TISSUES = ("urine", "fat", "muscle", "vessel", "gland")


def tissue_masks(labels: np.ndarray, legend: Dict[str, int], spacing_kji: Sequence[float]) -> Dict[str, np.ndarray]:
    """Boolean masks of :data:`TISSUES` on a label volume (k, j, i) with voxel spacing ``spacing_kji`` in mm."""
    return {"urine": urine_mask(labels == legend["bladder"], spacing_kji), "fat": labels == legend["fat"],
            "muscle": labels == legend["muscle"], "vessel": labels == legend["vessel"],
            "gland": np.isin(labels, [legend["peripheral_zone"], legend["transition_zone"]])}


def median_relative_enhancement(image: np.ndarray, t1pre: np.ndarray, mask: np.ndarray) -> float:
    """Median over ``mask`` of (image − t1pre) / t1pre; NaN where the mask has fewer than :data:`MIN_VOXELS`
    voxels."""
    if int(mask.sum()) < MIN_VOXELS:
        return float("nan")
    pre = t1pre[mask].astype(np.float64)
    return float(np.median((image[mask].astype(np.float64) - pre) / np.maximum(pre, 1e-6)))


def ratio_comparison(this: Dict[str, dict], other: Dict[str, dict]) -> Dict[str, dict]:
    """Per "target tissue": the median over the cases both have of the RE ratio (model / acquired, cases whose
    acquired RE is at least 0.1) for ``this`` and ``other`` (--json documents: case → target → tissue → [model,
    acquired]), and the mean paired difference of the model RE (this − other)."""
    summary = {}
    for case, targets in this.items():
        for target, tissues in targets.items():
            for tissue, (s, a) in tissues.items():
                theirs = other.get(case, {}).get(target, {}).get(tissue)
                if theirs is None:
                    continue
                row = summary.setdefault(f"{target} {tissue}", {"ratio": ([], []), "difference": []})
                if a >= 0.1:
                    row["ratio"][0].append(s / a)
                    row["ratio"][1].append(theirs[0] / theirs[1])
                row["difference"].append(s - theirs[0])
    return {key: {"ratio_this": float(np.median(r["ratio"][0])) if r["ratio"][0] else None,
                  "ratio_other": float(np.median(r["ratio"][1])) if r["ratio"][1] else None,
                  "re_difference": float(np.mean(r["difference"])), "cases": len(r["difference"])}
            for key, r in summary.items()}


def main(argv=None) -> int:
    from model_case_options import model_on_cases_parser

    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.normalization import denormalize
    from DCEDiffLib.training.case_data import load_case

    parser = model_on_cases_parser(__doc__)
    parser.add_argument("--against", type=Path, help="a --json of another model on the same cases")
    parser.add_argument("--clipped", action="store_true",
                        help="also the acquired RE clipped at the top of the targets' range")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    targets = model.card["targets"]
    rows = {(t, tissue): ([], []) for t in targets for tissue in TISSUES}
    per_case: Dict[str, dict] = {}
    for name in args.cases:
        case = load_case(args.data / name, args.cache)
        if case.labels is None or case.targets is None:
            print(f"{name}: no labels or no acquired DCE, left out", flush=True)
            continue
        spacing = case.grid["spacing"]
        masks = tissue_masks(case.labels, case.legend, [spacing[2], spacing[1], spacing[0]])
        result = synthesize_volume(model, model_conditions(model, case), samples=1, seed=0, device="cpu",
                                   adc_norm=case.norm.get("adc"))
        t1pre = case.raw("t1pre")
        cells = []
        for i, target in enumerate(targets):
            synthetic = denormalize(result.mean[i], case.norm[target])
            acquired = case.raw(target)
            clipped = denormalize(np.clip(case.targets[i], -1.0, 1.0), case.norm[target]) if args.clipped else None
            for tissue, mask in masks.items():
                s = median_relative_enhancement(synthetic, t1pre, mask)
                a = median_relative_enhancement(acquired, t1pre, mask)
                if np.isfinite(s) and np.isfinite(a):
                    rows[(target, tissue)][0].append(s)
                    rows[(target, tissue)][1].append(a)
                    cell = f"{target} {tissue} {s:.2f} / {a:.2f}"
                    if clipped is not None:
                        cell += f" (clipped {median_relative_enhancement(clipped, t1pre, mask):.2f})"
                    cells.append(cell)
                    per_case.setdefault(name, {}).setdefault(target, {})[tissue] = [s, a]
        print(f"{name} (RE model / acquired): " + "; ".join(cells), flush=True)
    print("medians over cases (RE model / acquired, cases):")
    for (target, tissue), (synthetic, acquired) in rows.items():
        if synthetic:
            print(f"  {target:<10} {tissue:<7} {np.median(synthetic):5.2f} / {np.median(acquired):5.2f}  "
                  f"({len(synthetic)})")
    if args.json:
        args.json.write_text(json.dumps(per_case, indent=1), encoding="utf-8")
    if args.against:
        other = json.loads(args.against.read_text(encoding="utf-8"))
        print(f"against {args.against} (median RE ratio this / other; mean paired RE difference, cases):")
        for key, row in ratio_comparison(per_case, other).items():
            ratios = " / ".join("  —" if v is None else f"{v:.2f}" for v in (row["ratio_this"], row["ratio_other"]))
            print(f"  {key:<18} ratio {ratios}  RE {row['re_difference']:+.3f}  ({row['cases']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
