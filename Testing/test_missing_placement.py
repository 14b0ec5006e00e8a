"""A NIfTI or NRRD file without any placement is named when read (DCEDiffLib/missing_placement.py).

Found by a helper session: a ProstateX ADC or PD converted to NIfTI with both transform codes 0, or to NRRD without
'space directions', was read at origin 0 with identity axes without a word, and the run was refused for a field of
view "not containing the crop centre", blaming a wrong series instead of the file's missing header fields.
"""

import struct

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.volume_io import read_volume


def _image() -> sitk.Image:
    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(1.0, 100.0, (6, 8, 10)).astype(np.float32))
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((-45.7, 128.2, -97.5))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 0.95, -0.31224989991991997, 0.0, 0.31224989991991997, 0.95))
    return image


def _nifti_with_codes(tmp_path, qform_code, sform_code):
    path = tmp_path / f"adc_{qform_code}{sform_code}.nii"
    sitk.WriteImage(_image(), str(path))
    data = bytearray(path.read_bytes())
    data[252:256] = struct.pack("<2h", qform_code, sform_code)
    path.write_bytes(bytes(data))
    return path


def test_a_nifti_with_both_transform_codes_0_is_named(tmp_path, capsys):
    image = read_volume(_nifti_with_codes(tmp_path, 0, 0), "ADC")
    assert image.GetOrigin() == (0.0, 0.0, 0.0)
    err = capsys.readouterr().err
    assert "ADC: adc_00.nii stores no position or orientation" in err and "sform_code are both 0" in err


def test_a_nifti_with_either_placement_reads_without_a_word(tmp_path, capsys):
    for codes in ((1, 0), (0, 1), (0, 2), (1, 1)):
        image = read_volume(_nifti_with_codes(tmp_path, *codes), "ADC")
        assert np.allclose(image.GetOrigin(), (-45.7, 128.2, -97.5), atol=1e-3)
    assert "no position" not in capsys.readouterr().err


def test_a_nrrd_without_space_directions_is_named_and_one_with_them_is_not(tmp_path, capsys):
    placed = tmp_path / "pd.nrrd"
    sitk.WriteImage(_image(), str(placed), useCompression=False)
    read_volume(placed, "PD")
    assert "no position" not in capsys.readouterr().err
    head, _, body = placed.read_bytes().partition(b"\n\n")
    lines = [line for line in head.split(b"\n") if not line.startswith((b"space directions", b"space origin"))]
    unplaced = tmp_path / "pd_unplaced.nrrd"
    unplaced.write_bytes(b"\n".join(lines) + b"\n\n" + body)
    image = read_volume(unplaced, "PD")
    assert image.GetOrigin() == (0.0, 0.0, 0.0)
    assert "PD: pd_unplaced.nrrd stores no position or orientation (its NRRD header has no 'space directions')" \
        in capsys.readouterr().err


def test_a_nrrd_name_that_is_no_nrrd_or_cannot_be_read_is_not_named(tmp_path):
    """Round-18 mutation audit. missing_placement: 'None for any other file or one that this cannot read': a text
    file named .nrrd (no NRRD magic) and a folder named .nrrd (open fails) are not called unplaced; ITK's own error
    says what is wrong with them."""
    from DCEDiffLib.missing_placement import missing_placement

    text = tmp_path / "notes.nrrd"
    text.write_text("sizes: 4 4 4\n\n", encoding="utf-8")
    folder = tmp_path / "folder.nrrd"
    folder.mkdir()
    assert missing_placement(text) is None and missing_placement(folder) is None
    unplaced = tmp_path / "unplaced.nrrd"   # the control: a NRRD without space directions is named
    unplaced.write_bytes(b"NRRD0004\ntype: float\ndimension: 1\nsizes: 1\nencoding: raw\n\n\x00\x00\x00\x00")
    assert "unplaced.nrrd stores no position" in missing_placement(unplaced)


def test_a_nrrd_whose_placement_lies_past_the_header_limit_is_not_called_unplaced(tmp_path, capsys):
    """Found by the round-18 boundary test of the header limit: ITK reads a header of any length, the header reader
    stops at HEADER_LIMIT. An ITK-written NRRD given 2 000 key/value lines (NRRD's ``key:=value``, as Slicer keeps
    extra fields) before its ``space directions`` is read in place by ITK; it used to get the warning 'stores no
    position or orientation' all the same. A cut header now says nothing about placement."""
    from DCEDiffLib.nrrd_header import HEADER_LIMIT, read_nrrd_header

    itk = tmp_path / "itk.nrrd"
    sitk.WriteImage(_image(), str(itk), useCompression=False)
    head, _, body = itk.read_bytes().partition(b"\n\n")
    magic, rest = head.split(b"\n", 1)
    extra = b"".join(b"DICOM_%05d:=a value of a few words\n" % index for index in range(2000))
    long = tmp_path / "pd_long_header.nrrd"
    long.write_bytes(magic + b"\n" + extra + rest + b"\n\n" + body)
    assert len(extra) > HEADER_LIMIT and read_nrrd_header(long).cut   # the control: past the limit
    image = read_volume(long, "PD")
    assert image.GetOrigin() == _image().GetOrigin() != (0.0, 0.0, 0.0)   # ITK found the placement
    assert "no position" not in capsys.readouterr().err
