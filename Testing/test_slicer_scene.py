"""The Slicer scene code (DCEDiff/DCEDiffSlicerLib/scene_io.py) under the PyPI slicer-core wheel: real MRML nodes,
no Slicer application. Geometry round trips use the real, oblique ProstateX-0000 T2W and ADC series."""

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import scene_io  # noqa: E402
from DCEDiffLib.volume_io import read_volume  # noqa: E402

PROSTATEX = ROOT.parent / "shared" / "data" / "prostatex" / "ProstateX-0000"
T2W_DIR = PROSTATEX / "4-t2tsetra"
ADC_DIR = PROSTATEX / "7-ep2ddifftraDYNDISTADC"
needs_data = pytest.mark.skipif(not T2W_DIR.is_dir() or not ADC_DIR.is_dir(),
                                reason=f"ProstateX data not found at {PROSTATEX} (../shared/data is absent)")


_ANGLE = np.deg2rad(20)
OBLIQUE_DIRECTION = np.array([[np.cos(_ANGLE), -np.sin(_ANGLE), 0], [np.sin(_ANGLE), np.cos(_ANGLE), 0], [0, 0, 1]])


def oblique_image(shape=(6, 8, 10)):
    """An oblique LPS image (``OBLIQUE_DIRECTION``: 20° about z) of ``shape`` (z, y, x), spacings 0.5, 0.7, 3.0 mm,
    origin (100, 50, -20), voxel values 0, 1, 2 ... in array order (each distinct)."""
    image = sitk.GetImageFromArray(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
    image.SetSpacing((0.5, 0.7, 3.0))
    image.SetDirection(OBLIQUE_DIRECTION.ravel().tolist())
    image.SetOrigin((100.0, 50.0, -20.0))
    return image


@pytest.fixture(autouse=True)
def scene():
    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


@pytest.fixture(scope="module")
def t2w_image():
    if not T2W_DIR.is_dir():
        pytest.skip(f"ProstateX data not found at {PROSTATEX} (../shared/data is absent)")
    return read_volume(T2W_DIR, "T2W")


@pytest.fixture(scope="module")
def adc_image():
    if not ADC_DIR.is_dir():
        pytest.skip(f"ProstateX data not found at {PROSTATEX} (../shared/data is absent)")
    return read_volume(ADC_DIR, "ADC")


def ras_of_index(node, ijk):
    return (scene_io.node_ijk_to_ras(node) @ np.array([*ijk, 1.0]))[:3]


def same_geometry(a: sitk.Image, b: sitk.Image, atol=1e-5):
    assert a.GetSize() == b.GetSize()
    assert np.allclose(a.GetOrigin(), b.GetOrigin(), atol=atol)
    assert np.allclose(a.GetSpacing(), b.GetSpacing(), atol=atol)
    assert np.allclose(a.GetDirection(), b.GetDirection(), atol=atol)


def digest(node):
    return hashlib.sha256(slicer.util.arrayFromVolume(node).tobytes()).hexdigest(), \
        scene_io.node_ijk_to_ras(node).tobytes()


@needs_data
@pytest.mark.parametrize("which", ["t2w", "adc"])
def test_real_oblique_volume_round_trips_through_a_node(which, t2w_image, adc_image):
    image = {"t2w": t2w_image, "adc": adc_image}[which]
    direction = np.array(image.GetDirection()).reshape(3, 3)
    assert not np.allclose(np.abs(direction), np.eye(3), atol=1e-3), "ProstateX-0000 series are oblique"
    node = scene_io.image_to_volume_node(image, which)
    array = slicer.util.arrayFromVolume(node)
    expected = sitk.GetArrayFromImage(image)
    # (k, j, i) on both sides: same shape, same values, no transpose
    assert array.shape == expected.shape == tuple(reversed(image.GetSize()))
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, expected)
    # RAS vs LPS: a voxel's RAS position is its SimpleITK LPS position with x and y negated
    size = image.GetSize()
    for ijk in [(0, 0, 0), (size[0] - 1, 3, size[2] - 1), (17, size[1] - 2, 1)]:
        lps = np.array(image.TransformIndexToPhysicalPoint([int(v) for v in ijk]))
        np.testing.assert_allclose(ras_of_index(node, ijk), lps * [-1, -1, 1], atol=1e-4)
        k, j, i = ijk[2], ijk[1], ijk[0]
        assert array[k, j, i] == expected[k, j, i] == image.GetPixel(*[int(v) for v in ijk])
    # origin and spacing as Slicer sees them
    np.testing.assert_allclose(node.GetOrigin(), np.array(image.GetOrigin()) * [-1, -1, 1], atol=1e-4)
    np.testing.assert_allclose(node.GetSpacing(), image.GetSpacing(), atol=1e-6)
    # back to SimpleITK: identical geometry and values
    back = scene_io.volume_node_to_image(node, which)
    same_geometry(back, image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), expected)


