"""session-56 mutation audit round 15: rules of DCEDiff/DCEDiffSlicerLib/process_runner.py (the engine process, its
output, cancel and time-out) that no earlier test could fail. Real subprocesses of this Python (no engine, no
../shared data); each test names the mutation it kills."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import process_runner as pr  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_process import kill_reported_grandchildren  # noqa: E402


def test_time_left_switches_unit_at_the_minute_and_the_hour():
    """format_seconds: '45 s', '3 min 05 s', '1 h 02 min'. 60 s is one minute, 3600 s one hour. Kills
    "seconds < 60" -> "seconds <= 60" (P07)."""
    assert pr.format_seconds(59) == "59 s"
    assert pr.format_seconds(60) == "1 min 00 s"
    assert pr.format_seconds(3599) == "59 min 59 s"
    assert pr.format_seconds(3600) == "1 h 00 min"
    assert pr.format_seconds(-5) == "0 s"


def test_the_log_tail_and_the_error_keep_the_last_lines_of_the_output():
    """RunResult.log_tail: "the last lines of its output"; an engine that dies without an error line is reported
    with its last output. Kills keeping the first tail_lines lines instead of the last (P08)."""
    child = "import sys\nfor i in range(8): print(f'line {i}', flush=True)\nsys.exit(1)"
    result = pr.ProcessRunner([sys.executable, "-c", child], tail_lines=3).start().wait(timeout=60)
    assert result.returncode == 1 and not result.ok and not result.cancelled
    assert result.log_tail == ["line 5", "line 6", "line 7"]
    assert result.error.startswith("the DCEDiff engine stopped with exit code 1; last output:")
    assert result.error.endswith("line 7") and "line 0" not in result.error


def test_the_dce_pre_contrast_frame_may_be_the_t1pre_itself_but_no_other_roles_volume():
    """same_volume_message: the DCE's own pre-contrast frame "may be the T1-pre itself, not another role's volume".
    Kills dropping that exception (P12: the T1-pre picked as the frame, what "Fill from study" does when the T1-pre
    is the DCE's last frame before contrast, would be refused)."""
    t1pre, t2w, early, late = object(), object(), object(), object()
    nodes = {"t2w": t2w, "t1pre": t1pre, "dce_early": early, "dce_late": late}
    assert pr.same_volume_message({**nodes, "dce_baseline": t1pre}) is None
    message = pr.same_volume_message({**nodes, "dce_baseline": t2w})
    assert message is not None and message.startswith("T2W and acquired DCE pre-contrast frame: the same volume")


class _StuckHandle:
    """The launched process as a handle that never reports an end (poll() None, as a launcher whose child will not
    die): the real child is killed by the tree kill, its pipe ends, but the handle still says running."""

    def __init__(self, real):
        self.real, self.pid, self.stdout, self.returncode = real, real.pid, real.stdout, None

    def poll(self):
        return None


def _stuck_launcher(launched: list):
    """A launch function whose process (a real sleeping Python, appended to ``launched``) cannot be killed through
    its handle (``_StuckHandle``): a tree that will not die."""

    def launch(cmd, cwd=None, env_update=None):
        real = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        launched.append(real)
        return _StuckHandle(real)

    return launch


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_a_tree_that_will_not_die_ends_the_wait_as_cancelled_or_timed_out(how):
    """wait(): after a cancel the result is cancelled, after the time-out a time-out error, "either way this returns
    within kill_grace seconds of the kill, even if the process ... does not go away". Kills the give-up path
    reporting a cancelled run as not cancelled (P18: the module would show a failure for the user's own cancel)."""
    launched = []
    launch = _stuck_launcher(launched)
    runner = pr.ProcessRunner(["engine"], launch=launch, kill_grace=0.5).start()
    started = time.monotonic()
    try:
        if how == "cancel":
            result = runner.wait(timeout=30, should_cancel=lambda: time.monotonic() - started > 0.3)
            assert result.cancelled and not result.timed_out and result.error is None
        else:
            result = runner.wait(timeout=0.3)
            assert result.timed_out and not result.cancelled and "could not be stopped" in result.error
        assert not result.ok
        assert time.monotonic() - started < 10
    finally:
        launched[0].kill()
        launched[0].wait()


def test_polling_after_a_cancel_whose_tree_will_not_die_ends_the_run_as_cancelled():
    """poll() is the module's path (a QTimer calls DCEDiffLogic._poll every 200 ms, nothing calls wait()): after
    Cancel, or the cancel of a scene close, a process that does not go away (a launcher whose child hangs in a GPU
    driver call) kept poll() returning None for good; the panel said "Cancelling…" with its inputs locked until
    Slicer was restarted. The same give-up as wait(): a cancelled result within kill_grace seconds of the kill."""
    launched = []
    launch = _stuck_launcher(launched)
    runner = pr.ProcessRunner(["engine"], launch=launch, kill_grace=0.5).start()
    try:
        runner.cancel()
        cancelled = time.monotonic()
        result = None
        while result is None and time.monotonic() - cancelled < 10:
            result = runner.poll()
            time.sleep(0.05)
        assert result is not None, "poll() still reports a running engine 10 s after the cancel"
        assert result.cancelled and not result.timed_out and result.error is None and not result.ok
        assert not runner.running
    finally:
        launched[0].kill()
        launched[0].wait()


def test_the_windows_tree_kill_opens_no_console_window(monkeypatch):
    """kill_process_tree on Windows runs taskkill.exe, a console program, from Slicer, a GUI program: without
    CREATE_NO_WINDOW Windows gives it a new console window, which flashed on every Cancel, scene close or module
    reload mid-run (Slicer's launchConsoleProcess hides the window of every process it starts, util.py: "Hide
    console window (only needed on Windows)"; default_launch passes CREATE_NO_WINDOW). Stand-ins, as this runs on
    Linux: ``os.name`` "nt", ``subprocess.run`` recording the call, no process listing (descendant_pids)."""
    calls = []
    monkeypatch.setattr(pr, "descendant_pids", lambda pid: [])
    monkeypatch.setattr(pr.subprocess, "run", lambda args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(pr.os, "name", "nt")
    killed = pr.kill_process_tree(4321)
    monkeypatch.undo()
    assert killed == [4321]
    assert [args for args, _ in calls] == [["taskkill", "/F", "/T", "/PID", "4321"]]
    assert calls[0][1].get("creationflags", 0) & 0x08000000, "taskkill is started with a console window"


ESCAPED_HOLDER = r"""
import os, sys, time
if os.fork() == 0:             # a child that forks a grandchild and exits: the grandchild is re-parented, out of
    if os.fork() == 0:         # the engine's tree, and keeps the output pipe open
        os.setsid()
        print(f"grandchild {os.getpid()}", flush=True)
        time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork")
def test_a_timed_out_engine_that_died_is_stopped_not_undying_while_a_stray_holds_its_output():
    """poll() gives up on a killed tree only while the process has not ended: an engine killed at its time-out that
    did end, whose output pipe a stray process outside its tree keeps open, ends as 'was stopped' (with the advice
    to run fewer steps) once the output grace has passed, not as 'could not be stopped'. Mutation audit: kills the
    'not ended' condition dropped from poll()'s give-up."""
    runner = pr.ProcessRunner([sys.executable, "-c", ESCAPED_HOLDER], kill_grace=0.5)
    try:
        runner.start()
        deadline = time.monotonic() + 10
        while not any(line.startswith("grandchild ") for line in runner._tail) and time.monotonic() < deadline:
            runner.poll()
            time.sleep(0.05)
        result = runner.wait(timeout=0.5)
        assert result.timed_out and not result.cancelled and not result.ok
        assert "was stopped" in result.error and "could not be stopped" not in result.error
    finally:
        kill_reported_grandchildren(runner)


def _stuck_runner(launched):
    return pr.ProcessRunner(["engine"], launch=_stuck_launcher(launched), kill_grace=0.5).start()


def test_cancelling_again_does_not_restart_the_wait_for_a_tree_that_will_not_die():
    """cancel() notes when it first killed a running tree: the GUI's further cancels (a second click, the scene
    close's cancel) do not postpone poll()'s give-up, which comes kill_grace seconds after the first kill. Stand-in:
    a launcher handle that never reports an end (_StuckHandle). Mutation audit: kills the kill time reset by every
    cancel()."""
    launched = []
    runner = _stuck_runner(launched)
    try:
        runner.cancel()
        first = time.monotonic()
        result = None
        while result is None and time.monotonic() - first < 5:
            time.sleep(0.1)
            runner.cancel()
            result = runner.poll()
        assert result is not None and result.cancelled, "poll() kept waiting while cancel() was called again"
        assert time.monotonic() - first < 2
    finally:
        launched[0].kill()
        launched[0].wait()


def test_poll_does_not_give_up_on_a_tree_killed_a_moment_ago():
    """poll() gives up on a killed tree only after kill_grace seconds: right after cancel(), a process that still
    says running is waited for (None), as it may yet end with its exit status and last output. Stand-in: the
    never-ending handle (_StuckHandle). Mutation audit: kills the give-up made at once after the kill."""
    launched = []
    runner = _stuck_runner(launched)
    try:
        runner.cancel()
        assert runner.poll() is None
    finally:
        launched[0].kill()
        launched[0].wait()
