"""A DCEDiff result exported to DICOM comes back with the study and is never taken as an input.

The Slicer module tags a result for Slicer's DICOM export (DCEDiffSlicerLib/scene_io.py tag_for_dicom_export):
SeriesDescription "SYNTHETIC ... (DCEDiff)", Manufacturer "DCEDiff (SYNTHETIC image, not acquired)", in the T2W's
study. Sent to PACS and downloaded with the study, that series was a candidate like any other: taken as the acquired
DCE, a synthesis is scored against itself (zero residual, perfect metrics); as the T1-pre it is no acquired image.
Here a phantom study (real DICOM files, DCEDiffLib/phantom/study_export.py) gets a copy of its DCE series re-tagged
as that export tags it (new SeriesInstanceUID and SOPInstanceUIDs, Testing/dicom_slice_io.py):

- ``--study``: such a series (Manufacturer starting "DCEDiff", or SeriesDescription starting "SYNTHETIC", any case)
  is never picked nor a losing candidate for any role; it is listed as skipped with why (pick lines,
  synthesis.json ``skipped_series``, the missing-role error); ``--series ROLE=NUMBER`` naming it is refused;
- the phantom's own Manufacturer ("DCEDiff phantom (synthetic)") is no such mark: the phantom study reads as before;
- such a series given as a DICOM folder (``--dce-early DIR``, ``--t1pre DIR``) is refused by name before it is read,
  as the NIfTI/NRRD result files are (Testing/test_result_as_input.py), without a role-mismatch warning beside it;
  so is such a series given as one enhanced (multi-frame) MR file (``--dce-early FILE``), read as a volume by
  ``volume_io.read_volume``.
"""

import json
import shutil
from pathlib import Path

import pytest

from DCEDiffLib.data_source import PHANTOM_MARK, dicom_result_mark
from DCEDiffLib.dicom_study import scan_study
from DCEDiffLib.errors import InputError
from DCEDiffLib.input_role_check import role_mismatch_warnings
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.preprocess import read_inputs
from DCEDiffLib.study_roles import parse_series_overrides, pick_roles
from dicom_slice_io import SLICER_EXPORT_TAGS, write_retagged_series
from test_study_encodings import write_enhanced_by_hand
from phantom_frames import fewer_frames

