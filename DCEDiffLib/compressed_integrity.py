"""Whether an image file's pixel data are intact, where ITK does not say.

ITK reads a compressed file whose stream is damaged (one byte changed by a bad copy, disk or download) without a
word: the gzip CRC of a .nii.gz and the zlib checksum of a compressed NRRD/MetaImage are not checked, and the voxels
after the damage come back as noise (found by a bug hunt: a .nii.gz T1-pre with one byte flipped ran to the end,
exit code 0, on a volume of which half the voxels were garbage). A truncated MetaImage (.mha/.mhd) is refused by
ITK, but with the stale reason "No such file or directory" for a file that exists. :func:`data_damage` decompresses
the stream once (checksums checked) or counts the raw bytes, and says what is wrong in words.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterable, Optional

from DCEDiffLib.nrrd_header import read_nrrd_header

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_META_TYPE_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
                    "MET_DOUBLE": 8}


def _chunks(path: Path, offset: int = 0) -> Iterable[bytes]:
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            block = handle.read(_CHUNK)
            if not block:
                return
            yield block


def _stream_damage(blocks: Iterable[bytes], gzip_members: bool) -> Optional[str]:
    """Words for a compressed stream that is corrupt or ends early; None when it inflates whole (checksums checked).
    ``gzip_members``: gzip members one after another (a multi-member .gz); else one zlib or gzip stream."""
    inflater = zlib.decompressobj(31 if gzip_members else 47)
    try:
        for block in blocks:
            while block:
                if inflater is None:  # after a whole member: another one, or padding / trailing bytes (ignored)
                    if not (gzip_members and block[:2] == _GZIP_MAGIC):
                        return None
                    inflater = zlib.decompressobj(31)
                inflater.decompress(block)
                if not inflater.eof:
                    break
                block, inflater = inflater.unused_data, None
    except zlib.error as exc:
        return f"its compressed data are corrupt (zlib: {exc})"
    if inflater is not None:
        return "its compressed data end early (a truncated file)"
    return None


def _metaimage_damage(path: Path) -> Optional[str]:
    fields, offset = {}, 0
    with open(path, "rb") as handle:
        for raw in handle:
            offset += len(raw)
            key, sep, value = raw.decode("latin-1").partition("=")
            if not sep:
                return None
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                break
            if offset > 1 << 16:
                return None
    data_name = fields.get("ElementDataFile", "")
    if data_name == "LOCAL":
        data_path = path
    elif data_name and " " not in data_name and data_name.upper() != "LIST":
        data_path, offset = path.parent / data_name, 0
        if not data_path.is_file():
            return f"its pixel data file {data_path} (ElementDataFile) does not exist"
    else:
        return None
    if fields.get("CompressedData", "").lower() == "true":
        return _stream_damage(_chunks(data_path, offset), gzip_members=False)
    try:
        count = 1
        for size in fields["DimSize"].split():
            count *= int(size)
        count *= int(fields.get("ElementNumberOfChannels", "1")) * _META_TYPE_BYTES[fields["ElementType"]]
    except (KeyError, ValueError):
        return None
    present = data_path.stat().st_size - offset
    if present < count:
        return f"it holds {present} bytes of pixel data of the {count} its header describes (a truncated file)"
    return None


def _nrrd_damage(path: Path) -> Optional[str]:
    header = read_nrrd_header(path)
    if header is None or header.data_offset is None:
        return None  # no NRRD, or no blank line before data: not a file whose stream this can find
    if header.data_file is not None:
        return None  # a detached header: ITK names a missing data file itself
    if header.fields.get("encoding", "").lower() in ("gzip", "gz"):
        return _stream_damage(_chunks(path, header.data_offset), gzip_members=True)
    return None


def data_damage(path) -> Optional[str]:
    """Words for damaged pixel data of the image file ``path`` (a corrupt or short compressed stream, a truncated
    MetaImage, a missing .raw beside a .mhd); None when the data are intact or the format is not one checked here."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            with open(path, "rb") as handle:
                if handle.read(2) != _GZIP_MAGIC:
                    return None
            return _stream_damage(_chunks(path), gzip_members=True)
        if name.endswith((".mha", ".mhd")):
            return _metaimage_damage(path)
        if name.endswith(".nrrd"):
            return _nrrd_damage(path)
    except OSError:
        return None
    return None
