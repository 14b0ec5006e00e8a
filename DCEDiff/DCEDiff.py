"""DCEDiff: synthetic early and late prostate DCE-MRI from T2W, PD, ADC and T1 pre-contrast (3D Slicer module).

Thin on purpose: the engine is ``DCEDiffLib`` (run in a ``PythonSlicer`` subprocess, see ``docs/slicer.md``), the
scene code is ``DCEDiffSlicerLib.scene_io``, the subprocess handling ``DCEDiffSlicerLib.process_runner``. Nothing
heavy is imported when Slicer loads the module: no torch, no SimpleITK, no dependency installation.
"""

import dataclasses
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Callable, Dict, Optional, Union

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

MODULE_DIR = Path(__file__).resolve().parent


def _engineRoot() -> Path:
    """The folder holding DCEDiffLib/ and Resources/: this folder once installed (qt-scripted-modules/), the
    repository root when the module is loaded from a source checkout (DCEDiff/ is then one level down)."""
    for candidate in (MODULE_DIR, MODULE_DIR.parent):
        if (candidate / "DCEDiffLib" / "__init__.py").is_file():
            return candidate
    return MODULE_DIR


ENGINE_ROOT = _engineRoot()
if str(ENGINE_ROOT) not in sys.path:
    sys.path.append(str(ENGINE_ROOT))

from DCEDiffLib import defaults  # noqa: E402  (plain constants, no torch)
from DCEDiffSlicerLib import model_import, process_runner  # noqa: E402  (plain Python; no torch)


# The module's helper packages, imported into Slicer's process. Slicer's Reload re-executes DCEDiff.py only;
# forgetHelperModules() makes it import these from their files again too.
HELPER_PACKAGES = ("DCEDiffSlicerLib", "DCEDiffLib")


def forgetHelperModules() -> list:
    """Drop the helper packages (:data:`HELPER_PACKAGES`) and their submodules from ``sys.modules``, so that the
    next import reads them from their files; returns the names dropped."""
    names = [name for name in list(sys.modules) if name.split(".", 1)[0] in HELPER_PACKAGES]
    for name in names:
        del sys.modules[name]
    return names


def resourceFile(relativePath: str) -> Path:
    """A file under Resources/ (installed: next to DCEDiff.py; source checkout: the repository root)."""
    return ENGINE_ROOT / "Resources" / relativePath


SAMPLE_CASE = resourceFile("SampleData/phantom_case")
SAMPLE_FILES = (("t2w", "T2W"), ("pd", "PD"), ("adc", "ADC"), ("t1pre", "T1pre"), ("dce_early", "DCE early"),
                ("dce_late", "DCE late"))
DOCS_URL = "https://github.com/dcediff/SlicerDCEDiff/blob/main/docs/slicer.md"
MAX_STEPS = 1000  # the steps box's top (the paper's ancestral sampler, ddpm, runs 1000)
PAPER = ('"DCE-diff: Diffusion Model for Synthesis of Early and Late Dynamic Contrast-Enhanced MR Images from '
         'Non-Contrast Multimodal Inputs", CVPR Workshops 2024, doi:10.1109/CVPRW63382.2024.00525')


#
# DCEDiff
#


class DCEDiff(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DCEDiff")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["DCEDiff maintainers (DCEDiff project)"]
        self.parent.helpText = _(
            "Synthesizes early- and late-response DCE-MRI of the prostate from four non-contrast inputs (T2W, proton "
            "density, ADC map, T1 pre-contrast) with a conditional diffusion model (DCE-diff). "
            "Select the four inputs (optionally the acquired early and late DCE, to see residuals and PSNR/SSIM/MAE, "
            "and a point or ROI at the prostate centre; default: the T2W centre), choose the sampler and press Apply. "
            "Results are new volumes named after the T2W, e.g. '&lt;T2W&gt; synthetic early DCE', flagged as "
            "synthetic (node attribute DCEDiff.Synthetic and the provenance: model, sampler, steps, seed). "
            "<b>Synthetic images are not acquired images; research use only, not a medical device.</b> "
            "Batch mode and details: <a href=\"{url}\">the DCEDiff documentation</a>.").format(url=DOCS_URL)
        self.parent.acknowledgementText = _(
            "DCEDiff implements and extends {paper}. The shipped model was trained on realistic synthetic (phantom) "
            "cases only.").format(paper=PAPER)
        icon = resourceFile("Icons/DCEDiff.png")
        if icon.is_file() and MODULE_DIR != ENGINE_ROOT:  # installed modules get their icon from Resources/ already
            self.parent.icon = qt.QIcon(str(icon))
        slicer.app.connect("startupCompleted()", registerSampleData)
        slicer.app.connect("startupCompleted()", registerComparisonLayout)


def registerSampleData():
    """The shipped phantom exam as a Sample Data entry (local files; nothing is downloaded). Its button runs
    :func:`loadSamplePhantom`, which marks the nodes as a phantom. ``SampleData.downloadSample`` from Python takes
    the files through Slicer's cache instead (the checksums keep a copy of an older version from being loaded) and
    leaves the nodes unmarked: that exam is flagged out of distribution (docs/slicer.md)."""
    import SampleData

    if not (SAMPLE_CASE / "t2w.nii.gz").is_file():
        return
    paths = [SAMPLE_CASE / f"{key}.nii.gz" for key, _label in SAMPLE_FILES]
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="DCEDiff",
        sampleName="DCEDiffPhantom",
        thumbnailFileName=str(resourceFile("Icons/DCEDiff.png")),
        uris=[path.as_uri() for path in paths],
        fileNames=[f"DCEDiffPhantom_{key}.nii.gz" for key, _label in SAMPLE_FILES],
        nodeNames=[f"DCEDiffPhantom {label}" for _key, label in SAMPLE_FILES],
        checksums=[f"SHA256:{hashlib.sha256(path.read_bytes()).hexdigest()}" for path in paths],
        customDownloader=loadSamplePhantom,
    )


def loadSamplePhantom(source=None):
    """Sample Data's loader of the shipped phantom exam (``source``: the Sample Data entry, unused): one node a
    series, marked as a DCEDiff phantom on the node (``scene_io.load_phantom_volume``), so that the exam is not
    flagged out of distribution, now or after the scene is saved and reopened. Shows the T2W. Returns the nodes."""
    from DCEDiffSlicerLib import scene_io

    nodes = [scene_io.load_phantom_volume(SAMPLE_CASE / f"{key}.nii.gz", f"DCEDiffPhantom {label}")
             for key, label in SAMPLE_FILES]
    app = getattr(slicer, "app", None)
    if app is not None and app.layoutManager() is not None:  # batch mode has no slice views
        # as Slicer's own volume loader does (PropagateVolumeSelection: every layer set): keeping the foreground
        # left an earlier result's |residual| or uncertainty overlay over the new T2W in the comparison views
        slicer.util.setSliceViewerLayers(background=nodes[0], foreground=None, label=None, fit=True)
    return nodes


def registerComparisonLayout():
    """The comparison layout, known from start-up on and again after every scene load (Slicer saves a scene's layout
    id, not custom layout descriptions): a scene saved while a result was shown reopens with it in a new session,
    with its own views only, and File > Close Scene leaves it (``result_display.watch_scene``)."""
    if slicer.app.layoutManager() is None:  # no main window (batch): no views to lay out
        return
    from DCEDiffSlicerLib import result_display

    result_display.register_layout(slicer.mrmlScene)
    result_display.watch_scene(slicer.mrmlScene)


#
# DCEDiffParameterNode
#


