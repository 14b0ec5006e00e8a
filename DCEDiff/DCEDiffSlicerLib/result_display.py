"""Show a DCEDiff result the way a radiologist reads it: acquired and synthetic side by side.

A custom layout (registered with the scene's layout node, so Slicer's layout manager builds the views), one row per
target (early, late), columns:

    acquired (the acquired DCE; without it the T2W) | synthetic | synthetic + |residual| | synthetic + spread

(the last two only when the run produced them; the spread is the card's expected |error|, else the sample std of
several samples), and a table view with the metrics table below. All slice views are axial and linked with
Slicer's link (view group 0): slice, pan and zoom, and also a volume picked in one view's controller, which
vtkMRMLSliceLinkLogic puts in every slice view of the group (Testing/test_slicer_display_links.py). The synthetic
image of a row gets the window/level of the acquired DCE of that row, so that grey values compare directly.
|residual| and uncertainty are non-negative: they get sequential colour maps (inferno and viridis: dark = small,
bright = large, monotonic in luminance, readable in grey and by colour-blind readers), a 0..99th-percentile window,
near-zero values transparent, and a colour legend in their views.

Imports only ``slicer`` and ``slicer.util`` (plus numpy), so it runs under the slicer-core wheel in pytest
(``Testing/test_slicer_display.py``); the view *widgets* are Slicer's (the layout manager creates them from the
layout description and finds the view nodes made here by their singleton tags).
"""

from __future__ import annotations

import json
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import slicer
import slicer.util

LAYOUT_ID = 49137  # a custom layout id (Slicer's own layouts are < 1000)
# the layout node keeps the description shown last: Slicer saves a scene's layout id, not the descriptions of
# custom layouts, and the node's attributes are saved in the .mrml (see register_layout)
LAYOUT_ATTRIBUTE = "DCEDiff.ComparisonLayout"
# the layout node's observer that gives the comparison layout its saved description runs before Slicer's layout
# logic, which observes the node with priority 10 and at once makes the views of the current description
LAYOUT_OBSERVER_PRIORITY = 100.0
# on the layout node: the view arrangement shown before show_comparison switched to the comparison, which File >
# Close Scene goes back to
PREVIOUS_LAYOUT_ATTRIBUTE = "DCEDiff.LayoutBeforeComparison"
# after File > Close Scene where no earlier layout was recorded: what Slicer's layout logic gives a new layout node
# (Four-Up)
CLOSED_SCENE_LAYOUT = slicer.vtkMRMLLayoutNode.SlicerLayoutInitialView
_WATCHED = weakref.WeakKeyDictionary()  # scene -> its layout node, observed by watch_scene
VIEW_PREFIX = "DCEDiff"
TABLE_VIEW = f"{VIEW_PREFIX}Metrics"
TARGETS = ("early", "late")
OVERLAY_OPACITY = 0.6
COLOR_MAP_ATTRIBUTE = "DCEDiff.ColorMap"
# 9 anchors (0, 1/8, ..., 1) of matplotlib's inferno and viridis; interpolated linearly to 256 entries
COLOR_MAPS = {
    "inferno": ((0.001, 0.0, 0.014), (0.129, 0.047, 0.291), (0.342, 0.062, 0.429), (0.541, 0.135, 0.415),
                (0.736, 0.216, 0.33), (0.894, 0.353, 0.194), (0.978, 0.558, 0.035), (0.975, 0.798, 0.206),
                (0.988, 0.998, 0.645)),
    "viridis": ((0.267, 0.005, 0.329), (0.279, 0.175, 0.483), (0.23, 0.322, 0.546), (0.173, 0.449, 0.558),
                (0.128, 0.567, 0.551), (0.158, 0.684, 0.502), (0.369, 0.789, 0.383), (0.678, 0.864, 0.19),
                (0.993, 0.906, 0.144)),
}
# expected_error (the card's expected-error map, one per run even with one sample) shares the uncertainty's map:
# both say where the synthesis is less trustworthy
OVERLAY_MAPS = {"residual": "inferno", "uncertainty": "viridis", "expected_error": "viridis"}
LEGEND_TITLES = {"residual": "|synthetic - acquired| {target}", "uncertainty": "uncertainty {target} (SD)",
                 "expected_error": "expected |error| {target}"}
