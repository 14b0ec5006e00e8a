"""A volume sequence's proxy node selected by hand as the acquired early DCE (DCEDiff/DCEDiffSlicerLib/shown_frame.py).

The proxy holds whichever item the sequence browser shows. Before the fix the run exported the frame on show at
Apply but recorded nothing of it, and the comparison's acquired column showed the proxy itself: scrubbing the
browser afterwards (or during the run) put another frame beside the synthesis the residuals and metrics were computed
against. Now the frame on show at Apply is copied into a volume of its own (exported, and shown in the comparison) and
the result nodes carry which sequence, item and index value each proxy input was (``DCEDiff.InputFrames``).

Real parts: slicer-core's vtkMRMLSequenceNode, vtkMRMLSequenceBrowserNode and vtkSlicerSequencesLogic (the proxy is
updated as in Slicer), Slicer's own DCEDiffLogic, scene_io and result_display (the comparison's real slice composite
nodes), real files and a real subprocess. Stand-ins, for what slicer-core has no Qt or Slicer application for: the Qt
stand-ins of Testing/test_slicer_module.py, ``AppStandIn`` (``slicer.app``: a layout manager, the temporary folder,
``processEvents``), ``slicer.util.resetSliceViews`` (needs slice widgets), and the engine stand-in ``ENGINE`` (a
Python child that writes an engine-like output folder and keeps the input files the module wrote for it)."""

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import scene_io, shown_frame  # noqa: E402
from slicer_stand_ins import engine_launcher  # noqa: E402
from test_slicer_contract import result_folder  # noqa: E402
from test_slicer_display import composite_of, scene  # noqa: E402,F401  (the scene as Slicer's start-up sets it up)
from test_slicer_module import modules  # noqa: E402,F401  (the Qt stand-ins)

# the engine stand-in: argv = prepared result folder, --out, the module's inputs folder, where to keep the inputs
ENGINE = ("import shutil, sys; shutil.copytree(sys.argv[3], sys.argv[4]); shutil.copytree(sys.argv[1], sys.argv[2]); "
          "print('engine stand-in: done', flush=True)")
FAILING_ENGINE = "import sys; print('dcediff synthesize: error: stand-in failure'); sys.exit(2)"
FRAMES = 5


def dce_sequence(scene, selected: int, name: str = "10: DCE"):
    """A DCE loaded as a volume sequence ``name``: item k holds voxels 100·(k+1) and DICOM.instanceUIDs "1.2.<k>",
    index values 12.5·k s; a browser ``<name> browser`` on item ``selected`` and its proxy. Returns (sequence,
    browser, proxy, logic)."""
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)  # Slicer's scene has one from start-up
    logic = slicer.vtkSlicerSequencesLogic()
    logic.SetMRMLScene(scene)
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName("time")
    sequence.SetIndexUnit("s")
    for k in range(FRAMES):
        frame = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 100.0 * (k + 1), dtype=np.float32))
        frame.SetAttribute("DICOM.instanceUIDs", f"1.2.{k}")
        sequence.SetDataNodeAtValue(frame, f"{12.5 * k:g}")
        scene.RemoveNode(frame)
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.SetSaveChanges(sequence, True)
    browse(browser, logic, selected)
    return sequence, browser, browser.GetProxyNode(sequence), logic


def browse(browser, logic, item):
    browser.SetSelectedItemNumber(item)
    logic.UpdateProxyNodesFromSequences(browser)


