"""NaN and infinite voxels of a NIfTI file, counted from the file itself.

ITK's NIfTI reader (and so SimpleITK's) turns NaN and ±Inf voxels into 0, so a volume with NaNs would pass every
check on the image it returns and be used as if those voxels were dark. This reads the data block of a float NIfTI-1
or NIfTI-2 file (plain or gzipped) with numpy and counts them; other data types cannot hold NaN.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

_FLOAT_TYPES = {16: "f4", 64: "f8"}   # NIfTI datatype codes of float32 and float64


def is_nifti(path: Path) -> bool:
    """Whether ``path`` is named as a NIfTI file (.nii or .nii.gz)."""
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def open_nifti(path: Path):
    """The file opened for reading bytes, through gzip when it is a .gz."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_header(path: Path) -> Optional[bytes]:
    """The first 540 bytes of a NIfTI file (a NIfTI-2 header; a NIfTI-1 one is the first 348), through gzip for a
    .gz; None when the file cannot be read."""
    try:
        with open_nifti(path) as handle:
            return handle.read(540)
    except (OSError, EOFError):
        return None


def header_kind(header: bytes) -> Optional[Tuple[str, int]]:
    """(byte order, header size: 348 for NIfTI-1, 540 for NIfTI-2) of a NIfTI header, or None."""
    if len(header) < 4:
        return None
    for order in ("<", ">"):
        size = struct.unpack(order + "i", header[:4])[0]
        if size in (348, 540):
            return order, size
    return None


def header_layout(header: bytes) -> Optional[Tuple[str, int, int, int]]:
    """(byte order, datatype, voxel count, data offset) from a NIfTI-1 or NIfTI-2 header, or None."""
    kind = header_kind(header)
    if kind is None:
        return None
    order, size = kind
    if size == 348:  # the data of a single-file NIfTI-1 starts at 352 at the earliest (as niftilib reads it)
        dims = struct.unpack(order + "8h", header[40:56])
        datatype = struct.unpack(order + "h", header[70:72])[0]
        offset = max(int(struct.unpack(order + "f", header[108:112])[0]), 352)
    else:
        datatype = struct.unpack(order + "h", header[12:14])[0]
        dims = struct.unpack(order + "8q", header[16:80])
        offset = max(int(struct.unpack(order + "q", header[168:176])[0]), 544)
    rank = int(dims[0])
    if not 1 <= rank <= 7:
        return None
    count = int(np.prod([max(int(d), 1) for d in dims[1:rank + 1]], dtype=np.int64))
    return order, datatype, count, offset


def transform_codes(header: bytes) -> Optional[Tuple[int, int]]:
    """(qform_code, sform_code) of a NIfTI-1 or NIfTI-2 header (int16 at byte 252 or int32 at 344), or None."""
    kind = header_kind(header)
    if kind is None:
        return None
    order, size = kind
    offset, fmt = (252, order + "2h") if size == 348 else (344, order + "2i")
    if len(header) < offset + struct.calcsize(fmt):
        return None
    return struct.unpack(fmt, header[offset:offset + struct.calcsize(fmt)])


def count_nonfinite(path) -> Optional[Tuple[int, int]]:
    """(NaN or infinite voxels, all voxels) of a float NIfTI file; None for another data type or a file this cannot
    parse (the image reader then decides)."""
    path = Path(path)
    try:
        with open_nifti(path) as handle:
            header = handle.read(540)
            layout = header_layout(header) if len(header) >= 348 else None
            if layout is None or layout[1] not in _FLOAT_TYPES:
                return None
            order, datatype, count, offset = layout
            dtype = np.dtype(order + _FLOAT_TYPES[datatype])
            handle.seek(offset)
            data = np.frombuffer(handle.read(count * dtype.itemsize), dtype=dtype)
    except (OSError, EOFError, struct.error, ValueError):
        return None
    return int(data.size - np.count_nonzero(np.isfinite(data))), int(data.size)
