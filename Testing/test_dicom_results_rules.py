"""``dcediff synthesize --dicom`` (DCEDiffLib/dicom_results.py, DCEDiffLib/dicom_slices.py) at its documented rules,
found by mutation audit round 20: each test fails on one plausible bug that Testing/test_dicom_results.py let pass.

Real parts only: small DICOM T2W series written here with the shared slice writer (real files on disk, read back
with SimpleITK/GDCM), the engine's own writer and readers. One stand-in: ``GdcmFailureStandIn`` replaces the slice
writer with one raising the ``RuntimeError`` SimpleITK raises when GDCM cannot write a file (a real one is not
reachable as root on every file system), to check how such a failure is reported.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import DCEDiffLib.dicom_results as dicom_results
from DCEDiffLib.dicom_results import (dicom_target, new_uid, rescale, series_description,
                                      series_numbers, t2w_dicom_files, write_dicom_results)
from DCEDiffLib.dicom_slices import MR_IMAGE_STORAGE, slice_geometry_tags, write_slice
from DCEDiffLib.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_slice_io import header, read_series, tag  # noqa: E402

STUDY_UID, FRAME_UID = "1.2.826.0.1.3680043.2.1125.7.1", "1.2.826.0.1.3680043.2.1125.7.2"
# the Patient and General Study modules' tags (DICOM PS3.3 C.7.1.1, C.7.2.1), the frame of reference and the
# position: "patient, study and frame-of-reference tags are copied from the T2W's DICOM header"
STUDY = {"0010|0010": "DOE^JANE", "0010|0020": "P-42", "0010|0030": "19600101", "0010|0040": "F",
         "0020|000d": STUDY_UID, "0008|0020": "20240102", "0008|0030": "101500", "0020|0010": "S77",
         "0008|0050": "ACC-0815", "0008|0090": "WHO^REFERS", "0008|1030": "MR PROSTATE", "0020|0052": FRAME_UID,
         "0018|5100": "FFS"}


def t2w_series(folder: Path, number: int = 5, study=None, size=(6, 5, 3), spacing=(0.5, 0.7, 3.0)) -> list:
    """A small T2W series (one file per slice, MR Image Storage) in ``folder``; its files, slice order."""
    array = np.arange(size[0] * size[1] * size[2], dtype=np.uint16).reshape(size[::-1])
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 20.0, -30.0))
    tags = dict(STUDY if study is None else study)
    tags.update({"0008|0016": MR_IMAGE_STORAGE, "0008|0060": "MR", "0020|000e": new_uid(),
                 "0020|0011": str(number), "0008|103e": "t2_tse_tra"})
    folder.mkdir(parents=True)
    paths = []
    for k in range(size[2]):
        path = folder / f"{k:03d}.dcm"
        write_slice(image, k, dict(tags, **{"0020|0013": str(k + 1), "0008|0018": new_uid()}), path)
        paths.append(str(path))
    return paths


def on_grid(values: np.ndarray, spacing=(0.5, 0.7, 3.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 20.0, -30.0))
    return image


# ------------------------------------------------------------------------------------------- t2w_dicom_files
def test_a_t2w_that_does_not_exist_is_named_as_missing(tmp_path):
    """A path that is not there is said to be missing, not called "no DICOM series" (a typo, not a NIfTI)."""
    with pytest.raises(InputError, match=r"--dicom: --t2w .*nothere does not exist; expected a DICOM T2W"):
        t2w_dicom_files(tmp_path / "nothere")


def test_a_t2w_folder_holding_two_series_is_refused(tmp_path):
    """"a series folder": a folder with two DICOM series is no one T2W; the count is named."""
    t2w_series(tmp_path / "mixed", number=5)
    for path in t2w_series(tmp_path / "b", number=6):
        Path(path).rename(tmp_path / "mixed" / f"b_{Path(path).name}")
    with pytest.raises(InputError, match="holds 2 DICOM series"):
        t2w_dicom_files(tmp_path / "mixed", "--t2w")


def test_the_t2ws_series_number_is_returned_for_a_folder_and_for_one_file(tmp_path):
    """"The files of the DICOM T2W ... and its series number(s)": the T2W's own number, so that the new series
    never take it."""
    paths = t2w_series(tmp_path / "t2w", number=9001)
    files, numbers = t2w_dicom_files(tmp_path / "t2w")
    assert sorted(files) == sorted(paths) and numbers == [9001]
    files, numbers = t2w_dicom_files(paths[0])
    assert files == [paths[0]] and numbers == [9001]


# ------------------------------------------------------------------------------------------------ dicom_target
def test_the_first_readable_header_is_taken_whatever_follows(tmp_path):
    """A file among the T2W's that is no DICOM image (a stray file) does not hide the readable headers before it."""
    paths = t2w_series(tmp_path / "t2w")
    stray = tmp_path / "t2w" / "notes.txt"
    stray.write_text("not DICOM", encoding="utf-8")
    target = dicom_target([*paths, str(stray)])
    assert target.t2w_file == paths[0] and target.study["0020|000d"] == STUDY_UID


