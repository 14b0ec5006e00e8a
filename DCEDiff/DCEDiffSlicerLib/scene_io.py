"""MRML nodes <-> SimpleITK images and files, with exact geometry; the DCEDiff result nodes.

Imports only ``slicer`` and ``slicer.util`` (plus numpy, SimpleITK and the engine's torch-free
``DCEDiffLib.data_source`` and NIfTI checks), so it runs in Slicer and under the PyPI
``slicer-core`` wheel (pytest, ``Testing/test_slicer_scene.py``).

Conventions (``docs/architecture.md``):
- A node's scalars, ``slicer.util.arrayFromVolume(node)``, and ``sitk.GetArrayFromImage(image)`` are all indexed
  **(k, j, i)**; no transpose anywhere.
- Slicer's geometry is IJK→RAS; SimpleITK's is IJK→LPS. LPS = diag(-1, -1, 1)·RAS, so the two matrices differ by
  the sign of their first two rows.
- A linear parent transform of an input node is folded into the exported geometry (the engine sees the volume
  where Slicer shows it); the input node itself is never modified. Result nodes are created in world coordinates,
  without a parent transform.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np
import SimpleITK as sitk
import slicer
import slicer.util

from DCEDiffLib.data_source import NOT_MARKED, PHANTOM, RESULT_DESCRIP, input_source, mark_phantom
from DCEDiffLib.evaluation.tables import format_value
from DCEDiffSlicerLib import result_display
from DCEDiffSlicerLib.study_fill import INSTANCE_UIDS_ATTRIBUTE, sequence_browsers

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SYNTHETIC_ATTRIBUTE = "DCEDiff.Synthetic"
PROVENANCE_PREFIX = "DCEDiff.Provenance."
ROLE_ATTRIBUTE = "DCEDiff.Role"
OOD_ATTRIBUTE = "DCEDiff.OutOfDistribution"  # JSON {"score", "threshold", "reasons"}; only on flagged results
SOURCE_ATTRIBUTE = "DCEDiff.Source"  # "DCEDiff phantom" on a node holding a phantom volume (else: its file decides)
MISSING_ATTRIBUTE = "DCEDiff.MissingInputs"  # e.g. "pd": the engine synthesized without these inputs
# JSON {role: frame} where an input was a volume sequence's proxy node: the frame it showed at Apply
INPUT_FRAMES_ATTRIBUTE = "DCEDiff.InputFrames"
# MRML node reference from every result node to the T2W it was made from: saved in the .mrml ("references") and
# restored on load, so a reopened scene can still send a run's series into the T2W's study (dicom_export)
T2W_REFERENCE_ROLE = "DCEDiffT2W"
METRICS_ATTRIBUTE = "DCEDiff.Metrics"  # on the metrics table: the engine's metrics.json, every digit (JSON)
RUN_ATTRIBUTE = "DCEDiff.Run"  # one id per load_results call: which result nodes belong to the same run
METRIC_COLUMNS = ("Target", "Region", "PSNR (dB)", "SSIM", "MAE", "Pearson r")


def _scene(scene=None):
    scene = scene if scene is not None else slicer.mrmlScene
    if scene is None:
        raise RuntimeError("no MRML scene (outside Slicer set slicer.mrmlScene = slicer.vtkMRMLScene())")
    return scene


def ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK→RAS matrix of a SimpleITK image (whose geometry is LPS)."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction @ np.diag(image.GetSpacing())
    ijk_to_lps[:3, 3] = image.GetOrigin()
    return LPS_FROM_RAS @ ijk_to_lps  # diag(-1,-1,1) is its own inverse


def node_ijk_to_ras(node, world: bool = True) -> np.ndarray:
    """The node's 4x4 IJK→RAS; with ``world`` its linear parent transform applied (non-linear: ValueError)."""
    matrix = slicer.util.vtkMatrixFromArray(np.eye(4))  # a vtkMatrix4x4 without importing vtk here
    node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = slicer.util.arrayFromVTKMatrix(matrix).copy()
    transform = node.GetParentTransformNode() if world else None
    if transform is not None:
        if not transform.IsTransformToWorldLinear():
            # e.g. the grid transform Slicer's DICOM scalar volume plugin adds to a series with uneven slice spacing
            # or tilted slices ("<series> acquisition transform", DICOM setting "Acquisition geometry regularization")
            raise ValueError(f"{node.GetName()}: its parent transform is not linear; harden it first "
                             "(Data module → right-click → Harden transform)"
                             f" ({transform.GetName()}; a DICOM series' acquisition transform is hardened at loading "
                             "with Application settings → DICOM → Acquisition geometry regularization: harden "
                             "regularization transform)")
        to_world = slicer.util.vtkMatrixFromArray(np.eye(4))
        transform.GetMatrixTransformToWorld(to_world)
        ijk_to_ras = slicer.util.arrayFromVTKMatrix(to_world) @ ijk_to_ras
    return ijk_to_ras


