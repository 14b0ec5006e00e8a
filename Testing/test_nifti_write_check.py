"""A NIfTI file cut short (a full disk: ITK's writer prints an error and returns) is not taken for a whole one."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError
from DCEDiffLib.nifti_write_check import nifti_written_whole
from DCEDiffLib.volume_io import write_volume


def written(tmp_path: Path, name: str) -> Path:
    image = sitk.GetImageFromArray(np.random.default_rng(1).uniform(0, 9, (5, 30, 40)).astype(np.float32))
    return write_volume(image, tmp_path / name)


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii"])
def test_whole_files_pass_and_cut_ones_do_not(tmp_path, name):
    path = written(tmp_path, name)
    assert nifti_written_whole(path)
    data = path.read_bytes()
    for cut in (0, 100, len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        assert not nifti_written_whole(path), cut
    if name.endswith(".gz"):  # a whole gzip stream of a header that promises more voxels than it holds
        raw = gzip.decompress(data)
        path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
        assert not nifti_written_whole(path)


def test_a_small_compressed_volume_is_whole():
    """Its gzip file is smaller than the NIfTI header it holds."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = write_volume(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.float32)), Path(folder) / "z.nii.gz")
        assert path.stat().st_size < 348 and nifti_written_whole(path)


def test_a_write_that_the_disk_cut_short_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    """What SimpleITK does on a full disk, reproduced: the file is left short and no exception is raised."""
    real_write = sitk.WriteImage

    def write_then_lose_the_end(image, path, *args, **kwargs):
        real_write(image, path, *args, **kwargs)
        size = os.path.getsize(path)
        with open(path, "r+b") as handle:
            handle.truncate(size // 3)

    monkeypatch.setattr(sitk, "WriteImage", write_then_lose_the_end)
    with pytest.raises(InputError, match=r"v.nii.gz: written incompletely \(.*MB free on its disk"):
        written(tmp_path, "v.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no short file in place, no temporary file


def _nifti1_big_endian(path: Path, values: np.ndarray) -> None:
    """A single-file NIfTI-1 (n+1), float32, written big-endian by hand (the format allows either byte order; a
    reader tells them apart by sizeof_hdr = 348)."""
    import struct

    header = bytearray(348)
    struct.pack_into(">i", header, 0, 348)                                   # sizeof_hdr
    dims = [3] + list(values.shape[::-1]) + [1] * (7 - values.ndim)
    struct.pack_into(">8h", header, 40, *dims)                               # dim (i, j, k)
    struct.pack_into(">hh", header, 70, 16, 32)                              # datatype float32, bitpix
    struct.pack_into(">8f", header, 76, 1.0, 1.0, 1.0, 1.0, 1, 1, 1, 1)      # pixdim
    struct.pack_into(">f", header, 108, 352.0)                               # vox_offset
    struct.pack_into(">f", header, 112, 1.0)                                 # scl_slope
    struct.pack_into(">h", header, 252, 0)                                   # qform_code
    struct.pack_into(">h", header, 254, 1)                                   # sform_code
    struct.pack_into(">4f", header, 280, 1, 0, 0, 0)                         # srow_x
    struct.pack_into(">4f", header, 296, 0, 1, 0, 0)                         # srow_y
    struct.pack_into(">4f", header, 312, 0, 0, 1, 0)                         # srow_z
    header[344:348] = b"n+1\0"
    path.write_bytes(bytes(header) + b"\0\0\0\0" + values.astype(">f4").tobytes())


def test_nan_voxels_of_a_big_endian_nifti_are_counted(tmp_path):
    """nifti_nonfinite.count_nonfinite reads "a float NIfTI-1 or NIfTI-2 file" and ITK turns NaN into 0, so a
    big-endian file's NaN would otherwise pass unseen. A 4 x 3 x 2 big-endian float32 file with one NaN and one
    +Inf: 2 non-finite voxels of 24 (ITK reads the same file: it is a valid NIfTI)."""
    from DCEDiffLib.nifti_nonfinite import count_nonfinite

    values = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    values[1, 2, 3] = np.nan
    values[0, 1, 0] = np.inf
    path = tmp_path / "big_endian.nii"
    _nifti1_big_endian(path, values)
    assert sitk.ReadImage(str(path)).GetSize() == (4, 3, 2)
    assert count_nonfinite(path) == (2, 24)
