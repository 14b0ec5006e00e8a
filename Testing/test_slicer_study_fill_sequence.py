""""Fill from study" with the DCE loaded as Slicer loads a one-series DCE by default: a volume sequence.

Slicer's DICOM browser offers a DCE series with several temporal positions to MultiVolumeImporterPlugin
(github.com/fedorov/MultiVolumeImporter, bundled with Slicer), whose "Volume Sequence" loadable is listed first and
selected by default (``DICOM/PreferredMultiVolumeImportFormat`` "default"; confidence 0.9-1.0 against the scalar
volume plugin's 0.5). Its ``load`` makes one scalar volume per frame with DICOMScalarVolumePlugin (which sets that
frame's ``DICOM.instanceUIDs``), copies it into a ``vtkMRMLSequenceNode`` item with ``UpdateDataNodeAtValue``
(``CopyContent``: the attributes come along) and adds a ``vtkMRMLSequenceBrowserNode``; the scene then holds one
proxy scalar volume node whose content *and attributes* are those of the browser's current item
(vtkSlicerSequencesLogic::UpdateProxyNodesFromSequences → ``CopyContent``). That is reproduced here with the real
slicer-core classes: vtkMRMLSequenceNode, vtkMRMLSequenceBrowserNode and vtkSlicerSequencesLogic (whose
SetMRMLScene registers the browser class, as in Slicer). Stand-in (slicer-core has no ctkDICOMDatabase):
``DicomDatabaseStandIn`` of Testing/test_slicer_study_fill.py.

Until 2026-12-08 only the proxy's current frame was scanned: the engine saw a one-frame "DCE", reported "no acquired
DCE series in the study", and took the post-contrast VIBE acquired after the DCE as the T1 pre-contrast.
Also here: the refusal of a proxy selected for two roles, and of the grid transform Slicer's DICOM scalar volume
plugin puts over a series with irregular geometry (both name what to do).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from DCEDiffSlicerLib import study_fill  # noqa: E402
from DCEDiffLib.dicom_study import scan_study  # noqa: E402
from shared_phantom_case import generated_case  # noqa: E402
from DCEDiffLib.phantom.study_export import write_phantom_study  # noqa: E402
from test_slicer_module import modules  # noqa: E402,F401  (the Qt stand-ins of the module tests)
from test_slicer_study_fill import FEW, DicomDatabaseStandIn  # noqa: E402
from phantom_frames import fewer_frames  # noqa: E402


@pytest.fixture(scope="module")
def temporal_study(tmp_path_factory):
    """A phantom exam whose DCE is one series with TemporalPositionIdentifier 1…5 (dce_layout "temporal"), with
    the post-contrast VIBEs acquired after the DCE (one of them with a neutral name)."""
    case = generated_case(3)
    case = fewer_frames(case)
    root = tmp_path_factory.mktemp("temporal") / "P-5"
    expected = write_phantom_study(case, root, dce_layout="temporal", omit=FEW, patient_id="P-5")
    return root, expected, DicomDatabaseStandIn(root)


@pytest.fixture(autouse=True)
def scene():
    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


def load_dce_as_volume_sequence(root, database, scene, index_value=str):
    """Every series as Slicer's DICOM module loads it by default: one scalar volume node per series with its
    ``DICOM.instanceUIDs``, and the multi-frame DCE as MultiVolumeImporterPlugin.load(loadAsVolumeSequence) makes
    it: a sequence node whose item k holds frame k (voxels = k + 1, attributes of that frame's scalar volume), a
    browser, and its proxy node (``index_value``: item number → the item's index value; MultiVolumeImporterPlugin
    writes the frames' labels, e.g. trigger times). Returns (series number → node, sequence node, browser node,
    sequences logic)."""
    uid_of = {path: uid for uid, path in database.files.items()}
    logic = slicer.vtkSlicerSequencesLogic()
    logic.SetMRMLScene(scene)
    nodes, sequence, browser = {}, None, None
    for series in scan_study(root).series:
        name = f"{series.number}: {series.description}"
        volumes = series.volumes()
        if len(volumes) == 1:
            node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
            node.SetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE, " ".join(uid_of[f.path] for f in series.files))
            nodes[series.number] = node
            continue
        sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
        sequence.SetIndexName("")
        sequence.SetIndexUnit("")
        for index, volume in enumerate(volumes):
            frame = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)   # DICOMScalarVolumePlugin.load
            slicer.util.updateVolumeFromArray(frame, np.full((3, 4, 5), index + 1, dtype=np.int16))
            frame.SetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE, " ".join(uid_of[f.path] for f in volume.files))
            empty = scene.AddNewNodeByClass(frame.GetClassName())
            sequence.SetDataNodeAtValue(empty, index_value(index))
            scene.RemoveNode(empty)
            sequence.UpdateDataNodeAtValue(frame, index_value(index), True)
            scene.RemoveNode(frame)
        browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", name + " browser")
        browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
        browser.SetSaveChanges(sequence, True)
        browser.SetOverwriteProxyName(sequence, True)
        logic.UpdateProxyNodesFromSequences(browser)
        nodes[series.number] = browser.GetProxyNode(sequence)
    return nodes, sequence, browser, logic


def _browse(browser, logic, item):
    browser.SetSelectedItemNumber(item)
    logic.UpdateProxyNodesFromSequences(browser)


def test_the_proxy_carries_only_the_current_frames_uids(temporal_study, scene):
    """What Slicer does, checked on the real classes: the proxy's DICOM.instanceUIDs follow the browser."""
    root, expected, database = temporal_study
    nodes, sequence, browser, logic = load_dce_as_volume_sequence(root, database, scene)
    proxy = browser.GetProxyNode(sequence)
    assert proxy.IsA("vtkMRMLScalarVolumeNode") and proxy.GetClassName() == "vtkMRMLScalarVolumeNode"
    first = proxy.GetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE)
    _browse(browser, logic, 3)
    assert proxy.GetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE) not in ("", None, first)
    assert proxy.GetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE) == \
        sequence.GetNthDataNode(3).GetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE)


