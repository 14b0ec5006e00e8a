#!/usr/bin/env python3
"""A randomization the model was never trained on, with ground truth: a surface coil's near field on phantom exams.

The real exams show fat under the anterior coil about 4× the fat elsewhere (docs/preprocessing.md, "A heavy bright
tail"); no phantom the model was trained on has that. This script puts such a near field on phantom cases with
their acquired DCE — gain 1 + a·exp(−d/L), d the distance (mm) behind the most anterior body voxel of the T2W
(LPS y), on the PD, the T1-pre and both DCE targets (one coil, one field; T2W left as it is, as a prescan-normalised
TSE would be) — and scores the shipped model on the perturbed cases with the heavy-tail rule on and off
(`DCEDiffLib/intensity_tail.py`), next to the unperturbed case. Inputs are read, never modified; the perturbed
copies live in a temporary folder.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/coil_near_field_check.py runs/data_physiology/case_400 [...]
        [--gain 3] [--length-mm 25] [--model M]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import DCEDiffLib.intensity_tail as intensity_tail  # noqa: E402
from DCEDiffLib.training.case_data import find_case_inputs  # noqa: E402

FIELD_KEYS = ("pd", "t1pre", "dce_early", "dce_late")


def physical_y(image: sitk.Image) -> np.ndarray:
    """LPS y (mm) of every voxel centre, (k, j, i)."""
    size = image.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in reversed(size)), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()])
    direction = np.array(image.GetDirection()).reshape(3, 3)
    points = direction @ (index * np.array(image.GetSpacing())[:, None]) + np.array(image.GetOrigin())[:, None]
    return points[1].reshape(k.shape)


def near_field(image: sitk.Image, anterior_y: float, gain: float, length_mm: float) -> sitk.Image:
    """``image`` times 1 + gain·exp(−max(y − anterior_y, 0)/length_mm), as float32 with the same geometry."""
    distance = np.maximum(physical_y(image) - anterior_y, 0.0)
    array = sitk.GetArrayFromImage(image).astype(np.float32) * (1 + gain * np.exp(-distance / length_mm))
    out = sitk.GetImageFromArray(array.astype(np.float32))
    out.CopyInformation(image)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+", type=Path, help="phantom case folders with dce_early/dce_late")
    parser.add_argument("--gain", type=float, default=3.0)
    parser.add_argument("--length-mm", type=float, default=25.0)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    from DCEDiffLib.pipeline import synthesize_case

    limits = dict(intensity_tail.TAIL_LIMITS)
    print("| case | exam | rule | fired | PSNR early / late (dB) | prostate r early / late |")
    print("|---|---|---|---|---|---|")
    for case_dir in args.cases:
        inputs = {k: str(v) for k, v in find_case_inputs(case_dir).items()}
        t2w = sitk.ReadImage(inputs["t2w"])
        t2w_array = sitk.GetArrayFromImage(t2w)
        body = t2w_array > np.percentile(t2w_array, 60)
        anterior_y = float(np.percentile(physical_y(t2w)[body], 0.5))
        with tempfile.TemporaryDirectory() as scratch:
            perturbed = dict(inputs)
            for key in FIELD_KEYS:
                path = Path(scratch) / f"{key}.nii.gz"
                sitk.WriteImage(near_field(sitk.ReadImage(inputs[key]), anterior_y, args.gain, args.length_mm),
                                str(path))
                perturbed[key] = str(path)
            for exam, files, rule in (("as generated", inputs, "on"), ("near field", perturbed, "off"),
                                      ("near field", perturbed, "on")):
                intensity_tail.TAIL_LIMITS = limits if rule == "on" else {}
                out = synthesize_case(files, model_path=args.model, seed=0, register=False)
                m = out.metrics
                print(f"| {case_dir.name} | {exam} | {rule} | {'yes' if out.provenance.get('intensity_notes') else 'no'} | "
                      f"{m['early']['whole']['psnr']:.2f} / {m['late']['whole']['psnr']:.2f} | "
                      f"{m['early']['enhancement']['prostate']['pearson']:.2f} / "
                      f"{m['late']['enhancement']['prostate']['pearson']:.2f} |", flush=True)
    intensity_tail.TAIL_LIMITS = limits
    return 0


if __name__ == "__main__":
    sys.exit(main())
