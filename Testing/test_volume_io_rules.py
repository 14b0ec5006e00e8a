"""Reading rules of volume_io, nifti_nonfinite and nifti_orientation at their definitions (found by a mutation
audit): subnormal geometry is zeroed wherever it sits, the caller's image is not modified by a write, a single NaN
voxel of a NIfTI file is refused (float32 or float64, wherever the header puts the data), a 4D file holding one
volume is read as 3D, a direction matrix whose determinant is not ±1 and a volume one voxel thick along any axis
are refused, a NIfTI whose two placements agree says nothing whatever its rotation, the placement named as read is
the one ITK read (compared in RAS, the rotation not transposed), and a gzipped NIfTI or a detached NRRD header that
stores no placement is named (NRRD field names in any case)."""

import gzip
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError
from DCEDiffLib.volume_io import read_volume, validate_volume, write_volume


def small_volume(size=(10, 8, 6), dtype=np.float32) -> sitk.Image:
    array = np.random.default_rng(0).uniform(10, 100, tuple(reversed(size))).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 3.0))
    image.SetOrigin((-10.0, 20.0, -30.0))
    return image


def test_a_subnormal_origin_alone_is_zeroed():
    """_without_subnormal_geometry zeroes subnormal origin *or* direction components: an image whose direction is
    clean and whose origin holds one subnormal value gets that value zeroed (the caller's image keeps it)."""
    image = small_volume()
    image.SetOrigin((5e-324, 20.0, -30.0))
    loaded = read_volume(image, name="T2W")
    assert loaded.GetOrigin() == (0.0, 20.0, -30.0)
    assert image.GetOrigin()[0] == 5e-324


def test_writing_with_metadata_does_not_touch_the_callers_image(tmp_path):
    """write_volume: 'never modify the caller's image'. Key/value metadata written into an NRRD file lands in the
    file, not in the image that was handed over."""
    image = small_volume()
    path = write_volume(image, tmp_path / "out.nrrd", {"dcediff_model": "abc", "description": "working grid"})
    assert not image.HasMetaDataKey("dcediff_model") and not image.HasMetaDataKey("description")
    assert sitk.ReadImage(str(path)).GetMetaData("dcediff_model") == "abc"


@pytest.mark.parametrize("dtype, suffix", [(np.float32, ".nii.gz"), (np.float64, ".nii")])
def test_a_single_nan_voxel_of_a_float_nifti_is_refused(tmp_path, dtype, suffix):
    """validate_volume: 'no NaN/Inf voxels'. ITK's NIfTI reader gives NaN as 0, so the file is counted
    (nifti_nonfinite: 'a float NIfTI-1 or NIfTI-2 file': float32 and float64). One NaN in the last voxel of the last
    slice is one too many."""
    array = sitk.GetArrayFromImage(small_volume(dtype=dtype))
    array[-1, -1, -1] = np.nan
    image = sitk.GetImageFromArray(array)
    path = tmp_path / f"one_nan{suffix}"
    sitk.WriteImage(image, str(path))
    with pytest.raises(InputError, match=r"has 1 NaN or infinite voxels \(of 480\) in the file"):
        read_volume(path, name="ADC")


def test_nan_voxels_are_counted_where_the_header_says_the_data_starts(tmp_path):
    """A NIfTI-1 file's data starts at its header's vox_offset (352 at the earliest): here 368, after 16 bytes of
    padding, as some writers leave. The NaN in the very last voxel is counted; ITK reads the same file."""
    from DCEDiffLib.nifti_nonfinite import count_nonfinite

    array = sitk.GetArrayFromImage(small_volume())
    array[-1, -1, -1] = np.nan
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(plain))
    data = plain.read_bytes()
    assert struct.unpack_from("<f", data, 108)[0] == 352.0
    header = bytearray(data[:352])
    struct.pack_into("<f", header, 108, 368.0)
    padded = tmp_path / "padded.nii"
    padded.write_bytes(bytes(header) + bytes(16) + data[352:])
    assert sitk.ReadImage(str(padded)).GetSize() == (10, 8, 6)
    assert count_nonfinite(padded) == (1, 480)


def test_a_4d_file_holding_one_volume_is_read_as_that_3d_volume(tmp_path):
    """read_volume: 'A 4D file with a single volume is accepted as 3D' (voxels and geometry of that volume). MHA
    keeps the fourth axis of length 1 in the file (ITK's NIfTI reader drops it on its own)."""
    image = small_volume()
    four_d = sitk.JoinSeries([image])
    path = tmp_path / "one_volume_4d.mha"
    sitk.WriteImage(four_d, str(path))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    assert reader.GetDimension() == 4 and reader.GetSize()[3] == 1
    loaded = read_volume(path, name="T2W")
    assert loaded.GetDimension() == 3 and loaded.GetSize() == image.GetSize()
    np.testing.assert_allclose(loaded.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(loaded), sitk.GetArrayViewFromImage(image))


