"""session-56 mutation audit round 15: rules of DCEDiffLib/progress.py (the events behind the Slicer progress bar,
the CLI bar and the batch log) that no earlier test could fail. Plain Python, a fake clock; each test names the
mutation it kills."""

import pytest

from DCEDiffLib.progress import ProgressTracker, TqdmProgress, ProgressEvent


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_stage_shares_add_up_from_zero_to_one_in_stage_order():
    """ProgressTracker: stages in order, each its weight's share. The first stage starts at 0 % and the last one ends
    at 100 %; a stage starts where the one before it ended. Kills the start of a stage taken after adding its own
    weight (G03: the bar would start at the first stage's share and pass 100 %)."""
    tracker = ProgressTracker({"load": 1, "register": 3, "sample": 4}, clock=Clock())
    assert tracker.report("load", 0, 1).fraction == pytest.approx(0.0)
    assert tracker.report("load", 1, 1).fraction == pytest.approx(1 / 8)
    assert tracker.report("register", 0, 5).fraction == pytest.approx(1 / 8)
    assert tracker.report("register", 5, 5).fraction == pytest.approx(4 / 8)
    assert tracker.report("sample", 2, 4).fraction == pytest.approx(6 / 8)
    assert tracker.report("sample", 4, 4).fraction == pytest.approx(1.0)


def test_time_left_extrapolates_the_elapsed_time_over_the_fraction_done():
    """"The time-left estimate extrapolates the elapsed time over the overall fraction done": a quarter done in
    10 s leaves 30 s, half done in 10 s leaves 10 s, all done leaves 0. Kills elapsed * f / (1 - f) (G02)."""
    clock = Clock()
    tracker = ProgressTracker({"register": 1, "sample": 3}, clock=clock)
    clock.now += 10.0
    assert tracker.report("register", 1, 1).remaining == pytest.approx(30.0)
    assert tracker.report("sample", 1, 3).remaining == pytest.approx(10.0)
    assert tracker.report("sample", 3, 3).remaining == pytest.approx(0.0)


def test_the_terminal_bar_never_moves_backwards(capsys):
    """TqdmProgress drives one bar over the whole job: an event with a smaller fraction than one already shown (a
    stage reported again from its start) must not move the bar back. Kills dropping "if position > self._last"
    (G04)."""
    bar = TqdmProgress(desc="test")
    try:
        bar(ProgressEvent("sample", 5, 10, 0.5, 1.0))
        assert bar._bar.n == 500
        bar(ProgressEvent("register", 1, 10, 0.3, 2.0))
        assert bar._bar.n == 500
        bar(ProgressEvent("write", 1, 1, 1.0, 3.0))
        assert bar._bar.n == 1000
    finally:
        bar.close()
