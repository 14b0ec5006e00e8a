#!/usr/bin/env python3
"""A randomization the model was never trained on, with ground truth: fat as bright as on a real VIBE.

On a real non-fat-suppressed T1-weighted exam fat is several times brighter, relative to the gland, than on the
phantom's non-fat-suppressed exams, and the gland sits lower on the normalised T1-pre than in any training case
(docs/preprocessing.md, "The gland as the T1-pre's reference tissue"). This script makes a phantom exam's fat that
bright, in the T1-pre and both DCE targets alike (fat does not enhance; one factor per voxel, from the T1-pre:
``1 + (gain − 1) · w`` with ``w`` rising from 0 at the gland's T1-pre level to 1 at the fat's, so the gland and
every darker tissue keep their signal and partial-volume voxels get part of the gain), and scores the shipped model
on it with the candidate gland-level rule (``place_gland`` of ``scripts/gland_level_statistics.py``, applied to the
T1-pre after the heavy-tail rule, as it would run inside ``preprocess_case``) off and on, next to the unperturbed
exam. Reported: PSNR, body and prostate enhancement r, and the gland's relative enhancement RE = (S − S_T1pre) /
S_T1pre (median over the PZ + TZ labels) of the synthetic against the acquired. Inputs are read, never modified.

Meant for non-fat-suppressed phantom exams (``case.json`` ``dce.t1_fat_suppressed`` false; others are skipped).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bright_fat_check.py runs/data_physiology/case_401 [...]
        [--gain 2.5] [--model M]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import DCEDiffLib.preprocess as preprocess  # noqa: E402
import DCEDiffLib.t1pre_level as t1pre_level  # noqa: E402
from DCEDiffLib.training.case_data import find_case_inputs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gland_level_statistics import with_gland_rule  # noqa: E402

# Every row is synthesized with the engine's output rescale switched off (this script measured it before the engine
# had it; the rescale row applies it to the "off" synthesis, so both stay comparable with the gland rule's rows).
ENGINE_ENHANCEMENT_FACTOR = t1pre_level.enhancement_factor
SCALED_KEYS = ("t1pre", "dce_early", "dce_late")  # on one grid in the phantom (the T1-pre is the DCE's frame 0)


def fat_gain_map(t1pre: np.ndarray, gland_level_value: float, fat_level: float, gain: float) -> np.ndarray:
    """Per-voxel factor 1 + (gain − 1)·w, w = clip((S − gland) / (fat − gland), 0, 1) on the T1-pre ``S``."""
    weight = np.clip((t1pre - gland_level_value) / max(fat_level - gland_level_value, 1e-6), 0.0, 1.0)
    return (1.0 + (gain - 1.0) * weight).astype(np.float32)


def gland_re(output, legend) -> tuple:
    """Median RE over the PZ + TZ labels, synthetic and acquired, early and late."""
    t1 = sitk.GetArrayFromImage(output.case.images["t1pre"]).astype(np.float64)
    gland = np.isin(output.labels, [legend["peripheral_zone"], legend["transition_zone"]]) & (t1 > 0)
    out = []
    for phase in ("early", "late"):
        synthetic = sitk.GetArrayFromImage(output.synthetic[phase]).astype(np.float64)
        acquired = sitk.GetArrayFromImage(output.case.images[f"dce_{phase}"]).astype(np.float64)
        out.append((float(np.median((synthetic[gland] - t1[gland]) / t1[gland])),
                    float(np.median((acquired[gland] - t1[gland]) / t1[gland]))))
    return tuple(out)


def output_rescale_factor(output, card: dict) -> tuple:
    """(gland level, factor) of the engine's output rescale (``DCEDiffLib/t1pre_level.py``) for a synthesis made
    with it switched off: the factor is 1 where the engine would leave the exam as it is."""
    from DCEDiffLib.pipeline import condition_array

    level = t1pre_level.gland_level(condition_array(output.case, ["t1pre"])[0])
    return level, ENGINE_ENHANCEMENT_FACTOR(card, level) or 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+", type=Path, help="non-fat-suppressed phantom case folders")
    parser.add_argument("--gain", type=float, default=2.5, help="fat's factor (default 2.5)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--output-rescale", action="store_true",
                        help="also report the engine's output rescale (DCEDiffLib/t1pre_level.py) on the bright-fat "
                             "exam (rule off): RE times min(1, gland level / the card's lowest training level); r "
                             "unchanged by construction")
    args = parser.parse_args()
    from DCEDiffLib.diffusion.model_files import load_card
    from DCEDiffLib.model_registry import resolve_model
    from DCEDiffLib.pipeline import synthesize_case

    card = load_card(resolve_model(args.model))

    plain = preprocess.tame_heavy_tail
    t1pre_level.enhancement_factor = lambda card, level: None  # the engine's rescale off (ENGINE_ENHANCEMENT_FACTOR)
    print("| case | exam | rule | fired | PSNR early / late (dB) | body r early / late | prostate r early / late | "
          "gland RE synthetic (acquired) early | late |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case_dir in args.cases:
        info = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
        if info.get("dce", {}).get("t1_fat_suppressed", True):
            print(f"| {case_dir.name} | skipped: fat-suppressed | | | | | | | |")
            continue
        legend = info["label_legend"]
        inputs = {k: str(v) for k, v in find_case_inputs(case_dir).items()}
        t1pre = sitk.ReadImage(inputs["t1pre"])
        labels = sitk.Resample(sitk.ReadImage(inputs["labels"]), t1pre, sitk.Transform(), sitk.sitkNearestNeighbor)
        label_array, t1_array = sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(t1pre).astype(np.float32)
        gland = np.isin(label_array, [legend["peripheral_zone"], legend["transition_zone"]])
        fat = label_array == legend["fat"]
        factor = fat_gain_map(t1_array, float(np.median(t1_array[gland])), float(np.median(t1_array[fat])),
                              args.gain)
        with tempfile.TemporaryDirectory() as scratch:
            perturbed = dict(inputs)
            for key in SCALED_KEYS:
                image = sitk.ReadImage(inputs[key])
                if image.GetSize() != t1pre.GetSize():
                    raise SystemExit(f"{case_dir}: {key} is not on the T1-pre's grid; expected a phantom exam")
                out = sitk.GetImageFromArray(sitk.GetArrayFromImage(image).astype(np.float32) * factor)
                out.CopyInformation(image)
                perturbed[key] = str(Path(scratch) / f"{key}.nii.gz")
                sitk.WriteImage(out, perturbed[key])
            for exam, files, rule in (("as generated", inputs, "on"), ("bright fat", perturbed, "off"),
                                      ("bright fat", perturbed, "on")):
                preprocess.tame_heavy_tail = with_gland_rule(plain) if rule == "on" else plain
                out = synthesize_case(files, model_path=args.model, seed=0, register=False)
                m = out.metrics
                fired = "the gland" in out.provenance.get("intensity_notes", {}).get("t1pre", "")
                (se, ae), (sl, al) = gland_re(out, legend)
                if exam == "bright fat" and rule == "off" and args.output_rescale:
                    level, rescale = output_rescale_factor(out, card)
                    print(f"| {case_dir.name} | {exam} | output × {rescale:.2f} (gland level "
                          f"{level:.3f}) | {'yes' if rescale < 1 else 'no'} | – | as off | as off | "
                          f"{rescale * se:.2f} ({ae:.2f}) | {rescale * sl:.2f} ({al:.2f}) |", flush=True)
                print(f"| {case_dir.name} | {exam} | {rule} | {'yes' if fired else 'no'} | "
                      f"{m['early']['whole']['psnr']:.2f} / {m['late']['whole']['psnr']:.2f} | "
                      f"{m['early']['enhancement']['body']['pearson']:.2f} / "
                      f"{m['late']['enhancement']['body']['pearson']:.2f} | "
                      f"{m['early']['enhancement']['prostate']['pearson']:.2f} / "
                      f"{m['late']['enhancement']['prostate']['pearson']:.2f} | {se:.2f} ({ae:.2f}) | "
                      f"{sl:.2f} ({al:.2f}) |", flush=True)
    preprocess.tame_heavy_tail = plain
    t1pre_level.enhancement_factor = ENGINE_ENHANCEMENT_FACTOR
    return 0


if __name__ == "__main__":
    sys.exit(main())
