"""DCEDiff results saved as a Slicer scene bundle and reopened in a new session, under the slicer-core wheel: the
real ``vtkMRMLScene.SaveSceneToSlicerDataBundleDirectory`` (what File > Save writes into a .mrb, before zipping;
file names from node names, percent-encoded and clamped to 50 characters) and ``vtkMRMLScene.Import``.

What survives (audit of the saved scene, 2026-12-07): the voxels (float32, gzip NRRD, bit for bit), every
``DCEDiff.*`` attribute (JSON with ';', ':', '%3B', quotes, newlines and non-ASCII text, exactly), the overlays'
colour tables and their references (a second run reuses them), the metrics table's columns and text. What
does not: the synthetic mark in the .nrrd file itself (Slicer's volume writer writes no node attribute; the .mrml
keeps it). A result, fresh or reopened, given back to the module as an input is refused by name: until this audit
a reopened synthetic early DCE selected as the acquired early DCE ran, and the synthesis was scored against itself.

The only stand-ins are the Qt side of DCEDiff.py and ``slicer.app`` (no Slicer application here): those of
Testing/test_slicer_module.py."""

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import result_display as rd  # noqa: E402
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_module import modules, scene  # noqa: E402,F401  (fixtures: Qt stand-ins, a fresh scene)

NOTE = 'bright; tail: 3.13× the bulk %3B %25 "quoted" <b> & \'x\'\r\nsecond line'
OOD = {"flagged": True, "score": 1.5, "threshold": 1.0, "reasons": ["slice 3.0 mm; expected ≤ 1.5 mm: \"thick\""]}
METRICS = {"early": {"whole": {"psnr": 20.5, "ssim": 0.8, "mae": 0.25}, "body": {"psnr": "inf", "ssim": None,
                                                                                 "mae": 0.0}},
           "late": {"whole": {"psnr": 30.0, "ssim": 0.9, "mae": 0.125}}}


def result_folder(folder: Path) -> sitk.Image:
    """An engine output folder (every result kind, a flagged verdict, notes with MRML's separators); its T2W."""
    rng = np.random.default_rng(3)
    image = sitk.GetImageFromArray(rng.uniform(0, 900, (4, 8, 9)).astype(np.float32))
    image.SetSpacing((0.5, 0.6, 3.0))
    (folder / "t2w_grid").mkdir(parents=True)
    for kind, _pattern in scene_io.RESULT_KINDS:
        for target in ("early", "late"):
            values = rng.uniform(0, 500, (4, 8, 9)).astype(np.float32)
            values[0, 0, :3] = (1.2345678e-7, 3.4e38, 0.0)
            result = sitk.GetImageFromArray(values)
            result.CopyInformation(image)
            sitk.WriteImage(result, str(folder / "t2w_grid" / f"{kind}_{target}.nii.gz"))
    provenance = {"model": "tiny;model:é", "seed": 7, "intensity_notes": {"t1pre": NOTE}, "note": NOTE,
                  "acquired_scale": {"applied": True, "gain": 1.25}}
    (folder / "synthesis.json").write_text(json.dumps({"provenance": provenance, "out_of_distribution": OOD}),
                                           encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    return image


def save_bundle_and_reopen(scene, folder: Path):
    """File > Save as a scene bundle (.mrb, unzipped) and open it in a new session; returns the new scene."""
    folder.mkdir()
    assert scene.SaveSceneToSlicerDataBundleDirectory(str(folder))
    reopened = slicer.vtkMRMLScene()
    reopened.SetURL(str(folder / f"{folder.name}.mrml"))
    assert reopened.Import()
    return reopened


def by_name(scene, name):
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes()) if scene.GetNthNode(i).GetName() == name]
    assert len(nodes) == 1, name
    return nodes[0]


