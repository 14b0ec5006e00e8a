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
