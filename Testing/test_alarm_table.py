"""scripts/alarm_table.py: the console lines it sorts are the engine's own words, the registrations it rebuilds from
synthesis.json map points as the engine's transforms do, its verdicts follow the self-check's tolerance, and one
real `dcediff synthesize` of the shipped sample case comes back as a row with every registration judged."""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.commands.common import registration_notes
from DCEDiffLib.intensity_tail import tame_heavy_tail
from DCEDiffLib.normalization import fit_normalization
from DCEDiffLib.ood import summary_line
from DCEDiffLib.pipeline import registration_warning
from DCEDiffLib.registration import identity_result, transform_record
from DCEDiffLib.registration_check import transform_points
from script_module import ROOT, load_script

alarm_table = load_script("alarm_table")
SAMPLE_CASE = ROOT / "Resources" / "SampleData" / "phantom_case"


def _euler(angles, translation, centre):
    euler = sitk.Euler3DTransform()
    euler.SetCenter(centre)
    euler.SetRotation(*angles)
    euler.SetTranslation(translation)
    return euler


def test_the_engines_own_lines_are_sorted_into_their_kinds():
    flagged = summary_line({"checked": True, "flagged": True, "score": 1.7, "threshold": 1.0,
                            "reasons": ["adc: gland histogram far from the training exams"]})
    within = summary_line({"checked": True, "flagged": False, "score": 0.6, "threshold": 1.0, "reasons": []})
    refused = identity_result("adc", "does not improve the similarity (metric -0.30 -> -0.29)")
    refused.self_check = {"agrees": False}
    rng = np.random.default_rng(0)
    values = rng.normal(300.0, 60.0, 20000).clip(1, None)
    values[:2000] *= 8.0  # a coil's near field: a bright tail heavier than any training exam's
    _, tail_note = tame_heavy_tail(values, fit_normalization(values, name="T1-pre"), "t1pre")
    assert tail_note, "the heavy-tail rule no longer fires on an 8x tail: pick another tail for this test"
    lines = {
        "ood warning": f"DCEDiff warning: {flagged}",
        "ood: within": f"DCEDiff note: {within}",
        "correction not applied": f"dcediff: note: {registration_notes({'adc': refused})[0]}",
        "registration self-check disagrees": f"DCEDiff warning: {registration_warning({'adc': refused})}",
        "heavy-tail note": f"dcediff: note: {tail_note}",
    }
    for kind, line in lines.items():
        assert alarm_table.line_kind(line) == kind, line
    assert alarm_table.line_kind("dcediff: note: something new").startswith("other: ")


def test_only_warnings_and_notes_are_kept_from_stderr():
    stderr = ("synthesize:  40%|####      | 00:04<00:06\n\nDCEDiff warning: one\n"
              "DCEDIFF_PROGRESS {\"stage\": \"load\"}\ndcediff: note: two\n  Traceback (most recent call last):\n")
    assert alarm_table.said_lines(stderr) == ["DCEDiff warning: one", "dcediff: note: two"]


def test_a_rebuilt_transform_maps_points_as_the_engines_did():
    points = np.random.default_rng(1).uniform(-40, 40, (50, 3)) + np.array([3.0, 20.0, -10.0])
    t1pre = _euler((0.02, -0.01, 0.03), (1.5, -2.0, 0.7), (3.0, 20.0, -10.0))
    step = _euler((0.004, 0.0, -0.006), (0.3, 0.2, -0.4), (5.0, 18.0, -12.0))
    frame = sitk.CompositeTransform(3)  # how a DCE frame is registered: through the T1-pre (registration.py)
    frame.AddTransform(step)
    frame.AddTransform(t1pre)
    for transform in (t1pre, frame):
        record = json.loads(json.dumps(transform_record(transform)))  # through synthesis.json's text
        rebuilt = alarm_table.rebuild_transform(record)
        assert np.allclose(transform_points(rebuilt, points), transform_points(transform, points), atol=1e-6)
    moved = transform_points(alarm_table.rebuild_transform(transform_record(frame)), points)
    assert not np.allclose(moved, transform_points(t1pre, points), atol=0.1)  # the step is not dropped
    with pytest.raises(ValueError, match="BSplineTransform"):
        alarm_table.rebuild_transform({"kind": "BSplineTransform"})


def test_verdicts_follow_the_self_checks_tolerance():
    over, under = alarm_table.ALARM_MM + 0.01, alarm_table.ALARM_MM - 0.01
    assert alarm_table.alarm_verdict({"error_mm": over, "check_agrees": False}) == "true alarm"
    assert alarm_table.alarm_verdict({"error_mm": under, "check_agrees": False}) == "false alarm"
    assert alarm_table.alarm_verdict({"error_mm": over, "check_agrees": True}) == "silent miss"
    assert alarm_table.alarm_verdict({"error_mm": under, "check_agrees": True}) == "right"
    assert alarm_table.alarm_verdict({"error_mm": over, "check_agrees": None}) == "no check"


def test_the_shipped_sample_case_through_the_real_command(tmp_path):
    dataset = tmp_path / "data"
    dataset.mkdir()
    shutil.copytree(SAMPLE_CASE, dataset / "case_000")
    before = {p.name: p.stat().st_mtime_ns for p in (dataset / "case_000").iterdir()}
    rows_file = tmp_path / "rows.json"
    assert alarm_table.main([str(dataset), "--out", str(tmp_path / "out"), "--json", str(rows_file)]) == 0
    (row,) = json.loads(rows_file.read_text(encoding="utf-8"))
    assert row["returncode"] == 0 and row["family"] == "prostatex" and row["domain"] == "A"
    assert set(row["registration"]) == set(alarm_table.SERIES)
    for series, judged in row["registration"].items():
        # the sample case registers to within 1.2 mm of its true motion (README; docs/preprocessing.md)
        assert 0.0 < judged["error_mm"] < alarm_table.ALARM_MM, (series, judged)
        assert alarm_table.alarm_verdict(judged) == "right", (series, judged)
    assert row["ood_flagged"] is False and 0.0 < row["ood_score"] < 1.0
    assert {p.name: p.stat().st_mtime_ns for p in (dataset / "case_000").iterdir()} == before  # only read
    with pytest.raises(SystemExit, match="new or empty"):
        alarm_table.main([str(dataset), "--out", str(tmp_path / "out")])