@parameterNodeWrapper
class DCEDiffParameterNode:
    """Inputs and settings of one synthesis. Empty ``modelFile`` = the shipped model."""

    t2w: vtkMRMLScalarVolumeNode
    pd: vtkMRMLScalarVolumeNode
    adc: vtkMRMLScalarVolumeNode
    t1pre: vtkMRMLScalarVolumeNode
    dceEarly: vtkMRMLScalarVolumeNode
    dceLate: vtkMRMLScalarVolumeNode
    dceBaseline: vtkMRMLScalarVolumeNode  # the acquired DCE's own pre-contrast frame (optional, with the two frames)
    # Optional: Slicer's parameterNodeWrapper writes a union only through a member type that holds the value, and it
    # writes the default (None) when it wraps a new parameter node; without None that raised TypeError
    center: Optional[Union[vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode]]
    modelFile: str = ""
    sampler: Annotated[str, Choice(list(process_runner.SAMPLERS))] = defaults.DEFAULT_SAMPLER
    steps: Annotated[int, WithinRange(1, MAX_STEPS)] = defaults.DEFAULT_STEPS
    samples: Annotated[int, WithinRange(1, 16)] = defaults.DEFAULT_SAMPLES
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    device: Annotated[str, Choice(list(process_runner.DEVICES))] = "auto"


#
# DCEDiffWidget
#


class DCEDiffWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._lastSampler = None
        self._lastModelFile = None  # None: no parameter node seen yet (the steps box holds the engine default)
        self._runStarted = None
        self._starting = False  # Apply pressed; packages being checked or installed (minutes for torch)
        self._lastResult = None  # the last run's DCEDiffResult: what "Send results to DICOM database" writes

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(str(resourceFile("UI/DCEDiff.ui")))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DCEDiffLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModel)
        self.ui.shippedModelButton.connect("clicked(bool)", self.onUseShippedModel)
        self.ui.fillFromStudyButton.connect("clicked(bool)", self.onFillFromStudy)
        self.ui.sendToDicomButton.connect("clicked(bool)", self.onSendToDicom)
        self.ui.installProstateFinderButton.connect("clicked(bool)", self.onInstallProstateFinder)
        # No slot on the sampler combo box: the steps rule runs on the parameter node's ModifiedEvent
        # (_onParameterNodeModified), after the wrapper has stored the new sampler, whatever the connection order.
        self.ui.progressBar.setVisible(False)
        self.ui.statusLabel.text = ""
        self._updateProstateFinderState()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Module reload or application exit: stop the engine and detach every callback into this widget, so
        that no timer calls a deleted widget. The panel is disconnected from the parameter node too: Slicer's
        reloadScriptedModule calls cleanup(), not exit(), and the singleton parameter node outlives the widget (a
        connected wrapper would keep writing into the old, hidden panel, one more after every reload)."""
        if self.logic is not None:
            self.logic.shutdown()
        self.setParameterNode(None)
        self.removeObservers()

    def onReload(self) -> None:
        """Reload (and Reload and Test): Slicer's reloadScriptedModule executes DCEDiff.py again, nothing else; the
        helper packages stayed cached, so the reloaded module (and its self-test) ran their old code after an edit.
        They are forgotten first and imported from their files again (Slicer's WebServer module reloads its
        WebServerLib the same way)."""
        forgetHelperModules()
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self._detachParameterNode()

    def _detachParameterNode(self) -> None:
        """Disconnect the panel from the parameter node and stop observing it, once: exit() and then
        setParameterNode() (the next enter()) both come here, and a second removeObserver warns "does not have
        observer" on Slicer's console."""
        if not self._parameterNode:
            return
        if self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
        if self.hasObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified):
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.logic.cancel()
        self._lastResult = None
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: Optional[DCEDiffParameterNode]) -> None:
        self._detachParameterNode()
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # what the node holds is what was chosen (the user's, a saved scene's; a new node got the model's own
            # count from the logic): the steps rule runs on a change of sampler or model, not on every enter()
            self._lastSampler = self._parameterNode.sampler
            self._lastModelFile = self._parameterNode.modelFile
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        scene = slicer.mrmlScene
        if scene is not None and (scene.IsImporting() or scene.IsRestoring()):
            # a scene being loaded (or a scene view restored) sets the saved sampler, model and steps together:
            # nobody changed the sampler, the saved count stays
            self._lastSampler, self._lastModelFile = p.sampler, p.modelFile
        if self._useStoredCopyOfImportedModel(p):
            return  # the modelFile change ran this method again, with the copy
        if p.sampler != self._lastSampler or p.modelFile != self._lastModelFile:
            previousDefault = (defaults.DEFAULT_STEPS if self._lastModelFile is None
                               else modelDefaultSteps(self._lastModelFile, self._lastSampler))
            previous, self._lastSampler, self._lastModelFile = self._lastSampler, p.sampler, p.modelFile
            steps = stepsAfterSamplerChange(previous, p.sampler, p.steps, previousDefault,
                                            modelDefaultSteps(p.modelFile, p.sampler))
            # an imported card's count outside the box: the wrapper's WithinRange refuses it (ValueError in this
            # observer, the panel left stale)
            steps = min(max(steps, 1), MAX_STEPS)
            if steps != p.steps:
                p.steps = steps  # re-enters this method once; sampler and model no longer differ
        self.ui.modelInfoLabel.text = describeModel(p.modelFile, importedModelRecord(p))
        self.ui.shippedModelButton.enabled = bool(p.modelFile) and not self.logic.isRunning
        self.ui.centerPlaceWidget.setCurrentNode(p.center)
        self._updateApplyButton()

    def _useStoredCopyOfImportedModel(self, p) -> bool:
        """Where the imported model's recorded copy is missing (a scene from another computer, a copy an earlier
        DCEDiff kept in Slicer's cache, since cleared), point the parameter node at the same model (SHA-256) found in
        the model folder; True when it did."""
        found = self.logic.storedCopyOfImportedModel(p)
        if found is None:
            return False
        if self._lastModelFile == p.modelFile:
            self._lastModelFile = found.path  # the same model, found elsewhere: no model change for the steps rule
        self.logic.setImportedModel(p, found)
        return True

    def _setInputsEnabled(self, enabled: bool) -> None:
        """Inputs and settings are locked while the engine runs (it works on copies made at Apply; a change would
        not be used, and a removed node would break the result placement)."""
        self.ui.inputsCollapsibleButton.enabled = enabled
        self.ui.settingsCollapsibleButton.enabled = enabled

    def _updateApplyButton(self, caller=None, event=None) -> None:
        running = self.logic.isRunning
        self._updateSendButton()
        self._setInputsEnabled(not running and not self._starting)
        if self._starting:
            # the install's log calls processEvents per line: a second click would start a second install
            self.ui.applyButton.text = _("Apply")
            self.ui.applyButton.toolTip = _("Checking or installing the Python packages…")
            self.ui.applyButton.enabled = False
            return
        if running:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the synthesis; no result is added to the scene")
            self.ui.applyButton.enabled = True
            return
        self.ui.applyButton.text = _("Apply")
        p = self._parameterNode
        pdOptional = bool(p) and "pd" in modelOptionalInputs(p.modelFile)
        ready = (bool(p and p.t2w and (p.pd or pdOptional) and p.adc and p.t1pre)
                 and bool(p.dceEarly) == bool(p.dceLate) and (bool(p.dceEarly) or not p.dceBaseline))
        self.ui.applyButton.enabled = ready
        if ready:
            self.ui.applyButton.toolTip = _("Synthesize early and late DCE") if p.pd else _(
                "Synthesize early and late DCE without PD (the selected model was trained to do without it)")
        else:
            self.ui.applyButton.toolTip = _(
                "Select T2W, ADC and T1 pre-contrast, and PD (optional for the selected model) "
                "(and both acquired DCE volumes, or neither; their pre-contrast frame only with them)") if pdOptional \
                else _("Select T2W, PD, ADC and T1 pre-contrast (and both acquired DCE volumes, or neither; their "
                       "pre-contrast frame only with them)")

    def _resultsToSend(self):
        """(result nodes, T2W) for "Send results to DICOM database": the last run of this session while its synthetic
        early/late DCE are in the scene; otherwise (a scene saved and reopened, Slicer restarted, those nodes deleted)
        the newest run in the scene made from the T2W selected in the inputs (the parameter node's, restored with the
        scene; dicom_export.newest_run_for_t2w)."""
        from DCEDiffSlicerLib import dicom_export

        if self._lastResult is not None and dicom_export.synthetic_series_nodes(self._lastResult.nodes):
            return self._lastResult.nodes, self._lastResult.t2w  # (its nodes deleted: the scene's newest run below)
        t2w = self._parameterNode.t2w if self._parameterNode else None
        return dicom_export.newest_run_for_t2w(t2w), t2w

    def _updateSendButton(self) -> None:
        """Enabled while the results to send (_resultsToSend) have a synthetic early/late DCE in the scene and no
        run is starting or on."""
        from DCEDiffSlicerLib import dicom_export

        busy = self.logic.isRunning or self._starting
        self.ui.sendToDicomButton.enabled = (not busy
                                             and bool(dicom_export.synthetic_series_nodes(self._resultsToSend()[0])))

    def onSendToDicom(self) -> None:
        """The synthetic early/late DCE of the last run (or of the newest run in the scene made from the selected
        T2W) as DERIVED DICOM series in the T2W's study, into the DICOM database (DCEDiffSlicerLib/dicom_export.py;
        the engine writes them)."""
        nodes, t2w = self._resultsToSend()
        if not nodes or self.logic.isRunning:
            return
        with slicer.util.tryWithErrorDisplay(_("The results were not sent to the DICOM database."), waitCursor=True):
            sent = self.logic.sendResultsToDicom(nodes, t2w)
            self.ui.statusLabel.text = sent.message()

    def _updateProstateFinderState(self) -> bool:
        """The prostate finder's line in Settings: "installed" (the button hidden) or what it would change and the
        button that installs it; True when installed. Checked without importing onnxruntime into Slicer."""
        from DCEDiffSlicerLib import dependencies

        installed = not dependencies.prostate_finder_missing()
        self.ui.installProstateFinderButton.setVisible(not installed)
        self.ui.prostateFinderStatusLabel.text = (
            _("installed: the crop is centred on the gland TAPS finds on the T2W") if installed else
            _("not installed: the crop is centred on the T2W's centre unless a point is placed"))
        return installed

    def onInstallProstateFinder(self) -> None:
        """Install the optional prostate finder (onnxruntime and the TAPS model, about 160 MB) after a confirmation
        naming its size (DCEDiffSlicerLib/dependencies.py); Apply and the settings are locked meanwhile."""
        from DCEDiffSlicerLib import dependencies

        if self.logic.isRunning or self._starting:
            return
        self._starting = True
        self._updateApplyButton()
        try:
            with slicer.util.tryWithErrorDisplay(_("The prostate finder was not installed."), waitCursor=True):
                started = time.monotonic()
                outcome = self.logic.installProstateFinder(parent=slicer.util.mainWindow())
                if outcome == dependencies.PROSTATE_DECLINED:
                    self.ui.statusLabel.text = dependencies.PROSTATE_DECLINED_TEXT
                elif outcome == dependencies.PROSTATE_INSTALLED:
                    self.ui.statusLabel.text = _("Prostate finder installed in {seconds}: the next runs centre the "
                                                 "crop on the gland it finds.").format(
                        seconds=process_runner.format_seconds(time.monotonic() - started))
                else:
                    self.ui.statusLabel.text = _("The prostate finder is already installed.")
        except Exception:  # shown in the message box; re-raised, as every slot's error
            self.ui.statusLabel.text = _("Prostate finder not installed: see the error message.")
            raise
        finally:
            self._starting = False
            self._updateProstateFinderState()
            self._updateApplyButton()

    def onImportModel(self) -> None:
        """Check the chosen model with the engine and keep a copy in DCEDiff's model folder (not Slicer's cache,
        which *Clear cache* deletes); the copy is what runs (DCEDiffSlicerLib/model_import.py)."""
        path = qt.QFileDialog.getOpenFileName(self.parent, _("Import DCEDiff model file"), "",
                                              _("DCEDiff model (*.safetensors)"))
        if not path or self._parameterNode is None:
            return
        with slicer.util.tryWithErrorDisplay(_("The model was not imported."), waitCursor=True):
            # the engine's loader checks the model, in the engine's process: it needs PyTorch
            self.logic.setupPythonRequirements(parent=slicer.util.mainWindow())
            imported = self.logic.importModel(path, self._parameterNode)
            self.ui.statusLabel.text = (_("Model {name} imported (already in the model folder).") if imported.reused
                                        else _("Model {name} imported.")).format(name=imported.name)

    def onUseShippedModel(self) -> None:
        """Back to the shipped model."""
        if self._parameterNode:
            self._parameterNode.parameterNode.RemoveAttribute(model_import.RECORD_ATTRIBUTE)
            self._parameterNode.modelFile = ""

    def onFillFromStudy(self) -> None:
        """Fill the input selectors from the DICOM study loaded into the scene (the engine's role rules)."""
        if self._parameterNode is None or self.logic.isRunning:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not fill the inputs from the loaded DICOM study."),
                                             waitCursor=True):
            fill = self.logic.fillFromStudy(self._parameterNode)
            self.ui.logTextEdit.clear()
            for line in fill.lines + [f"note: {note}" for note in fill.notes]:
                self.onLog(line)
            self.ui.statusLabel.text = fill.message()

    def onApplyButton(self) -> None:
        if self.logic.isRunning:
            self.logic.cancel()
            self.ui.statusLabel.text = _("Cancelling…")
            return
        if self._starting:
            return
        p = self._parameterNode
        self.ui.logTextEdit.clear()
        self.ui.progressBar.value = 0
        self.ui.progressBar.setVisible(True)
        self.ui.statusLabel.text = _("Checking the Python packages…")
        started = False
        self._starting = True
        self._updateApplyButton()
        try:
            with slicer.util.tryWithErrorDisplay(_("DCEDiff could not start."), waitCursor=True):
                self._useStoredCopyOfImportedModel(p)
                missing = missingModelMessage(p.modelFile, importedModelRecord(p))
                if missing:  # before installing anything: the engine would only say "weights are missing"
                    raise ValueError(missing)
                checked = time.monotonic()
                installed = self.logic.setupPythonRequirements(parent=slicer.util.mainWindow())
                installSeconds = time.monotonic() - checked
                # a copy an earlier DCEDiff kept in Slicer's cache goes into the model folder (the engine's import:
                # it needs the packages just checked); a failed move is told and the cache's copy runs
                moved = self.logic.moveImportedModelOutOfCache(p)
                self._starting = False
                # the run's elapsed time starts here: installing PyTorch (minutes) is reported apart, not in it
                self._runStarted = time.monotonic()
                self.ui.statusLabel.text = _("Starting…")
                if installed:
                    self.onLog(_("Python packages installed in {seconds}.").format(
                        seconds=process_runner.format_seconds(installSeconds)))
                if moved:
                    logging.info("DCEDiff: %s", moved)
                    self.ui.logTextEdit.appendPlainText(moved)
                self.logic.process(p.t2w, p.pd, p.adc, p.t1pre, p.dceEarly, p.dceLate, dceBaseline=p.dceBaseline,
                                   center=p.center,
                                   model=p.modelFile or None, sampler=p.sampler, steps=p.steps, samples=p.samples,
                                   seed=p.seed, device=p.device, waitForCompletion=False,
                                   progressCallback=self.onProgress, logCallback=self.onLog,
                                   completedCallback=self.onCompleted)
                started = True
        finally:
            self._starting = False
            if not started:  # the error was shown; leave the panel as it was before Apply
                self.ui.progressBar.setVisible(False)
                self.ui.statusLabel.text = _("Not started: see the error message.")
            self._updateApplyButton()

    def onProgress(self, event) -> None:
        self.ui.progressBar.value = int(round(1000 * event.fraction))
        elapsed = time.monotonic() - self._runStarted if self._runStarted is not None else 0.0
        self.ui.statusLabel.text = _("{stage} (elapsed {elapsed})").format(
            stage=process_runner.describe_event(event), elapsed=process_runner.format_seconds(elapsed))

    def onLog(self, line: str) -> None:
        _logLine(line)
        self.ui.logTextEdit.appendPlainText(line)

    def onCompleted(self, outcome) -> None:
        self._updateApplyButton()
        self.ui.progressBar.setVisible(False)
        self._runStarted = None
        if isinstance(outcome, Exception):
            self.ui.statusLabel.text = _("Failed: {error}").format(error=outcome)
            slicer.util.errorDisplay(_("DCEDiff failed:\n\n{error}").format(error=outcome))
        elif outcome is None or outcome.cancelled:
            self.ui.statusLabel.text = _("Cancelled; nothing was added to the scene.")
        else:
            self._lastResult = outcome
            self.ui.statusLabel.text = _("Done in {seconds}. Results are labelled as synthetic.").format(
                seconds=process_runner.format_seconds(outcome.seconds))
            if outcome.outOfDistribution:
                self.ui.statusLabel.text = _("Done, but the inputs are OUT OF the model's training distribution "
                                             "(score {score}): see the warning.").format(
                    score=outcome.outOfDistribution.get("score"))
                slicer.util.warningDisplay(outOfDistributionText(outcome.outOfDistribution),
                                           windowTitle=_("DCEDiff: inputs out of distribution"))
            if outcome.missingInputs:
                self.ui.statusLabel.text += " " + _("Made without {inputs} (the model was trained to do without "
                                                    "it).").format(inputs=", ".join(m.upper() for m in
                                                                                    outcome.missingInputs))
            if outcome.intensityNotes:
                self.ui.statusLabel.text += " " + intensityNotesText(outcome.intensityNotes)
            if outcome.enhancementRescaled:
                self.ui.statusLabel.text += " " + enhancementRescaledText(outcome.enhancementRescaled)
            if outcome.t1preCoverage:
                self.ui.statusLabel.text += " " + t1preCoverageText(outcome.t1preCoverage)
            if outcome.inputFrames:
                self.ui.statusLabel.text += " " + inputFramesText(outcome.inputFrames)
        self._onParameterNodeModified()


