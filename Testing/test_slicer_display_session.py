"""The comparison layout (DCEDiff/DCEDiffSlicerLib/result_display.py) across a saved scene's reload and File > Close
Scene, under Slicer's own ``vtkMRMLLayoutLogic`` (real, from the slicer-core wheel: the logic Slicer's layout
manager owns, which makes the view nodes of the shown layout). Scenes are saved to and loaded from real .mrml
files (``save_and_reopen``); the views' Qt widgets cannot run here."""

import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import result_display as rd  # noqa: E402
from test_slicer_display import make_result, saved_scene_xml, scene  # noqa: E402,F401  (Slicer's start-up scene)
from test_slicer_module import save_and_reopen  # noqa: E402


def start_session(scene_):
    """What a Slicer session with DCEDiff sets up before any scene is loaded: the layout manager's layout logic
    (Slicer's four-up views) and the module's start-up (DCEDiff.registerComparisonLayout). Returns the logic."""
    logic = slicer.vtkMRMLLayoutLogic()
    logic.SetMRMLScene(scene_)
    rd.register_layout(scene_)
    rd.watch_scene(scene_)
    return logic


def view_names(scene_, class_name="vtkMRMLSliceNode"):
    return sorted(scene_.GetNthNodeByClass(i, class_name).GetName()
                  for i in range(scene_.GetNumberOfNodesByClass(class_name)))


def shown_views(logic):
    views = logic.GetViewNodes()
    return [views.GetItemAsObject(i).GetName() for i in range(views.GetNumberOfItems())]


def comparison_shown_over(arrangement):
    """The user works in Slicer's layout ``arrangement``, then Apply shows a result without acquired DCE as the
    comparison. Returns (the layout node, T2W, result nodes, acquired nodes)."""
    layout = rd.layout_node()
    layout.SetViewArrangement(arrangement)
    t2w, nodes, acquired = make_result(with_acquired=False)
    rd.show_comparison(nodes, acquired, reference=t2w)
    return layout, t2w, nodes, acquired


def module_first(scene_):
    """:func:`start_session` with the module's start-up before the layout logic observes the scene (as when Slicer's
    layout manager re-observes a layout node): the order must not matter, the observer's priority decides."""
    rd.register_layout(scene_)
    rd.watch_scene(scene_)
    logic = slicer.vtkMRMLLayoutLogic()
    logic.SetMRMLScene(scene_)
    return logic


@pytest.mark.parametrize("new_session", [start_session, module_first], ids=["logic first", "module first"])
def test_a_reopened_scene_has_the_saved_comparison_views_and_no_others(tmp_path, new_session):
    """A new session registers the comparison layout with a full result's description (acquired | synthetic |
    residual | spread, and the table). A scene saved with a result without acquired DCE (T2W | synthetic |
    uncertainty) was loaded with that description in place: Slicer's layout logic made the acquired and residual
    views the moment the layout node took the saved layout id, before the module gave it the saved description,
    and the reopened scene had 4 extra, empty slice views (and widgets) that a later save kept. watch_scene: 'on the
    layout node, before Slicer's layout logic (LAYOUT_OBSERVER_PRIORITY)': by priority, not by who observed first
    (round-18 mutation audit)."""
    logic = start_session(slicer.mrmlScene)
    reopened_logic = []
    try:
        t2w, nodes, acquired = make_result(with_acquired=False)
        summary = rd.show_comparison(nodes, acquired, reference=t2w)
        saved_views = view_names(slicer.mrmlScene)
        assert shown_views(logic) == list(summary["views"])
        shown = rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)
        reopened = save_and_reopen(slicer.mrmlScene, tmp_path,
                                   new_session=lambda new: reopened_logic.append(new_session(new)))
        layout = rd.layout_node(reopened)
        assert layout.GetViewArrangement() == rd.LAYOUT_ID and layout.GetCurrentLayoutDescription() == shown
        assert view_names(reopened) == saved_views   # Red, Yellow, Green and the saved comparison views only
        assert not [name for name in view_names(reopened) if "Acquired" in name or "Residual" in name]
        assert view_names(reopened, "vtkMRMLTableViewNode") == []   # no metrics table was shown
        assert shown_views(reopened_logic[0]) == list(summary["views"])
        reopened.Clear(1)
    finally:
        for each in [logic] + reopened_logic:
            each.SetMRMLScene(None)


def test_closing_the_scene_puts_slicers_default_layout_back():
    """File > Close Scene (vtkMRMLScene::Clear(0)) resets the layout node, its attributes included, and Slicer's
    layout logic then shows the last layout again: the comparison stayed on screen, its views emptied, and a scene
    saved afterwards had the comparison's id without its description. After a close the views are Slicer's
    default layout (what a new session shows), the comparison layout's description is the start-up one, and the
    next scene saved with a comparison reopens with it (the default layout is also the one shown before the
    comparison here). A close from another layout keeps it, as Slicer does."""
    logic = start_session(slicer.mrmlScene)
    try:
        t2w, nodes, acquired = make_result(with_acquired=False)
        rd.show_comparison(nodes, acquired, reference=t2w)
        shown = rd.layout_node().GetLayoutDescription(rd.LAYOUT_ID)
        text = saved_scene_xml(slicer.mrmlScene)
        slicer.mrmlScene.Clear(0)
        layout = rd.layout_node()
        assert layout.GetViewArrangement() == rd.CLOSED_SCENE_LAYOUT == slicer.vtkMRMLLayoutNode.SlicerLayoutInitialView
        assert layout.GetAttribute(rd.LAYOUT_ATTRIBUTE) is None
        assert layout.GetLayoutDescription(rd.LAYOUT_ID) == rd.default_layout_xml()
        assert not [name for name in shown_views(logic) if name.startswith(rd.VIEW_PREFIX)]
        assert 'currentViewArrangement="0"' in saved_scene_xml(slicer.mrmlScene)
        # the next scene loaded (File > Load Scene: close, then load) shows its comparison again
        slicer.mrmlScene.SetLoadFromXMLString(1)
        slicer.mrmlScene.SetSceneXMLString(text)
        slicer.mrmlScene.Connect()
        assert layout.GetViewArrangement() == rd.LAYOUT_ID and layout.GetCurrentLayoutDescription() == shown
        # Slicer's own layouts are left as Slicer leaves them after a close
        layout.SetViewArrangement(layout.SlicerLayoutConventionalView)
        slicer.mrmlScene.Clear(0)
        assert layout.GetViewArrangement() == layout.SlicerLayoutConventionalView
    finally:
        logic.SetMRMLScene(None)


