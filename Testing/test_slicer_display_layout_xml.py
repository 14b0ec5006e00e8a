"""The comparison layout description (DCEDiff/DCEDiffSlicerLib/result_display.py) against the rules of the code that
builds the views from it in Slicer: CTK's ``ctkLayoutManager`` (the Qt widgets; it cannot run here, its rules are
encoded from its source) and Slicer's ``vtkMRMLLayoutLogic`` (real, from the slicer-core wheel)."""

import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import result_display as rd  # noqa: E402
from test_slicer_display import make_result, scene  # noqa: E402,F401  (a scene set up as Slicer's start-up does)


def split_size_problems(description: str) -> list:
    """Where ``description`` breaks CTK's splitter rules (commontk/CTK Libs/Widgets/ctkLayoutManager.cpp):
    ``layoutFromXML`` makes a QSplitter only for ``<layout ... split="true">``, else a QVBoxLayout/QHBoxLayout;
    ``processLayoutElement`` reads the children's ``splitSize`` and calls ``QSplitter::setSizes`` with them only for
    a splitter, so a ``splitSize`` under a box layout is ignored (the items share the height equally, no handle to
    drag), and under a splitter an item without one gets size 0 (collapsed) once any sibling has one."""
    problems = []
    root = ElementTree.fromstring(description)
    for layout in root.iter("layout"):
        split = layout.get("split", "false") == "true"
        items = [child for child in layout if child.tag == "item"]
        sized = [item for item in items if int(item.get("splitSize", "0")) > 0]
        if sized and not split:
            problems.append(f'splitSize under <layout type="{layout.get("type")}"> without split="true"')
        if split and sized and len(sized) != len(items):
            problems.append("an item of a split layout without a splitSize (collapsed to 0)")
    return problems


def test_the_metrics_table_sits_in_a_splitter_so_its_split_size_takes_effect():
    """The table's ``splitSize="250"`` was under a plain ``<layout type="vertical">``: in Slicer the metrics table
    took a fixed third of the view area, as tall as a row of images, with no handle to make it smaller."""
    t2w, nodes, acquired = make_result(with_acquired=True)
    rd.show_comparison(nodes, acquired, reference=t2w)
    shown = rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)
    for description in (shown, rd.default_layout_xml()):
        assert "vtkMRMLTableViewNode" in description
        assert split_size_problems(description) == []
    t2w, nodes, acquired = make_result(with_acquired=False)  # no metrics table: no splitter needed
    rd.show_comparison(nodes, acquired, reference=t2w)
    assert split_size_problems(rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)) == []


def test_slicers_layout_logic_finds_every_view_of_the_comparison_layout():
    """The real vtkMRMLLayoutLogic parses the description and finds (or makes) a view node for each view element,
    nested splitter included: the views the layout manager will show are the nodes the module filled."""
    logic = slicer.vtkMRMLLayoutLogic()
    logic.SetMRMLScene(slicer.mrmlScene)
    try:
        t2w, nodes, acquired = make_result(with_acquired=True)
        summary = rd.show_comparison(nodes, acquired, reference=t2w)
        layout = logic.GetLayoutNode()
        assert layout is rd.layout_node() and layout.GetViewArrangement() == rd.LAYOUT_ID
        assert layout.GetLayoutRootElement() is not None  # parsed
        views = logic.GetViewNodes()
        names = [views.GetItemAsObject(i).GetName() for i in range(views.GetNumberOfItems())]
        assert names == list(summary["views"]) + [rd.TABLE_VIEW]
        assert slicer.mrmlScene.GetNodeByID(summary["table_view"]).GetName() == rd.TABLE_VIEW
    finally:
        logic.SetMRMLScene(None)


def test_the_rule_sees_a_split_size_outside_a_splitter():
    """The check itself: Slicer's own table layout (vtkMRMLLayoutLogic.cxx, fourUpTableView) passes, the layout the
    module registered before fails."""
    slicers = ('<layout type="vertical" split="true"><item splitSize="500"><layout type="vertical"><item>'
               '<view class="vtkMRMLSliceNode" singletontag="Red"/></item></layout></item><item splitSize="300">'
               '<view class="vtkMRMLTableViewNode" singletontag="TableView1"/></item></layout>')
    assert split_size_problems(slicers) == []
    before = ('<layout type="vertical"><item><layout type="horizontal"><item><view class="vtkMRMLSliceNode" '
              'singletontag="A"/></item></layout></item><item splitSize="250"><view class="vtkMRMLTableViewNode" '
              'singletontag="M"/></item></layout>')
    assert split_size_problems(before)
    collapsed = slicers.replace('<item splitSize="500">', "<item>")
    assert split_size_problems(collapsed)
