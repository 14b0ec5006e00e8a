"""``dcediff synthesize``: synthetic early/late DCE for a user's own exam."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from DCEDiffLib.atomic import SYNTHESIS_RECORD
from DCEDiffLib.commands.common import (add_input_arguments, add_progress_argument, add_sampling_arguments,
                                        collect_inputs, parse_center, progress_callback,
                                        registration_notes)
from DCEDiffLib.precision import PRECISION_HELP, PRECISIONS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synthesize", help="synthesize early/late DCE from T2W, PD, ADC and T1-pre",
        description="Registers PD/ADC/T1-pre (and acquired DCE) to the T2W, synthesizes early and late DCE on the "
                    "160x160x16 working grid, and writes synthetic_early/late.nii.gz (labelled synthetic), "
                    "uncertainty maps (--samples > 1), residuals and metrics.json (acquired DCE given), "
                    "report.png and synthesis.json. --pd may be left out (and a --study without a PD series is "
                    "used) when the model's card lists pd in optional_inputs (a model trained with "
                    "augment.drop_pd); the results then say they were made without PD.")
    add_input_arguments(parser, required=False)  # required unless --study (checked in run)
    add_study_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    parser.add_argument("--t2w-grid", action="store_true", help="also write the results resampled onto the T2W grid")
    parser.add_argument("--dicom", action="store_true",
                        help="also write the synthetic early/late DCE as DICOM MR series on the T2W grid, in the "
                             "T2W's study (dicom/synthetic_early/, dicom/synthetic_late/; marked SYNTHETIC and "
                             "DERIVED, never read back as an input); needs a DICOM T2W (--study or --t2w FOLDER)")
    parser.add_argument("--no-register", action="store_true", help="trust the scanner alignment (skip registration)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier dcediff synthesize output in --out (a folder without its "
                             "synthesis.json, or one holding an input, is refused)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist unless --overwrite)")
    add_progress_argument(parser)
    parser.set_defaults(func=run, output_records=(SYNTHESIS_RECORD,))


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """--study DIR [--series ROLE=NUMBER ...] [--early-time S --late-time S]."""
    group = parser.add_argument_group("a whole DICOM study instead of --t2w/--pd/--adc/--t1pre")
    group.add_argument("--study", type=Path, metavar="DIR",
                       help="folder holding one DICOM study (nested folders, any file names): the T2W, PD, ADC, "
                            "T1-pre and acquired DCE series are recognised from their DICOM headers and printed; "
                            "--t2w/--pd/--adc/--t1pre/--dce-* given as well replace the study's series")
    group.add_argument("--series", action="append", metavar="ROLE=NUMBER",
                       help="with --study: use series NUMBER for ROLE (t2w, pd, adc, t1pre, dce, dce_early, "
                            "dce_late; t1pre=dce: the last DCE frame before contrast arrival; pd=none: no PD, for "
                            "a model trained to do without it); repeatable")
    group.add_argument("--early-time", type=float, metavar="SECONDS",
                       help="with --study: acquired early DCE = the frame closest to SECONDS after contrast "
                            "arrival (default: the middle time point, as in the paper)")
    group.add_argument("--late-time", type=float, metavar="SECONDS",
                       help="with --study: acquired late DCE = the frame closest to SECONDS after contrast "
                            "arrival (default: the last time point)")


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.pipeline import synthesize_to_folder

    picks = None
    t2w_dicom = _t2w_dicom_files(args)  # a T2W file with --dicom: refused before any slow work
    if args.study is not None:
        inputs, picks = study_inputs(args)
    else:
        _check_file_inputs(args)
        inputs = collect_inputs(args)
    dicom = _dicom_target(args, t2w_dicom, picks) if args.dicom else None
    callback, close = progress_callback(args, "synthesize")
    try:
        output = synthesize_to_folder(
            inputs, args.out, t2w_grid=args.t2w_grid, overwrite=args.overwrite, progress=callback,
            model_path=args.model, sampler=args.sampler, steps=args.steps, samples=args.samples, seed=args.seed,
            device=args.device, center_lps=parse_center(args.center), register=not args.no_register,
            warm_start=args.warm_start, precision=args.precision,
            record=None if picks is None else picks.to_dict(),  # the study's picks, in the same atomic write
            dicom=dicom)
    finally:
        close()
    for note in registration_notes(output.case.registration):  # said in words, not only in synthesis.json
        print(f"dcediff synthesize: note: {note}", file=sys.stderr)
    summary = {"out": str(args.out), "seconds": output.provenance.get("total_seconds"),
               "nfe": output.provenance["nfe"], "device": output.provenance["device"],
               "precision": output.provenance["precision"]}
    if picks is not None:
        summary["series"] = {role: pick.series.number for role, pick in picks.picks.items()}
    if dicom is not None:
        written = dicom.to_dict()
        summary["dicom"] = {"folder": str(Path(args.out) / "dicom"),
                            "study_instance_uid": written["study_instance_uid"],
                            "series": {name: info["series_number"] for name, info in written["series"].items()}}
    if output.metrics is not None:
        summary["metrics"] = _headline(output.metrics)
    if not args.progress_lines:  # a reader of progress lines gets stdout with those lines only (synthesis.json has it)
        print(json.dumps(summary, indent=1, default=str))
    return 0


def _headline(metrics: dict) -> dict:
    """PSNR/SSIM/MAE on the whole grid, per target, for the console."""
    out = {}
    for target, values in metrics.items():
        whole = values.get("whole") if isinstance(values, dict) else None
        if isinstance(whole, dict):
            out[target] = {k: whole.get(k) for k in ("psnr", "ssim", "mae")}
    return out


# ----------------------------------------------------------------------------------------------- --dicom

def _t2w_dicom_files(args: argparse.Namespace):
    """With --dicom and a --t2w given: (its DICOM files, its series number); a T2W that is no DICOM series (a NIfTI
    file has no study to join) is refused here, before any slow work. None otherwise (a --study's T2W comes from
    its picks)."""
    if not args.dicom or not args.t2w:
        return None
    from DCEDiffLib.dicom_results import t2w_dicom_files

    return t2w_dicom_files(args.t2w, "--t2w")


def _dicom_target(args: argparse.Namespace, t2w_dicom, picks):
    """The DicomTarget for --dicom: the T2W's header, and series numbers the study does not use."""
    from DCEDiffLib.dicom_results import dicom_target

    if t2w_dicom is not None:
        files, numbers = t2w_dicom
        name = f"--t2w {args.t2w}"
    else:
        pick = picks.picks["t2w"]
        files, numbers = [f.path for f in pick.volume.files], []
        name = f"T2W {pick.series.label()}"
    if picks is not None:
        numbers = numbers + [s.number for s in picks.study.series if s.number is not None]
    return dicom_target(files, numbers, name)