@pytest.mark.parametrize("item", [0, 3])
def test_a_dce_loaded_as_a_volume_sequence_is_found_and_its_frames_get_volumes_of_their_own(
        temporal_study, scene, item):
    """The whole DCE series is scanned (every item of the sequence), so the engine picks the T1-pre and the
    early/late frames as with `dcediff synthesize --study`; each picked frame becomes a plain scalar volume node (a
    copy of that item, its DICOM.instanceUIDs with it), never the proxy, whose content follows the browser."""
    from DCEDiffLib.study_roles import pick_roles

    root, expected, database = temporal_study
    nodes, sequence, browser, logic = load_dce_as_volume_sequence(root, database, scene)
    proxy = browser.GetProxyNode(sequence)
    _browse(browser, logic, item)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    picks = pick_roles(scan_study(root), require=False)
    assert picks.picks["t1pre"].frame_index is not None   # the exam's T1-pre is a DCE frame (no pre-contrast VIBE)
    assert fill.missing == [] and not any("no acquired DCE" in line for line in fill.lines + fill.notes)
    frames = {role: picks.picks[role].frame_index for role in ("t1pre", "dce_early", "dce_late")}
    assert frames["dce_early"] == expected["dce_early"][1] and frames["dce_late"] == expected["dce_late"][1]
    for role, frame in frames.items():
        node = fill.nodes[role]
        assert node is not proxy and not node.IsA("vtkMRMLMultiVolumeNode"), role
        assert node.GetClassName() == "vtkMRMLScalarVolumeNode" and node.GetScene() is scene, role
        assert (slicer.util.arrayFromVolume(node) == frame + 1).all(), role   # that frame's voxels
        assert node.GetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE) == \
            sequence.GetNthDataNode(frame).GetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE), role
        assert node.GetDisplayNode() is not None, role
    for role in ("t2w", "pd", "adc"):
        assert fill.nodes[role] is nodes[expected[role]], role
    assert "t1_vibe" not in fill.nodes["t1pre"].GetName()   # not the post-contrast VIBE acquired after the DCE
    assert any("volume sequence" in note for note in fill.notes)
    # browsing the sequence afterwards changes the proxy, not the filled inputs
    _browse(browser, logic, (item + 2) % sequence.GetNumberOfDataNodes())
    for role, frame in frames.items():
        assert (slicer.util.arrayFromVolume(fill.nodes[role]) == frame + 1).all(), role
    # a second fill finds the copies: no new nodes
    count = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    again = study_fill.fill_from_study(scene, database.fileForInstance)
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == count
    assert all(again.nodes[role] is fill.nodes[role] for role in frames)