COLUMN_LABELS = {"acquired": "A", "reference": "T", "synthetic": "S", "residual": "R", "uncertainty": "U",
                 "expected_error": "E"}
VIEW_COLORS = {"early": "#E17012", "late": "#2A7AB0"}


def _scene(scene=None):
    scene = scene if scene is not None else slicer.mrmlScene
    if scene is None:
        raise RuntimeError("no MRML scene")
    return scene


def relative_luminance(rgb: Sequence[float]) -> float:
    return float(0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])


def sequential_color_table(name: str, scene=None):
    """The colour table ``DCEDiff <name>`` (inferno or viridis, 256 entries), created once per scene."""
    scene = _scene(scene)
    anchors = np.array(COLOR_MAPS[name], dtype=float)
    title = f"DCEDiff {name}"
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLColorTableNode")
        if node.GetAttribute(COLOR_MAP_ATTRIBUTE) == name:
            return node
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", title)
    table.SetAttribute(COLOR_MAP_ATTRIBUTE, name)
    table.SetTypeToUser()
    table.SetNumberOfColors(256)
    positions = np.linspace(0.0, 1.0, len(anchors))
    for i in range(256):
        t = i / 255.0
        r, g, b = (float(np.interp(t, positions, anchors[:, c])) for c in range(3))
        table.SetColor(i, f"{name} {i}", r, g, b, 1.0)
    table.SetHideFromEditors(False)
    return table


def table_colors(table) -> np.ndarray:
    """(n, 4) RGBA of a colour table node."""
    rgba = [0.0, 0.0, 0.0, 0.0]
    out = []
    for i in range(table.GetNumberOfColors()):
        table.GetColor(i, rgba)
        out.append(list(rgba))
    return np.array(out)


def _display(node):
    display = node.GetDisplayNode()
    if display is None:
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
    return display


def style_overlay(node, kind: str, upper_percentile: float = 99.0) -> None:
    """|residual| or uncertainty: sequential colour map, window 0 .. upper percentile, near-zero transparent."""
    display = _display(node)
    display.SetAndObserveColorNodeID(sequential_color_table(OVERLAY_MAPS[kind], node.GetScene()).GetID())
    values = slicer.util.arrayFromVolume(node)
    high = float(np.percentile(values, upper_percentile)) if values.size else 1.0
    high = high if high > 0 else float(values.max()) if values.size and values.max() > 0 else 1.0
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, high)
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(high * 0.02)  # near-zero values stay transparent over the synthetic image
    display.SetUpperThreshold(max(float(values.max()) if values.size else high, high))


def robust_window_level(node, low: float = 0.5, high: float = 99.5) -> Tuple[float, float]:
    """(window, level) from the ``low``..``high`` percentiles of the node's voxels."""
    values = slicer.util.arrayFromVolume(node)
    lo, hi = (float(v) for v in np.percentile(values, (low, high)))
    if hi <= lo:
        hi = lo + 1.0
    return hi - lo, (hi + lo) / 2.0


def shared_window_level(acquired, synthetic, gain: float = 1.0) -> Tuple[float, float]:
    """Give ``synthetic`` the window/level the acquired DCE is shown with (the user's, or Slicer's automatic one),
    or, when it has none yet, a robust one computed from its voxels. The acquired DCE is an input: its display is
    left as it is (it used to be switched to a fixed window). ``gain``: the acquired DCE over the T1-pre's intensity
    scale, where the engine measured one (``provenance.acquired_scale``): the synthesis is on the T1-pre's scale, so
    its window/level is the acquired one divided by it, and equal grey values mean equal signal."""
    acquired_display = acquired.GetDisplayNode()
    if acquired_display is not None and acquired_display.GetWindow() > 0:
        window, level = acquired_display.GetWindow(), acquired_display.GetLevel()
    else:
        window, level = robust_window_level(acquired)
    window, level = window / gain, level / gain
    synthetic_display = _display(synthetic)
    synthetic_display.SetAutoWindowLevel(False)
    synthetic_display.SetWindowLevel(window, level)
    return window, level


