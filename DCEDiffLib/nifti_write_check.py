"""Whether a NIfTI file was written whole.

SimpleITK's NIfTI writer does not raise when the disk fills up: it prints "NWAD: wrote only 0 of N bytes" and
returns, leaving a short or empty file that the atomic rename then puts in place, and the command could end with
exit code 0 (found with a full 10 MB tmpfs). This checks the file against its own header: an uncompressed file must
hold the header's data size; a gzipped one must end with the gzip trailer whose length field matches it.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Optional, Tuple

from DCEDiffLib.nifti_nonfinite import header_kind, header_layout, open_nifti


def _expected_bytes(header: bytes) -> int:
    """Bytes of the uncompressed file: the data offset plus the voxels (datatype size from bitpix)."""
    layout = header_layout(header)
    if layout is None:
        raise ValueError("no NIfTI header")
    order, _, count, offset = layout
    size = header_kind(header)[1]
    bitpix = struct.unpack(order + "h", header[72:74] if size == 348 else header[14:16])[0]
    return int(offset + count * max(bitpix, 8) // 8)


def nifti_written_whole(path) -> bool:
    """True when ``path`` (.nii or .nii.gz) holds as many bytes as its header says (for .nii.gz: the gzip trailer's
    length, modulo 2³², as gzip stores it)."""
    path = Path(path)
    try:
        if os.path.getsize(path) == 0:  # (a gzipped file can be smaller than the header it holds)
            return False
        with open_nifti(path) as handle:
            header = handle.read(540)
        expected = _expected_bytes(header)
        if not path.name.lower().endswith(".gz"):
            return os.path.getsize(path) >= expected
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            length = struct.unpack("<I", handle.read(4))[0]
        return length == expected % (1 << 32)
    except (OSError, EOFError, ValueError, struct.error):
        return False


def nifti_shortfall(path) -> Optional[Tuple[int, int]]:
    """(bytes present, bytes its header describes) of a NIfTI file (.nii or .nii.gz) that holds fewer bytes than its
    header says: a truncated copy or download, which ITK's reader fills up with zeros without a word. None when the
    file is whole, or when its header cannot be parsed (the image reader then decides). The gzip trailer is checked
    first (no decompression); where it disagrees (a multi-member gzip's trailer holds only its last member's
    length) the stream is decompressed and counted."""
    path = Path(path)
    try:
        with open_nifti(path) as handle:
            header = handle.read(540)
        expected = _expected_bytes(header)
    except (OSError, EOFError, ValueError, struct.error, zlib.error):
        return None
    if nifti_written_whole(path):
        return None
    try:
        present = _gzip_length(path) if path.name.lower().endswith(".gz") else os.path.getsize(path)
    except OSError:
        return None
    return None if present >= expected else (present, expected)


def _gzip_length(path: Path) -> int:
    """Bytes a gzip file decompresses to, member after member; for a stream that ends early or is corrupt, the bytes
    it gave up to there."""
    total = 0
    inflater = zlib.decompressobj(31)
    with open(path, "rb") as handle:
        try:
            while True:
                block = handle.read(1 << 20)
                if not block:
                    return total
                while block:
                    total += len(inflater.decompress(block))
                    if not inflater.eof:
                        break
                    block = inflater.unused_data  # the next member
                    inflater = zlib.decompressobj(31)
        except zlib.error:
            return total
