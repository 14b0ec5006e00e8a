"""The shared NRRD header reader (DCEDiffLib/nrrd_header.py) on files ITK writes, for what the tests of its two users
(test_missing_placement.py, test_compressed_integrity_rules.py, test_volume_io_rules.py) do not look at: the data
offset of an attached .nrrd, a detached .nhdr that ends without a blank line (as ITK writes it), Windows line ends,
comment lines, and a header that never ends."""

import gzip

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.nrrd_header import HEADER_LIMIT, read_nrrd_header


def _volume() -> sitk.Image:
    return sitk.GetImageFromArray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))


def test_an_attached_nrrd_has_its_data_at_the_offset_and_a_detached_header_names_its_file(tmp_path):
    """ITK's gzip .nrrd: the gzip stream starts at ``data_offset`` and inflates to the voxels; fields are lower case,
    comment lines (the format-specification line ITK writes) are no field. ITK's .nhdr ends at its ``data file``
    line without a blank line: its fields are read all the same, with no data offset."""
    attached = tmp_path / "t2.nrrd"
    sitk.WriteImage(_volume(), str(attached), True)
    header = read_nrrd_header(attached)
    data = attached.read_bytes()[header.data_offset:]
    assert np.array_equal(np.frombuffer(gzip.decompress(data), "<f4"), np.arange(24, dtype=np.float32))
    assert header.fields["encoding"] == "gzip" and header.fields["sizes"] == "4 3 2" and header.data_file is None
    assert not any(key.startswith("#") for key in header.fields)
    detached = tmp_path / "t2.nhdr"
    sitk.WriteImage(_volume(), str(detached), True)
    assert not detached.read_bytes().endswith(b"\n\n")   # as ITK writes it: no blank line, the file just ends
    header = read_nrrd_header(detached)
    assert header.data_offset is None and header.data_file == "t2.raw.gz"
    assert "space directions" in header.fields


def test_windows_line_ends_a_header_past_the_limit_and_no_nrrd(tmp_path):
    """A header saved with CRLF line ends ends at its blank line ``\\r\\n``; a header longer than HEADER_LIMIT
    without a blank line has no data offset (its bytes are not taken for pixel data); a file without the NRRD
    magic is no header at all."""
    crlf = tmp_path / "crlf.nrrd"
    crlf.write_bytes(b"NRRD0004\r\nType: float\r\n# space directions: (1,0,0)\r\nencoding: raw\r\n\r\n\x00\x00\x80?")
    header = read_nrrd_header(crlf)
    assert header.fields == {"type": "float", "encoding": "raw"} and header.data_offset == len(crlf.read_bytes()) - 4
    endless = tmp_path / "endless.nrrd"
    endless.write_bytes(b"NRRD0004\n" + b"# a comment line\n" * (HEADER_LIMIT // 17 + 1) + b"encoding: gzip\n\nx")
    assert read_nrrd_header(endless).data_offset is None
    other = tmp_path / "other.nrrd"
    other.write_bytes(b"encoding: gzip\n\n")
    assert read_nrrd_header(other) is None


def test_a_long_header_within_the_limit_is_read_and_a_value_may_hold_colons(tmp_path):
    """Round-18 mutation audit. 'Lines are read up to the blank line ... or HEADER_LIMIT bytes': a header of many
    key/value lines (Slicer keeps DICOM fields there) still under HEADER_LIMIT is read whole, its data offset
    right after the blank line; a field's value is everything after the first colon (a Windows path in ``data
    file``, a description with colons); a file whose first four bytes are not ``NRRD`` is no header."""
    lines = [f"DICOM_{index:05d}:=a value of a few words" for index in range(1600)]
    text = "NRRD0004\n" + "\n".join(lines) + "\ncontent: T2W: axial, 3 mm\ndata file: C:\\data\\t2.raw\n\n"
    assert 50_000 < len(text) < 64 * 1024 == HEADER_LIMIT   # 64 KiB: the module's documented limit
    long = tmp_path / "long.nhdr"
    long.write_bytes(text.encode())
    header = read_nrrd_header(long)
    assert header.data_offset == len(text)
    assert header.fields["content"] == "T2W: axial, 3 mm" and header.data_file == "C:\\data\\t2.raw"
    assert header.fields["dicom_00000"] == "=a value of a few words"   # key:=value pairs: the key before ':'
    almost = tmp_path / "almost.nrrd"
    almost.write_bytes(b"NRRX0004\nencoding: raw\n\n")
    assert read_nrrd_header(almost) is None



def _header_of(size: int, last_line: bytes) -> bytes:
    """A NRRD header whose lines before the blank line hold exactly ``size`` bytes (magic included), ``last_line``
    last, then the blank line and four bytes of data."""
    magic, filler = b"NRRD0004\n", b"# a comment line of a long header\n"
    count = (size - len(magic) - len(last_line)) // len(filler) - 1
    pad = size - len(magic) - len(last_line) - count * len(filler)   # one comment line of the bytes left over
    header = magic + filler * count + b"#" + b" " * (pad - 2) + b"\n" + last_line
    assert len(header) == size   # the test's own arithmetic
    return header + b"\n" + b"\x00\x00\x80?"


def test_a_header_of_exactly_header_limit_bytes_is_read_and_one_byte_more_is_cut(tmp_path):
    """Round-18 mutation audit (the limit's exact byte). read_nrrd_header: 'the lines before the blank line may hold
    HEADER_LIMIT bytes, magic included; one byte more and the header is cut': at HEADER_LIMIT bytes every field is
    read and the data start right after the blank line (byte HEADER_LIMIT + 1); at HEADER_LIMIT + 1 bytes the blank
    line is not looked for: no data offset (its data are not searched), and the header says it was cut."""
    last = b"space directions: (2,0,0) (0,2,0) (0,0,3)\n"
    at_limit = tmp_path / "at_limit.nrrd"
    at_limit.write_bytes(_header_of(HEADER_LIMIT, last))
    header = read_nrrd_header(at_limit)
    assert header.data_offset == HEADER_LIMIT + 1 and header.cut is False
    assert header.fields == {"space directions": "(2,0,0) (0,2,0) (0,0,3)"}
    over = tmp_path / "over.nrrd"
    over.write_bytes(_header_of(HEADER_LIMIT + 1, last))
    header = read_nrrd_header(over)
    assert header.data_offset is None and header.cut is True


def test_a_header_that_ends_with_its_file_within_the_limit_is_not_cut(tmp_path):
    """NrrdHeader.cut: 'True when it ran past HEADER_LIMIT'. A detached header as ITK writes it ends with its file,
    without a blank line, well within the limit: every line was read, so it is not cut (a field missing from it is
    missing from the file); a header without a blank line that runs past the limit is."""
    detached = tmp_path / "t2.nhdr"
    sitk.WriteImage(_volume(), str(detached), True)
    header = read_nrrd_header(detached)
    assert header.data_offset is None and header.data_file == "t2.raw.gz"   # the control: it ended with the file
    assert header.cut is False
    endless = tmp_path / "endless.nrrd"
    endless.write_bytes(b"NRRD0004\n" + b"# a comment line\n" * (HEADER_LIMIT // 17 + 1) + b"encoding: gzip\n")
    assert read_nrrd_header(endless).cut is True
