"""The DCEDiff widget across Slicer's module life cycle: enter()/exit() on every module switch, scene close, scene
load, module reload (cleanup()), on a real ``vtkMRMLScriptedModuleNode`` in a real ``vtkMRMLScene`` (slicer-core).

What slicer-core lacks is replaced by stand-ins, named as such: ``QtStandIn`` (the ``qt`` module), ``I18nStandIn``,
``ScriptedLoadableModuleStandIn`` (its logic's ``getParameterNode`` is Slicer's: the module's singleton
``vtkMRMLScriptedModuleNode``, created when missing), ``ParameterNodeWrapperStandIn`` and the panel's widgets
(``WidgetStandIn``). The wrapper stand-in follows the rules of Slicer's ``Base/Python/slicer/parameterNodeWrapper``
that these tests rest on:

- ``wrapper.py`` ``_initMethod``: wrapping a node writes the default of every field the node does not hold, and
  ``_CachedParameterWrapper._onModified`` / ``_Parameter.read`` write it again on the node's next ModifiedEvent
  (a scene close resets the node; the wrappers that ``slicer.util.VTKObservationMixin`` still holds refill it);
- ``validators.py``: ``Choice`` and ``WithinRange`` refuse another value with ValueError (``serializers.py``
  ``ValidatedSerializer.write`` validates before it writes);
- ``wrapper.py`` ``_CachedParameterWrapper.write``: a write is one ModifiedEvent of the node (``NodeModify``);
- ``wrapper.py`` ``_connectParametersToGui`` adds a ModifiedEvent observer on the node that writes the values into
  the panel's widgets; only ``_disconnectGui(tag)`` removes it;
- ``AddObserver``/``RemoveObserver`` of the wrapper are the node's.

Slicer calls ``enter()`` whenever the module is selected (``qSlicerScriptedLoadableModuleWidget::enter``), the
widget re-wraps the node each time (Slicer's template ``initializeParameterNode``), and
``slicer.util.reloadScriptedModule`` calls the old widget's ``cleanup()``, never its ``exit()``.
"""

import json
import sys
import types
import typing
import weakref
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402
import vtk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slicer_stand_ins import modules_restored  # noqa: E402
from test_slicer_module import WidgetStandIn as ModuleWidgetStandIn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODULE_DIR = ROOT / "DCEDiff"
WIDGETS = []  # made by make_widget; their observers are removed before the scene is released
STANDIN_KEYS = ("qt", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper", "slicer.i18n", "DCEDiff")


class _Any:
    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return _Any()

    def __getattr__(self, name):
        return _Any()


class Choice:
    """Stand-in for Slicer's ``validators.Choice``."""

    def __init__(self, choices):
        self.choices = list(choices)

    def validate(self, value):
        """Slicer's rule: a value outside the choices raises ValueError."""
        if value not in self.choices:
            raise ValueError(f"Value is {value}, but must be in one of the following: {self.choices}")


class WithinRange:
    """Stand-in for Slicer's ``validators.WithinRange``."""

    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value):
        """Slicer's rule: a value outside [minimum, maximum] raises ValueError."""
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"Value must be within range [{self.minimum}, {self.maximum}], is {value}")


def _field(name, annotation, default):
    """A property on the wrapped node: str/int as parameters, node fields as node references."""
    base, validators = annotation, ()
    if typing.get_origin(annotation) is typing.Annotated:
        base, *validators = typing.get_args(annotation)
    isNode = base not in (str, int)

    def read(self):
        if isNode:
            return self.parameterNode.GetNodeReference(name)
        return base(self.parameterNode.GetParameter(name))

    def write(self, value):
        for validator in validators:
            validator.validate(value)
        node = self.parameterNode
        wasModifying = node.StartModify()
        try:
            if isNode:
                node.SetParameter(name, "")
                node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
            else:
                node.SetParameter(name, str(value))
        finally:
            node.EndModify(wasModifying)

    return property(read, write)


