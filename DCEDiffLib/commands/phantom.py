"""``dcediff phantom``: generate synthetic prostate mpMRI cases with Tofts DCE (training data, demos, tests)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from DCEDiffLib.commands.common import add_progress_argument, progress_callback, summary_stream


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom", help="generate synthetic multimodal prostate MRI cases (phantom) with Tofts-model DCE",
        description="Writes one folder per case (case_000, case_001, ...) with t2w, pd, adc, t1pre, dce_early, "
                    "dce_late, dce_series (4D), labels and case.json (every generating parameter, the label "
                    "legend, lesions, grids, motion, noise), plus dataset.json. Every series has its own oblique "
                    "grid in one frame of reference. Same seed and domain give identical files. Domain A is "
                    "ProstateX-like; domain B an external site with an endorectal coil (same seed = same patient). "
                    "Each case folder is written atomically. See docs/phantom.md.")
    parser.add_argument("--cases", type=int, default=1, help="number of cases (default 1)")
    parser.add_argument("--domain", default="A", choices=["A", "B"],
                        help="A: ProstateX-like (default); B: external site with endorectal coil, other b-values")
    parser.add_argument("--anatomy", default="procedural",
                        help="anatomy family: procedural (analytic shapes, default; the shipped model is "
                             "trained on it and on prostatex), prostatex (label maps of two real ProstateX exams, "
                             "randomly warped per case) or mixed (each case draws one of the two from its seed)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0); case i uses a seed derived "
                                                            "from it, recorded in case.json")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (new or empty; not a case folder: "
                                                                   "case_000 holds one case)")
    parser.add_argument("--format", default="nifti", choices=["nifti", "dicom", "study"],
                        help="nifti: <modality>.nii.gz (default); dicom: one DICOM series folder per modality; "
                             "study: each case as one whole DICOM study in TCIA ProstateX layout (CASE/study/, "
                             "distractor series included), for dcediff synthesize --study and dcediff dataset")
    parser.add_argument("--no-dce-series", action="store_true",
                        help="leave out the 4D DCE series (dce_early/dce_late/t1pre are still written)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a phantom dataset folder an earlier dcediff phantom wrote: its cases "
                             "are replaced (a user's folder, or a case_NNN folder no phantom wrote, is refused)")
    add_progress_argument(parser)
    parser.set_defaults(func=run, interrupted=interrupted_message)


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.phantom import generate_dataset
    from DCEDiffLib.phantom.generator import check_dataset_request
    from DCEDiffLib.progress import ProgressTracker

    check_dataset_request(args.out, args.cases, args.domain, args.seed, args.format, args.overwrite, args.anatomy)
    out = Path(args.out)
    created = not out.exists()
    was_empty = created or not any(out.iterdir())
    callback, close = progress_callback(args, "phantom")
    tracker = ProgressTracker({"phantom": 1.0}, callback)
    start = time.perf_counter()
    try:
        written = generate_dataset(args.out, args.cases, domain=args.domain, seed=args.seed, fmt=args.format,
                                   progress=tracker.stage_callback("phantom"), overwrite=args.overwrite,
                                   include_series=not args.no_dce_series, anatomy=args.anatomy)
    except KeyboardInterrupt:
        args.interrupted_note = _clean_after_interrupt(out, created, was_empty)
        raise
    except BaseException:  # a full disk, no memory: the same clean-up, so that the same command runs again
        _clean_after_interrupt(out, created, was_empty)
        raise
    finally:
        close()
    seconds = time.perf_counter() - start
    print(f"DCEDiff phantom: wrote {len(written)} case(s), domain {args.domain}, anatomy {args.anatomy}, "
          f"seed {args.seed}, "
          f"format {args.format}, to {args.out}/ in {seconds:.1f} s ({seconds / len(written):.2f} s per case)",
          file=summary_stream(args))
    return 0


def _clean_after_interrupt(out: Path, created: bool, was_empty: bool) -> str:
    """Ctrl-C: a dataset started in a new or empty folder is removed, so that the same command runs again; in a
    folder being overwritten, the finished cases stay (each is whole) and dataset.json is not updated."""
    import shutil

    if created:
        shutil.rmtree(out, ignore_errors=True)
        return f"interrupted; the unfinished dataset was removed ({out} does not exist): re-run the same command"
    if was_empty:
        for child in list(out.iterdir()):
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        return f"interrupted; the unfinished dataset was removed ({out} is empty again): re-run the same command"
    return (f"interrupted; {out}/dataset.json was not updated and only some cases were replaced (each case folder "
            "is whole): re-run the same command with --overwrite to finish")


def interrupted_message(args: argparse.Namespace) -> str:
    return getattr(args, "interrupted_note", None) or "interrupted; no partial output was kept"