def test_closing_the_scene_goes_back_to_the_layout_shown_before_the_comparison():
    """The user works in Red slice only; Apply (twice) shows the comparison; File > Close Scene. Before the fix
    the views went to Four-Up whatever the user had; now they go back to Red slice only (recorded on the layout
    node when the comparison was first shown, not the comparison itself on the second Apply; read at the close's
    start, as the close clears the attributes). Where nothing fit is recorded (a scene from an earlier DCEDiff, a
    layout no longer registered, the comparison itself), Four-Up as before."""
    logic = start_session(slicer.mrmlScene)
    try:
        layout, t2w, nodes, acquired = comparison_shown_over(slicer.vtkMRMLLayoutNode.SlicerLayoutOneUpRedSliceView)
        rd.show_comparison(nodes, acquired, reference=t2w)   # Apply again: the comparison is on screen already
        assert layout.GetAttribute(rd.PREVIOUS_LAYOUT_ATTRIBUTE) == str(layout.SlicerLayoutOneUpRedSliceView)
        text = saved_scene_xml(slicer.mrmlScene)   # saved with the scene
        assert f'{rd.PREVIOUS_LAYOUT_ATTRIBUTE}:{layout.SlicerLayoutOneUpRedSliceView}' in text
        slicer.mrmlScene.Clear(0)
        assert layout.GetViewArrangement() == layout.SlicerLayoutOneUpRedSliceView
        assert shown_views(logic) == ["Red"]
        assert layout.GetAttribute(rd.PREVIOUS_LAYOUT_ATTRIBUTE) is None   # cleared with the scene, as Slicer does
        for recorded in (None, "49999", str(rd.LAYOUT_ID), "Red"):   # none, unregistered, the comparison, not an id
            layout.SetViewArrangement(layout.SlicerLayoutConventionalView)
            t2w, nodes, acquired = make_result(with_acquired=False)   # the close removed the earlier result
            rd.show_comparison(nodes, acquired, reference=t2w)
            layout.SetAttribute(rd.PREVIOUS_LAYOUT_ATTRIBUTE, recorded)
            slicer.mrmlScene.Clear(0)
            assert layout.GetViewArrangement() == rd.CLOSED_SCENE_LAYOUT, recorded
    finally:
        logic.SetMRMLScene(None)


# ---------------------------------------------------------------- round-18 mutation audit: the documented rules
def test_the_layout_node_is_observed_once_however_often_scenes_are_closed_and_loaded(monkeypatch, capfd):
    """watch_scene: 'once per scene': after closes and loads, one change of the layout node gives its saved
    description once (not once per close or load). A scene cleared with its singletons (Clear(1), no layout
    node left) is no error either. The calls are counted by a wrapper that calls the real function."""
    logic = start_session(slicer.mrmlScene)
    try:
        t2w, nodes, acquired = make_result(with_acquired=False)
        rd.show_comparison(nodes, acquired, reference=t2w)
        text = saved_scene_xml(slicer.mrmlScene)
        for _ in range(3):
            slicer.mrmlScene.Clear(0)
            slicer.mrmlScene.SetLoadFromXMLString(1)
            slicer.mrmlScene.SetSceneXMLString(text)
            slicer.mrmlScene.Connect()
        calls = []
        real = rd.apply_saved_description
        monkeypatch.setattr(rd, "apply_saved_description", lambda node: calls.append(node) or real(node))
        rd.layout_node().Modified()
        assert len(calls) == 1, calls
        capfd.readouterr()
        slicer.mrmlScene.Clear(1)
        err = capfd.readouterr().err
        assert "Traceback" not in err and "Error" not in err, err
    finally:
        logic.SetMRMLScene(None)


# ---------------------------------------------------------------- round-19 mutation audit: the documented rules
def test_the_layout_recorded_is_the_one_shown_at_the_last_switch_to_the_comparison():
    """show_comparison: 'The view arrangement shown before is recorded ... unless it is the comparison already':
    recorded at every switch, not only the first. The user works in Red slice only, Apply, goes to Conventional,
    Apply again: File > Close Scene goes back to Conventional, the layout left last for the comparison."""
    logic = start_session(slicer.mrmlScene)
    try:
        layout, t2w, nodes, acquired = comparison_shown_over(slicer.vtkMRMLLayoutNode.SlicerLayoutOneUpRedSliceView)
        assert layout.GetAttribute(rd.PREVIOUS_LAYOUT_ATTRIBUTE) == str(layout.SlicerLayoutOneUpRedSliceView)
        layout.SetViewArrangement(layout.SlicerLayoutConventionalView)
        rd.show_comparison(nodes, acquired, reference=t2w)
        assert layout.GetViewArrangement() == rd.LAYOUT_ID
        slicer.mrmlScene.Clear(0)
        assert layout.GetViewArrangement() == layout.SlicerLayoutConventionalView
    finally:
        logic.SetMRMLScene(None)