@pytest.fixture
def run_setup(modules, monkeypatch, tmp_path):
    """(DCEDiff module, inputs, launched commands, kept inputs folder): T2W/PD/ADC/T1 volumes, the engine stand-in
    as ``_launchInSlicer``, ``slicer.app`` with a layout manager (the comparison is set up)."""
    DCEDiff, _ = modules
    prepared = tmp_path / "prepared"
    t2w = result_folder(prepared)
    others = [scene_io.image_to_volume_node(scene_io.volume_node_to_image(t2w), name) for name in ("PD", "ADC", "T1")]
    kept = tmp_path / "kept_inputs"
    launched = []

    def launch(cmd, cwd=None, env_update=None):
        out = Path(cmd[cmd.index("--out") + 1])
        launched.append(list(cmd))
        return subprocess.Popen([sys.executable, "-c", ENGINE, str(prepared), str(out), str(out.parent / "inputs"),
                                 str(kept)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    monkeypatch.setattr(DCEDiff, "_launchInSlicer", launch)
    monkeypatch.setattr(slicer.util, "resetSliceViews", lambda: None)
    (tmp_path / "tmp").mkdir()
    AppStandIn = types.SimpleNamespace(layoutManager=lambda: object(), processEvents=lambda: None,
                                       temporaryPath=str(tmp_path / "tmp"), slicerHome="")
    monkeypatch.setattr(slicer, "app", AppStandIn, raising=False)
    return DCEDiff, [t2w, *others], launched, kept


def test_a_proxy_as_the_acquired_early_dce_is_kept_at_the_frame_shown_at_apply(run_setup, scene):
    """The early DCE is the proxy on item 2; the user scrubs to item 4 while the engine runs. The input file, the
    comparison's acquired column and the record all stay on item 2; the proxy itself is left as it is."""
    DCEDiff, (t2w, pd, adc, t1), launched, kept = run_setup
    sequence, browser, proxy, logic = dce_sequence(scene, selected=2)
    late = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 700.0, dtype=np.float32), name="late DCE")
    proxy.CreateDefaultDisplayNodes()
    proxy.GetDisplayNode().SetAutoWindowLevel(False)
    proxy.GetDisplayNode().SetWindowLevel(123.0, 45.0)  # the user's window/level on the proxy
    before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")

    def scrub(line):  # the user browses the sequence while the engine runs
        browse(browser, logic, 4)

    result = DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=proxy, dceLate=late, device="cpu",
                                            logCallback=scrub)
    assert (slicer.util.arrayFromVolume(proxy) == 500.0).all(), "the browser did not move: the test checks nothing"
    # the engine got item 2
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(kept / "dce_early.nrrd"))) == 300.0).all()
    # the comparison shows a volume of its own holding item 2, not the proxy
    _, composite = composite_of("DCEDiffAcquiredEarly")
    shown = scene.GetNodeByID(composite.GetBackgroundVolumeID())
    assert shown is not proxy and shown.GetName() == "10: DCE frame 25"
    assert (slicer.util.arrayFromVolume(shown) == 300.0).all()
    assert shown.GetAttribute("DICOM.instanceUIDs") == "1.2.2"
    assert (shown.GetDisplayNode().GetWindow(), shown.GetDisplayNode().GetLevel()) == (123.0, 45.0)
    assert scene.GetNodeByID(composite_of("DCEDiffAcquiredLate")[1].GetBackgroundVolumeID()) is late
    volumes = [n for n in result.nodes.values() if n.IsA("vtkMRMLScalarVolumeNode")]
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before + len(volumes) + 1  # one copy
    # which frame it was: on the result nodes (saved with the scene), the run's result, and the copy
    expected = {"sequence": "10: DCE", "browser": "10: DCE browser", "proxy": proxy.GetName(), "item": 2,
                "index_value": "25", "index_name": "time", "index_unit": "s", "volume": "10: DCE frame 25"}
    assert result.inputFrames == {"dce_early": expected}
    for role, node in result.nodes.items():
        assert json.loads(node.GetAttribute(scene_io.INPUT_FRAMES_ATTRIBUTE)) == {"dce_early": expected}, role
    assert json.loads(shown.GetAttribute(shown_frame.FRAME_ATTRIBUTE)) == expected
    assert "item 2 (25) of 10: DCE, copied into 10: DCE frame 25" in DCEDiff.inputFramesText(result.inputFrames)
    # the proxy is still the browser's, on the item now browsed
    assert browser.IsProxyNodeID(proxy.GetID()) and proxy.GetAttribute("DICOM.instanceUIDs") == "1.2.4"