def acquired_gain(provenance: Dict[str, str]) -> float:
    """The gain the engine divided the acquired DCE by (``acquired_scale`` of a result node's provenance
    attributes, JSON), or 1 where it applied none."""
    try:
        record = json.loads(provenance.get("acquired_scale") or "{}")
        gain = float(record.get("gain")) if record.get("applied") else 1.0
    except (TypeError, ValueError):
        return 1.0
    return gain if gain > 0 else 1.0


def add_color_legend(node, title: str, view_node_ids: List[str]):
    """A colour legend for ``node``'s colour map, shown in the given views only (what Slicer's
    ``colors.logic().AddDefaultColorLegendDisplayNode`` makes, plus a title and the views)."""
    scene = node.GetScene()
    display = _display(node)
    for index in range(node.GetNumberOfDisplayNodes()):
        existing = node.GetNthDisplayNode(index)
        if existing is not None and existing.IsA("vtkMRMLColorLegendDisplayNode"):
            legend = existing
            break
    else:
        legend = scene.AddNewNodeByClass("vtkMRMLColorLegendDisplayNode", f"{node.GetName()} legend")
        legend.SetAndObservePrimaryDisplayNode(display)
        node.AddAndObserveDisplayNodeID(legend.GetID())
    legend.SetTitleText(title)
    legend.SetLabelFormat("%.3g")
    legend.SetViewNodeIDs(view_node_ids)
    legend.SetVisibility(True)
    return legend


def plan_views(nodes: Dict[str, object], acquired: Dict[str, object], reference=None) -> List[dict]:
    """The slice views of the comparison layout, row by row: ``{"name", "target", "column", "background",
    "foreground"}`` (nodes). ``nodes``: the result nodes by role; ``acquired``: ``{"early": node, "late": node}``
    (may be empty); ``reference``: the T2W, shown in the first column when there is no acquired DCE."""
    views = []
    for target in TARGETS:
        synthetic = nodes.get(f"synthetic_{target}")
        if synthetic is None:
            continue
        first = acquired.get(target)
        columns = [("acquired", first, None)] if first is not None else (
            [("reference", reference, None)] if reference is not None else [])
        columns.append(("synthetic", synthetic, None))
        # the last column: the card's expected-error map (its size holds), else the sample spread of several samples
        # (a tenth of the error's size on the shipped card: docs/model_quality.md, "The curve over K")
        spread = "expected_error" if nodes.get(f"expected_error_{target}") is not None else "uncertainty"
        for kind in ("residual", spread):
            overlay = nodes.get(f"{kind}_{target}")
            if overlay is not None:
                columns.append((kind, synthetic, overlay))
        for column, background, foreground in columns:
            views.append({"name": f"{VIEW_PREFIX}{column.capitalize()}{target.capitalize()}", "target": target,
                          "column": column, "background": background, "foreground": foreground})
    return views


def view_label(view: dict) -> str:
    """The letters on a comparison view's bar, e.g. "SE" (synthetic, early)."""
    return COLUMN_LABELS[view["column"]] + view["target"][0].upper()


def _hex_rgb(color: str) -> tuple:
    return tuple(int(color[i:i + 2], 16) / 255.0 for i in (1, 3, 5))


def _label_view(view_node, label: str, color: Optional[str] = None) -> None:
    """Label (and colour) a view node itself: Slicer's layout logic applies a description's "default" properties
    only to the views it creates, and these nodes are created here before the layout is shown."""
    view_node.SetLayoutLabel(label)
    if color is not None:
        view_node.SetLayoutColor(*_hex_rgb(color))
    view_node.SetViewGroup(0)


