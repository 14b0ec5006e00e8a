#!/usr/bin/env python3
"""Fit the voxel corrector (DCEDiffLib/diffusion/voxel_corrector.py) of a model card on phantom patients.

For each patient the card synthesizes early/late without a corrector (1 sample, seed 0; PD left out for a share of
the patients, as in training); per voxel of the corrected region the features of ``voxel_corrector.voxel_features``
are paired with what the synthesis missed (acquired − synthetic, the targets' scale). One
``HistGradientBoostingRegressor`` (squared error) per target; the trees are flattened into a safetensors file and the
card copied into OUT with a ``voxel_corrector`` entry (the weights are copied unchanged). Use patients the card's
networks were not trained on where there are enough, and never validation or test patients.

With ``--samples-only`` it fits nothing and only writes ``--samples-file`` (what ``scripts/fit_learned_error_map.py``
reads). With ``--corrected-samples`` it does the same for the card's output *with* its own voxel corrector (features of
the corrected synthesis, acquired − corrected): what the expected-error map of a card that has a corrector is fitted
on. Use patients the corrector was not fitted on.

    .venv/bin/python scripts/fit_voxel_corrector.py MODEL --data DIR [DIR ...] --cache DIR --out OUT_STEM
        [--iterations 300] [--pd-dropout 0.2] [--seed 0] [--lesion-weight 0] [--samples-file F.npz]
    .venv/bin/python scripts/fit_voxel_corrector.py MODEL --data DIR --cache DIR --samples-only --samples-file F.npz
    .venv/bin/python scripts/fit_voxel_corrector.py MODEL_WITH_CORRECTOR --data DIR --cache DIR --corrected-samples
        --samples-file F.npz

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


def case_samples(model, case, leave_out_pd: bool, corrected: bool = False):
    """(features, residual per target, lesion mask) over the corrected region of one case; of the output without the
    card's voxel corrector, or with it when ``corrected``."""
    from DCEDiffLib.diffusion import voxel_corrector as vc
    from DCEDiffLib.diffusion.synthesis import synthesize_volume, voxel_corrector_inputs
    from DCEDiffLib.evaluation_runner import model_conditions

    cond = model_conditions(model, case, missing=("pd",) if leave_out_pd else ())
    synthetic = synthesize_volume(model, cond, samples=1, seed=0, device="cpu", voxel_corrector=corrected,
                                  adc_norm=case.norm.get("adc")).mean
    ordered, zero = voxel_corrector_inputs(model.card, cond)
    features, region, _ = vc.region_features(synthetic, ordered, zero)
    residuals = [(case.targets[i] - synthetic[i])[region] for i in range(len(model.card["targets"]))]
    lesion = np.zeros(int(region.sum()), bool)
    if case.labels is not None and case.legend and "lesion" in case.legend:
        lesion = case.labels[region] == case.legend["lesion"]
    return features, residuals, lesion


