"""The optional prostate finder (TAPS: onnxruntime and the lavlab-taps wheel) installed on request inside Slicer:
the module's button (a confirmation naming the size first), batch ``--install-prostate-finder``, never Apply.

Before this, the Slicer extension could not install it at all: the crop fell back to the T2W's field-of-view centre
unless the user placed a point. Checked here: the exact pip arguments (``--no-deps`` for the TAPS wheel, whose
declared dependencies would pull onnxruntime-gpu and MONAI; onnxruntime with the constraints file that pins Slicer's
numpy & co.; no protected package named), consent refused (nothing installed, the status says so), already installed
(no dialog, no pip), pip failing, the batch option, and Slicer 5.10's ``pip_install(requirements)`` beside 5.12's
``pip_install(requirements, **kwargs)`` (both read in Slicer's source, Base/Python/slicer/util.py and packaging.py
at v5.10.0 and v5.12.0).

Real parts: the ``slicer`` package of the slicer-core wheel with its ``slicer.util.pip_install`` (the 5.12+ wrapper),
the engine's own check (``prostate_localization.missing_parts``, ``importlib.util.find_spec`` on this venv, which has
the finder: "not installed" is the same check pointed at package names that do not exist), the constraints file.
Stand-ins (pip and Qt cannot run here): ``PackagingStandIn`` (``slicer.packaging`` with the real ``pip_install``
signature; it records the arguments and "installs" by pointing the check back at the real packages),
``pip_install_5_10_stand_in`` (5.10's ``slicer.util.pip_install`` signature, same behaviour), ``ConfirmStandIn``
(``slicer.util.confirmOkCancelDisplay``'s Qt dialog: records its text, answers as told), ``ErrorDisplayStandIn``
(``slicer.util.tryWithErrorDisplay``'s message box) and the Qt stand-ins of Testing/test_slicer_module.py."""

import importlib.metadata
import json
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffLib import prostate_localization as pl  # noqa: E402
from DCEDiffSlicerLib import dependencies as dep  # noqa: E402

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402
from test_slicer_module import batch_argv, make_widget_with_error_box, modules  # noqa: E402,F401  (Qt stand-ins)

if pl.missing_parts():
    pytest.skip(f"this venv lacks the prostate finder ({pl.unavailable_reason()}); make setup installs it",
                allow_module_level=True)

RUNTIME, MODEL = pl.RUNTIME_PACKAGE, pl.MODEL_PACKAGE   # the real import names, found in this venv


def without_finder(monkeypatch, runtime=True, model=True):
    """The engine's check pointed at names no package has: the finder (or a part of it) is "not installed"."""
    if runtime:
        monkeypatch.setattr(pl, "RUNTIME_PACKAGE", "dcediff_no_such_onnxruntime")
    if model:
        monkeypatch.setattr(pl, "MODEL_PACKAGE", "dcediff_no_such_taps")


def record(calls, requirements, keywords):
    """What a pip_install stand-in got, the constraints file read while it exists; then the "install": the check
    is pointed back at the real package that pip was asked for."""
    args = [requirements] if isinstance(requirements, str) else list(requirements)
    constraints = args[args.index("-c") + 1] if "-c" in args else None
    calls.append({"args": args, "keywords": keywords,
                  "constraints": Path(constraints).read_text(encoding="utf-8").split() if constraints else None})
    if dep.PROSTATE_RUNTIME in args:
        pl.RUNTIME_PACKAGE = RUNTIME
    if dep.PROSTATE_MODEL in args:
        pl.MODEL_PACKAGE = MODEL