def sequence_of_proxy(node) -> Optional[str]:
    """The name of the sequence whose browser shows ``node`` as its proxy node (a DCE series loaded by Slicer's
    DICOM module as a volume sequence: the proxy holds whichever item the browser is on), else None."""
    scene = node.GetScene() if node is not None else None
    if scene is None:
        return None
    for browser in sequence_browsers(scene):
        if browser.IsProxyNodeID(node.GetID()):
            sequence = browser.GetSequenceNode(node)
            return (sequence if sequence is not None else browser).GetName()
    return None


def volume_node_to_image(node, name: Optional[str] = None) -> sitk.Image:
    """A float32 SimpleITK copy of a scalar volume node, in LPS, parent transform applied.

    ``name`` (e.g. "T2W") names the input in error messages. The node is not modified."""
    label = name or (node.GetName() if node is not None else "input")
    if node is None:
        raise ValueError(f"{label}: no volume selected")
    if not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise ValueError(f"{label}: {node.GetName()} is a {node.GetClassName()}; expected a scalar volume")
    data = node.GetImageData()
    # dimensions without a voxel array (image data never allocated): slicer.util.arrayFromVolume fails on None
    if (data is None or data.GetNumberOfPoints() == 0
            or (data.GetPointData().GetScalars() is None and data.GetPointData().GetTensors() is None)):
        raise ValueError(f"{label}: {node.GetName()} has no image data (no voxel values)")
    components = node.GetImageData().GetNumberOfScalarComponents()
    if components != 1 and node.GetClassName() == "vtkMRMLScalarVolumeNode":
        # RGB voxels in a plain scalar node: arrayFromVolume would fail with numpy's "cannot reshape ..."
        raise ValueError(f"{label}: {node.GetName()} has {components} components per voxel (e.g. a colour image); "
                         "expected a 3D scalar volume with one value per voxel")
    array = slicer.util.arrayFromVolume(node)
    if array.ndim != 3 or min(array.shape) < 1:
        raise ValueError(f"{label}: {node.GetName()} has shape {array.shape}; expected a 3D scalar volume")
    with np.errstate(over="ignore"):  # a double beyond float32's range becomes inf: told below, by name
        values = np.array(array, dtype=np.float32, copy=True)  # a copy: the node's memory is never shared or changed
    if not np.isfinite(values).all():
        raise ValueError(nonfinite_message(array, f"{label}: {node.GetName()}"))
    ijk_to_lps = LPS_FROM_RAS @ node_ijk_to_ras(node)
    linear = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"{label}: {node.GetName()} has a zero voxel spacing")
    direction = linear / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        # a parent transform that scales or shears (an affine registration's result): no voxel grid holds the
        # volume where Slicer shows it, and the engine would refuse it, or misplace the results by millimetres
        transform = node.GetParentTransformNode()
        raise ValueError(f"{label}: {node.GetName()} is sheared or scaled unevenly"
                         + (f" by its parent transform {transform.GetName()}" if transform is not None else "")
                         + "; expected a volume on a rectangular voxel grid: resample it onto one (Resample Scalar "
                         "Volume, or harden the transform and resample) and select the result")
    # the voxel at array index 0 is IJK = the image data's extent start (0 unless cropped by VTK, e.g. vtkExtractVOI)
    start = np.zeros(4)
    start[3] = 1.0
    start[:3] = node.GetImageData().GetExtent()[0::2]
    image = sitk.GetImageFromArray(values)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in direction.ravel()])
    image.SetOrigin([float(v) for v in (ijk_to_lps @ start)[:3]])
    return image


