"""Can the T1-pre alone tell a pre-contrast image from a post-contrast one? Measure candidate features on both.

A post-contrast T1 given as the T1-pre makes the synthetic enhancement about twice too strong (docs/ood.md,
"Limits"). This script measures single-image features of a T1-weighted image — with tissue masks from labels, i.e.
the best case: the pipeline itself has no muscle, fat or vessel mask — on

- negatives: the phantom's T1-pre (frame 0 of its DCE, before the bolus) and the real pre-contrast images at hand:
  the ProstateX PD reference scans (tfl3d turbo-FLASH, TR 800 ms, 14°; there is no real T1-weighted VIBE in
  ``../shared/data``) and, marked as a stand-in, that PD made T1-weighted by tissue (VIBE 20°,
  ``scripts/real_exam_tissue_enhancement.py``);
- positives: the phantom's acquired early and late frames given as the T1-pre.

Features (medians over core label masks on the image's own grid):
- ``g/m``: gland / muscle (before contrast about equal on a T1 VIBE; the gland enhances, muscle much less);
- ``g/f``: gland / fat;
- ``v/g``: vessel (90th percentile) / gland (vessels become the brightest structures after contrast);
- ``g/body``: gland / body (every labelled tissue): what a detector without tissue masks could see;
- ``level``: the gland median's place in the image's 0.5–99.5th percentile range over the body, 0 to 1 (the OOD
  check's ``t1pre.gland_level``, here on the native grid);
- ``gm/PD``: g/m of the image divided by g/m of the exam's PD (always pre-contrast; cancels proton density).

Phantom masks come from ``DCEDiffLib.phantom.realism.region_masks`` (true motion, core voxels); real ones from the
template label maps of ``Resources/Anatomy`` resampled onto the PD grid (nearest neighbour, then eroded by one voxel
in-plane). Seeds must lie in 777200–777299 (throwaway seeds of this investigation).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/t1pre_contrast_features.py --cases 6 [--seed 777200] [--json out]

Prints one row per image and a summary per class: range and the margin between the classes for each feature.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from DCEDiffLib.phantom.anatomy import LABEL_LEGEND  # noqa: E402
from DCEDiffLib.phantom.generator import generate_case  # noqa: E402
from DCEDiffLib.phantom.realism import region_masks  # noqa: E402
from DCEDiffLib.volume_io import read_volume  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "prostatex"
ANATOMY = ROOT / "Resources" / "Anatomy"
PD_FOLDERS = {"0000": "9-tfl3d_PD_reftra1.5x1.5t3", "0001": "11-tfl3d_PD_reftra1.5x1.5t3"}
SEED_RANGE = (777200, 777299)
FEATURES = ("g/m", "g/f", "v/g", "g/body", "level", "gm/PD")
# Per block of cases: (anatomy family, domain); the phantom draws fat suppression per case.
FAMILIES = (("procedural", "A"), ("prostatex", "A"), ("procedural", "B"), ("prostatex", "B"))
MIN_VOXELS = 5


def _median(image: np.ndarray, mask: Optional[np.ndarray]) -> float:
    if mask is None or int(mask.sum()) < MIN_VOXELS:
        return float("nan")
    return float(np.median(image[mask]))


def features(image: np.ndarray, masks: Dict[str, np.ndarray], pd_gm: float = float("nan")) -> Dict[str, float]:
    """The features of the module docstring for one image (k, j, i) and its masks (gland, muscle, fat, vessel,
    body); ``pd_gm``: gland / muscle of the exam's PD, NaN when not known."""
    gland = _median(image, masks.get("gland"))
    muscle = _median(image, masks.get("muscle"))
    fat = _median(image, masks.get("fat"))
    vessel = masks.get("vessel")
    vessel_p90 = (float(np.percentile(image[vessel], 90)) if vessel is not None and vessel.sum() >= MIN_VOXELS
                  else float("nan"))
    body = image[masks["body"]]
    low, high = np.percentile(body, [0.5, 99.5])
    gm = gland / muscle
    return {"g/m": gm, "g/f": gland / fat, "v/g": vessel_p90 / gland, "g/body": gland / float(np.median(body)),
            "level": (gland - low) / (high - low), "gm/PD": gm / pd_gm}


def _body(masks: Dict[str, np.ndarray]) -> np.ndarray:
    names = [name for name in LABEL_LEGEND if name != "background" and name in masks]
    return np.logical_or.reduce([masks[name] for name in names])


