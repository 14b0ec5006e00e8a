"""What the Slicer module promises, each check able to fail (found by a mutation audit, session 53): the geometry of
an exported node (a cropped extent on an oblique grid, nested and non-linear parent transforms), the prostate centre
from RAS to LPS, subject-hierarchy placement when Slicer already made the item, the result attributes (role, the
out-of-distribution verdict, the metrics table), the overlays' upper threshold, the progress bar, the engine's own
"cancelled" exit code, and the logic's end of a cancelled and of an out-of-distribution run.

Real MRML nodes from the slicer-core wheel, real files and real subprocesses. The only stand-ins are the Qt side of
DCEDiff.py (no Qt here), the ones of Testing/test_slicer_module.py, reused as that file uses them."""

import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402
import vtk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import process_runner as pr  # noqa: E402
from DCEDiffSlicerLib import result_display as rd  # noqa: E402
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_module import make_widget, modules  # noqa: E402,F401  (the Qt stand-ins of the module tests)
from test_slicer_scene import oblique_image  # noqa: E402

FLAGGED = {"checked": True, "flagged": True, "score": 3.2, "threshold": 1.0, "reasons": ["ADC map (adc): units error"]}
METRICS = {"early": {"whole": {"psnr": 24.5, "ssim": 0.81, "mae": 0.031},
                     "enhancement": {"whole": {"mae": 0.1, "psnr": 18.0, "pearson": 0.66}}},
           "late": {"whole": {"psnr": 30.0, "ssim": 0.9, "mae": 0.01}}}


@pytest.fixture(autouse=True)
def scene():
    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


def translation(scene, name, shift_ras):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    m = np.eye(4)
    m[:3, 3] = shift_ras
    node.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(m))
    return node


def result_folder(out, verdict=None, metrics=True, kinds=("synthetic", "residual")):
    """An engine-like output folder: t2w_grid/<kind>_<target>.nii.gz, synthesis.json, metrics.json."""
    image = sitk.Image(8, 8, 4, sitk.sitkFloat32) + 1.0
    (out / "t2w_grid").mkdir(parents=True)
    for kind in kinds:
        for target in ("early", "late"):
            sitk.WriteImage(image, str(out / "t2w_grid" / f"{kind}_{target}.nii.gz"))
    side = {"provenance": {"model": "tiny", "seed": 7}}
    if verdict is not None:
        side["out_of_distribution"] = verdict
    (out / "synthesis.json").write_text(json.dumps(side), encoding="utf-8")
    if metrics:
        (out / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    return scene_io.image_to_volume_node(image, "T2W")


# ------------------------------------------------------------------------------------------------ geometry

def test_a_cropped_extent_on_an_oblique_grid_is_exported_where_slicer_shows_it():
    """the first exported voxel is the original voxel at the crop's start, wherever the grid points."""
    image = oblique_image()
    node = scene_io.image_to_volume_node(image, "T2W")
    voi = vtk.vtkExtractVOI()
    voi.SetInputData(node.GetImageData())
    voi.SetVOI(2, 9, 1, 7, 1, 5)
    voi.Update()
    cropped = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "cropped")
    cropped.SetAndObserveImageData(voi.GetOutput())
    cropped.CopyOrientation(node)
    exported = scene_io.volume_node_to_image(cropped, "T2W")
    np.testing.assert_allclose(exported.GetOrigin(), image.TransformIndexToPhysicalPoint((2, 1, 1)), atol=1e-6)
    np.testing.assert_allclose(exported.GetDirection(), image.GetDirection(), atol=1e-9)
    # every exported voxel sits where the same value sat in the original image
    np.testing.assert_allclose(exported.TransformIndexToPhysicalPoint((3, 2, 1)),
                               image.TransformIndexToPhysicalPoint((5, 3, 2)), atol=1e-6)
    assert exported.GetPixel(3, 2, 1) == image.GetPixel(5, 3, 2)