def test_a_proxy_t1pre_is_recorded_and_not_copied(run_setup, scene):
    """A proxy as another input (the T1-pre: the DCE's pre-contrast frame) is exported as the frame on show and
    recorded; it is not shown in the comparison, so no copy is made."""
    DCEDiff, (t2w, pd, adc, _t1), launched, kept = run_setup
    sequence, browser, proxy, logic = dce_sequence(scene, selected=0)
    before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    result = DCEDiff.DCEDiffLogic().process(t2w, pd, adc, proxy, device="cpu", showResult=False)
    assert result.inputFrames["t1pre"]["item"] == 0 and result.inputFrames["t1pre"]["index_value"] == "0"
    assert "volume" not in result.inputFrames["t1pre"]
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before + len(
        [n for n in result.nodes.values() if n.IsA("vtkMRMLScalarVolumeNode")])


def test_a_failed_run_removes_the_frame_copy(run_setup, scene, monkeypatch):
    """The run adds nothing to the scene when the engine fails: its copy of the frame neither."""
    DCEDiff, (t2w, pd, adc, t1), launched, kept = run_setup
    sequence, browser, proxy, logic = dce_sequence(scene, selected=1)
    late = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 700.0, dtype=np.float32), name="late DCE")
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    monkeypatch.setattr(DCEDiff, "_launchInSlicer", engine_launcher(FAILING_ENGINE))
    with pytest.raises(RuntimeError, match="stand-in failure"):
        DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=proxy, dceLate=late, device="cpu")
    after = {scene.GetNthNode(i).GetID(): scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())}
    assert [n.GetClassName() for i, n in after.items() if i not in before] == []
    assert scene.GetFirstNodeByName("10: DCE frame 12.5") is None


def test_shown_frame_follows_the_master_sequence_to_a_synchronized_sequence(scene):
    """A proxy of a synchronized (non-master) sequence: its item is the one at the master's index value, or the
    one before it where that sequence has no item there (what UpdateProxyNodesFromSequences shows)."""
    sequence, browser, proxy, logic = dce_sequence(scene, selected=3)
    other = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "other")
    for value in ("0", "25"):
        node = slicer.util.addVolumeFromArray(np.zeros((2, 2, 2), dtype=np.float32))
        other.SetDataNodeAtValue(node, value)
        scene.RemoveNode(node)
    browser.AddSynchronizedSequenceNodeID(other.GetID())
    logic.UpdateProxyNodesFromSequences(browser)
    frame = shown_frame.shown_frame(browser.GetProxyNode(other))
    assert (frame["sequence"], frame["index_value"], frame["item"]) == ("other", "37.5", 1)
    assert shown_frame.shown_frame(proxy)["item"] == 3
    assert shown_frame.shown_frame(slicer.util.addVolumeFromArray(np.zeros((2, 2, 2)))) is None
    assert shown_frame.copy_shown_frame(None) == (None, None)


# ---------------------------------------------------------------- round-18 mutation audit: the documented rules
def test_shown_frame_has_no_item_where_there_is_none_to_show(scene):
    """shown_frame: 'item: ... None where the sequence has no item at the browser's index value': a text-indexed
    synchronized sequence without the master's value, and a browser on no item of its master (none selected, or
    one past the end) have neither item nor index value."""
    sequence, browser, proxy, logic = dce_sequence(scene, selected=2)
    labels = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "labels")
    labels.SetIndexType(labels.TextIndex)
    node = slicer.util.addVolumeFromArray(np.zeros((2, 2, 2), dtype=np.float32))
    labels.SetDataNodeAtValue(node, "25")   # the master's value of item 2 only
    scene.RemoveNode(node)
    browser.AddSynchronizedSequenceNodeID(labels.GetID())
    logic.UpdateProxyNodesFromSequences(browser)
    other = browser.GetProxyNode(labels)
    assert shown_frame.shown_frame(other)["item"] == 0   # the control
    browse(browser, logic, 3)
    assert shown_frame.shown_frame(other)["item"] is None and shown_frame.shown_frame(proxy)["item"] == 3
    for selected in (-1, FRAMES):
        browser.SetSelectedItemNumber(selected)
        frame = shown_frame.shown_frame(proxy)
        assert (frame["item"], frame["index_value"]) == (None, None), selected


