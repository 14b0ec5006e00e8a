"""Whether a NIfTI file was written whole.

SimpleITK's NIfTI writer does not raise when the disk fills up: it prints "NWAD: wrote only 0 of N bytes" and
returns, leaving a short or empty file that the atomic rename then puts in place, and the command could end with
exit code 0 (found with a full 10 MB tmpfs). This checks the file against its own header: an uncompressed file must
hold the header's data size; a gzipped one must end with the gzip trailer whose length field matches it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

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
