"""The frame a volume sequence's proxy node shows, kept for a run.

A DCE series loaded by Slicer's DICOM module as a volume sequence has one proxy scalar volume node, whose voxels and
attributes are those of whichever item the sequence browser is on (vtkSlicerSequencesLogic::
UpdateProxyNodesFromSequences: the master sequence's selected index value; for another synchronized sequence, its
item at that value, or the one before it). A proxy selected by hand as an input is exported as the frame on show at
Apply; :func:`shown_frame` says which frame that is, and :func:`copy_shown_frame` copies it into a scalar volume
node of its own, so that the comparison does not follow the browser when the user scrubs it later. Runs under the
PyPI ``slicer-core`` wheel.
"""

from __future__ import annotations

import json
from typing import Optional, Tuple

from DCEDiffSlicerLib.study_fill import sequence_browsers

FRAME_ATTRIBUTE = "DCEDiff.SequenceFrame"  # on a copy: JSON of shown_frame(), the frame it holds


def shown_frame(node) -> Optional[dict]:
    """``{"sequence", "browser", "proxy", "item", "index_value", "index_name", "index_unit"}`` for a proxy node of a
    sequence browser (``item``: the item number of the frame in its sequence, None where the sequence has no item at
    the browser's index value), else None. Nothing is modified."""
    scene = node.GetScene() if node is not None else None
    if scene is None:
        return None
    for browser in sequence_browsers(scene):
        if not browser.IsProxyNodeID(node.GetID()):
            continue
        sequence = browser.GetSequenceNode(node)
        master = browser.GetMasterSequenceNode()
        selected = browser.GetSelectedItemNumber()
        if sequence is None or master is None or not 0 <= selected < master.GetNumberOfDataNodes():
            value, item = None, None
        else:
            value = master.GetNthIndexValue(selected)
            item = sequence.GetItemNumberFromIndexValue(value, True)
            if item < 0:  # no item at that value: the browser shows the one before it (MissingItemCreateFromPrevious)
                item = sequence.GetItemNumberFromIndexValue(value, False)
        owner = sequence if sequence is not None else browser
        return {"sequence": owner.GetName(), "browser": browser.GetName(), "proxy": node.GetName(),
                "item": item if item is not None and item >= 0 else None, "index_value": value,
                "index_name": sequence.GetIndexName() if sequence is not None else None,
                "index_unit": sequence.GetIndexUnit() if sequence is not None else None}
    return None


def copy_shown_frame(node) -> Tuple[Optional[object], Optional[dict]]:
    """``(copy, frame)`` for a proxy node: a new scalar volume node holding a deep copy of what the proxy shows now
    (voxels, geometry, attributes, window/level), named ``<sequence> frame <index value>`` (as "Fill from study"
    names its copies), under the proxy's parent transform and next to it in the subject hierarchy, with
    ``FRAME_ATTRIBUTE`` set to ``frame`` (:func:`shown_frame`, plus ``"volume"``: the copy's name). ``(None, None)``
    for any other node. The proxy is not modified."""
    from DCEDiffSlicerLib.scene_io import place_next_to

    frame = shown_frame(node)
    if frame is None:
        return None, None
    scene = node.GetScene()
    label = frame["index_value"] if frame["index_value"] is not None else "shown"
    copy = scene.AddNewNodeByClass(node.GetClassName(), scene.GenerateUniqueName(f"{frame['sequence']} frame {label}"))
    copy.CopyContent(node, True)  # the proxy, not the item: what the user saw, edits made on the proxy included
    copy.CreateDefaultDisplayNodes()
    if node.GetDisplayNode() is not None and copy.GetDisplayNode() is not None:
        copy.GetDisplayNode().CopyContent(node.GetDisplayNode(), True)  # the user's window/level on the proxy
    copy.SetAndObserveTransformNodeID(node.GetTransformNodeID())
    place_next_to(copy, node)
    frame = dict(frame, volume=copy.GetName())
    copy.SetAttribute(FRAME_ATTRIBUTE, json.dumps(frame))
    return copy, frame
