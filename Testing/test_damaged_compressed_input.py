"""A damaged compressed input (one byte changed by a bad copy, disk or download) is refused, naming the input: ITK
reads a .nii.gz, a gzip NRRD or a compressed MetaImage without checking the stream's checksum, and gave the voxels
after the damage as noise (a bug hunt's .nii.gz T1-pre with one byte flipped ran to the end with exit code 0). A
truncated MetaImage is refused as truncated, not with ITK's stale "No such file or directory"; a .mhd whose .raw is
missing names the .raw. Whole files of every format, a multi-member gzip and zero padding after it, read as before.
"""

import gzip
from pathlib import Path

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


def _write(path, compress=True):
    sitk.WriteImage(_volume(), str(path), compress)
    return path


def _flip_middle_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["t1.nii.gz", "t1.nrrd", "t1.mha"])
def test_a_compressed_file_with_one_byte_changed_is_refused_naming_the_input(tmp_path, name):
    path = _write(tmp_path / name)
    _flip_middle_byte(path)
    with pytest.raises(InputError, match=rf"T1-pre: .*{name} is damaged: its compressed data are corrupt"):
        read_volume(path, name="T1-pre")


@pytest.mark.parametrize("compress", [True, False])
def test_a_truncated_metaimage_is_refused_as_truncated(tmp_path, compress):
    whole = _write(tmp_path / "whole.mha", compress)
    cut = tmp_path / "cut.mha"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 3])
    with pytest.raises(InputError, match=r"T2W: .*cut\.mha is damaged: .*truncated") as caught:
        read_volume(cut, name="T2W")
    assert "No such file" not in str(caught.value)


def test_a_metaimage_header_without_its_data_file_names_the_data_file(tmp_path):
    header = _write(tmp_path / "adc.mhd", compress=False)
    (tmp_path / "adc.raw").unlink()
    with pytest.raises(InputError, match=r"ADC: .*adc\.mhd is damaged: its pixel data file .*adc\.raw"):
        read_volume(header, name="ADC")


@pytest.mark.parametrize("name,compress", [("a.nii.gz", True), ("a.nii", False), ("a.nrrd", True),
                                           ("a.nrrd", False), ("a.mha", True), ("a.mha", False), ("a.mhd", False)])
def test_whole_files_are_read_as_before(tmp_path, name, compress):
    path = _write(tmp_path / name, compress)
    read = read_volume(path, name="T2W")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(_volume()))


def test_a_multi_member_gzip_with_zero_padding_is_read_as_before(tmp_path):
    plain = _write(tmp_path / "plain.nii", compress=False).read_bytes()
    padded = tmp_path / "padded.nii.gz"
    padded.write_bytes(gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]) + b"\0" * 512)
    read = read_volume(padded, name="T2W")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(_volume()))


def test_the_sample_t1pre_with_one_byte_flipped_is_refused_where_itk_reads_it_as_noise(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case" / "t1pre.nii.gz"
    damaged = tmp_path / "t1pre.nii.gz"
    damaged.write_bytes(sample.read_bytes())
    _flip_middle_byte(damaged)
    garbled = sitk.GetArrayFromImage(sitk.ReadImage(str(damaged)))  # ITK: no error, half the voxels changed
    assert np.mean(garbled != sitk.GetArrayFromImage(sitk.ReadImage(str(sample)))) > 0.1
    with pytest.raises(InputError, match=r"T1-pre: .*t1pre\.nii\.gz is damaged: its compressed data are corrupt"):
        read_volume(damaged, name="T1-pre")
