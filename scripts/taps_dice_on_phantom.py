#!/usr/bin/env python3
"""Realism check of the phantom: Dice of a real prostate segmentation model (TAPS) against the phantom's gland label.

For N fresh cases (case seeds derived from ``--seed`` as in ``dcediff phantom``), the phantom T2W is segmented with
TAPS (``DCEDiffLib.prostate_localization.fast_mask``: the crop-centre fast path, one native-resolution window at the
field-of-view centre and a second one on the gland if the first reaches the window's border) and compared with the
phantom's gland label on the T2W grid: peripheral zone + transition zone + lesion + anterior fibromuscular stroma.
Prints one line per case and the median. A model that has only seen real exams finding the phantom's gland means
the phantom's T2W looks like a pelvis to it.

Example: ``OMP_NUM_THREADS=1 .venv/bin/python scripts/taps_dice_on_phantom.py --anatomy prostatex --cases 10
--seed 7301`` (about 30 s per case on 2 busy cores). Needs the ``prostate`` extra (onnxruntime + the TAPS model).

Diagnostics for the procedural family (what would make TAPS see its gland; the generator itself is unchanged):
``--real-t2w-contrast`` redraws each tissue's T2 so that the T2W contrast to fat is the real exams' (the
real-anatomy family's ``match_source_t2w_contrast``); ``--muscle-body`` paints the body's filling tissue as muscle
instead of fat (a real pelvis around the prostate is mostly muscle; the procedural one mostly fat);
``--pelvis-compartments`` paints a muscular pelvis with fat in compartments (:func:`pelvis_compartments`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from DCEDiffLib import prostate_localization  # noqa: E402
from DCEDiffLib.phantom.anatomy import LABEL_LEGEND  # noqa: E402
from DCEDiffLib.phantom.generator import ANATOMY_FAMILIES, case_seed, generate_case  # noqa: E402

GLAND_LABELS = [LABEL_LEGEND[n] for n in ("peripheral_zone", "transition_zone", "lesion",
                                          "anterior_fibromuscular_stroma")]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def gland_dice(case) -> dict:
    """TAPS vs the phantom gland label of one generated case: Dice, both volumes (mL), seconds."""
    t2w = case.images["t2w"]
    start = time.perf_counter()
    mask = sitk.GetArrayFromImage(prostate_localization.fast_mask(t2w)) > 0
    seconds = time.perf_counter() - start
    gland = np.isin(sitk.GetArrayFromImage(case.labels), GLAND_LABELS)
    voxel_ml = float(np.prod(t2w.GetSpacing())) / 1000.0
    return {"dice": round(dice(mask, gland), 4), "taps_ml": round(float(mask.sum()) * voxel_ml, 1),
            "label_ml": round(float(gland.sum()) * voxel_ml, 1), "taps_seconds": round(seconds, 1)}


def pelvis_compartments(rng: np.random.Generator, anatomy) -> None:
    """A muscular pelvis with fat in compartments, painted into a procedural anatomy in place: inside the
    subcutaneous fat the body is muscle; fat fills the periprostatic space, the mesorectum, the ischiorectal fossae
    and the space of Retzius; every later structure (named muscles, bones, vessels, bladder, rectum, gland) is
    painted over as before."""
    from DCEDiffLib.phantom.anatomy import Ellipsoid, EllipticCylinder, Layer, Offset, rotation_matrix

    u = lambda low, high: float(rng.uniform(low, high))  # noqa: E731
    names = [layer.name for layer in anatomy.layers]
    shape_of = {layer.name: layer.shape for layer in anatomy.layers}
    ax, ay, az = anatomy.summary["gland_semi_axes_mm"]
    tilt = rotation_matrix(anatomy.summary["gland_tilt_deg"])
    added = [Layer("pelvic_muscle", Offset(shape_of["body"], u(12, 25)), "muscle", "muscle")]
    for s in (-1.0, 1.0):
        fossa = EllipticCylinder([s * (ax + u(18, 30)), ay + u(18, 32)], [u(14, 22), u(22, 32)], s * u(-25, 5))
        added.append(Layer(f"ischiorectal_fat_{s:+.0f}", fossa, "fat", "fat"))
    added.append(Layer("retzius_fat", Ellipsoid([0, -(ay + u(6, 12)), u(-5, 15)], [ax * u(0.9, 1.3), u(6, 10),
                                                                                    az * u(1.2, 1.8)]), "fat", "fat"))
    added.append(Layer("mesorectal_fat", Offset(shape_of["rectal_wall"], -u(5, 12)), "fat", "fat"))
    added.append(Layer("periprostatic_fat", Ellipsoid([0, 0, 0], [ax + u(3, 7), ay + u(3, 6), az + u(3, 7)], tilt),
                       "fat", "fat"))
    at = names.index("body") + 1
    anatomy.layers[at:at] = added


def procedural_variant(real_t2w_contrast: bool, muscle_body: bool, compartments: bool = False):
    """A context that makes ``generate_case``'s procedural anatomy follow the diagnostic options (no-op if all are
    off): wraps ``generator.build_anatomy``; the other random draws stay the same."""
    import contextlib
    from unittest import mock

    from DCEDiffLib.phantom import generator
    from DCEDiffLib.phantom.template_anatomy import match_source_t2w_contrast

    if not (real_t2w_contrast or muscle_body or compartments):
        return contextlib.nullcontext()
    build = generator.build_anatomy

    def variant(rng, tissues, **kwargs):
        anatomy = build(rng, tissues, **kwargs)
        if compartments:  # its own stream, as below
            pelvis_compartments(np.random.default_rng([int(rng.integers(1 << 30)), 7]), anatomy)
        if muscle_body:
            for layer in anatomy.layers:
                if layer.name == "body":
                    layer.tissue = "muscle"
        if real_t2w_contrast:  # its own stream: the case's later draws are unchanged
            anatomy.tissues = match_source_t2w_contrast(np.random.default_rng([int(rng.integers(1 << 30)), 6]),
                                                        anatomy.tissues)
        return anatomy
    return mock.patch.object(generator, "build_anatomy", variant)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anatomy", default="prostatex", choices=ANATOMY_FAMILIES)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7301, help="dataset seed (case i uses case_seed(seed, i))")
    parser.add_argument("--domain", default="A", choices=["A", "B"])
    parser.add_argument("--json", type=Path, default=None, help="also write the per-case results here")
    parser.add_argument("--real-t2w-contrast", action="store_true", help="procedural diagnostic (see above)")
    parser.add_argument("--muscle-body", action="store_true", help="procedural diagnostic (see above)")
    parser.add_argument("--pelvis-compartments", action="store_true", help="procedural diagnostic (see above)")
    args = parser.parse_args(argv)
    reason = prostate_localization.unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ImportError:
        pass
    rows = []
    for index in range(args.cases):
        seed = case_seed(args.seed, index)
        with procedural_variant(args.real_t2w_contrast, args.muscle_body, args.pelvis_compartments):
            case = generate_case(seed, args.domain, f"case_{index:03d}", anatomy=args.anatomy)
        row = {"index": index, "case_seed": seed, "family": case.params["anatomy_family"],
               "template": case.params["anatomy"].get("template"),
               "generation_seconds": round(case.generation_seconds, 2), **gland_dice(case)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    values = [r["dice"] for r in rows]
    print(f"anatomy {args.anatomy}, domain {args.domain}, seed {args.seed}, {len(rows)} cases: median Dice "
          f"{np.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f}); median generation "
          f"{np.median([r['generation_seconds'] for r in rows]):.2f} s per case")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