def test_the_copy_is_a_deep_copy_under_the_proxys_transform_and_in_its_folder(scene):
    """copy_shown_frame: 'a deep copy of what the proxy shows now ... under the proxy's parent transform and next to
    it in the subject hierarchy': the proxy's voxels changed in place afterwards leave the copy as it was."""
    sequence, browser, proxy, logic = dce_sequence(scene, selected=1)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    proxy.SetAndObserveTransformNodeID(transform.GetID())
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "patient"), "study")
    sh.SetItemParent(sh.GetItemByDataNode(proxy) or sh.CreateItem(study, proxy), study)
    copy, frame = shown_frame.copy_shown_frame(proxy)
    assert copy.GetTransformNodeID() == transform.GetID()
    assert sh.GetItemParent(sh.GetItemByDataNode(copy)) == study
    voxels = slicer.util.arrayFromVolume(proxy)
    voxels[:] = -1.0
    slicer.util.arrayFromVolumeModified(proxy)
    assert (slicer.util.arrayFromVolume(copy) == 200.0).all()


def test_a_proxy_as_the_acquired_late_dce_is_copied_too(run_setup, scene):
    """_keepShownFrames: 'the acquired early and late DCE are also copied into volumes of their own': the late
    column shows the copy of the frame on show at Apply, and inputFramesText names a recorded input that was not
    copied (the T1-pre) without a copy."""
    DCEDiff, (t2w, pd, adc, t1), launched, kept = run_setup
    sequence, browser, proxy, logic = dce_sequence(scene, selected=3)
    early = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 300.0, dtype=np.float32), name="early DCE")
    result = DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=early, dceLate=proxy, device="cpu")
    shown = scene.GetNodeByID(composite_of("DCEDiffAcquiredLate")[1].GetBackgroundVolumeID())
    assert shown is not proxy and shown.GetName() == "10: DCE frame 37.5"
    assert result.inputFrames["dce_late"]["volume"] == "10: DCE frame 37.5"
    text = DCEDiff.inputFramesText({"t1pre": {"item": 0, "index_value": "0", "sequence": "10: DCE"}})
    assert "item 0 (0) of 10: DCE" in text and "copied" not in text


def test_a_run_that_cannot_start_or_is_shut_down_removes_the_frame_copy(run_setup, scene, monkeypatch):
    """'The run adds nothing to the scene' when it fails: also when the engine cannot even be started (its launch
    raises), and when the module is reloaded during the run (shutdown). Stand-ins: ``cannot_launch`` for
    ``_launchInSlicer`` when PythonSlicer cannot start, test_slicer_module's TimerStandIn for the QTimer."""
    DCEDiff, (t2w, pd, adc, t1), launched, kept = run_setup
    sequence, browser, proxy, logic = dce_sequence(scene, selected=1)
    late = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 700.0, dtype=np.float32), name="late DCE")

    def cannot_launch(cmd, cwd=None, env_update=None):
        raise OSError("PythonSlicer not found")

    monkeypatch.setattr(DCEDiff, "_launchInSlicer", cannot_launch)
    with pytest.raises(OSError, match="PythonSlicer"):
        DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=proxy, dceLate=late, device="cpu")
    assert scene.GetFirstNodeByName("10: DCE frame 12.5") is None
    from DCEDiffSlicerLib import process_runner
    from test_slicer_module import TimerStandIn

    logic_ = DCEDiff.DCEDiffLogic()
    copy, _ = shown_frame.copy_shown_frame(proxy)
    runner = process_runner.ProcessRunner([sys.executable, "-c", "import time; time.sleep(60)"]).start()
    work = Path(slicer.app.temporaryPath) / "DCEDiff-work"
    work.mkdir()
    logic_._job = DCEDiff._Job(runner, work, t2w, 0.0, False, None, TimerStandIn(), frameCopies=[copy])
    logic_.shutdown()
    assert scene.GetFirstNodeByName("10: DCE frame 12.5") is None and copy.GetScene() is None