def parameterNodeWrapper(cls):
    """Stand-in for Slicer's ``@parameterNodeWrapper`` (the rules listed in the module docstring)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    defaults = {name: getattr(cls, name, None) for name in hints}

    def writeMissingDefaults(self):
        for name, default in defaults.items():
            if not self.parameterNode.HasParameter(name):
                setattr(self, name, default)

    def __init__(self, parameterNode):
        self.parameterNode = parameterNode
        self.guiObservers = {}
        writeMissingDefaults(self)
        # _CachedParameterWrapper re-reads on every ModifiedEvent, and _Parameter.read writes the default of a field
        # the node no longer holds (a scene close resets the node)
        selfRef = weakref.ref(self)
        parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent,
                                  lambda caller, event: selfRef() is not None and writeMissingDefaults(selfRef()))

    def connectGui(self, gui):
        tag = len(self.guiObservers) + 1
        self.guiObservers[tag] = self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda c, e: None)
        return tag

    def disconnectGui(self, tag):
        if tag in self.guiObservers:
            self.parameterNode.RemoveObserver(self.guiObservers.pop(tag))

    for name, annotation in hints.items():
        setattr(cls, name, _field(name, annotation, defaults[name]))
    cls.__init__, cls.connectGui, cls.disconnectGui = __init__, connectGui, disconnectGui
    cls.AddObserver = lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(event, callback,
                                                                                                 priority)
    cls.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    return cls


class ScriptedLoadableModuleLogic:
    """Stand-in; ``getParameterNode`` is Slicer's: the module's singleton parameter node, made when missing."""

    def __init__(self, parent=None):
        self.moduleName = type(self).__name__[:-len("Logic")]

    def getParameterNode(self):
        """The singleton ``vtkMRMLScriptedModuleNode`` of the module (Slicer's ScriptedLoadableModule.py)."""
        node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)
            node.SetSingletonTag(self.moduleName)
            node = slicer.mrmlScene.AddNode(node)
        node.SetAttribute("ModuleName", self.moduleName)
        return node


class ScriptedLoadableModuleWidget:
    """Stand-in: the parent (``isEntered``) and layout that DCEDiffWidget.setup() uses."""

    def __init__(self, parent=None):
        self.parent = parent
        self.layout = types.SimpleNamespace(addWidget=lambda widget: None)

    def setup(self):
        """Slicer's adds the developer section; nothing here."""


class WidgetStandIn(ModuleWidgetStandIn):
    """Test double of a Qt widget of DCEDiff.ui (test_slicer_module's), which setup() also connects signals of."""

    def __init__(self, name=""):
        super().__init__(name)

    def connect(self, signal, slot):
        pass

    def setMRMLScene(self, scene):
        pass


class UiStandIn:
    """Test double of ``slicer.util.childWidgetVariables(uiWidget)``."""

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        widget = WidgetStandIn()
        setattr(self, name, widget)
        return widget


@pytest.fixture
def DCEDiff(monkeypatch):
    """DCEDiff.py imported anew under the stand-ins of the module docstring; sys.modules as it was afterwards."""
    with modules_restored(STANDIN_KEYS):
        QtStandIn = types.ModuleType("qt")
        for name in ("QIcon", "QTimer", "QFileDialog", "QWidget"):
            setattr(QtStandIn, name, type(name, (_Any,), {}))
        I18nStandIn = types.ModuleType("slicer.i18n")
        I18nStandIn.tr = lambda text: text
        I18nStandIn.translate = lambda context, text: text
        ScriptedLoadableModuleStandIn = types.ModuleType("slicer.ScriptedLoadableModule")
        ScriptedLoadableModuleStandIn.ScriptedLoadableModule = type("ScriptedLoadableModule", (), {})
        ScriptedLoadableModuleStandIn.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
        ScriptedLoadableModuleStandIn.ScriptedLoadableModuleWidget = ScriptedLoadableModuleWidget
        ScriptedLoadableModuleStandIn.ScriptedLoadableModuleTest = type("ScriptedLoadableModuleTest", (), {})
        ParameterNodeWrapperStandIn = types.ModuleType("slicer.parameterNodeWrapper")
        ParameterNodeWrapperStandIn.parameterNodeWrapper = parameterNodeWrapper
        ParameterNodeWrapperStandIn.Choice, ParameterNodeWrapperStandIn.WithinRange = Choice, WithinRange
        sys.modules.update({"qt": QtStandIn, "slicer.i18n": I18nStandIn,
                            "slicer.ScriptedLoadableModule": ScriptedLoadableModuleStandIn,
                            "slicer.parameterNodeWrapper": ParameterNodeWrapperStandIn})
        sys.modules.pop("DCEDiff", None)
        sys.path.insert(0, str(MODULE_DIR))
        monkeypatch.setattr(slicer, "mrmlScene", slicer.vtkMRMLScene(), raising=False)
        monkeypatch.setattr(slicer.util, "loadUI", lambda path: WidgetStandIn())
        monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda widget: UiStandIn())
        try:
            import DCEDiff

            yield DCEDiff
        finally:
            for widget in WIDGETS:  # no scene event may reach a widget being garbage-collected
                widget.removeObservers()
            WIDGETS.clear()
            sys.path.remove(str(MODULE_DIR))


