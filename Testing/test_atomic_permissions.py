"""Atomic writes give results the permissions a normal write would (issue 16): not tempfile's 0600/0700."""

import os
import stat

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.atomic import atomic_directory, atomic_path, current_umask, write_text_atomic


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_current_umask_reads_the_process_umask_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_file_gets_the_mode_of_a_normal_write(tmp_path, umask):
    with open(tmp_path / "normal.txt", "w") as handle:
        handle.write("x")
    write_text_atomic(tmp_path / "atomic.txt", "x")
    with atomic_path(tmp_path / "sub" / "volume.nii.gz") as tmp:
        tmp.write_bytes(b"\x1f\x8b")
    assert mode(tmp_path / "atomic.txt") == mode(tmp_path / "normal.txt") == 0o666 & ~umask
    assert mode(tmp_path / "sub" / "volume.nii.gz") == 0o666 & ~umask


def test_atomic_directory_and_its_files_get_normal_modes(tmp_path, umask):
    os.mkdir(tmp_path / "normal")
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "synthesis.json").write_text("{}")
        write_text_atomic(tmp / "nested" / "metrics.json", "{}")
        with atomic_path(tmp / "report.png") as png:
            png.write_bytes(b"\x89PNG")
    out = tmp_path / "out"
    assert mode(out) == mode(tmp_path / "normal") == 0o777 & ~umask
    for name in ("synthesis.json", "nested/metrics.json", "report.png"):
        assert mode(out / name) == 0o666 & ~umask, name
    assert mode(out / "nested") == 0o777 & ~umask


def test_a_mode_the_writer_chose_is_kept(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "script.sh") as tmp:
            tmp.write_text("#!/bin/sh\n")
            tmp.chmod(0o750)
    finally:
        os.umask(old)
    assert mode(tmp_path / "script.sh") == 0o750


def test_volume_and_png_outputs_are_readable_by_others_with_umask_022(tmp_path):
    """What the issue saw: NIfTI and PNG written 0600 inside a 0700 folder."""
    import numpy as np
    import SimpleITK as sitk

    from DCEDiffLib.volume_io import write_volume

    old = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "result") as tmp:
            write_volume(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.float32)), tmp / "synthetic_early.nii.gz",
                         {"description": "SYNTHETIC test"})
    finally:
        os.umask(old)
    assert mode(tmp_path / "result") == 0o755
    assert mode(tmp_path / "result" / "synthetic_early.nii.gz") == 0o644


def test_an_atomic_write_replaces_an_existing_file(tmp_path):
    """atomic.atomic_path: "rename it into place only if the block succeeds" - a second successful write of the
    same path must leave the new content, never the old result (a re-run writing a new synthesis over an old one)."""
    from DCEDiffLib.atomic import atomic_path, write_text_atomic

    target = tmp_path / "metrics.json"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    image = tmp_path / "synthetic.nii.gz"
    for value in (1.0, 2.0):
        with atomic_path(image) as tmp:
            sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkFloat32) + value, str(tmp))
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(image))).max() == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "synthetic.nii.gz"]
