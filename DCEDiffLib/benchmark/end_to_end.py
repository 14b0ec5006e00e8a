"""One volume end to end, as a user runs it: ``pipeline.synthesize_to_folder`` on a case folder.

Loading the model, reading the series, registration, sampling (default sampler), mapping back, and writing every
output (NIfTI, metrics, report figure) are all inside the timed block, with peak memory measured around it.
Timed twice: with the acquired DCE and the labels beside the inputs (the evaluation's job: the acquired series are
registered too, and residuals and metrics written), and with the four non-contrast inputs alone (the radiologist's
job: no gadolinium, no labels, so the prostate is found by the pipeline itself). Each is a first look at the exam:
the prostate model's gland mask is computed afresh (:func:`~DCEDiffLib.prostate_localization.computed_afresh`), as
on a user's first run, not taken from the cache an earlier run of the same case left (a cached mask took the model's
2.5–5 s out of the timings until 2026-12-07). The benchmark runs each in a fresh process
(:func:`time_end_to_end_in_fresh_process`), as a user's command runs: in a process that had run it before, the
sample case ran 1.8 s faster (torch imported, kernels and the prostate model's session warm; docs/performance.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from DCEDiffLib import defaults
from DCEDiffLib.benchmark.memory import PeakMemory

CASE_FILES = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late", "labels")
INPUT_FILES = ("t2w", "pd", "adc", "t1pre")  # what a user without gadolinium has


def time_end_to_end(case_dir: Path, out_dir: Path, model_path: Optional[str],
                    sampler: str = defaults.DEFAULT_SAMPLER, steps: Optional[int] = None,
                    samples: int = defaults.DEFAULT_SAMPLES, seed: int = 0, device: str = "auto",
                    with_acquired: bool = True, case_source: Optional[str] = None) -> dict:
    """Run ``synthesize_to_folder`` once on ``case_dir`` into ``out_dir`` and time it.

    ``with_acquired`` False: the four non-contrast inputs only (:data:`INPUT_FILES`), as a user without gadolinium
    runs it; True: the acquired DCE and the labels too (:data:`CASE_FILES`). ``case_source``: where the case comes
    from, in words, recorded beside its name.

    ``steps`` None: the model's own count. Returns wall seconds, the sampling seconds the pipeline itself recorded,
    the rest (load, registration, writing), the seconds of each stage (``stage_seconds``) and of the prostate model
    inside the register stage (``prostate_seconds``), network evaluations, device/precision and peak memory.
    """
    from DCEDiffLib.pipeline import synthesize_to_folder
    from DCEDiffLib.prostate_localization import computed_afresh
    from DCEDiffLib.training.case_data import find_case_inputs

    wanted = CASE_FILES if with_acquired else INPUT_FILES
    inputs = {k: str(v) for k, v in find_case_inputs(Path(case_dir)).items() if k in wanted}
    stage_starts: dict = {}  # stage → seconds since the start when the pipeline first reported it
    with PeakMemory(device if str(device).startswith("cuda") else "cpu") as peak:
        start = time.perf_counter()

        def note_stage(event) -> None:
            stage_starts.setdefault(event.stage, time.perf_counter() - start)

        with computed_afresh():
            output = synthesize_to_folder(inputs, Path(out_dir), overwrite=True, model_path=model_path,
                                          sampler=sampler, steps=steps, samples=samples, seed=seed, device=device,
                                          progress=note_stage)
        seconds = time.perf_counter() - start
    provenance = output.provenance
    sampling = float(provenance.get("sampling_seconds", 0.0))
    return {"seconds": round(seconds, 3), "sampling_seconds": round(sampling, 3),
            "other_seconds": round(seconds - sampling, 3), "nfe": provenance.get("nfe"),
            "sampler": sampler, "steps": provenance.get("steps"), "samples": samples,
            "device": provenance.get("device"),
            "precision": provenance.get("precision"), "case": Path(case_dir).name,
            "case_source": case_source, "memory": peak.result(),
            "slices": int(output.synthetic["early"].GetSize()[2]), "extrapolated": False,
            "inputs": sorted(inputs),
            "stage_seconds": stage_seconds(stage_starts, seconds),
            # inside the register stage: the prostate model's look at the T2W (None where it did not run)
            "prostate_seconds": getattr(output.case, "crop_centre", {}).get("prostate_seconds")}


def stage_seconds(starts: dict, total: float) -> dict:
    """Seconds spent in each stage (load, register, sample, write: the pipeline's progress stages), from the time
    each was first reported to the next stage's start; the last runs to ``total``. Where the time beside sampling
    goes, which ``other_seconds`` alone does not say."""
    ordered = sorted(starts.items(), key=lambda item: item[1])
    ends = [t for _, t in ordered[1:]] + [total]
    return {name: round(end - begin, 3) for (name, begin), end in zip(ordered, ends)}


def time_end_to_end_in_fresh_process(case_dir: Path, out_dir: Path, model_path: Optional[str], **options) -> dict:
    """:func:`time_end_to_end` in a new Python process (``spawn``), so that no kernel, model session or cache that
    this process has warmed shortens the run: a first look, as ``dcediff synthesize`` or Slicer's first Apply gets
    it: the pipeline's module is imported before the timed block, torch and what else it imports lazily inside it,
    as on a user's first run. Errors are raised here."""
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        run = pool.submit(_timed_in_child, Path(case_dir), Path(out_dir), model_path, options).result()
    return dict(run, fresh_process=True)


def _timed_in_child(case_dir: Path, out_dir: Path, model_path: Optional[str], options: dict) -> dict:
    # looked up by name in the child, which imported this module afresh
    return time_end_to_end(case_dir, out_dir, model_path, **options)