def make_widget(DCEDiff):
    """The widget as Slicer builds it: constructed with its module panel, then setup() (which connects the panel)."""
    widget = DCEDiff.DCEDiffWidget(types.SimpleNamespace(isEntered=True))
    WIDGETS.append(widget)
    widget.setup()
    return widget


def shipped_steps(DCEDiff, sampler="dpmpp"):
    return DCEDiff.modelDefaultSteps("", sampler)


def test_a_new_parameter_node_starts_at_the_models_own_step_count(DCEDiff):
    """A new scene, and a closed one, start at the shipped model's own count (docs/slicer.md: 'the box shows the
    model's own count'), not the wrapper's default."""
    widget = make_widget(DCEDiff)
    assert widget._parameterNode.steps == shipped_steps(DCEDiff) != DCEDiff.defaults.DEFAULT_STEPS
    widget._parameterNode.steps = 7
    widget.exit()
    widget.enter()  # one more wrapper, kept alive by VTKObservationMixin as in Slicer
    slicer.mrmlScene.Clear(0)  # Slicer resets the singleton parameter node; the widget reconnects (entered)
    assert widget._parameterNode.steps == shipped_steps(DCEDiff)


def test_a_step_count_the_user_chose_survives_leaving_and_reentering_the_module(DCEDiff):
    """docs/slicer.md: 'a count you type is kept'. Slicer calls enter() on every module switch; the widget re-wraps
    the parameter node and ran the sampler/model rule on it as if the sampler had changed: 5 steps with the shipped
    model went back to its own count (1), ddpm with 50 steps back to 1000."""
    widget = make_widget(DCEDiff)
    widget._parameterNode.steps = 5
    widget.exit()
    widget.enter()
    assert widget._parameterNode.steps == 5
    widget._parameterNode.sampler = "ddpm"  # the rule still runs on a real change of the sampler
    assert widget._parameterNode.steps == 1000
    widget._parameterNode.steps = 50
    widget.exit()
    widget.enter()
    assert widget._parameterNode.steps == 50
    widget._parameterNode.sampler = "dpmpp"
    assert widget._parameterNode.steps == 50  # a typed count is kept when leaving ddpm too


def _saved_scene(DCEDiff, sampler, steps):
    widget = make_widget(DCEDiff)
    widget._parameterNode.sampler = sampler
    widget._parameterNode.steps = steps
    slicer.mrmlScene.SetSaveToXMLString(1)
    slicer.mrmlScene.Commit()
    xml = slicer.mrmlScene.GetSceneXMLString()
    widget.cleanup()
    return xml


def _load(xml):
    """File > Load scene as Slicer does it: the scene is closed, then the file imported."""
    slicer.mrmlScene.Clear(0)
    slicer.mrmlScene.SetLoadFromXMLString(1)
    slicer.mrmlScene.SetSceneXMLString(xml)
    slicer.mrmlScene.Import()