def nonfinite_message(array: np.ndarray, what: str) -> str:
    """Why ``array`` (a volume's voxels, in the node's own type; ``what`` names it) has no finite float32 copy:
    NaN or infinite voxels, or finite doubles beyond float32's range (the engine computes in float32), which the
    cast made infinite and were reported as NaN or infinite before."""
    from DCEDiffLib.volume_io import beyond_float32

    finite = np.isfinite(array)
    beyond = beyond_float32(array) if finite.all() else None
    if beyond:
        return (f"{what} {beyond}; expected intensities within it (rescale the volume, e.g. with Simple Filters → "
                "RescaleIntensityImageFilter)")
    bad = int(array.size - np.count_nonzero(finite))
    return (f"{what} contains NaN or infinite values ({bad} of {array.size} voxels); expected finite intensities "
            "everywhere")


def image_to_volume_node(image: sitk.Image, name: str, scene=None,
                         node_class: str = "vtkMRMLScalarVolumeNode", unique: bool = True):
    """A new float32 scalar volume node holding a copy of ``image`` with its geometry (LPS → RAS).

    With ``unique`` the name is made unique in the scene, so that no existing node is ever shadowed."""
    scene = _scene(scene)
    array = sitk.GetArrayFromImage(image).astype(np.float32)  # (k, j, i), copied
    if unique:
        name = scene.GenerateUniqueName(name)
    node = scene.AddNewNodeByClass(node_class, name)
    slicer.util.updateVolumeFromArray(node, array)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_from_image(image)))
    node.CreateDefaultDisplayNodes()
    return node


