"""What a DICOM Part 10 file is, from its first bytes alone (for files GDCM cannot read): the "DICM" magic and the
file meta header's MediaStorageSOPClassUID (0002,0002).

Used to tell a damaged slice from a file that is no slice: GDCM drops an unreadable file of a series folder without
a word, and a truncated first or last slice leaves no gap in the stack (`volume_io.damaged_dicom_files`). A
structured report, presentation state, key object or encapsulated PDF beside the slices cannot be read as an image
either, but it is not damaged: only files whose storage class is an image's (or cannot be told) count.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

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
    return _meta_value(path, 0x0002)


def transfer_syntax(path: Path) -> Optional[str]:
    """The file meta header's TransferSyntaxUID (0002,0010), or None when the file has no readable meta header."""
    return _meta_value(path, 0x0010)


def _meta_value(path: Path, wanted: int) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_META_BYTES)
    except OSError:
        return None
    return _meta_text(list(_meta_elements(data)), wanted)


def _meta_text(elements: List[Tuple[int, bytes, int]], wanted: int) -> Optional[str]:
    """The text of group 0002 element ``wanted`` among :func:`_meta_elements`' results, or None."""
    for element, value, _ in elements:
        if element == wanted:
            return value.decode("ascii", "replace").strip("\0 ")
    return None


def _meta_elements(data: bytes) -> Iterator[Tuple[int, bytes, int]]:
    """(element, value, end) of each group 0002 element of a Part 10 file's first bytes, in file order; ``end`` of
    the last one is where the data set starts. Stops at a cut element."""
    if data[128:132] != b"DICM":
        return
    position = 132
    while position + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, position)
        if group != 0x0002:
            return
        vr = data[position + 4:position + 6]
        if vr in _LONG_LENGTH_VRS:
            if position + 12 > len(data):
                return
            (length,), start = struct.unpack_from("<I", data, position + 8), position + 12
        else:
            (length,), start = struct.unpack_from("<H", data, position + 6), position + 8
        if start + length > len(data):
            return
        yield element, data[start:start + length], start + length
        position = start + length


def looks_like_image_file(path: Path) -> bool:
    """A DICOM file that should hold an image: the DICM magic, and an image storage class in its meta header (or no
    class that can be read: a file cut inside its meta header is taken for a damaged image too)."""
    if not starts_like_dicom(path):
        return False
    storage = media_storage_class(path)
    return storage is None or any(storage == c or storage.startswith(c + ".") for c in IMAGE_STORAGE_CLASSES)


# Transfer syntaxes by name (messages), and those GDCM (as built into SimpleITK) decodes: checked on this build with
# real files (uncompressed, deflated, RLE, JPEG baseline/lossless, JPEG-LS, JPEG 2000, HTJ2K); MPEG/HEVC video, JPIP
# and syntaxes newer than GDCM (JPEG XL) it cannot.
DEFLATED = "1.2.840.10008.1.2.1.99"
UNCOMPRESSED = {"1.2.840.10008.1.2": "Implicit VR Little Endian", "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
                "1.2.840.10008.1.2.2": "Explicit VR Big Endian", DEFLATED: "Deflated Explicit VR"}
DECODED = dict(UNCOMPRESSED, **{
    "1.2.840.10008.1.2.5": "RLE Lossless", "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended", "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1", "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless", "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000", "1.2.840.10008.1.2.4.201": "HTJ2K Lossless",
    "1.2.840.10008.1.2.4.202": "HTJ2K Lossless RPCL", "1.2.840.10008.1.2.4.203": "HTJ2K"})
NOT_DECODED = {"1.2.840.10008.1.2.4.94": "JPIP Referenced", "1.2.840.10008.1.2.4.95": "JPIP Referenced Deflate",
               "1.2.840.10008.1.2.4.100": "MPEG2 Main Profile", "1.2.840.10008.1.2.4.101": "MPEG2 High Profile",
               "1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264", "1.2.840.10008.1.2.4.103": "MPEG-4 AVC/H.264 BD",
               "1.2.840.10008.1.2.4.107": "HEVC/H.265 Main", "1.2.840.10008.1.2.4.108": "HEVC/H.265 Main 10",
               "1.2.840.10008.1.2.4.110": "JPEG XL Lossless", "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
               "1.2.840.10008.1.2.4.112": "JPEG XL", "1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression"}
