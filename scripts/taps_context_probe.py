#!/usr/bin/env python3
"""Why TAPS finds no procedural gland: the gland's own look, or the pelvis around it? (a diagnostic, issue 17)

For N pairs of fresh cases — a real-anatomy case (``--anatomy prostatex``, seed ``--real-seed``), where TAPS finds
the gland, and a procedural one (seed ``--procedural-seed``), where it finds none — TAPS
(``prostate_localization.fast_mask``) is run on four T2W volumes and scored by Dice against the gland it should
find:
- ``real``: the real-anatomy case as generated;
- ``real_no_context``: the same with every voxel farther than 8 mm from its gland set to its muscle median (the gland
  and its immediate surroundings kept, the pelvis gone);
- ``procedural_gland_in_real``: the procedural gland and 3 mm around it pasted into the real-anatomy case (centroids
  aligned, intensities scaled by the ratio of the two cases' fat medians);
- ``real_gland_in_procedural``: the real-anatomy gland and 3 mm around it pasted into the procedural case.
Nothing is written. Example: ``OMP_NUM_THREADS=1 .venv/bin/python scripts/taps_context_probe.py --cases 4``
(about 30 s per pair). Needs the ``prostate`` extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taps_dice_on_phantom import GLAND_LABELS, dice  # noqa: E402

from DCEDiffLib import prostate_localization  # noqa: E402
from DCEDiffLib.phantom.anatomy import LABEL_LEGEND  # noqa: E402
from DCEDiffLib.phantom.generator import case_seed, generate_case  # noqa: E402


def taps_mask(values: np.ndarray, reference: sitk.Image) -> np.ndarray:
    """TAPS's gland mask of an array on ``reference``'s grid."""
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.CopyInformation(reference)
    return sitk.GetArrayFromImage(prostate_localization.fast_mask(image)) > 0


def paste(target: np.ndarray, source: np.ndarray, region: np.ndarray, shift: np.ndarray, gain: float):
    """``target`` with ``source``'s voxels in ``region`` moved by ``shift`` (voxels) and scaled by ``gain``; and the
    moved region as a mask."""
    out, moved = target.copy(), np.zeros(target.shape, bool)
    where = np.argwhere(region)
    to = where + shift
    keep = np.all((to >= 0) & (to < target.shape), axis=1)
    out[tuple(to[keep].T)] = source[tuple(where[keep].T)] * gain
    moved[tuple(to[keep].T)] = True
    return out, moved


def probe_pair(real, procedural) -> dict:
    """The four Dice values of one pair of generated cases (see the module docstring)."""
    spacing = tuple(reversed(real.images["t2w"].GetSpacing()))
    real_t2w, real_labels = (sitk.GetArrayFromImage(x) for x in (real.images["t2w"], real.labels))
    proc_t2w, proc_labels = (sitk.GetArrayFromImage(x) for x in (procedural.images["t2w"], procedural.labels))
    real_gland, proc_gland = np.isin(real_labels, GLAND_LABELS), np.isin(proc_labels, GLAND_LABELS)
    fat_ratio = float(np.median(real_t2w[real_labels == LABEL_LEGEND["fat"]])
                      / np.median(proc_t2w[proc_labels == LABEL_LEGEND["fat"]]))
    out = {"real": dice(taps_mask(real_t2w, real.images["t2w"]), real_gland)}
    far = ndimage.distance_transform_edt(~real_gland, sampling=spacing) > 8
    bare = real_t2w.copy()
    bare[far] = np.median(real_t2w[real_labels == LABEL_LEGEND["muscle"]])
    out["real_no_context"] = dice(taps_mask(bare, real.images["t2w"]), real_gland)
    shift = np.round(np.array(ndimage.center_of_mass(real_gland))
                     - np.array(ndimage.center_of_mass(proc_gland))).astype(int)
    near_proc = ndimage.distance_transform_edt(~proc_gland, sampling=spacing) <= 3
    values, _ = paste(real_t2w, proc_t2w, near_proc, shift, fat_ratio)
    _, gland = paste(real_t2w, proc_gland.astype(np.float32), proc_gland, shift, 1.0)
    out["procedural_gland_in_real"] = dice(taps_mask(values, real.images["t2w"]), gland)
    near_real = ndimage.distance_transform_edt(~real_gland, sampling=spacing) <= 3
    values, _ = paste(proc_t2w, real_t2w, near_real, -shift, 1.0 / fat_ratio)
    _, gland = paste(proc_t2w, real_gland.astype(np.float32), real_gland, -shift, 1.0)
    out["real_gland_in_procedural"] = dice(taps_mask(values, procedural.images["t2w"]), gland)
    return {k: round(v, 3) for k, v in out.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--real-seed", type=int, default=7301)
    parser.add_argument("--procedural-seed", type=int, default=500)
    args = parser.parse_args(argv)
    reason = prostate_localization.unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    for index in range(args.cases):
        real = generate_case(case_seed(args.real_seed, index), "A", "real", anatomy="prostatex")
        procedural = generate_case(case_seed(args.procedural_seed, index), "A", "procedural", anatomy="procedural")
        print(index, probe_pair(real, procedural), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
