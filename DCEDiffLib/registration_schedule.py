"""Run the registrations of one exam side by side.

Each registration runs its ITK filters on one thread (:data:`DCEDiffLib.registration.REGISTRATION_THREADS`, so that
an exam registered twice gives bit-identical results), which leaves the other cores idle. The series that do not
depend on each other (PD, ADC, T1-pre) are therefore registered concurrently in Python threads — SimpleITK releases
the GIL while a registration executes — and the DCE frames, which are registered through the T1-pre, start as soon
as the T1-pre is done. Every registration computes exactly what it computes alone; only the wall time changes
(docs/performance.md, "The registrations of one exam run side by side").
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Callable, Dict, Mapping, Optional, Sequence

import SimpleITK as sitk

from DCEDiffLib.modalities import TARGET_MODALITIES
from DCEDiffLib.progress import CancelHook, check_cancel
from DCEDiffLib.registration import (REGISTRATION_THREADS, RegistrationResult, identity_result, itk_threads,
                                     register_rigid, register_through)

POLL_SECONDS = 0.2  # how often a cancel request is looked at while registrations run
_process_limit: Optional[int] = None  # set by limit_workers() in worker processes that share the cores


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS says, else the machine's count), at most the
    limit a worker process was given (:func:`limit_workers`)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = max(1, os.cpu_count() or 1)
    return cores if _process_limit is None else max(1, min(cores, _process_limit))


def limit_workers(count: int) -> None:
    """At most ``count`` registrations at a time in this process: for pools of worker processes that each
    preprocess an exam and already share the cores between them."""
    global _process_limit
    _process_limit = max(1, int(count))


def register_series(t2w: sitk.Image, images: Mapping[str, sitk.Image], modalities: Sequence[str],
                    center_lps: Sequence[float], *, self_check: bool = False,
                    should_cancel: Optional[CancelHook] = None,
                    progress: Optional[Callable[[int, int], None]] = None,
                    workers: Optional[int] = None) -> Dict[str, RegistrationResult]:
    """Register each of ``modalities`` (keys of ``images``) to ``t2w``; the DCE frames through the T1-pre when it is
    among them. Returns the results in the order of ``modalities``.

    ``workers``: registrations at a time (default: the cores available; 1 runs them one after the other).
    ``progress(done, total)`` is called in the calling thread as each registration finishes; ``should_cancel`` is
    looked at every :data:`POLL_SECONDS` (a cancel stops waiting at once, raises ``CancelledError`` and drops the
    registrations not yet started; one already running finishes in the background and is discarded). An error
    raised by a registration is raised here, and the registrations not yet started are dropped.
    """
    modalities = list(modalities)
    through_t1pre = [m for m in modalities if m in TARGET_MODALITIES and "t1pre" in modalities]
    # The T1-pre first: the frames wait for it, so it is the critical path.
    first_wave = sorted((m for m in modalities if m not in through_t1pre), key=lambda m: m != "t1pre")
    count = max(1, min(workers or available_cores(), len(first_wave) or 1))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=count, thread_name_prefix="dcediff-registration")
    futures: Dict[str, concurrent.futures.Future] = {}
    results: Dict[str, RegistrationResult] = {}
    finished_cleanly = False
    # Set for the whole schedule (not by each registration in turn), so that concurrent registrations never restore
    # each other's setting.
    with itk_threads(REGISTRATION_THREADS):
        try:
            for modality in first_wave:
                futures[modality] = pool.submit(register_rigid, t2w, images[modality], modality, center_lps,
                                                check=self_check)
            while len(results) < len(modalities):
                check_cancel(should_cancel)
                waiting = [f for m, f in futures.items() if m not in results]
                done, _ = concurrent.futures.wait(waiting, timeout=POLL_SECONDS,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for modality, future in futures.items():
                    if future in done and modality not in results:
                        error = future.exception()
                        if error is not None:
                            raise error
                        results[modality] = future.result()
                        if progress is not None:
                            progress(len(results), len(modalities))
                if "t1pre" in results and through_t1pre and through_t1pre[0] not in futures:
                    for modality in through_t1pre:
                        futures[modality] = pool.submit(register_through, images["t1pre"], results["t1pre"],
                                                        images[modality], modality, center_lps, check=self_check)
            finished_cleanly = True
        finally:
            pool.shutdown(wait=finished_cleanly, cancel_futures=True)
    return {m: results[m] for m in modalities}


def unregistered(modalities: Sequence[str], progress: Optional[Callable[[int, int], None]] = None,
                 should_cancel: Optional[CancelHook] = None) -> Dict[str, RegistrationResult]:
    """Scanner alignment for every series (registration switched off), with the same progress calls."""
    results = {}
    for index, modality in enumerate(modalities):
        check_cancel(should_cancel)
        results[modality] = identity_result(modality, "registration skipped (scanner alignment used)")
        if progress is not None:
            progress(index + 1, len(modalities))
    return results