def test_nested_parent_transforms_are_all_applied_to_the_export():
    """Slicer shows a volume at world = every transform up the tree, not only its direct parent."""
    image = oblique_image()
    node = scene_io.image_to_volume_node(image, "T2W")
    inner = translation(slicer.mrmlScene, "inner", (10.0, -5.0, 2.5))
    outer = translation(slicer.mrmlScene, "outer", (1.0, 2.0, -4.0))
    inner.SetAndObserveTransformNodeID(outer.GetID())
    node.SetAndObserveTransformNodeID(inner.GetID())
    exported = scene_io.volume_node_to_image(node, "T2W")
    shift_lps = np.array([11.0, -3.0, -1.5]) * [-1, -1, 1]
    np.testing.assert_allclose(exported.GetOrigin(), np.array(image.GetOrigin()) + shift_lps, atol=1e-6)
    np.testing.assert_allclose(exported.GetDirection(), image.GetDirection(), atol=1e-9)


def test_a_non_linear_parent_transform_is_refused_by_name():
    """a warp has no matrix; exporting without it would place the volume where Slicer does not show it."""
    image = oblique_image()
    node = scene_io.image_to_volume_node(image, "T2W")
    warp = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    tps = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for p, q in (((0, 0, 0), (0, 0, 0)), ((100, 0, 0), (100, 5, 0)), ((0, 100, 0), (0, 100, 0)),
                 ((0, 0, 100), (3, 0, 100)), ((100, 100, 100), (100, 100, 100))):
        source.InsertNextPoint(p)
        target.InsertNextPoint(q)
    tps.SetSourceLandmarks(source)
    tps.SetTargetLandmarks(target)
    tps.SetBasisToR()
    warp.SetAndObserveTransformToParent(tps)
    node.SetAndObserveTransformNodeID(warp.GetID())
    assert not warp.IsTransformToWorldLinear()
    with pytest.raises(ValueError, match="T2W: its parent transform is not linear; harden it first"):
        scene_io.volume_node_to_image(node, "T2W")


def test_the_prostate_centre_goes_from_ras_to_lps_in_world_coordinates():
    """LPS = (-R, -A, S) of the point where Slicer shows it (parent transform included)."""
    points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "centre")
    points.AddControlPoint(10.0, 20.0, 30.0)
    assert scene_io.center_lps_from_markups(points) == pytest.approx((-10.0, -20.0, 30.0))
    points.SetAndObserveTransformNodeID(translation(slicer.mrmlScene, "shift", (1.0, -2.0, 3.0)).GetID())
    assert scene_io.center_lps_from_markups(points) == pytest.approx((-11.0, -18.0, 33.0))
    roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    roi.SetCenter(-4.0, 7.0, -9.0)
    roi.SetSize(20.0, 20.0, 20.0)  # an ROI as drawn (SetCenter alone leaves it unplaced: no control point, no size)
    assert scene_io.center_lps_from_markups(roi) == pytest.approx((4.0, -7.0, -9.0))
    # and the command line carries exactly that centre to the engine
    from DCEDiffLib.cli import build_parser

    inputs = {k: f"/{k}.nrrd" for k in pr.REQUIRED_INPUTS}
    cmd = pr.build_synthesize_command("py", pr.SynthesisRequest(
        inputs=inputs, out_dir="o", center_lps=scene_io.center_lps_from_markups(points)))
    assert [float(v) for v in build_parser().parse_args(cmd[3:]).center.split(",")] == [-11.0, -18.0, 33.0]


# ------------------------------------------------------------------------------------------------ result nodes

def test_a_result_node_that_slicer_already_put_in_the_hierarchy_is_moved_next_to_the_t2w():
    """in Slicer the subject-hierarchy logic creates an item for every new node (at the scene level); the result
    must still end up in the T2W's study."""
    image = sitk.Image(8, 8, 4, sitk.sitkFloat32) + 1.0
    t2w = scene_io.image_to_volume_node(image, "T2W")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    study = sh.CreateStudyItem(sh.GetSceneItemID(), "study")
    sh.CreateItem(study, t2w)
    result = scene_io.image_to_volume_node(image, "T2W synthetic early DCE")
    item = sh.CreateItem(sh.GetSceneItemID(), result)  # what Slicer's SH plugin logic does on NodeAdded
    assert sh.GetItemParent(item) == sh.GetSceneItemID()
    scene_io.place_next_to(result, t2w)
    assert sh.GetItemByDataNode(result) == item  # the same item, not a second one
    assert sh.GetItemParent(item) == study