@needs_data
def test_node_written_for_the_engine_reads_back_identically(t2w_image, tmp_path):
    node = scene_io.image_to_volume_node(t2w_image, "T2W")
    before = digest(node)
    for suffix in (".nrrd", ".nii.gz"):
        path = scene_io.write_volume_node(node, tmp_path / f"t2w{suffix}", "T2W")
        reread = read_volume(path, "T2W")
        same_geometry(reread, t2w_image, atol=1e-4)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(reread), sitk.GetArrayFromImage(t2w_image))
    assert digest(node) == before  # input node untouched


def test_a_node_loaded_from_a_phantom_file_keeps_the_phantom_mark_for_the_engine(tmp_path):
    """The engine's data-domain rule (DCEDiffLib/data_source.py) needs to know a phantom when Slicer hands it one:
    the mark travels from the file the node was loaded from (or the node's attribute) into the exported NRRD."""
    from DCEDiffLib.data_source import NOT_MARKED, PHANTOM, input_source

    sample = ROOT / "Resources" / "SampleData" / "phantom_case" / "t2w.nii.gz"
    node = scene_io.read_volume_node(sample, "phantom T2W")
    assert scene_io.node_source(node) == NOT_MARKED  # no file behind it yet: not known to be a phantom
    storage = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(sample))
    node.SetAndObserveStorageNodeID(storage.GetID())  # what loading the file in Slicer leaves behind
    assert scene_io.node_source(node) == PHANTOM
    before = digest(node)
    assert input_source(scene_io.write_volume_node(node, tmp_path / "t2w.nrrd", "T2W")) == PHANTOM
    assert digest(node) == before and node.GetAttribute(scene_io.SOURCE_ATTRIBUTE) is None  # node untouched
    storage.SetFileName(str(tmp_path / "elsewhere.nii.gz"))  # a file that is not a phantom's
    assert input_source(scene_io.write_volume_node(node, tmp_path / "other.nrrd", "T2W")) == NOT_MARKED
    node.SetAttribute(scene_io.SOURCE_ATTRIBUTE, PHANTOM)  # a module or script may say so explicitly
    assert input_source(scene_io.write_volume_node(node, tmp_path / "attr.nrrd", "T2W")) == PHANTOM