CASE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"
# T2W, ADC, PD and the DCE (one series with temporal positions); no VIBE: the T1-pre is the DCE's pre-arrival frame
FEW = ("localizer", "t2_sag", "t2_cor", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb", "vibe", "t1_post")
MARKS = {
    "as Slicer exports it": SLICER_EXPORT_TAGS,
    # renamed in the export dialog or on PACS: the Manufacturer still says it ("(DCEDiff)" in a description made it
    # a "diffusion series" by name, by chance never a DCE or T1-pre candidate; without it the series was both)
    "Manufacturer only": dict(SLICER_EXPORT_TAGS, **{"0008|103e": "early DCE"}),
    # the description alone, in lower case, beside the phantom's Manufacturer
    "SeriesDescription only": {"0008|103e": "synthetic early dce", "0020|0011": "301"},
}


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    """A phantom study with 5 DCE frames (fewer files), and what a reader should pick."""
    case = generated_case(3)
    case = fewer_frames(case)
    root = tmp_path_factory.mktemp("exam") / "PHANTOM-3"
    return root, write_phantom_study(case, root, dce_layout="temporal", omit=FEW)


def series_folder(root: Path, number: int) -> Path:
    (folder,) = [p for p in root.iterdir() if p.name.split(".", 1)[0] == str(number)]
    return folder


def with_exported_dce(exam, target: Path, tags, keep_acquired: bool = True) -> Path:
    """A copy of the exam plus a copy of its DCE series tagged ``tags`` (#301); ``keep_acquired=False``: without
    the acquired DCE series (the study as it came back holds only the exported one)."""
    root, expected = exam
    shutil.copytree(root, target)
    dce = series_folder(target, expected["dce_numbers"][0])
    write_retagged_series(dce.iterdir(), target / "301.000000-exported", tags)
    if not keep_acquired:
        shutil.rmtree(dce)
    return target


def summary(result):
    """Role → (series number, frame index), for comparing the picks of two studies."""
    return {role: (pick.series.number, pick.frame_index) for role, pick in result.picks.items()}


@pytest.mark.parametrize("marks", list(MARKS), ids=list(MARKS))
def test_a_series_marked_as_a_dcediff_result_beside_the_acquired_dce_is_skipped_and_the_picks_are_unchanged(
        exam, tmp_path, marks):
    root = with_exported_dce(exam, tmp_path / "exam", MARKS[marks])
    study = scan_study(root)
    assert 301 in [s.number for s in study.series]
    result = pick_roles(study)
    assert summary(result) == summary(pick_roles(scan_study(exam[0])))
    every = [pick.series.number for pick in result.picks.values()] + \
        [s.number for pick in result.picks.values() for s, _ in pick.lost] + [s.number for s in result.dce.series]
    assert 301 not in every  # before (unless named "(DCEDiff)"): a losing DCE candidate of dce_early/dce_late
    ((series, why),) = result.skipped_series
    assert series.number == 301 and "synthetic DCEDiff result" in why
    assert any(line.startswith("skipped   #301 ") and "never picked for any role" in line for line in result.lines())
    record = json.loads(json.dumps(result.to_dict()))
    assert [s["series_number"] for s in record["skipped_series"]] == [301]
    assert record["study"]["series_found"] == len(study.series)


@pytest.mark.parametrize("marks", list(MARKS), ids=list(MARKS))
def test_a_series_marked_as_a_dcediff_result_is_never_the_acquired_dce_nor_the_t1pre(exam, tmp_path, marks):
    """The study's only DCE is the exported one: before, it gave the acquired early/late frames (a synthesis scored
    against itself) and the T1-pre (its pre-arrival frame); now the study has no DCE and no T1-pre, and says why."""
    root = with_exported_dce(exam, tmp_path / "exam", MARKS[marks], keep_acquired=False)
    result = pick_roles(scan_study(root), require=False)
    assert not {"dce_early", "dce_late", "t1pre"} & set(result.picks) and result.dce is None
    assert result.missing == ["t1pre"] and [s.number for s, _ in result.skipped_series] == [301]
    assert result.picks["t2w"].series.number == exam[1]["t2w"]
    with pytest.raises(InputError, match=r"no T1-pre found .*; skipped #301 '.*': a synthetic DCEDiff result"):
        pick_roles(scan_study(root))


@pytest.mark.parametrize("override", ["dce=301", "t1pre=301"])
def test_naming_a_dcediff_result_with_series_is_refused(exam, tmp_path, override):
    root = with_exported_dce(exam, tmp_path / "exam", SLICER_EXPORT_TAGS)
    with pytest.raises(InputError, match=rf"--series {override}: #301 'SYNTHETIC \[OOD-WARNING\] early DCE "
                                         r"\(DCEDiff\)' is a synthetic DCEDiff result .*expected an acquired series"):
        pick_roles(scan_study(root), parse_series_overrides([override]))


def test_the_phantom_manufacturer_is_no_result_mark(exam):
    """The phantom's files say "DCEDiff phantom (synthetic)" as Manufacturer: an input by design, never skipped."""
    assert dicom_result_mark("t2_tse_tra", PHANTOM_MARK) == ""
    assert dicom_result_mark("t2_tse_tra", "dcediff (SYNTHETIC image, not acquired)").startswith("Manufacturer")
    assert dicom_result_mark("Synthetic early DCE", "SIEMENS").startswith("SeriesDescription")
    assert dicom_result_mark("t1_twist_tra_dyn synthetic", "SIEMENS") == ""  # only where the description starts so
    assert pick_roles(scan_study(exam[0])).skipped_series == []


def one_frame(exam, target: Path, tags) -> Path:
    """DCE frame 2 of the exam as a series folder of its own (one volume), tagged ``tags``."""
    root, expected = exam
    (series,) = [s for s in scan_study(root).series if s.number == expected["dce_numbers"][0]]
    return write_retagged_series([f.path for f in series.volumes()[2].files], target, tags)


def case_inputs(**replace):
    inputs = {key: str(CASE / f"{key}.nii.gz") for key in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    inputs.update(replace)
    return inputs


@pytest.mark.parametrize("role", ["dce_early", "t1pre"])
@pytest.mark.parametrize("marks", list(MARKS), ids=list(MARKS))
def test_a_dicom_folder_marked_as_a_dcediff_result_given_as_an_input_is_refused_naming_it(exam, tmp_path, role,
                                                                                           marks):
    folder = one_frame(exam, tmp_path / "exported", MARKS[marks])
    with pytest.raises(InputError, match=rf"\({role}\): the DICOM series in .*exported \(#301 .*\) is a DCEDiff "
                                         r"result \(synthetic: its (SeriesDescription|Manufacturer) .*expected an "
                                         "acquired series"):
        read_inputs(case_inputs(**{role: str(folder)}))
    # no guess about its kind beside the refusal (before: "(DCEDiff)" in the description read as "a diffusion series")
    assert role_mismatch_warnings({role: str(folder)}) == []


def test_the_same_dicom_folder_without_the_marks_reads(exam, tmp_path):
    folder = one_frame(exam, tmp_path / "acquired", {})
    images = read_inputs(case_inputs(dce_early=str(folder)))
    assert images["dce_early"].GetSize()[2] == len(list(folder.iterdir()))


@pytest.mark.parametrize("marks", list(MARKS), ids=list(MARKS))
def test_an_enhanced_dicom_file_marked_as_a_dcediff_result_given_as_an_input_is_refused_naming_it(exam, tmp_path,
                                                                                                marks):
    """One enhanced MR file (the frame's slices in one file, written byte by byte) is read as a volume by the file
    reader, not the folder reader: its marks were not checked (before: read and scored as the acquired DCE)."""
    folder = one_frame(exam, tmp_path / "exported", MARKS[marks])
    write_enhanced_by_hand(sorted(folder.iterdir()), tmp_path / "exported.dcm")
    with pytest.raises(InputError, match=r"\(dce_early\): the DICOM file .*exported\.dcm \(#301 .*\) is a DCEDiff "
                                         r"result \(synthetic: its (SeriesDescription|Manufacturer) .*expected an "
                                         "acquired series"):
        read_inputs(case_inputs(dce_early=str(tmp_path / "exported.dcm")))


def test_the_same_enhanced_dicom_file_without_the_marks_reads(exam, tmp_path):
    folder = one_frame(exam, tmp_path / "acquired", {})
    write_enhanced_by_hand(sorted(folder.iterdir()), tmp_path / "acquired.dcm")
    images = read_inputs(case_inputs(dce_early=str(tmp_path / "acquired.dcm")))
    assert images["dce_early"].GetSize()[2] == len(list(folder.iterdir()))