def main(argv=None) -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.diffusion import voxel_corrector as vc
    from DCEDiffLib.diffusion.model_files import check_card, load_model, sha256_of
    from DCEDiffLib.training.case_data import list_case_dirs, load_case
    from tree_fitting import fit_flattened, write_trees_beside_card_copy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path, help="stem of the new card (OUT.json, OUT.safetensors)")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--pd-dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lesion-weight", type=float, default=0.0,
                        help="extra weight of lesion voxels (1 + this); 0: the plain conditional mean")
    parser.add_argument("--samples-file", type=Path,
                        help="an .npz of the per-voxel samples: read when it exists, written otherwise (the "
                             "syntheses take most of the time; a refit with other tree settings needs none)")
    parser.add_argument("--samples-only", action="store_true",
                        help="write --samples-file (for scripts/fit_learned_error_map.py) and fit nothing")
    parser.add_argument("--corrected-samples", action="store_true",
                        help="as --samples-only, of the card's output with its own voxel corrector")
    args = parser.parse_args(argv)
    samples_only = args.samples_only or args.corrected_samples
    if samples_only and (args.samples_file is None or args.samples_file.is_file()):
        parser.error("--samples-only/--corrected-samples write a new --samples-file: name one that does not exist yet")
    if not samples_only and args.out is None:
        parser.error("--out is required (the stem of the new card)")

    model = load_model(args.model)
    if args.corrected_samples and getattr(model, "corrector", None) is None:
        raise SystemExit(f"{args.model}: --corrected-samples needs a card with a voxel corrector; this one has none")
    targets = list(model.card["targets"])
    rng = np.random.default_rng(args.seed)
    dirs = [d for folder in args.data for d in list_case_dirs(folder)]
    features, residuals, lesions, names = [], {t: [] for t in targets}, [], []
    started = time.time()
    if args.samples_file and args.samples_file.is_file():
        stored = np.load(args.samples_file)
        features, lesions, names = [stored["features"]], [stored["lesion"].astype(bool)], list(stored["names"])
        for t in targets:
            residuals[t] = [stored[f"residual_{t}"]]
        dirs = []
    for number, case_dir in enumerate(dirs, start=1):
        case = load_case(case_dir, args.cache)
        if case.targets is None:
            continue
        x, ys, lesion = case_samples(model, case, bool(rng.random() < args.pd_dropout), args.corrected_samples)
        features.append(x)
        lesions.append(lesion)
        for t, y in zip(targets, ys):
            residuals[t].append(y)
        names.append(case_dir.name)
        print(f"{number}/{len(dirs)} {case_dir} ({time.time() - started:.0f} s)", flush=True)
    x = np.concatenate(features)
    lesion = np.concatenate(lesions)
    if args.samples_file and not args.samples_file.is_file():
        np.savez(args.samples_file, features=x, lesion=lesion.astype(np.uint8), names=np.array(names),
                 with_corrector=np.array(args.corrected_samples),
                 **{f"residual_{t}": np.concatenate(residuals[t]) for t in targets})
    if samples_only:
        output = "corrected output" if args.corrected_samples else "output without a corrector"
        print(f"wrote {args.samples_file}: {len(names)} patients, {len(x)} voxels of the {output}")
        return 0
    sample_weight = 1.0 + args.lesion_weight * lesion
    ensembles, baseline = {}, {}
    for t in targets:
        ensembles[t] = fit_flattened(x, np.concatenate(residuals[t]), t, args.iterations, args.seed,
                                     sample_weight=sample_weight, learning_rate=0.1, max_leaf_nodes=31,
                                     min_samples_leaf=200, l2_regularization=1.0)
        baseline[t] = ensembles[t].baseline
        print(f"{t}: {len(ensembles[t].roots)} trees, {len(ensembles[t].feature)} nodes "
              f"({time.time() - started:.0f} s)", flush=True)

    card, out_card, corrector_file = write_trees_beside_card_copy(args.model, args.out, ".corrector.safetensors",
                                                                  ensembles)
    if (card.get("error_model") or {}).pop("learned", None):  # it read the output without a corrector
        print("left out the card's learned error map (error_model.learned): refit it on the corrected output")
    card["voxel_corrector"] = {
        "version": vc.CORRECTOR_VERSION, "file": corrector_file.name, "sha256": sha256_of(corrector_file),
        "baseline": baseline, "features": vc.feature_names(), "region_radius": vc.REGION_RADIUS,
        "fitted_on": {"cases": len(names), "data": [str(d) for d in args.data], "pd_dropout": args.pd_dropout,
                      "seed": args.seed, "iterations": args.iterations, "voxels": int(len(x)),
                      "lesion_weight": args.lesion_weight,
                      "learner": "sklearn HistGradientBoostingRegressor, squared error, lr 0.1, 31 leaves, "
                                 "min 200 per leaf, l2 1.0"},
    }
    check_card(card, out_card)
    write_text_atomic(out_card, json.dumps(card, indent=2))
    print(f"wrote {out_card}, {corrector_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