def outOfDistributionText(ood: dict) -> str:
    """The warning shown (GUI) or printed (batch) when the engine flagged the inputs as out of distribution."""
    reasons = "\n".join(f"- {r}" for r in ood.get("reasons", []))
    return _("The inputs do not look like the data the model was trained on (out-of-distribution score {score}, "
             "threshold {threshold}). The synthetic images may be wrong; every output says so.\n\n{reasons}").format(
        score=ood.get("score"), threshold=ood.get("threshold"), reasons=reasons)


def intensityNotesText(notes: Dict[str, str]) -> str:
    """One line for the status (GUI) or the log (batch) when the engine set an input's intensity range from the
    bulk of the image (a bright coil hot spot; the details are the node attribute DCEDiff.Provenance.intensity_notes)."""
    return _("The intensity range of {inputs} was set from the bulk of the image (a bright hot spot, likely a "
             "receive coil's near field): see the node attribute DCEDiff.Provenance.intensity_notes.").format(
        inputs=", ".join(m.upper() for m in sorted(notes)))


def enhancementRescaledText(rescaled: dict) -> str:
    """One line for the status (GUI) or the log (batch) when the engine scaled the synthetic enhancement down for a
    T1-pre whose gland lies lower on its scale than in any training exam (node attribute
    DCEDiff.Provenance.enhancement_rescaled)."""
    return _("The T1-pre's gland lies lower on its intensity scale than in any training exam ({level} against "
             "{minimum}): the synthetic enhancement was scaled by {factor} (see the node attribute "
             "DCEDiff.Provenance.enhancement_rescaled).").format(
        level=rescaled.get("gland_level"), minimum=rescaled.get("training_minimum"), factor=rescaled.get("factor"))


def t1preCoverageText(coverage: dict) -> str:
    """One line for the status (GUI) or the log (batch) when the T1-pre does not cover part of the synthesized region
    (the engine's t1pre_coverage.py; node attribute DCEDiff.Provenance.t1pre_coverage): there the synthetic values
    rest on no T1-pre."""
    share = coverage.get("uncovered_share")
    slices = coverage.get("slices_mostly_uncovered") or []
    return _("The T1-pre does not cover {share} of the synthesized region{where}: the synthetic values there rest on "
             "no T1-pre (see the node attribute DCEDiff.Provenance.t1pre_coverage).").format(
        share=f"{share:.1%}" if isinstance(share, (int, float)) else share,
        # the engine's 3 mm working grid, not the T2W-grid copies shown here: its numbers are no T2W slice numbers
        where=_(" (most of working-grid slice(s) {slices}, counted from the inferior end of the engine's 3 mm grid, "
                "not the T2W's slice numbers)").format(slices=", ".join(map(str, slices)))
        if slices else "")


def inputFramesText(frames: Dict[str, dict]) -> str:
    """One line for the status when inputs were proxy nodes of a volume sequence: the frame each one showed at
    Apply, and the volume the acquired DCE frames were copied into (node attribute DCEDiff.InputFrames)."""
    parts = []
    for role, frame in frames.items():
        text = _("{input}: item {item} ({value}) of {sequence}").format(
            input=process_runner.INPUT_LABELS.get(role, role), item=frame.get("item"),
            value=frame.get("index_value"), sequence=frame.get("sequence"))
        if frame.get("reused"):
            text += _(", in {volume} (copied at an earlier Apply)").format(volume=frame["volume"])
        elif frame.get("volume"):
            text += _(", copied into {volume}").format(volume=frame["volume"])
        parts.append(text)
    return _("Frames shown at Apply: {frames}.").format(frames="; ".join(parts))


def stepsAfterSamplerChange(previous: Optional[str], sampler: str, steps: int,
                            previousDefault: int = defaults.DEFAULT_STEPS,
                            newDefault: int = defaults.DEFAULT_STEPS) -> int:
    """The steps box after the sampler or the model changed. The paper's ancestral sampler (ddpm) runs 1000 steps;
    leaving it for a fast sampler goes to the model's own count (``newDefault``, :func:`modelDefaultSteps`). A box
    that held the previous setting's own count (``previousDefault``) follows to the new one; any other value the
    user chose is kept."""
    if sampler == "ddpm" and steps < 1000:
        return 1000
    if previous == "ddpm" and sampler != "ddpm" and steps == 1000:
        return newDefault
    if sampler != "ddpm" and steps == previousDefault:
        return newDefault
    return steps


def modelWeightsPath(modelFile: Optional[str]) -> Path:
    """The .safetensors that will run: the imported file, or the shipped model when ``modelFile`` is empty."""
    from DCEDiffLib.model_registry import shipped_model_path

    return Path(modelFile) if modelFile else shipped_model_path()


def modelDefaultSteps(modelFile: Optional[str], sampler: str) -> int:
    """The steps the model runs with ``sampler`` when nobody chooses (its card's count for a residual model with the
    default sampler, else the engine default; DCEDiffLib.sampling_steps)."""
    from DCEDiffSlicerLib import model_cards

    return model_cards.default_steps(modelWeightsPath(modelFile), sampler)


def modelOptionalInputs(modelFile: str) -> tuple:
    """The inputs the model that will run can do without (its card's ``optional_inputs``, e.g. ("pd",))."""
    from DCEDiffSlicerLib import model_cards

    return model_cards.optional_inputs(modelWeightsPath(modelFile))


def describeModel(modelFile: str, record: Optional[dict] = None) -> str:
    """One line about the model that will run: the shipped one or an imported file, with its card's training
    data and test metrics (see DCEDiffSlicerLib.model_cards); for an imported model whose file is missing, its
    name and SHA-256 (``record``, :func:`importedModelRecord`) and to import it again."""
    from DCEDiffSlicerLib import model_cards

    missing = missingModelMessage(modelFile, record)
    if missing:
        return missing
    prefix = _("Shipped model") if not modelFile else _("Imported model")
    return f"{prefix}: {model_cards.summary(modelWeightsPath(modelFile))}"



