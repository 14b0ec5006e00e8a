"""The shared stand-ins of Testing/slicer_stand_ins.py against what they stand for.

``ErrorDisplayStandIn`` is run side by side with the real ``slicer.util.tryWithErrorDisplay`` of the slicer-core
wheel (the same code as Slicer's ``Base/Python/slicer/util.py``) on the same blocks: both must show the same text and
let the same exception out. The real one runs with its Qt parts replaced, named as such: ``AppStandIn``
(``slicer.app``: the wait cursor and ``testingEnabled()``), ``QtStandIn`` (``qt.Qt.WaitCursor``) and the message box
(``slicer.util.errorDisplay``, recorded). ``modules_restored`` is checked on a real ``sys.modules``."""

import sys
import types
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slicer_stand_ins import ErrorDisplayStandIn, modules_restored  # noqa: E402

BLOCKS = [  # (message, options, what the block raises)
    ("The model was not imported.", {}, ValueError("model m.safetensors: does not match the card")),
    (None, {}, RuntimeError("no message: the error alone")),
    ("Not shown.", {"show": False}, ValueError("show=False")),
    ("DCEDiff could not start.", {"waitCursor": True}, OSError("disk full")),
    ("An assertion.", {}, AssertionError("an Exception like any other")),
    ("Interrupted.", {}, KeyboardInterrupt()),
    ("Nothing wrong.", {"waitCursor": True}, None),
]


class AppStandIn:
    """Test double of ``slicer.app`` (a Qt object): the override cursor as a depth count, testing mode off."""

    def __init__(self):
        self.cursors = 0

    def setOverrideCursor(self, cursor):
        self.cursors += 1

    def restoreOverrideCursor(self):
        self.cursors -= 1

    def testingEnabled(self):
        return False


def _escaping(display, message, options, error):
    """What leaves ``with display(message, **options)`` whose block raises ``error`` (None: nothing)."""
    try:
        with display(message, **options):
            if error is not None:
                raise error
    except BaseException as exc:  # noqa: B036  (KeyboardInterrupt is one of the cases)
        return exc
    return None


@pytest.mark.parametrize("message, options, error", BLOCKS, ids=[type(b[2]).__name__ for b in BLOCKS])
def test_the_error_display_stand_in_shows_and_raises_what_slicers_own_does(monkeypatch, message, options, error):
    """Slicer's rule: an Exception is shown as "<message>\\n\\n<error>" (the error alone without a message, nothing
    with show=False) and raised again; a KeyboardInterrupt passes unshown; a block without error shows nothing."""
    real_shown = []
    app = AppStandIn()
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setitem(sys.modules, "qt", types.SimpleNamespace(Qt=types.SimpleNamespace(WaitCursor=3)))
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: real_shown.append(text))
    real = _escaping(slicer.util.tryWithErrorDisplay, message, options, error)
    box = ErrorDisplayStandIn()
    standIn = _escaping(box, message, options, error)
    assert real is error and standIn is error  # the same exception object out of both, or nothing
    assert box.shown == real_shown
    assert app.cursors == 0  # the control: the real one ran its cursor code to the end
    if isinstance(error, Exception) and options.get("show", True):
        assert real_shown == [f"{message}\n\n{error}" if message else str(error)]  # the control: something shown
    else:
        assert real_shown == []


def test_modules_restored_puts_back_what_was_there_and_removes_what_was_not(monkeypatch):
    """A replaced module comes back, an added one goes, a None entry (an import blocked on purpose) stays None,
    also when the block raised (a stand-in module whose import failed)."""
    present, absent, blocked = "dcediff_test_present", "dcediff_test_absent", "dcediff_test_blocked"
    original = types.ModuleType(present)
    monkeypatch.setitem(sys.modules, present, original)
    monkeypatch.delitem(sys.modules, absent, raising=False)
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(ImportError, match="stand-in"):
        with modules_restored((present, absent, blocked)):
            sys.modules.update({name: types.ModuleType(name) for name in (present, absent, blocked)})
            assert sys.modules[present] is not original  # the control: replaced inside the block
            raise ImportError("a module imported under the stand-in failed")
    assert sys.modules[present] is original and absent not in sys.modules and sys.modules[blocked] is None
