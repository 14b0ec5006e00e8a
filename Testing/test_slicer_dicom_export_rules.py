"""*Send results to DICOM database* (DCEDiff/DCEDiffSlicerLib/dicom_export.py, DCEDiff.py's button) at its
documented rules, found by mutation audit round 20: each test fails on one plausible bug that
Testing/test_slicer_dicom_export.py let pass.

Same real parts and stand-ins as Testing/test_slicer_dicom_export.py (imported from it): a phantom DICOM study on
disk, MRML nodes of the slicer-core wheel, result nodes made by ``scene_io.load_results``; ``DicomDatabaseStandIn``
(ctkDICOMDatabase) and ``ImportStandIn`` (``DICOMLib.DICOMUtils.importDicom``), both Qt/CTK, which cannot run here;
for the widget, the Qt stand-ins of Testing/test_slicer_module.py.
"""

import datetime
import json
import sys
import time
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import dicom_export, scene_io  # noqa: E402
from DCEDiffLib.dicom_study import scan_study  # noqa: E402
from dicom_slice_io import write_retagged_series  # noqa: E402
from slicer_stand_ins import ErrorDisplayStandIn  # noqa: E402
from test_slicer_dicom_export import (DicomDatabaseStandIn, ImportStandIn, database, engine_output,  # noqa: E402,F401
                                      load_t2w, read_series, run_results, scene, slicer_dicom_stand_ins, study,
                                      t2w_series)
from test_slicer_module import make_widget, modules  # noqa: E402,F401


def test_only_nodes_flagged_synthetic_are_sent(study, database, scene, tmp_path):
    """synthetic_series_nodes: 'those flagged DCEDiff.Synthetic whose DCEDiff.Role is synthetic_early/late': a
    node that carries the role but not the flag (e.g. a copy the user made and edited) is no result to send."""
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    assert set(dicom_export.synthetic_series_nodes(nodes)) == {"early", "late"}
    nodes["synthetic_late"].RemoveAttribute(scene_io.SYNTHETIC_ATTRIBUTE)
    assert set(dicom_export.synthetic_series_nodes(nodes)) == {"early"}
    nodes["synthetic_early"].SetAttribute(scene_io.SYNTHETIC_ATTRIBUTE, "false")
    assert dicom_export.synthetic_series_nodes(nodes) == {}


def test_only_the_series_written_are_reported(study, database, scene, tmp_path):
    """DicomExport.series: 'per result ... the series' what was written: with the late DCE alone, one series."""
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    only_late = {"synthetic_late": nodes["synthetic_late"]}
    sent = dicom_export.export_results_to_dicom(only_late, t2w, database=database, import_folder=ImportStandIn())
    assert set(sent.series) == {"late"} and "late DCE" in sent.message() and "early DCE" not in sent.message()
    assert [p.name for p in (sent.folder / "dicom").iterdir()] == ["synthetic_late"]


def test_the_t2ws_files_must_hold_one_series(study, database, scene, tmp_path):
    """t2w_reference: 'expected one series of one volume': a T2W node whose DICOM.instanceUIDs also name another
    series' files is refused, nothing written."""
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    root, expected = study
    uid_of = {path: uid for uid, path in database.files.items()}
    adc = next(s for s in scan_study(root).series if s.number != expected["t2w"])
    t2w.SetAttribute("DICOM.instanceUIDs", t2w.GetAttribute("DICOM.instanceUIDs") + " "
                     + " ".join(uid_of[f.path] for f in adc.files))
    with pytest.raises(ValueError, match=r"hold 2 series .* expected one series of one volume"):
        dicom_export.export_results_to_dicom(nodes, t2w, out_dir=tmp_path / "picked", database=database,
                                             import_folder=ImportStandIn())
    assert not (tmp_path / "picked").exists()


def test_a_single_reason_is_quoted_without_a_count_of_more(study, database, scene, tmp_path):
    """label_and_flags, as the engine's label: the first reason quoted, '(+N more reason(s) in synthesis.json)'
    only where there are more."""
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    ood = {"flagged": True, "checked": True, "score": 1.5, "threshold": 1.0, "reasons": ["T2W level far"]}
    nodes["synthetic_early"].SetAttribute(scene_io.OOD_ATTRIBUTE, json.dumps(ood))
    label, flags, _ = dicom_export.label_and_flags(nodes["synthetic_early"])
    assert "WARNING: inputs OUT OF the model's training distribution (score 1.50 > 1): T2W level far" in label
    assert "more reason" not in label and flags[0] == "OOD-WARNING"


def test_a_flag_without_a_score_still_warns(study, database, scene, tmp_path):
    """label_and_flags: a result flagged out of distribution whose record holds no numeric score and threshold (a
    scene of another DCEDiff) still carries the warning and the flag, in words without a score, not a traceback."""
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    nodes["synthetic_late"].SetAttribute(scene_io.OOD_ATTRIBUTE, json.dumps({"reasons": ["T2W level far"]}))
    label, flags, _ = dicom_export.label_and_flags(nodes["synthetic_late"])
    assert label.endswith(". WARNING: inputs OUT OF the model's training distribution") and flags[0] == "OOD-WARNING"


