"""How the module shows a result (DCEDiff/DCEDiffSlicerLib/result_display.py), under the slicer-core wheel: real MRML
layout, slice, composite, table-view, colour-table and colour-legend nodes (Slicer's layout manager builds the view
widgets from these; it cannot run here)."""

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import result_display as rd  # noqa: E402
from DCEDiffSlicerLib import scene_io  # noqa: E402


@pytest.fixture(autouse=True)
def scene():
    """A scene set up as Slicer's application does at start-up: the slice orientation presets on the default slice
    node (vtkMRMLApplicationLogic) and the colour-legend node class (registered by the Colors module logic)."""
    slicer.mrmlScene = slicer.vtkMRMLScene()
    default_slice = slicer.vtkMRMLSliceNode()
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(slicer.mrmlScene)
    slicer.mrmlScene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    del default_slice
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


def volume(name, values):
    node = slicer.util.addVolumeFromArray(np.asarray(values, dtype=np.float32), name=name)
    node.CreateDefaultDisplayNodes()
    return node


def make_result(with_acquired=True, with_uncertainty=True, with_expected_error=False):
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 800, size=(4, 16, 16)).astype(np.float32)
    t2w = volume("T2W", base * 0.5)
    nodes, acquired = {}, {}
    for target, scale in (("early", 1.0), ("late", 1.3)):
        nodes[f"synthetic_{target}"] = volume(f"T2W synthetic {target} DCE", base * scale)
        if with_acquired:
            acquired[target] = volume(f"DCE {target}", base * scale + rng.normal(0, 30, base.shape))
            nodes[f"residual_{target}"] = volume(f"T2W residual {target}", np.abs(rng.normal(0, 30, base.shape)))
        if with_uncertainty:
            nodes[f"uncertainty_{target}"] = volume(f"T2W uncertainty {target}", np.abs(rng.normal(0, 5, base.shape)))
        if with_expected_error:
            nodes[f"expected_error_{target}"] = volume(f"T2W expected error {target}",
                                                       np.abs(rng.normal(0, 20, base.shape)))
    if with_acquired:
        nodes["metrics"] = scene_io.create_metrics_table(
            {"early": {"whole": {"psnr": 24.0, "ssim": 0.8, "mae": 0.03}}}, "T2W DCEDiff metrics")
    return t2w, nodes, acquired