def test_a_t2w_without_a_study_uid_is_refused(tmp_path):
    """"there is no study to join" without a StudyInstanceUID: refused, naming the file. GDCM's writer always
    writes one, so the files' value is blanked afterwards (same length: the file stays valid)."""
    paths = t2w_series(tmp_path / "t2w")
    for path in paths:
        data = Path(path).read_bytes()
        Path(path).write_bytes(data.replace(STUDY_UID.encode(), b" " * len(STUDY_UID)))
    assert tag(header(paths[0]), "0020|000e") and not tag(header(paths[0]), "0020|000d")
    with pytest.raises(InputError, match="has no StudyInstanceUID: there is no study to join"):
        dicom_target(paths)


def test_a_t2w_without_a_frame_of_reference_gives_both_series_one_new_one(tmp_path):
    """"both series must share one frame of reference": where the T2W has none, one new UID is written into both
    series' files (else GDCM would make one per file)."""
    paths = t2w_series(tmp_path / "t2w", study={k: v for k, v in STUDY.items() if k != "0020|0052"})
    target = dicom_target(paths)
    assert target.study["0020|0052"].startswith("2.25.")
    images = {short: on_grid(np.full((3, 5, 6), 10.0)) for short in ("early", "late")}
    write_dicom_results(images, tmp_path / "out", target, "SYNTHETIC test")
    frames = {tag(header(p), "0020|0052") for p in (tmp_path / "out").rglob("*.dcm")}
    assert frames == {target.study["0020|0052"]}


