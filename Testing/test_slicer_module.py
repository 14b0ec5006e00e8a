"""DCEDiff/DCEDiff.py and DCEDiff/DCEDiffBatch.py outside Slicer: widget state (sampler/steps rule, GUI after a
failed start, inputs locked while running, back to the shipped model), the logic's shutdown on module reload, the
self-test set-up in any method order, and the batch script's exit codes.

Slicer's Qt side cannot run here. These stand-ins replace it, and only it: ``QtStandIn`` (the ``qt`` module),
``ScriptedLoadableModuleStandIn`` / ``ParameterNodeWrapperStandIn`` / ``I18nStandIn`` (Slicer's GUI-side Python
modules), ``WidgetStandIn`` (the widgets of Resources/UI/DCEDiff.ui), ``ParameterNodeStandIn`` and
``ErrorDisplayStandIn`` (``slicer.util.tryWithErrorDisplay``'s message box; Testing/slicer_stand_ins.py). MRML, VTK and
``slicer.util`` are the real ones from the slicer-core wheel; subprocesses are real."""

import json
import os
import subprocess
import sys
import time
import types
import unittest
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slicer_stand_ins import ErrorDisplayStandIn, modules_restored  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODULE_DIR = ROOT / "DCEDiff"
CASE = ROOT / "Resources" / "SampleData" / "phantom_case"

STAND_INS = r'''
import sys, types, unittest

class _Any:
    def __init__(self, *a, **k): pass
    def __call__(self, *a, **k): return _Any()
    def __getattr__(self, name): return _Any()

QtStandIn = types.ModuleType("qt")
for _name in ("QIcon", "QTimer", "QFileDialog", "QWidget"):
    setattr(QtStandIn, _name, type(_name, (_Any,), {}))

ScriptedLoadableModuleStandIn = types.ModuleType("slicer.ScriptedLoadableModule")
class ScriptedLoadableModule:
    def __init__(self, parent): self.parent = parent
class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None): pass
    def getParameterNode(self): return None
class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None): self.parent = parent
class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, msec=None): pass
for _cls in (ScriptedLoadableModule, ScriptedLoadableModuleLogic, ScriptedLoadableModuleWidget,
             ScriptedLoadableModuleTest):
    setattr(ScriptedLoadableModuleStandIn, _cls.__name__, _cls)

ParameterNodeWrapperStandIn = types.ModuleType("slicer.parameterNodeWrapper")
ParameterNodeWrapperStandIn.parameterNodeWrapper = lambda cls: cls
ParameterNodeWrapperStandIn.Choice = lambda *a, **k: None
ParameterNodeWrapperStandIn.WithinRange = lambda *a, **k: None

I18nStandIn = types.ModuleType("slicer.i18n")
I18nStandIn.tr = lambda text: text
I18nStandIn.translate = lambda context, text: text

sys.modules.update({"qt": QtStandIn, "slicer.ScriptedLoadableModule": ScriptedLoadableModuleStandIn,
                    "slicer.parameterNodeWrapper": ParameterNodeWrapperStandIn, "slicer.i18n": I18nStandIn})
'''


@pytest.fixture(scope="module")
def modules():
    with modules_restored(("qt", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper", "slicer.i18n",
                           "DCEDiff", "DCEDiffBatch")):
        exec(STAND_INS, {})
        sys.path.insert(0, str(MODULE_DIR))
        try:
            import DCEDiff
            import DCEDiffBatch

            yield DCEDiff, DCEDiffBatch
        finally:
            sys.path.remove(str(MODULE_DIR))


@pytest.fixture(autouse=True)
def scene():
    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer.mrmlScene


def save_and_reopen(scene, folder: Path, new_session=None):
    """Save ``scene`` as ``folder``/scene.mrml (its volumes already written by their storage nodes) and open it in a
    new scene, as a new Slicer session does; returns the new scene. ``new_session``: called with the new scene
    before the load, to set it up as Slicer's start-up does (its layout logic, the module's start-up)."""
    scene.SetRootDirectory(str(folder))
    scene.SetURL(str(folder / "scene.mrml"))
    scene.Commit()
    reopened = slicer.vtkMRMLScene()
    if new_session is not None:
        new_session(reopened)
    reopened.SetURL(str(folder / "scene.mrml"))
    reopened.Import()
    return reopened


class WidgetStandIn:
    """Test double of a Qt widget of DCEDiff.ui: the properties and slots the module uses."""

    def __init__(self, name):
        self.name, self.text, self.toolTip, self.enabled, self.value, self.visible = name, "", "", True, 0, True
        self.lines, self.currentNode = [], None

    def setVisible(self, visible):
        self.visible = visible

    def clear(self):
        self.lines = []

    def appendPlainText(self, line):
        self.lines.append(line)

    def setCurrentNode(self, node):
        self.currentNode = node