def phantom_rows(seed: int, cases: int) -> List[dict]:
    """Rows for ``cases`` phantoms per family block (seeds ``seed``, ``seed + 1``, …): the T1-pre (negative) and
    the early and late frames given as the T1-pre (positives)."""
    rows = []
    index = 0
    for family, domain in FAMILIES:
        for _ in range(cases):
            case_seed = seed + index
            index += 1
            if not SEED_RANGE[0] <= case_seed <= SEED_RANGE[1]:
                raise SystemExit(f"seed {case_seed}: expected {SEED_RANGE[0]}–{SEED_RANGE[1]} (throwaway seeds)")
            case = generate_case(case_seed, domain=domain, anatomy=family)
            fs = bool(case.params["dce"].get("t1_fat_suppressed", True))
            dce_masks = region_masks(case, "dce")
            dce_masks["body"] = _body(dce_masks)
            pd_masks = region_masks(case, "pd")
            pd = sitk.GetArrayFromImage(case.images["pd"]).astype(np.float32)
            pd_gm = _median(pd, pd_masks.get("gland")) / _median(pd, pd_masks.get("muscle"))
            for key, label in (("t1pre", "pre"), ("dce_early", "early"), ("dce_late", "late")):
                image = sitk.GetArrayFromImage(case.images[key]).astype(np.float32)
                rows.append({"exam": f"{case_seed} {family[:5]} {domain} {'FS' if fs else 'noFS'}",
                             "image": label, "real": False, "positive": label != "pre",
                             **features(image, dce_masks, pd_gm)})
    return rows


def real_rows() -> List[dict]:
    """Rows for the real pre-contrast images: each ProstateX PD reference scan, and its VIBE-20 stand-in."""
    from real_exam_tissue_enhancement import t1_weighted_stand_in

    rows = []
    for patient, folder in PD_FOLDERS.items():
        path = DATA / f"ProstateX-{patient}" / folder
        if not path.is_dir():
            print(f"skipped ProstateX-{patient}: {path} not found", file=sys.stderr)
            continue
        pd = read_volume(path, "PD")
        labels = sitk.ReadImage(str(ANATOMY / f"prostatex_{patient}_labels.nii.gz"))
        on_pd = sitk.GetArrayFromImage(sitk.Resample(labels, pd, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                     sitk.sitkUInt8))
        core = np.zeros((1, 3, 3), dtype=bool)
        core[0, 1, :] = core[0, :, 1] = True  # erode in-plane only: the slices are 3 mm
        masks = {name: ndimage.binary_erosion(on_pd == value, core) for name, value in LABEL_LEGEND.items()}
        masks["gland"] = ndimage.binary_erosion((on_pd == LABEL_LEGEND["peripheral_zone"])
                                                | (on_pd == LABEL_LEGEND["transition_zone"]), core)
        masks["body"] = on_pd != LABEL_LEGEND["background"]
        pd_array = sitk.GetArrayFromImage(pd).astype(np.float32)
        pd_gm = _median(pd_array, masks["gland"]) / _median(pd_array, masks["muscle"])
        vibe = sitk.GetArrayFromImage(t1_weighted_stand_in(pd, labels)).astype(np.float32)
        rows.append({"exam": f"ProstateX-{patient}", "image": "PD (real)", "real": True, "positive": False,
                     **features(pd_array, masks, pd_gm)})
        rows.append({"exam": f"ProstateX-{patient}", "image": "VIBE-20 stand-in", "real": False, "positive": False,
                     **features(vibe, masks, pd_gm)})
    return rows


def _range(values: List[float]) -> str:
    values = [v for v in values if np.isfinite(v)]
    return f"{min(values):.2f}–{max(values):.2f} (n={len(values)})" if values else "–"


def summary(rows: List[dict]) -> List[str]:
    """Per feature: the range of each class and the gap between negatives and positives (positive = the
    positives' minimum above the negatives' maximum; a negative gap is an overlap)."""
    groups = {"real pre (PD)": [r for r in rows if r["real"]],
              "phantom pre": [r for r in rows if not r["real"] and r["image"] == "pre"],
              "phantom pre FS": [r for r in rows if r["image"] == "pre" and "noFS" not in r["exam"]],
              "phantom pre noFS": [r for r in rows if r["image"] == "pre" and "noFS" in r["exam"]],
              "post (early)": [r for r in rows if r["image"] == "early"],
              "post (late)": [r for r in rows if r["image"] == "late"]}
    lines = ["| feature | " + " | ".join(groups) + " | gap phantom pre→early | gap real pre→early |",
             "|---" * (len(groups) + 3) + "|"]
    for name in FEATURES:
        cells = [_range([r[name] for r in group]) for group in groups.values()]

        def gap(negatives):
            neg = [r[name] for r in negatives if np.isfinite(r[name])]
            pos = [r[name] for r in groups["post (early)"] if np.isfinite(r[name])]
            return f"{min(pos) - max(neg):+.2f}" if neg and pos else "–"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {gap(groups['phantom pre'])} | "
                     f"{gap(groups['real pre (PD)'])} |")
    return lines


def main() -> int:
    """Measure, print the per-image table and the summary; optionally write every row as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=6, help="phantom cases per family block (4 blocks)")
    parser.add_argument("--seed", type=int, default=SEED_RANGE[0], help="first seed (777200–777299)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    rows = real_rows() + phantom_rows(args.seed, args.cases)
    print("| exam | image | " + " | ".join(FEATURES) + " |")
    print("|---|---|" + "---|" * len(FEATURES))
    for r in rows:
        print(f"| {r['exam']} | {r['image']} | " + " | ".join(f"{r[n]:.2f}" for n in FEATURES) + " |")
    print()
    print("\n".join(summary(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
