#!/usr/bin/env python3
"""Told where each lesion is, how well do its inputs say how it enhances? A check of issue 12's lesion CNR goal.

``scripts/lesion_detectability.py`` measured learners that must find the lesions; this one gives them the true lesion
masks and asks only for each lesion's contrast against the gland around it (mean in the lesion − mean in a 3 px
in-plane ring, in the acquired enhancement): gradient-boosted trees fitted per lesion on the lesion's mean input
features (the voxel corrector's features of T2W, PD, ADC and T1-pre, as the lesion's mean, as that mean against its
ring, and its size), cross-validated over patients in 4 folds, against the contrast the shipped synthesis drew
there. Scored on the lesions of the patients no network saw (names ``case_7…``, ``case_8…``, ``case_9…`` in the
shipped samples file). Reads the per-voxel samples file of ``scripts/fit_voxel_corrector.py --samples-file`` (the
region within two central-ellipsoid radii of the 160 × 160 × 16 working grid, one synthesis per patient):

    .venv/bin/python scripts/lesion_contrast_from_inputs.py runs/corrector2/samples.npz [--json OUT]

Needs scikit-learn and scipy (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

GRID_SHAPE = (16, 160, 160)
RING_PX = 3
MIN_VOXELS = 4
UNSEEN_PREFIXES = ("case_7", "case_8", "case_9")
FOLDS = 4


def ring_footprint(radius: int = RING_PX) -> np.ndarray:
    """An in-plane disc (1, 2r+1, 2r+1)."""
    jj, ii = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return ((jj / radius) ** 2 + (ii / radius) ** 2 <= 1.0)[None]


def lesion_rows(channels: np.ndarray, lesion: np.ndarray, acquired: np.ndarray, drawn: np.ndarray) -> list:
    """Per lesion component of ``lesion`` (K, H, W) with ≥ :data:`MIN_VOXELS` voxels and a ring: (features,
    acquired contrast per phase, drawn contrast per phase). ``channels`` (C, K, H, W) feature maps; ``acquired`` and
    ``drawn`` (2, K, H, W) enhancement. Features: each channel's mean in the lesion, that mean minus the ring's, and
    log(voxels)."""
    from scipy import ndimage

    components, count = ndimage.label(lesion)
    footprint = ring_footprint()
    rows = []
    for index in range(1, count + 1):
        inside = components == index
        ring = ndimage.binary_dilation(inside, structure=footprint) & ~lesion
        if inside.sum() < MIN_VOXELS or ring.sum() < MIN_VOXELS:
            continue
        with warnings.catch_warnings():  # a left-out PD is NaN everywhere: its means stay NaN, which the trees
            warnings.simplefilter("ignore", RuntimeWarning)  # route as missing
            mean_in = np.nanmean(channels[:, inside], axis=1)
            mean_ring = np.nanmean(channels[:, ring], axis=1)
        rows.append((np.concatenate([mean_in, mean_in - mean_ring, [np.log(inside.sum())]]),
                     [float(acquired[t][inside].mean() - acquired[t][ring].mean()) for t in range(2)],
                     [float(drawn[t][inside].mean() - drawn[t][ring].mean()) for t in range(2)]))
    return rows


def agreement(acquired: np.ndarray, predicted: np.ndarray) -> dict:
    """Sign agreement, share within ±50 %, least-squares slope (1 = full strength) and Pearson r over lesions."""
    return {"lesions": int(acquired.size),
            "sign_agreement": round(float(np.mean(np.sign(acquired) == np.sign(predicted))), 2),
            "within_50_percent": round(float(np.mean(np.abs(predicted - acquired) <= 0.5 * np.abs(acquired))), 2),
            "slope": round(float(acquired @ predicted / max(float(acquired @ acquired), 1e-12)), 2),
            "r": round(float(np.corrcoef(acquired, predicted)[0, 1]), 2)}


def main(argv=None) -> int:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from DCEDiffLib import ood
    from DCEDiffLib.diffusion import voxel_corrector as vc
    from tree_fitting import read_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    samples, names, _ = read_samples(args.samples)
    region = vc.region_weight(ood.gland_radius(GRID_SHAPE)) > 0
    per_patient = samples["features"].shape[0] // len(names)
    if per_patient != int(region.sum()):
        raise SystemExit(f"{args.samples}: {per_patient} voxels per patient, expected the {int(region.sum())} of the "
                         f"region on the {GRID_SHAPE} working grid")
    feature_names = vc.feature_names()
    inputs = [i for i, n in enumerate(feature_names) if not n.startswith("enh_")]
    drawn_columns = [feature_names.index("enh_early_value"), feature_names.index("enh_late_value")]

    def on_grid(values: np.ndarray) -> np.ndarray:
        grid = np.zeros(values.shape[:-1] + GRID_SHAPE, np.float32)
        grid[..., region] = values
        return grid

    all_features, all_lesion = samples["features"], samples["lesion"]  # read once: an .npz member is read per access
    all_residual = np.stack([samples["residual_dce_early"], samples["residual_dce_late"]])
    rows, patient_of_row = [], []
    for p, name in enumerate(names):
        block = slice(p * per_patient, (p + 1) * per_patient)
        features = all_features[block]
        drawn = on_grid(features[:, drawn_columns].T)
        found = lesion_rows(on_grid(features[:, inputs].T), on_grid(all_lesion[block]) > 0.5,
                            drawn + on_grid(all_residual[:, block]), drawn)
        rows += found
        patient_of_row += [p] * len(found)
    patient_of_row = np.asarray(patient_of_row)
    x = np.stack([r[0] for r in rows])
    acquired = np.array([r[1] for r in rows])
    drawn = np.array([r[2] for r in rows])
    predicted = np.zeros_like(acquired)
    for fold in range(FOLDS):
        train, test = patient_of_row % FOLDS != fold, patient_of_row % FOLDS == fold
        for t in range(2):
            trees = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.05, min_samples_leaf=10,
                                                  random_state=0).fit(x[train], acquired[train, t])
            predicted[test, t] = trees.predict(x[test])
    unseen = np.array([names[p].startswith(UNSEEN_PREFIXES) for p in patient_of_row])
    summary = {"lesions_all": int(len(rows)), "lesions_scored": int(unseen.sum()),
               "patients_scored": int(len({int(p) for p in patient_of_row[unseen]}))}
    for t, phase in enumerate(("early", "late")):
        summary[f"trees_on_inputs_true_mask_{phase}"] = agreement(acquired[unseen, t], predicted[unseen, t])
        summary[f"shipped_synthesis_{phase}"] = agreement(acquired[unseen, t], drawn[unseen, t])
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"samples": str(args.samples), "summary": summary}, indent=1),
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
