"""The frame a volume sequence's proxy node shows, kept for a run.

A DCE series loaded by Slicer's DICOM module as a volume sequence has one proxy scalar volume node, whose voxels and
attributes are those of whichever item the sequence browser is on (vtkSlicerSequencesLogic::
UpdateProxyNodesFromSequences: the master sequence's selected index value; for another synchronized sequence, its
item at that value, or the one before it). A proxy selected by hand as an input is exported as the frame on show at
Apply; :func:`shown_frame` says which frame that is, and :func:`copy_shown_frame` copies it into a scalar volume
node of its own, so that the comparison does not follow the browser when the user scrubs it later; Apply again on
the same frame reuses that copy (:func:`earlier_copy`) instead of adding another. Runs under the PyPI
``slicer-core`` wheel.
"""

from __future__ import annotations

import json
from typing import Optional, Tuple

import numpy as np
import slicer.util

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


def same_content(copy, node) -> bool:
    """Whether ``copy`` holds what ``node`` shows: the same voxels (values, shape and scalar type), the same IJK-to-RAS
    geometry and the same parent transform. Neither node is modified."""
    image, shown = copy.GetImageData(), node.GetImageData()
    if image is None or shown is None or copy.GetTransformNodeID() != node.GetTransformNodeID():
        return False
    matrices = []
    for each in (copy, node):
        matrix = slicer.util.vtkMatrixFromArray(np.eye(4))  # a vtkMatrix4x4 without importing vtk here
        each.GetIJKToRASMatrix(matrix)
        matrices.append(slicer.util.arrayFromVTKMatrix(matrix))
    if not np.array_equal(*matrices):  # spacing, origin or directions changed
        return False
    kept, now = slicer.util.arrayFromVolume(copy), slicer.util.arrayFromVolume(node)
    if kept.dtype != now.dtype or kept.shape != now.shape:
        return False
    return bool(np.array_equal(kept, now, equal_nan=kept.dtype.kind in "fc"))  # a NaN voxel equals itself here


def earlier_copy(node, frame: dict):
    """The copy an earlier Apply made of ``frame`` (:func:`shown_frame` of ``node``), where one is still in the scene
    under the name it was given, records that frame (``FRAME_ATTRIBUTE``) and holds what ``node`` shows now
    (:func:`same_content`: the user may have edited the proxy since); else None. A copy the user renamed is theirs
    now, and one removed from the scene is not found. The newest fitting copy where there are several."""
    scene = node.GetScene()
    class_name = node.GetClassName()
    for i in reversed(range(scene.GetNumberOfNodesByClass(class_name))):
        candidate = scene.GetNthNodeByClass(i, class_name)
        text = candidate.GetAttribute(FRAME_ATTRIBUTE)
        if candidate is node or candidate.GetClassName() != class_name or not text:
            continue
        try:
            recorded = json.loads(text)
        except ValueError:  # not ours to read (edited by hand): not a copy to reuse
            continue
        if not isinstance(recorded, dict) or recorded.get("volume") != candidate.GetName():
            continue
        if {k: v for k, v in recorded.items() if k != "volume"} == frame and same_content(candidate, node):
            return candidate
    return None


def copy_shown_frame(node) -> Tuple[Optional[object], Optional[dict]]:
    """``(copy, frame)`` for a proxy node: a scalar volume node holding a deep copy of what the proxy shows now
    (voxels, geometry, attributes, window/level), named ``<sequence> frame <index value>`` (as "Fill from study"
    names its copies), under the proxy's parent transform and next to it in the subject hierarchy, with
    ``FRAME_ATTRIBUTE`` set to ``frame`` (:func:`shown_frame`, plus ``"volume"``: the copy's name). The copy an
    earlier Apply made of the same frame is returned instead of a new one where it still holds what the proxy shows
    (:func:`earlier_copy`); ``frame`` then also has ``"reused": True``. ``(None, None)`` for any other node. The proxy
    is not modified; a copy that fails half-way is removed again before the error goes on."""
    from DCEDiffSlicerLib.scene_io import place_next_to, remove_nodes

    frame = shown_frame(node)
    if frame is None:
        return None, None
    kept = earlier_copy(node, frame)
    if kept is not None:
        return kept, dict(frame, volume=kept.GetName(), reused=True)
    scene = node.GetScene()
    label = frame["index_value"] if frame["index_value"] is not None else "shown"
    copy = scene.AddNewNodeByClass(node.GetClassName(), scene.GenerateUniqueName(f"{frame['sequence']} frame {label}"))
    try:
        copy.CopyContent(node, True)  # the proxy, not the item: what the user saw, edits made on the proxy included
        copy.CreateDefaultDisplayNodes()
        if node.GetDisplayNode() is not None and copy.GetDisplayNode() is not None:
            copy.GetDisplayNode().CopyContent(node.GetDisplayNode(), True)  # the user's window/level on the proxy
        copy.SetAndObserveTransformNodeID(node.GetTransformNodeID())
        place_next_to(copy, node)
        frame = dict(frame, volume=copy.GetName())
        copy.SetAttribute(FRAME_ATTRIBUTE, json.dumps(frame))
    except BaseException:  # Ctrl-C or no memory for the voxels: no half-made copy stays in the scene
        remove_nodes([copy])
        raise
    return copy, frame