@needs_data
def test_output_nodes_are_aligned_with_the_t2w_and_inputs_are_untouched(t2w_image, adc_image, tmp_path):
    t2w = scene_io.image_to_volume_node(t2w_image, "ProstateX-0000 T2W")
    adc = scene_io.image_to_volume_node(adc_image, "ADC")
    before = {n.GetName(): digest(n) for n in (t2w, adc)}
    # an engine-like result folder: results pasted onto the T2W grid (here: the ADC resampled onto it)
    on_t2w = sitk.Resample(scene_io.volume_node_to_image(adc, "ADC"), t2w_image, sitk.Transform(), sitk.sitkLinear,
                           0.0, sitk.sitkFloat32)
    out = tmp_path / "result"
    (out / "t2w_grid").mkdir(parents=True)
    kinds = ("synthetic", "residual", "uncertainty", "expected_error")
    for kind in kinds:
        for target, scale in (("early", 1.0), ("late", 2.0)):
            sitk.WriteImage(on_t2w * scale, str(out / "t2w_grid" / f"{kind}_{target}.nii.gz"))
    provenance = {"synthetic": True, "model": "tiny", "sampler": "dpmpp", "steps": 3, "seed": 7, "samples": 2,
                  "intensity_notes": {"t1pre": "t1pre: bright tail 3.13× the bulk"}}
    (out / "synthesis.json").write_text(json.dumps({"provenance": provenance}), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")

    nodes = scene_io.load_results(out, t2w)
    assert set(nodes) == {f"{k}_{t}" for k in kinds for t in ("early", "late")} | {"metrics"}
    assert nodes["expected_error_late"].GetName() == "ProstateX-0000 T2W expected error late DCE"
    early = nodes["synthetic_early"]
    assert early.GetName() == "ProstateX-0000 T2W synthetic early DCE"
    assert nodes["synthetic_late"].GetName() == "ProstateX-0000 T2W synthetic late DCE"
    for key, node in nodes.items():
        assert node.GetAttribute("DCEDiff.Synthetic") == "true", key
        assert node.GetAttribute("DCEDiff.Provenance.seed") == "7"
        # nested provenance reads back as JSON (the module's DCEDiffResult.intensityNotes parses it)
        assert json.loads(node.GetAttribute("DCEDiff.Provenance.intensity_notes")) == provenance["intensity_notes"]
        if key == "metrics":
            continue
        np.testing.assert_allclose(scene_io.node_ijk_to_ras(node), scene_io.node_ijk_to_ras(t2w), atol=1e-5)
        values = slicer.util.arrayFromVolume(node)
        assert values.dtype == np.float32 and values.shape == slicer.util.arrayFromVolume(t2w).shape
        assert np.isfinite(values).all()
    np.testing.assert_allclose(slicer.util.arrayFromVolume(nodes["synthetic_late"]),
                               2 * sitk.GetArrayFromImage(on_t2w), rtol=1e-6)
    # placed next to the T2W in the subject hierarchy
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    study = sh.CreateStudyItem(sh.GetSceneItemID(), "study")
    t2w_item = sh.GetItemByDataNode(t2w) or sh.CreateItem(study, t2w)  # Slicer's SH logic makes items itself
    sh.SetItemParent(t2w_item, study)
    again = scene_io.load_results(out, t2w)
    assert again["synthetic_early"].GetName() != early.GetName()  # never overwrites or shadows a node
    for node in again.values():
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study
    assert {n.GetName(): digest(n) for n in (t2w, adc)} == before  # inputs untouched


@needs_data
def test_linear_parent_transform_is_applied_to_the_exported_volume_without_changing_the_node(t2w_image):
    node = scene_io.image_to_volume_node(t2w_image, "T2W")
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    shift = np.eye(4)
    shift[:3, 3] = (10.0, -5.0, 2.5)  # RAS mm
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    local = scene_io.node_ijk_to_ras(node, world=False).copy()
    exported = scene_io.volume_node_to_image(node, "T2W")
    np.testing.assert_allclose(exported.GetOrigin(), np.array(t2w_image.GetOrigin()) + [-10.0, 5.0, 2.5], atol=1e-4)
    np.testing.assert_allclose(exported.GetDirection(), t2w_image.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(scene_io.node_ijk_to_ras(node, world=False), local)


def test_bad_inputs_raise_errors_naming_the_input():
    with pytest.raises(ValueError, match="PD: no volume selected"):
        scene_io.volume_node_to_image(None, "PD")
    empty = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ValueError, match="ADC: empty has no image data"):
        scene_io.volume_node_to_image(empty, "ADC")
    import vtk

    empty.SetAndObserveImageData(vtk.vtkImageData())  # an image object with no voxels is no image data either
    with pytest.raises(ValueError, match="ADC: empty has no image data"):
        scene_io.volume_node_to_image(empty, "ADC")
    bad = slicer.util.addVolumeFromArray(np.full((2, 3, 4), np.nan, dtype=np.float32), name="nans")
    with pytest.raises(ValueError, match="T1 pre-contrast: nans contains NaN"):
        scene_io.volume_node_to_image(bad, "T1 pre-contrast")
    label = slicer.util.addVolumeFromArray(np.ones((2, 3, 4), dtype=np.int16), name="seg",
                                           nodeClassName="vtkMRMLLabelMapVolumeNode")
    with pytest.raises(ValueError, match="T2W: seg is a vtkMRMLLabelMapVolumeNode"):
        scene_io.volume_node_to_image(label, "T2W")


def test_small_synthetic_geometry_matches_slicer_conventions():
    # independent of ../shared/data: an oblique LPS image with distinct spacings and a known voxel
    image = oblique_image((2, 3, 4))
    node = scene_io.image_to_volume_node(image, "small")
    ijk_to_ras = slicer.util.arrayFromVTKMatrix(node.GetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.eye(4)))
                                                or _ijk_to_ras(node))
    assert node.GetImageData().GetDimensions() == (4, 3, 2)
    assert slicer.util.arrayFromVolume(node)[1, 2, 3] == node.GetImageData().GetScalarComponentAsDouble(3, 2, 1, 0)
    np.testing.assert_allclose(ijk_to_ras[:3, 3], (-100.0, -50.0, -20.0))
    np.testing.assert_allclose(ijk_to_ras[:3, :3], np.diag([-1, -1, 1]) @ OBLIQUE_DIRECTION @ np.diag((0.5, 0.7, 3.0)),
                               atol=1e-9)