def test_the_status_line_says_which_frames_were_used(modules, monkeypatch):
    """The widget's status after a run whose inputs were proxies: 'Frames shown at Apply: ...'; nothing without."""
    DCEDiff, _ = modules
    from test_slicer_module import make_widget

    widget, _ = make_widget(DCEDiff, monkeypatch)
    widget.onCompleted(DCEDiff.DCEDiffResult({}, {}, 1.0))
    assert "Frames shown at Apply" not in widget.ui.statusLabel.text
    frames = {"dce_early": {"item": 2, "index_value": "25", "sequence": "10: DCE", "volume": "10: DCE frame 25"}}
    widget.onCompleted(DCEDiff.DCEDiffResult({}, {}, 1.0, inputFrames=frames))
    assert "Frames shown at Apply: " in widget.ui.statusLabel.text
    assert "item 2 (25) of 10: DCE, copied into 10: DCE frame 25" in widget.ui.statusLabel.text


# ---------------------------------------------------------------- Apply again: the copy of the frame is reused
def frame_copies(scene, sequence="10: DCE"):
    """The names of the scalar volumes named as copies of ``sequence``'s frames, in scene order."""
    names = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode").GetName()
             for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
    return [name for name in names if name.startswith(f"{sequence} frame ")]


def node_ids(scene):
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def test_apply_again_on_the_same_frame_reuses_its_copy(run_setup, scene):
    """Before the fix every Apply copied the proxy's frame again: three Applies left three identical
    "10: DCE frame 25" volumes. Now the second Apply shows and exports the first one's copy (recorded as reused);
    after the user edits the proxy's voxels the copy no longer holds what the proxy shows, and a new one is made."""
    DCEDiff, (t2w, pd, adc, t1), launched, kept = run_setup
    sequence, browser, proxy, logic = dce_sequence(scene, selected=2)
    late = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 700.0, dtype=np.float32), name="late DCE")

    def apply():
        shutil.rmtree(kept, ignore_errors=True)   # the engine stand-in keeps each run's inputs there
        result = DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=proxy, dceLate=late, device="cpu")
        return result, scene.GetNodeByID(composite_of("DCEDiffAcquiredEarly")[1].GetBackgroundVolumeID())

    first, shown = apply()
    assert frame_copies(scene) == ["10: DCE frame 25"] and "reused" not in first.inputFrames["dce_early"]
    second, shown_again = apply()
    assert frame_copies(scene) == ["10: DCE frame 25"]
    assert shown_again is shown and second.inputFrames["dce_early"] == dict(first.inputFrames["dce_early"],
                                                                             reused=True)
    assert "in 10: DCE frame 25 (copied at an earlier Apply)" in DCEDiff.inputFramesText(second.inputFrames)
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(kept / "dce_early.nrrd"))) == 300.0).all()
    voxels = slicer.util.arrayFromVolume(proxy)   # the user edits the proxy (e.g. Volumes → threshold in place)
    voxels[0] = 0.0
    slicer.util.arrayFromVolumeModified(proxy)
    third, shown_third = apply()
    assert frame_copies(scene) == ["10: DCE frame 25", "10: DCE frame 25_1"] and shown_third is not shown
    assert "reused" not in third.inputFrames["dce_early"]
    assert (slicer.util.arrayFromVolume(shown_third)[0] == 0.0).all()
    assert (slicer.util.arrayFromVolume(shown) == 300.0).all()   # the earlier copy is left as it was


