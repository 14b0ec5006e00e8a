"""What a Slicer user hit in the module's scene code (session-56 hunt), with real MRML nodes from slicer-core:

- the batch script's relative ``--out results/`` (the docs' own example): the result files were handed to Slicer's
  storage nodes as relative names, which MRML resolves against the scene's root directory (Slicer sets it to the
  default scene folder, e.g. ~/Documents), not the folder the command was typed in: after the whole synthesis the
  write failed ("could not write results/synthetic_early.nrrd"), or, where that folder existed there, the volumes
  went to ~/Documents/results while DCEDiff.json went to ./results;
- a scalar volume node holding several components per voxel (RGB data in a plain scalar node) was refused with
  numpy's "cannot reshape array of size ..." instead of a message naming the input.

Stand-ins, Qt only: ``CoreIOManagerStandIn`` (qSlicerCoreIOManager, what ``slicer.util.saveNode`` calls) does what
Slicer's ``saveNodes`` and ``qSlicerNodeWriter::write`` do — the folder made relative to the working directory
(QFileInfo), then the node's real storage node given the file name as passed and asked to write — and the Qt
stand-ins of Testing/test_slicer_module.py for importing DCEDiff.py."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402
import vtk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_module import modules, scene  # noqa: E402,F401  (fixtures: Qt stand-ins, a fresh scene)


class CoreIOManagerStandIn:
    """Test double of qSlicerCoreIOManager: ``saveNodes`` as Slicer's (qSlicerCoreIOManager.cxx, qSlicerNodeWriter.cxx):
    mkpath of the file's folder relative to the working directory, then the node's default storage node gets the file
    name as given and writes (MRML resolves a relative name against the scene's root directory)."""

    def fileWriterFileType(self, node):
        return "TableFile" if node.IsA("vtkMRMLTableNode") else "VolumeFile"

    def saveNodes(self, fileType, properties, userMessages=None):
        node = slicer.mrmlScene.GetNodeByID(properties["nodeID"])
        file_name = properties["fileName"]
        Path(file_name).parent.mkdir(parents=True, exist_ok=True)  # QFileInfo(fileName).dir().mkpath(".")
        storage = node.GetStorageNode()
        if storage is None:
            node.AddDefaultStorageNode()
            storage = node.GetStorageNode()
        storage.SetFileName(file_name)
        storage.SetURI(None)
        return bool(storage.WriteData(node))


def test_batch_results_go_to_a_relative_out_folder_where_the_command_was_typed(modules, scene, tmp_path,
                                                                              monkeypatch):
    DCEDiff, DCEDiffBatch = modules
    documents, work = tmp_path / "Documents", tmp_path / "work"
    documents.mkdir()
    work.mkdir()
    scene.SetRootDirectory(str(documents))  # what qSlicerCoreApplication::setMRMLScene does (DefaultScenePath)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(coreIOManager=CoreIOManagerStandIn), raising=False)
    monkeypatch.chdir(work)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "T2W synthetic early DCE")
    slicer.util.updateVolumeFromArray(node, np.arange(60, dtype=np.float32).reshape(3, 4, 5))
    node.SetAttribute(scene_io.SYNTHETIC_ATTRIBUTE, "true")
    result = DCEDiff.DCEDiffResult({"synthetic_early": node}, {"model": "m"}, 1.0)

    assert DCEDiffBatch.finishRun(result, Path("results")) == DCEDiffBatch.EXIT_OK  # --out results/
    written = work / "results" / "synthetic_early.nrrd"
    assert written.is_file() and (work / "results" / DCEDiffBatch.MARKS_FILE).is_file()
    assert not (documents / "results").exists()  # nothing beside the scene's root
    reread = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "reread")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(written))
    assert storage.ReadData(reread)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(reread), slicer.util.arrayFromVolume(node))


def test_a_scalar_node_with_several_components_per_voxel_is_refused_by_name():
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "colour ADC")
    image = vtk.vtkImageData()
    image.SetDimensions(6, 5, 4)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)  # RGB voxels in a plain scalar volume node
    node.SetAndObserveImageData(image)
    with pytest.raises(ValueError, match=r"ADC: colour ADC has 3 components per voxel .*expected a 3D scalar"):
        scene_io.volume_node_to_image(node, "ADC")
