"""``dcediff preprocess``: registration to T2W, the 160×160×16 working grid and normalisation, written to disk."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from DCEDiffLib.atomic import PREPROCESS_RECORD
from DCEDiffLib.commands.common import add_input_arguments, collect_inputs, parse_center
from DCEDiffLib.modalities import OPTIONAL_INPUTS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "preprocess", help="register PD/ADC/T1-pre (and DCE) to T2W and resample onto the working grid",
        description="Rigidly registers every series to the T2W (starting from the scanner alignment), resamples "
                    "it onto the 160x160x16 working grid (1.5x1.5x3.0 mm, oriented like the T2W, centred on the "
                    "prostate) and fits the per-modality normalisation. Writes OUT/<modality>.nii.gz, "
                    "OUT/transforms/<modality>.tfm (T2W point -> series point) and OUT/preprocess.json. --pd may "
                    "be left out (an exam without a PD series): no pd.nii.gz nor PD transform is written, and "
                    "preprocess.json says so (missing_inputs [\"pd\"], missing_inputs_note); a model whose card "
                    "lists pd in optional_inputs fills its PD channel as in training, other models and "
                    "'dcediff train'/'evaluate' need it.")
    add_input_arguments(parser, optional=OPTIONAL_INPUTS)
    parser.add_argument("--no-register", action="store_true", help="trust the scanner alignment (skip registration)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier dcediff preprocess output in --out (a folder without its "
                             "preprocess.json, or one holding an input, is refused)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist unless --overwrite)")
    parser.set_defaults(func=run, output_records=(PREPROCESS_RECORD,))


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.preprocess import missing_inputs, missing_inputs_note, preprocess_case, write_preprocessed

    inputs = collect_inputs(args)
    missing = missing_inputs(inputs)  # only optional ones (argparse requires the others): PD, for an exam without it
    if missing:
        print(f"dcediff preprocess: note: {missing_inputs_note(missing)}", file=sys.stderr, flush=True)
    case = preprocess_case(inputs, center_lps=parse_center(args.center), register=not args.no_register,
                           find_prostate=True, self_check=True, optional=tuple(missing))
    write_preprocessed(case, args.out, overwrite=args.overwrite)
    summary = {"out": str(args.out), "working_grid_center_lps": [round(c, 2) for c in case.grid.center_lps],
               "crop_centre_source": case.crop_centre.get("crop_centre_source"),
               "registration": {m: {"applied": r.applied, "translation_mm": round(r.translation_mm, 2),
                                    "rotation_deg": round(r.rotation_deg, 2), "reason": r.reason}
                                for m, r in case.registration.items()},
               "coverage": {m: round(c, 3) for m, c in case.coverage.items()},
               "missing_inputs": case.missing_inputs}
    print(json.dumps(summary, indent=1))
    return 0
