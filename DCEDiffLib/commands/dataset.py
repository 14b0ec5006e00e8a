"""``dcediff dataset``: training cases from a folder of DICOM studies, one per patient (e.g. TCIA ProstateX)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from DCEDiffLib.commands.common import add_progress_argument, progress_callback, summary_stream

REASON_CHARS = 240   # skip reasons on the console are cut here; manifest.csv/json hold them in full


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dataset", help="training cases from a folder of DICOM studies, one per patient (e.g. TCIA ProstateX)",
        description="Walks the patient folders of ROOT (one DICOM study each, e.g. ROOT/ProstateX-0000/<study>/"
                    "<series>/*.dcm), recognises T2W, PD, ADC, T1-pre and the acquired DCE from the DICOM headers "
                    "(the rules of 'dcediff synthesize --study', docs/preprocessing.md), reads the chosen series and "
                    "writes one case folder per patient (t2w/pd/adc/t1pre/dce_early/dce_late.nii.gz + case.json, "
                    "the form 'dcediff train --data OUT' reads; registration and cropping happen there, as for "
                    "phantom cases), plus manifest.csv and manifest.json: status, picks, and why a patient was "
                    "skipped. Patients without an acquired DCE go to OUT/no_dce/ (not used for training). Each "
                    "case is written atomically; re-running the same command resumes (finished cases are kept, "
                    "skipped patients are retried).")
    parser.add_argument("--root", type=Path, required=True, metavar="ROOT",
                        help="folder with one sub-folder per patient, each holding one DICOM study")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT",
                        help="dataset folder: new, empty, or one made by this command (then resumed)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="convert N patients at a time in separate processes (default 1)")
    add_progress_argument(parser)
    parser.set_defaults(func=run, interrupted=interrupted_message)


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.progress import ProgressTracker
    from DCEDiffLib.study_dataset import MANIFEST_CSV, NO_DCE_DIR, build_dataset

    callback, close = progress_callback(args, "dataset")
    tracker = ProgressTracker({"dataset": 1.0}, callback)
    try:
        result = build_dataset(args.root, args.out, workers=args.workers,
                               progress=lambda done, total, patient: tracker.report("dataset", done, total, patient))
    finally:
        close()
    for record in result.records:
        if record["status"] != "ok":
            reason = record["reason"]
            if len(reason) > REASON_CHARS:
                reason = reason[:REASON_CHARS].rstrip() + " …"
            print(f"dcediff dataset: skipped {record['patient']}: {reason}", file=sys.stderr)
    # picks of a written case to check by eye (a T1-pre dated by its name only), one line each, as 'dcediff
    # synthesize --study' prints them; a skipped patient's reason says enough; a row of an older run has none
    for record in result.records:
        for warning in (record.get("pick_warnings") or ()) if record["status"] == "ok" else ():
            print(f"dcediff dataset: warning: {record['patient']}: {warning}", file=sys.stderr)
    hint = root_too_deep_hint(result.records)
    if hint:
        print(f"dcediff dataset: warning: {hint}", file=sys.stderr)
    usable = result.count("ok", usable=True)
    # with --progress-lines stdout holds only the progress lines (what a caller such as Slicer parses)
    print(f"DCEDiff dataset: {usable} case(s) for training in {args.out}/, {result.count('ok', usable=False)} "
          f"without acquired DCE in {args.out}/{NO_DCE_DIR}/, {result.count('skipped')} patient(s) skipped, "
          f"{result.resumed} finished earlier; {result.seconds:.1f} s. Manifest: {args.out / MANIFEST_CSV}",
          file=summary_stream(args))
    if usable == 0:
        raise InputError(f"--root {args.root}: no patient gave a training case (a T2W, PD, ADC, T1-pre and an "
                         f"acquired DCE); the reasons are in {args.out / MANIFEST_CSV}")
    return 0


def root_too_deep_hint(records) -> str:
    """Words for a --root whose 'patients' are the series (or studies) of one patient: several folders hold the
    same DICOM study. Empty when not."""
    folders: dict = {}
    for record in records:
        if record.get("study_instance_uid"):
            folders.setdefault(record["study_instance_uid"], []).append(record["patient"])
    shared = max(folders.values(), key=len, default=[])
    dated = [r["patient"] for r in records if re.fullmatch(r"\d{2}-\d{2}-\d{4}.*", r["patient"])]
    if records and len(dated) == len(records):  # TCIA names a study folder by its date: ROOT/<patient>/<date>
        return (f"every folder under --root is named like a study date ({', '.join(dated[:3])}): --root looks like "
                "one patient's folder; expected the folder whose sub-folders are the patients (e.g. the folder "
                "holding ProstateX-0000/), so that each case is named after its patient")
    if len(shared) < 3:  # two can be a copy (kept once); three or more folders of one study are its parts
        return ""
    return (f"{len(shared)} folders under --root hold parts of one DICOM study ({', '.join(shared[:3])}, …): --root "
            "looks one level too deep; expected the folder whose sub-folders are the patients (e.g. the folder "
            "holding ProstateX-0000/), each with one whole study")


def interrupted_message(args: argparse.Namespace) -> str:
    return (f"interrupted; every finished case in {args.out}/ is whole and kept (no half case is left): re-run the "
            "same command to resume")
