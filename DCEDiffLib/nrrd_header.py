"""The text header of a NRRD file (.nrrd, or a detached .nhdr): its fields and where its pixel data start.

A NRRD header is ASCII lines after the magic ``NRRD000N``, up to the first blank line; the data follow at once in an
attached .nrrd, or lie in the file named by ``data file`` (a detached header, which may end without a blank line).
Read here once for the checks that need a field ITK does not report: ``missing_placement`` (no ``space
directions``) and ``compressed_integrity`` (``encoding``, the data offset, a detached ``data file``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Optional

HEADER_LIMIT = 1 << 16  # a header runs to its first blank line; real ones hold a few hundred bytes


@dataclasses.dataclass(frozen=True)
class NrrdHeader:
    """``fields``: field name (lower case, as the NRRD reader compares them) → value, comment lines left out;
    ``data_offset``: the byte where the data start after the blank line, None when the header ends at the end of the
    file or runs past ``HEADER_LIMIT`` without one; ``cut``: True when it ran past ``HEADER_LIMIT`` (the lines after
    it were not read, so a field missing from ``fields`` may still be in the file)."""

    fields: Dict[str, str]
    data_offset: Optional[int]
    cut: bool = False

    @property
    def data_file(self) -> Optional[str]:
        """The detached data file the header names (``data file`` or ``datafile``), None for attached data."""
        return self.fields.get("data file", self.fields.get("datafile"))


def read_nrrd_header(path) -> Optional[NrrdHeader]:
    """The header of the NRRD file ``path``; None when the file does not start with the NRRD magic. Lines are read
    up to the blank line, the end of the file or ``HEADER_LIMIT`` bytes (no pixel data is read as a header line):
    the lines before the blank line may hold ``HEADER_LIMIT`` bytes, magic included; one byte more and the header is
    ``cut``. An unreadable file raises OSError: the callers decide what that means."""
    fields: Dict[str, str] = {}
    offset = 0
    with open(Path(path), "rb") as handle:
        if handle.read(4) != b"NRRD":
            return None
        handle.seek(0)
        while offset <= HEADER_LIMIT:
            raw = handle.readline(HEADER_LIMIT + 1)
            if not raw:
                return NrrdHeader(fields, None)  # the end of the file: a detached header may stop here
            offset += len(raw)
            line = raw.decode("latin-1").strip()
            if not line:
                return NrrdHeader(fields, offset)
            key, sep, value = line.partition(":")
            if sep and not line.startswith("#"):
                fields[key.strip().lower()] = value.strip()
    return NrrdHeader(fields, None, cut=True)
