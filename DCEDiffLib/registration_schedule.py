"""Run the registrations of one exam side by side.

Each registration runs its ITK filters on one thread (:data:`DCEDiffLib.registration.REGISTRATION_THREADS`, so that
an exam registered twice gives bit-identical results), which leaves the other cores idle. The series that do not
depend on each other (PD, ADC, T1-pre) are therefore registered concurrently in Python threads — SimpleITK releases
the GIL while a registration executes — and the DCE frames, which are registered through the T1-pre, start as soon
as the T1-pre's correction is done. A self-check is a task of its own after its correction. Every registration
computes exactly what it computes alone; only the wall time changes (docs/performance.md, "The registrations of one
exam run side by side", "Self-checks as tasks of their own").
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Callable, Dict, Mapping, Optional, Sequence

import SimpleITK as sitk

from DCEDiffLib.modalities import TARGET_MODALITIES
from DCEDiffLib.progress import CancelHook, check_cancel
from DCEDiffLib.registration import (REGISTRATION_THREADS, RegistrationResult, StagedRegistration, identity_result,
                                     itk_threads, start_rigid, start_through, stop_when)

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

    Each registration is one task and, with ``self_check``, its check a second one, queued when the correction is
    done (:class:`~DCEDiffLib.registration.StagedRegistration`): the frames wait for the T1-pre's correction only,
    and the checks fill the cores while other corrections run. Corrections go before checks, the T1-pre's first
    and the frames' next (the critical path). Every task computes what it computes alone, so the results do not
    depend on the order (docs/performance.md, "Self-checks as tasks of their own").

    ``workers``: tasks at a time (default: the cores available; 1 runs them one after the other).
    ``progress(done, total)`` is called in the calling thread as each series is done (its check included);
    ``should_cancel`` is looked at every :data:`POLL_SECONDS` (a cancel stops waiting at once, raises
    ``CancelledError`` and drops the tasks not yet started; those running are stopped at their optimiser's next
    iteration, :func:`~DCEDiffLib.registration.stop_when`, and end in the background within a fraction of a second).
    A Ctrl-C (KeyboardInterrupt) while waiting stops them the same way. An error raised by a task is raised here,
    and the tasks not yet started are dropped.
    """
    modalities = list(modalities)
    through_t1pre = [m for m in modalities if m in TARGET_MODALITIES and "t1pre" in modalities]
    ready = [(_priority(m, "correction", through_t1pre), m, "correction") for m in modalities
             if m not in through_t1pre]
    count = max(1, min(workers or available_cores(), len(modalities) or 1))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=count, thread_name_prefix="dcediff-registration")
    running: Dict[concurrent.futures.Future, tuple] = {}
    staged: Dict[str, StagedRegistration] = {}
    results: Dict[str, RegistrationResult] = {}
    finished_cleanly = False
    stop = threading.Event()  # set when the schedule ends early: the running registrations stop too

    def submit(task, *args, **kwargs) -> concurrent.futures.Future:
        return pool.submit(_stoppable, stop, task, *args, **kwargs)

    # Set for the whole schedule (not by each registration in turn), so that concurrent registrations never restore
    # each other's setting.
    with itk_threads(REGISTRATION_THREADS):
        try:
            while len(results) < len(modalities):
                check_cancel(should_cancel)
                ready.sort()
                while ready and len(running) < count:
                    _, modality, kind = ready.pop(0)
                    if kind == "check":
                        future = submit(staged[modality].finish)
                    elif modality in through_t1pre:
                        future = submit(start_through, images["t1pre"], staged["t1pre"].result,
                                        images[modality], modality, center_lps, check=self_check)
                    else:
                        future = submit(start_rigid, t2w, images[modality], modality, center_lps,
                                        check=self_check)
                    running[future] = (modality, kind)
                if not running:  # nothing runs and nothing can start: a task was lost (a bug, not an input error)
                    raise RuntimeError(f"registration schedule stalled with {sorted(set(modalities) - set(results))} "
                                       "not done")
                done, _ = concurrent.futures.wait(list(running), timeout=POLL_SECONDS,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for future in [f for f in running if f in done]:
                    modality, kind = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        raise error
                    if kind == "correction":
                        staged[modality] = future.result()
                        if modality == "t1pre":  # the frames need the T1-pre's correction, not its check
                            ready += [(_priority(m, "correction", through_t1pre), m, "correction")
                                      for m in through_t1pre]
                        if staged[modality].finish is not None:
                            ready.append((_priority(modality, "check", through_t1pre), modality, "check"))
                            continue
                        results[modality] = staged[modality].result
                    else:
                        results[modality] = future.result()
                    if progress is not None:
                        progress(len(results), len(modalities))
            finished_cleanly = True
        finally:
            if not finished_cleanly:  # a cancel, a Ctrl-C or an error: the running registrations stop as well
                stop.set()
            pool.shutdown(wait=finished_cleanly, cancel_futures=True)
    return {m: results[m] for m in modalities}


def _stoppable(stop: threading.Event, task, *args, **kwargs):
    """``task(*args, **kwargs)`` in a pool thread, its registrations stopped once ``stop`` is set."""
    with stop_when(stop):
        return task(*args, **kwargs)


def _priority(modality: str, kind: str, through_t1pre: Sequence[str]) -> tuple:
    """Sort key of a ready task: corrections before checks; the T1-pre's correction first and the frames' next
    (each frame's check waits for its correction, which waits for the T1-pre's). Among the checks the T1-pre's goes
    first, then the frames' (the longest), so that the last tasks are short ones: on a patient whose T1-pre took
    twice its usual time, its check left for the end ran alone for 2.8 s while the other core idled."""
    order = 0 if modality == "t1pre" else 1 if modality in through_t1pre else 2
    return (0 if kind == "correction" else 1, order)


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
