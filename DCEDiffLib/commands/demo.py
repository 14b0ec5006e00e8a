"""``dcediff demo``: the main job on the shipped phantom case with the shipped model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from DCEDiffLib import defaults
from DCEDiffLib.commands.common import (add_progress_argument, progress_callback, registration_words,
                                         summary_stream)
from DCEDiffLib.precision import PRECISION_HELP, PRECISIONS

MODALITY_FILES = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late", "labels")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the whole pipeline on the shipped phantom case with the shipped model",
        description="Loads the shipped phantom exam (every series on its own grid), registers, synthesizes "
                    "early and late DCE with the shipped model and the default sampler, and writes NIfTI "
                    "results (working grid, and the T2W grid in t2w_grid/), residuals against the phantom's "
                    "acquired DCE, the expected-error map, metrics.json, report.png, synthesis.json and "
                    "demo_summary.txt. Re-running replaces the previous demo output.")
    parser.add_argument("--out", type=Path, default=Path("out/demo"),
                        help="result folder, replaced at each run (default: out/demo under the current folder)")
    parser.add_argument("--case", type=Path, help="another case folder (default: the shipped phantom case)")
    parser.add_argument("--model", help="default: the shipped model")
    parser.add_argument("--samples", type=int, default=defaults.DEMO_SAMPLES,
                        help="samples averaged (default 1, as dcediff synthesize; ≥ 2 also writes their spread)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's own count)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.atomic import SYNTHESIS_RECORD, check_output_folder
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
    from DCEDiffLib.pipeline import synthesize_to_folder
    from DCEDiffLib.training.case_data import find_case_inputs

    # the demo always replaces its previous output (it has no --overwrite); anything else in --out is refused first
    check_output_folder(args.out, overwrite=True, records=(SYNTHESIS_RECORD,),
                        replace_rule="the demo replaces only a previous synthesis output (its own, or dcediff "
                                     "synthesize's)")
    case_dir = args.case or SAMPLE_CASE_DIR
    inputs = {k: str(v) for k, v in find_case_inputs(Path(case_dir)).items() if k in MODALITY_FILES}
    missing = [m for m in ("t2w", "pd", "adc", "t1pre") if m not in inputs]
    if missing:
        raise InputError(f"demo case {case_dir}: missing {', '.join(missing)}")
    stream = summary_stream(args)
    print(f"DCEDiff demo: case {case_dir}\n  inputs: {', '.join(sorted(inputs))}", file=stream)
    note = procedural_phantom_note(Path(case_dir))
    if note:
        print(note, file=stream)
    callback, close = progress_callback(args, "demo")
    try:
        output = synthesize_to_folder(inputs, args.out, overwrite=True, t2w_grid=True, progress=callback,
                                      model_path=args.model, sampler="dpmpp", steps=args.steps,
                                      samples=args.samples, seed=args.seed, device=args.device,
                                      precision=args.precision)
    finally:
        close()
    lines = [f"done in {output.provenance['total_seconds']} s ({output.provenance['nfe']} network evaluations "
             f"on {output.provenance['device']}, {output.provenance['precision']})",
             f"  precision {output.provenance['precision']}: "
             f"{(output.precision or {}).get('reason', 'as requested')}",
             "  registered to T2W: " + "; ".join(f"{m}: {text}" for m, text in
                                                 registration_words(output.case.registration).items()),
             f"  wrote {args.out}/: " + ", ".join(written_files(Path(args.out)))]
    if output.metrics:
        for target in ("early", "late"):
            whole = output.metrics.get(target, {}).get("whole", {})
            lines.append(f"  {target}: {metric_line(whole)} (whole grid, intensities scaled to [0, 1])")
    print("\n".join(lines), file=stream)
    (Path(args.out) / "demo_summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


def procedural_phantom_note(case_dir: Path) -> Optional[str]:
    """A line saying what to expect of the crop on a procedural DCEDiff phantom (the shipped case was one until
    2026-12-07): the prostate model does not recognise its drawn gland (docs/phantom.md), so the warning about the
    field-of-view centre that follows is expected there. None for any other case."""
    from DCEDiffLib.data_source import phantom_case_params

    params = phantom_case_params(case_dir)
    if params is None or params.get("anatomy_family", "procedural") != "procedural":
        return None
    return ("  a procedural phantom: the prostate model does not recognise its drawn gland, so expect the crop to be "
            "centred on the T2W's field of view, where the phantom's gland lies (docs/phantom.md, \"Why TAPS finds "
            "no procedural gland\")")


def written_files(out: Path) -> list:
    """What the demo wrote, described from the folder itself (e.g. no uncertainty maps with --samples 1)."""
    names = {p.name for p in out.iterdir()}
    described = []
    for pattern, text in (("synthetic_", "synthetic_early/late.nii.gz (working grid 160x160x16)"),
                          ("uncertainty_", "uncertainty_early/late.nii.gz"),
                          ("residual_", "residual_early/late.nii.gz"),
                          ("expected_error_", "expected_error_early/late.nii.gz")):
        if any(n.startswith(pattern) for n in names):
            described.append(text)
    if "t2w_grid" in names:
        described.append("t2w_grid/ (on the T2W grid)")
    described += [n for n in ("metrics.json", "report.png", "synthesis.json") if n in names]
    return described


def metric_line(whole: dict) -> str:
    """'PSNR 30.92 dB, SSIM 0.892, MAE 0.0231' from one target's whole-grid metrics, each value as metrics.md and
    report.png write it (``tables.format_value``)."""
    from DCEDiffLib.evaluation.tables import format_value, format_with_unit

    return (f"PSNR {format_with_unit(whole.get('psnr'), 'psnr')}, SSIM {format_value(whole.get('ssim'), 'ssim')}, "
            f"MAE {format_value(whole.get('mae'), 'mae')}")