def _ijk_to_ras(node):
    matrix = slicer.util.vtkMatrixFromArray(np.eye(4))
    node.GetIJKToRASMatrix(matrix)
    return matrix


METRICS = {
    "early": {"whole": {"psnr": 24.5, "ssim": 0.81, "mae": 0.031}, "body": {"psnr": 22.0, "ssim": 0.7, "mae": 0.05},
              "prostate": {"psnr": None, "ssim": None, "mae": None},
              "enhancement": {"whole": {"mae": 0.1, "psnr": 18.0, "pearson": 0.66},
                              "lesion": {"mae": None, "psnr": None, "pearson": None, "pearson_reason": "no lesion"}},
              "lesions": {"summary": {}, "per_lesion": []}},
    "late": {"whole": {"psnr": "inf", "ssim": 1.0, "mae": 0.0}, "body": {"psnr": 30.0, "ssim": 0.9, "mae": 0.01},
             "prostate": {"psnr": 28.0, "ssim": 0.88, "mae": 0.02}},
    "info": {"settings": {}}, "notes": ["prostate mask is empty"],
}


def test_metrics_table_holds_psnr_ssim_mae_and_enhancement_rows():
    table = scene_io.create_metrics_table(METRICS, "case metrics")
    assert [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())] == list(scene_io.METRIC_COLUMNS)
    rows = scene_io.table_to_rows(table)
    assert len(rows) == 3 + 2 + 3
    by_key = {(r[0], r[1]): r[2:] for r in rows}
    assert by_key[("early", "whole")] == ("24.50", "0.810", "0.0310", "–")
    assert by_key[("early", "prostate")] == ("undefined",) * 3 + ("–",)  # None → undefined, not 0
    assert by_key[("early", "enhancement: whole")] == ("18.00", "–", "0.1000", "0.660")
    assert by_key[("late", "whole")][0] == "∞"
    with pytest.raises(ValueError, match="metrics"):
        scene_io.create_metrics_table({"info": {}}, "empty")


def test_metrics_table_shows_what_metrics_md_shows_and_keeps_every_digit_on_the_node():
    """A radiologist read PSNR 27.1235 and r 0.834512 (Slicer's table view shows a double column's 6 significant
    digits; it has no display format) and "nan" for a lesion r on a case without lesions. The cells are now the
    engine's format_value text (metrics.md's digits), undefined reads "undefined", a metric the row lacks "–"; the
    engine's metrics.json, every digit, stays on the node (DCEDiff.Metrics)."""
    from DCEDiffLib.evaluation.tables import format_value

    metrics = {"early": {"whole": {"psnr": 27.123456, "ssim": 0.8345121, "mae": 0.03123456},
                         "enhancement": {"prostate": {"mae": 0.0812345, "psnr": 21.98765, "pearson": 0.834512},
                                         "lesion": {"mae": None, "psnr": None, "pearson": float("nan"),
                                                    "pearson_reason": "no lesion label"}}}}
    table = scene_io.create_metrics_table(metrics, "case metrics")
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = {r[1]: dict(zip(names, r)) for r in scene_io.table_to_rows(table)}
    assert [rows["whole"][n] for n in names[2:]] == ["27.12", "0.835", "0.0312", "–"]
    assert [rows["enhancement: prostate"][n] for n in names[2:]] == ["21.99", "–", "0.0812", "0.835"]
    assert rows["enhancement: lesion"]["Pearson r"] == "undefined"
    assert rows["whole"]["PSNR (dB)"] == format_value(27.123456, "psnr")  # the engine's text, not a second one
    assert not any("nan" in str(cell).lower() for row in rows.values() for cell in row.values())
    kept = scene_io.table_metrics(table)
    assert kept["early"]["whole"] == metrics["early"]["whole"]  # every digit
    assert kept["early"]["enhancement"]["prostate"]["pearson"] == 0.834512
    assert math.isnan(kept["early"]["enhancement"]["lesion"]["pearson"])