DECOMPRESS_HINT = ("decompress the files first, e.g. with GDCM `gdcmconv --raw IN OUT` or DCMTK `dcmdjpeg`/`dcmdjpls`/"
                   "`dcmdrle` (or re-export them uncompressed from the PACS)")


def transfer_syntax_text(uid: Optional[str]) -> str:
    """``1.2.840.10008.1.2.4.110 (JPEG XL Lossless)``: a transfer syntax as messages name it."""
    if not uid:
        return "an unreadable transfer syntax"
    name = DECODED.get(uid) or NOT_DECODED.get(uid) or "unknown to this reader"
    return f"{uid} ({name})"


def compressed(path: Path) -> bool:
    """Whether the pixel data of a DICOM file are compressed (encapsulated): the files whose decoders print to the
    console and whose failures need the transfer syntax named. False for uncompressed files and non-DICOM files."""
    uid = transfer_syntax(path)
    return uid is not None and uid not in UNCOMPRESSED


# Explicit VR Big Endian (retired, still in old archives): the one syntax whose data set is not little endian
BIG_ENDIAN = "1.2.840.10008.1.2.2"
_HEADER_CHUNK = 1 << 20
# (name, group, element, VR) of the timing an enhanced MR file keeps in its functional groups: FlipAngle and
# RepetitionTime in the MR Timing and Related Parameters Sequence (0018,9112), EffectiveEchoTime in the MR Echo
# Sequence (0018,9114); a classic file has them (EchoTime (0018,0081) for the echo) at its top level
MR_TIMING = (("flip_angle", 0x0018, 0x1314, b"DS"), ("repetition_time", 0x0018, 0x0080, b"DS"),
             ("echo_time", 0x0018, 0x9082, b"FD"))


def _tag_bytes(group: int, element: int, order: str) -> bytes:
    """A tag as the data set spells it: ``order`` "<" (little endian) or ">" (Explicit VR Big Endian)."""
    return struct.pack(order + "HH", group, element)


def _header_bytes(path: Path) -> Tuple[bytes, str]:
    """The bytes of a file before its pixel data element (b"" when unreadable), and the byte order of its data set
    (">" for Explicit VR Big Endian, else "<"; the file meta header is little endian whatever the syntax). A
    Deflated Explicit VR Little Endian file (GDCM reads it) keeps its data set, after the file meta header, as one
    raw deflate stream: inflated."""
    data, order = b"", "<"
    try:
        with open(path, "rb") as handle:
            meta, inflate = list(_meta_elements(handle.read(_META_BYTES))), None
            syntax = _meta_text(meta, 0x0010)
            order = ">" if syntax == BIG_ENDIAN else "<"
            pixel_data = _tag_bytes(0x7FE0, 0x0010, order)
            if syntax == DEFLATED:  # the data set starts where the file meta header ends
                handle.seek(meta[-1][2])
                inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            else:
                handle.seek(0)
            while pixel_data not in data:
                chunk = handle.read(_HEADER_CHUNK)
                if not chunk:
                    break
                data += inflate.decompress(chunk) if inflate is not None else chunk
    except (OSError, zlib.error):
        return b"", order
    return data.split(pixel_data, 1)[0], order


def _raw_values(data: bytes, group: int, element: int, vr: bytes, order: str) -> Iterator[bytes]:
    """The value bytes of every (group, element) in ``data``: explicit VR ``vr`` + 2-byte length, or implicit VR +
    4-byte length, tag and length in byte order ``order``. Values cut by the end of ``data`` are left out."""
    pattern = re.compile(re.escape(_tag_bytes(group, element, order)) + rb"(?:" + re.escape(vr) + rb"(..)|(....))",
                         re.S)
    for match in pattern.finditer(data):
        short, long = match.groups()
        length = struct.unpack(order + "H", short)[0] if short else struct.unpack(order + "I", long)[0]
        raw = data[match.end():match.end() + length]
        if len(raw) == length:
            yield raw