def test_the_proxy_is_never_filled_in_even_on_the_picked_frame(temporal_study, scene):
    """With the browser on the picked T1-pre frame, the proxy's files are those of the pick; it must still not be
    chosen (its content changes with the browser, also during a run's set-up or after it)."""
    from DCEDiffLib.study_roles import pick_roles

    root, expected, database = temporal_study
    nodes, sequence, browser, logic = load_dce_as_volume_sequence(root, database, scene)
    proxy = browser.GetProxyNode(sequence)
    _browse(browser, logic, pick_roles(scan_study(root), require=False).picks["t1pre"].frame_index)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert all(node is not proxy for node in fill.nodes.values())


def test_the_proxy_selected_for_two_frames_is_refused_with_what_to_do(modules, temporal_study, scene, monkeypatch):
    """By hand, the acquired early and late DCE of a sequence-loaded series can only be its one proxy node: the
    refusal says that it is a volume sequence's proxy and how to get frames of their own (Fill from study, or
    Clone), not only "expected a different series for each" (they are one series). Qt widgets: the stand-ins of
    Testing/test_slicer_module.py."""
    from test_slicer_module import make_widget
    from DCEDiffSlicerLib import scene_io

    DCEDiff, _ = modules
    root, expected, database = temporal_study
    nodes, sequence, browser, logic = load_dce_as_volume_sequence(root, database, scene)
    proxy = browser.GetProxyNode(sequence)
    assert scene_io.sequence_of_proxy(proxy) == sequence.GetName()
    assert scene_io.sequence_of_proxy(nodes[expected["t2w"]]) is None and scene_io.sequence_of_proxy(None) is None
    widget, _p = make_widget(DCEDiff, monkeypatch)
    t2w, pd, adc = (nodes[expected[role]] for role in ("t2w", "pd", "adc"))
    t1pre = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "T1")
    with pytest.raises(ValueError, match="acquired early DCE and acquired late DCE: the same volume") as error:
        widget.logic.process(t2w, pd, adc, t1pre, dceEarly=proxy, dceLate=proxy)
    assert f"proxy node of the volume sequence {sequence.GetName()!r}" in str(error.value)
    assert "Fill from study copies the frames" in str(error.value) and widget.logic._job is None
    with pytest.raises(ValueError, match="T2W and PD: the same volume .* a different series for each$"):  # as before
        widget.logic.process(t2w, t2w, adc, t1pre)


def test_an_acquisition_grid_transform_is_refused_with_the_dicom_setting(scene):
    """DICOMScalarVolumePlugin.AcquisitionModeling.gridTransformFromCorners puts a series with irregular geometry
    under a vtkMRMLGridTransformNode named "<series> acquisition transform" (default setting): the refusal names
    it and the DICOM setting that hardens it at loading."""
    import vtk

    from DCEDiffSlicerLib import scene_io

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "3: t2_tse_tra")
    slicer.util.updateVolumeFromArray(node, np.ones((3, 4, 5), dtype=np.float32))
    grid = slicer.vtkMRMLGridTransformNode()
    grid.SetName("3: t2_tse_tra acquisition transform")
    scene.AddNode(grid)
    image = vtk.vtkImageData()
    image.SetDimensions(2, 2, 3)
    image.AllocateScalars(vtk.VTK_DOUBLE, 3)
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(image)
    grid.SetAndObserveTransformToParent(transform)
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(ValueError, match="parent transform is not linear; harden it first") as error:
        scene_io.volume_node_to_image(node, "T2W")
    assert "3: t2_tse_tra acquisition transform" in str(error.value)
    assert "Acquisition geometry regularization" in str(error.value)



# ------------------------------------------------------------------------------------------------
# Mutation audit of dicom_sequence_frames / frame_volume / fill_from_study's frame copies and the proxy refusal

