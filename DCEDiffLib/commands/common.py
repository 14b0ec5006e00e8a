"""Options shared by several subcommands (inputs, sampling, progress)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from DCEDiffLib import defaults
from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import DESCRIPTIONS
from DCEDiffLib.progress import TqdmProgress, print_progress_lines

SAMPLERS = defaults.SAMPLERS


def add_input_arguments(parser: argparse.ArgumentParser, required: bool = True,
                        optional: Sequence[str] = ()) -> None:
    """--t2w --pd --adc --t1pre [--dce-early --dce-late] [--labels] [--center]. ``optional``: inputs that are never
    required (``modalities.OPTIONAL_INPUTS``, e.g. ``dcediff preprocess`` without ``--pd``)."""
    group = parser.add_argument_group("inputs (DICOM series folder, or NIfTI / NRRD / MHA file)")
    for name, text in (("t2w", "T2-weighted"), ("pd", "proton density"), ("adc", "ADC map"),
                       ("t1pre", "T1 pre-contrast (e.g. the first, pre-arrival DCE frame)")):
        if name in optional:
            text += " (optional: may be left out when the exam has none)"
        group.add_argument(f"--{name}", required=required and name not in optional, help=text)
    group.add_argument("--dce-early", help="acquired early DCE (optional: residuals and metrics)")
    group.add_argument("--dce-late", help="acquired late DCE (optional: residuals and metrics)")
    group.add_argument("--dce-baseline", help="with --dce-early/--dce-late: the acquired DCE's own pre-contrast frame, "
                                             "where the T1-pre is another series (a VIBE): puts the acquired DCE "
                                             "on the T1-pre's intensity scale for the residuals and metrics "
                                             "(dcediff synthesize --study finds it)")
    group.add_argument("--labels", help="label map in T2W space (optional: region metrics)")
    group.add_argument("--center", help="prostate centre x,y,z in LPS mm (default: the centre of the gland the TAPS "
                                        "prostate model finds on the T2W, dcediff[prostate]; without it, or when it "
                                        "finds no gland, the T2W field-of-view centre, with a warning)")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """--model --sampler --steps --samples --seed --device."""
    group = parser.add_argument_group("synthesis")
    group.add_argument("--model", help="model .safetensors (with its .json card); default: the shipped model")
    group.add_argument("--sampler", default=defaults.DEFAULT_SAMPLER, choices=SAMPLERS,
                       help="dpmpp: DPM-Solver++(2M), the fast default; ddpm: the paper's ancestral sampler "
                            "(use --steps 1000 for the paper's schedule); ddim; x0: one-step prediction")
    group.add_argument("--steps", type=int, default=None,
                       help="sampler steps (default: the model card's own count for a residual model with dpmpp, "
                            f"else {defaults.DEFAULT_STEPS}; use 1000 with --sampler ddpm for the paper)")
    group.add_argument("--samples", type=int, default=defaults.DEFAULT_SAMPLES,
                       help="average K samples; K > 1 also writes an uncertainty (std) map")
    group.add_argument("--warm-start", default="auto", metavar="GAMMA|auto|none",
                       help="start dpmpp/ddim from the T1-pre (a residual model: from a zero residual) noised to "
                            "this level instead of pure noise (auto: a residual model's card level, "
                            "sampling.residual_start, 0.5 for the shipped model; 0.02 for other models with "
                            "dpmpp/ddim; pure noise for ddpm/x0; none: always pure noise)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress-lines", action="store_true",
                        help="print machine-readable DCEDIFF_PROGRESS lines instead of a progress bar (stdout then "
                             "holds only those lines: synthesize leaves out its closing JSON summary)")


def summary_stream(args: argparse.Namespace):
    """Where a command prints its human-readable lines: stderr with --progress-lines, whose stdout then holds only
    the progress lines a caller (Slicer, a scheduler) parses, as the option's help says; stdout otherwise."""
    return sys.stderr if getattr(args, "progress_lines", False) else sys.stdout


def parse_center(text: Optional[str]):
    """'x,y,z' → a tuple of three floats (LPS mm)."""
    if not text:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise InputError(f"--center {text!r}: expected three numbers x,y,z in LPS millimetres")
    return values