def missingModelMessage(modelFile: str, record: Optional[dict]) -> Optional[str]:
    """model_import.missing_model_message, naming the folders searched for the recorded model; None when the
    model is there (Slicer's folders are only asked for when it is not)."""
    if not modelFile or Path(modelFile).is_file():
        return None
    return model_import.missing_model_message(modelFile, record, DCEDiffLogic.modelRoots() if record else ())


def importedModelRecord(parameterNode) -> Optional[dict]:
    """The imported model's name and SHA-256 stored on the parameter node (saved with the scene), when they
    describe its ``modelFile``; else None."""
    node = parameterNode.parameterNode
    return model_import.read_record(node.GetAttribute(model_import.RECORD_ATTRIBUTE), parameterNode.modelFile)


#
# DCEDiffLogic
#


def _newWorkFolder(temporaryPath: str) -> Path:
    """A new folder for one run's input copies and engine output in Slicer's temporary folder ``temporaryPath``.
    RuntimeError naming that folder and the setting to change where it cannot be made (missing and not creatable,
    a file in the way, read-only, full): mkdtemp's bare OSError said neither. Nothing is created then."""
    try:
        return Path(tempfile.mkdtemp(prefix="DCEDiff-", dir=temporaryPath))
    except OSError as exc:
        raise RuntimeError(
            f"Slicer's temporary folder {temporaryPath}: cannot create DCEDiff's working folder there "
            f"({exc.strerror or exc}); expected an existing folder you may write to: choose one in Edit → "
            "Application Settings → Modules → Temporary directory (Slicer's TemporaryPath setting)") from exc


@dataclasses.dataclass
class DCEDiffResult:
    """What one run added to the scene: ``nodes`` by role (``synthetic_early``, ``residual_late``,
    ``uncertainty_early``, ``metrics``, ...), empty when ``cancelled``."""

    nodes: Dict[str, object]
    provenance: Dict[str, object]
    seconds: float
    cancelled: bool = False
    outOfDistribution: Optional[dict] = None  # {"score", "threshold", "reasons"} when the engine flagged the inputs
    missingInputs: tuple = ()  # inputs the engine synthesized without (e.g. ("pd",)), from the result nodes
    # input → why its intensity range was set from the bulk of the image (engine's intensity_tail.py), if it was
    intensityNotes: Dict[str, str] = dataclasses.field(default_factory=dict)
    # {"factor", "gland_level", "training_minimum", "note"} when the engine scaled the synthetic enhancement down
    # for a T1-pre lower on its scale than any training exam (engine's t1pre_level.py), else None
    enhancementRescaled: Optional[dict] = None
    # the engine's t1pre_coverage record when it carries a note (the T1-pre misses part of the synthesized region)
    t1preCoverage: Optional[dict] = None
    # input role → the volume-sequence frame a proxy node showed at Apply (DCEDiffSlicerLib/shown_frame.py), for
    # every input selected as a proxy; also the result nodes' attribute DCEDiff.InputFrames
    inputFrames: Dict[str, dict] = dataclasses.field(default_factory=dict)
    t2w: object = None  # the T2W node the results were made from (their DICOM series join its study)


@dataclasses.dataclass
class _Job:
    runner: process_runner.ProcessRunner
    workDir: Path
    t2w: object
    started: float
    showResult: bool
    completedCallback: Optional[Callable] = None
    timer: Optional[object] = None
    acquired: Optional[Dict[str, object]] = None
    inputFrames: Dict[str, dict] = dataclasses.field(default_factory=dict)
    frameCopies: list = dataclasses.field(default_factory=list)  # removed again unless the run adds its results
    # the temporary copy of each input → its node's name: the engine's errors name the copy, the user knows the node
    inputNames: Dict[str, str] = dataclasses.field(default_factory=dict)


