"""What the module's Sample Data loader (DCEDiff.py loadSamplePhantom) leaves in the slice views of a scene that
already shows a DCEDiff result. Stand-ins (slicer-core has no Qt): ``slicer.app`` and its layout manager, which
only report a main window and no slice logics to fit; the Qt module stand-ins of Testing/test_slicer_module.py.
MRML nodes, ``slicer.util.setSliceViewerLayers`` and the comparison layout code are the real ones."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_module import modules, scene  # noqa: E402,F401  (fixtures)


class LayoutManagerStandIn:
    """Test double of qSlicerLayoutManager: setSliceViewerLayers(fit=True) asks it for the slice logics."""

    def mrmlSliceLogics(self):
        """No slice logics: nothing to fit."""
        return types.SimpleNamespace(GetNumberOfItems=lambda: 0)


def test_loading_the_phantom_again_clears_an_earlier_results_overlays_from_the_views(modules, monkeypatch):
    """Slicer's volume loader shows a loaded volume with every layer set (qSlicerVolumesReader.cxx:
    ``appLogic->PropagateVolumeSelection()``, vtkMRMLApplicationLogic.cxx: background = the active volume,
    foreground = the secondary one, label = the active label map). The module's loader set the background only:
    after a run, loading the phantom again put the new T2W under the earlier result's |residual| overlay in every
    comparison view."""
    DCEDiff, _ = modules
    from DCEDiffSlicerLib import result_display as rd

    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(layoutManager=LayoutManagerStandIn), raising=False)
    # as Slicer's start-up leaves the scene: slice orientation presets, the Colors module's legend node class
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(slicer.mrmlScene)
    slicer.mrmlScene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    base = np.random.default_rng(0).uniform(0, 500, size=(4, 16, 16)).astype(np.float32)
    nodes = {}
    for target in rd.TARGETS:
        for kind in ("synthetic", "residual"):
            nodes[f"{kind}_{target}"] = slicer.util.addVolumeFromArray(base, name=f"earlier {kind} {target}")
            nodes[f"{kind}_{target}"].CreateDefaultDisplayNodes()
    reference = slicer.util.addVolumeFromArray(base, name="earlier T2W")
    reference.CreateDefaultDisplayNodes()
    summary = rd.show_comparison(nodes, {}, reference=reference)
    assert summary["views"]["DCEDiffResidualEarly"][1] == nodes["residual_early"].GetID()

    loaded = DCEDiff.loadSamplePhantom()
    composites = [slicer.mrmlScene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                  for i in range(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]
    assert len(composites) == len(summary["views"])
    for composite in composites:
        assert composite.GetBackgroundVolumeID() == loaded[0].GetID()
        assert composite.GetForegroundVolumeID() is None, composite.GetLayoutName()
        assert composite.GetLabelVolumeID() is None