def test_results_made_without_pd_say_so_in_name_and_attribute(tmp_path):
    image = sitk.Image(8, 8, 4, sitk.sitkFloat32) + 1.0
    t2w = scene_io.image_to_volume_node(image, "T2W")
    for missing, suffix in (([], ""), (["pd"], " (without PD)")):
        out = tmp_path / f"result_{len(missing)}"
        out.mkdir()
        for target in ("early", "late"):
            sitk.WriteImage(image, str(out / f"synthetic_{target}.nii.gz"))
        (out / "synthesis.json").write_text(json.dumps({"provenance": {"model": "tiny"}, "missing_inputs": missing}))
        (out / "metrics.json").write_text(json.dumps(METRICS))  # the table says it too (it did not)
        nodes = scene_io.load_results(out, t2w)
        assert nodes["synthetic_early"].GetName() == f"T2W synthetic early DCE{suffix}"
        assert nodes["metrics"].GetName() == f"T2W DCEDiff metrics{suffix}"
        for node in nodes.values():
            assert node.GetAttribute(scene_io.MISSING_ATTRIBUTE) == (",".join(missing) or None)


def test_a_failed_result_load_leaves_no_node_behind(tmp_path):
    """A malformed metrics.json after the volumes loaded: their display nodes and colour tables stayed."""
    image = sitk.Image(8, 8, 4, sitk.sitkFloat32) + 1.0
    t2w = scene_io.image_to_volume_node(image, "T2W")
    for kind in ("synthetic", "residual"):
        for target in ("early", "late"):
            sitk.WriteImage(image, str(tmp_path / f"{kind}_{target}.nii.gz"))
    (tmp_path / "synthesis.json").write_text(json.dumps({"provenance": {"model": "tiny"}}))
    (tmp_path / "metrics.json").write_text("{truncated")
    before = {slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())}
    with pytest.raises(ValueError):
        scene_io.load_results(tmp_path, t2w)
    after = {slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())}
    assert after == before


def test_a_sheared_input_is_refused_and_a_cropped_extent_keeps_its_place():
    """An affine parent transform (scale or shear) has no voxel grid: refused by name, before the engine runs (a
    3 % shear misplaced the results by 4 mm). A volume whose image data start at a non-zero extent (vtkExtractVOI)
    was exported shifted by the extent."""
    image = sitk.GetImageFromArray(np.arange(6 * 8 * 10, dtype=np.float32).reshape(6, 8, 10))
    image.SetSpacing((0.5, 0.5, 3.0))
    node = scene_io.image_to_volume_node(image, "T2W")
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "affine registration")
    shear = np.eye(4)
    shear[0, 1] = 0.03
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shear))
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(ValueError, match="T2W: T2W is sheared or scaled unevenly by its parent transform affine reg"):
        scene_io.volume_node_to_image(node, "T2W")
    node.SetAndObserveTransformNodeID(None)
    data = node.GetImageData()
    cropped = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "cropped")
    import vtk

    voi = vtk.vtkExtractVOI()
    voi.SetInputData(data)
    voi.SetVOI(2, 9, 1, 7, 1, 5)
    voi.Update()
    cropped.SetAndObserveImageData(voi.GetOutput())
    cropped.CopyOrientation(node)
    exported = scene_io.volume_node_to_image(cropped, "T2W")
    expected_origin = image.TransformIndexToPhysicalPoint((2, 1, 1))
    np.testing.assert_allclose(exported.GetOrigin(), expected_origin, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(exported), sitk.GetArrayFromImage(image)[1:6, 1:8, 2:10])


def test_a_result_file_cut_short_is_refused_not_loaded_with_zero_slices(tmp_path):
    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(1, 9, (6, 20, 20)).astype(np.float32))
    path = tmp_path / "synthetic_early.nii.gz"
    sitk.WriteImage(image, str(path))
    assert scene_io.read_volume_node(path, "whole") is not None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut short"):
        scene_io.read_volume_node(path, "half")