def test_every_study_tag_of_the_t2w_is_copied(tmp_path):
    """The synthetic series join the T2W's patient and study (PACS matches them on these tags, the accession
    number among them) and its frame of reference."""
    target = dicom_target(t2w_series(tmp_path / "t2w"))
    write_dicom_results({"late": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, "SYNTHETIC test")
    written = header(next((tmp_path / "out").rglob("*.dcm")))
    assert {key: tag(written, key) for key in STUDY} == STUDY


# ------------------------------------------------------------------------------ series numbers and description
def test_a_study_using_9002_alone_gets_numbers_after_its_highest():
    """"9001 and 9002, or (when the study uses either) the two numbers after its highest"."""
    assert series_numbers([3, 9002]) == (9003, 9004)
    assert series_numbers([9001]) == (9002, 9003)


def test_the_description_is_at_most_64_characters():
    """SeriesDescription is LO: at most 64 characters, whatever the flags."""
    text = series_description("early", ["OOD-WARNING", "NO-PD", "X" * 60])
    assert len(text) == 64 and text.startswith("SYNTHETIC OOD-WARNING NO-PD ")


# ----------------------------------------------------------------------------------------------------- rescale
@pytest.mark.parametrize("values", [[0.0, 1.0], [0.0, 3.0], [0.0, 7.0], [-1.0, 0.3], [0.0, 123.456], [0.0, 1e-3]])
def test_the_slope_fits_the_largest_magnitude(values):
    """"the smallest slope (written with 8 digits, rounded up) that fits the largest magnitude": the largest
    magnitude divided by the written slope is within the stored type's range (no clipping)."""
    stored, slope, signed = rescale(np.array(values))
    high = 32767 if signed else 65535
    assert max(abs(v) for v in values) / float(slope) <= high
    assert float(slope) <= max(abs(v) for v in values) / high * (1 + 2e-6)   # and it is the smallest such


# ----------------------------------------------------------------------------------------- write_dicom_results
def test_negative_values_are_written_signed_and_read_back_negative(tmp_path):
    """"int16 when any value is negative": PixelRepresentation 1, so that a reader gets the negatives back."""
    target = dicom_target(t2w_series(tmp_path / "t2w"))
    values = np.linspace(-50.0, 25.0, 3 * 5 * 6).reshape(3, 5, 6)
    write_dicom_results({"early": on_grid(values)}, tmp_path / "out", target, "SYNTHETIC test")
    folder = tmp_path / "out" / "dicom" / "synthetic_early"
    first = header(sorted(folder.iterdir())[0])
    assert tag(first, "0028|0103") == "1"
    back = sitk.GetArrayFromImage(read_series(folder))
    assert np.max(np.abs(back - values)) <= float(tag(first, "0028|1053")) / 2 + 1e-9


def test_the_provenance_line_is_cut_to_its_value_representations(tmp_path):
    """DerivationDescription is ST (1024 characters), ImageComments LT (10240): a longer line is cut to each."""
    target = dicom_target(t2w_series(tmp_path / "t2w"))
    label = "SYNTHETIC " + "x" * 3000
    write_dicom_results({"early": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, label)
    written = header(next((tmp_path / "out").rglob("*.dcm")))
    assert tag(written, "0008|2111") == label[:1024] and tag(written, "0020|4000") == label


def test_a_failure_inside_gdcm_is_an_input_error_naming_the_file(tmp_path, monkeypatch):
    """"A file that cannot be written raises InputError": also SimpleITK's RuntimeError (GDCM could not write),
    not a traceback (stand-in: module docstring)."""
    target = dicom_target(t2w_series(tmp_path / "t2w"))

    def gdcm_failure_stand_in(*args, **kwargs):
        raise RuntimeError("Exception thrown in SimpleITK ImageFileWriter_Execute: ... \nCould not write file")

    monkeypatch.setattr(dicom_results, "write_slice", gdcm_failure_stand_in)
    with pytest.raises(InputError, match=r"IM0001\.dcm could not be written \(Could not write file\)"):
        write_dicom_results({"early": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, "SYNTHETIC")


def test_a_file_written_as_another_sop_class_is_refused(tmp_path):
    """_check_storage_class: a file of another SOP class than MR Image Storage (here CT) is refused, naming both."""
    paths = t2w_series(tmp_path / "t2w")
    image = sitk.ReadImage(paths[0])
    for key in ("0008|0016", "0008|0060"):
        image.SetMetaData(key, {"0008|0016": "1.2.840.10008.5.1.4.1.1.2", "0008|0060": "CT"}[key])
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(tmp_path / "ct.dcm"))
    writer.Execute(image)
    assert tag(header(tmp_path / "ct.dcm"), "0008|0016") == "1.2.840.10008.5.1.4.1.1.2"
    with pytest.raises(InputError, match=r"ct\.dcm was written as SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.2, "
                                         r"expected MR Image Storage"):
        dicom_results._check_storage_class(tmp_path / "ct.dcm")
    dicom_results._check_storage_class(Path(paths[0]))   # the control: an MR image passes


def test_a_series_gdcm_wrote_as_another_sop_class_is_refused(tmp_path, monkeypatch):
    """write_dicom_results checks what GDCM wrote (it turns a rescaled MR into Enhanced MR Image Storage unless its
    reader ran first): a first file of another class stops the write. Stand-in: the slice writer asked for CT."""
    target = dicom_target(t2w_series(tmp_path / "t2w"))
    real = dicom_results.write_slice

    def another_class_stand_in(image, k, tags, path, *args, **kwargs):
        real(image, k, dict(tags, **{"0008|0016": "1.2.840.10008.5.1.4.1.1.2"}), path, *args, **kwargs)

    monkeypatch.setattr(dicom_results, "write_slice", another_class_stand_in)
    with pytest.raises(InputError, match=r"IM0001\.dcm was written as SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.2"):
        write_dicom_results({"early": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, "SYNTHETIC")


def test_no_acquisition_is_claimed_and_a_long_model_name_is_cut(tmp_path):
    """ScanningSequence RM ("research mode": no acquisition made the image), SequenceVariant NONE; the
    ManufacturerModelName 'DCEDiff model <name>' is LO: at most 64 characters."""
    target = dicom_target(t2w_series(tmp_path / "t2w"))
    write_dicom_results({"early": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, "SYNTHETIC",
                        provenance={"model": "m" * 100})
    written = header(next((tmp_path / "out").rglob("*.dcm")))
    assert tag(written, "0018|0020") == "RM" and tag(written, "0018|0021") == "NONE"
    assert tag(written, "0008|1090") == ("DCEDiff model " + "m" * 100)[:64]


def retag(paths, tags) -> None:
    """Rewrite the T2W files ``paths`` with ``tags`` set (UIDs and everything else kept): a scanner's header."""
    from dicom_slice_io import read_slice_with_tags

    for path in paths:
        image = read_slice_with_tags(Path(path))
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(path))
        writer.Execute(image)


def test_a_t2w_with_a_gap_between_its_slices_keeps_its_slice_thickness(tmp_path):
    """The series lie on the T2W's slices, so they say its SliceThickness: a T2W of 2.5 mm slices 3 mm apart (a
    sagittal ProstateX T2W has 3 mm slices 3.6 mm apart) gave files saying 3 mm thick. SpacingBetweenSlices stays
    the stack's; BodyPartExamined and PositionReferenceIndicator are the T2W's too."""
    paths = t2w_series(tmp_path / "t2w")
    retag(paths, {"0018|0050": "2.5", "0018|0015": "PROSTATE", "0020|1040": "IC"})
    assert tag(header(paths[0]), "0018|0050") == "2.5"   # the T2W as a scanner wrote it
    target = dicom_target(paths)
    write_dicom_results({"early": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, "SYNTHETIC")
    for path in sorted((tmp_path / "out" / "dicom" / "synthetic_early").iterdir()):
        written = header(path)
        assert tag(written, "0018|0050") == "2.5" and float(tag(written, "0018|0088")) == 3.0
        assert tag(written, "0018|0015") == "PROSTATE" and tag(written, "0020|1040") == "IC"


def test_the_files_hold_what_the_mr_image_iod_requires(tmp_path):
    """ImageType has the value 3 an MR image needs (OTHER), and the Type 2 attributes no acquisition filled are
    present, empty (ScanOptions, MRAcquisitionType, RepetitionTime, EchoTime, EchoTrainLength,
    PositionReferenceIndicator): dciodvfy called every file of a ProstateX run non-conformant without them."""
    target = dicom_target(t2w_series(tmp_path / "t2w"))
    write_dicom_results({"early": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, "SYNTHETIC")
    written = header(next((tmp_path / "out").rglob("*.dcm")))
    assert tag(written, "0008|0008").split("\\") == ["DERIVED", "SECONDARY", "OTHER"]
    for key in ("0018|0022", "0018|0023", "0018|0080", "0018|0081", "0018|0091", "0020|1040"):
        assert written.HasMetaDataKey(key) and tag(written, key) == "", key


def test_instance_numbers_count_the_slices_from_one(tmp_path):
    """InstanceNumber (IS) numbers the files of a series 1, 2, 3 ... in slice order, as the file names IM0001..."""
    target = dicom_target(t2w_series(tmp_path / "t2w"))
    write_dicom_results({"early": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, "SYNTHETIC")
    files = sorted((tmp_path / "out" / "dicom" / "synthetic_early").iterdir())
    assert [tag(header(p), "0020|0013") for p in files] == ["1", "2", "3"]
    assert [p.name for p in files] == ["IM0001.dcm", "IM0002.dcm", "IM0003.dcm"]


def test_instance_numbers_follow_the_t2ws_order_when_it_counts_against_its_grid(tmp_path):
    """A T2W numbered head to feet (ProstateX: InstanceNumber 1 at the top, its grid's last slice) gets synthetic
    series numbered the same way, so the file of a number lies where the T2W's file of that number lies: they were
    numbered 1..N along the grid, the reverse of the T2W's order in a viewer that lists by number."""
    paths = t2w_series(tmp_path / "t2w")
    for k, path in enumerate(paths):   # slice k (z = -30 + 3k) becomes InstanceNumber 3 - k
        retag([path], {"0020|0013": str(len(paths) - k)})
    t2w_by_number = {tag(header(p), "0020|0013"): tag(header(p), "0020|0032") for p in paths}
    target = dicom_target(paths)
    write_dicom_results({"early": on_grid(np.full((3, 5, 6), 10.0))}, tmp_path / "out", target, "SYNTHETIC")
    files = sorted((tmp_path / "out" / "dicom" / "synthetic_early").iterdir())
    written_by_number = {tag(header(p), "0020|0013"): tag(header(p), "0020|0032") for p in files}
    assert sorted(written_by_number) == ["1", "2", "3"]
    for number, position in written_by_number.items():
        assert np.allclose([float(v) for v in position.split("\\")],
                           [float(v) for v in t2w_by_number[number].split("\\")], atol=1e-3), number


def test_slice_location_is_the_position_along_the_slice_normal():
    """SliceLocation: the slice's position projected on the normal of its plane (the third direction column), so a
    reader that sorts on it stacks an oblique series in the right order."""
    image = sitk.Image(4, 4, 3, sitk.sitkUInt16)
    angle = np.deg2rad(20.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    image.SetDirection(rotation.ravel().tolist())
    image.SetSpacing((1.0, 1.0, 2.5))
    image.SetOrigin((3.0, -4.0, 5.0))
    for k in range(3):
        tags = slice_geometry_tags(image, k)
        position = np.array(image.TransformIndexToPhysicalPoint((0, 0, k)))
        assert float(tags["0020|1041"]) == pytest.approx(position @ rotation[:, 2], abs=1e-6)
        assert float(tags["0020|1041"]) - float(slice_geometry_tags(image, 0)["0020|1041"]) == pytest.approx(2.5 * k)


# ------------------------------------------------------------------------------- the command: --study's numbers
def test_a_study_already_holding_9001_gets_numbers_after_its_highest(tmp_path):
    """docs/preprocessing.md: 'series numbers 9001/9002, or the two after the study's highest when it uses either':
    with --study, every series of the study counts, not the T2W's alone (here a localizer numbered 9001, e.g. a
    series sent back from PACS)."""
    import argparse

    from DCEDiffLib.commands.synthesize import _dicom_target
    from DCEDiffLib.dicom_study import scan_study
    from shared_phantom_case import generated_case
    from DCEDiffLib.phantom.study_export import PARTS, write_phantom_study
    from DCEDiffLib.study_roles import pick_roles
    from dicom_slice_io import write_retagged_series

    root = tmp_path / "exam"
    keep = ("localizer", "t2_tra", "adc", "pd_ref", "vibe")
    expected = write_phantom_study(generated_case(3), root, omit=[p for p in PARTS if p not in keep])
    localizer = next(s for s in scan_study(root).series if s.number not in expected.values())
    write_retagged_series([f.path for f in localizer.files], root / "from_pacs", {"0020|0011": "9001"})
    picks = pick_roles(scan_study(root))
    target = _dicom_target(argparse.Namespace(t2w=None), None, picks)
    highest = max(s.number for s in picks.study.series if s.number is not None)
    assert highest == 9001
    assert [info["series_number"] for info in target.series.values()] == [9002, 9003]


def test_a_decimal_string_that_rounds_to_zero_has_no_sign():
    """ds: a DICOM decimal string of at most ``digits`` decimals; a tiny negative value (a position a rounding
    error off 0) rounds to zero and is written "0", not "-0"."""
    from DCEDiffLib.dicom_slices import ds

    assert ds(-4e-7) == "0" and ds(4e-7) == "0" and ds(-0.0) == "0"
    assert ds(-1.25) == "-1.25" and ds(2.0) == "2"   # the control: a sign and trailing zeros as the rule says