def test_every_result_node_carries_its_role(tmp_path):
    """DCEDiff.Role says what a node is (docs/slicer.md: attributes DCEDiff.Synthetic, DCEDiff.Role, ...)."""
    t2w = result_folder(tmp_path / "out")
    nodes = scene_io.load_results(tmp_path / "out", t2w)
    assert set(nodes) == {"synthetic_early", "synthetic_late", "residual_early", "residual_late", "metrics"}
    for key, node in nodes.items():
        assert node.GetAttribute(scene_io.ROLE_ATTRIBUTE) == key


def test_an_engine_verdict_checked_but_not_flagged_adds_no_ood_attribute(tmp_path):
    """only a flagged verdict marks the results; a checked, in-distribution one must not."""
    t2w = result_folder(tmp_path / "out", verdict={"checked": True, "flagged": False, "score": 0.4,
                                                   "threshold": 1.0, "reasons": []})
    assert scene_io.out_of_distribution({"out_of_distribution": {"checked": True, "flagged": False}}) is None
    for node in scene_io.load_results(tmp_path / "out", t2w).values():
        assert node.GetAttribute(scene_io.OOD_ATTRIBUTE) is None, node.GetName()


def test_the_metrics_table_of_a_flagged_run_carries_the_ood_attribute(tmp_path):
    """docs/slicer.md: the metrics table carries the same out-of-distribution attribute as the volumes."""
    t2w = result_folder(tmp_path / "out", verdict=FLAGGED)
    nodes = scene_io.load_results(tmp_path / "out", t2w)
    expected = {"score": 3.2, "threshold": 1.0, "reasons": FLAGGED["reasons"]}
    assert "metrics" in nodes
    for key, node in nodes.items():
        assert json.loads(node.GetAttribute(scene_io.OOD_ATTRIBUTE) or "null") == expected, key


def test_enhancement_rows_put_each_metric_in_its_named_column():
    """read by column name: the enhancement MAE under "MAE", no SSIM for enhancement maps ("–")."""
    table = scene_io.create_metrics_table(METRICS, "metrics")
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = [dict(zip(names, row)) for row in scene_io.table_to_rows(table)]
    (row,) = [r for r in rows if r["Target"] == "early" and r["Region"] == "enhancement: whole"]
    assert row["MAE"] == "0.1000"
    assert row["PSNR (dB)"] == "18.00"
    assert row["Pearson r"] == "0.660"
    assert row["SSIM"] == scene_io.NOT_APPLICABLE
    (image_row,) = [r for r in rows if r["Target"] == "early" and r["Region"] == "whole"]
    assert (image_row["PSNR (dB)"], image_row["SSIM"], image_row["MAE"]) == ("24.50", "0.810", "0.0310")
    assert image_row["Pearson r"] == scene_io.NOT_APPLICABLE


@pytest.mark.parametrize("kind", ["residual", "uncertainty", "expected_error"])
def test_the_largest_overlay_values_stay_visible(kind):
    """the threshold hides near-zero values only; the top 1 % (above the p99 window) are the largest errors
    and must still be drawn (saturated), not made transparent."""
    values = np.abs(np.random.default_rng(1).normal(0, 30, (4, 16, 16))).astype(np.float32)
    values[0, 0, 0] = 1000.0  # one very large error
    node = slicer.util.addVolumeFromArray(values, name=f"T2W {kind} early")
    rd.style_overlay(node, kind)
    display = node.GetDisplayNode()
    assert display.GetApplyThreshold()
    assert display.GetLowerThreshold() <= np.percentile(values, 10)
    assert display.GetUpperThreshold() >= values.max()


# ------------------------------------------------------------------------------------------------ progress, cancel

def test_progress_bar_value_is_the_fraction_of_the_ui_maximum(modules, monkeypatch):
    """the bar's maximum is set in Resources/UI/DCEDiff.ui; half done must show half of it, done the whole."""
    DCEDiff, _ = modules
    from DCEDiffLib.progress import ProgressEvent

    bar = [w for w in ET.parse(ROOT / "Resources" / "UI" / "DCEDiff.ui").iter("widget")
           if w.get("name") == "progressBar"][0]
    maximum = int(bar.find("property[@name='maximum']/number").text)
    widget, _p = make_widget(DCEDiff, monkeypatch)
    widget._runStarted = time.monotonic()
    for fraction in (0.0, 0.5, 1.0):
        widget.onProgress(ProgressEvent("sample", 1, 2, fraction, 1.0, 1.0))
        assert widget.ui.progressBar.value == round(fraction * maximum)
    assert widget.ui.statusLabel.text.startswith("Sampling: step 1 of 2 — 1 s left (elapsed ")