def test_a_copy_is_reused_only_while_it_is_the_frame_shown_in_the_scene_under_its_name(scene):
    """earlier_copy: the copy must record the frame shown now (same sequence, item, index value), hold what the
    proxy shows (voxels, geometry, parent transform), be in the scene and keep the name it was given; the newest
    fitting copy is taken. Every check is undone before the next, so each one alone decides."""
    sequence, browser, proxy, logic = dce_sequence(scene, selected=2)
    first, frame = shown_frame.copy_shown_frame(proxy)
    assert "reused" not in frame

    def again():
        """copy_shown_frame once more: the copy it returns, whether reused; a new copy is removed again."""
        copy, frame = shown_frame.copy_shown_frame(proxy)
        if not frame.get("reused"):
            scene_io.remove_nodes([copy])
        return copy if frame.get("reused") else None

    assert again() is first   # the control: the same frame, nothing changed
    browse(browser, logic, 3)   # another frame
    assert again() is None
    browse(browser, logic, 2)
    assert again() is first
    proxy.SetSpacing(2.0, 1.0, 1.0)   # the proxy's geometry edited
    assert again() is None
    proxy.SetSpacing(1.0, 1.0, 1.0)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    proxy.SetAndObserveTransformNodeID(transform.GetID())   # placed under a registration
    assert again() is None
    proxy.SetAndObserveTransformNodeID(None)
    copied = slicer.util.arrayFromVolume(first)   # the user paints on the copy itself
    copied[1, 2, 3] = -1.0
    slicer.util.arrayFromVolumeModified(first)
    assert again() is None
    copied[1, 2, 3] = 300.0
    slicer.util.arrayFromVolumeModified(first)
    assert again() is first
    first.SetName("my early")   # renamed: the user's volume now, even with the attribute
    assert again() is None
    first.SetName("10: DCE frame 25")
    text = first.GetAttribute(shown_frame.FRAME_ATTRIBUTE)
    first.SetAttribute(shown_frame.FRAME_ATTRIBUTE, text[:-1])   # not JSON any more
    assert again() is None
    first.SetAttribute(shown_frame.FRAME_ATTRIBUTE, text)
    assert again() is first
    newest = shown_frame.copy_shown_frame(proxy)[0]
    assert newest is first
    scene.RemoveNode(first)   # deleted by the user: a new copy
    copy, frame = shown_frame.copy_shown_frame(proxy)
    assert copy is not first and "reused" not in frame and copy.GetName().startswith("10: DCE frame 25")


@pytest.mark.parametrize("error", [MemoryError("stand-in: no memory for the late frame"), KeyboardInterrupt()],
                         ids=["no-memory", "ctrl-c"])
def test_a_failure_copying_the_late_frame_leaves_nothing_behind(run_setup, scene, monkeypatch, error):
    """Early and late DCE are proxies of two sequences; copying the late one's frame fails half-way (no memory
    for its voxels, or Ctrl-C: a KeyboardInterrupt is no Exception, and the cleanup is for both). Before the fix the
    late copy stayed in the scene, half-made (no attribute, no place in the subject hierarchy). Now Apply is all or
    nothing: the early copy made by this Apply is removed, the late one too; an early copy reused from an earlier
    Apply stays (the scene's before). Stand-in: ``scene_io.place_next_to`` raising ``error`` for the late proxy's
    copy (the copy's last step but one), as no real step of a copy can be made to fail here."""
    DCEDiff, (t2w, pd, adc, t1), launched, kept = run_setup
    _, _, early, _ = dce_sequence(scene, selected=2)
    _, _, late, _ = dce_sequence(scene, selected=4, name="11: DCE late")
    real = scene_io.place_next_to

    def place_next_to(node, reference):
        if reference is late:
            raise error
        real(node, reference)

    monkeypatch.setattr(scene_io, "place_next_to", place_next_to)
    before = node_ids(scene)
    with pytest.raises(type(error)):
        DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=early, dceLate=late, device="cpu")
    added = [scene.GetNodeByID(i).GetName() for i in node_ids(scene) - before]
    assert added == [] and frame_copies(scene) == [] and frame_copies(scene, "11: DCE late") == []
    assert launched == []
    reused, _ = shown_frame.copy_shown_frame(early)   # an earlier Apply's copy of the early frame
    before = node_ids(scene)
    with pytest.raises(type(error)):
        DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=early, dceLate=late, device="cpu")
    assert node_ids(scene) == before and reused.GetScene() is scene


def test_a_failed_run_keeps_the_copy_it_reused(run_setup, scene, monkeypatch):
    """A failed run removes the frame copies it made, not the one an earlier Apply made and it reused: that one is
    the earlier result's acquired column."""
    DCEDiff, (t2w, pd, adc, t1), launched, kept = run_setup
    sequence, browser, proxy, logic = dce_sequence(scene, selected=1)
    late = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 700.0, dtype=np.float32), name="late DCE")
    DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=proxy, dceLate=late, device="cpu")
    copy = scene.GetFirstNodeByName("10: DCE frame 12.5")
    monkeypatch.setattr(DCEDiff, "_launchInSlicer", engine_launcher(FAILING_ENGINE))
    with pytest.raises(RuntimeError, match="stand-in failure"):
        DCEDiff.DCEDiffLogic().process(t2w, pd, adc, t1, dceEarly=proxy, dceLate=late, device="cpu")
    assert copy is not None and copy.GetScene() is scene and frame_copies(scene) == ["10: DCE frame 12.5"]


