"""The T1-pre VIBE of a study without a DCE series says that it was dated by its name only (DCEDiffLib/study_roles.py).

The T1-pre is the gradient-echo T1 "acquired before the DCE". With no DCE series to compare its SeriesTime with
(the study holds none, or it was not downloaded), only its name says it is pre-contrast: a post-contrast VIBE with
a neutral name ("t1_vibe_fs_tra", acquired after the DCE) is then taken as the T1-pre, and the synthesis is wrong
without a word. The pick is unchanged; its line (``pick_roles(...).lines()``), its rule in synthesis.json and one
``dcediff synthesize`` warning line say it. Built on the phantom study writer (real DICOM files,
DCEDiffLib/phantom/study_export.py) with and without its DCE series; the no-SeriesTime case on header-only series
(no files: Testing/test_study_roles_rules.py).
"""

import json
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from DCEDiffLib.cli import main
from DCEDiffLib.dicom_study import Study, scan_study
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.study_roles import parse_series_overrides, pick_roles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_study_roles_rules import header_series, per_time_point_dce  # noqa: E402

# the VIBE flip-angle set and the post-contrast VIBEs (one named so, one neutral), T2W, ADC, PD reference
FEW = ("localizer", "t2_sag", "t2_cor", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb")
UNDATED = "not dated: no DCE series in the study to date it by, taken as pre-contrast by its name/description only"


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """(root without the DCE series, root with it, the writer's expected picks with it)."""
    case = generated_case(3)
    without = tmp_path_factory.mktemp("no_dce") / "exam"
    write_phantom_study(case, without, omit=FEW + ("dce",))
    with_dce = tmp_path_factory.mktemp("dce") / "exam"
    expected = write_phantom_study(case, with_dce, omit=FEW)
    return without, with_dce, expected


def numbers_by_description(root):
    return {s.description: s.number for s in scan_study(root, warn=lambda m: None).series}


def test_without_a_dce_the_t1pre_pick_is_unchanged_and_says_it_is_dated_by_its_name_only(studies):
    without, _, _ = studies
    picks = pick_roles(scan_study(without, warn=lambda m: None), require=False)
    t1pre = picks.picks["t1pre"]
    # the pick is what it was: the neutral-named post-contrast VIBE (flip 25°), nothing dates it after the DCE
    assert t1pre.series.number == numbers_by_description(without)["t1_vibe_fs_tra"]
    (line,) = [line for line in picks.lines() if line.startswith("t1pre")]
    assert UNDATED in line and "#" in line and "'t1_vibe_fs_tra'" in line
    assert UNDATED in picks.to_dict()["series"]["t1pre"]["rule"]
    (warning,) = picks.warnings
    assert warning.startswith("T1-pre #") and "'t1_vibe_fs_tra'" in warning and UNDATED in warning


def test_with_the_dce_the_vibe_is_dated_and_nothing_is_said(studies):
    _, with_dce, expected = studies
    picks = pick_roles(scan_study(with_dce, warn=lambda m: None), require=False)
    assert picks.picks["t1pre"].series.number == expected["t1pre"]   # the 20° VIBE, acquired before the DCE
    assert picks.warnings == [] and not any("not dated" in line for line in picks.lines())


def test_a_t1pre_named_with_series_is_the_users_call_and_is_not_flagged(studies):
    without, _, _ = studies
    number = numbers_by_description(without)["fl3d_vibe_pre_flip_20deg_tra"]
    picks = pick_roles(scan_study(without, warn=lambda m: None), parse_series_overrides([f"t1pre={number}"]),
                       require=False)
    assert picks.picks["t1pre"].series.number == number and picks.warnings == []


def flat_frame(volume, name):
    """The pixels of a header-only frame (no files): a flat image, read for the DCE's mean curve only."""
    return sitk.Image(8, 8, 4, sitk.sitkFloat32) + 100.0


def test_a_vibe_or_dce_without_series_time_is_not_dated_either():
    """With a DCE series but no SeriesTime on the VIBE, is_post_contrast again rests on the name alone."""
    frames = per_time_point_dce(20, [1000.0, 1010.0, 1020.0, 1030.0, 1040.0])
    vibe = header_series(10, "fl3d_vibe_tra", flip=15.0)   # no time tags
    picks = pick_roles(Study("/none", "1.2", "P", "20000101", frames + [vibe]), require=False,
                       read=flat_frame)
    assert picks.picks["t1pre"].series.number == 10
    (warning,) = picks.warnings
    assert "no SeriesTime on it or on the DCE series" in warning and "by its name/description only" in warning
    dated = header_series(10, "fl3d_vibe_tra", acq_s=[900.0], flip=15.0)
    picks = pick_roles(Study("/none", "1.2", "P", "20000101", frames + [dated]), require=False,
                       read=flat_frame)
    assert picks.picks["t1pre"].series.number == 10 and picks.warnings == []


def test_the_command_prints_one_warning_line_and_records_the_rule(studies, tmp_path, capsys):
    from random_model import save_random_model

    without, _, _ = studies
    out = tmp_path / "out"
    code = main(["synthesize", "--study", str(without), "--out", str(out), "--model",
                 str(save_random_model(tmp_path)), "--steps", "1", "--no-register"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    warnings = [line for line in printed.err.splitlines() if "not dated" in line]
    assert len(warnings) == 1 and warnings[0].startswith("dcediff synthesize: warning: T1-pre #"), printed.err
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert UNDATED in side["series"]["t1pre"]["rule"]
