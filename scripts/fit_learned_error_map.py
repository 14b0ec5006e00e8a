#!/usr/bin/env python3
"""Fit the learned expected-error map (DCEDiffLib/diffusion/learned_error_map.py) of a model card.

Reads the per-voxel samples that ``scripts/fit_voxel_corrector.py MODEL --samples-file F.npz`` wrote for this card
(the voxel corrector's features over its region and the residual acquired − synthetic of the card's synthesis, 1
sample, seed 0, no corrector), keeps the patients whose names start with ``--patients-prefix`` (use those no network
of the card saw in training; never validation or test patients), and fits per target one
``HistGradientBoostingRegressor`` (squared error) on the absolute residual. The trees are flattened into
``OUT.error_trees.safetensors`` and the card copied to ``OUT.json`` with ``error_model.learned`` (the weights are
copied unchanged). The card must already have an edge-based ``error_model`` (``scripts/fit_error_model.py``). A card
without a voxel corrector takes the samples of its output as ``fit_voxel_corrector.py`` writes them; a card with one
takes those of its corrected output (``fit_voxel_corrector.py MODEL --corrected-samples``, on patients its corrector
was not fitted on), and the map is marked as fitted with the corrector.

Before fitting, ``--check-case`` re-synthesizes one kept patient from its folder and requires the stored residual
back: samples of another card, or of other data, are refused.

    .venv/bin/python scripts/fit_learned_error_map.py MODEL --samples F.npz [F2.npz ...] --check-case DIR/case_700
        --out OUT_STEM [--patients-prefix case_7 case_8 case_9] [--cache DIR] [--iterations 600] [--seed 0]

Needs scikit-learn (fitting only; synthesis evaluates the stored trees with numpy).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# chosen on the 72 patients no network saw, 18 of them held out (docs/model_quality.md, twentieth step)
LEARNER = dict(learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=200, l2_regularization=1.0)


def patient_block(samples, index: int) -> slice:
    """The rows of patient ``index`` in a samples file (every patient has as many region voxels)."""
    per_patient = samples["features"].shape[0] // len(samples["names"])
    return slice(index * per_patient, (index + 1) * per_patient)


def recomputed_residuals(model, samples, index: int, case_dir: Path, cache) -> list:
    """Patient ``index``'s residual per target, synthesized again from ``case_dir`` as the samples were made (PD
    left out where the stored PD features are NaN; with the card's corrector when the samples were made with it);
    SystemExit when the folder is not that patient."""
    from DCEDiffLib.diffusion import voxel_corrector as vc
    from DCEDiffLib.training.case_data import load_case

    from fit_voxel_corrector import case_samples
    from tree_fitting import samples_with_corrector

    name = str(samples["names"][index])
    if case_dir.name != name:
        raise SystemExit(f"--check-case {case_dir}: expected the folder of {name}, a patient of the samples")
    pd_values = samples["features"][patient_block(samples, index), vc.feature_names().index("pd_value")]
    return case_samples(model, load_case(case_dir, cache), bool(np.isnan(pd_values).all()),
                        corrected=samples_with_corrector(samples))[1]


def check_residuals(samples, index: int, targets, residuals, case_dir: Path) -> float:
    """Largest |stored − recomputed| residual of patient ``index``; SystemExit when they differ (samples of another
    card or of other data)."""
    gap = 0.0
    for target, residual in zip(targets, residuals):
        stored = samples[f"residual_{target}"][patient_block(samples, index)]
        if stored.shape != residual.shape:
            raise SystemExit(f"--check-case {case_dir}: {residual.size} region voxels, the samples hold {stored.size}")
        gap = max(gap, float(np.abs(stored - residual).max()))
    if gap > 1e-3:
        raise SystemExit(f"--check-case {case_dir}: the card's synthesis differs from the stored residual by up to "
                         f"{gap:.4f}; the samples were made with another card or other data")
    return gap


def main(argv=None) -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.diffusion import learned_error_map as lem
    from DCEDiffLib.diffusion import voxel_corrector as vc
    from DCEDiffLib.diffusion.model_files import check_card, load_model, sha256_of
    from tree_fitting import (fit_flattened, kept_patients, read_samples, samples_with_corrector,
                              write_trees_beside_card_copy)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--samples", type=Path, nargs="+", required=True,
                        help="the .npz of scripts/fit_voxel_corrector.py (several: joined)")
    parser.add_argument("--check-case", type=Path, required=True, help="the folder of one kept patient")
    parser.add_argument("--out", type=Path, required=True, help="stem of the new card (OUT.json, OUT.safetensors)")
    parser.add_argument("--patients-prefix", nargs="+", default=None)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.time()
    model = load_model(args.model)
    targets = list(model.card["targets"])
    if not model.card.get("error_model"):
        raise SystemExit(f"{args.model}: the card has no edge-based error_model (scripts/fit_error_model.py first)")
    samples, names, patient = read_samples(args.samples)
    samples_text = ", ".join(map(str, args.samples))
    with_corrector, made_with = bool(model.card.get("voxel_corrector")), samples_with_corrector(samples)
    if made_with != with_corrector:
        made = "with" if made_with else "without"
        raise SystemExit(f"{samples_text}: samples of the output {made} a voxel corrector, but the card "
                         f"{'has' if with_corrector else 'has no'} corrector (for a card with one: "
                         "scripts/fit_voxel_corrector.py MODEL --corrected-samples)")
    kept = kept_patients(names, args.patients_prefix)
    if not kept:
        raise SystemExit(f"{samples_text}: no patient's name starts with {args.patients_prefix}")
    check_index = names.index(args.check_case.name) if args.check_case.name in names else -1
    if check_index not in kept:
        raise SystemExit(f"--check-case {args.check_case}: not one of the kept patients of {samples_text}")
    residuals = recomputed_residuals(model, samples, check_index, args.check_case, args.cache)
    gap = check_residuals(samples, check_index, targets, residuals, args.check_case)
    print(f"{args.check_case.name} re-synthesized: stored residual back within {gap:.2e} "
          f"({time.time() - started:.0f} s)", flush=True)

    rows = np.isin(patient, kept)
    x = samples["features"][rows]
    ensembles, baseline = {}, {}
    for t in targets:
        error = np.abs(samples[f"residual_{t}"][rows])
        ensembles[t] = fit_flattened(x, error, t, args.iterations, args.seed, **LEARNER)
        baseline[t] = ensembles[t].baseline
        print(f"{t}: {len(ensembles[t].roots)} trees, {len(ensembles[t].feature)} nodes, mean |error| "
              f"{error.mean():.4f} ({time.time() - started:.0f} s)", flush=True)

    card, out_card, trees_file = write_trees_beside_card_copy(args.model, args.out, ".error_trees.safetensors",
                                                              ensembles)
    card["error_model"]["learned"] = {
        "version": lem.LEARNED_MAP_VERSION, "file": trees_file.name, "sha256": sha256_of(trees_file),
        "baseline": baseline, "features": vc.feature_names(), "region_radius": vc.REGION_RADIUS,
        "fitted_with_corrector": with_corrector,
        "fitted_on": {"cases": len(kept), "samples": [str(p) for p in args.samples],
                      "patients_prefix": args.patients_prefix,
                      "check_case": str(args.check_case), "seed": args.seed, "iterations": args.iterations,
                      "voxels": int(len(x)), "target": "|acquired − synthetic|, normalised units",
                      "learner": "sklearn HistGradientBoostingRegressor, squared error, "
                                 + ", ".join(f"{k} {v}" for k, v in LEARNER.items())},
    }
    check_card(card, out_card)
    write_text_atomic(out_card, json.dumps(card, indent=2))
    print(f"wrote {out_card}, {trees_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
