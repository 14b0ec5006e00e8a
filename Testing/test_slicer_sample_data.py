"""The module's Sample Data entry (DCEDiff.py's registerSampleData / loadSamplePhantom): the shipped phantom exam
loads as nodes that the engine knows for a phantom, and still knows after the scene is saved and reopened.

Slicer's own Sample Data loader removes the storage node of every volume it loads (the files sit in a cache folder),
so the node no longer names the marked phantom file it came from, and the shipped phantom was flagged out of
distribution in the first step of docs/slicer.md. ``SampleDataStandIn`` replaces Slicer's SampleData module (a
GUI-side module that slicer-core does not have) and only records what is registered; MRML nodes, storage nodes and
scene files are the real ones of the slicer-core wheel."""

import hashlib
import sys
import types
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_module import CASE, modules, save_and_reopen, scene  # noqa: E402,F401  (fixtures)


@pytest.fixture
def registered(modules, monkeypatch):
    """The Sample Data entry the module registers at start-up, as keyword arguments."""
    DCEDiff, _ = modules
    entries = []
    sample_data_stand_in = types.ModuleType("SampleData")
    sample_data_stand_in.SampleDataLogic = types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **entry: entries.append(entry))
    monkeypatch.setitem(sys.modules, "SampleData", sample_data_stand_in)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(layoutManager=lambda: None), raising=False)
    DCEDiff.registerSampleData()
    (entry,) = entries
    return DCEDiff, entry


def test_the_entry_loads_with_the_module_loader_and_checks_the_cached_copies(registered):
    DCEDiff, entry = registered
    assert entry["customDownloader"] is DCEDiff.loadSamplePhantom  # the Sample Data button calls it
    paths = [Path(urllib.parse.urlparse(uri).path) for uri in entry["uris"]]
    assert paths == [CASE / f"{key}.nii.gz" for key, _ in DCEDiff.SAMPLE_FILES]
    # downloadSample() from Python copies the files into Slicer's cache: a copy of an older version is replaced
    assert entry["checksums"] == [f"SHA256:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in paths]


def test_the_sample_phantom_is_a_phantom_for_the_engine_before_and_after_a_saved_scene(registered, tmp_path):
    from DCEDiffLib.data_source import NOT_MARKED, PHANTOM, input_source
    from DCEDiffSlicerLib import scene_io

    DCEDiff, entry = registered
    # what Slicer's Sample Data loader leaves: the volume without its storage node, not known as a phantom
    unmarked = scene_io.read_volume_node(CASE / "t2w.nii.gz", "as Sample Data loads it")
    assert unmarked.GetStorageNode() is None and scene_io.node_source(unmarked) == NOT_MARKED
    slicer.mrmlScene.RemoveNode(unmarked)

    nodes = entry["customDownloader"](None)
    assert [node.GetName() for node in nodes] == entry["nodeNames"]
    for node, (key, _) in zip(nodes, DCEDiff.SAMPLE_FILES):
        assert scene_io.node_source(node) == PHANTOM
        expected = sitk.GetArrayFromImage(sitk.ReadImage(str(CASE / f"{key}.nii.gz"), sitk.sitkFloat32))
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), expected)

    scene = slicer.mrmlScene  # Save: each volume written again as .nrrd, without the file's mark
    for node in nodes:
        node.AddDefaultStorageNode()
        node.GetStorageNode().SetFileName(str(tmp_path / f"{node.GetName()}.nrrd"))
        assert node.GetStorageNode().WriteData(node)
    reopened = save_and_reopen(scene, tmp_path)  # a new session opens the saved scene
    t2w = reopened.GetFirstNodeByName("DCEDiffPhantom T2W")
    assert input_source(t2w.GetStorageNode().GetFileName()) == NOT_MARKED
    assert scene_io.node_source(t2w) == PHANTOM
    assert input_source(scene_io.write_volume_node(t2w, tmp_path / "input" / "t2w.nrrd", "T2W")) == PHANTOM
    reopened.Clear(1)


def test_a_file_without_the_phantom_mark_is_not_loaded_as_a_phantom(modules, tmp_path):
    from DCEDiffSlicerLib import scene_io

    exam = tmp_path / "exam_t2w.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 8, 8), np.float32)), str(exam))
    with pytest.raises(ValueError, match="exam_t2w.nrrd: not a DCEDiff phantom file"):
        scene_io.load_phantom_volume(exam, "T2W")
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0  # nothing half-made
