#!/usr/bin/env python3
"""How well a card's expected-error trees rank what its synthesis gets wrong, per case.

For each case: the card synthesizes early/late (1 sample, seed 0, no corrector, as ``fit_voxel_corrector.py`` makes
its samples); over the corrected region around the prostate, the Spearman correlation of the trees' expected error
with |acquired − synthetic|, and of the enhancement-edge feature (what the map had before its trees) with the same.
The quantity of the sample case's floor in ``Testing/test_learned_error_map.py``; run on many cases it says whether a
change moved the trees' ranking or only one case (docs/preprocessing.md, "The floor or the change").

    .venv/bin/python scripts/error_tree_ranking.py CASE_DIR [CASE_DIR ...] --cache DIR [--model CARD] [--json OUT]

Prints one line per case (target: trees, edge) and, with ``--json``, writes them as {case: {target: [trees, edge]}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def ranking(model, features: np.ndarray, residuals) -> dict:
    """{target: (Spearman of the trees' expected error with |residual|, the same for the edge feature)} for the
    region samples of one case (``fit_voxel_corrector.case_samples``)."""
    from DCEDiffLib.diffusion import voxel_corrector as vc
    from DCEDiffLib.evaluation.protocol import spearman

    result = {}
    for target, residual in zip(model.card["targets"], residuals):
        learned = model.learned_error_map.ensembles[target].predict(features)
        edge = features[:, vc.feature_names().index(f"enh_{target[4:]}_gradient")]
        result[target] = (spearman(learned, np.abs(residual)), spearman(edge, np.abs(residual)))
    return result


def main(argv=None) -> int:
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.model_registry import shipped_model_path
    from DCEDiffLib.training.case_data import load_case
    from fit_voxel_corrector import case_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", type=Path, nargs="+", help="phantom case folders (with the acquired DCE)")
    parser.add_argument("--cache", type=Path, required=True, help="preprocessing cache folder")
    parser.add_argument("--model", help="card (default: the shipped model)")
    parser.add_argument("--json", type=Path, help="also write the values here")
    args = parser.parse_args(argv)
    model = load_model(args.model or shipped_model_path())
    if model.learned_error_map is None:
        parser.error(f"{args.model or shipped_model_path()}: the card has no expected-error trees")
    out = {}
    for case_dir in args.cases:
        features, residuals, _ = case_samples(model, load_case(case_dir, args.cache), leave_out_pd=False)
        out[case_dir.name] = {t: [round(v, 4) for v in pair] for t, pair in ranking(model, features, residuals).items()}
        print(case_dir.name, "  ".join(f"{t}: trees {a:.4f}, edge {b:.4f}" for t, (a, b) in out[case_dir.name].items()),
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
