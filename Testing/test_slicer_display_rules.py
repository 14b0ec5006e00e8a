"""session-56 mutation audit round 15: rules of DCEDiff/DCEDiffSlicerLib/result_display.py that no earlier test
could fail.

Real MRML nodes from the slicer-core wheel (no Slicer application, no ../shared data); each test names the mutation
it kills."""

import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import result_display as rd  # noqa: E402
from test_slicer_display import scene  # noqa: E402,F401  (a scene set up as Slicer's start-up does)


def bare_volume(name, values):
    """A volume node with no display node yet: Slicer has no window/level for it."""
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, np.asarray(values, dtype=np.float32))
    return node


def test_an_acquired_dce_without_a_window_lends_its_own_percentile_window_to_the_synthesis():
    """docs/slicer.md: the synthetic image gets the acquired DCE's window/level, "its 0.5-99.5th percentiles when it
    has none yet". The acquired values are 0..1000 and the synthetic ones 5000..6000, so a window from the wrong
    node cannot pass. Kills robust_window_level(acquired) -> robust_window_level(synthetic) (R02) and a level that
    is the window's lower end instead of its centre (R09)."""
    acquired_values = np.linspace(0.0, 1000.0, 4 * 10 * 10).reshape(4, 10, 10)
    acquired = bare_volume("DCE early", acquired_values)
    synthetic = bare_volume("T2W synthetic early DCE", acquired_values + 5000.0)
    assert acquired.GetDisplayNode() is None
    window, level = rd.shared_window_level(acquired, synthetic)
    lo, hi = np.percentile(acquired_values, (0.5, 99.5))
    assert (window, level) == pytest.approx((hi - lo, (hi + lo) / 2.0))
    display = synthetic.GetDisplayNode()
    assert not display.GetAutoWindowLevel()
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx((lo, hi), rel=1e-5)


def volume(name, values):
    node = slicer.util.addVolumeFromArray(np.asarray(values, dtype=np.float32), name=name)
    node.CreateDefaultDisplayNodes()
    return node


def test_residual_is_inferno_and_the_spread_viridis_as_documented():
    """docs/slicer.md: "|residual| (inferno) and uncertainty (viridis)"; the two overlays of a row must not share a
    colour map (the reader tells error from spread by colour). Kills OVERLAY_MAPS residual -> viridis (R15)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 800, size=(3, 8, 8))
    nodes = {"synthetic_early": volume("S", base), "residual_early": volume("R", np.abs(rng.normal(0, 30, base.shape))),
             "uncertainty_early": volume("U", np.abs(rng.normal(0, 5, base.shape)))}
    rd.show_comparison(nodes, {"early": volume("A", base)})
    names = {kind: nodes[f"{kind}_early"].GetDisplayNode().GetColorNode().GetAttribute(rd.COLOR_MAP_ATTRIBUTE)
             for kind in ("residual", "uncertainty")}
    assert names == {"residual": "inferno", "uncertainty": "viridis"}
    # inferno starts black (its first anchor), viridis dark purple: the tables themselves differ
    first = {kind: rd.table_colors(nodes[f"{kind}_early"].GetDisplayNode().GetColorNode())[0, :3]
             for kind in names}
    assert first["residual"] == pytest.approx((0.001, 0.0, 0.014), abs=0.005)
    assert first["uncertainty"] == pytest.approx((0.267, 0.005, 0.329), abs=0.005)


def test_a_label_map_left_in_a_comparison_view_is_cleared_when_a_result_is_shown():
    """The comparison views show the acquired/synthetic images and their overlays only: a label map the user put in
    one of them (e.g. a prostate segmentation during an earlier result) would cover the next result. Kills dropping
    composite.SetLabelVolumeID(None) (R16)."""
    base = np.random.default_rng(1).uniform(0, 800, size=(3, 8, 8))
    nodes = {"synthetic_early": volume("S", base)}
    rd.show_comparison(nodes, {"early": volume("A", base)})
    label = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "prostate")
    slice_node = slicer.mrmlScene.GetSingletonNode("DCEDiffSyntheticEarly", "vtkMRMLSliceNode")
    composite = [slicer.mrmlScene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                 for i in range(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))
                 if slicer.mrmlScene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode").GetLayoutName()
                 == slice_node.GetLayoutName()][0]
    composite.SetLabelVolumeID(label.GetID())
    rd.show_comparison(nodes, {"early": volume("A2", base)})
    assert composite.GetLabelVolumeID() is None


def test_the_default_comparison_layout_has_a_full_results_columns_and_its_metrics_table():
    """default_layout_xml: "acquired DCE, synthetic, |residual| and spread per target, and the metrics table", the
    layout a scene saved by an earlier DCEDiff (its layout id only) reopens with. Audit round 16: kills the table
    left out (R05), the spread column left out (R06) and the acquired column left out (R07)."""
    text = rd.default_layout_xml()
    views = [(view.get("class"), view.get("singletontag")) for view in ElementTree.fromstring(text).iter("view")]
    assert views == [("vtkMRMLSliceNode", f"DCEDiff{column}{target}") for target in ("Early", "Late")
                     for column in ("Acquired", "Synthetic", "Residual", "Uncertainty")] \
        + [("vtkMRMLTableViewNode", rd.TABLE_VIEW)]
