#!/usr/bin/env python3
"""Which simple per-voxel quantity says where the synthesis errs, beside the card's expected-error map? A probe for
issue 12's calibrated uncertainty (the map's size holds; its ranking is weak: Spearman 0.02–0.18 in the body).

For each phantom case of a data folder (with its acquired DCE), the shipped configuration synthesizes the early
image; then the Spearman correlation of |synthetic − acquired| with each candidate quantity is taken over the
evaluation's body mask and its prostate (`evaluate`'s own regions), and the medians over patients are printed:
the expected-error map, the edge feature its table is made from (the synthetic image's in-plane gradient), the
T1-pre, the synthetic image, |synthetic − T1-pre| (the synthetic enhancement's size),
the map times the synthetic image (relative to its body median), and the synthetic image's local 5 × 5 std.
It reads no acquired DCE into any prediction; use validation patients (it is a probe for a next error model).

    OMP_NUM_THREADS=2 .venv/bin/python scripts/error_map_body_features.py runs5/val/P [--cases 18] [--model M]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def candidate_maps(synthetic: np.ndarray, t1pre: np.ndarray, expected: np.ndarray, body: np.ndarray) -> dict:
    """The quantities compared with |error|, each a volume of ``synthetic``'s shape."""
    from scipy.ndimage import uniform_filter

    from DCEDiffLib.diffusion.error_map import edge_feature

    mean = uniform_filter(synthetic, (1, 5, 5))
    local_std = np.sqrt(np.maximum(uniform_filter(synthetic ** 2, (1, 5, 5)) - mean ** 2, 0.0))
    return {"expected-error map": expected, "edge feature (the map's own)": edge_feature(synthetic).astype(np.float64),
            "T1-pre": t1pre, "synthetic": synthetic,
            "|synthetic - T1-pre|": np.abs(synthetic - t1pre),
            "map x synthetic": expected * synthetic / max(float(np.median(synthetic[body])), 1e-6),
            "local std of synthetic": local_std}


def region_spearman(maps: dict, error: np.ndarray, regions: dict) -> dict:
    """{quantity: {region: Spearman of the quantity with ``error`` over the region}}."""
    from scipy.stats import spearmanr

    return {name: {region: float(spearmanr(values[mask], error[mask])[0]) for region, mask in regions.items()}
            for name, values in maps.items()}


def main(argv=None) -> None:
    import SimpleITK as sitk

    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask, region_masks
    from DCEDiffLib.pipeline import synthesize_case

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a dcediff phantom folder (NIfTI cases with acquired DCE)")
    parser.add_argument("--cases", type=int, default=None, help="the first N cases (default: all)")
    parser.add_argument("--model", default=None, help="default: the shipped model")
    args = parser.parse_args(argv)
    folders = sorted(p for p in args.data.iterdir() if p.name.startswith("case_"))[:args.cases]
    per_case = []
    for case in folders:
        names = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late", "labels")  # the engine takes both frames
        inputs = {m: str(case / f"{m}.nii.gz") for m in names}
        out = synthesize_case(inputs, model_path=args.model, seed=0)
        t1pre = sitk.GetArrayFromImage(out.case.images["t1pre"]).astype(np.float64)
        synthetic = sitk.GetArrayFromImage(out.synthetic["early"]).astype(np.float64)
        acquired = out.acquired["early"].astype(np.float64)
        expected = sitk.GetArrayFromImage(out.expected_error["early"]).astype(np.float64)
        body = derive_body_mask(out.acquired["early"])
        legend = json.loads((case / "case.json").read_text(encoding="utf-8"))["label_legend"]
        masks, _ = region_masks(out.labels, legend, body.shape)
        found = region_spearman(candidate_maps(synthetic, t1pre, expected, body), np.abs(synthetic - acquired),
                                {"body": body, "prostate": masks["prostate"]})
        per_case.append(found)
        print(case.name, {k: f"{v['body']:.2f} / {v['prostate']:.2f}" for k, v in found.items()}, flush=True)
    print(f"median over {len(per_case)} patients, Spearman with |error| early, body / prostate:")
    for name in per_case[0]:
        body = np.median([c[name]["body"] for c in per_case])
        prostate = np.median([c[name]["prostate"] for c in per_case])
        print(f"  {name}: {body:.2f} / {prostate:.2f}")


if __name__ == "__main__":
    main()
