#!/usr/bin/env python3
"""Could a learned expected-error map rank the model's errors better than the edge feature? A check of issue 12's
calibrated-uncertainty goal (its "gland ranking" is missed: Spearman about 0 inside the prostate).

Reads a samples file written by ``scripts/fit_voxel_corrector.py --samples-file F.npz`` (per patient, the voxel
corrector's features over its region — the four inputs and the synthetic enhancement, each as it is, against the
central gland, smoothed, local contrast, minimum / maximum, gradient; radius; slice — and the residual acquired −
synthetic of the model it was made with). Patients are split, never voxels: gradient-boosted trees are fitted on the
|residual| of the fitting patients and, on each held-out patient, the Spearman correlation of their prediction with
the |residual| is compared with that of the edge feature the shipped map uses (the synthetic enhancement's in-plane
gradient), inside the central gland (radius ≤ 1 central-ellipsoid radius) and over the whole region. Medians over
the held-out patients.

    .venv/bin/python scripts/error_rankability.py SAMPLES.npz [--patients-prefix case_7 case_8 case_9]
        [--held-out 18] [--iterations 150] [--seed 0]

``--patients-prefix`` keeps the patients whose names start so (e.g. those the networks never saw in training).
Needs scikit-learn and scipy (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts"):  # the engine, and tree_fitting.py beside this script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

TARGETS = ("dce_early", "dce_late")


def per_patient_spearman(score: np.ndarray, error: np.ndarray, patient: np.ndarray, region: np.ndarray) -> list:
    """Spearman of ``score`` with ``error`` inside ``region``, one value per patient id (NaN-free patients only)."""
    from scipy.stats import spearmanr

    values = []
    for p in np.unique(patient):
        mask = region & (patient == p)
        if mask.sum() >= 10:
            rho = spearmanr(score[mask], error[mask])[0]
            if np.isfinite(rho):
                values.append(float(rho))
    return values


def main(argv=None) -> int:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from DCEDiffLib.diffusion import voxel_corrector as vc
    from tree_fitting import kept_patients, read_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path)
    parser.add_argument("--patients-prefix", nargs="+", default=None)
    parser.add_argument("--held-out", type=int, default=18)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data, names, patient = read_samples(args.samples)
    columns = vc.feature_names()
    features = data["features"]
    kept = kept_patients(names, args.patients_prefix)
    if len(kept) <= args.held_out:
        raise SystemExit(f"{len(kept)} patients kept; more than --held-out {args.held_out} are needed")
    held_out = np.random.default_rng(args.seed).choice(kept, args.held_out, replace=False)
    fit = np.isin(patient, kept) & ~np.isin(patient, held_out)
    test = np.isin(patient, held_out)
    central = features[:, columns.index("radius")] <= 1.0
    print(f"{len(kept)} patients: fitted on {len(kept) - args.held_out}, held out {args.held_out}")
    for target in TARGETS:
        error = np.abs(data[f"residual_{target}"])
        trees = HistGradientBoostingRegressor(max_iter=args.iterations, random_state=args.seed)
        learned = trees.fit(features[fit], error[fit]).predict(features[test])
        edge = features[test][:, columns.index(f"enh_{target[4:]}_gradient")]
        for label, region in (("central gland", central[test]), ("whole region", np.ones(int(test.sum()), bool))):
            rho_learned = per_patient_spearman(learned, error[test], patient[test], region)
            rho_edge = per_patient_spearman(edge, error[test], patient[test], region)
            print(f"{target} {label}: Spearman with |error|, median over {len(rho_learned)} held-out patients: "
                  f"learned {np.median(rho_learned):.3f}, edge feature {np.median(rho_edge):.3f}; "
                  f"mean |error| {error[test][region].mean():.4f}, learned {learned[region].mean():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