# ---------------------------------------------------------------- round-19 mutation audit: the documented rules
def test_same_content_is_false_for_a_volume_without_voxels(scene):
    """same_content: 'the same voxels': a volume node without image data (one just added, a proxy of an item
    without voxels) holds no voxels that could be the same as another's, either way round, and says so without an
    error."""
    sequence, browser, proxy, logic = dce_sequence(scene, selected=2)
    copy, _ = shown_frame.copy_shown_frame(proxy)
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "no voxels")
    assert shown_frame.same_content(copy, proxy)   # the control
    assert shown_frame.same_content(empty, proxy) is False and shown_frame.same_content(copy, empty) is False


def test_a_copy_holds_the_same_voxels_bit_for_bit_nan_included_scalar_type_and_geometry_too(scene):
    """same_content: 'the same voxels (values, shape and scalar type), the same IJK-to-RAS geometry', and 'a NaN
    voxel equals itself here'. The copy reused is what the engine is given instead of the proxy, so nothing may
    differ: a NaN voxel in both does not stop the reuse; the proxy cast to float64 with the same values, or its
    spacing edited by 1e-6 mm, does (each alone: the newest copy fits everything else)."""
    sequence, browser, proxy, logic = dce_sequence(scene, selected=2)
    voxels = slicer.util.arrayFromVolume(proxy)
    voxels[1, 2, 3] = np.nan
    slicer.util.arrayFromVolumeModified(proxy)
    first, _ = shown_frame.copy_shown_frame(proxy)
    again, frame = shown_frame.copy_shown_frame(proxy)
    assert again is first and frame["reused"] is True
    slicer.util.updateVolumeFromArray(proxy, slicer.util.arrayFromVolume(proxy).astype(np.float64))
    cast, frame = shown_frame.copy_shown_frame(proxy)
    assert cast is not first and "reused" not in frame
    assert slicer.util.arrayFromVolume(cast).dtype == np.float64   # the control: the cast took
    assert shown_frame.copy_shown_frame(proxy)[0] is cast   # the control: nothing else differs now
    proxy.SetSpacing(1.000001, 1.0, 1.0)
    stretched, frame = shown_frame.copy_shown_frame(proxy)
    assert stretched not in (first, cast) and "reused" not in frame


def test_of_two_copies_that_fit_the_newest_is_reused(scene):
    """earlier_copy: 'The newest fitting copy where there are several': the user paints on the first copy, Apply
    makes a second one, the user undoes the painting; both hold the frame now, the second is taken."""
    sequence, browser, proxy, logic = dce_sequence(scene, selected=2)
    first, _ = shown_frame.copy_shown_frame(proxy)
    painted = slicer.util.arrayFromVolume(first)
    painted[0, 0, 0] = -1.0
    slicer.util.arrayFromVolumeModified(first)
    second, frame = shown_frame.copy_shown_frame(proxy)
    assert second is not first and "reused" not in frame
    painted[0, 0, 0] = 300.0
    slicer.util.arrayFromVolumeModified(first)
    assert shown_frame.same_content(first, proxy) and shown_frame.same_content(second, proxy)   # both fit
    assert shown_frame.copy_shown_frame(proxy)[0] is second


