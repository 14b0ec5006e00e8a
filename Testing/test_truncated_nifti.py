"""A truncated NIfTI file (an incomplete copy or download) is refused, naming the input: ITK's reader gives the
missing voxels as zeros without a word, and training, evaluation and synthesis then used a volume that was mostly
black (found by a bug hunt: a .nii.gz cut to 7 % of its length was read as a whole case and trained on). A whole
file, plain, gzipped or gzipped in several members, is read as before."""

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError
from DCEDiffLib.volume_io import read_volume


def _volume() -> sitk.Image:
    array = np.random.default_rng(0).uniform(10, 100, (6, 40, 50)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 3.0))
    return image


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_truncated_nifti_is_refused_naming_the_input(tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    sitk.WriteImage(_volume(), str(whole))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    with pytest.raises(InputError, match=r"T2W: .*cut.* is truncated: it holds \d+ bytes of the \d+ its header"):
        read_volume(cut, name="T2W")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_whole_nifti_is_read_as_before(tmp_path, suffix):
    path = tmp_path / f"whole{suffix}"
    sitk.WriteImage(_volume(), str(path))
    assert np.array_equal(sitk.GetArrayFromImage(read_volume(path, name="T2W")), sitk.GetArrayFromImage(_volume()))


def test_a_multi_member_gzip_nifti_is_read_as_before(tmp_path):
    """A gzip of several members (bgzip, concatenated streams) has a trailer holding only its last member's length:
    its stream is counted instead, and a whole file is not refused."""
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(_volume(), str(plain))
    data = plain.read_bytes()
    path = tmp_path / "members.nii.gz"
    path.write_bytes(gzip.compress(data[:5000]) + gzip.compress(data[5000:]))
    assert np.array_equal(sitk.GetArrayFromImage(read_volume(path, name="T2W")), sitk.GetArrayFromImage(_volume()))
