"""Stand-ins shared by the Slicer module tests for what the slicer-core wheel cannot run (Qt), and the one way they
are put into ``sys.modules`` and taken out again.

``ErrorDisplayStandIn`` replaces ``slicer.util.tryWithErrorDisplay`` and follows Slicer's own
(``Base/Python/slicer/util.py``): an ``Exception`` raised in the ``with`` block is shown in a message box as
"<message>\\n\\n<error>" (the error alone when there is no message; nothing with ``show=False``) and then raised
again; a ``BaseException`` that is no ``Exception`` (KeyboardInterrupt, pytest's failures) passes unshown. What it
leaves out is Qt's: the message box (its text is recorded in ``shown`` instead), the wait cursor, and Slicer's
testing mode (``slicer.app.testingEnabled()``), in which the real one shows nothing.

``engine_launcher`` replaces ``DCEDiff._launchInSlicer`` (``slicer.util.launchConsoleProcess`` runs PythonSlicer,
which the wheel has not): the engine is a real child Python process running a given script.
"""

import contextlib
import subprocess
import sys
from typing import Iterable, List, Optional

_ABSENT = object()  # a name not in sys.modules (sys.modules may hold None for a name: "import fails")


class ErrorDisplayStandIn:
    """Test double of ``slicer.util.tryWithErrorDisplay`` (its Qt message box cannot run here): records the text
    of every message box in ``shown`` and re-raises, as Slicer's does (module docstring). Install it with
    ``monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", box)``; each instance has its own ``shown``."""

    def __init__(self):
        self.shown: List[str] = []

    @contextlib.contextmanager
    def __call__(self, message=None, show=True, waitCursor=False):
        try:
            yield
        except Exception as exc:
            if show:
                self.shown.append(str(exc) if message is None else f"{message}\n\n{exc}")
            raise


def engine_launcher(script: str, started: Optional[List[subprocess.Popen]] = None):
    """Test double of ``DCEDiff._launchInSlicer`` (module docstring): a launcher that ignores the engine's command
    line, starts ``python -c script`` with its output piped as Slicer's launchConsoleProcess does, appends the
    ``Popen`` to ``started`` (when given, so that a test can wait for it or kill it) and returns it."""

    def launch(cmd, cwd=None, env_update=None):  # what slicer.util.launchConsoleProcess returns: a Popen
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if started is not None:
            started.append(process)
        return process

    return launch


@contextlib.contextmanager
def modules_restored(names: Iterable[str]):
    """On exit, the ``sys.modules`` entries ``names`` as they were on entry: the stand-in modules a fixture put
    there, and the module it imported with them, are taken out again (a name absent on entry is removed, even when
    the block raised)."""
    saved = {name: sys.modules.get(name, _ABSENT) for name in names}
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is _ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