class UiStandIn:
    def __init__(self):
        self._widgets = {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._widgets.setdefault(name, WidgetStandIn(name))


class ParameterNodeStandIn(types.SimpleNamespace):
    """Test double of the @parameterNodeWrapper node: plain attributes, as the wrapper exposes them."""


def make_widget(DCEDiff, monkeypatch):
    widget = DCEDiff.DCEDiffWidget()
    widget.ui = UiStandIn()
    widget.logic = DCEDiff.DCEDiffLogic()
    p = ParameterNodeStandIn(t2w=None, pd=None, adc=None, t1pre=None, dceEarly=None, dceLate=None, dceBaseline=None,
                             center=None, modelFile="", sampler="dpmpp", steps=DCEDiff.defaults.DEFAULT_STEPS,
                             samples=1, seed=0, device="cpu", parameterNode=slicer.vtkMRMLScriptedModuleNode())
    widget._parameterNode = p
    widget._lastSampler = p.sampler
    return widget, p


def make_widget_with_error_box(DCEDiff, monkeypatch):
    """:func:`make_widget` with ``ErrorDisplayStandIn`` as ``slicer.util.tryWithErrorDisplay`` and no main window
    (``slicer.util.mainWindow`` returns None, as headless). Returns (widget, parameter node, the message box)."""
    widget, p = make_widget(DCEDiff, monkeypatch)
    box = ErrorDisplayStandIn()
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", box)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None)
    return widget, p, box


def test_sampler_change_sets_steps_after_the_parameter_node_holds_the_new_sampler(modules, monkeypatch):
    DCEDiff, _ = modules
    widget, p = make_widget(DCEDiff, monkeypatch)
    p.sampler = "ddpm"  # what the wrapper stores before its ModifiedEvent
    widget._onParameterNodeModified()
    assert p.steps == 1000
    p.sampler = "dpmpp"
    widget._onParameterNodeModified()
    assert p.steps == DCEDiff.modelDefaultSteps("", "dpmpp")  # leaving ddpm: the shipped model's own count
    p.steps = 50
    p.sampler = "ddim"
    widget._onParameterNodeModified()
    assert p.steps == 50  # a user's choice between fast samplers is kept
    assert DCEDiff.stepsAfterSamplerChange("ddim", "dpmpp", 1000) == 1000  # only leaving ddpm resets 1000
    source = (MODULE_DIR / "DCEDiff.py").read_text(encoding="utf-8")
    assert "samplerComboBox.connect" not in source  # no slot that could run before the wrapper's


def test_steps_box_follows_the_models_own_count_and_keeps_a_users_choice(modules, monkeypatch, tmp_path):
    """A residual model's card may carry its own step count (sampling.residual_steps): the box shows it when the
    model is chosen, goes back to the engine default for a model without one, and keeps a count the user typed."""
    DCEDiff, _ = modules
    widget, p = make_widget(DCEDiff, monkeypatch)
    imported = tmp_path / "own.safetensors"
    imported.write_bytes(b"")  # only the card is read here
    imported.with_suffix(".json").write_text(json.dumps({"objective": "residual", "sampling": {"residual_steps": 3}}),
                                             encoding="utf-8")
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(b"")
    plain.with_suffix(".json").write_text(json.dumps({"objective": "diffusion"}), encoding="utf-8")
    widget._onParameterNodeModified()  # first look at the node: the shipped model's own count
    assert p.steps == DCEDiff.modelDefaultSteps("", "dpmpp")
    p.modelFile = str(imported)
    widget._onParameterNodeModified()
    assert p.steps == 3
    p.sampler = "ddim"  # the card's count was measured for dpmpp only: another sampler gets the engine default
    widget._onParameterNodeModified()
    assert p.steps == DCEDiff.defaults.DEFAULT_STEPS
    p.sampler = "dpmpp"
    widget._onParameterNodeModified()
    assert p.steps == 3
    p.steps = 12  # the user's choice
    p.modelFile = str(plain)
    widget._onParameterNodeModified()
    assert p.steps == 12
    p.steps = 3
    p.modelFile = str(imported)
    widget._onParameterNodeModified()
    p.modelFile = str(plain)
    widget._onParameterNodeModified()
    assert p.steps == DCEDiff.defaults.DEFAULT_STEPS
    # a missing or unreadable card: the engine default (the engine itself then refuses the model with the reason)
    assert DCEDiff.modelDefaultSteps(str(tmp_path / "nowhere.safetensors"), "dpmpp") == DCEDiff.defaults.DEFAULT_STEPS


def test_failed_start_leaves_the_panel_usable_and_says_so(modules, monkeypatch):
    DCEDiff, _ = modules
    widget, p, box = make_widget_with_error_box(DCEDiff, monkeypatch)

    def refuse(self, parent=None, mode="ask"):
        raise RuntimeError("PyTorch was not installed (declined)")

    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", refuse)
    with pytest.raises(RuntimeError, match=r"^PyTorch was not installed \(declined\)$"):
        widget.onApplyButton()  # shown, then raised again (Slicer's Qt slot logs the traceback)
    assert box.shown == ["DCEDiff could not start.\n\nPyTorch was not installed (declined)"]
    assert widget.ui.progressBar.visible is False
    assert "Starting" not in widget.ui.statusLabel.text and widget.ui.statusLabel.text
    assert widget.ui.applyButton.text == "Apply" and widget.ui.inputsCollapsibleButton.enabled


def test_apply_cannot_start_a_second_install_while_the_first_runs(modules, monkeypatch):
    """Installing torch takes minutes and Slicer's log pump processes events on every line: Apply stays disabled
    meanwhile, and a click that still arrives starts nothing."""
    DCEDiff, _ = modules
    widget, p, box = make_widget_with_error_box(DCEDiff, monkeypatch)
    calls, seen = [], []

    def installing(self, parent=None, mode="ask"):
        calls.append(mode)
        widget._updateApplyButton()  # e.g. a parameter-node event handled during the install
        seen.append((widget.ui.applyButton.enabled, widget.ui.inputsCollapsibleButton.enabled))
        widget.onApplyButton()  # a second click that reaches the slot
        raise RuntimeError("stop here")

    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", installing)
    with pytest.raises(RuntimeError, match="stop here"):
        widget.onApplyButton()
    assert calls == ["ask"]  # one install, not two
    assert box.shown == ["DCEDiff could not start.\n\nstop here"]  # the first click's error; the second shows none
    assert seen == [(False, False)]
    # usable again after: the inputs unlocked, the button back to what the selection allows
    assert widget.ui.inputsCollapsibleButton.enabled and "installing" not in widget.ui.applyButton.toolTip


def test_inputs_are_locked_while_running_and_unlocked_after_failure_or_cancel(modules, monkeypatch):
    DCEDiff, _ = modules
    widget, p = make_widget(DCEDiff, monkeypatch)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "isRunning", property(lambda self: True))
    widget._updateApplyButton()
    assert widget.ui.applyButton.text == "Cancel" and widget.ui.applyButton.enabled
    assert not widget.ui.inputsCollapsibleButton.enabled and not widget.ui.settingsCollapsibleButton.enabled
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "isRunning", property(lambda self: False))
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda *a, **k: None)  # stand-in for the Qt message box
    widget.ui.progressBar.setVisible(True)
    widget.onCompleted(RuntimeError("T2W: broken"))
    assert widget.ui.inputsCollapsibleButton.enabled and widget.ui.settingsCollapsibleButton.enabled
    assert widget.ui.progressBar.visible is False and "T2W: broken" in widget.ui.statusLabel.text
    widget.onCompleted(DCEDiff.DCEDiffResult({}, {}, 1.0, cancelled=True))
    assert "Cancelled" in widget.ui.statusLabel.text