def layout_xml(views: List[dict], with_table: bool) -> str:
    """The comparison layout description: one horizontal row of slice views per target; with the metrics table,
    the rows and the table in a vertical splitter (``split="true"``, as Slicer's own table layouts): CTK's layout
    manager reads an item's ``splitSize`` only under a split layout (a plain vertical layout is a QVBoxLayout that
    gives the table an equal, fixed share), and a splitter gives an item without a ``splitSize`` no height."""
    rows = []
    for target in TARGETS:
        items = []
        for view in (v for v in views if v["target"] == target):
            label = view_label(view)
            items.append(
                f'<item><view class="vtkMRMLSliceNode" singletontag="{view["name"]}">'
                '<property name="orientation" action="default">Axial</property>'
                f'<property name="viewlabel" action="default">{label}</property>'
                f'<property name="viewcolor" action="default">{VIEW_COLORS[target]}</property>'
                '<property name="viewgroup" action="default">0</property></view></item>')
        if items:
            rows.append(f'<item><layout type="horizontal">{"".join(items)}</layout></item>')
    images = f'<layout type="vertical">{"".join(rows)}</layout>'
    if not with_table:
        return images
    return (f'<layout type="vertical" split="true"><item splitSize="750">{images}</item>'
            f'<item splitSize="250"><view class="vtkMRMLTableViewNode" singletontag="{TABLE_VIEW}">'
            '<property name="viewlabel" action="default">M</property></view></item></layout>')


def _view_node(scene, class_name: str, tag: str):
    node = scene.GetSingletonNode(tag, class_name)
    if node is None:
        node = scene.CreateNodeByClass(class_name)
        node.SetLayoutName(tag)  # also the singleton tag: Slicer's layout manager finds and reuses this node
        node.SetName(tag)
        scene.AddNode(node)
        node.UnRegister(None)
        node = scene.GetSingletonNode(tag, class_name) or node
    return node


def _composite_node(scene, slice_node):
    composite = slicer.vtkMRMLSliceLogic.GetSliceCompositeNode(slice_node)
    if composite is None:
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            candidate = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
            if candidate.GetLayoutName() == slice_node.GetLayoutName():
                return candidate
        composite = scene.CreateNodeByClass("vtkMRMLSliceCompositeNode")
        composite.SetLayoutName(slice_node.GetLayoutName())
        scene.AddNode(composite)
        composite.UnRegister(None)
    return composite


def layout_node(scene=None):
    """The scene's layout node (a bare scene without a Slicer application gets one, as Slicer's layout logic makes
    it: a singleton, so that a scene loaded into this one updates it instead of adding another)."""
    scene = _scene(scene)
    node = scene.GetSingletonNode("vtkMRMLLayoutNode", "vtkMRMLLayoutNode") or \
        scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    if node is None:
        node = scene.CreateNodeByClass("vtkMRMLLayoutNode")
        node.SetSingletonTag("vtkMRMLLayoutNode")
        scene.AddNode(node)
        node.UnRegister(None)
        node = scene.GetSingletonNode("vtkMRMLLayoutNode", "vtkMRMLLayoutNode")
    return node


def default_layout_xml() -> str:
    """The comparison layout of a full result (acquired DCE, synthetic, |residual| and spread per target, and the
    metrics table): what :func:`register_layout` gives a scene that does not say which one it was saved with."""
    present = object()  # plan_views needs to know which results exist, not the nodes themselves
    nodes = {f"{kind}_{target}": present for kind in ("synthetic", "residual", "uncertainty") for target in TARGETS}
    return layout_xml(plan_views(nodes, {target: present for target in TARGETS}), with_table=True)


