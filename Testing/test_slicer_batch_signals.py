"""DCEDiffBatch.py interrupted by a signal while the engine runs, as Slicer runs it.

Slicer maps SIGINT back to the default action after Python starts (CTK ``ctkAbstractPythonManager::initPythonQt``:
"Python maps SIGINT (control-c) to its own handler. We will remap it to the default", ``signal(SIGINT, SIG_DFL)``;
again in Slicer's ``qSlicerAbstractModuleFactoryManager::instantiateModules``), and SIGTERM has no Python handler
either. So Ctrl-C, or a scheduler's SIGTERM, never raised KeyboardInterrupt in the batch script: Slicer died at once,
the script's interrupt handling (kill the engine's tree, remove the temporary folder, exit 3) never ran, the copies of
the patient's inputs stayed in Slicer's temporary folder (Slicer never empties it) and an engine signalled apart
from Slicer went on alone. The script now turns both signals into KeyboardInterrupt.

Runs the script the way ``ctkAbstractPythonManager::executeFile`` does (``exec`` of the file's text in ``__main__``
with ``__file__`` set) in a child Python whose SIGINT/SIGTERM are reset to SIG_DFL first, as in Slicer. Real MRML
nodes and ``slicer.util`` from the slicer-core wheel. Stand-ins, for what slicer-core lacks: the Qt-side modules of
``Testing/test_slicer_module.py`` (``STAND_INS``), ``slicer.app`` (a namespace with ``temporaryPath``), the loading of
the input files (``slicer.util.loadVolume`` needs Slicer's IO manager: nodes from arrays instead) and the engine (a
child that prints one progress line and sleeps)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_module import MODULE_DIR, STAND_INS, modules  # noqa: E402,F401  (modules: fixture)

BOOTSTRAP = STAND_INS + r'''
import os, signal, subprocess, sys, types
from pathlib import Path
import numpy as np
import slicer, slicer.util

signal.signal(signal.SIGINT, signal.SIG_DFL)   # as ctkAbstractPythonManager::initPythonQt leaves it
signal.signal(signal.SIGTERM, signal.SIG_DFL)
batch, temporary, pid_file = sys.argv[1], os.environ["TEST_TEMPORARY"], os.environ["TEST_ENGINE_PID"]
slicer.mrmlScene = slicer.vtkMRMLScene()
slicer.app = types.SimpleNamespace(temporaryPath=temporary, slicerHome="")   # qSlicerCoreApplication stand-in
sys.path.insert(0, os.path.dirname(batch))
import DCEDiff

def load_volume(path, properties=None):   # qSlicerCoreIOManager stand-in: a small volume per file
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", (properties or {}).get("name", "v"))
    slicer.util.updateVolumeFromArray(node, np.full((4, 5, 6), len(path), dtype=np.float32))
    return node

ENGINE = ("import json, time; print('DCEDIFF_PROGRESS ' + json.dumps({'stage': 'load', 'step': 0, 'total': 1, "
          "'fraction': 0.0, 'elapsed': 0.0}), flush=True); time.sleep(120)")

def launch(cmd, cwd=None, env_update=None):   # engine stand-in, started as launchConsoleProcess starts it
    process = subprocess.Popen([sys.executable, "-c", ENGINE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    Path(pid_file).write_text(str(process.pid))
    return process

slicer.util.loadVolume = load_volume
DCEDiff._launchInSlicer = launch
DCEDiff.DCEDiffLogic.setupPythonRequirements = lambda self, **kwargs: None
sys.argv = [batch] + sys.argv[2:]
_globals = {"__name__": "__main__", "__file__": batch, "__builtins__": __builtins__}
exec(open(batch).read(), _globals)   # ctkAbstractPythonManager::executeFile
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (ended, not yet reaped by its parent) counts as ended
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_run_stops_the_engine_removes_the_inputs_copies_and_exits_3(tmp_path, signum):
    temporary = tmp_path / "slicer-temporary"
    temporary.mkdir()
    pid_file = tmp_path / "engine.pid"
    argv = []
    for key in ("t2w", "pd", "adc", "t1pre"):
        (tmp_path / f"{key}.nrrd").write_text(key)
        argv += [f"--{key}", str(tmp_path / f"{key}.nrrd")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TEST_TEMPORARY=str(temporary), TEST_ENGINE_PID=str(pid_file), OMP_NUM_THREADS="1")
    batch = subprocess.Popen([sys.executable, "-c", BOOTSTRAP, str(MODULE_DIR / "DCEDiffBatch.py"), *argv, "--device",
                              "cpu", "--out", str(tmp_path / "out")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env, cwd=str(tmp_path))
    engine = None
    try:
        seen = []
        for line in batch.stdout:  # wait until the engine runs and the logic is waiting for it
            seen.append(line)
            if line.startswith("DCEDiffBatch: Loading the model"):
                break
        assert pid_file.is_file(), "".join(seen)
        engine = int(pid_file.read_text())
        assert [p.name for p in temporary.iterdir()], "the inputs were not exported"
        batch.send_signal(signum)  # to Slicer's process only, as `kill` or a scheduler sends it
        output = "".join(seen) + batch.stdout.read()
        code = batch.wait(timeout=60)
        assert code == 3, f"exit {code}, expected 3 (interrupted):\n{output}"
        deadline = time.monotonic() + 15
        while _alive(engine) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(engine), "the engine still runs after Slicer exited"
        assert list(temporary.iterdir()) == [], "the copies of the inputs are left in Slicer's temporary folder"
        assert "DCEDiffBatch: cancelled" in output
    finally:
        if batch.poll() is None:
            batch.kill()
        if engine is not None and _alive(engine):
            os.kill(engine, signal.SIGKILL)


def test_the_handlers_are_put_back_before_slicer_exits(tmp_path):
    """DCEDiffBatch's __main__ block restores the signal handlers it replaced before exitSlicer (a signal after the
    run ends Slicer at once, as before): run with no inputs (exit 2), ``slicer.util.exit`` sees SIGINT and SIGTERM
    at SIG_DFL again. Stand-in for Slicer's exit: ``slicer.util.exit`` prints the handlers and ends the process.
    Mutation audit: kills restoreSignals left out of the __main__ block."""
    recording_exit = ("def _exit(code):\n"
                      "    print('at exit:', signal.getsignal(signal.SIGINT) is signal.SIG_DFL,"
                      " signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)\n"
                      "    os._exit(code)\n"
                      "slicer.util.exit = _exit\n")
    bootstrap = BOOTSTRAP.replace("exec(open(batch).read(), _globals)",
                                  recording_exit + "exec(open(batch).read(), _globals)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TEST_TEMPORARY=str(tmp_path), TEST_ENGINE_PID=str(tmp_path / "engine.pid"), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", bootstrap, str(MODULE_DIR / "DCEDiffBatch.py")],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "at exit: True True" in done.stdout, done.stdout + done.stderr


def test_restoring_puts_back_a_python_handler_that_was_there(modules):
    """restoreSignals puts back 'the handlers interruptOnSignals replaced': a Python handler that was installed
    before the run is the handler again afterwards (not SIG_DFL). Mutation audit: kills every handler restored as
    SIG_DFL."""
    _, batch = modules

    def before(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, before)
    try:
        replaced = batch.interruptOnSignals()
        assert signal.getsignal(signal.SIGTERM) is not before
        batch.restoreSignals(replaced)
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, previous)