def test_back_to_the_shipped_model_and_the_model_card_is_shown(modules, monkeypatch, tmp_path):
    DCEDiff, _ = modules
    widget, p = make_widget(DCEDiff, monkeypatch)
    widget._onParameterNodeModified()
    assert widget.ui.modelInfoLabel.text.startswith("Shipped model: dcediff_cpu_phantom; trained on")
    assert not widget.ui.shippedModelButton.enabled
    p.modelFile = str(tmp_path / "mine.safetensors")
    widget._onParameterNodeModified()
    # a path with no file and no recorded name (a scene of an older DCEDiff): the file is named, and what to do
    assert widget.ui.modelInfoLabel.text.startswith(f"The imported model file {p.modelFile} is missing. Import")
    assert widget.ui.shippedModelButton.enabled
    widget.onUseShippedModel()
    assert p.modelFile == ""


class TimerStandIn:
    """Test double of qt.QTimer."""

    def __init__(self):
        self.active = True

    def stop(self):
        self.active = False


def test_shutdown_on_module_reload_kills_the_engine_and_never_calls_the_old_widget(modules, tmp_path):
    DCEDiff, _ = modules
    from DCEDiffSlicerLib import process_runner

    logic = DCEDiff.DCEDiffLogic()
    runner = process_runner.ProcessRunner([sys.executable, "-c", "import time; print('x', flush=True); "
                                           "time.sleep(120)"]).start()
    work = tmp_path / "DCEDiff-work"
    work.mkdir()
    called = []
    logic._job = DCEDiff._Job(runner, work, None, time.monotonic(), True, called.append, TimerStandIn())
    timer = logic._job.timer
    started = time.monotonic()
    logic.shutdown()
    assert time.monotonic() - started < 15
    assert not logic.isRunning and not timer.active and not work.exists()
    assert runner.process.poll() is not None
    logic._poll()  # a timer tick that was already queued
    assert called == []


