"""A NIfTI file whose qform and sform disagree is read with one of them, as ITK decides; the user is told which
and by how much (DCEDiffLib/nifti_orientation.py), since another viewer may show the volume elsewhere."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.nifti_orientation import placement_disagreement
from DCEDiffLib.volume_io import read_volume


def nifti_with(tmp_path: Path, name: str, qform_shift_mm: float = 0.0, sform_shift_mm: float = 0.0,
               qform_code: int = 1, sform_code: int = 1) -> Path:
    """A small oblique volume written by ITK (both placements equal), its header then edited as tools do."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 100, (6, 12, 10)).astype(np.float32))
    image.SetSpacing((0.7, 0.7, 3.0))
    image.SetOrigin((-20.0, 35.0, -60.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c))
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(image, str(plain))
    header = bytearray(plain.read_bytes())
    struct.pack_into("<2h", header, 252, qform_code, sform_code)
    qx = struct.unpack_from("<f", header, 268)[0]
    struct.pack_into("<f", header, 268, qx + qform_shift_mm)
    sx = struct.unpack_from("<f", header, 292)[0]
    struct.pack_into("<f", header, 292, sx + sform_shift_mm)
    path = tmp_path / f"{name}.nii.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(bytes(header))
    return path


def test_agreeing_or_single_placements_say_nothing(tmp_path):
    for name, kwargs in (("same", {}), ("qform_only", {"sform_code": 0, "sform_shift_mm": 30.0}),
                         ("sform_only", {"qform_code": 0, "qform_shift_mm": 30.0}),
                         ("half_mm", {"qform_shift_mm": 0.5})):
        path = nifti_with(tmp_path, name, **kwargs)
        assert placement_disagreement(path, sitk.ReadImage(str(path))) is None, name


@pytest.mark.parametrize("kwargs, used", [({"qform_shift_mm": 30.0}, "sform"),
                                          ({"qform_shift_mm": 30.0, "sform_code": 2}, None),
                                          ({"sform_shift_mm": 30.0}, None)])
def test_disagreeing_placements_are_said_with_the_one_read(tmp_path, kwargs, used, capsys):
    path = nifti_with(tmp_path, "shifted", **kwargs)
    image = sitk.ReadImage(str(path))
    words = placement_disagreement(path, image)
    assert words is not None and "30.0 mm apart" in words
    # which one ITK read: the placement whose corners the image's geometry matches
    origin_ras = np.array(image.GetOrigin()) * [-1, -1, 1]
    with gzip.open(path) as handle:
        header = handle.read(348)
    qoffset = np.array(struct.unpack_from("<3f", header, 268))
    expected = used or ("qform" if np.allclose(origin_ras, qoffset, atol=1e-3) else "sform")
    assert f"read with the {expected}" in words
    read_volume(path, name="T2W (t2w)")  # the reader says it too, naming the input
    err = capsys.readouterr().err
    assert "T2W (t2w): shifted.nii.gz: its NIfTI qform and sform place the volume 30.0 mm apart" in err


def test_a_copy_of_one_input_given_for_another_role_is_said(tmp_path, capsys):
    """The CLI refuses one path in two roles; a copy of the T1-pre given as the PD passed without a word."""
    import shutil

    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
    from DCEDiffLib.preprocess import read_inputs

    copy = tmp_path / "t1copy.nii.gz"
    shutil.copy(SAMPLE_CASE_DIR / "t1pre.nii.gz", copy)
    inputs = {m: str(SAMPLE_CASE_DIR / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")}
    read_inputs(inputs)
    assert "same image" not in capsys.readouterr().err
    read_inputs(dict(inputs, pd=str(copy)))
    err = capsys.readouterr().err
    assert "(pd) and" in err and "(t1pre) are the same image" in err


def test_a_left_handed_volume_whose_placements_agree_says_nothing(tmp_path):
    """A volume with a left-handed direction (slice axis towards the feet) is stored by ITK with qfac = -1 in
    pixdim[0]; its qform (quaternion + qfac) and sform then describe the same placement. Nothing to say: reading
    the qform without qfac would flip the slice axis and report a disagreement of tens of mm that is not there."""
    from DCEDiffLib.nifti_orientation import placement_disagreement

    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 100, (6, 12, 10)).astype(np.float32))
    image.SetSpacing((0.7, 0.7, 3.0))
    image.SetOrigin((-20.0, 35.0, -60.0))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    path = tmp_path / "left_handed.nii"
    sitk.WriteImage(image, str(path))
    header = bytearray(path.read_bytes())
    struct.pack_into("<2h", header, 252, 1, 1)  # both placements present (scanner)
    path.write_bytes(bytes(header))
    assert struct.unpack_from("<f", header, 76)[0] == -1.0  # ITK stored qfac = -1
    assert placement_disagreement(path, sitk.ReadImage(str(path))) is None


@pytest.mark.parametrize("damage", ["pixdim_zero", "pixdim_nan", "quaternion_nan"])
def test_a_header_that_places_the_volume_by_neither_placement_is_refused(tmp_path, damage):
    """pixdim[1] = 0 or NaN beside a valid sform: ITK reads a 1 mm voxel with the sform's axes, so the volume lies
    by neither placement (tens of mm off at its corners) and the synthesis went ahead with a mis-sized series, the
    warning above saying "read with the sform". A NaN quaternion (qform only) gave flipped axes and a refusal that
    blamed a wrong series. Refused, naming the input and the header (found by a bad-input audit, session 63)."""
    from DCEDiffLib.errors import InputError

    path = nifti_with(tmp_path, damage, sform_code=0 if damage == "quaternion_nan" else 1)
    with gzip.open(path) as handle:
        data = bytearray(handle.read())
    offset, value = {"pixdim_zero": (80, 0.0), "pixdim_nan": (80, float("nan")),
                     "quaternion_nan": (256, float("nan"))}[damage]
    struct.pack_into("<f", data, offset, value)
    with gzip.open(path, "wb") as handle:
        handle.write(bytes(data))
    with pytest.raises(InputError, match=rf"T2W \(t2w\): {damage}\.nii\.gz: its NIfTI header is inconsistent"):
        read_volume(path, name="T2W (t2w)")