def composite_of(name):
    slice_node = slicer.mrmlScene.GetSingletonNode(name, "vtkMRMLSliceNode")
    assert slice_node is not None, f"no slice view {name}"
    for i in range(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = slicer.mrmlScene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        if composite.GetLayoutName() == name:
            return slice_node, composite
    raise AssertionError(f"no composite node for {name}")


def test_comparison_layout_puts_acquired_and_synthetic_side_by_side_with_overlays_and_the_table():
    t2w, nodes, acquired = make_result()
    summary = rd.show_comparison(nodes, acquired, reference=t2w)
    layout = rd.layout_node()
    assert layout.GetViewArrangement() == rd.LAYOUT_ID
    description = layout.GetLayoutDescription(rd.LAYOUT_ID)
    for target in ("Early", "Late"):
        names = [f"DCEDiff{column}{target}" for column in ("Acquired", "Synthetic", "Residual", "Uncertainty")]
        positions = [description.index(f'singletontag="{n}"') for n in names]
        assert positions == sorted(positions)  # acquired | synthetic | residual | uncertainty, left to right
    assert description.index("DCEDiffAcquiredLate") > description.index("DCEDiffUncertaintyEarly")  # late below
    assert 'class="vtkMRMLTableViewNode" singletontag="DCEDiffMetrics"' in description
    for target in ("early", "late"):
        T = target.capitalize()
        synthetic = nodes[f"synthetic_{target}"]
        expected = {f"DCEDiffAcquired{T}": (acquired[target], None), f"DCEDiffSynthetic{T}": (synthetic, None),
                    f"DCEDiffResidual{T}": (synthetic, nodes[f"residual_{target}"]),
                    f"DCEDiffUncertainty{T}": (synthetic, nodes[f"uncertainty_{target}"])}
        for name, (background, foreground) in expected.items():
            slice_node, composite = composite_of(name)
            assert slice_node.GetOrientation() == "Axial"
            assert composite.GetBackgroundVolumeID() == background.GetID(), name
            assert composite.GetForegroundVolumeID() == (foreground.GetID() if foreground else None), name
            assert composite.GetLinkedControl()
            assert composite.GetForegroundOpacity() == (pytest.approx(rd.OVERLAY_OPACITY) if foreground else 0.0)
            assert summary["views"][name][0] == background.GetID()
            # the view's bar says what it shows ("AE", "SL", ...) in the phase's colour, on the node itself: the
            # layout description's "default" properties reach only views Slicer creates, and these exist before
            label = {"Acquired": "A", "Synthetic": "S", "Residual": "R", "Uncertainty": "U"}[name[7:-len(T)]] + T[0]
            assert slice_node.GetLayoutLabel() == label
            assert slice_node.GetLayoutColor() == pytest.approx(
                tuple(int(rd.VIEW_COLORS[target][i:i + 2], 16) / 255 for i in (1, 3, 5)))
        # the synthetic image is shown with the acquired DCE's window/level
        a, s = acquired[target].GetDisplayNode(), synthetic.GetDisplayNode()
        assert not s.GetAutoWindowLevel()
        assert (s.GetWindow(), s.GetLevel()) == pytest.approx((a.GetWindow(), a.GetLevel()))
        assert a.GetWindow() > 0 and a.GetAutoWindowLevel()  # the acquired DCE is an input: its display untouched
    table_view = slicer.mrmlScene.GetNodeByID(summary["table_view"])
    assert table_view.IsA("vtkMRMLTableViewNode") and table_view.GetTableNodeID() == nodes["metrics"].GetID()
    assert table_view.GetLayoutLabel() == "M"
    # shown again (a second run): the same views are reused, not duplicated
    count = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSliceNode")
    rd.show_comparison(nodes, acquired, reference=t2w)
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSliceNode") == count


def test_user_window_level_of_the_acquired_dce_is_kept_and_copied():
    t2w, nodes, acquired = make_result()
    display = acquired["early"].GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(321.0, 123.0)
    rd.show_comparison(nodes, acquired, reference=t2w)
    assert (display.GetWindow(), display.GetLevel()) == (321.0, 123.0)
    synthetic = nodes["synthetic_early"].GetDisplayNode()
    assert (synthetic.GetWindow(), synthetic.GetLevel()) == (321.0, 123.0)


def test_an_acquired_dce_on_another_scale_shows_the_synthesis_at_the_same_signal():
    """Where the engine divided the acquired DCE by a gain (its own pre-contrast frame over the T1-pre,
    provenance.acquired_scale), the synthesis is on the T1-pre's scale: its window/level is the acquired one divided
    by that gain, so one grey value is one signal in both views. The acquired DCE's own display is left alone."""
    import json

    t2w, nodes, acquired = make_result()
    display = acquired["early"].GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(300.0, 150.0)
    provenance = {"acquired_scale": json.dumps({"applied": True, "gain": 0.5})}
    gain = rd.acquired_gain(provenance)
    assert gain == 0.5 and rd.acquired_gain({}) == 1.0
    assert rd.acquired_gain({"acquired_scale": json.dumps({"applied": False, "gain": None})}) == 1.0
    rd.show_comparison(nodes, acquired, reference=t2w, acquired_gain=gain)
    assert (display.GetWindow(), display.GetLevel()) == (300.0, 150.0)
    synthetic = nodes["synthetic_early"].GetDisplayNode()
    assert (synthetic.GetWindow(), synthetic.GetLevel()) == (600.0, 300.0)


def test_without_acquired_dce_the_t2w_is_the_reference_and_uncertainty_the_overlay():
    t2w, nodes, acquired = make_result(with_acquired=False)
    rd.show_comparison(nodes, acquired, reference=t2w)
    description = rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)
    assert "DCEDiffResidual" not in description and "vtkMRMLTableViewNode" not in description
    _, composite = composite_of("DCEDiffReferenceEarly")
    assert composite.GetBackgroundVolumeID() == t2w.GetID()
    _, composite = composite_of("DCEDiffUncertaintyLate")
    assert composite.GetForegroundVolumeID() == nodes["uncertainty_late"].GetID()