@pytest.mark.parametrize("entered", [True, False])
def test_a_saved_scene_reopens_with_its_sampler_and_steps(DCEDiff, entered):
    """The scene import sets the saved sampler and steps on the connected parameter node: the sampler rule took it
    for the user's change (ddpm with 50 steps reopened with 1000); loaded while another module was shown, the next
    enter() reset it the same way."""
    xml = _saved_scene(DCEDiff, "ddpm", 50)
    widget = make_widget(DCEDiff)
    if not entered:
        widget.exit()
        widget.parent.isEntered = False
    _load(xml)
    if not entered:
        widget.parent.isEntered = True
        widget.enter()
    assert (widget._parameterNode.sampler, widget._parameterNode.steps) == ("ddpm", 50)


def test_cleanup_disconnects_the_panel_from_the_parameter_node(DCEDiff):
    """Module reload (slicer.util.reloadScriptedModule) calls cleanup(), not exit(); the singleton parameter node
    stays in the scene. The GUI connection's observer on it stayed too: the old, hidden panel was written on every
    change for the rest of the session, one more panel after every reload."""
    widget = make_widget(DCEDiff)
    wrapper = widget._parameterNode
    assert wrapper.guiObservers
    widget.cleanup()
    assert wrapper.guiObservers == {}
    assert not slicer.mrmlScene.HasObserver(slicer.vtkMRMLScene.StartCloseEvent)
    widget.ui.modelInfoLabel.text = "old panel"
    reloaded = make_widget(DCEDiff)  # the reloaded widget connects as the first one did
    assert reloaded._parameterNode.guiObservers
    reloaded._parameterNode.modelFile = "/elsewhere/other.safetensors"
    assert widget.ui.modelInfoLabel.text == "old panel"
    assert reloaded.ui.modelInfoLabel.text.startswith("The imported model file /elsewhere/other.safetensors is missing")


@pytest.mark.parametrize("card_steps,box_steps", [(2000, 1000), (0, 1)])
def test_an_imported_cards_count_outside_the_steps_box_is_clamped_and_the_panel_updated(DCEDiff, tmp_path,
                                                                                         card_steps, box_steps):
    """An imported card's ``sampling.residual_steps`` above the box's 1000: Slicer's WithinRange refused the write
    with ValueError inside the parameter node's observer, which left the panel naming the previous model. The clamp
    works at both ends: a count of 0 sets 1 step (WithinRange(1, MAX_STEPS) refuses 0; mutation audit: kills the
    lower bound of the clamp dropped)."""
    model = tmp_path / f"card{card_steps}.safetensors"
    model.write_bytes(b"")
    model.with_suffix(".json").write_text(
        json.dumps({"objective": "residual", "sampling": {"residual_steps": card_steps}}), encoding="utf-8")
    widget = make_widget(DCEDiff)
    widget._parameterNode.modelFile = str(model)
    assert widget._parameterNode.steps == box_steps  # the box's top or bottom (1, MAX_STEPS)
    assert widget.ui.modelInfoLabel.text.startswith(f"Imported model: card{card_steps}")


def test_leaving_the_module_stops_observing_the_parameter_node(DCEDiff):
    """exit() (Slicer calls it when another module is shown) disconnects the panel and stops observing the parameter
    node: a change made meanwhile (a script, another module) is not written into the hidden panel, and enter() shows
    it. Mutation audit: kills the observer's removal dropped from _detachParameterNode."""
    widget = make_widget(DCEDiff)
    widget.exit()
    assert not widget.hasObserver(widget._parameterNode, vtk.vtkCommand.ModifiedEvent,
                                  widget._onParameterNodeModified)
    widget.ui.modelInfoLabel.text = "hidden panel"
    widget.logic.getParameterNode().modelFile = "/elsewhere/other.safetensors"
    assert widget.ui.modelInfoLabel.text == "hidden panel"
    widget.enter()
    assert widget.ui.modelInfoLabel.text.startswith("The imported model file /elsewhere/other.safetensors is missing")
