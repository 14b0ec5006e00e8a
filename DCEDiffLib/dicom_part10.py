"""What a DICOM Part 10 file is, from its first bytes alone (for files GDCM cannot read): the "DICM" magic and the
file meta header's MediaStorageSOPClassUID (0002,0002).

Used to tell a damaged slice from a file that is no slice: GDCM drops an unreadable file of a series folder without
a word, and a truncated first or last slice leaves no gap in the stack (`volume_io.damaged_dicom_files`). A
structured report, presentation state, key object or encapsulated PDF beside the slices cannot be read as an image
either, but it is not damaged: only files whose storage class is an image's (or cannot be told) count.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

# storage SOP classes of images: MR (enhanced MR under it), CT, secondary capture, PET; each with its sub-classes
IMAGE_STORAGE_CLASSES = ("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.7",
                         "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.130")
_LONG_LENGTH_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN"}
_META_BYTES = 4096  # the file meta header is a few hundred bytes


def starts_like_dicom(path: Path) -> bool:
    """Whether a file starts like a DICOM Part 10 file (the "DICM" magic after its 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def media_storage_class(path: Path) -> Optional[str]:
    """The file meta header's MediaStorageSOPClassUID (0002,0002), or None when the file has no readable meta header
    (group 0002 is explicit VR little endian whatever the data set's transfer syntax)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_META_BYTES)
    except OSError:
        return None
    if data[128:132] != b"DICM":
        return None
    position = 132
    while position + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, position)
        if group != 0x0002:
            return None
        vr = data[position + 4:position + 6]
        if vr in _LONG_LENGTH_VRS:
            if position + 12 > len(data):
                return None
            (length,), start = struct.unpack_from("<I", data, position + 8), position + 12
        else:
            (length,), start = struct.unpack_from("<H", data, position + 6), position + 8
        if element == 0x0002:
            value = data[start:start + length]
            return value.decode("ascii", "replace").strip("\0 ") if len(value) == length else None
        position = start + length
    return None


def looks_like_image_file(path: Path) -> bool:
    """A DICOM file that should hold an image: the DICM magic, and an image storage class in its meta header (or no
    class that can be read: a file cut inside its meta header is taken for a damaged image too)."""
    if not starts_like_dicom(path):
        return False
    storage = media_storage_class(path)
    return storage is None or any(storage == c or storage.startswith(c + ".") for c in IMAGE_STORAGE_CLASSES)