def test_self_test_methods_set_up_what_they_need_in_any_order(modules, monkeypatch):
    DCEDiff, _ = modules
    from DCEDiffSlicerLib import dependencies

    modes = []
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements",
                        lambda self, parent=None, mode="ask": modes.append(mode))
    app = types.SimpleNamespace(testingEnabled=lambda: True)  # stand-in for slicer.app under --testing
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(DCEDiff.DCEDiffTest, "_requirementsReady", False)
    names = unittest.TestLoader().getTestCaseNames(DCEDiff.DCEDiffTest)  # ctest's order: alphabetical
    assert names[0] == "test_DCEDiff_bad_input" and "test_DCEDiff_cancel_leaves_no_nodes" in names
    # the method that needs no package runs whatever is installed: setUp installs nothing and needs nothing
    DCEDiff.DCEDiffTest("test_DCEDiff_bad_input").setUp()
    assert modes == []
    # under --testing nothing is installed (Slicer's rule); a method that runs the engine is skipped, with the
    # command that installs what is missing
    missing = {"torch": "missing", "torch_version": None, "missing": ["safetensors>=0.4"],
               "requirements": ["safetensors>=0.4"]}
    monkeypatch.setattr(dependencies, "plan", lambda path: missing)
    with pytest.raises(unittest.SkipTest, match=r"PyTorch \(>=2.1\), safetensors>=0.4.*light_the_torch install"):
        DCEDiff.DCEDiffTest("test_DCEDiff_cancel_leaves_no_nodes")._requirePackages()
    assert modes == [] and not DCEDiff.DCEDiffTest._requirementsReady
    monkeypatch.setattr(dependencies, "plan", lambda path: {**missing, "torch": "ok", "missing": []})
    DCEDiff.DCEDiffTest("test_DCEDiff_cancel_leaves_no_nodes")._requirePackages()
    assert modes == [] and DCEDiff.DCEDiffTest._requirementsReady
    # from Reload and Test (no --testing) the usual dialog offers the install, once per session
    monkeypatch.setattr(DCEDiff.DCEDiffTest, "_requirementsReady", False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(testingEnabled=lambda: False), raising=False)
    DCEDiff.DCEDiffTest("test_DCEDiff_phantom")._requirePackages()
    DCEDiff.DCEDiffTest("test_DCEDiff_cancel_leaves_no_nodes")._requirePackages()
    assert modes == ["ask"]


