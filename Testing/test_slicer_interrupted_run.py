"""DCEDiffLogic.process in blocking mode (the batch script, tests) interrupted while it waits for the engine: Ctrl-C
(KeyboardInterrupt; the batch script then exits 3) or a progress callback that raises (print to a closed pipe).
The engine must be killed, the logic must not stay "running" and its temporary folder must go; before the fix the
engine went on alone (after the batch's Slicer had exited: an orphan on the CPU or GPU), ``isRunning`` stayed True
(every later process() raised "already running") and the inputs' copies stayed in Slicer's temporary folder.
Qt stand-ins of Testing/test_slicer_module.py; real MRML nodes; a real child process stands in for the engine."""

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slicer_stand_ins import engine_launcher  # noqa: E402
from test_slicer_module import modules, scene  # noqa: E402,F401  (fixtures)

ENGINE_STAND_IN = ("import json, sys, time\n"
                   "print('DCEDIFF_PROGRESS ' + json.dumps({'stage': 'load', 'step': 0, 'total': 1, 'fraction': 0.0,"
                   " 'elapsed': 0.0}), flush=True)\n"
                   "time.sleep(120)\n")


def volume(name, value):
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, np.full((4, 5, 6), value, dtype=np.float32))
    return node


def assert_engine_ended_and_nothing_left(engine, temporary) -> None:
    """The engine process ends within 15 s, and Slicer's temporary folder holds no copy of the inputs."""
    deadline = time.monotonic() + 15
    while engine.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.poll() is not None, "the engine is still running"
    assert list(temporary.iterdir()) == [], "the temporary folder with the inputs' copies is left behind"


def kill_left_running(processes) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, BrokenPipeError])
def test_an_interrupted_blocking_run_kills_the_engine_and_leaves_nothing(modules, monkeypatch, tmp_path, interruption):
    DCEDiff, _ = modules
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(tmp_path), slicerHome=""),
                        raising=False)
    started = []
    monkeypatch.setattr(DCEDiff, "_launchInSlicer", engine_launcher(ENGINE_STAND_IN, started))

    def progress(event):
        raise interruption()

    logic = DCEDiff.DCEDiffLogic()
    try:
        with pytest.raises(interruption):
            logic.process(volume("t2w", 1), volume("pd", 2), volume("adc", 3), volume("t1pre", 4), device="cpu",
                          progressCallback=progress)
        assert not logic.isRunning
        assert_engine_ended_and_nothing_left(started[0], tmp_path)
    finally:
        kill_left_running(started)


def test_an_interrupt_while_the_inputs_are_copied_leaves_no_copies(modules, monkeypatch, tmp_path):
    """Ctrl-C (or the batch script's SIGTERM, turned into KeyboardInterrupt) while process() writes the inputs'
    copies, seconds for a large series, before the engine starts: the clean-up caught Exception only, so the
    copies of the patient's volumes written so far stayed in Slicer's temporary folder (Slicer never empties it).
    Stand-in: the second copy's write raises KeyboardInterrupt (the signal arriving then)."""
    DCEDiff, _ = modules
    from DCEDiffSlicerLib import scene_io

    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(tmp_path), slicerHome=""),
                        raising=False)
    write = scene_io.write_volume_node
    written = []

    def interrupted_write(node, path, name=None):
        if written:
            raise KeyboardInterrupt()
        written.append(write(node, path, name))
        return written[-1]

    monkeypatch.setattr(scene_io, "write_volume_node", interrupted_write)
    logic = DCEDiff.DCEDiffLogic()
    with pytest.raises(KeyboardInterrupt):
        logic.process(volume("t2w", 1), volume("pd", 2), volume("adc", 3), volume("t1pre", 4), device="cpu")
    assert len(written) == 1 and not logic.isRunning
    assert list(tmp_path.iterdir()) == [], "the copies of the inputs written before the interrupt are left behind"


def test_an_interrupt_right_after_the_engine_started_kills_it_and_leaves_no_copies(modules, monkeypatch, tmp_path):
    """Ctrl-C (or the batch script's SIGTERM) that arrives inside ProcessRunner.start(), after the engine was
    launched and before process() holds the job: the clean-up kills the engine's tree too, not only the copies.
    Stand-ins: a real child process for the engine; the output reader's thread start raises KeyboardInterrupt (the
    signal arriving then). Mutation audit: kills the started runner not cancelled in process()'s clean-up."""
    import threading

    DCEDiff, _ = modules
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(tmp_path), slicerHome=""),
                        raising=False)
    started = []
    monkeypatch.setattr(DCEDiff, "_launchInSlicer", engine_launcher(ENGINE_STAND_IN, started))
    real_start = threading.Thread.start

    def start(thread):
        if thread.name == "DCEDiff-output-reader":
            raise KeyboardInterrupt()
        return real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    logic = DCEDiff.DCEDiffLogic()
    try:
        with pytest.raises(KeyboardInterrupt):
            logic.process(volume("t2w", 1), volume("pd", 2), volume("adc", 3), volume("t1pre", 4), device="cpu")
        assert len(started) == 1 and not logic.isRunning
        assert_engine_ended_and_nothing_left(started[0], tmp_path)
    finally:
        kill_left_running(started)