def test_a_frame_with_the_same_voxels_as_another_gets_a_copy_of_its_own(scene):
    """earlier_copy: the copy must 'record that frame': two items of a sequence with the same voxels (two
    pre-contrast frames) are two frames; the copy of the first is not reused for the second, whose copy records the
    second item and its own DICOM instance, and neither for the same item of another sequence with those voxels."""
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    logic = slicer.vtkSlicerSequencesLogic()
    logic.SetMRMLScene(scene)
    proxies = []
    for name in ("baseline", "baseline again"):
        sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
        for k in range(2):
            frame = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 300.0, dtype=np.float32))
            frame.SetAttribute("DICOM.instanceUIDs", f"1.3.{k}")
            sequence.SetDataNodeAtValue(frame, f"{12.5 * k:g}")
            scene.RemoveNode(frame)
        browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
        browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
        browse(browser, logic, 0)
        proxies.append((browser, browser.GetProxyNode(sequence)))
    (browser, proxy), (_, other_proxy) = proxies
    first, _ = shown_frame.copy_shown_frame(proxy)
    assert shown_frame.copy_shown_frame(proxy)[0] is first   # the control
    browse(browser, logic, 1)
    assert shown_frame.same_content(first, proxy)   # the same voxels: only the record tells the frames apart
    second, frame = shown_frame.copy_shown_frame(proxy)
    assert second is not first and "reused" not in frame and frame["item"] == 1
    assert second.GetAttribute("DICOM.instanceUIDs") == "1.3.1"
    other, frame = shown_frame.copy_shown_frame(other_proxy)
    assert other not in (first, second) and "reused" not in frame and frame["sequence"] == "baseline again"


def test_only_a_scalar_volume_of_the_proxys_class_other_than_the_proxy_is_reused(scene):
    """copy_shown_frame returns 'a scalar volume node' holding the frame, 'of its own' so that the comparison does
    not follow the browser (module docstring); earlier_copy reads a record 'edited by hand' as no copy to reuse. So
    a label map named and marked as the copy, holding its voxels, is not taken (the comparison's acquired column
    would show a label map); nor is the proxy when it carries a record naming itself; nor a copy whose record is
    JSON but no object (no error either)."""
    sequence, browser, proxy, logic = dce_sequence(scene, selected=2)
    frame = shown_frame.shown_frame(proxy)
    proxy.SetAttribute(shown_frame.FRAME_ATTRIBUTE, json.dumps(dict(frame, volume=proxy.GetName())))
    copy, recorded = shown_frame.copy_shown_frame(proxy)
    assert copy is not proxy and "reused" not in recorded
    proxy.RemoveAttribute(shown_frame.FRAME_ATTRIBUTE)
    text = copy.GetAttribute(shown_frame.FRAME_ATTRIBUTE)
    assert shown_frame.copy_shown_frame(proxy)[0] is copy   # the control
    copy.SetAttribute(shown_frame.FRAME_ATTRIBUTE, json.dumps([text]))
    listed, recorded = shown_frame.copy_shown_frame(proxy)
    assert listed is not copy and "reused" not in recorded
    scene_io.remove_nodes([listed, copy])
    matrix = slicer.util.vtkMatrixFromArray(np.eye(4))
    proxy.GetIJKToRASMatrix(matrix)
    label = slicer.util.addVolumeFromArray(slicer.util.arrayFromVolume(proxy).copy(),
                                           ijkToRAS=slicer.util.arrayFromVTKMatrix(matrix),
                                           name=json.loads(text)["volume"],
                                           nodeClassName="vtkMRMLLabelMapVolumeNode")
    label.SetAttribute(shown_frame.FRAME_ATTRIBUTE, text)
    assert shown_frame.same_content(label, proxy)   # the control: all but the class fits
    copy, recorded = shown_frame.copy_shown_frame(proxy)
    assert copy is not label and copy.GetClassName() == proxy.GetClassName() and "reused" not in recorded


def test_the_status_line_does_not_say_a_reused_copy_was_copied_now(modules):
    """inputFramesText: a reused copy is named as 'copied at an earlier Apply' (docs/slicer.md), not as copied into
    at this Apply; a copy made now is 'copied into' it and nothing about an earlier Apply."""
    DCEDiff, _ = modules
    frame = {"item": 2, "index_value": "25", "sequence": "10: DCE", "volume": "10: DCE frame 25"}
    reused = DCEDiff.inputFramesText({"dce_early": dict(frame, reused=True)})
    assert "in 10: DCE frame 25 (copied at an earlier Apply)" in reused and "copied into" not in reused
    made = DCEDiff.inputFramesText({"dce_early": frame})
    assert "copied into 10: DCE frame 25" in made and "earlier Apply" not in made