def _reload_scripted_module_stand_in(widget):
    """Stand-in for Slicer's ScriptedLoadableModuleWidget.onReload → slicer.util.reloadScriptedModule: DCEDiff.py is
    executed again from its file with importlib and replaces sys.modules["DCEDiff"], nothing else is reloaded
    (Base/Python/slicer/util.py, reloadScriptedModule, lines 1718-1722 at Slicer 583e9b3; the same in 5.6-5.12)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("DCEDiff", MODULE_DIR / "DCEDiff.py")
    reloaded = importlib.util.module_from_spec(spec)
    sys.modules["DCEDiff"] = reloaded
    spec.loader.exec_module(reloaded)


def test_reload_and_test_runs_the_helper_packages_code_as_it_is_now(modules, monkeypatch):
    """Reload (and Reload and Test) re-executes DCEDiff.py only: DCEDiffSlicerLib and DCEDiffLib stayed cached, and
    the reloaded module and its self-test ran the old code of a helper edited since. The widget forgets them first.
    The re-execution is a stand-in (the real one needs Slicer's module manager); the imports are Python's own."""
    DCEDiff, _ = modules
    helpers = ("DCEDiff", "DCEDiffSlicerLib", "DCEDiffLib")
    saved = {name: module for name, module in sys.modules.items() if name.split(".", 1)[0] in helpers}
    base = sys.modules["slicer.ScriptedLoadableModule"].ScriptedLoadableModuleWidget
    monkeypatch.setattr(base, "onReload", _reload_scripted_module_stand_in, raising=False)
    old_runner, old_defaults = DCEDiff.process_runner, DCEDiff.defaults
    assert sys.modules["DCEDiffSlicerLib.process_runner"] is old_runner
    try:
        DCEDiff.DCEDiffWidget().onReload()
        reloaded = sys.modules["DCEDiff"]
        assert reloaded is not DCEDiff
        assert reloaded.process_runner is not old_runner, "the reloaded module kept the cached DCEDiffSlicerLib"
        assert reloaded.defaults is not old_defaults, "the reloaded module kept the cached DCEDiffLib"
        assert Path(reloaded.process_runner.__file__) == Path(old_runner.__file__)  # read again from its file
        # what the reloaded module imports later (inside functions) is the new code too
        assert sys.modules["DCEDiffSlicerLib.process_runner"] is reloaded.process_runner
        stale = [name for name, module in sys.modules.items() if saved.get(name) is module]
        assert stale == [], f"still the modules cached before the reload: {stale}"
    finally:  # the other tests hold the modules imported before: put them back
        for name in [name for name in sys.modules if name.split(".", 1)[0] in helpers]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_forget_helper_modules_drops_the_helper_packages_and_nothing_else(modules):
    """Round-18 mutation audit. forgetHelperModules: 'the helper packages and their submodules' leave sys.modules;
    a module whose name only starts with the same letters, and DCEDiff itself, stay."""
    DCEDiff, _ = modules
    saved = dict(sys.modules)
    try:
        sys.modules["DCEDiffLibrary"] = types.ModuleType("DCEDiffLibrary")   # another package's module
        names = DCEDiff.forgetHelperModules()
        assert {"DCEDiffLib", "DCEDiffLib.defaults", "DCEDiffSlicerLib.process_runner"} <= set(names)
        assert "DCEDiffLibrary" in sys.modules and "DCEDiff" in sys.modules and "DCEDiffLibrary" not in names
        assert [name for name in sys.modules if name.split(".", 1)[0] in DCEDiff.HELPER_PACKAGES] == []
    finally:  # the other tests hold the modules imported before: put them back
        for name in [name for name in sys.modules if name not in saved]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_the_comparison_layout_is_registered_at_start_up_and_after_every_scene_load(modules, monkeypatch):
    """Slicer saves a scene's layout id, not the description of a custom layout: the module registers the
    comparison layout when Slicer's start-up completes and gives it a loaded scene's own description after every
    scene load (DCEDiffSlicerLib/result_display.register_layout), and leaves it when the scene is closed
    (result_display.watch_scene); without a main window it leaves the scene alone."""
    DCEDiff, _ = modules
    from DCEDiffSlicerLib import result_display as rd

    connected = []
    app = types.SimpleNamespace(connect=lambda signal, slot: connected.append((signal, slot)),
                                layoutManager=lambda: None)   # stand-in for slicer.app without a main window
    monkeypatch.setattr(slicer, "app", app, raising=False)
    DCEDiff.DCEDiff(types.SimpleNamespace())
    assert ("startupCompleted()", DCEDiff.registerComparisonLayout) in connected
    DCEDiff.registerComparisonLayout()
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLLayoutNode") == 0
    app.layoutManager = lambda: object()   # a main window: Slicer's layout logic has made the layout node
    layout = rd.layout_node()
    DCEDiff.registerComparisonLayout()
    assert layout.IsLayoutDescription(rd.LAYOUT_ID) and layout.GetViewArrangement() != rd.LAYOUT_ID
    # a scene saved while a result of one view was shown
    saved = slicer.vtkMRMLScene()
    description = rd.layout_xml([{"name": "DCEDiffSyntheticEarly", "target": "early", "column": "synthetic"}], False)
    rd.layout_node(saved).SetAttribute(rd.LAYOUT_ATTRIBUTE, description)
    rd.register_layout(saved)
    rd.layout_node(saved).SetViewArrangement(rd.LAYOUT_ID)
    saved.SetSaveToXMLString(1)
    saved.Commit()
    slicer.mrmlScene.SetLoadFromXMLString(1)
    slicer.mrmlScene.SetSceneXMLString(saved.GetSceneXMLString())
    slicer.mrmlScene.Import()
    assert layout.GetViewArrangement() == rd.LAYOUT_ID and layout.GetCurrentLayoutDescription() == description
    slicer.mrmlScene.Clear(0)   # File > Close Scene: the comparison is left (result_display.watch_scene)
    assert layout.GetViewArrangement() == rd.CLOSED_SCENE_LAYOUT


def test_batch_self_test_class_exists_and_passes(modules):
    _, DCEDiffBatch = modules
    suite = unittest.TestLoader().loadTestsFromTestCase(DCEDiffBatch.DCEDiffBatchTest)
    assert suite.countTestCases() == 2
    result = unittest.TextTestRunner(stream=open(os.devnull, "w")).run(suite)
    assert result.wasSuccessful(), result.failures + result.errors


def test_batch_main_turns_every_failure_into_exit_code_2(modules, monkeypatch, capsys):
    _, DCEDiffBatch = modules

    def broken(argv):
        raise KeyError("something unexpected")

    monkeypatch.setattr(DCEDiffBatch, "run", broken)
    assert DCEDiffBatch.main([]) == DCEDiffBatch.EXIT_ERROR
    assert "DCEDiffBatch: error: KeyError: 'something unexpected'" in capsys.readouterr().err

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(DCEDiffBatch, "run", interrupted)
    assert DCEDiffBatch.main([]) == DCEDiffBatch.EXIT_CANCELLED


@pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")
def test_batch_script_always_exits_with_a_code_even_on_an_import_error(tmp_path):
    # Run as Slicer runs it (__main__), with only the ScriptedLoadableModule stand-in: importing the GUI module
    # then fails (no qt), an ImportError the old script did not catch, which left a headless Slicer running.
    bootstrap = STAND_INS.replace('"qt": QtStandIn, ', "") + (
        "import runpy, sys\n"
        f"sys.argv = [{str(MODULE_DIR / 'DCEDiffBatch.py')!r}] + sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "print('still running after the script', flush=True)\n")
    inputs = []
    for key in ("t2w", "pd", "adc", "t1pre"):
        inputs += [f"--{key}", str(CASE / f"{key}.nii.gz")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", bootstrap, *inputs, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "DCEDiffBatch: error: ModuleNotFoundError" in done.stderr and "qt" in done.stderr
    assert "still running" not in done.stdout
    help_run = subprocess.run([sys.executable, "-c", bootstrap, "--help"], capture_output=True, text=True,
                              timeout=120, env=env, cwd=str(tmp_path))
    assert help_run.returncode == 0 and "--install-dependencies" in help_run.stdout and "--center" in help_run.stdout


def test_pd_may_stay_empty_only_for_a_model_trained_without_it(modules, monkeypatch, tmp_path):
    DCEDiff, _ = modules
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from random_model import save_copy_allowing_missing_pd, save_random_model

    widget, p = make_widget(DCEDiff, monkeypatch)
    plain = save_random_model(tmp_path)
    dropout = save_copy_allowing_missing_pd(plain)
    p.t2w, p.adc, p.t1pre = object(), object(), object()  # selected volumes (PD left empty)
    for model, ready in ((str(plain), False), (str(dropout), True)):
        p.modelFile = model
        widget._updateApplyButton()
        assert widget.ui.applyButton.enabled is ready, model
    assert "without PD" in widget.ui.applyButton.toolTip
    p.modelFile = str(plain)
    widget._updateApplyButton()
    assert widget.ui.applyButton.toolTip.startswith("Select T2W, PD, ADC and T1 pre-contrast")
    # the logic refuses a missing PD for a model that needs it, naming PD and what would work, before any work
    with pytest.raises(ValueError, match=r"PD: no input volume selected \(the model needs it; .*augment.drop_pd"):
        widget.logic.process(object(), None, object(), object(), model=str(plain))
    with pytest.raises(ValueError, match="ADC: no input volume selected"):
        widget.logic.process(object(), None, None, object(), model=str(dropout))
    # a finished run without PD says so in the status line
    widget.onCompleted(DCEDiff.DCEDiffResult({}, {}, 1.0, missingInputs=("pd",)))
    assert "Made without PD" in widget.ui.statusLabel.text


@pytest.mark.parametrize("field, value, unsaid, said", [
    ("intensityNotes", {"t1pre": "t1pre: bright tail 3.1×", "pd": "pd: bright tail 2.4×"}, "intensity range",
     ["intensity range of PD, T1PRE was set from the bulk", "DCEDiff.Provenance.intensity_notes"]),
    ("enhancementRescaled", {"factor": 0.64, "gland_level": 0.1, "training_minimum": 0.153946, "note": "…"},
     "scaled by", ["synthetic enhancement was scaled by 0.64", "DCEDiff.Provenance.enhancement_rescaled"]),
    ("t1preCoverage", {"covered_share": 0.913, "uncovered_share": 0.087, "slices_mostly_uncovered": [16],
                       "note": "…"},
     "does not cover", ["T1-pre does not cover 8.7% of the synthesized region (most of working-grid slice(s) 16, "
                        "counted from the inferior end of the engine's 3 mm grid, not the T2W's slice numbers)",
                        "DCEDiff.Provenance.t1pre_coverage"]),
], ids=["intensity range set from the bulk", "enhancement rescaled", "T1-pre short of the region"])
def test_a_run_whose_inputs_or_result_were_adjusted_says_so(modules, monkeypatch, field, value, unsaid, said):
    """The status line after a run says nothing of an adjustment the run did not make; after one that made it, what
    was adjusted and the provenance attribute that records it."""
    DCEDiff, _ = modules
    widget, _ = make_widget(DCEDiff, monkeypatch)
    widget.onCompleted(DCEDiff.DCEDiffResult({}, {}, 1.0))
    assert unsaid not in widget.ui.statusLabel.text
    widget.onCompleted(DCEDiff.DCEDiffResult({}, {}, 1.0, **{field: value}))
    for text in said:
        assert text in widget.ui.statusLabel.text


def batch_argv(tmp_path):
    """The batch script's four required inputs as placeholder files in ``tmp_path``/case (their bytes are the role
    names: for a test that replaces ``slicer.util.loadVolume``) and ``--out`` ``tmp_path``/out."""
    case = tmp_path / "case"
    case.mkdir()
    argv = ["--out", str(tmp_path / "out")]
    for key in ("t2w", "pd", "adc", "t1pre"):
        (case / f"{key}.nii.gz").write_bytes(key.encode())
        argv += [f"--{key}", str(case / f"{key}.nii.gz")]
    return argv


def _missing_inputs(tmp_path, with_pd=True):
    missing = str(tmp_path / "missing.nii.gz")
    args = ["--t2w", missing, "--adc", missing, "--t1pre", missing]
    return args + (["--pd", missing] if with_pd else [])


def test_batch_pd_may_be_left_out_on_the_command_line(modules, tmp_path, capsys):
    """docs/slicer.md: 'the batch script's --pd follows the same rule' (PD may stay empty for a model trained
    with augment.drop_pd; the logic decides). Without --pd the script gets past argument parsing to the inputs."""
    _, DCEDiffBatch = modules
    args = DCEDiffBatch.buildParser().parse_args(_missing_inputs(tmp_path, with_pd=False) + ["--out", "o"])
    assert args.pd is None
    code = DCEDiffBatch.main(_missing_inputs(tmp_path, with_pd=False) + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR and "T2W (--t2w):" in err and "is not a file" in err, err


def test_batch_sampling_defaults_are_the_engines(modules):
    """the batch script runs what `dcediff synthesize` runs: without --steps the model's own count
    (steps None, docs/slicer.md), and the same sampler, samples, seed and device defaults as the engine's CLI."""
    import argparse

    from DCEDiffLib.commands.common import add_sampling_arguments

    _, DCEDiffBatch = modules
    engine = argparse.ArgumentParser()
    add_sampling_arguments(engine)
    engine_defaults = engine.parse_args([])
    batch = DCEDiffBatch.buildParser().parse_args(["--t2w", "a", "--adc", "b", "--t1pre", "c", "--out", "d"])
    for name in ("model", "sampler", "steps", "samples", "seed", "device"):
        assert getattr(batch, name) == getattr(engine_defaults, name), name
    assert batch.steps is None