def test_the_expected_error_map_takes_the_spread_column_with_one_sample_or_several():
    t2w, nodes, acquired = make_result(with_uncertainty=False, with_expected_error=True)
    rd.show_comparison(nodes, acquired, reference=t2w)
    _, composite = composite_of("DCEDiffExpected_errorLate")
    assert composite.GetForegroundVolumeID() == nodes["expected_error_late"].GetID()
    assert composite.GetBackgroundVolumeID() == nodes["synthetic_late"].GetID()
    # with several samples too: the sample spread is a tenth of the error's size (docs/model_quality.md, "The curve
    # over K"), so it stays a plain node and the expected error keeps the column
    t2w, nodes, acquired = make_result(with_uncertainty=True, with_expected_error=True)
    rd.show_comparison(nodes, acquired, reference=t2w)
    assert "DCEDiffUncertainty" not in rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)
    _, composite = composite_of("DCEDiffExpected_errorEarly")
    assert composite.GetForegroundVolumeID() == nodes["expected_error_early"].GetID()


@pytest.mark.parametrize("kind", ["residual", "uncertainty", "expected_error"])
def test_overlays_use_a_sequential_colour_map_with_a_legend(kind):
    t2w, nodes, acquired = make_result(with_uncertainty=kind != "expected_error",
                                       with_expected_error=kind == "expected_error")
    rd.show_comparison(nodes, acquired, reference=t2w)
    overlay = nodes[f"{kind}_early"]
    display = overlay.GetDisplayNode()
    table = display.GetColorNode()
    assert table is not None and table.GetAttribute(rd.COLOR_MAP_ATTRIBUTE) == rd.OVERLAY_MAPS[kind]
    colors = rd.table_colors(table)
    assert colors.shape == (256, 4)
    luminance = [rd.relative_luminance(c) for c in colors]
    # sequential: luminance rises from dark (0) to bright (max); a diverging or rainbow map fails this
    # (the table stores 8-bit colours: a step may drop by one quantum, 0.7152/255 at most)
    assert all(b >= a - 0.003 for a, b in zip(luminance, luminance[1:]))
    assert all(b > a for a, b in zip(luminance[::16], luminance[16::16]))
    assert luminance[-1] - luminance[0] > 0.5
    # window 0 .. p99, near-zero transparent
    values = slicer.util.arrayFromVolume(overlay)
    assert display.GetWindowLevelMin() == pytest.approx(0.0)
    assert display.GetWindowLevelMax() == pytest.approx(np.percentile(values, 99), rel=1e-4)
    assert display.GetApplyThreshold() and display.GetLowerThreshold() > 0
    legends = [overlay.GetNthDisplayNode(i) for i in range(overlay.GetNumberOfDisplayNodes())
               if overlay.GetNthDisplayNode(i).IsA("vtkMRMLColorLegendDisplayNode")]
    assert len(legends) == 1
    legend = legends[0]
    assert legend.GetPrimaryDisplayNode() is display
    assert legend.GetTitleText() == rd.LEGEND_TITLES[kind].format(target="early")
    view = slicer.mrmlScene.GetSingletonNode(f"DCEDiff{kind.capitalize()}Early", "vtkMRMLSliceNode")
    assert list(legend.GetViewNodeIDs()) == [view.GetID()]  # only where the overlay is shown
    rd.show_comparison(nodes, acquired, reference=t2w)
    assert sum(overlay.GetNthDisplayNode(i).IsA("vtkMRMLColorLegendDisplayNode")
               for i in range(overlay.GetNumberOfDisplayNodes())) == 1  # not duplicated


def test_colour_tables_are_made_once_per_scene():
    first = rd.sequential_color_table("inferno")
    assert rd.sequential_color_table("inferno") is first
    assert rd.sequential_color_table("viridis") is not first


def test_a_second_result_of_another_shape_replaces_the_layout_description():
    """a run with acquired DCE, then one without: the comparison layout must show the second run's columns
    (T2W as the reference, no residual, no table), not the first run's."""
    t2w, nodes, acquired = make_result(with_acquired=True)
    rd.show_comparison(nodes, acquired, reference=t2w)
    assert "DCEDiffResidualEarly" in rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)
    t2w2, nodes2, acquired2 = make_result(with_acquired=False)
    rd.show_comparison(nodes2, acquired2, reference=t2w2)
    description = rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)
    assert 'singletontag="DCEDiffReferenceEarly"' in description
    assert "DCEDiffAcquired" not in description and "DCEDiffResidual" not in description
    assert "vtkMRMLTableViewNode" not in description