def test_an_engine_that_exits_with_the_cancelled_code_is_a_cancelled_run():
    """exit code 3 is the engine's "cancelled" (docs/slicer.md); not an error to show."""
    child = "import sys; print('dcediff synthesize: cancelled: by the user', flush=True); sys.exit(3)"
    result = pr.ProcessRunner([sys.executable, "-c", child]).start().wait(timeout=60)
    assert result.returncode == pr.EXIT_CANCELLED
    assert result.cancelled and result.error is None and not result.ok


def test_a_cancelled_run_finishes_as_cancelled_and_adds_nothing(modules, tmp_path):
    """the logic's end of a cancelled run: a cancelled DCEDiffResult, no node, no work folder."""
    DCEDiff, _ = modules
    logic = DCEDiff.DCEDiffLogic()
    count = slicer.mrmlScene.GetNumberOfNodes()
    runner = pr.ProcessRunner([sys.executable, "-c", "import time; print('x', flush=True); time.sleep(120)"]).start()
    work = tmp_path / "DCEDiff-work"
    work.mkdir()
    logic._job = DCEDiff._Job(runner, work, None, time.monotonic(), False)
    logic.cancel()
    outcome = logic._finish(runner.wait(timeout=30))
    assert isinstance(outcome, DCEDiff.DCEDiffResult) and outcome.cancelled and outcome.nodes == {}
    assert not logic.isRunning and not work.exists()
    assert slicer.mrmlScene.GetNumberOfNodes() == count


def test_a_flagged_run_reports_the_ood_verdict_to_the_caller(modules, tmp_path):
    """DCEDiffResult.outOfDistribution drives the warning dialog (GUI) and the batch WARNING line."""
    DCEDiff, _ = modules
    logic = DCEDiff.DCEDiffLogic()
    work = tmp_path / "DCEDiff-work"
    t2w = result_folder(work / "out", verdict=FLAGGED)
    runner = pr.ProcessRunner([sys.executable, "-c", "print('done')"]).start()
    logic._job = DCEDiff._Job(runner, work, t2w, time.monotonic(), False)
    outcome = logic._finish(runner.wait(timeout=30))
    assert outcome.outOfDistribution == {"score": 3.2, "threshold": 1.0, "reasons": FLAGGED["reasons"]}
    assert outcome.nodes["synthetic_early"].GetAttribute(scene_io.OOD_ATTRIBUTE)
    assert not work.exists()


def test_one_volume_selected_for_two_roles_is_refused_by_name_before_any_work(modules, monkeypatch):
    """The T2W picked as PD too would be synthesized from without a word; the logic refuses it first."""
    DCEDiff, _ = modules
    image = sitk.Image(8, 8, 4, sitk.sitkFloat32) + 1.0
    t2w, pd, adc, t1pre = (scene_io.image_to_volume_node(image, name) for name in ("T2W", "PD", "ADC", "T1"))
    widget, _p = make_widget(DCEDiff, monkeypatch)
    count = slicer.mrmlScene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="T2W and PD: the same volume is selected for both"):
        widget.logic.process(t2w, t2w, adc, t1pre)
    with pytest.raises(ValueError, match="T1 pre-contrast and acquired early DCE: the same volume"):
        widget.logic.process(t2w, pd, adc, t1pre, dceEarly=t1pre, dceLate=adc)
    with pytest.raises(ValueError, match="pre-contrast frame: selected without the acquired early and late DCE"):
        widget.logic.process(t2w, pd, adc, t1pre, dceBaseline=t1pre)
    assert slicer.mrmlScene.GetNumberOfNodes() == count and widget.logic._job is None  # nothing was started
    assert pr.same_volume_message({"t2w": t2w, "pd": None, "adc": adc, "t1pre": t1pre}) is None
    # the DCE's own pre-contrast frame may be the T1-pre itself (the T1-pre taken from the DCE series)
    assert pr.same_volume_message({"t2w": t2w, "pd": pd, "adc": adc, "t1pre": t1pre, "dce_baseline": t1pre}) is None