def test_batch_accepts_a_negative_first_centre_coordinate(modules, tmp_path, capsys):
    """'--center -12,30,4' is a value (RAS mm are often negative), not an option: the script gets past
    parsing to the inputs (the T2W, missing here), with no usage error about --center."""
    _, DCEDiffBatch = modules
    code = DCEDiffBatch.main(_missing_inputs(tmp_path) + ["--center", "-12,30,4", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR
    assert "T2W (--t2w):" in err and "is not a file" in err and "--center" not in err, err


def test_batch_accepts_an_existing_empty_output_folder(modules, tmp_path, capsys):
    """docs/DCEDiffBatch --out: 'output folder (created; must not exist or be empty)': an empty folder is
    accepted (the script goes on to the inputs); a non-empty one is refused by name."""
    _, DCEDiffBatch = modules
    out = tmp_path / "out"
    out.mkdir()
    code = DCEDiffBatch.main(_missing_inputs(tmp_path) + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR and "T2W (--t2w):" in err and "--out" not in err, err
    (out / "x").write_text("x")
    assert DCEDiffBatch.main(_missing_inputs(tmp_path) + ["--out", str(out)]) == DCEDiffBatch.EXIT_ERROR
    assert "--out" in capsys.readouterr().err


def test_a_cancelled_batch_run_exits_with_the_cancelled_code_and_writes_nothing(modules, tmp_path):
    """The batch script's exit codes (docs/slicer.md): 3 when the run was cancelled, and no result file."""
    DCEDiff, DCEDiffBatch = modules
    out = tmp_path / "out"
    cancelled = DCEDiff.DCEDiffResult({}, {}, 1.0, cancelled=True)
    assert DCEDiffBatch.finishRun(cancelled, out) == DCEDiffBatch.EXIT_CANCELLED
    assert not out.exists()
    assert DCEDiffBatch.finishRun(DCEDiff.DCEDiffResult({}, {}, 1.0), out) == DCEDiffBatch.EXIT_OK


def test_batch_results_carry_the_synthetic_and_out_of_distribution_marks_beside_them(modules, tmp_path):
    """A .nrrd saved by Slicer's storage node keeps no node attributes: the batch script writes DCEDiff.json beside
    the files, with every result node's DCEDiff.* attributes (synthetic, the out-of-distribution verdict) and the
    run's verdict and provenance, so a file is marked synthetic by more than its name."""
    DCEDiff, DCEDiffBatch = modules
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "synthetic_early")
    node.SetAttribute("DCEDiff.Synthetic", "true")
    node.SetAttribute("DCEDiff.OutOfDistribution", "score 3.1 above 1.5: ADC units")
    node.SetAttribute("Unrelated", "x")
    verdict = {"score": 3.1, "threshold": 1.5, "reasons": ["ADC units"]}
    result = DCEDiff.DCEDiffResult({"synthetic_early": node}, {"model": "m"}, 1.0, outOfDistribution=verdict)
    DCEDiffBatch.writeMarks({"synthetic_early.nrrd": node}, result, tmp_path / DCEDiffBatch.MARKS_FILE)
    marks = json.loads((tmp_path / "DCEDiff.json").read_text(encoding="utf-8"))
    assert marks["synthetic"] is True and marks["out_of_distribution"] == verdict
    assert marks["provenance"]["model"] == "m"
    assert marks["files"]["synthetic_early.nrrd"] == {"DCEDiff.OutOfDistribution": "score 3.1 above 1.5: ADC units",
                                                      "DCEDiff.Synthetic": "true"}


def test_batch_passes_the_dce_pre_contrast_frame_and_names_it_when_missing(modules, tmp_path, capsys):
    """--dce-baseline (the acquired DCE's own pre-contrast frame) is an input of the batch script like the others: a
    path that is not a file is named by its label and option before anything runs."""
    _, DCEDiffBatch = modules
    files = ["--" + k.replace("_", "-") + "=" + str(CASE / f"{k}.nii.gz")
             for k in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")]
    missing = str(tmp_path / "frame.nii.gz")
    assert DCEDiffBatch.buildParser().parse_args(files + ["--dce-baseline", missing, "--out", "o"]).dce_baseline \
        == missing
    code = DCEDiffBatch.main(files + ["--dce-baseline", missing, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == DCEDiffBatch.EXIT_ERROR
    assert "acquired DCE pre-contrast frame (--dce-baseline):" in err and "is not a file" in err, err


def test_batch_hands_the_dce_pre_contrast_frame_to_the_logic_as_its_own_input(modules, tmp_path, monkeypatch):
    """--dce-baseline FILE reaches DCEDiffLogic.process as dceBaseline, as the volume loaded from that file (not
    dropped, not given in another role)."""
    DCEDiff, DCEDiffBatch = modules
    keys = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")
    files = {k: str(CASE / f"{k}.nii.gz") for k in keys}
    files["dce_baseline"] = str(CASE / "t1pre.nii.gz")
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path, properties=None: ("node", path))
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, **kwargs: None)
    seen = {}

    def process(self, t2w, pd, adc, t1pre, dceEarly=None, dceLate=None, **kwargs):
        seen.update(t1pre=t1pre, dce_early=dceEarly, dce_baseline=kwargs.get("dceBaseline"))
        return DCEDiff.DCEDiffResult({}, {}, 1.0, cancelled=True)

    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", process)
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in files.items()] + ["--out", str(tmp_path / "out")]
    assert DCEDiffBatch.main(argv) == DCEDiffBatch.EXIT_CANCELLED
    assert seen["dce_baseline"] == ("node", files["dce_baseline"])
    assert seen["dce_early"] == ("node", files["dce_early"])