def test_a_direction_that_is_not_orthonormal_is_refused_and_a_left_handed_one_is_not():
    """validate_volume refuses an orientation whose direction matrix is no rotation ('not orthonormal'): a slice
    axis of length 0.5 (det 0.5) is refused; a left-handed direction (det -1) is a valid one."""
    squashed = small_volume()
    squashed.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.5))
    with pytest.raises(InputError, match="invalid orientation"):
        validate_volume(squashed, "T2W")
    left_handed = small_volume()
    left_handed.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    validate_volume(left_handed, "T2W")


@pytest.mark.parametrize("direction", [(2.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0),    # stretched, det 1
                                       (1.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)])   # sheared, det 1
def test_a_determinant_of_one_does_not_make_a_direction_orthonormal(tmp_path, direction):
    """'direction matrix not orthonormal' means what it says: a stretched or sheared matrix of determinant 1 is no
    rotation (the working grid made from it would have voxels of other sizes than its spacing), whether read from
    an MHA file (ITK's MHA reader keeps it) or handed over in memory; an oblique rotation passes."""
    skewed = small_volume()
    skewed.SetDirection(direction)
    with pytest.raises(InputError, match="invalid orientation"):
        validate_volume(skewed, "T2W")
    sitk.WriteImage(skewed, str(tmp_path / "skewed.mha"))
    with pytest.raises(InputError, match=r"T2W \(.*skewed.mha\): has an invalid orientation"):
        read_volume(tmp_path / "skewed.mha", name="T2W")
    c, s_ = np.cos(0.3), np.sin(0.3)
    oblique = small_volume()
    oblique.SetDirection((c, -s_, 0.0, s_, c, 0.0, 0.0, 0.0, 1.0))
    validate_volume(oblique, "T2W")


@pytest.mark.parametrize("size", [(1, 20, 12), (20, 1, 12), (20, 12, 1)])
def test_a_volume_one_voxel_thick_along_any_axis_is_2d(size):
    """validate_volume: '3D with at least two voxels along every axis': one voxel along i, j or k is a 2D image
    (a sagittal or coronal single slice as much as an axial one)."""
    with pytest.raises(InputError, match="is a 2D image"):
        validate_volume(small_volume(size), "T2W")


@pytest.mark.parametrize("axis", [(0.0, 0.0, 1.0), (0.3, 0.5, 0.8)])
def test_placements_that_agree_say_nothing_whatever_the_rotation(tmp_path, axis):
    """ITK writes one placement twice (qform: quaternion; sform: matrix); with both codes set they agree, so
    placement_disagreement says nothing. A rotation of 0.4 rad about the feet-head axis or an oblique axis (the
    quaternion's c and d terms, which a rotation about x alone leaves at 0)."""
    from DCEDiffLib.nifti_orientation import placement_disagreement

    image = small_volume()
    rotation = sitk.VersorTransform(tuple(float(a) for a in np.asarray(axis) / np.linalg.norm(axis)), 0.4)
    image.SetDirection(rotation.GetMatrix())
    path = tmp_path / "oblique.nii"
    sitk.WriteImage(image, str(path))
    header = bytearray(path.read_bytes())
    struct.pack_into("<2h", header, 252, 1, 1)  # both placements present (scanner)
    path.write_bytes(bytes(header))
    assert placement_disagreement(path, sitk.ReadImage(str(path))) is None
    shifted = bytearray(header)
    struct.pack_into("<f", shifted, 268, struct.unpack_from("<f", shifted, 268)[0] + 20.0)  # the qform 20 mm off
    path.write_bytes(bytes(shifted))
    words = placement_disagreement(path, sitk.ReadImage(str(path)))
    assert words is not None and "20.0 mm apart" in words and "read with the sform" in words


