"""Installing Python packages without a dialog (batch ``--install-dependencies``) and timing it apart from the run.

From Slicer 5.12 ``slicer.util.pip_install(requirements, **kwargs)`` hands its keywords to
``slicer.packaging.pip_install(..., show_progress=True, ...)``, whose default opens a modal progress dialog that a
headless Slicer (``--no-main-window``) may wait on; Slicer 5.10's is ``pip_install(requirements)`` and takes no
keyword (both read in Slicer's source, Base/Python/slicer/util.py and packaging.py at v5.10.0 and v5.12.0). Before the
fix the light-the-torch install (batch mode on a Slicer without the PyTorch extension) and the 5.10/5.11 path called it
without ``show_progress``. Also: the installs took place inside the run's elapsed time (the GUI started its clock
before them) and the batch said nothing of how long they took.

Real parts: the ``slicer`` package of the slicer-core wheel, its ``slicer.util.pip_install`` (the 5.12+ wrapper)
included. Stand-ins (Slicer's pip helpers cannot run here): ``PackagingPipInstallStandIn`` (``slicer.packaging`` with
the 5.12 ``pip_install`` signature, recording), ``pip_install_5_10`` (5.10's ``slicer.util.pip_install``
signature), the PythonSlicer child (``_run_python_module``), and the Qt stand-ins of Testing/test_slicer_module.py."""

import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import dependencies as dep  # noqa: E402

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402
from test_slicer_module import batch_argv, make_widget_with_error_box, modules  # noqa: E402,F401  (Qt stand-ins)


class PackagingPipInstallStandIn(types.ModuleType):
    """Test double of Slicer >= 5.12's ``slicer.packaging``: ``pip_install`` with its real signature (v5.12.0),
    recording the keywords it got; no ``pip_ensure`` (as a 5.11 preview, where only pip_install existed)."""

    def __init__(self):
        super().__init__("slicer.packaging")
        self.calls = []

    def pip_install(self, requirements, constraints=None, no_deps_requirements=None, skip_packages=None,
                    blocking=True, show_progress=True, requester=None, parent=None, logCallback=None,
                    completedCallback=None):
        self.calls.append({"requirements": list(requirements), "show_progress": show_progress})


def pip_install_5_10(requirements):  # test double with Slicer 5.10's signature: no keyword at all
    pip_install_5_10.calls.append(list(requirements))


def without_torch(monkeypatch, versions):
    """A Slicer without the PyTorch extension and without torch; the light-the-torch child "installs" torch."""
    monkeypatch.setattr(dep, "installed_version", lambda name: versions.get(name))
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)
    monkeypatch.setattr(dep, "_run_python_module", lambda slicer_module, args: versions.update(torch="2.5.1"))


@pytest.mark.parametrize("mode, expected", [("install", False), ("ask", True)])
def test_light_the_torch_is_installed_without_a_progress_dialog_in_batch_on_slicer_5_12(tmp_path, monkeypatch,
                                                                                       mode, expected):
    """Through the real 5.12+ ``slicer.util.pip_install`` wrapper: show_progress=False in batch ("install"), the
    dialog kept in the GUI ("ask", after DCEDiff's own confirmation)."""
    path = tmp_path / "requirements.txt"
    path.write_text("# nothing else\n", encoding="utf-8")
    without_torch(monkeypatch, {"torch": None})
    stand_in = PackagingPipInstallStandIn()
    monkeypatch.setitem(sys.modules, "slicer.packaging", stand_in)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: True)  # the Qt dialog: accepted
    assert dep.pip_install_takes(slicer, "show_progress") and not dep.pip_install_takes(slicer, "no_such_keyword")
    assert dep.ensure_dependencies(path, mode=mode) is True
    assert stand_in.calls == [{"requirements": [dep.LIGHT_THE_TORCH], "show_progress": expected}]


def test_slicer_5_10_pip_install_gets_no_keyword(tmp_path, monkeypatch):
    """5.10's pip_install(requirements) would raise TypeError on show_progress: it gets none, for light-the-torch and
    for the requirements (one by one with the constraints file)."""
    path = tmp_path / "requirements.txt"
    path.write_text("dcediff-no-such-package>=1.0\n", encoding="utf-8")
    versions = {"torch": None}
    without_torch(monkeypatch, versions)
    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    pip_install_5_10.calls = []
    monkeypatch.setattr(slicer.util, "pip_install", pip_install_5_10)
    assert not dep.pip_install_takes(slicer, "show_progress")
    with pytest.raises(dep.DependencyError, match="installing dcediff-no-such-package>=1.0 failed"):
        dep.ensure_dependencies(path, mode="install")  # the stand-in installs nothing
    assert [call[0] for call in pip_install_5_10.calls] == [dep.LIGHT_THE_TORCH, "dcediff-no-such-package>=1.0"]


def test_a_5_11_slicer_without_pip_ensure_installs_the_requirements_without_a_dialog(tmp_path, monkeypatch):
    path = tmp_path / "requirements.txt"
    path.write_text("dcediff-no-such-package>=1.0\n", encoding="utf-8")
    monkeypatch.setattr(dep, "torch_status", lambda version=None: ("ok", "2.5.1"))
    stand_in = PackagingPipInstallStandIn()
    monkeypatch.setitem(sys.modules, "slicer.packaging", stand_in)
    with pytest.raises(dep.DependencyError):
        dep.ensure_dependencies(path, mode="install")
    assert [call["show_progress"] for call in stand_in.calls] == [False]