def test_the_t2ws_own_number_is_kept_where_the_database_cannot_list_its_study(study, database, tmp_path, monkeypatch):
    """used_series_numbers: 'the T2W's own number where the database cannot list the study's series': a T2W
    numbered 9001 pushes the new series past it."""
    files = [f.path for f in t2w_series(study).files]
    monkeypatch.setattr(database, "seriesForStudy", lambda uid: [])
    assert dicom_export.used_series_numbers(database, files) == [t2w_series(study).number]
    renumbered = write_retagged_series(files, tmp_path / "t2w_9001", {"0020|0011": "9001"})
    assert dicom_export.used_series_numbers(database, sorted(str(p) for p in renumbered.iterdir())) == [9001]


def test_a_closed_database_is_refused(study, database, scene, tmp_path):
    """'Refused with ValueError naming what is missing, and nothing written: no DICOM database' open."""
    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    database.isOpen = False
    importer = ImportStandIn()
    with pytest.raises(ValueError, match="Slicer has no DICOM database open"):
        dicom_export.export_results_to_dicom(nodes, t2w, out_dir=tmp_path / "picked", database=database,
                                             import_folder=importer)
    assert not (tmp_path / "picked").exists() and importer.calls == []


def test_a_new_folder_takes_the_next_free_suffix(tmp_path):
    """_new_folder: '<date>-<time>, then -2, -3, ...' (two sends within one second)."""
    for _ in range(3):   # a second boundary between the two calls of now(): try again
        stem = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        first = dicom_export._new_folder(tmp_path)
        if first.name == stem:
            break
    first.mkdir()
    second = dicom_export._new_folder(tmp_path)
    if second.name.split("-")[:2] == stem.split("-"):
        assert second.name == f"{stem}-2"
        second.mkdir()
        assert dicom_export._new_folder(tmp_path).name in (f"{stem}-3",
                                                           datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def test_the_button_is_off_and_does_nothing_while_a_run_starts_or_runs(modules, study, database, scene, tmp_path,
                                                                       monkeypatch):
    """_updateSendButton: 'enabled while the last run's synthetic early/late DCE are in the scene and no run is
    starting or on'; onSendToDicom sends nothing while a run is on."""
    from DCEDiffSlicerLib import process_runner

    DCEDiff, _ = modules
    importer = slicer_dicom_stand_ins(monkeypatch, database)
    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", ErrorDisplayStandIn())
    t2w = load_t2w(study, database, scene)
    widget, _p = make_widget(DCEDiff, monkeypatch)
    work = tmp_path / "DCEDiff-work"
    engine_output(t2w, work / "out", flagged=False)
    runner = process_runner.ProcessRunner([sys.executable, "-c", "print('done')"]).start()
    widget.logic._job = DCEDiff._Job(runner, work, t2w, time.monotonic(), False)
    widget.onCompleted(widget.logic._finish(runner.wait(timeout=30)))
    assert widget.ui.sendToDicomButton.enabled is True   # the control

    widget._starting = True
    widget._updateApplyButton()
    assert widget.ui.sendToDicomButton.enabled is False
    widget._starting = False
    monkeypatch.setattr(type(widget.logic), "isRunning", property(lambda self: True))
    widget._updateApplyButton()
    assert widget.ui.sendToDicomButton.enabled is False
    widget.onSendToDicom()
    assert importer.calls == []


def test_results_on_another_grid_are_sent_on_the_t2ws_grid(study, database, scene, tmp_path):
    """'on the T2W's DICOM grid': a result node that covers fewer slices than the T2W (here the middle ones) is put
    back onto the T2W's grid, zero outside it, not written on its own grid."""
    import numpy as np
    import SimpleITK as sitk

    t2w = load_t2w(study, database, scene)
    nodes = run_results(t2w, tmp_path / "out", scene)
    image = scene_io.volume_node_to_image(nodes["synthetic_early"])
    cropped = image[:, :, 1:-1]
    node = scene_io.image_to_volume_node(cropped, "cropped early", scene)
    for key in nodes["synthetic_early"].GetAttributeNames():
        node.SetAttribute(key, nodes["synthetic_early"].GetAttribute(key))
    sent = dicom_export.export_results_to_dicom({"synthetic_early": node}, t2w, database=database,
                                                import_folder=ImportStandIn())
    back, reader = read_series(sent.series["early"]["folder"])
    reference = scene_io.volume_node_to_image(t2w)
    assert back.GetSize() == reference.GetSize()
    values = sitk.GetArrayFromImage(back)
    slope = float(reader.GetMetaData(0, "0028|1053"))
    assert np.all(values[0] == 0) and np.all(values[-1] == 0)
    np.testing.assert_allclose(values[1:-1], sitk.GetArrayFromImage(cropped), atol=slope / 2 + 1e-3)