class PackagingStandIn(types.ModuleType):
    """Test double of Slicer >= 5.12's ``slicer.packaging``: ``pip_install`` with its real signature (Slicer main,
    Base/Python/slicer/packaging.py), recording (see :func:`record`); pip itself cannot run here."""

    def __init__(self, fail=False):
        super().__init__("slicer.packaging")
        self.calls, self.fail = [], fail

    def pip_install(self, requirements, constraints=None, no_deps_requirements=None, skip_packages=None,
                    blocking=True, show_progress=True, requester=None, logCallback=None, completedCallback=None):
        if self.fail:
            raise RuntimeError("pip exited with code 1 (stand-in: no network)")
        record(self.calls, requirements, {"show_progress": show_progress, "constraints": constraints,
                                          "no_deps_requirements": no_deps_requirements,
                                          "skip_packages": skip_packages})


def pip_install_5_10_stand_in(requirements):  # test double with Slicer 5.10's signature: no keyword at all
    record(pip_install_5_10_stand_in.calls, requirements, {})


class ConfirmStandIn:
    """Test double of ``slicer.util.confirmOkCancelDisplay`` (a Qt dialog): records each question, answers
    ``answer``; ``answer=None`` fails the test if it is asked at all."""

    def __init__(self, answer):
        self.answer, self.asked = answer, []

    def __call__(self, text, windowTitle=None, parent=None, **kwargs):
        assert self.answer is not None, f"no dialog expected, got: {text}"
        self.asked.append({"text": text, "title": windowTitle, **kwargs})
        return self.answer


@pytest.fixture
def packaging(monkeypatch):
    stand_in = PackagingStandIn()
    monkeypatch.setitem(sys.modules, "slicer.packaging", stand_in)
    return stand_in


def protected_pins():
    return sorted(f"{name}=={importlib.metadata.version(name)}" for name in dep.PROTECTED
                  if dep.installed_version(name))


def assert_nothing_protected(calls):
    for call in calls:
        named = {dep._name(arg) for arg in call["args"] if not arg.startswith("-") and not arg.endswith(".txt")}
        assert not named & set(dep.PROTECTED), call


@pytest.mark.parametrize("mode, progress", [("ask", True), ("install", False)])
def test_slicer_5_12_installs_onnxruntime_with_the_constraints_then_taps_without_its_dependencies(
        monkeypatch, packaging, mode, progress):
    """Through the real 5.12+ ``slicer.util.pip_install`` wrapper: two pip runs, in this order; the GUI ("ask")
    keeps Slicer's progress dialog after its own confirmation, the batch ("install") asks nothing and shows none."""
    without_finder(monkeypatch)
    confirm = ConfirmStandIn(True if mode == "ask" else None)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", confirm)
    assert dep.install_prostate_finder(mode=mode) == dep.PROSTATE_INSTALLED
    runtime, model = packaging.calls
    assert runtime["args"][:2] == ["onnxruntime>=1.16", "-c"] and len(runtime["args"]) == 3
    assert model["args"] == ["--no-deps", "lavlab-taps==1.1.2"]
    assert runtime["constraints"] == protected_pins() and any(p.startswith("numpy==") for p in protected_pins())
    assert [call["keywords"]["show_progress"] for call in packaging.calls] == [progress, progress]
    assert all(call["keywords"]["skip_packages"] is None for call in packaging.calls)
    assert_nothing_protected(packaging.calls)
    assert not Path(runtime["args"][2]).exists()  # the constraints file is removed afterwards
    assert dep.prostate_finder_missing() == []
    if mode == "ask":
        (question,) = confirm.asked
        assert "160 MB" in question["text"] and "field-of-view centre" in question["text"]
        assert "--no-deps lavlab-taps==1.1.2" in question["detailedText"]


def test_slicer_5_10_pip_install_gets_the_same_arguments_and_no_keyword(monkeypatch):
    """5.10's ``pip_install(requirements)`` would raise TypeError on show_progress: the batch install passes none."""
    without_finder(monkeypatch)
    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    pip_install_5_10_stand_in.calls = []
    monkeypatch.setattr(slicer.util, "pip_install", pip_install_5_10_stand_in)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", ConfirmStandIn(None))
    assert dep.install_prostate_finder(mode="install") == dep.PROSTATE_INSTALLED
    runtime, model = pip_install_5_10_stand_in.calls
    assert runtime["args"][:2] == ["onnxruntime>=1.16", "-c"] and runtime["constraints"] == protected_pins()
    assert model["args"] == ["--no-deps", "lavlab-taps==1.1.2"]