def saved_scene_xml(scene) -> str:
    """The .mrml text Slicer writes for ``scene`` (Save scene), in memory."""
    scene.SetSaveToXMLString(1)
    scene.Commit()
    return scene.GetSceneXMLString()


def load_scene_xml(scene, text: str) -> None:
    """Load a saved scene into ``scene`` (File > Load scene: vtkMRMLScene::Import)."""
    scene.SetLoadFromXMLString(1)
    scene.SetSceneXMLString(text)
    scene.Import()


def test_a_scene_saved_with_the_comparison_layout_reopens_with_it_in_a_new_session():
    """Slicer saves a scene's layout id (currentViewArrangement), never a custom layout's description: a scene saved
    while a result was shown, opened in a new Slicer session, had layout 49137 that no one had registered, an empty
    view area ("Can't find layout:49137"). The module registers the layout at start-up and, after a scene load,
    gives it the description the scene was saved with (kept as an attribute of the layout node): the same columns,
    and the saved views show the saved volumes."""
    t2w, nodes, acquired = make_result(with_acquired=False)
    rd.show_comparison(nodes, acquired, reference=t2w)
    shown = rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)
    text = saved_scene_xml(slicer.mrmlScene)
    for register_at_start_up in (True, False):   # the module's start-up, or a scene loaded before it registered
        scene = slicer.vtkMRMLScene()            # a new session: Slicer's own layouts only
        layout = rd.layout_node(scene)
        assert not layout.IsLayoutDescription(rd.LAYOUT_ID)
        if register_at_start_up:
            assert rd.register_layout(scene) == rd.default_layout_xml()
            assert 'singletontag="DCEDiffResidualLate"' in rd.default_layout_xml()   # a full result's columns
        load_scene_xml(scene, text)
        rd.register_layout(scene)                # what the module does after every scene load
        assert rd.layout_node(scene) is layout and layout.GetViewArrangement() == rd.LAYOUT_ID
        assert layout.GetCurrentLayoutDescription() == shown   # the saved result's columns: T2W, no residual
        composites = {scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode").GetLayoutName():
                      scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                      for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))}
        for name, volume_node in (("DCEDiffReferenceEarly", t2w), ("DCEDiffSyntheticLate", nodes["synthetic_late"])):
            assert scene.GetSingletonNode(name, "vtkMRMLSliceNode") is not None, name
            shown_node = scene.GetNodeByID(composites[name].GetBackgroundVolumeID())
            assert shown_node is not None and shown_node.GetName() == volume_node.GetName(), name
        scene.Clear(1)


def test_registering_the_comparison_layout_switches_no_view():
    """Registering the comparison layout adds a choice and switches no view: a scene shown in another layout keeps
    it. A scene saved before the layout node kept the description (the layout id only) opens with a full result's
    columns."""
    scene = slicer.vtkMRMLScene()
    layout = rd.layout_node(scene)
    layout.SetViewArrangement(layout.SlicerLayoutFourUpView)
    rd.register_layout(scene)
    assert layout.GetViewArrangement() == layout.SlicerLayoutFourUpView and layout.IsLayoutDescription(rd.LAYOUT_ID)
    scene.Clear(1)
    t2w, nodes, acquired = make_result(with_acquired=False)
    rd.show_comparison(nodes, acquired, reference=t2w)
    rd.layout_node().RemoveAttribute(rd.LAYOUT_ATTRIBUTE)   # as an earlier DCEDiff saved it
    text = saved_scene_xml(slicer.mrmlScene)
    scene = slicer.vtkMRMLScene()
    rd.register_layout(scene)
    load_scene_xml(scene, text)
    rd.register_layout(scene)
    layout = rd.layout_node(scene)
    assert layout.GetViewArrangement() == rd.LAYOUT_ID
    assert layout.GetCurrentLayoutDescription() == rd.default_layout_xml()
    scene.Clear(1)
