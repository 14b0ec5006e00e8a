"""The trainer's lesion validation (DCEDiffLib/training/lesion_validation.py) of saved regression (mean) models: the
lesion r and gland r of each model's predicted enhancement on the lesion slices of a split's cases, so a run's logged
``val_lesion_r`` can be set beside the model it started from (e.g. the shipped mean).

Usage: .venv/bin/python scripts/lesion_validation_of_models.py --data runs/data_deep240 --split runs/mean31/split.json
           --cache runs/cache shipped_mean=Resources/Models/dcediff_cpu_phantom_regression [NAME=MODEL ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from DCEDiffLib.diffusion.absolute_adc import reads_absolute_adc  # noqa: E402
from DCEDiffLib.diffusion.model_files import load_model, mean_context_slices  # noqa: E402
from DCEDiffLib.diffusion.residual import predict_mean, zero_enhancement  # noqa: E402
from DCEDiffLib.errors import InputError  # noqa: E402
from DCEDiffLib.training.case_data import list_case_dirs, load_case  # noqa: E402
from DCEDiffLib.training.lesion_validation import lesion_slices, score_regression_network  # noqa: E402
from DCEDiffLib.training.split import read_split  # noqa: E402


def score_model(path: str, cases) -> dict:
    """``{"lesion_r", "gland_r", "slices", "cases"}`` of one regression model on ``cases``."""
    model = load_model(path)
    card = model.card
    if card["objective"] != "regression":
        raise InputError(f"{path}: objective {card['objective']!r}; expected a regression (mean) model")
    conditions = card["conditions"]
    slices = lesion_slices(cases, conditions, mean_context_slices(card), reads_absolute_adc(card))
    if slices is None:
        raise InputError("no case has acquired DCE and a lesion label")
    factor = card["normalization"]["target_range_factor"]
    network = model.network.eval()

    def predict(cond: torch.Tensor) -> torch.Tensor:
        return predict_mean(network, cond, card.get("parameterization", "image"), conditions, factor)

    def zero(cond: torch.Tensor) -> torch.Tensor:
        return zero_enhancement(cond, conditions, factor)

    scores = score_regression_network(predict, slices, zero)  # runs under torch.no_grad itself
    return {**scores, "slices": int(len(slices.cond)), "cases": len(slices.names)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of case folders")
    parser.add_argument("--split", type=Path, help="split.json (default: every case in --data)")
    parser.add_argument("--subset", default="validation", choices=["train", "validation", "test"])
    parser.add_argument("--cache", type=Path, required=True, help="preprocessed-case cache (shared with training)")
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL")
    args = parser.parse_args(argv)
    dirs = {d.name: d for d in list_case_dirs(args.data)}
    names = read_split(args.split)[args.subset] if args.split else sorted(dirs)
    cases = [load_case(dirs[n], args.cache) for n in names]
    results = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        if not path:
            parser.error(f"{spec!r}: expected NAME=MODEL")
        results[name] = score_model(path, cases)
        print(json.dumps({name: results[name]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