class DCEDiffLogic(ScriptedLoadableModuleLogic):
    """Runs the engine on volume nodes; usable without the widget (batch mode, tests)."""

    POLL_MS = 200

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._job: Optional[_Job] = None
        self._legacyMovesFailed: set = set()  # copies in Slicer's cache whose move failed (moveImportedModelOutOfCache)

    # set on the parameter node once its steps hold the model's own count (saved with the scene; a scene close
    # resets it with the node)
    STEPS_SET_ATTRIBUTE = "DCEDiff.StepsSet"

    def getParameterNode(self):
        """The module's parameter node (Slicer's singleton), wrapped. A new one (a new or closed scene) starts at
        the model's own step count for its sampler (:func:`modelDefaultSteps`), not the wrapper's default: the
        widget applies its steps rule only when the sampler or the model changes. Marked by an attribute, not by
        a missing parameter: the wrappers Slicer's VTKObservationMixin keeps alive write every field's default back
        into a node that a scene close has reset."""
        node = super().getParameterNode()
        parameterNode = DCEDiffParameterNode(node)
        if node.GetAttribute(self.STEPS_SET_ATTRIBUTE) is None:
            parameterNode.steps = min(max(modelDefaultSteps(parameterNode.modelFile, parameterNode.sampler), 1),
                                      MAX_STEPS)
            node.SetAttribute(self.STEPS_SET_ATTRIBUTE, "true")
        return parameterNode

    @property
    def isRunning(self) -> bool:
        return self._job is not None

    def setupPythonRequirements(self, parent=None, mode: str = "ask") -> bool:
        """A recent torch and Resources/requirements.txt. ``mode``: "ask" (a dialog first; the GUI), "install"
        (no dialog; batch --install-dependencies, self-tests), "never" (raise with the command to run). Call on
        Apply, never at import; torch is not imported here (DCEDiffSlicerLib/dependencies.py). True when something
        was installed."""
        from DCEDiffSlicerLib import dependencies

        return dependencies.ensure_dependencies(resourceFile("requirements.txt"), parent=parent, mode=mode)

    @staticmethod
    def installProstateFinder(parent=None, mode: str = "ask") -> str:
        """The optional TAPS prostate finder (onnxruntime and lavlab-taps, about 160 MB) for the crop centre:
        "ask" (a confirmation naming the size; the GUI's button) or "install" (batch --install-prostate-finder).
        Returns dependencies.PROSTATE_INSTALLED, PROSTATE_PRESENT (no dialog) or PROSTATE_DECLINED."""
        from DCEDiffSlicerLib import dependencies

        return dependencies.install_prostate_finder(parent=parent, mode=mode)

    @staticmethod
    def modelRoots() -> list:
        """Where imported models are looked for, in order: DCEDiff's model folder (``$DCEDIFF_MODEL_DIR``, else
        ``DCEDiff/models`` beside Slicer's user settings, shared by Slicer versions; what *Import model…* writes)
        and the folder in Slicer's cache where earlier DCEDiff versions kept them (model_import.legacy_cache_root)."""
        return [model_import.model_root(slicer.app.slicerUserSettingsFilePath),
                model_import.legacy_cache_root(slicer.app.cachePath)]

    def importModel(self, path: str, parameterNode=None):
        """Check the model file at ``path`` with the engine and copy it (its card and the files the card names)
        into ``<model folder>/<name>-<SHA-256 prefix>/`` (the first of :meth:`modelRoots`, not Slicer's cache: its
        *Clear cache* deletes the cache folder whole); an identical copy there is reused. With ``parameterNode`` the
        copy becomes its ``modelFile`` and its name and SHA-256 are stored beside it. Returns the
        ``ImportedModel``; raises ``ModelImportError`` with the engine's reason (nothing is kept)."""
        python = process_runner.python_slicer_executable(slicer.app.slicerHome)
        imported = model_import.import_model(path, self.modelRoots()[0], python, launch=_launchInSlicer)
        if parameterNode is not None:
            self.setImportedModel(parameterNode, imported)
        return imported

    @staticmethod
    def setImportedModel(parameterNode, imported) -> None:
        """Make the copy ``imported`` (an ``ImportedModel``) the ``modelFile`` of ``parameterNode``, its name and
        SHA-256 stored beside it (saved with the scene)."""
        node = parameterNode.parameterNode
        # one ModifiedEvent for both: between two, the observer would see the record without its modelFile, take the
        # old path for the model shown and run the steps rule for a model change (the same model found elsewhere
        # moved the steps box)
        wasModifying = node.StartModify()
        try:
            node.SetAttribute(model_import.RECORD_ATTRIBUTE, imported.record())
            parameterNode.modelFile = imported.path
        finally:
            node.EndModify(wasModifying)

    def moveImportedModelOutOfCache(self, parameterNode) -> Optional[str]:
        """Where the ``modelFile`` of ``parameterNode`` is a copy an earlier DCEDiff kept in Slicer's cache (which
        *Clear cache* deletes), copy it into the model folder with the engine's import (it needs the engine's
        packages) and make that copy the ``modelFile`` (:meth:`setImportedModel`); the cache's copy is kept. Returns
        what to tell the user, or None when there was nothing to move. Never raises: a failed move leaves the
        cache's copy in use and is not tried again in this session (model_import.move_legacy_copy)."""
        if not parameterNode.modelFile:
            return None  # the shipped model: nothing to move, no settings read
        moved = model_import.move_legacy_copy(
            parameterNode.modelFile, model_import.legacy_cache_root(slicer.app.cachePath),
            slicer.app.slicerUserSettingsFilePath, process_runner.python_slicer_executable(slicer.app.slicerHome),
            importedModelRecord(parameterNode), tried=self._legacyMovesFailed, launch=_launchInSlicer)
        if moved is None:
            return None
        if moved.imported is None:
            self._legacyMovesFailed.add(parameterNode.modelFile)  # told once; each try costs an engine start
        else:
            self.setImportedModel(parameterNode, moved.imported)
        return moved.message

    def storedCopyOfImportedModel(self, parameterNode):
        """The same model (name and SHA-256 of the stored record) in one of :meth:`modelRoots` when the imported
        ``modelFile`` of ``parameterNode`` is missing, as an ``ImportedModel``; else None."""
        record = importedModelRecord(parameterNode)
        if record is None or Path(parameterNode.modelFile).is_file():
            return None  # no search, no settings read: the common case, on every parameter change
        return model_import.find_stored_copy(parameterNode.modelFile, record, self.modelRoots())

    def fillFromStudy(self, parameterNode, fileForInstance: Optional[Callable[[str], str]] = None):
        """Set the input nodes of ``parameterNode`` from the volumes loaded with the DICOM module, picked by the
        engine's role rules on their DICOM headers; returns the ``StudyFill`` (picks, missing roles, notes).
        ``fileForInstance``: SOP Instance UID → file (default: ``slicer.dicomDatabase.fileForInstance``). A study
        without PD leaves PD empty when the selected model's card lists it in ``optional_inputs`` (Apply then runs
        without PD); otherwise PD is named as missing, with why the model needs it."""
        from DCEDiffSlicerLib import study_fill

        fill = study_fill.fill_from_study(slicer.mrmlScene, fileForInstance, preferred=parameterNode.t2w,
                                          optional=modelOptionalInputs(parameterNode.modelFile))
        study_fill.apply_fill(parameterNode, fill)
        return fill

    @staticmethod
    def sendResultsToDicom(nodes, t2w, outDir=None, database=None, importFolder=None):
        """A run's synthetic early/late DCE (``nodes``) as DERIVED, SYNTHETIC-marked DICOM series in the study of
        ``t2w`` (loaded from DICOM), added to the DICOM database (default ``slicer.dicomDatabase``, imported with
        ``DICOMLib.DICOMUtils.importDicom``); returns the :class:`dicom_export.DicomExport`. ValueError naming what
        is missing, nothing written (DCEDiffSlicerLib/dicom_export.py)."""
        from DCEDiffSlicerLib import dicom_export

        return dicom_export.export_results_to_dicom(nodes, t2w, out_dir=outDir, database=database,
                                                    import_folder=importFolder)

    def process(self, t2w, pd, adc, t1pre, dceEarly=None, dceLate=None, center=None, model: Optional[str] = None,
                sampler: str = defaults.DEFAULT_SAMPLER, steps: Optional[int] = None,
                samples: int = defaults.DEFAULT_SAMPLES, seed: int = 0, device: str = "auto",
                waitForCompletion: bool = True, progressCallback: Optional[Callable] = None,
                logCallback: Optional[Callable[[str], None]] = None,
                completedCallback: Optional[Callable] = None, showResult: bool = True,
                timeoutSeconds: Optional[float] = None, dceBaseline=None) -> Optional[DCEDiffResult]:
        """Synthesize early and late DCE for the given volume nodes (inputs are never modified).

        ``dceBaseline``: optional, with the acquired DCE: its own pre-contrast frame, where the T1-pre is another
        series (a VIBE): the engine puts the acquired DCE on the T1-pre's intensity scale with it for the residuals
        and metrics (DCEDiffLib/acquired_scale.py).

        ``center``: a markups point list or ROI at the prostate (None: the T2W centre). ``model``: a .safetensors
        path (None: the shipped model); ``steps`` None: the model's own count. ``pd`` may be None when the model's
        card lists it in ``optional_inputs`` (trained with augment.drop_pd): the engine then synthesizes without PD
        and the results say so. Blocking (``waitForCompletion=True``): returns the :class:`DCEDiffResult`
        (``cancelled`` set if cancelled) or raises with the engine's message. Non-blocking: returns None at once;
        a QTimer polls the engine and calls ``completedCallback(result or exception)``. Raises ValueError naming
        the input for bad input, before anything runs. ``timeoutSeconds`` (blocking mode): stop the engine after
        that long and raise RuntimeError saying so.
        """
        from DCEDiffSlicerLib import scene_io

        if self._job is not None:
            raise RuntimeError("DCEDiff is already running; cancel it first")
        # the engine runs in the engine's folder, not Slicer's working directory: a relative model path (batch
        # --model models/mine.safetensors) is made absolute here, where the user meant it
        model = str(Path(model).absolute()) if model else None
        labels = process_runner.INPUT_LABELS
        nodes = {"t2w": t2w, "pd": pd, "adc": adc, "t1pre": t1pre, "dce_early": dceEarly, "dce_late": dceLate,
                 "dce_baseline": dceBaseline}
        allowed = modelOptionalInputs(model or "")  # pd may be None for a model trained without it
        for key in process_runner.REQUIRED_INPUTS:
            if nodes[key] is None and key not in allowed:
                raise ValueError(process_runner.missing_input_message(key))
        if (dceEarly is None) != (dceLate is None):
            raise ValueError("acquired DCE: select both the early and the late acquired DCE, or neither")
        if dceBaseline is not None and dceEarly is None:
            raise ValueError(process_runner.BASELINE_WITHOUT_DCE)
        same = process_runner.same_volume_message(nodes)
        if same:
            ids = [n.GetID() for n in nodes.values() if n is not None]
            twice = [n for n in nodes.values() if n is not None and ids.count(n.GetID()) > 1]
            sequence = next(filter(None, map(scene_io.sequence_of_proxy, twice)), None)
            if sequence:  # two frames of one DCE series: the proxy node is one volume, the browser's current item
                same += (f"; {twice[0].GetName()} is the proxy node of the volume sequence {sequence!r} (it holds "
                         "the item the browser shows): Fill from study copies the frames it picks into volumes of "
                         "their own, or clone the item shown (Data module → right-click → Clone) and select the copy")
            raise ValueError(same)
        synthetic = scene_io.synthetic_input_message(nodes, labels)  # a result, fresh or from a reopened scene
        if synthetic:
            raise ValueError(synthetic)
        centerLps = scene_io.center_lps_from_markups(center)
        workDir = _newWorkFolder(slicer.app.temporaryPath)
        runner = None
        frames, copies = {}, []
        try:
            frames, copies = self._keepShownFrames(nodes)
            dceEarly, dceLate = nodes["dce_early"], nodes["dce_late"]
            inputs, inputNames = {}, {}
            for key, node in nodes.items():
                if node is not None:
                    inputs[key] = str(scene_io.write_volume_node(node, workDir / "inputs" / f"{key}.nrrd",
                                                                 labels[key]))
                    inputNames[inputs[key]] = node.GetName()
            request = process_runner.SynthesisRequest(
                inputs=inputs, out_dir=str(workDir / "out"), model=model or None, sampler=sampler, steps=steps,
                samples=samples, seed=seed, device=device, center_lps=centerLps, t2w_grid=True,
                missing_allowed=allowed)
            python = process_runner.python_slicer_executable(slicer.app.slicerHome)
            command = process_runner.build_synthesize_command(python, request)
            logging.info("DCEDiff: running %s", " ".join(command))
            runner = process_runner.ProcessRunner(command, cwd=str(ENGINE_ROOT), launch=_launchInSlicer,
                                                  on_progress=progressCallback, on_log=logCallback or _logLine)
            runner.start()
        except BaseException:  # Ctrl-C/SIGTERM in batch mode too: no copy of the inputs stays behind, no engine
            if runner is not None and runner.process is not None:
                runner.cancel()
            shutil.rmtree(workDir, ignore_errors=True)
            scene_io.remove_nodes(copies)
            raise
        self._job = _Job(runner, workDir, t2w, time.monotonic(), showResult, completedCallback,
                         acquired={"early": dceEarly, "late": dceLate}, inputFrames=frames, frameCopies=copies,
                         inputNames=inputNames)
        if waitForCompletion:
            try:
                result = runner.wait(timeout=timeoutSeconds)
            except BaseException:
                # Ctrl-C in batch mode, or a progress/log callback that raised (a closed stdout): the engine must
                # not go on alone (an orphan holding the CPU or GPU after Slicer exits) and the logic must not stay
                # "running"; kill its tree and remove the temporary folder, then let the exception through
                self.shutdown()
                raise
            return self._finish(result)
        self._job.timer = qt.QTimer()
        self._job.timer.setInterval(self.POLL_MS)
        self._job.timer.connect("timeout()", self._poll)
        self._job.timer.start()
        return None

    @staticmethod
    def _keepShownFrames(nodes: Dict[str, object]):
        """``(frames, copies)`` for the inputs that are proxy nodes of a volume sequence: ``frames`` (role → the
        frame shown now, DCEDiffSlicerLib/shown_frame.py) for every such input; the acquired early and late DCE are
        also copied into volumes of their own, which replace them in ``nodes``: they are exported and shown in the
        comparison, which would otherwise follow the browser when the user scrubs it. ``copies``: the copies made
        now, removed again when the run adds nothing; the copy of an earlier Apply that still holds the frame is
        reused (frame ``"reused"``) and never removed. All or nothing: where one frame cannot be copied, the copies
        made before it are removed and the error goes on."""
        from DCEDiffSlicerLib import shown_frame

        frames, copies = {}, []
        try:
            for key, node in nodes.items():
                if key in ("dce_early", "dce_late"):
                    copy, frame = shown_frame.copy_shown_frame(node)
                    if copy is not None:
                        if not frame.get("reused"):  # the scene's before this Apply: not the run's to remove
                            copies.append(copy)
                        nodes[key] = copy
                else:
                    frame = shown_frame.shown_frame(node)
                if frame is not None:
                    frames[key] = frame
        except BaseException:
            from DCEDiffSlicerLib import scene_io

            scene_io.remove_nodes(copies)
            raise
        return frames, copies

    def cancel(self) -> None:
        """Stop a running synthesis now (kills the engine's process tree); nothing is added to the scene."""
        if self._job is not None:
            self._job.runner.cancel()

    def shutdown(self) -> None:
        """Stop a running synthesis for good, without calling anyone back (module reload, application exit):
        callbacks dropped, timer stopped, engine killed, temporary folder removed."""
        job = self._job
        if job is None:
            return
        job.completedCallback = None
        job.runner.on_progress = None
        job.runner.on_log = None
        if job.timer is not None:
            job.timer.stop()
        job.runner.cancel()
        try:
            job.runner.wait(timeout=job.runner.kill_grace)
        finally:
            self._job = None
            shutil.rmtree(job.workDir, ignore_errors=True)
            _removeNodes(job.frameCopies)

    def _poll(self) -> None:
        job = self._job
        if job is None:
            return
        result = job.runner.poll()
        if result is None:
            return
        job.timer.stop()
        try:
            outcome = self._finish(result)
        except Exception as exc:  # reported to the caller, not raised from a timer
            outcome = exc
        if job.completedCallback is not None:
            try:
                job.completedCallback(outcome)
            except Exception:  # a callback must not break the timer (e.g. its widget is gone)
                logging.exception("DCEDiff: the completion callback failed")

    def _finish(self, result: process_runner.RunResult) -> DCEDiffResult:
        from DCEDiffSlicerLib import scene_io

        # the run stays the logic's (isRunning) until its results are in the scene: showResult processes events, and
        # a click on the button still labelled Cancel would otherwise start the engine again on the same inputs
        job = self._job
        seconds = time.monotonic() - job.started
        kept = False
        try:
            if result.cancelled:
                return DCEDiffResult({}, {}, seconds, cancelled=True)
            if not result.ok:
                raise RuntimeError(_namedInputs(result.error, job.inputNames))
            if job.t2w is not None and job.t2w.GetScene() is None:
                # deleted in the Data module while the engine ran (the selectors are locked, the scene is not): the
                # results would be named after, placed next to and refer to a node no longer in the scene
                raise RuntimeError(f"T2W: {job.t2w.GetName()!r} was removed from the scene while DCEDiff ran; "
                                   "expected it in the scene until the run ends (the results are placed next to it "
                                   "and refer to it): nothing was added; load it again and Apply")
            created = scene_io.load_results(job.workDir / "out", job.t2w)
            kept = True
            if job.inputFrames:  # which frame of which sequence each proxy input was: saved with the scene
                for node in created.values():
                    node.SetAttribute(scene_io.INPUT_FRAMES_ATTRIBUTE, json.dumps(job.inputFrames))
            provenance = {k[len(scene_io.PROVENANCE_PREFIX):]: created["synthetic_early"].GetAttribute(k)
                          for k in created["synthetic_early"].GetAttributeNames()
                          if k.startswith(scene_io.PROVENANCE_PREFIX)}
            if job.showResult:
                # an acquired DCE deleted during the run is not shown: its column falls back to the T2W
                acquired = {k: v for k, v in (job.acquired or {}).items() if v is not None and v.GetScene() is not None}
                try:
                    self.showResult(created, acquired, job.t2w, provenance)
                except Exception:  # the nodes are there; a display problem must not lose them
                    logging.exception("DCEDiff: could not set up the comparison layout")
            ood = created["synthetic_early"].GetAttribute(scene_io.OOD_ATTRIBUTE)
            missing = created["synthetic_early"].GetAttribute(scene_io.MISSING_ATTRIBUTE)
            notes = provenance.get("intensity_notes")
            rescaled = provenance.get("enhancement_rescaled")
            coverage = json.loads(provenance.get("t1pre_coverage") or "null")
            return DCEDiffResult(created, provenance, seconds, outOfDistribution=json.loads(ood) if ood else None,
                                 missingInputs=tuple(missing.split(",")) if missing else (),
                                 intensityNotes=json.loads(notes) if notes else {},
                                 enhancementRescaled=json.loads(rescaled) if rescaled else None,
                                 t1preCoverage=coverage if coverage and coverage.get("note") else None,
                                 inputFrames=dict(job.inputFrames), t2w=job.t2w)
        finally:
            if self._job is job:  # shutdown() (a module reload from those events) may have let go of it already
                self._job = None
            shutil.rmtree(job.workDir, ignore_errors=True)
            if not kept:  # cancelled or failed: the run adds nothing to the scene, its frame copies neither
                _removeNodes(job.frameCopies)

    @staticmethod
    def showResult(nodes: Dict[str, object], acquired: Optional[Dict[str, object]] = None, reference=None,
                   provenance: Optional[Dict[str, str]] = None) -> None:
        """The comparison layout (DCEDiffSlicerLib/result_display.py): acquired and synthetic early/late side by
        side, linked, with the acquired DCE's window/level (divided by the gain the engine put the acquired DCE on
        the T1-pre's scale with, from ``provenance``); |residual| and uncertainty as overlays with colour legends;
        the metrics table in a table view. Nothing in batch mode (no layout manager)."""
        from DCEDiffSlicerLib import result_display

        if slicer.app.layoutManager() is None:  # batch mode (--no-main-window)
            return
        result_display.show_comparison(nodes, acquired or {}, reference=reference,
                                       acquired_gain=result_display.acquired_gain(provenance or {}))
        slicer.app.processEvents()  # let the layout manager build the views before fitting them
        slicer.util.resetSliceViews()