def _ras_affine(image: sitk.Image) -> np.ndarray:
    """Index → RAS mm of an ITK image (its geometry is LPS: x and y negated)."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


@pytest.mark.parametrize("mistake", ["sform in LPS", "sform rotation transposed"])
def test_the_placement_named_as_read_is_the_one_itk_read(tmp_path, mistake):
    """A tool wrote a wrong sform (coordinates left in LPS, or its rotation transposed) with code 2, so ITK reads
    the qform (module docstring): the image read has the qform's (the right) geometry, and the words name the qform.
    The comparison is made in RAS, the space of both placements (ITK's geometry is LPS)."""
    from DCEDiffLib.nifti_orientation import placement_disagreement

    image = small_volume()
    image.SetDirection(sitk.VersorTransform((0.0, 0.0, 1.0), 0.4).GetMatrix())
    path = tmp_path / "wrong_sform.nii"
    sitk.WriteImage(image, str(path))
    ras = _ras_affine(image)
    if mistake == "sform in LPS":
        wrong = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras
    else:
        wrong = ras.copy()
        rotation = np.asarray(image.GetDirection()).reshape(3, 3)
        wrong[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rotation.T @ np.diag(image.GetSpacing())
    header = bytearray(path.read_bytes())
    struct.pack_into("<2h", header, 252, 1, 2)
    struct.pack_into("<12f", header, 280, *wrong[:3, :].ravel())
    path.write_bytes(bytes(header))
    read = sitk.ReadImage(str(path))
    np.testing.assert_allclose(_ras_affine(read), ras, atol=1e-4)  # ITK read the qform
    words = placement_disagreement(path, read)
    assert words is not None and "read with the qform" in words


def test_a_4d_integer_file_reads_as_float32_where_4d_is_accepted(tmp_path):
    """read_volume(expect_3d=False) 'accepts 2D and 4D images too' as float32: an int16 4D NIfTI (a DCE series as
    the phantom writes it) keeps its voxels and geometry (SimpleITK's Cast has no 4D integer path)."""
    rng = np.random.default_rng(4)
    voxels = rng.integers(0, 3000, (3, 4, 10, 12)).astype(np.int16)  # (t, k, j, i)
    image = sitk.GetImageFromArray(voxels, isVector=False)
    image.SetSpacing((0.8, 0.9, 3.0, 1.0))
    sitk.WriteImage(image, str(tmp_path / "series.nii.gz"))
    read = read_volume(tmp_path / "series.nii.gz", name="DCE", expect_3d=False)
    assert read.GetPixelID() == sitk.sitkFloat32 and read.GetSize() == (12, 10, 4, 3)
    assert np.array_equal(sitk.GetArrayFromImage(read), voxels.astype(np.float32))
    assert np.allclose(read.GetSpacing(), (0.8, 0.9, 3.0, 1.0))


# ----------------------------------------------------------------------------------------------- round 16
# Mutation audit round 16 (missing_placement): a file that stores no placement is named whatever its flavour
# (a gzipped NIfTI, a detached NRRD header); each test names the mutation it kills.

def test_a_gzipped_nifti_without_placement_is_named(tmp_path, capsys):
    """missing_placement reads a .nii.gz through gzip (nibabel's Nifti1Image(data, None) saved as .nii.gz has both
    codes 0): named like the plain file. Audit round 16: kills the header read from the compressed bytes (M02)."""
    plain = tmp_path / "pd.nii"
    sitk.WriteImage(small_volume(), str(plain))
    data = bytearray(plain.read_bytes())
    data[252:256] = struct.pack("<2h", 0, 0)
    (tmp_path / "pd.nii.gz").write_bytes(gzip.compress(bytes(data)))
    image = read_volume(tmp_path / "pd.nii.gz", "PD")
    assert image.GetOrigin() == (0.0, 0.0, 0.0)
    assert "PD: pd.nii.gz stores no position or orientation (its NIfTI qform_code and sform_code are both 0)" \
        in capsys.readouterr().err


def test_a_detached_nrrd_header_without_space_directions_is_named(tmp_path, capsys):
    """missing_placement: 'a NRRD (no space directions)', a detached header (.nhdr beside its .raw) included; field
    names are read as the NRRD reader reads them, in any case ('Space Directions' in a hand-written header places
    the volume, and is not named). Audit round 16: kills the .nhdr suffix dropped (M04) and field names compared
    case-sensitively (M06)."""
    header = tmp_path / "t2w.nhdr"
    sitk.WriteImage(small_volume(), str(header))
    text = header.read_text(encoding="ascii")
    header.write_text(text.replace("space directions:", "Space Directions:"), encoding="ascii")
    assert read_volume(header, "T2W").GetOrigin() == (-10.0, 20.0, -30.0)
    assert "no position" not in capsys.readouterr().err
    lines = [line for line in text.split("\n") if not line.startswith(("space directions", "space origin"))]
    header.write_text("\n".join(lines), encoding="ascii")
    image = read_volume(header, "T2W")
    assert image.GetOrigin() == (0.0, 0.0, 0.0)
    assert "T2W: t2w.nhdr stores no position or orientation (its NRRD header has no 'space directions')" \
        in capsys.readouterr().err


def test_a_folder_without_dicom_is_one_error_without_itk_warning_lines(tmp_path, capfd):
    """A folder of text files given as a series: ITK's GDCMSeriesFileNames printed "WARNING: In .../
    itkGDCMSeriesFileNames.cxx, line 101" and "No Series were found" on the process' stderr above the error (found by
    a bad-input audit, session 63). The error alone says it, naming the input."""
    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    with pytest.raises(InputError, match=r"T2W \(t2w\): folder .* contains no DICOM series"):
        read_volume(tmp_path, name="T2W (t2w)")
    err = capfd.readouterr().err
    assert "No Series were found" not in err and "WARNING" not in err, err
