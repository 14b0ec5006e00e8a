"""The end of an interactive run (DCEDiffLogic._poll → _finish → showResult → the widget's onCompleted) while Slicer
handles events: ``showResult`` calls ``slicer.app.processEvents()`` so that the layout manager builds the comparison
views before they are fitted, and a click that waited in the event queue while the results were being read (the
panel is frozen meanwhile) is delivered there. The Apply button still reads "Cancel" at that moment.

Before the fix the logic had already let go of the run (``isRunning`` False) before loading the results, so that
click went to the "start" branch of onApplyButton: a second engine run on the same inputs started (minutes of CPU or
GPU, a second set of result nodes later), the click meant to stop the first one. onCompleted then hid the new run's
progress bar and reported the first run as done while the second one went on.

Real MRML nodes, real files, real subprocesses, Slicer's own ``DCEDiffLogic`` and widget code. Stand-ins, for what
the slicer-core wheel has no Qt for: the Qt stand-ins of Testing/test_slicer_module.py (``make_widget``: the panel's
widgets and the parameter node), ``TimerStandIn`` (qt.QTimer), ``AppStandIn`` (``slicer.app``: a layout manager,
the temporary folder, and ``processEvents`` delivering the queued click), ``slicer.util.resetSliceViews`` (needs the
slice widgets) and ``slicer.util.tryWithErrorDisplay`` (a message box)."""

import sys
import time
import types
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import process_runner as pr  # noqa: E402
from DCEDiffSlicerLib import scene_io  # noqa: E402
from slicer_stand_ins import ErrorDisplayStandIn, engine_launcher  # noqa: E402
from test_slicer_contract import result_folder  # noqa: E402
from test_slicer_display import scene  # noqa: E402,F401  (the scene as Slicer's start-up sets it up)
from test_slicer_module import TimerStandIn, make_widget, modules  # noqa: E402,F401  (the Qt stand-ins)

SLEEPING_ENGINE = "import time; print('started', flush=True); time.sleep(120)"


def test_a_click_on_cancel_delivered_while_the_results_are_shown_starts_no_second_run(modules, monkeypatch, tmp_path):
    """A queued click on "Cancel" that ``showResult``'s processEvents delivers must not start the engine again."""
    DCEDiff, _ = modules
    widget, p = make_widget(DCEDiff, monkeypatch)
    launched = []
    monkeypatch.setattr(DCEDiff, "_launchInSlicer", engine_launcher(SLEEPING_ENGINE, launched))
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, parent=None, mode="ask": None)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", ErrorDisplayStandIn())
    monkeypatch.setattr(slicer.util, "resetSliceViews", lambda: None)
    clicks = []

    def processEvents():  # the click that waited in the queue while the result files were read
        if not clicks:
            clicks.append(widget.ui.applyButton.text)
            widget.onApplyButton()

    AppStandIn = types.SimpleNamespace(layoutManager=lambda: object(), processEvents=processEvents,
                                       temporaryPath=str(tmp_path / "tmp"), slicerHome="")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(slicer, "app", AppStandIn, raising=False)

    work = tmp_path / "tmp" / "DCEDiff-run"
    t2w = result_folder(work / "out")  # what the engine wrote; t2w: the T2W the results are named after
    p.t2w, p.pd, p.adc, p.t1pre = t2w, *(scene_io.image_to_volume_node(scene_io.volume_node_to_image(t2w), name)
                                         for name in ("PD", "ADC", "T1"))
    runner = pr.ProcessRunner([sys.executable, "-c", "print('done')"]).start()
    runner.wait(timeout=60)  # the engine has ended; the next timer tick sees it
    widget.logic._job = DCEDiff._Job(runner, work, t2w, time.monotonic(), True, widget.onCompleted, TimerStandIn())
    widget._updateApplyButton()
    widget.ui.progressBar.setVisible(True)
    try:
        widget.logic._poll()  # the tick
        assert clicks == ["Cancel"], "the click was not delivered while the button read Cancel"
        assert launched == [], "a click on Cancel while the results were shown started a second engine run"
        assert not widget.logic.isRunning
        assert widget.ui.statusLabel.text.startswith("Done in"), widget.ui.statusLabel.text
        assert widget.ui.applyButton.text == "Apply" and widget.ui.progressBar.visible is False
        synthetic = [slicer.mrmlScene.GetNthNode(i) for i in range(slicer.mrmlScene.GetNumberOfNodes())]
        assert sum(n.GetAttribute(scene_io.ROLE_ATTRIBUTE) == "synthetic_early" for n in synthetic) == 1
        assert not work.exists()
    finally:
        for process in launched:
            process.kill()
            process.wait(timeout=30)
        if widget.logic._job is not None:
            widget.logic.shutdown()
