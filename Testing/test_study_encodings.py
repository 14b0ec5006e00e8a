"""How a DICOM study's series are stored, through ``--study`` (DCEDiffLib/dicom_study.py, study_roles.py,
dce_series.py): found by a user-perspective hunt, rebuilt on a phantom study written as real DICOM files.

- an enhanced (multi-frame) MR file holding one stack (T2W, ADC, PD, T1-pre) is read with its geometry; one whose
  frames repeat positions (a DCE in one file) is not one volume, and a dynamic series stored so is named;
- an enhanced VIBE has its flip angle, TR and TE from its functional groups (shared or per frame), so it is
  picked as the PD or the T1-pre by flip angle;
- a dynamic series whose frames carry no time tags and no instance numbers is named as such (not "no DCE");
- a transfer syntax GDCM cannot decode is named (UID and name) with what to do, and OpenJPEG's complaints stay off
  the console; a series in a syntax GDCM cannot even parse is refused instead of silently replaced.
"""

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.dicom_part10 import frame_positions
from DCEDiffLib.dicom_study import DicomFile, SeriesInfo, Study, _check_frame_stack, read_study_volume, \
    scan_study
from DCEDiffLib.errors import InputError
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.series_kinds import is_single_volume, unusable_axial_t2w
from DCEDiffLib.study_roles import pick_roles
from dicom_slice_io import read_slice_with_tags