@pytest.mark.parametrize("runtime, expected", [(False, [["--no-deps", "lavlab-taps==1.1.2"]]),
                                               (True, [["onnxruntime>=1.16", "-c"]])])
def test_only_the_missing_part_is_installed(monkeypatch, packaging, runtime, expected):
    """onnxruntime already there (another extension's): only the TAPS wheel, still without its dependencies; the
    TAPS wheel there: only onnxruntime, with the constraints file."""
    without_finder(monkeypatch, runtime=runtime, model=not runtime)
    assert dep.prostate_finder_missing() == (["onnxruntime"] if runtime else ["lavlab-taps"])
    assert dep.install_prostate_finder(mode="install") == dep.PROSTATE_INSTALLED
    assert [call["args"][:2] for call in packaging.calls] == expected


def test_consent_refused_installs_nothing(monkeypatch, packaging):
    without_finder(monkeypatch)
    confirm = ConfirmStandIn(False)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", confirm)
    assert dep.install_prostate_finder(mode="ask") == dep.PROSTATE_DECLINED
    assert len(confirm.asked) == 1 and packaging.calls == []
    assert dep.prostate_finder_missing() == ["onnxruntime", "lavlab-taps"]


def test_already_installed_asks_nothing_and_installs_nothing(monkeypatch, packaging):
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", ConfirmStandIn(None))
    for mode in ("ask", "install"):
        assert dep.install_prostate_finder(mode=mode) == dep.PROSTATE_PRESENT
    assert packaging.calls == []
    with pytest.raises(ValueError, match="mode 'never'"):
        dep.install_prostate_finder(mode="never")


def test_a_failed_pip_run_names_the_step_and_what_to_read(monkeypatch):
    without_finder(monkeypatch)
    monkeypatch.setitem(sys.modules, "slicer.packaging", PackagingStandIn(fail=True))
    with pytest.raises(dep.DependencyError, match=r"failed at 'pip install onnxruntime>=1\.16 -c .*no network.*"
                                                  r"Python console"):
        dep.install_prostate_finder(mode="install")


def test_the_check_is_the_engines_and_imports_nothing_into_slicers_process(monkeypatch):
    """onnxruntime may not load safely in Slicer's process: the check only locates it."""
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    monkeypatch.delitem(sys.modules, "taps", raising=False)
    assert dep.prostate_finder_missing() == []
    assert "onnxruntime" not in sys.modules and "taps" not in sys.modules
    without_finder(monkeypatch)
    assert dep.prostate_finder_missing() == ["onnxruntime", "lavlab-taps"]
    assert dep.PROSTATE_MODEL == f"{pl.MODEL_DISTRIBUTION}=={pl.MODEL_VERSION}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'prostate = ["{dep.PROSTATE_RUNTIME}"]' in pyproject


def gui(modules, monkeypatch):
    widget, _p, box = make_widget_with_error_box(modules[0], monkeypatch)
    return widget, box


def test_the_button_installs_after_consent_then_hides_and_says_installed(modules, monkeypatch, packaging):
    widget, box = gui(modules, monkeypatch)
    without_finder(monkeypatch)
    assert widget._updateProstateFinderState() is False
    assert widget.ui.installProstateFinderButton.visible and "not installed" in widget.ui.prostateFinderStatusLabel.text
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", ConfirmStandIn(True))
    widget.onInstallProstateFinder()
    assert len(packaging.calls) == 2 and box.shown == []
    assert not widget.ui.installProstateFinderButton.visible
    assert widget.ui.prostateFinderStatusLabel.text.startswith("installed")
    assert widget.ui.statusLabel.text.startswith("Prostate finder installed in")
    assert not widget._starting and widget.ui.settingsCollapsibleButton.enabled


