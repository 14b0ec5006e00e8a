#!/usr/bin/env python3
"""Does the model draw the lesions? Per lesion: acquired and synthetic contrast against the gland around it.

For each lesion (connected component of the phantom's lesion label, ≥ 15 voxels) of each case, the contrast is the
mean inside the lesion minus the mean of the gland (PZ + TZ, not lesion) within 3 voxels in-plane around it, on the
normalised early/late images (the model's units: acquired and synthetic on the same scale). Prints one line per
lesion and a summary per target: median acquired and synthetic contrast, the least-squares slope of synthetic on
acquired (1 = drawn at full strength, 0 = not drawn), and the share with the acquired sign. Also the lesion r of
``dcediff evaluate`` (Pearson of the images over lesion voxels), median over cases. Use validation cases.

    .venv/bin/python scripts/lesion_contrast.py MODEL --data DATA_DIR --cases case_400 case_401 ... [--cache DIR]
        [--json OUT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_case_options beside it

MIN_VOXELS = 15
RING_PIXELS = 3


def lesion_contrasts(image: np.ndarray, labels: np.ndarray, legend: dict, min_voxels: int = MIN_VOXELS) -> list:
    """(voxels, contrast, lesion mask, ring mask) per lesion of a (K, H, W) image whose lesion and ring both have
    ``min_voxels`` or more voxels."""
    from scipy import ndimage

    lesions = labels == legend.get("lesion", -1)
    gland = np.isin(labels, [legend.get("peripheral_zone", -1), legend.get("transition_zone", -1)])
    components, count = ndimage.label(lesions)
    out = []
    for index in range(1, count + 1):
        lesion = components == index
        ring = ndimage.binary_dilation(lesion, np.ones((1, 2 * RING_PIXELS + 1, 2 * RING_PIXELS + 1))) & gland
        if lesion.sum() >= min_voxels and ring.sum() >= min_voxels:
            out.append((int(lesion.sum()), float(image[lesion].mean() - image[ring].mean()), lesion, ring))
    return out


def main(argv=None) -> int:
    from model_case_options import model_on_cases_parser

    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.normalization import normalize
    from DCEDiffLib.training.case_data import load_case

    args = model_on_cases_parser(__doc__).parse_args(argv)

    model = load_model(args.model)
    targets = model.card["targets"]
    rows, lesion_r = [], {t: [] for t in targets}
    for name in args.cases:
        case = load_case(args.data / name, args.cache)
        if case.labels is None or "lesion" not in case.legend:
            continue
        result = synthesize_volume(model, model_conditions(model, case), samples=1, seed=0, device="cpu",
                                   adc_norm=case.norm.get("adc"))
        for i, target in enumerate(targets):
            acquired = normalize(case.raw(target), case.norm[target])
            lesions = case.labels == case.legend["lesion"]
            if lesions.sum() >= MIN_VOXELS:
                lesion_r[target].append(float(np.corrcoef(acquired[lesions], result.mean[i][lesions])[0, 1]))
            for number, (voxels, contrast, lesion, ring) in enumerate(lesion_contrasts(acquired, case.labels,
                                                                                        case.legend), start=1):
                synthetic = float(result.mean[i][lesion].mean() - result.mean[i][ring].mean())
                rows.append({"case": name, "lesion": number, "target": target, "voxels": voxels,
                             "acquired": round(contrast, 4), "synthetic": round(synthetic, 4)})
                print(f"{name} lesion {number} {target}: {voxels} voxels, contrast acquired {contrast:+.3f}, "
                      f"synthetic {synthetic:+.3f}", flush=True)
    summary = {}
    for target in targets:
        a = np.array([r["acquired"] for r in rows if r["target"] == target])
        s = np.array([r["synthetic"] for r in rows if r["target"] == target])
        if a.size == 0:
            continue
        summary[target] = {"lesions": int(a.size), "median_acquired": round(float(np.median(a)), 4),
                           "median_synthetic": round(float(np.median(s)), 4),
                           "slope": round(float(np.dot(a, s) / max(np.dot(a, a), 1e-12)), 3),
                           "sign_agreement": round(float(np.mean(np.sign(a) == np.sign(s))), 3),
                           "lesion_r_median": round(float(np.median(lesion_r[target])), 3)}
        print(f"{target}: {json.dumps(summary[target])}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "cases": args.cases, "summary": summary,
                                         "lesions": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