# ----------------------------------------------------------------------------------------------- --study

def _check_file_inputs(args: argparse.Namespace) -> None:
    """Without --study the four inputs are required, and the study-only options make no sense."""
    from DCEDiffLib.errors import InputError

    # --pd may be left out for a model trained without it: the pipeline decides from the model's card
    missing = [f"--{m}" for m in ("t2w", "pd", "adc", "t1pre") if not getattr(args, m)]
    if set(missing) - {"--pd"}:
        raise InputError(f"missing inputs {', '.join(missing)}: expected --t2w, --pd, --adc and --t1pre "
                         "(DICOM series folders or NIfTI/NRRD/MHA files; --pd only when the model can do without "
                         "it), or --study DIR")
    extra = [name for name, value in (("--series", args.series), ("--early-time", args.early_time),
                                      ("--late-time", args.late_time)) if value is not None]
    if extra:
        raise InputError(f"{', '.join(extra)}: only with --study DIR")


def study_inputs(args: argparse.Namespace):
    """(inputs, picks) from ``--study``: scan headers, recognise the roles, print every pick, read the chosen
    series; inputs also given as files (--t1pre ...) are used instead of the study's. Errors (no study, several
    studies, a missing role) come before anything is written."""
    from DCEDiffLib.atomic import check_output_folder
    from DCEDiffLib.diffusion.model_files import load_card, missing_inputs_allowed
    from DCEDiffLib.dicom_study import scan_study
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.modalities import OPTIONAL_INPUTS
    from DCEDiffLib.model_registry import resolve_model
    from DCEDiffLib.study_roles import ROLE_NAMES, parse_series_overrides, pick_roles

    # inputs given as files take the place of the study's series (e.g. a T1-pre the study lacks)
    files = {m: getattr(args, m) for m in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late", "dce_baseline")
             if getattr(args, m, None)}
    if ("dce_early" in files) != ("dce_late" in files):
        raise InputError("acquired DCE: give both --dce-early and --dce-late, or neither")
    if "dce_baseline" in files and "dce_early" not in files:
        raise InputError("--dce-baseline: only with --dce-early and --dce-late as files (a --study finds its DCE's "
                         "pre-contrast frame itself)")
    check_output_folder(args.out, overwrite=args.overwrite, inputs=[args.study, *files.values()],
                        records=(SYNTHESIS_RECORD,))
    weights = resolve_model(args.model)
    allowed = missing_inputs_allowed(load_card(weights))  # which roles the study may lack (the card decides)
    overrides = parse_series_overrides(args.series)
    study = scan_study(args.study, warn=lambda message: print(f"dcediff synthesize: warning: {message}",
                                                             file=sys.stderr, flush=True))
    picks = pick_roles(study, overrides, early_time=args.early_time, late_time=args.late_time, given=files,
                       optional=allowed, require=False)
    if picks.problem:
        needed = [r for r in picks.missing if r in OPTIONAL_INPUTS]  # optional in general, but not for this model
        hint = "".join(f" The model {weights.stem} needs {ROLE_NAMES[r]} (its card does not list {r!r} in "
                       f"optional_inputs); a model trained with augment.drop_{r} > 0 can do without it."
                       for r in needed)
        raise InputError(picks.problem + hint)
    print(f"study {study.study_uid} (patient {study.patient_id or '?'}, {len(study.series)} series):", flush=True)
    for line in picks.lines():
        print("  " + line, flush=True)
    for warning in picks.warnings:  # e.g. a T1-pre no DCE series could date: pre-contrast by its name only
        print(f"dcediff synthesize: warning: {warning}", file=sys.stderr, flush=True)
    refuse_file_that_is_a_picked_series(files, picks)
    inputs = dict(picks.load_inputs())  # with the DCE's own pre-contrast frame where the T1-pre is another series
    inputs.update(files)
    if args.labels:
        inputs["labels"] = args.labels
    return inputs, picks


def refuse_file_that_is_a_picked_series(files: dict, picks) -> None:
    """A DICOM folder given for one role (``--t1pre FOLDER``) that holds the series the study gave another role
    (its PD, say) would feed the model one image as two contrasts: refused, as ``--series`` and files given twice
    are."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.study_roles import REQUIRED_ROLES, ROLE_NAMES
    from DCEDiffLib.volume_io import list_dicom_series

    picked = {pick.series.uid: role for role, pick in picks.picks.items() if role in REQUIRED_ROLES}
    for role, path in files.items():
        if role not in REQUIRED_ROLES or not Path(path).is_dir():
            continue
        for series in list_dicom_series(Path(path)):
            other = picked.get(series["series_uid"])
            if other is not None and other != role:
                raise InputError(f"--{role.replace('_', '-')} {path}: this is the study's {ROLE_NAMES[other]} series "
                                 f"({picks.picks[other].series.label()}); each role needs its own series. To use it "
                                 f"as the {ROLE_NAMES[role]}, give the {ROLE_NAMES[other]} another series (--series), "
                                 "or leave PD out with --series pd=none where the model allows it")