def test_a_result_saved_as_a_bundle_reopens_with_its_voxels_attributes_colours_and_table(scene, tmp_path):
    t2w = scene_io.image_to_volume_node(result_folder(tmp_path / "out"), "Pat: 1/T2W")
    nodes = scene_io.load_results(tmp_path / "out", t2w)
    reopened = save_bundle_and_reopen(scene, tmp_path / "bundle")
    files = sorted(p.name for p in (tmp_path / "bundle" / "Data").iterdir())
    assert len(set(files)) == len(files) and not any("|" in f or ":" in f for f in files)  # one file per node
    for key, node in nodes.items():
        again = by_name(reopened, node.GetName())
        attributes = {a: node.GetAttribute(a) for a in node.GetAttributeNames()}
        assert {a: again.GetAttribute(a) for a in again.GetAttributeNames()} == attributes, key
        assert json.loads(again.GetAttribute("DCEDiff.Provenance.intensity_notes")) == {"t1pre": NOTE}
        assert json.loads(again.GetAttribute(scene_io.OOD_ATTRIBUTE))["reasons"] == OOD["reasons"]
        assert rd.acquired_gain({"acquired_scale": again.GetAttribute("DCEDiff.Provenance.acquired_scale")}) == 1.25
        if key == "metrics":
            table = again.GetTable()
            assert [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())] == list(scene_io.METRIC_COLUMNS)
            assert scene_io.table_to_rows(again) == scene_io.table_to_rows(node)  # "∞", "–" survive the writer
            assert scene_io.table_to_rows(again)[1][2:4] == ("∞", "undefined")
            assert scene_io.table_metrics(again) == METRICS  # every digit, in the .mrml
            continue
        values = slicer.util.arrayFromVolume(again)
        assert values.dtype == np.float32 and values.tobytes() == slicer.util.arrayFromVolume(node).tobytes(), key
        color = node.GetDisplayNode().GetColorNode()
        if key.split("_")[0] in ("residual", "uncertainty", "expected"):
            assert again.GetDisplayNode().GetColorNode().GetName() == color.GetName(), key
    tables = reopened.GetNumberOfNodesByClass("vtkMRMLColorTableNode")
    slicer.mrmlScene = reopened
    scene_io.load_results(tmp_path / "out", by_name(reopened, "Pat: 1/T2W"))  # a second run in the new session
    assert reopened.GetNumberOfNodesByClass("vtkMRMLColorTableNode") == tables == 2  # reused, not duplicated


def test_a_result_given_back_as_an_input_is_refused_by_name_before_any_work(modules, scene, tmp_path, monkeypatch):
    """A reopened (or fresh) result selected as an input ran: a synthetic early DCE as the acquired early DCE gave a
    zero residual and perfect metrics, the synthesis scored against itself, with nothing said."""
    DCEDiff, _ = modules
    image = result_folder(tmp_path / "out")
    t2w, pd, adc, t1pre = (scene_io.image_to_volume_node(image, name) for name in ("T2W", "PD", "ADC", "T1"))
    fresh = scene_io.load_results(tmp_path / "out", t2w)
    reopened = save_bundle_and_reopen(scene, tmp_path / "bundle")
    slicer.mrmlScene = reopened
    t2w, pd, adc, t1pre = (by_name(reopened, name) for name in ("T2W", "PD", "ADC", "T1"))
    work = tmp_path / "temporary"
    work.mkdir()
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(work), slicerHome=""), raising=False)

    def launch(cmd, cwd=None, env_update=None):
        raise AssertionError("the engine was started on a DCEDiff result")

    monkeypatch.setattr(DCEDiff, "_launchInSlicer", launch)
    logic = DCEDiff.DCEDiffLogic()
    early, late = (by_name(reopened, fresh[f"synthetic_{t}"].GetName()) for t in ("early", "late"))
    with pytest.raises(ValueError, match=r"acquired early DCE: T2W synthetic early DCE is a DCEDiff result "
                                         r"\(synthetic, synthetic_early\), not an acquired image"):
        logic.process(t2w, pd, adc, t1pre, dceEarly=early, dceLate=late)
    residual = by_name(reopened, fresh["residual_early"].GetName())
    with pytest.raises(ValueError, match="^T1 pre-contrast: T2W residual .* is a DCEDiff result"):
        logic.process(t2w, pd, adc, residual)
    assert list(work.iterdir()) == [] and logic._job is None  # nothing copied, nothing started


def test_the_saved_metrics_table_keeps_what_it_shows_and_its_node_keeps_every_digit(scene, tmp_path):
    """What docs/slicer.md says of the saved metrics table, checked on slicer-core's real vtkMRMLTableStorageNode:
    the cells are text as metrics.md writes it (Slicer's table view shows a double column's 6 significant digits and
    NaN as "nan", with no display format the module could set), written and read back as that text (the schema
    keeps the string type; "undefined" stays a word); the full-precision values are the engine's metrics.json on
    the node (attribute DCEDiff.Metrics; batch mode writes it as results/metrics.json)."""
    metrics = {"early": {"whole": {"psnr": 24.123456789, "ssim": 0.812345678, "mae": 0.0312345678},
                         "enhancement": {"lesion": {"mae": None, "psnr": None, "pearson": None}}}}
    table = scene_io.create_metrics_table(metrics, "metrics")
    storage = scene.AddNewNodeByClass("vtkMRMLTableStorageNode")
    storage.SetFileName(str(tmp_path / "metrics.tsv"))
    assert storage.WriteData(table)
    again = scene.AddNewNodeByClass("vtkMRMLTableNode")
    assert storage.ReadData(again)
    whole, lesion = scene_io.table_to_rows(again)
    assert [again.GetTable().GetColumn(c).GetDataTypeAsString() for c in range(2, 6)] == ["string"] * 4
    assert whole[2:] == ("24.12", "0.812", "0.0312", "–") and lesion[2:] == ("undefined", "–", "undefined",
                                                                               "undefined")
    assert scene_io.table_metrics(table)["early"]["whole"]["psnr"] == 24.123456789