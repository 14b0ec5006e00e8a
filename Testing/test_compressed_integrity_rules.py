"""compressed_integrity.data_damage on real files that ITK writes or reads (mutation audit of the session's new
code): every gzip member is checked, a short MetaImage is one byte short too (header bytes not counted as pixel
data, every channel counted), the format's own spellings (``gz``, ``datafile``, ``CompressedData = true``,
``ElementDataFile = LIST``) are understood, and what is no compressed stream or no readable file is not called
damaged. Each test names the mutation it kills."""

import gzip
import zlib

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.compressed_integrity import data_damage


def _volume(components: int = 1) -> sitk.Image:
    array = np.random.default_rng(1).uniform(10, 100, (4, 12, 10) + ((components,) if components > 1 else ()))
    return sitk.GetImageFromArray(array.astype(np.float32), isVector=components > 1)


def _write(path, compress: bool, components: int = 1):
    sitk.WriteImage(_volume(components), str(path), compress)
    return path


def _nrrd_header(path, encoding: str, extra: str = "") -> bytes:
    """A header as ITK writes it for ``_volume()``, with ``encoding`` and optional extra lines."""
    return (f"NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\nsizes: 10 12 4\n"
            f"space directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: {encoding}\n{extra}\n").encode()


def test_every_member_of_a_multi_member_gzip_is_checked(tmp_path):
    """'gzip members one after another (a multi-member .gz)': a second member that starts in the same read as the
    end of the first, and is cut short, is a truncated file. Kills the bytes after the first member dropped
    (unused_data replaced by b"")."""
    raw = _write(tmp_path / "a.nii", compress=False).read_bytes()
    second = gzip.compress(raw[1000:])
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(gzip.compress(raw[:1000]) + second[: len(second) // 2])
    assert data_damage(cut) == "its compressed data end early (a truncated file)"


def test_a_gzip_nrrd_of_two_members_is_checked_member_by_member(tmp_path):
    """A gzip NRRD's data are read as gzip members one after another (as a .nii.gz): a damaged second member is
    found. Kills the NRRD stream read as one stream (gzip_members=False), which stops at the first member's end."""
    raw = sitk.GetArrayFromImage(_volume()).astype("<f4").tobytes()
    second = bytearray(gzip.compress(raw[800:]))
    second[len(second) // 2] ^= 0xFF
    path = tmp_path / "t2.nrrd"
    path.write_bytes(_nrrd_header(path, "gzip") + gzip.compress(raw[:800]) + bytes(second))
    assert data_damage(path).startswith("its compressed data are corrupt")


def test_the_nrrd_encoding_gz_is_gzip_and_a_detached_datafile_is_left_to_itk(tmp_path):
    """NRRD spells gzip encoding ``gzip`` or ``gz``, and a detached data file ``data file`` or ``datafile``: a
    damaged ``gz`` stream is found; a header naming its ``datafile`` has no data of its own to check. Kills ``gz``
    dropped from the encodings, and ``datafile`` dropped from the detached header's keys."""
    raw = sitk.GetArrayFromImage(_volume()).astype("<f4").tobytes()
    stream = bytearray(gzip.compress(raw))
    stream[len(stream) // 2] ^= 0xFF
    gz = tmp_path / "gz.nrrd"
    gz.write_bytes(_nrrd_header(gz, "gz") + bytes(stream))
    assert data_damage(gz).startswith("its compressed data are corrupt")
    (tmp_path / "detached.raw.gz").write_bytes(gzip.compress(raw))
    detached = tmp_path / "detached.nrrd"
    detached.write_bytes(_nrrd_header(detached, "gzip", "datafile: detached.raw.gz\n"))
    assert sitk.ReadImage(str(detached)).GetSize() == (10, 12, 4)   # ITK reads it: it is no damaged file
    assert data_damage(detached) is None


def test_a_file_named_nrrd_that_is_no_nrrd_is_not_called_damaged(tmp_path):
    """Only a file that starts with the NRRD magic is parsed as an NRRD header: a text file named .nrrd whose lines
    look like an NRRD header (and a blank line, then bytes) is not reported as a damaged gzip stream. Kills the
    magic check dropped."""
    path = tmp_path / "notes.nrrd"
    path.write_bytes(b"encoding: gzip\n\nnot a gzip stream")
    assert data_damage(path) is None


def test_an_uncompressed_file_named_gz_and_an_unreadable_path_are_not_called_damaged(tmp_path):
    """A .gz file that is no gzip stream (an uncompressed NIfTI named .nii.gz, which the NIfTI reader reads as it
    is) is not checked, and a path that cannot be opened (a folder named .nii.gz) is no damage: ITK names what is
    wrong. Kills the gzip magic check dropped, and the OSError guard narrowed."""
    plain = _write(tmp_path / "a.nii", compress=False).read_bytes()
    named = tmp_path / "plain.nii.gz"
    named.write_bytes(plain)
    assert data_damage(named) is None
    (tmp_path / "folder.nii.gz").mkdir()
    assert data_damage(tmp_path / "folder.nii.gz") is None


def test_a_metaimage_one_byte_short_is_truncated(tmp_path):
    """'it holds N bytes of pixel data of the M its header describes': a .mha (header and data in one file) one
    byte short is truncated; the header's bytes are not pixel data. Kills the comparison off by one (present <
    count - 1), and the header's length not subtracted (present = file size)."""
    whole = _write(tmp_path / "whole.mha", compress=False).read_bytes()
    cut = tmp_path / "cut.mha"
    cut.write_bytes(whole[:-1])
    count = 10 * 12 * 4 * 4
    assert data_damage(cut) == (f"it holds {count - 1} bytes of pixel data of the {count} its header describes "
                                "(a truncated file)")
    assert data_damage(tmp_path / "whole.mha") is None


def test_a_vector_metaimage_counts_every_channel(tmp_path):
    """ElementNumberOfChannels multiplies the pixel data's size: a 2-channel .mha with half its data is truncated
    (as long as one channel's worth). Kills the channel count left out."""
    whole = _write(tmp_path / "vector.mha", compress=False, components=2).read_bytes()
    assert b"ElementNumberOfChannels = 2" in whole
    cut = tmp_path / "cut.mha"
    cut.write_bytes(whole[: len(whole) - 10 * 12 * 4 * 4])
    assert "truncated" in data_damage(cut)


def test_a_met_long_metaimage_has_four_bytes_a_voxel(tmp_path):
    """MetaIO's MET_LONG is 4 bytes (metaTypes.h MET_ValueTypeSize): a whole MET_LONG .mhd/.raw pair, which ITK
    reads, is intact. Kills MET_LONG counted as 8 bytes."""
    (tmp_path / "long.raw").write_bytes(np.arange(10 * 12 * 4, dtype="<i4").tobytes())
    header = tmp_path / "long.mhd"
    header.write_text("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                      "DimSize = 10 12 4\nElementType = MET_LONG\nElementDataFile = long.raw\n")
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(header))).ravel().tolist() == list(range(480))
    assert data_damage(header) is None


def test_compressed_data_true_in_lower_case_is_checked(tmp_path):
    """MetaIO reads ``CompressedData`` true whatever its case (metaObject.cxx: the value's first letter T or t): a
    hand-edited ``CompressedData = true`` .mha with a damaged zlib stream is corrupt, not counted as raw bytes.
    Kills the comparison made case-sensitive."""
    raw = np.arange(10 * 12 * 4, dtype="<f4").tobytes()
    stream = bytearray(zlib.compress(raw))
    stream[len(stream) // 2] ^= 0xFF
    path = tmp_path / "lower.mha"
    path.write_bytes(b"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                     b"CompressedData = true\nCompressedDataSize = " + str(len(stream)).encode()
                     + b"\nDimSize = 10 12 4\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n" + bytes(stream))
    assert data_damage(path).startswith("its compressed data are corrupt")


def test_a_compressed_metaimage_stream_ends_at_its_own_end(tmp_path):
    """A compressed MetaImage holds one zlib stream: bytes after it (which may start like a gzip member) are not
    read as another member. Kills the multi-member rule applied to a MetaImage's single stream."""
    raw = np.arange(10 * 12 * 4, dtype="<f4").tobytes()
    stream = zlib.compress(raw)
    path = tmp_path / "tail.mha"
    path.write_bytes(b"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                     b"CompressedData = True\nCompressedDataSize = " + str(len(stream)).encode()
                     + b"\nDimSize = 10 12 4\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n" + stream
                     + b"\x1f\x8b trailing bytes")
    assert data_damage(path) is None


@pytest.mark.parametrize("data_file", ["LIST", "slice%03d.raw 1 4 1"])
def test_a_metaimage_of_several_data_files_is_left_to_itk(tmp_path, data_file):
    """``ElementDataFile = LIST`` (file names on the lines after it) and a printf pattern with its range name no
    single data file: not reported as a missing one. Kills the LIST / pattern exclusion dropped."""
    for k in range(4):
        (tmp_path / f"slice{k + 1:03d}.raw").write_bytes(bytes(10 * 12 * 4))
    names = "".join(f"slice{k + 1:03d}.raw\n" for k in range(4)) if data_file == "LIST" else ""
    header = tmp_path / "slices.mhd"
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 10 12 4\nElementType = MET_FLOAT\n"
                      f"ElementDataFile = {data_file}\n{names}")
    assert data_damage(header) is None


def test_a_gzip_nrrd_whose_header_never_ends_is_not_checked(tmp_path):
    """Round-18 mutation audit. A gzip NRRD whose header has no blank line within nrrd_header.HEADER_LIMIT has no
    data offset: 'not a file whose stream this can find', so data_damage says nothing (None) rather than failing or
    reading the header as a stream."""
    from DCEDiffLib.nrrd_header import HEADER_LIMIT

    path = tmp_path / "endless.nrrd"
    path.write_bytes(_nrrd_header(path, "gzip")[:-1] + b"# a comment line\n" * (HEADER_LIMIT // 17 + 1)
                     + b"\n" + gzip.compress(b"\x00" * 64)[:10])
    assert data_damage(path) is None
