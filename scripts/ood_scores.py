"""Out-of-distribution scores of exams against one or more model cards, without sampling (docs/ood.md "Measured").

Usage: .venv/bin/python scripts/ood_scores.py --model MODEL [--model MODEL2 ...]
           (--case DIR [DIR ...] | --t2w T2W [--pd PD] --adc ADC --t1pre T1PRE) [--perturb NAME] [--label TEXT]

Each exam is preprocessed once the way ``dcediff synthesize`` does it (``pipeline.synthesize_case``: registration
with self-check, the grid centred on the gland TAPS finds, a PD left out when the card allows it) and scored with
``pipeline.check_out_of_distribution`` against every ``--model``'s card: the same score, flag and reasons that
synthesis.json's ``out_of_distribution`` gets (the data-domain rule included), without the sampling. ``--case``: phantom case folders (inputs found
as ``dcediff demo`` finds them). ``--perturb`` (on the case's inputs, from docs/ood.md and Testing/test_ood.py):
``adc_mm2`` (ADC × 0.001), ``swap_t2w_pd``, ``bias`` (T2W × exp(0.5·(x + 0.5·y)), x, y ∈ [−1, 1] over the image),
``smooth_random`` (Testing/test_ood.py ``_smooth_random`` on the T2W geometry, seed = the case's position).
Prints one JSON line per exam and model. Model files are only read.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INPUTS = ("t2w", "pd", "adc", "t1pre")


def perturb(inputs: dict, name: str, seed: int) -> dict:
    images = {m: sitk.ReadImage(str(p), sitk.sitkFloat32) for m, p in inputs.items()}
    if name == "adc_mm2":
        images["adc"] = images["adc"] * 0.001
    elif name == "swap_t2w_pd":
        images["t2w"], images["pd"] = images["pd"], images["t2w"]
    elif name == "bias":
        array = sitk.GetArrayFromImage(images["t2w"])
        _, h, w = array.shape
        x, y = np.linspace(-1, 1, w)[None, None, :], np.linspace(-1, 1, h)[None, :, None]
        out = sitk.GetImageFromArray((array * np.exp(0.5 * (x + 0.5 * y))).astype(np.float32))
        out.CopyInformation(images["t2w"])
        images["t2w"] = out
    elif name == "smooth_random":
        spec = importlib.util.spec_from_file_location("test_ood", ROOT / "Testing" / "test_ood.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        images = module._smooth_random(images["t2w"], seed)
    else:
        raise SystemExit(f"--perturb {name}: expected adc_mm2, swap_t2w_pd, bias or smooth_random")
    if name != "smooth_random":  # a damaged phantom is still a phantom: keep the mark arithmetic drops
        from DCEDiffLib.data_source import PHANTOM, input_source, mark_phantom

        for m, image in images.items():
            if input_source(inputs[m]) == PHANTOM:
                mark_phantom(image)
    return images


def score(inputs: dict, cards: dict) -> dict:
    """Preprocess as pipeline.synthesize_case does, then score against each card (name → card)."""
    from DCEDiffLib.pipeline import check_out_of_distribution, condition_array
    from DCEDiffLib.preprocess import missing_inputs, preprocess_case

    missing = missing_inputs(inputs)
    case = preprocess_case(inputs, register=True, find_prostate=True, self_check=True, optional=tuple(missing))
    out = {}
    for name, card in cards.items():
        conditions = condition_array(case, card["conditions"])
        out[name] = check_out_of_distribution(card, case, conditions, card["conditions"], inputs, missing=missing)
    return out


def main(argv=None) -> int:
    from DCEDiffLib.diffusion.model_files import load_card
    from DCEDiffLib.model_registry import resolve_model
    from DCEDiffLib.training.case_data import find_case_inputs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--case", nargs="+", type=Path, default=[])
    for m in INPUTS:
        parser.add_argument(f"--{m}")
    parser.add_argument("--perturb")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    cards = {m: load_card(resolve_model(m)) for m in args.model}
    exams = [(str(c), {m: str(p) for m, p in find_case_inputs(c).items() if m in INPUTS}) for c in args.case]
    if not exams:
        exams = [(args.label or args.t2w, {m: getattr(args, m) for m in INPUTS if getattr(args, m)})]
    for seed, (exam, inputs) in enumerate(exams):
        if args.perturb:
            inputs = perturb(inputs, args.perturb, seed)
        for model, result in score(inputs, cards).items():
            top = sorted((result.get("features") or {}).items(), key=lambda kv: -kv[1])[:4]
            print(json.dumps({"exam": exam, "perturb": args.perturb, "model": model, "score": result.get("score"),
                              "statistical_score": result.get("statistical_score"), "flagged": result.get("flagged"), "reasons": result.get("reasons", []),
                              "top_features": dict(top), "skipped": result.get("skipped_inputs")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