def test_a_copied_frame_is_a_deep_copy_placed_and_named_as_the_proxy_and_its_index(temporal_study, scene):
    """frame_volume: 'a deep copy of item ``item`` ... named ``<sequence> frame <index value>``, under the parent
    transform of the sequence's proxy node and next to it in the subject hierarchy', and a name no other node has;
    the fill lists the copied roles and says so. Index values as MultiVolumeImporterPlugin writes them (trigger
    times, not item numbers); the proxy under a linear transform and in a study folder; a node already holding the
    first copy's name. Kills: a shallow copy, the proxy's transform or subject-hierarchy place not given, the item
    number in the name, the name not made unique, the copied roles not listed."""
    root, expected, database = temporal_study
    nodes, sequence, browser, logic = load_dce_as_volume_sequence(root, database, scene,
                                                                  index_value=lambda i: f"{12.5 * i:g}")
    proxy = browser.GetProxyNode(sequence)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    proxy.SetAndObserveTransformNodeID(transform.GetID())
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study_item = sh.CreateFolderItem(sh.GetSceneItemID(), "study")
    proxy_item = sh.GetItemByDataNode(proxy) or sh.CreateItem(sh.GetSceneItemID(), proxy)
    sh.SetItemParent(proxy_item, study_item)
    late = expected["dce_late"][1]
    taken = f"{sequence.GetName()} frame {12.5 * late:g}"
    scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", taken)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert sorted(fill.copied) == ["dce_early", "dce_late", "t1pre"]
    assert "Copied out of the loaded volume sequence" in fill.message()
    for role in fill.copied:
        node = fill.nodes[role]
        assert node.GetTransformNodeID() == transform.GetID(), role
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study_item, role
    early = expected["dce_early"][1]
    assert fill.nodes["dce_early"].GetName() == f"{sequence.GetName()} frame {12.5 * early:g}"
    assert fill.nodes["dce_late"].GetName() != taken and fill.nodes["dce_late"].GetName().startswith(taken)
    voxels = slicer.util.arrayFromVolume(fill.nodes["dce_early"])
    voxels[:] = 99
    slicer.util.arrayFromVolumeModified(fill.nodes["dce_early"])
    assert (slicer.util.arrayFromVolume(sequence.GetNthDataNode(early)) == early + 1).all()


def test_a_scene_with_only_the_dce_sequence_is_filled_from_its_frames(temporal_study, scene):
    """fill_from_study refuses a scene with nothing loaded from DICOM only: a scene holding the DCE as a volume
    sequence alone fills the DCE roles from its frames (the other series are missing, not an error). Kills the
    refusal made when no plain volume came from DICOM."""
    root, expected, database = temporal_study
    nodes, sequence, browser, logic = load_dce_as_volume_sequence(root, database, scene)
    proxy = browser.GetProxyNode(sequence)
    for node in list(nodes.values()):
        if node is not proxy:
            scene.RemoveNode(node)
    fill = study_fill.fill_from_study(scene, database.fileForInstance)
    assert {"dce_early", "dce_late"} <= set(fill.nodes) and "t2w" in fill.missing


def test_label_map_items_of_a_sequence_are_no_frames(temporal_study, scene):
    """dicom_sequence_frames gives scalar volume items only: a sequence of label maps that carry DICOM.instanceUIDs
    (a segmentation loaded per time point) is no DCE to scan. Kills the label map exclusion dropped."""
    root, expected, database = temporal_study
    uid = next(iter(database.files))
    labels = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "labels")
    item = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "label")
    item.SetAttribute(study_fill.INSTANCE_UIDS_ATTRIBUTE, uid)
    labels.SetDataNodeAtValue(item, "0")
    assert study_fill.dicom_sequence_frames(scene, database.fileForInstance) == []


def test_the_proxy_hint_is_given_only_for_the_node_selected_twice(modules, temporal_study, scene, monkeypatch):
    """The 'same volume' refusal names a volume sequence's proxy only when the node given twice is that proxy: T2W
    given as PD too, with the proxy as the T1-pre (once), is refused as before, without the proxy hint. Kills the
    proxy looked for among every selected node. Qt widgets: the stand-ins of Testing/test_slicer_module.py."""
    from test_slicer_module import make_widget

    DCEDiff, _ = modules
    root, expected, database = temporal_study
    nodes, sequence, browser, logic = load_dce_as_volume_sequence(root, database, scene)
    widget, _p = make_widget(DCEDiff, monkeypatch)
    t2w, adc = nodes[expected["t2w"]], nodes[expected["adc"]]
    with pytest.raises(ValueError, match="T2W and PD: the same volume .* a different series for each$"):
        widget.logic.process(t2w, t2w, adc, browser.GetProxyNode(sequence))