def collect_inputs(args: argparse.Namespace) -> Dict[str, str]:
    """The input paths given on the command line, by modality key. A command with ``--out`` also has its output
    folder checked here, so that an unusable one is refused before registration or sampling."""
    inputs = {m: getattr(args, m) for m in ("t2w", "pd", "adc", "t1pre") if getattr(args, m)}
    for key, attr in (("dce_early", "dce_early"), ("dce_late", "dce_late"), ("dce_baseline", "dce_baseline"),
                      ("labels", "labels")):
        if getattr(args, attr, None):
            inputs[key] = getattr(args, attr)
    if getattr(args, "out", None) is not None:
        from DCEDiffLib.atomic import OUTPUT_MANIFESTS, check_output_folder

        check_output_folder(args.out, overwrite=getattr(args, "overwrite", False), inputs=inputs.values(),
                            records=getattr(args, "output_records", OUTPUT_MANIFESTS))
    if ("dce_early" in inputs) != ("dce_late" in inputs):
        raise InputError("acquired DCE: give both --dce-early and --dce-late, or neither")
    if "dce_baseline" in inputs and "dce_early" not in inputs:
        raise InputError("--dce-baseline: only with --dce-early and --dce-late (it puts the acquired DCE on the "
                         "T1-pre's intensity scale)")
    check_distinct_inputs(inputs)
    from DCEDiffLib.input_role_check import role_mismatch_warnings

    for warning in role_mismatch_warnings(inputs):  # swapped series folders: said before any slow work
        print(f"dcediff: warning: {warning}", file=sys.stderr, flush=True)
    if "labels" in inputs and "dce_early" not in inputs:
        print(f"dcediff: note: {labels_without_dce_note(inputs)}", file=sys.stderr)
    elif "labels" in inputs and _labels_legend(inputs) is None:  # said here, not only in metrics.json's notes
        print("dcediff: note: --labels has no legend (a case.json next to the T2W names which label value is the "
              "prostate and which a lesion): the prostate and lesion metrics stay empty (None in metrics.json)",
              file=sys.stderr)
    return inputs


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_distinct_inputs(inputs: Dict[str, str]) -> None:
    """Refuse one file or DICOM folder given in two roles (e.g. the PD folder as --pd and --t1pre): the model would
    read one series as two contrasts and say nothing."""
    seen: Dict[str, str] = {}
    for key, value in inputs.items():
        if not value:
            continue  # an input not given (e.g. PD, for a model trained without it)
        path = Path(value)
        if not path.exists():
            continue  # reading it later names it as missing
        identity = str(path.resolve())
        if key == "dce_baseline" and seen.get(identity) == "t1pre":
            continue  # the DCE's own pre-contrast frame may be the T1-pre itself (one series): no mistake
        if identity in seen:
            raise InputError(f"{_option(seen[identity])} and {_option(key)} are the same series ({value}); each role "
                             "needs its own series")
        seen[identity] = key


def _labels_legend(inputs: Dict[str, str]):
    """The label legend of a phantom case.json next to the T2W, or None (what the pipeline's metrics use)."""
    from DCEDiffLib.training.case_data import legend_from_case_json

    try:
        return legend_from_case_json(Path(inputs["t2w"]).parent) or None
    except (OSError, ValueError):
        return None


def labels_without_dce_note(inputs: Dict[str, str]) -> str:
    """What --labels does when no acquired DCE is given (no region metrics)."""
    legend = _labels_legend(inputs)
    if legend:
        return ("--labels without --dce-early/--dce-late: no region metrics (they need the acquired DCE); the label "
                "map only outlines the prostate and lesions in report.png")
    return ("--labels is ignored: region metrics need --dce-early/--dce-late, and report.png outlines need a "
            "case.json legend next to the T2W")


def progress_callback(args: argparse.Namespace, desc: str):
    """(callback, closer) for --progress-lines or a tqdm bar."""
    if getattr(args, "progress_lines", False):
        return print_progress_lines, (lambda: None)
    bar = TqdmProgress(desc)
    return bar, bar.close


def registration_words(registration: dict) -> Dict[str, str]:
    """modality → what registration did, in words: the correction applied, or why the scanner alignment was kept
    (with the guard's own numbers, so one correction is never reported with two sizes)."""
    words = {}
    for modality, result in registration.items():
        if result.applied:
            words[modality] = (f"corrected by {result.translation_mm:.1f} mm at the gland centre, "
                               f"{result.rotation_deg:.1f}°")
        else:
            words[modality] = result.reason or "scanner alignment kept"
    return words


def registration_notes(registration: dict) -> list:
    """One line per series whose correction was not applied (not skipped on request), for the console: the scanner
    alignment is then used, which is usually right (a safeguard, not a failure). A series registered through another
    (a DCE frame through the T1-pre) whose step was refused stays on that series as acquired, following its
    registration: the usual case for frames of the T1-pre's own acquisition (35 of 40 fresh phantom exams printed
    it, docs/ood.md), so it is said only when the step was refused as implausibly large."""
    notes = []
    for modality, result in registration.items():
        if result.applied or result.reason.startswith("registration skipped"):
            continue
        if result.registered_to == "t2w":
            notes.append(f"{modality.upper()}: registration correction not applied, scanner alignment used: "
                         f"{result.reason}")
        elif "implausibly large" in result.reason:
            reference = DESCRIPTIONS.get(result.registered_to, result.registered_to)
            notes.append(f"{modality.upper()}: its correction to the {reference} not applied: {result.reason}")
    return notes
