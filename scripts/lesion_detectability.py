#!/usr/bin/env python3
"""How far do the inputs show the lesions when nobody says where they are? A check of issue 12's lesion goals.

The lesion ceilings of docs/model_quality.md (``scripts/lesion_r_ceiling.py``) knew each lesion's mask and guessed
only its kinetics. A model must also find the lesion. This script measures, on validation patients, what a learner
that reads the inputs voxel by voxel (no mask) can do, next to the U-Net mean:

- trees (scikit-learn gradient boosting) fitted on training patients' prostate voxels, on the voxel corrector's
  input features (``voxel_corrector.voxel_features``: each of T2W, PD, ADC, T1-pre as it is, against the central
  gland's median, smoothed at 1 / 3 / 7 px, local contrast, 5 × 5 minimum / maximum, gradient; radius, slice):
  a classifier of lesion against gland (its ROC AUC and average precision on validation voxels) and a regressor of
  the acquired early / late enhancement under the squared error (the conditional mean given those features);
- per validation lesion, the contrast (mean in the lesion − mean in the gland within 3 px in-plane) of the acquired
  image, of the trees' image and of the U-Net mean's image (``MEAN_MODEL``, a regression card): the least-squares
  slope of drawn on acquired (1 = full strength), the share with the acquired sign, the share within ±50 %; and the
  lesion r (Pearson over each patient's lesion voxels, median over patients) as ``dcediff evaluate`` computes it.

    .venv/bin/python scripts/lesion_detectability.py MEAN_MODEL --train DIR [DIR ...] --validation DIR
        --cases case_400 ... --cache DIR [--exclude-split SPLIT.json] [--iterations 200] [--json OUT]

Training patients are every case folder of the ``--train`` folders except those named by ``--cases`` or listed as
validation or test in ``--exclude-split``; the validation patients are ``--cases`` of ``--validation``. Needs
scikit-learn (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "scripts"):  # the engine, and lesion_contrast.py beside this script
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

MIN_LESION_VOXELS = 4


def input_columns() -> list:
    """Indices of the voxel corrector's features that come from the inputs (not from a synthesis)."""
    from DCEDiffLib.diffusion import voxel_corrector as vc

    return [i for i, name in enumerate(vc.feature_names()) if not name.startswith("enh_")]


def case_arrays(model, case):
    """(features of the prostate voxels, prostate mask, lesion mask, zero enhancement (K, H, W)); the inputs and the
    zero enhancement as the voxel corrector takes them (``synthesis.voxel_corrector_inputs``)."""
    from DCEDiffLib import ood
    from DCEDiffLib.diffusion import voxel_corrector as vc
    from DCEDiffLib.diffusion.synthesis import voxel_corrector_inputs
    from DCEDiffLib.evaluation_runner import model_conditions

    legend = case.legend
    lesion = case.labels == legend["lesion"]
    prostate = np.isin(case.labels, [legend["peripheral_zone"], legend["transition_zone"], legend["lesion"]])
    ordered, zero = voxel_corrector_inputs(model.card, model_conditions(model, case))
    radius = ood.gland_radius(prostate.shape)
    features = vc.voxel_features(ordered, np.zeros((2,) + prostate.shape, np.float32), radius, prostate)
    return features[:, input_columns()], prostate, lesion, zero


def lesion_rows(drawn: np.ndarray, acquired: np.ndarray, labels: np.ndarray, legend: dict) -> list:
    """(acquired contrast, drawn contrast) per lesion of one image pair (K, H, W): the lesion and its ring of gland
    as ``scripts/lesion_contrast.py`` draws them (3 px in-plane), lesions of :data:`MIN_LESION_VOXELS` or more."""
    from lesion_contrast import lesion_contrasts

    return [(contrast, float(drawn[lesion].mean() - drawn[ring].mean()))
            for _, contrast, lesion, ring in lesion_contrasts(acquired, labels, legend, MIN_LESION_VOXELS)]


def contrast_summary(rows: list) -> dict:
    """Slope, sign agreement and share within ±50 % of drawn lesion contrasts against acquired ones."""
    acquired = np.array([r[0] for r in rows])
    drawn = np.array([r[1] for r in rows])
    return {"lesions": int(acquired.size),
            "slope": round(float(acquired @ drawn / max(acquired @ acquired, 1e-12)), 3),
            "sign_agreement": round(float(np.mean(np.sign(acquired) == np.sign(drawn))), 2),
            "within_50_percent": round(float(np.mean(np.abs(drawn - acquired) <= 0.5 * np.abs(acquired))), 2)}