def _frame_positions(data: bytes, order: str) -> List[Tuple[float, float, float]]:
    """Every ImagePositionPatient (0020,0032) in a header's bytes that decodes as three numbers, in file order."""
    positions = []
    for raw in _raw_values(data, 0x0020, 0x0032, b"DS", order):
        try:
            values = tuple(float(v) for v in raw.decode("ascii").split("\\"))
        except (UnicodeDecodeError, ValueError):
            continue
        if len(values) == 3:
            positions.append(values)
    return positions


def frame_positions(path: Path) -> List[Tuple[float, float, float]]:
    """The per-frame ImagePositionPatient values of an enhanced (multi-frame) file, in frame order: GDCM turns them
    into one origin and spacing only, so whether the frames make one regular stack (or repeat positions: several time
    points in one file) is checked here. Read from the bytes before the pixel data (little endian, or big endian in
    the retired Explicit VR Big Endian syntax; a deflated data set inflated); [] when none can be read."""
    return _frame_positions(*_header_bytes(path))


def _element_values(data: bytes, group: int, element: int, vr: bytes, order: str = "<") -> List[float]:
    """The first value of every (group, element) in ``data`` (explicit VR ``vr`` + 2-byte length, or implicit VR +
    4-byte length; byte order ``order``): a decimal string (DS) or one 8-byte float (FD). Values that do not decode
    as such (bytes that only look like the tag) are skipped."""
    values = []
    for raw in _raw_values(data, group, element, vr, order):
        if len(raw) > 64:
            continue
        try:
            value = struct.unpack(order + "d", raw[:8])[0] if vr == b"FD" else float(raw.decode("ascii").split("\\")[0])
        except (struct.error, UnicodeDecodeError, ValueError):
            continue
        if math.isfinite(value):
            values.append(value)
    return values


def _functional_group_timing(data: bytes, order: str) -> Dict[str, float]:
    """:func:`functional_group_timing` of a header's bytes (the data set is in tag order: the functional groups
    shared by all frames (5200,9229), then those of each frame (5200,9230))."""
    shared_start = data.find(_tag_bytes(0x5200, 0x9229, order))
    per_frame_start = data.find(_tag_bytes(0x5200, 0x9230, order), max(shared_start, 0))
    shared = data[shared_start:per_frame_start if per_frame_start >= 0 else len(data)] if shared_start >= 0 else b""
    per_frame = data[per_frame_start:] if per_frame_start >= 0 else b""
    timing = {}
    for name, group, element, vr in MR_TIMING:
        values = _element_values(shared, group, element, vr, order)
        if not values:  # in the frames' own groups: one value for the series only when the frames agree
            values = _element_values(per_frame, group, element, vr, order)
            values = values if len(set(values)) == 1 else []
        if values:
            timing[name] = values[0]
    return timing


def functional_group_timing(path: Path) -> Dict[str, float]:
    """Flip angle (°), repetition time and echo time (ms) of an enhanced MR file, from its shared functional groups,
    else from its per-frame groups where the frames that carry a value agree on it: GDCM reads the top-level data
    set only, where an enhanced file has none of them. Keys: ``MR_TIMING``'s names; a value that cannot be read (or
    differs between frames) is left out, and a classic file (no functional groups) gives {}."""
    return _functional_group_timing(*_header_bytes(path))


def multi_frame_header(path: Path, positions: bool = True,
                       timing: bool = True) -> Tuple[List[Tuple[float, float, float]], Dict[str, float]]:
    """:func:`frame_positions` and :func:`functional_group_timing` of one file from one read of its header (a
    study scan needs both of an enhanced file; the header of a few thousand frames is megabytes); what is not
    asked for comes back empty, and nothing is read when neither is."""
    if not positions and not timing:
        return [], {}
    data, order = _header_bytes(path)
    return (_frame_positions(data, order) if positions else [],
            _functional_group_timing(data, order) if timing else {})
