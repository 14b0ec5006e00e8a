"""The registrations of one exam side by side (DCEDiffLib/registration_schedule.py): the same results as one after
the other, the DCE frames through the T1-pre, progress in the calling thread, cancel and errors passed on, and ITK's
thread setting left as it was. Real SimpleITK registrations of the shipped phantom case."""

import threading
import time

import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import CancelledError
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
from DCEDiffLib.registration import StagedRegistration, identity_result
from DCEDiffLib.registration_schedule import register_series, unregistered
from DCEDiffLib.working_grid import field_of_view_center

MODALITIES = ("pd", "adc", "t1pre", "dce_early", "dce_late")


@pytest.fixture(scope="module")
def exam():
    images = {m: sitk.ReadImage(str(SAMPLE_CASE_DIR / f"{m}.nii.gz")) for m in ("t2w",) + MODALITIES}
    return images, field_of_view_center(images["t2w"])


def test_side_by_side_gives_what_one_after_the_other_gives(exam, monkeypatch):
    """With the self-checks as tasks of their own: the same results, checks included, on one worker and on two; the
    frame starts from the T1-pre's correction before the T1-pre's check has run."""
    import DCEDiffLib.registration_schedule as schedule

    images, centre = exam
    checked = ("pd", "t1pre", "dce_early")
    itk_default = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    frame_starts = []
    start_through = schedule.start_through

    def spy(reference, reference_result, *args, **kwargs):
        frame_starts.append(reference_result.self_check)  # None while the T1-pre's check has not run
        return start_through(reference, reference_result, *args, **kwargs)

    monkeypatch.setattr(schedule, "start_through", spy)
    calls = []
    started = time.perf_counter()
    alone = register_series(images["t2w"], images, checked, centre, self_check=True, workers=1)
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    together = register_series(images["t2w"], images, checked, centre, self_check=True, workers=2,
                               progress=lambda done, total: calls.append((done, total, threading.current_thread())))
    side_by_side = time.perf_counter() - started
    assert list(together) == list(checked)
    for modality in checked:
        assert together[modality].transform.GetParameters() == alone[modality].transform.GetParameters(), modality
        first, second = alone[modality].to_dict(), together[modality].to_dict()
        assert first["self_check"].pop("seconds") > 0 and second["self_check"].pop("seconds") > 0, modality
        assert first == second, modality
    assert [r.registered_to for r in together.values()] == ["t2w", "t2w", "t1pre"]
    assert frame_starts == [None, None]  # one worker or two: the frame did not wait for the T1-pre's check
    assert [(d, t) for d, t, _ in calls] == [(i, 3) for i in range(1, 4)]
    assert all(thread is threading.main_thread() for _, _, thread in calls)
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == itk_default
    print(f"one after the other {one_by_one:.1f} s, side by side {side_by_side:.1f} s")


def test_a_cancel_stops_waiting_and_drops_what_has_not_started(exam, monkeypatch):
    import DCEDiffLib.registration_schedule as schedule

    images, centre = exam
    started = []

    def slow(fixed, moving, modality, center, check=False):
        started.append(modality)
        time.sleep(0.5)
        return StagedRegistration(identity_result(modality, "test double: no registration"))

    monkeypatch.setattr(schedule, "start_rigid", slow)
    monkeypatch.setattr(schedule, "start_through", lambda *a, **k: slow(None, None, a[3]))
    done = []
    clock = time.perf_counter()
    with pytest.raises(CancelledError):
        register_series(images["t2w"], images, MODALITIES, centre, workers=1,
                        progress=lambda d, t: done.append(d), should_cancel=lambda: bool(done))
    assert time.perf_counter() - clock < 1.5  # not the 2.5 s of all five
    time.sleep(0.6)
    assert len(started) <= 2 and "dce_early" not in started


def test_an_error_of_one_registration_is_raised(exam, monkeypatch):
    import DCEDiffLib.registration_schedule as schedule

    images, centre = exam

    def broken(fixed, moving, modality, center, check=False):
        if modality == "adc":
            raise RuntimeError("adc: test double failure")
        return StagedRegistration(identity_result(modality, "test double: no registration"))

    monkeypatch.setattr(schedule, "start_rigid", broken)
    with pytest.raises(RuntimeError, match="adc: test double failure"):
        register_series(images["t2w"], images, ("pd", "adc", "t1pre"), centre, workers=2)


def test_without_registration_every_series_keeps_the_scanner_alignment():
    calls = []
    results = unregistered(MODALITIES, progress=lambda d, t: calls.append((d, t)))
    assert list(results) == list(MODALITIES) and not any(r.applied for r in results.values())
    assert calls == [(i, 5) for i in range(1, 6)]


def test_a_worker_process_limit_caps_the_registrations_at_a_time(monkeypatch):
    import DCEDiffLib.registration_schedule as schedule

    monkeypatch.setattr(schedule, "_process_limit", None)
    cores = schedule.available_cores()
    schedule.limit_workers(1)
    assert schedule.available_cores() == 1
    schedule.limit_workers(cores + 5)
    assert schedule.available_cores() == cores