def main(argv=None) -> int:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import average_precision_score, roc_auc_score

    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.training.case_data import list_case_dirs, load_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mean_model", help="a regression model card (the U-Net mean to compare with)")
    parser.add_argument("--train", type=Path, nargs="+", required=True)
    parser.add_argument("--exclude-split", type=Path,
                        help="split.json whose validation and test cases are left out of --train")
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    model = load_model(args.mean_model)
    if model.card.get("objective") != "regression":
        parser.error(f"{args.mean_model}: a regression card is expected (the U-Net mean), got "
                     f"{model.card.get('objective')!r}")
    targets = list(model.card["targets"])
    excluded = set(args.cases)
    if args.exclude_split:
        split = json.loads(args.exclude_split.read_text())
        excluded |= set(split.get("validation", [])) | set(split.get("test", []))

    features, is_lesion, enhancement = [], [], []
    for folder in args.train:
        for case_dir in list_case_dirs(folder):
            if case_dir.name in excluded:
                continue
            case = load_case(case_dir, args.cache)
            if case.labels is None or case.targets is None or "lesion" not in (case.legend or {}):
                continue
            x, prostate, lesion, zero = case_arrays(model, case)
            features.append(x)
            is_lesion.append(lesion[prostate])
            enhancement.append(np.stack([(case.targets[i] - zero)[prostate] for i in range(len(targets))], 1))
    x_train = np.concatenate(features)
    y_lesion = np.concatenate(is_lesion)
    y_enh = np.concatenate(enhancement)
    print(f"training voxels {len(x_train)} from {len(features)} patients, lesion share {y_lesion.mean():.4f}",
          flush=True)
    classifier = HistGradientBoostingClassifier(max_iter=args.iterations, random_state=0).fit(x_train, y_lesion)
    regressors = [HistGradientBoostingRegressor(max_iter=args.iterations, random_state=0).fit(x_train, y_enh[:, i])
                  for i in range(len(targets))]

    probabilities, labels = [], []
    rows = {(who, t): [] for who in ("trees", "unet") for t in targets}
    lesion_r = {(who, t): [] for who in ("acquired_vs_trees", "acquired_vs_unet") for t in targets}
    for name in args.cases:
        case = load_case(args.validation / name, args.cache)
        x, prostate, lesion, zero = case_arrays(model, case)
        probabilities.append(classifier.predict_proba(x)[:, 1])
        labels.append(lesion[prostate])
        unet = synthesize_volume(model, model_conditions(model, case), samples=1, seed=0, device="cpu",
                                 adc_norm=case.norm.get("adc")).mean
        for i, target in enumerate(targets):
            trees = zero.copy()
            trees[prostate] += regressors[i].predict(x)
            acquired = case.targets[i]
            for who, drawn in (("trees", trees), ("unet", unet[i])):
                rows[(who, target)] += lesion_rows(drawn, acquired, case.labels, case.legend)
                if lesion.sum() >= MIN_LESION_VOXELS:
                    lesion_r[(f"acquired_vs_{who}", target)].append(
                        float(np.corrcoef(acquired[lesion], drawn[lesion])[0, 1]))
        print(name, flush=True)
    p, y = np.concatenate(probabilities), np.concatenate(labels)
    summary = {"validation_voxels": int(y.size), "validation_lesion_share": round(float(y.mean()), 4),
               "lesion_vs_gland_auc": round(float(roc_auc_score(y, p)), 3),
               "lesion_vs_gland_average_precision": round(float(average_precision_score(y, p)), 3),
               "mean_probability_in_lesions": round(float(p[y].mean()), 3),
               "mean_probability_in_gland": round(float(p[~y].mean()), 3)}
    for (who, target), values in rows.items():
        summary[f"{who}_{target}"] = contrast_summary(values)
    for (who, target), values in lesion_r.items():
        summary[f"lesion_r_{who}_{target}"] = round(float(np.median(values)), 3)
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"mean_model": str(args.mean_model), "cases": args.cases,
                                         "train": [str(t) for t in args.train], "summary": summary}, indent=1),
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