def _namedInputs(error: Optional[str], inputNames: Dict[str, str]) -> Optional[str]:
    """The engine's error with each temporary input copy it names (``<temp>/DCEDiff-…/inputs/t2w.nrrd``, deleted
    when the run ends) replaced by the volume node it was made from, e.g. ``volume 'T2 AX'``."""
    for path, name in (inputNames or {}).items():
        if error:
            for shown in dict.fromkeys((path, str(Path(path).resolve()))):  # the engine may print it resolved
                error = error.replace(shown, f"volume {name!r}")
    return error


def _removeNodes(nodes) -> None:
    from DCEDiffSlicerLib import scene_io

    scene_io.remove_nodes(nodes)


def _launchInSlicer(cmd, cwd=None, env_update=None):
    """Start ``PythonSlicer`` with Slicer's startup environment (stdout and stderr merged)."""
    return slicer.util.launchConsoleProcess(list(cmd), updateEnvironment=env_update, cwd=cwd)


def _logLine(line: str) -> None:
    logging.info("DCEDiff engine: %s", line)


#
# DCEDiffTest
#


class DCEDiffTest(ScriptedLoadableModuleTest):
    """The whole path inside Slicer on the shipped phantom case with the shipped model and a few steps.

    ctest (slicer_add_python_unittest) runs the test_* methods one by one, in alphabetical order, not runTest:
    every method gets what it needs itself (an empty scene from setUp, the Python packages from
    ``_requirePackages``), none relies on another. Under ``--testing`` nothing is installed (Slicer's rule for
    testing mode: the self-test must not change the Python environment); a method that needs a missing package is
    skipped with the command that installs it. From Reload and Test the usual dialog offers the install."""

    _requirementsReady = False

    def setUp(self):
        slicer.mrmlScene.Clear()

    def _requirePackages(self):
        """torch and Resources/requirements.txt for the methods that run the engine (once per session)."""
        if DCEDiffTest._requirementsReady:
            return
        if slicer.app.testingEnabled():
            from DCEDiffSlicerLib import dependencies

            state = dependencies.plan(resourceFile("requirements.txt"))
            if dependencies.missing_text(state):
                self.skipTest(f"not installed: {dependencies.missing_text(state)} (--testing installs nothing); "
                              "install them with the module's Apply, DCEDiffBatch.py --install-dependencies or: "
                              + dependencies.install_command_hint(state["missing"], state["torch"]))
        else:
            DCEDiffLogic().setupPythonRequirements(mode="ask")
        DCEDiffTest._requirementsReady = True

    def runTest(self):
        for name in sorted(n for n in dir(self) if n.startswith("test_")):
            self.setUp()
            getattr(self, name)()

    def _loadPhantom(self):
        self._requirePackages()
        from DCEDiffLib.model_registry import shipped_model_path

        self.assertTrue((SAMPLE_CASE / "t2w.nii.gz").is_file(), f"phantom sample case missing in {SAMPLE_CASE}")
        self.assertTrue(shipped_model_path().is_file(), f"shipped model missing: {shipped_model_path()}")
        return {key: slicer.util.loadVolume(str(SAMPLE_CASE / f"{key}.nii.gz"), {"name": f"phantom {label}",
                                                                                 "show": False})
                for key, label in SAMPLE_FILES}

    def test_DCEDiff_bad_input(self):
        logic = DCEDiffLogic()
        with self.assertRaisesRegex(ValueError, "T2W: no input volume selected"):
            logic.process(None, None, None, None)
        self.assertFalse(logic.isRunning)

    def test_DCEDiff_phantom(self):
        import numpy as np

        self.delayDisplay("Loading the phantom sample case")
        v = self._loadPhantom()
        before = {k: slicer.util.arrayFromVolume(n).copy() for k, n in v.items()}
        logic = DCEDiffLogic()
        self.delayDisplay("Synthesizing (3 steps, 2 samples)")
        events = []
        result = logic.process(v["t2w"], v["pd"], v["adc"], v["t1pre"], v["dce_early"], v["dce_late"],
                               steps=3, samples=2, seed=1, device="cpu", progressCallback=events.append)
        self.assertFalse(result.cancelled)
        self.assertTrue(any(e.stage == "sample" for e in events))
        t2wName = v["t2w"].GetName()
        early, late = result.nodes["synthetic_early"], result.nodes["synthetic_late"]
        self.assertEqual(early.GetName(), f"{t2wName} synthetic early DCE")
        self.assertEqual(late.GetName(), f"{t2wName} synthetic late DCE")
        for key in ("synthetic_early", "synthetic_late", "residual_early", "residual_late", "uncertainty_early",
                    "uncertainty_late"):
            node = result.nodes[key]
            self.assertEqual(node.GetAttribute("DCEDiff.Synthetic"), "true")
            self.assertEqual(node.GetImageData().GetDimensions(), v["t2w"].GetImageData().GetDimensions())
            a, b = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
            node.GetIJKToRASMatrix(a)
            v["t2w"].GetIJKToRASMatrix(b)
            np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(a), slicer.util.arrayFromVTKMatrix(b),
                                       atol=1e-4)
            values = slicer.util.arrayFromVolume(node)
            self.assertEqual(values.dtype, np.float32)
            self.assertTrue(np.isfinite(values).all())
        self.assertGreater(float(slicer.util.arrayFromVolume(early).std()), 0.0)
        self.assertEqual(result.provenance.get("steps"), "3")
        self.assertGreater(result.nodes["metrics"].GetNumberOfRows(), 0)
        for k, n in v.items():  # inputs untouched
            np.testing.assert_array_equal(slicer.util.arrayFromVolume(n), before[k])
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:  # the comparison layout, with its views built by Slicer
            from DCEDiffSlicerLib import result_display

            self.assertEqual(layoutManager.layout, result_display.LAYOUT_ID)
            widget = layoutManager.sliceWidget("DCEDiffResidualEarly")
            self.assertIsNotNone(widget)
            composite = widget.mrmlSliceCompositeNode()
            self.assertEqual(composite.GetBackgroundVolumeID(), early.GetID())
            self.assertEqual(composite.GetForegroundVolumeID(), result.nodes["residual_early"].GetID())
            self.assertIsNotNone(layoutManager.sliceWidget("DCEDiffAcquiredLate"))
        self.delayDisplay("Phantom synthesis passed")

    def test_DCEDiff_cancel_leaves_no_nodes(self):
        v = self._loadPhantom()
        count = slicer.mrmlScene.GetNumberOfNodes()
        logic = DCEDiffLogic()
        outcomes, events = [], []
        logic.process(v["t2w"], v["pd"], v["adc"], v["t1pre"], steps=200, device="cpu", waitForCompletion=False,
                      progressCallback=events.append, completedCallback=outcomes.append)
        deadline = time.monotonic() + 300
        while not any(e.stage == "sample" for e in events) and not outcomes and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        logic.cancel()
        while not outcomes and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertEqual(len(outcomes), 1)
        self.assertIsInstance(outcomes[0], DCEDiffResult, f"expected a cancelled run, got {outcomes[0]!r}")
        self.assertTrue(outcomes[0].cancelled, f"expected a cancelled run, got {outcomes[0]!r}")
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.assertFalse(logic.isRunning)