def test_nothing_missing_installs_nothing_and_says_so(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# nothing\n", encoding="utf-8")
    if dep.torch_status()[0] != "ok":
        pytest.skip("torch is not installed in this environment")
    assert dep.ensure_dependencies(path, mode="never") is False


def test_the_gui_run_clock_starts_after_the_install_and_the_install_time_is_logged(modules, monkeypatch):
    """The progress line's "elapsed" counts from the engine's start, not from the click: installing PyTorch
    (minutes) is logged apart."""
    DCEDiff, _ = modules
    widget, p, _box = make_widget_with_error_box(DCEDiff, monkeypatch)
    done = []

    def install(self, parent=None, mode="ask"):  # the install, as long as it takes
        time.sleep(0.05)
        done.append(time.monotonic())
        return True

    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", install)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", lambda self, *a, **k: None)
    widget.onApplyButton()
    assert done and widget._runStarted >= done[0]
    assert any(line.startswith("Python packages installed in") for line in widget.ui.logTextEdit.lines)


def test_the_batch_reports_the_install_time_apart_from_the_synthesis(modules, monkeypatch, tmp_path, capsys):
    DCEDiff, DCEDiffBatch = modules
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path, properties=None: ("node", path))
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements",
                        lambda self, **kwargs: time.sleep(0.05) or True)  # an install, as long as it takes
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", lambda self, *a, **k: DCEDiff.DCEDiffResult({}, {}, 3.0))
    assert DCEDiffBatch.main(batch_argv(tmp_path)) == DCEDiffBatch.EXIT_OK
    out = capsys.readouterr().out
    assert "DCEDiffBatch: Python packages installed in 0 s" in out
    assert "DCEDiffBatch: synthesis done in 3 s (Python packages installed before it in 0 s, not counted)" in out
    import json

    marks = json.loads((tmp_path / "out" / DCEDiffBatch.MARKS_FILE).read_text(encoding="utf-8"))
    assert marks["synthesis_seconds"] == 3.0 and 0.05 <= marks["install_seconds"] < 30


# ---------------------------------------------------------------- round-18 mutation audit: the documented rules
def test_pip_install_takes_reads_the_keyword_from_the_signature_that_decides(monkeypatch):
    """pip_install_takes: a pip_install that names the keyword takes it (whatever slicer.packaging says); one
    without ``**kwargs`` (5.10) is decided by its own signature, even beside a slicer.packaging that takes it; one
    that forwards ``**kwargs`` takes nothing where slicer.packaging cannot be imported; a parameter that cannot be
    passed by keyword, or a function whose signature cannot be read, is no."""
    stand_in = PackagingPipInstallStandIn()

    def own_keyword(requirements, show_progress=True):  # test double: a pip_install naming the keyword itself
        pass

    monkeypatch.setitem(sys.modules, "slicer.packaging", None)   # import slicer.packaging raises ImportError
    monkeypatch.setattr(slicer.util, "pip_install", own_keyword)
    assert dep.pip_install_takes(slicer, "show_progress")
    monkeypatch.setattr(slicer.util, "pip_install", lambda requirements, **kwargs: None)
    assert not dep.pip_install_takes(slicer, "show_progress")
    monkeypatch.setitem(sys.modules, "slicer.packaging", stand_in)
    assert dep.pip_install_takes(slicer, "show_progress")   # the control: forwarded to one that takes it
    monkeypatch.setattr(slicer.util, "pip_install", pip_install_5_10)
    assert not dep.pip_install_takes(slicer, "show_progress")
    monkeypatch.setattr(slicer.util, "pip_install", lambda requirements, show_progress, /: None)
    assert not dep.pip_install_takes(slicer, "show_progress")
    monkeypatch.setattr(slicer.util, "pip_install", max)   # a builtin whose signature inspect cannot read
    assert not dep.pip_install_takes(slicer, "show_progress")


def test_the_gui_logs_no_install_when_nothing_was_installed_and_the_install_time_when_one_was(modules, monkeypatch):
    """onApplyButton: 'Python packages installed in <time>' only when setupPythonRequirements installed something
    (it returns ensure_dependencies' True/False), and the time is the install's (here well under a second)."""
    DCEDiff, _ = modules
    assert DCEDiff.DCEDiffLogic().setupPythonRequirements(mode="never") is False   # this venv has them all
    widget, p, _box = make_widget_with_error_box(DCEDiff, monkeypatch)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", lambda self, *a, **k: None)
    for installed in (False, True):
        monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements",
                            lambda self, parent=None, mode="ask", installed=installed: installed)
        widget.ui.logTextEdit.lines.clear()
        widget.onApplyButton()
        logged = [line for line in widget.ui.logTextEdit.lines if line.startswith("Python packages installed")]
        assert logged == (["Python packages installed in 0 s."] if installed else []), logged