def node_source(node) -> str:
    """Where a volume node's data come from, for the engine's data-domain rule (DCEDiffLib/data_source.py):
    the node's ``SOURCE_ATTRIBUTE`` if set, else the phantom mark of the file it was loaded from, else, for a node
    loaded from DICOM, the mark of its first file in Slicer's DICOM database. The last one outlives a saved scene:
    Slicer writes a DICOM volume again as .nrrd, without the mark, but saves the node's ``DICOM.instanceUIDs``
    with it. The node is not modified."""
    attribute = node.GetAttribute(SOURCE_ATTRIBUTE)
    if attribute:
        return attribute
    storage = node.GetStorageNode()
    file_name = storage.GetFileName() if storage is not None else None
    if file_name and input_source(file_name) == PHANTOM:
        return PHANTOM
    uids = (node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    first = _database_file(uids[0]) if uids else ""
    return input_source(first) if first else NOT_MARKED


def _database_file(uid: str) -> str:
    """The file of a SOP Instance UID in Slicer's DICOM database; "" without a database or such a file."""
    database = getattr(slicer, "dicomDatabase", None)
    return (database.fileForInstance(uid) or "") if database is not None else ""


def write_volume_node(node, path, name: Optional[str] = None) -> Path:
    """Write a scalar volume node (parent transform applied) to NRRD/NIfTI/MHA for the engine; uncompressed.
    A node that holds a DCEDiff phantom (:func:`node_source`) keeps the phantom mark in the file (NRRD/MHA)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = volume_node_to_image(node, name)
    if node_source(node) == PHANTOM:
        mark_phantom(image)
    sitk.WriteImage(image, str(path), False)
    return path


def read_volume_node(path, name: str, scene=None):
    """A new node from a volume file (read with SimpleITK, geometry converted to RAS). A NIfTI file cut short is
    refused: ITK reads its missing slices as zeros without a word."""
    from DCEDiffLib.nifti_nonfinite import is_nifti
    from DCEDiffLib.nifti_write_check import nifti_written_whole

    if is_nifti(Path(path)) and not nifti_written_whole(path):
        raise ValueError(f"{path}: the file is cut short (fewer bytes than its header says); expected a whole "
                         "volume (run DCEDiff again)")
    return image_to_volume_node(sitk.ReadImage(str(path), sitk.sitkFloat32), name, scene)


def load_phantom_volume(path, name: str, scene=None):
    """A new node from a DCEDiff phantom file, marked on the node as a phantom (``SOURCE_ATTRIBUTE``): the loader of
    the module's own Sample Data entry. Slicer's Sample Data loader removes the storage node of every volume it
    loads (its files sit in a cache folder), so the node would not know the marked file it came from and the shipped
    phantom was flagged out of distribution; a saved scene also writes the volume again without the file's mark,
    while the attribute is saved with the node. A file without the phantom mark is refused: the attribute is only
    ever the file's own word."""
    if input_source(Path(path)) != PHANTOM:
        raise ValueError(f"{path}: not a DCEDiff phantom file (no phantom mark); expected a volume of the shipped "
                         "sample case")
    node = read_volume_node(path, name, scene)
    node.SetAttribute(SOURCE_ATTRIBUTE, PHANTOM)
    return node


def point_ras_to_lps(point) -> tuple:
    """(x, y, z) RAS → LPS."""
    return (-float(point[0]), -float(point[1]), float(point[2]))


def center_lps_from_markups(node) -> Optional[tuple]:
    """The prostate centre in LPS mm from a markups node: an ROI's centre or a point list's last placed point
    (world coordinates). None when ``node`` is None. An ROI not placed yet, or a point list whose points are all
    unplaced (position undefined, or marked missing: "Skip" in the Markups module), is refused: its coordinates are
    (0, 0, 0) or a position the user cleared, not the prostate.

    The last placed point, not the first: placing the centre again with the place button next to the selector adds
    a control point after the ones already placed (Slicer's vtkMRMLMarkupsDisplayNode::UpdateActiveControlPointWorld
    appends a point unless one is unplaced), so the first placed point is the one the user meant to replace."""
    if node is None:
        return None
    position = [0.0, 0.0, 0.0]
    placed = [i for i in range(node.GetNumberOfControlPoints())
              if node.GetNthControlPointPositionStatus(i) == node.PositionDefined]
    if not placed:
        what = ("is not placed (no control point, no size)" if node.IsA("vtkMRMLMarkupsROINode")
                else "has no placed point")
        raise ValueError(f"prostate centre: {node.GetName()} {what}; place one or clear the selection")
    if node.IsA("vtkMRMLMarkupsROINode"):
        node.GetCenterWorld(position)
    else:
        node.GetNthControlPointPositionWorld(placed[-1], position)
    return point_ras_to_lps(position)


def place_next_to(node, reference) -> None:
    """Put ``node`` under the same subject-hierarchy parent (study/folder) as ``reference``."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    if sh is None:
        return
    reference_item = sh.GetItemByDataNode(reference)
    parent = sh.GetItemParent(reference_item) if reference_item else sh.GetSceneItemID()
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, parent)
    else:  # Slicer's subject-hierarchy logic creates items on NodeAdded; a bare slicer-core scene does not
        sh.CreateItem(parent, node)


def flag_synthetic(node, provenance: Dict[str, object], role: str) -> None:
    """Mark a result node as synthetic, with its provenance, as node attributes."""
    node.SetAttribute(SYNTHETIC_ATTRIBUTE, "true")
    node.SetAttribute(ROLE_ATTRIBUTE, role)
    for key, value in provenance.items():  # nested values (e.g. intensity_notes) as JSON, so they read back
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        node.SetAttribute(PROVENANCE_PREFIX + str(key), text)


def link_to_run(node, t2w_node, run: str) -> None:
    """Record on a result node the T2W it was made from (an MRML node reference, which the scene saves and restores,
    following the T2W's ID when a loaded scene renames it) and the run it belongs to."""
    node.SetNodeReferenceID(T2W_REFERENCE_ROLE, t2w_node.GetID())
    node.SetAttribute(RUN_ATTRIBUTE, run)


# What Slicer's DICOM export writes for a scalar volume, read in Slicer's source (Slicer main 583e9b3, 2026-08-21;
# paths under Modules/):
# - Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py:653-667 (examineForExport): the series tags' defaults,
#   SeriesDescription "No series description", Modality "CT", Manufacturer "Unknown manufacturer", Model "Unknown
#   model", ...;
# - Scripted/DICOMLib/Widgets/qSlicerDICOMTagEditorWidget.cxx:498-528 replaces each of those tags by the series
#   item's attribute "DICOM.<tag>" where the item has one (a tag the exportable does not define is never read), and
#   :379-473 takes the patient and study tags (PatientID, StudyInstanceUID, ...) from the parent study item and its
#   parent patient item (DICOMScalarVolumePlugin.py:695-706 refuses a series without them);
# - CLI/CreateDICOMSeries/CreateDICOMSeries.cxx:137-193 writes ImageType ORIGINAL\PRIMARY\... for every modality
#   (MR: ORIGINAL\PRIMARY\MPR, "so that we simulate real image acquisitions"), and
#   Scripted/DICOMLib/DICOMExportScalarVolume.py:106-151 passes it no ImageType, DerivationDescription or
#   ImageComments: no attribute can make the exported series DERIVED (docs/slicer.md says so).
DICOM_EXPORT_MANUFACTURER = "DCEDiff (SYNTHETIC image, not acquired)"
DICOM_LO_LENGTH = 64  # SeriesDescription, Manufacturer, ManufacturerModelName are LO: at most 64 characters
DICOM_EXPORT_WHAT = {"synthetic": "{target} DCE", "residual": "residual {target} DCE",
                     "uncertainty": "uncertainty {target} DCE", "expected_error": "expected error {target} DCE"}


def tag_for_dicom_export(node, role: str, provenance: Dict[str, object], flags: Iterable[str] = ()) -> None:
    """Set the ``DICOM.<tag>`` attributes of a result's subject-hierarchy item that Slicer's DICOM export reads, so
    that a result exported to DICOM (to PACS) says it is synthetic: SeriesDescription "SYNTHETIC <flags> early DCE
    (DCEDiff)", Modality MR (the export's default is CT), Manufacturer "DCEDiff (SYNTHETIC ...)" and the
    model as Manufacturer's Model Name. ``role``: e.g. "synthetic_early"; ``flags``: short warnings ("OOD-WARNING",
    "NO-PD"). The study and patient tags come from the study the node is placed in (:func:`place_next_to`)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    item = sh.GetItemByDataNode(node) if sh is not None else 0
    if not item:
        return
    kind, target = role.rsplit("_", 1)
    what = DICOM_EXPORT_WHAT[kind].format(target=target)
    description = " ".join([RESULT_DESCRIP, *flags, what, "(DCEDiff)"])
    values = {"SeriesDescription": description, "Modality": "MR", "Manufacturer": DICOM_EXPORT_MANUFACTURER,
              "Model": f"DCEDiff model {provenance.get('model', 'unknown')}"}
    prefix = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMAttributePrefix()
    for tag, value in values.items():
        sh.SetItemAttribute(item, prefix + tag, value[:DICOM_LO_LENGTH])


def synthetic_input_message(nodes: Dict[str, object], labels: Dict[str, str]) -> Optional[str]:
    """The error for a DCEDiff result selected as an input (a synthetic early DCE as the acquired early DCE: the
    residual is then zero and the metrics perfect, a synthesis scored against itself), or None. ``nodes``: role key
    → selected node or None; ``labels``: role key → the input's name. A result node is known by its
    ``SYNTHETIC_ATTRIBUTE``, which a saved and reopened scene (and a cloned node) keeps; the .nrrd Slicer writes for
    it does not (vtkMRMLVolumeArchetypeStorageNode writes no node attribute), so the same volume loaded on its own
    from that file is not recognised."""
    for key, node in nodes.items():
        get = getattr(node, "GetAttribute", None)
        if get is None or (get(SYNTHETIC_ATTRIBUTE) or "").lower() != "true":
            continue
        role = get(ROLE_ATTRIBUTE)
        return (f"{labels.get(key, key)}: {node.GetName()} is a DCEDiff result (synthetic"
                + (f", {role}" if role else "") + "), not an acquired image; expected an acquired series")
    return None


def out_of_distribution(side: dict) -> Optional[dict]:
    """The engine's out-of-distribution verdict from a synthesis.json dict when it flagged the inputs
    ({"score", "threshold", "reasons"}), else None (not flagged, or not checked)."""
    result = side.get("out_of_distribution")
    if not isinstance(result, dict) or not result.get("flagged"):
        return None
    return {"score": result.get("score"), "threshold": result.get("threshold"),
            "reasons": list(result.get("reasons") or [])}


NOT_APPLICABLE = "–"  # a metric the row does not have (SSIM of an enhancement map), as metrics.md marks it


def metrics_rows(metrics: dict) -> list:
    """Rows (target, region, psnr, ssim, mae, pearson) from a ``metrics.json`` dict: image metrics for whole,
    body and prostate; enhancement metrics (MAE/PSNR/Pearson of the enhancement maps) as "enhancement: <region>".
    Values are text as metrics.md writes them (the engine's ``format_value``: PSNR 2 decimals, SSIM and r 3, MAE
    4; "undefined" for None/NaN, "∞" for a perfect PSNR); ``NOT_APPLICABLE`` where the row has no such metric."""
    def cells(values: dict, names) -> tuple:
        return tuple(format_value(values.get(name), name) if name else NOT_APPLICABLE for name in names)

    rows = []
    for target in ("early", "late"):
        per_target = metrics.get(target)
        if not isinstance(per_target, dict):
            continue
        for region in ("whole", "body", "prostate"):
            values = per_target.get(region)
            if isinstance(values, dict):
                rows.append((target, region) + cells(values, ("psnr", "ssim", "mae", None)))
        enhancement = per_target.get("enhancement")
        if isinstance(enhancement, dict):
            for region, values in enhancement.items():
                if isinstance(values, dict):
                    rows.append((target, f"enhancement: {region}") + cells(values, ("psnr", None, "mae", "pearson")))
    return rows


def create_metrics_table(metrics: dict, name: str, scene=None):
    """A table node with one row per target and region: PSNR (dB), SSIM, MAE, Pearson r, as metrics.md writes
    them (:func:`metrics_rows`; string columns: Slicer's table view shows a double column with 6 significant
    digits and NaN as "nan", with no display format to set). The full-precision values stay on the node: attribute
    ``METRICS_ATTRIBUTE`` holds the engine's ``metrics.json`` (:func:`table_metrics` reads it back)."""
    scene = _scene(scene)
    rows = metrics_rows(metrics)
    if not rows:
        raise ValueError("metrics: no early/late entries; expected the layout of metrics.json")
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    for title in METRIC_COLUMNS:
        table_node.AddColumn().SetName(title)  # string columns
    table = table_node.GetTable()
    table.SetNumberOfRows(len(rows))
    for c in range(len(METRIC_COLUMNS)):
        column = table.GetColumn(c)
        for r, row in enumerate(rows):
            column.SetValue(r, row[c])
    table_node.SetAttribute(METRICS_ATTRIBUTE, json.dumps(metrics))
    table_node.Modified()
    return table_node


def table_metrics(table_node) -> Optional[dict]:
    """The full-precision ``metrics.json`` dict a metrics table was made from (``METRICS_ATTRIBUTE``), or None for
    a table without it (one made by an earlier DCEDiff, whose double columns hold the values themselves)."""
    text = table_node.GetAttribute(METRICS_ATTRIBUTE)
    return json.loads(text) if text else None


def table_to_rows(table_node) -> list:
    """The table's content as a list of tuples (strings; doubles in a table made by an earlier DCEDiff), for
    checks."""
    table = table_node.GetTable()
    return [tuple(table.GetColumn(c).GetValue(r) for c in range(table.GetNumberOfColumns()))
            for r in range(table.GetNumberOfRows())]


RESULT_KINDS = (("synthetic", "synthetic {target} DCE"), ("residual", "residual |synthetic - acquired| {target} DCE"),
                ("uncertainty", "uncertainty {target} DCE"), ("expected_error", "expected error {target} DCE"))


def load_results(result_dir, t2w_node, scene=None) -> Dict[str, object]:
    """Nodes for every result in an engine output folder (the ``t2w_grid/`` copies, aligned with the T2W):
    ``{"synthetic_early": node, ..., "metrics": table node or absent}``. Named ``<T2W name> synthetic early DCE``
    etc. (``... (without PD)`` and ``DCEDiff.MissingInputs`` when the engine ran without an input), flagged
    synthetic with provenance (and ``DCEDiff.OutOfDistribution`` when the engine flagged the inputs), placed next to
    the T2W; each refers to the T2W (node reference ``T2W_REFERENCE_ROLE``) and carries the run's id
    (``RUN_ATTRIBUTE``, the same on every node of this call). On any failure the nodes created so far are removed
    again and the error is raised."""
    scene = _scene(scene)
    result_dir = Path(result_dir)
    side = json.loads((result_dir / "synthesis.json").read_text(encoding="utf-8"))
    provenance = dict(side.get("provenance", {}))
    ood = out_of_distribution(side)
    missing = [str(m) for m in side.get("missing_inputs") or ()]
    without = f" (without {', '.join(m.upper() for m in missing)})" if missing else ""
    # the engine's NIfTI descrip flags (pipeline.OOD_DESCRIP, pipeline.missing_descrip), for the DICOM series
    flags = (["OOD-WARNING"] if ood is not None else []) + (["NO-" + "-".join(m.upper() for m in missing)]
                                                             if missing else [])
    grid_dir = result_dir / "t2w_grid" if (result_dir / "t2w_grid").is_dir() else result_dir
    base = t2w_node.GetName()
    run = uuid.uuid4().hex
    created: Dict[str, object] = {}
    before = _node_ids(scene)  # a failure removes every node made here: display nodes and colour tables too
    try:
        for kind, pattern in RESULT_KINDS:
            for target in ("early", "late"):
                path = grid_dir / f"{kind}_{target}.nii.gz"
                if not path.is_file():
                    if kind == "synthetic":
                        raise FileNotFoundError(f"engine output {path} is missing")
                    continue
                node = read_volume_node(path, f"{base} {pattern.format(target=target)}{without}", scene)
                flag_synthetic(node, provenance, f"{kind}_{target}")
                link_to_run(node, t2w_node, run)
                if missing:
                    node.SetAttribute(MISSING_ATTRIBUTE, ",".join(missing))
                if ood is not None:
                    node.SetAttribute(OOD_ATTRIBUTE, json.dumps(ood))
                if kind in result_display.OVERLAY_MAPS:  # sequential colour map, 0..p99 window, zero transparent
                    result_display.style_overlay(node, kind)
                place_next_to(node, t2w_node)
                tag_for_dicom_export(node, f"{kind}_{target}", provenance, flags)
                created[f"{kind}_{target}"] = node
        metrics_path = result_dir / "metrics.json"
        if metrics_path.is_file():
            table = create_metrics_table(json.loads(metrics_path.read_text(encoding="utf-8")),
                                         f"{base} DCEDiff metrics{without}", scene)
            flag_synthetic(table, provenance, "metrics")
            link_to_run(table, t2w_node, run)
            if missing:  # the table says what the volumes say: it scores a synthesis made without those inputs
                table.SetAttribute(MISSING_ATTRIBUTE, ",".join(missing))
            if ood is not None:
                table.SetAttribute(OOD_ATTRIBUTE, json.dumps(ood))
            place_next_to(table, t2w_node)
            created["metrics"] = table
    except Exception:
        remove_nodes(created.values())
        remove_nodes(node for node in _nodes(scene) if node.GetID() not in before and not node.GetSingletonTag())
        raise
    return created


def _nodes(scene) -> list:
    return [scene.GetNthNode(index) for index in range(scene.GetNumberOfNodes())]


def _node_ids(scene) -> set:
    return {node.GetID() for node in _nodes(scene)}


def remove_nodes(nodes: Iterable) -> None:
    """Remove nodes and their display and storage nodes from their scene."""
    for node in list(nodes):
        if node is None or node.GetScene() is None:
            continue
        scene = node.GetScene()
        helpers = []  # a table node has neither
        if hasattr(node, "GetNumberOfDisplayNodes"):
            helpers += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
        if hasattr(node, "GetNumberOfStorageNodes"):
            helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
        scene.RemoveNode(node)
        for helper in helpers:
            if helper is not None and helper.GetScene() is not None:
                scene.RemoveNode(helper)