OMIT = ("localizer", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb", "dce", "t1_post")
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "exam"
    expected = write_phantom_study(generated_case(3), root, omit=OMIT)
    return root, expected


def series_folder(root: Path, number: int) -> Path:
    (folder,) = [p for p in root.iterdir() if p.name.split(".", 1)[0] == str(number)]
    return folder


def series(files, description="t2_tse_tra", number=4, image_type=("ORIGINAL", "PRIMARY"), sequence="*tse2d1_25"):
    return SeriesInfo("2.25.4", number, description, description, sequence, image_type, "MR", "1.2", "P", "20000101",
                      160.0, 5660.0, 104.0, "2D", 64, 64, (3.0, 3.0), files, orientation="axial")


def enhanced(positions, path="/none/enhanced.dcm"):
    return DicomFile(path, None, AXIAL, None, None, None, None, None, 1, frames=len(positions),
                     frame_positions=tuple(positions))


# ----------------------------------------------------------------------------------------------- enhanced MR

def test_an_enhanced_file_of_one_stack_is_one_volume_but_one_of_repeated_positions_is_not():
    """One enhanced file whose frames lie at distinct positions is a single volume (picked by the rules, read by GDCM
    with its geometry); one whose frames repeat positions (time points in one file) stays unusable, said why. Before:
    every enhanced file was one 'position', taken for a localizer: an enhanced ADC was 'no ADC found'."""
    stack = series([enhanced([(0.0, 0.0, 3.0 * k) for k in range(19)])])
    assert stack.one_file_stack and is_single_volume(stack) and stack.num_positions == 19
    assert unusable_axial_t2w(stack) == ""
    four_d = series([enhanced([(0.0, 0.0, 3.0 * k) for _ in range(2) for k in range(19)])])
    assert not four_d.one_file_stack and not is_single_volume(four_d)
    assert "not one stack of distinct slice positions" in unusable_axial_t2w(four_d)


def test_an_enhanced_file_whose_frames_are_no_regular_stack_is_refused():
    """GDCM places an enhanced file by its first frame and one spacing: frames unevenly spaced (or more frames than
    GDCM's slices) would be read with a wrong geometry, without a word; refused, the file named."""
    image = sitk.Image([8, 8, 4], sitk.sitkInt16)
    image.SetSpacing((1.0, 1.0, 3.0))
    _check_frame_stack(image, enhanced([(0.0, 0.0, z) for z in (0.0, 3.0, 6.0, 9.0)]), "ADC")   # a regular stack
    with pytest.raises(InputError, match=r"ADC: the enhanced \(multi-frame\) file /none/enhanced.dcm is not one "
                                         r"regular stack of 4 frames"):
        _check_frame_stack(image, enhanced([(0.0, 0.0, z) for z in (0.0, 3.0, 9.0, 12.0)]), "ADC")


def test_a_dynamic_series_in_enhanced_files_is_named_not_taken_for_no_dce():
    """A DCE stored as one enhanced file per time point: not split into frames by --study, and said so (before:
    'no acquired DCE series in the study'; with no VIBE, 'DCE: none' beside 'no T1-pre found')."""
    files = [enhanced([(0.0, 0.0, 3.0 * k) for k in range(5)], f"/none/t{t}.dcm") for t in range(6)]
    dce = series(files, "t1_twist_tra_dyn", 10, sequence="*fldyn3d1")
    picks = pick_roles(Study("/none", "1.2", "P", "20000101", [dce]), require=False)
    assert any("the dynamic series #10 't1_twist_tra_dyn' is stored as 6 enhanced (multi-frame) MR file(s)" in n
               and "--dce-early/--dce-late files" in n for n in picks.notes)
    assert "DCE: none (the dynamic series #10" in picks.problem


def test_an_enhanced_t2w_and_adc_are_read_like_their_classic_series(study, tmp_path):
    """Real enhanced MR files (built with pydicom; CI without it covers the rules above): picked and read with the
    classic series' geometry, also with the frames stored in descending order."""
    pydicom = pytest.importorskip("pydicom")
    root, expected = study
    classic = pick_roles(scan_study(root, warn=lambda m: None))
    before = {r: read_study_volume(classic.picks[r].volume, r) for r in ("t2w", "adc")}
    exam = tmp_path / "exam"
    shutil.copytree(root, exam)
    for role, reverse in (("t2w", False), ("adc", True)):
        folder = series_folder(exam, expected[role])
        write_enhanced(pydicom, sorted(folder.iterdir()), folder.parent / f"{role}-enhanced.dcm", reverse)
        shutil.rmtree(folder)
    picks = pick_roles(scan_study(exam, warn=lambda m: None))
    for role in ("t2w", "adc"):
        assert picks.picks[role].series.number == expected[role] and picks.picks[role].series.multi_frame
        image = read_study_volume(picks.picks[role].volume, role)
        resampled = sitk.Resample(image, before[role], sitk.Transform(), sitk.sitkNearestNeighbor, -1.0)
        assert np.array_equal(sitk.GetArrayFromImage(resampled), sitk.GetArrayFromImage(before[role]))
    assert len(frame_positions(exam / "adc-enhanced.dcm")) == before["adc"].GetSize()[2]


def write_enhanced(pydicom, paths, target: Path, reverse: bool) -> None:
    """The classic slices ``paths`` as one Enhanced MR Image Storage file (per-frame positions, shared orientation
    and pixel measures), frames in ascending or descending position."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    slices = sorted((pydicom.dcmread(p) for p in paths), key=lambda d: float(d.ImagePositionPatient[2]),
                    reverse=reverse)
    first = slices[0]
    ds = Dataset()
    for key in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "Modality", "SeriesDescription",
                "ProtocolName", "SeriesNumber", "SeriesTime", "FrameOfReferenceUID", "Manufacturer", "ImageType",
                "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                "SamplesPerPixel", "PhotometricInterpretation", "RescaleIntercept", "RescaleSlope"):
        if key in first:
            setattr(ds, key, getattr(first, key))
    ds.SeriesInstanceUID, ds.SOPInstanceUID = first.SeriesInstanceUID, generate_uid()
    ds.SOPClassUID, ds.InstanceNumber, ds.NumberOfFrames = "1.2.840.10008.5.1.4.1.1.4.1", 1, len(slices)
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    measures.PixelSpacing, measures.SliceThickness = first.PixelSpacing, first.SliceThickness
    shared = Dataset()
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = Sequence([orientation]), Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for d in slices:
        position, frame = Dataset(), Dataset()
        position.ImagePositionPatient = d.ImagePositionPatient
        frame.PlanePositionSequence = Sequence([position])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.stack([d.pixel_array for d in slices]).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(target, enforce_file_format=True)


def test_an_enhanced_vibe_has_its_flip_angle_and_times_from_its_functional_groups(study, tmp_path):
    """An enhanced MR file keeps flip angle and TR in its MR Timing and Related Parameters Sequence (0018,9112) and
    the echo time in its MR Echo Sequence (0018,9114), inside the functional groups (shared, or each frame's), none
    at the top level that GDCM reads. VIBE series stored so are the PD (lowest flip) and the T1-pre (highest flip),
    as their classic series are (before: no flip angle, no VIBE: 'T1-pre: none'). Built without pydicom."""
    root, expected = study
    exam = tmp_path / "exam"
    shutil.copytree(root, exam)
    by_name = {s.description: s.number for s in scan_study(root, warn=lambda m: None).series}
    vibe = {flip: by_name[f"fl3d_vibe_pre_flip_{flip}deg_tra"] for flip in (5, 10, 20)}
    shutil.rmtree(series_folder(exam, expected["pd"]))        # no PD reference scan: the PD is chosen by flip angle
    shutil.rmtree(series_folder(exam, by_name["fl3d_vibe_pre_flip_2deg_tra_PD"]))
    for flip, number in vibe.items():
        folder = series_folder(exam, number)
        write_enhanced_by_hand(sorted(folder.iterdir()), exam / f"vibe{flip}-enhanced.dcm", per_frame=flip == 10)
        shutil.rmtree(folder)
    study_read = scan_study(exam, warn=lambda m: None)
    enhanced_vibes = {s.number: s for s in study_read.series if s.multi_frame}
    assert sorted(enhanced_vibes) == sorted(vibe.values())
    for flip, number in vibe.items():   # the phantom's VIBE protocol: TR 5.6 ms, TE 1.6 ms
        series_read = enhanced_vibes[number]
        assert (series_read.flip_angle, series_read.repetition_time, series_read.echo_time) == (flip, 5.6, 1.6)
    picks = pick_roles(study_read, require=False)
    assert picks.picks["pd"].series.number == vibe[5] and picks.picks["t1pre"].series.number == vibe[20]
    image = read_study_volume(picks.picks["t1pre"].volume, "T1-pre")
    assert image.GetSize()[2] == len(frame_positions(exam / "vibe20-enhanced.dcm"))


def _element(group: int, number: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian data element (value padded to an even length)."""
    value += (b"\0" if vr in (b"UI", b"OB", b"OW", b"SQ") else b" ") * (len(value) % 2)
    head = struct.pack("<HH", group, number) + vr
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _sequence(group: int, number: int, *items: bytes) -> bytes:
    """A sequence of defined length whose items (of defined length) hold the given encoded elements."""
    return _element(group, number, b"SQ", b"".join(b"\xfe\xff\x00\xe0" + struct.pack("<I", len(i)) + i
                                                    for i in items))


def write_enhanced_by_hand(paths, target: Path, per_frame: bool = False) -> None:
    """The classic slices ``paths`` as one Enhanced MR Image Storage file written byte by byte (explicit VR little
    endian): the top level keeps no flip angle, TR or TE; they go into the MR Timing and Related Parameters and MR
    Echo sequences of the shared functional groups, or of every frame's (``per_frame``). The Manufacturer is kept
    where the slices have one."""
    slices = [read_slice_with_tags(p) for p in paths]
    slices.sort(key=lambda s: float(s.GetMetaData("0020|0032").split("\\")[2]))
    first = slices[0]

    def tag(key: str) -> bytes:
        return first.GetMetaData(key).strip().encode("ascii")

    timing = (_sequence(0x0018, 0x9112, _element(0x0018, 0x0080, b"DS", tag("0018|0080"))
                        + _element(0x0018, 0x1314, b"DS", tag("0018|1314")))
              + _sequence(0x0018, 0x9114, _element(0x0018, 0x9082, b"FD", struct.pack("<d", float(tag("0018|0081"))))))
    shared = (_sequence(0x0020, 0x9116, _element(0x0020, 0x0037, b"DS", tag("0020|0037")))
              + _sequence(0x0028, 0x9110, _element(0x0018, 0x0050, b"DS", tag("0018|0050"))
                          + _element(0x0028, 0x0030, b"DS", tag("0028|0030"))))
    frames = [(timing if per_frame else b"")
              + _sequence(0x0020, 0x9113, _element(0x0020, 0x0032, b"DS", s.GetMetaData("0020|0032").encode()))
              for s in slices]
    storage, instance = b"1.2.840.10008.5.1.4.1.1.4.1", b"2.25.9" + tag("0020|0011")
    meta = (_element(2, 1, b"OB", b"\0\1") + _element(2, 2, b"UI", storage) + _element(2, 3, b"UI", instance)
            + _element(2, 0x10, b"UI", b"1.2.840.10008.1.2.1"))
    meta = _element(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
    top = [(0x0008, 0x0008, b"CS", tag("0008|0008")), (0x0008, 0x0016, b"UI", storage),
           (0x0008, 0x0018, b"UI", instance), (0x0008, 0x0020, b"DA", tag("0008|0020")),
           (0x0008, 0x0031, b"TM", tag("0008|0031")), (0x0008, 0x0060, b"CS", b"MR")]
    top += [(0x0008, 0x0070, b"LO", tag("0008|0070"))] if first.HasMetaDataKey("0008|0070") else []
    top += [(0x0008, 0x103E, b"LO", tag("0008|103e")), (0x0010, 0x0020, b"LO", tag("0010|0020")),
           (0x0018, 0x0023, b"CS", tag("0018|0023")), (0x0020, 0x000D, b"UI", tag("0020|000d")),
           (0x0020, 0x000E, b"UI", tag("0020|000e")), (0x0020, 0x0011, b"IS", tag("0020|0011")),
           (0x0020, 0x0013, b"IS", b"1"), (0x0020, 0x0052, b"UI", tag("0020|0052")),
           (0x0028, 0x0002, b"US", struct.pack("<H", 1)), (0x0028, 0x0004, b"CS", b"MONOCHROME2"),
           (0x0028, 0x0008, b"IS", str(len(slices)).encode()),
           (0x0028, 0x0010, b"US", struct.pack("<H", first.GetHeight())),
           (0x0028, 0x0011, b"US", struct.pack("<H", first.GetWidth()))]
    top += [(0x0028, number, b"US", struct.pack("<H", value))
            for number, value in ((0x0100, 16), (0x0101, 16), (0x0102, 15), (0x0103, 1))]
    data = b"".join(_element(*e) for e in top)
    data += _sequence(0x5200, 0x9229, shared + (b"" if per_frame else timing))
    data += _sequence(0x5200, 0x9230, *frames)
    pixels = np.stack([sitk.GetArrayFromImage(s).reshape(s.GetHeight(), s.GetWidth()) for s in slices])
    data += _element(0x7FE0, 0x0010, b"OW", pixels.astype("<i2").tobytes())
    target.write_bytes(b"\0" * 128 + b"DICM" + meta + data)


# ----------------------------------------------------------------------------------------------- untimed DCE

def test_a_dynamic_series_without_times_or_instance_numbers_is_named():
    """A dynamic series whose time tags and InstanceNumbers an anonymiser removed: its frames cannot be ordered, and
    the user is told which series it is and what to give instead (before: 'no acquired DCE series in the study')."""
    files = [DicomFile(f"/none/{k}-{t}.dcm", (0.0, 0.0, 3.0 * k), AXIAL, None, None, None, None, None, None)
             for t in range(6) for k in range(5)]
    dce = series(files, "t1_twist_tra_dyn", 10, sequence="*fldyn3d1")
    picks = pick_roles(Study("/none", "1.2", "P", "20000101", [dce]), require=False)
    (note,) = [n for n in picks.notes if "DCE" in n]
    assert "the dynamic series #10 't1_twist_tra_dyn' holds 30 images at 5 slice positions with no time tags" in note
    assert "--dce-early/--dce-late files" in note
    assert "DCE: none (the dynamic series #10" in picks.problem


def test_a_dynamic_series_with_a_time_point_missing_slices_is_named_so():
    """A one-series DCE of 6 time points × 5 slices, TemporalPositionIdentifier and InstanceNumber on every file, one
    slice of time point 3 missing (lost in transfer): no tag splits it into whole volumes. The note said it had 'no
    time tags … and no distinct InstanceNumbers', which sends the user after tags that are there; it names the
    uneven slice counts instead."""
    files = [DicomFile(f"/none/{k}-{t}.dcm", (0.0, 0.0, 3.0 * k), AXIAL, t + 1, None, None, None, None, 1 + t * 5 + k)
             for t in range(6) for k in range(5) if (t, k) != (3, 4)]
    dce = series(files, "t1_twist_tra_dyn", 10, sequence="*fldyn3d1")
    picks = pick_roles(Study("/none", "1.2", "P", "20000101", [dce]), require=False)
    (note,) = [n for n in picks.notes if "DCE" in n]
    assert "#10 't1_twist_tra_dyn' holds 29 images at 5 slice positions, some positions 5 times and others 6 " \
        "(a time point missing slices" in note
    assert "no time tags" not in note and "--dce-early/--dce-late files" in note


# ----------------------------------------------------------------------------------------------- transfer syntaxes

def reencode(folder: Path, syntax: bytes = b"", corrupt: bool = False) -> None:
    """Rewrite the series' slices as JPEG 2000 (SimpleITK's GDCM writer), then relabel their transfer syntax
    (``syntax``, as long as the JPEG 2000 UID) or break each codestream's start marker (``corrupt``)."""
    for path in sorted(folder.iterdir()):
        image = read_slice_with_tags(path)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.UseCompressionOn()
        writer.SetCompressor("JPEG2000")
        writer.SetFileName(str(path))
        writer.Execute(image)
        data = path.read_bytes()
        assert data.count(b"1.2.840.10008.1.2.4.90") == 1 and data.count(b"\xff\x4f\xff\x51") == 1
        if syntax:
            data = data.replace(b"1.2.840.10008.1.2.4.90", syntax)
        if corrupt:
            data = data.replace(b"\xff\x4f\xff\x51", b"\x00\x00\xff\x51")
        path.write_bytes(data)


def test_a_series_in_a_syntax_gdcm_cannot_decode_is_named_with_what_to_do(study, tmp_path, capfd):
    """JPIP-referenced pixel data: the header reads, the pixels do not; the error names the series, the transfer
    syntax (UID and name) and how to decompress (before: 'Failed to change to Implicit Transfer Syntax')."""
    root, expected = study
    exam = tmp_path / "exam"
    shutil.copytree(root, exam)
    reencode(series_folder(exam, expected["t2w"]), syntax=b"1.2.840.10008.1.2.4.94")
    picks = pick_roles(scan_study(exam, warn=lambda m: None))
    with pytest.raises(InputError, match=r"T2W #\d+ 't2_tse_tra'.*transfer syntax 1\.2\.840\.10008\.1\.2\.4\.94 "
                                         r"\(JPIP Referenced\).*gdcmconv --raw"):
        picks.load_inputs()


def test_a_broken_codestream_is_named_and_openjpeg_stays_off_the_console(study, tmp_path, capfd):
    """OpenJPEG prints 'Expected a SOC marker' on the process' stderr for every file, at the scan and again at the
    read; kept off the console and quoted once in the error, which names the syntax."""
    root, expected = study
    exam = tmp_path / "exam"
    shutil.copytree(root, exam)
    reencode(series_folder(exam, expected["t2w"]), corrupt=True)
    capfd.readouterr()
    picks = pick_roles(scan_study(exam, warn=lambda m: None))
    with pytest.raises(InputError, match=r"JPEG 2000 Lossless.*the decoder said: Expected a SOC marker"):
        picks.load_inputs()
    assert "SOC marker" not in capfd.readouterr().err


def test_a_series_in_a_syntax_gdcm_cannot_parse_is_not_silently_replaced(study, tmp_path):
    """An axial T2W in a transfer syntax GDCM does not know (here a made-up UID as long as JPEG 2000's) is skipped by
    the scan: the coronal T2W was taken in its place, with only 'not a readable DICOM image' in a warning. Now the
    warning names the syntax and what to do, and the picks are refused unless every role is named."""
    root, expected = study
    exam = tmp_path / "exam"
    shutil.copytree(root, exam)
    reencode(series_folder(exam, expected["t2w"]), syntax=b"1.2.840.10008.1.2.4.99")
    said = []
    scanned = scan_study(exam, warn=said.append)
    assert "transfer syntax 1.2.840.10008.1.2.4.99 (unknown to this reader)" in said[0] and "gdcmconv" in said[0]
    with pytest.raises(InputError, match=r"MR image file\(s\) cannot be decoded.*1\.2\.840\.10008\.1\.2\.4\.99"):
        pick_roles(scanned)
    named = {role: expected[role] for role in ("pd", "adc", "t1pre")}
    coronal = [s for s in scanned.series if s.orientation == "coronal"][0]
    assert pick_roles(scanned, dict(named, t2w=coronal.number)).picks["t2w"].series is coronal