def test_the_button_declined_leaves_it_offered_and_says_nothing_was_installed(modules, monkeypatch, packaging):
    widget, box = gui(modules, monkeypatch)
    without_finder(monkeypatch)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", ConfirmStandIn(False))
    widget.onInstallProstateFinder()
    assert packaging.calls == [] and box.shown == []
    assert widget.ui.statusLabel.text == dep.PROSTATE_DECLINED_TEXT and "not installed" in widget.ui.statusLabel.text
    assert widget.ui.installProstateFinderButton.visible and not widget._starting


def test_the_button_when_pip_fails_shows_the_error_and_unlocks_the_panel(modules, monkeypatch):
    widget, box = gui(modules, monkeypatch)
    without_finder(monkeypatch)
    monkeypatch.setitem(sys.modules, "slicer.packaging", PackagingStandIn(fail=True))
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", ConfirmStandIn(True))
    with pytest.raises(dep.DependencyError):
        widget.onInstallProstateFinder()
    assert len(box.shown) == 1 and box.shown[0].startswith("The prostate finder was not installed.")
    assert widget.ui.statusLabel.text == "Prostate finder not installed: see the error message."
    assert widget.ui.installProstateFinderButton.visible and not widget._starting


def test_already_installed_the_button_is_hidden_and_no_dialog_opens(modules, monkeypatch, packaging):
    widget, box = gui(modules, monkeypatch)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", ConfirmStandIn(None))
    assert widget._updateProstateFinderState() is True and not widget.ui.installProstateFinderButton.visible
    widget.onInstallProstateFinder()
    assert packaging.calls == [] and widget.ui.statusLabel.text == "The prostate finder is already installed."


@pytest.mark.parametrize("flag", [True, False])
def test_batch_installs_the_finder_only_with_its_option_and_times_it_apart(modules, monkeypatch, tmp_path, capsys,
                                                                           packaging, flag):
    DCEDiff, DCEDiffBatch = modules
    without_finder(monkeypatch)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", ConfirmStandIn(None))
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path, properties=None: ("node", path))
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, **kwargs: False)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", lambda self, *a, **k: DCEDiff.DCEDiffResult({}, {}, 3.0))
    argv = batch_argv(tmp_path) + (["--install-prostate-finder"] if flag else [])
    assert DCEDiffBatch.main(argv) == DCEDiffBatch.EXIT_OK
    out = capsys.readouterr().out
    marks = json.loads((tmp_path / "out" / DCEDiffBatch.MARKS_FILE).read_text(encoding="utf-8"))
    if flag:
        assert [call["args"][0] for call in packaging.calls] == ["onnxruntime>=1.16", "--no-deps"]
        assert [call["keywords"]["show_progress"] for call in packaging.calls] == [False, False]
        assert "DCEDiffBatch: prostate finder installed in 0 s" in out
        assert "(Python packages installed before it in 0 s, not counted)" in out
        assert marks["install_seconds"] is not None and marks["synthesis_seconds"] == 3.0
    else:
        assert packaging.calls == [] and "prostate finder" not in out and marks["install_seconds"] is None
    assert "--install-prostate-finder" in DCEDiffBatch.buildParser().format_help()


def test_batch_with_the_finder_there_says_so_and_installs_nothing(modules, monkeypatch, tmp_path, capsys, packaging):
    DCEDiff, DCEDiffBatch = modules
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path, properties=None: ("node", path))
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, **kwargs: False)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", lambda self, *a, **k: DCEDiff.DCEDiffResult({}, {}, 3.0))
    assert DCEDiffBatch.main(batch_argv(tmp_path) + ["--install-prostate-finder"]) == DCEDiffBatch.EXIT_OK
    out = capsys.readouterr().out
    assert "DCEDiffBatch: prostate finder already installed" in out and packaging.calls == []
    marks = json.loads((tmp_path / "out" / DCEDiffBatch.MARKS_FILE).read_text(encoding="utf-8"))
    assert marks["install_seconds"] is None