def register_layout(scene=None) -> str:
    """Make the comparison layout (``LAYOUT_ID``) known to the scene's layout node and return its description: the
    one the scene was saved with (the layout node's ``LAYOUT_ATTRIBUTE``), else the one registered already, else
    :func:`default_layout_xml`. The module calls it at start-up and after every scene load: Slicer saves a scene's
    layout id but no custom layout description, so a scene saved while the comparison was shown would open, in a
    new session, with a layout id Slicer does not know (an empty view area). The views' nodes are in the scene, or
    are made by the layout manager from the description. The view arrangement is left as it is."""
    layout = layout_node(scene)
    if not layout.IsLayoutDescription(LAYOUT_ID):
        layout.AddLayoutDescription(LAYOUT_ID, layout.GetAttribute(LAYOUT_ATTRIBUTE) or default_layout_xml())
    apply_saved_description(layout)
    if layout.GetViewArrangement() == LAYOUT_ID:  # loaded before the id was known: its current description is empty
        layout.SetViewArrangement(LAYOUT_ID)
    return layout.GetLayoutDescription(LAYOUT_ID)


def apply_saved_description(layout) -> None:
    """Give the registered comparison layout the description the layout node carries (``LAYOUT_ATTRIBUTE``, read
    from a loaded scene), where they differ; nothing without one or before the layout is registered."""
    saved = layout.GetAttribute(LAYOUT_ATTRIBUTE)
    if saved and layout.IsLayoutDescription(LAYOUT_ID) and layout.GetLayoutDescription(LAYOUT_ID) != saved:
        layout.SetLayoutDescription(LAYOUT_ID, saved)  # also re-parses the current one when the layout is shown


def layout_before_comparison(layout) -> int:
    """The view arrangement to show when the comparison goes: the one recorded when it was shown
    (``PREVIOUS_LAYOUT_ATTRIBUTE``) where that is a layout the node knows other than the comparison, else
    ``CLOSED_SCENE_LAYOUT``."""
    try:
        previous = int(layout.GetAttribute(PREVIOUS_LAYOUT_ATTRIBUTE) or "")
    except ValueError:  # none recorded (a scene from an earlier DCEDiff), or edited by hand
        return CLOSED_SCENE_LAYOUT
    if previous == LAYOUT_ID or not layout.IsLayoutDescription(previous):  # e.g. another module's, unregistered since
        return CLOSED_SCENE_LAYOUT
    return previous


def watch_scene(scene=None) -> None:
    """What the module keeps up from start-up on (once per scene; the layout node is observed again if replaced):

    - on the layout node, before Slicer's layout logic (``LAYOUT_OBSERVER_PRIORITY``): a scene being loaded copies
      its layout id and ``LAYOUT_ATTRIBUTE`` into the layout node in one change, and the layout logic makes the
      views of the description registered at that moment. With the start-up (full result's) description, a scene
      saved with fewer columns got the missing views as extra, empty view nodes; the saved description is given
      first (:func:`apply_saved_description`).
    - after a scene load: :func:`register_layout` (a scene saved by an earlier DCEDiff carries no description).
    - File > Close Scene clears the layout node's attributes but Slicer's layout logic puts the last layout back:
      the comparison stayed on screen with nothing to show, and a scene saved then had its id without its
      description. After a close, the comparison layout's description is the start-up one again and, where it was
      shown, the views go back to the layout shown before it (:func:`layout_before_comparison`, read before the
      close clears the attributes)."""
    scene = _scene(scene)
    layout = layout_node(scene)
    if _WATCHED.get(scene) is layout:
        return
    layout.AddObserver("ModifiedEvent", lambda node, _event: apply_saved_description(node), LAYOUT_OBSERVER_PRIORITY)
    if scene not in _WATCHED:
        closing = {"shown": False, "back_to": CLOSED_SCENE_LAYOUT}

        def start_close(closed_scene, _event):
            node = closed_scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
            closing["shown"] = node is not None and node.GetViewArrangement() == LAYOUT_ID
            if closing["shown"]:  # the layout node's attributes are cleared before end_close
                closing["back_to"] = layout_before_comparison(node)

        def end_close(closed_scene, _event):
            node = closed_scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
            if node is None:  # cleared with its singletons (not Slicer's Close Scene): no layout to go back from
                return
            if node.IsLayoutDescription(LAYOUT_ID):
                node.SetLayoutDescription(LAYOUT_ID, default_layout_xml())
            if closing["shown"]:
                node.SetViewArrangement(closing["back_to"])
            watch_scene(closed_scene)

        def end_import(loaded_scene, _event):
            register_layout(loaded_scene)
            watch_scene(loaded_scene)

        scene.AddObserver(slicer.vtkMRMLScene.StartCloseEvent, start_close)
        scene.AddObserver(slicer.vtkMRMLScene.EndCloseEvent, end_close)
        scene.AddObserver(slicer.vtkMRMLScene.EndImportEvent, end_import)
    _WATCHED[scene] = layout


