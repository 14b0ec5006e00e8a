"""DICOM text tags as proper Unicode, decoded with the file's SpecificCharacterSet (0008,0005).

GDCM hands a tag's bytes to Python as they are stored, and SimpleITK turns bytes that are not UTF-8 into lone
surrogates ("\\udcfc" for a Latin-1 "ü"). Such a string cannot be printed to a UTF-8 console or written to a UTF-8
file without an error, so a series description of a European site (ISO_IR 100, the usual set there) would crash
the listing of a study or put invalid text into synthesis.json. Here the bytes are recovered and decoded with the
character set the file declares.
"""

from __future__ import annotations

# DICOM defined terms (single-byte sets, with or without ISO 2022 code extensions, and UTF-8) → Python codecs
_CODECS = {
    "ISO_IR 6": "ascii", "ISO_IR 100": "latin_1", "ISO_IR 101": "iso8859_2", "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4", "ISO_IR 144": "iso8859_5", "ISO_IR 127": "iso8859_6", "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8", "ISO_IR 148": "iso8859_9", "ISO_IR 203": "iso8859_15", "ISO_IR 166": "tis_620",
    "ISO_IR 13": "shift_jis", "ISO_IR 192": "utf_8", "GB18030": "gb18030", "GBK": "gbk",
}


def codec_for(character_set: str) -> str:
    """The Python codec of a SpecificCharacterSet value (its first term; "ISO 2022 IR 100" as "ISO_IR 100");
    UTF-8 when it is absent or not known here."""
    first = (character_set or "").split("\\")[0].strip().upper().replace("ISO 2022 IR ", "ISO_IR ")
    return _CODECS.get(first, "utf_8")


def decode_tag(text: str, character_set: str = "") -> str:
    """``text`` as SimpleITK returned it (undecodable bytes as surrogates), decoded with ``character_set``; bytes
    that the character set cannot decode become U+FFFD, so the result is always valid Unicode."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text  # valid UTF-8 (ASCII included): nothing to recover
    raw = text.encode("utf-8", "surrogateescape")
    return raw.decode(codec_for(character_set), errors="replace")