def show_comparison(nodes: Dict[str, object], acquired: Optional[Dict[str, object]] = None, reference=None,
                    scene=None, acquired_gain: float = 1.0) -> dict:
    """Register and switch to the comparison layout, fill its views and style the overlays. ``acquired_gain``: see
    :func:`shared_window_level` (:func:`acquired_gain` reads it from a result node).

    The view arrangement shown before is recorded on the layout node (``PREVIOUS_LAYOUT_ATTRIBUTE``, saved with the
    scene) unless it is the comparison already. Returns ``{"layout": id, "views": {view name: (background id,
    foreground id or None)}, "table_view": id}``.
    Input nodes are left as they are, their display included (:func:`shared_window_level`)."""
    scene = _scene(scene)
    acquired = {k: v for k, v in (acquired or {}).items() if v is not None}
    views = plan_views(nodes, acquired, reference)
    table = nodes.get("metrics")
    layout = layout_node(scene)
    description = layout_xml(views, table is not None)
    layout.SetAttribute(LAYOUT_ATTRIBUTE, description)  # saved with the scene: register_layout restores it
    if layout.IsLayoutDescription(LAYOUT_ID):
        layout.SetLayoutDescription(LAYOUT_ID, description)
    else:
        layout.AddLayoutDescription(LAYOUT_ID, description)
    summary = {"layout": LAYOUT_ID, "views": {}, "table_view": None}
    slice_ids: Dict[str, List[str]] = {}
    for view in views:
        slice_node = _view_node(scene, "vtkMRMLSliceNode", view["name"])
        slice_node.SetOrientationToAxial()
        _label_view(slice_node, view_label(view), VIEW_COLORS[view["target"]])
        composite = _composite_node(scene, slice_node)
        composite.SetBackgroundVolumeID(view["background"].GetID() if view["background"] is not None else None)
        composite.SetForegroundVolumeID(view["foreground"].GetID() if view["foreground"] is not None else None)
        composite.SetForegroundOpacity(OVERLAY_OPACITY if view["foreground"] is not None else 0.0)
        composite.SetLabelVolumeID(None)
        composite.SetLinkedControl(True)
        summary["views"][view["name"]] = (composite.GetBackgroundVolumeID(), composite.GetForegroundVolumeID())
        if view["foreground"] is not None:
            slice_ids.setdefault(view["foreground"].GetID(), []).append(slice_node.GetID())
    for target in TARGETS:
        if acquired.get(target) is not None and nodes.get(f"synthetic_{target}") is not None:
            shared_window_level(acquired[target], nodes[f"synthetic_{target}"], acquired_gain)
        for kind in ("residual", "uncertainty", "expected_error"):
            overlay = nodes.get(f"{kind}_{target}")
            if overlay is not None:
                style_overlay(overlay, kind)
                add_color_legend(overlay, LEGEND_TITLES[kind].format(target=target),
                                 slice_ids.get(overlay.GetID(), []))
    if table is not None:
        table_view = _view_node(scene, "vtkMRMLTableViewNode", TABLE_VIEW)
        _label_view(table_view, "M")
        table_view.SetTableNodeID(table.GetID())
        summary["table_view"] = table_view.GetID()
    if layout.GetViewArrangement() != LAYOUT_ID:  # the user's layout, for File > Close Scene to go back to
        layout.SetAttribute(PREVIOUS_LAYOUT_ATTRIBUTE, str(layout.GetViewArrangement()))
    layout.SetViewArrangement(LAYOUT_ID)
    return summary
