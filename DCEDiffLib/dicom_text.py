"""DICOM text tags as proper Unicode, decoded with the file's SpecificCharacterSet (0008,0005).

GDCM hands a tag's bytes to Python as they are stored, and SimpleITK turns bytes that are not UTF-8 into lone
surrogates ("\\udcfc" for a Latin-1 "ü"). Such a string cannot be printed to a UTF-8 console or written to a UTF-8
file without an error, so a series description of a European site (ISO_IR 100, the usual set there) would crash
the listing of a study or put invalid text into synthesis.json. Here the bytes are recovered and decoded with the
character set the file declares.

A character set with ISO 2022 code extensions (``ISO 2022 IR 6\\ISO 2022 IR 100``, ``\\ISO 2022 IR 87`` for
Japanese, ``\\ISO 2022 IR 149`` for Korean: PS3.3 C.12.1.1.2, PS3.5 6.1.2.5) switches sets inside a value with
escape sequences: its bytes are decoded set by set (pydicom's ``charset`` does the same; it is no dependency here).
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

# DICOM defined terms (single-byte sets, with or without ISO 2022 code extensions, and UTF-8) → Python codecs
_CODECS = {
    "ISO_IR 6": "ascii", "ISO_IR 100": "latin_1", "ISO_IR 101": "iso8859_2", "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4", "ISO_IR 144": "iso8859_5", "ISO_IR 127": "iso8859_6", "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8", "ISO_IR 148": "iso8859_9", "ISO_IR 203": "iso8859_15", "ISO_IR 166": "tis_620",
    "ISO_IR 13": "shift_jis", "ISO_IR 192": "utf_8", "GB18030": "gb18030", "GBK": "gbk",
}
ESC = 0x1B
# G0 sets (bytes 0x00–0x7F) as (escape sequence, codec that decodes the sequence and the bytes after it): Python's
# ISO 2022 codecs know the G0 escapes, so a run of G0 bytes is decoded with its escape sequence in front
_ASCII = (b"", "ascii")
_G0 = {b"\x1b(B": _ASCII, b"\x1b(J": (b"", "shift_jis"),               # JIS X 0201 romaji (IR 13's G0)
       b"\x1b$B": (b"\x1b$B", "iso2022_jp"),                           # JIS X 0208 kanji (IR 87)
       b"\x1b$(D": (b"\x1b$(D", "iso2022_jp_2")}                       # JIS X 0212 supplementary kanji (IR 159)
# G1 sets (bytes 0xA0–0xFF) → codecs whose upper half is that set: ISO 8859 parts, JIS X 0201 katakana (half-width
# in Shift JIS), and the 94×94 sets of Korean (KS X 1001, as EUC-KR) and Chinese (GB 2312, as EUC-CN)
_G1 = {b"\x1b-A": "latin_1", b"\x1b-B": "iso8859_2", b"\x1b-C": "iso8859_3", b"\x1b-D": "iso8859_4",
       b"\x1b-L": "iso8859_5", b"\x1b-G": "iso8859_6", b"\x1b-F": "iso8859_7", b"\x1b-H": "iso8859_8",
       b"\x1b-M": "iso8859_9", b"\x1b-b": "iso8859_15", b"\x1b-T": "tis_620", b"\x1b)I": "shift_jis",
       b"\x1b$)C": "euc_kr", b"\x1b$)A": "gb2312"}
# ISO 2022 defined terms → the escape sequences that designate their sets (IR 13: romaji in G0, katakana in G1)
_TERMS = {"ISO 2022 IR 6": (b"\x1b(B",), "ISO 2022 IR 100": (b"\x1b-A",), "ISO 2022 IR 101": (b"\x1b-B",),
          "ISO 2022 IR 109": (b"\x1b-C",), "ISO 2022 IR 110": (b"\x1b-D",), "ISO 2022 IR 144": (b"\x1b-L",),
          "ISO 2022 IR 127": (b"\x1b-G",), "ISO 2022 IR 126": (b"\x1b-F",), "ISO 2022 IR 138": (b"\x1b-H",),
          "ISO 2022 IR 148": (b"\x1b-M",), "ISO 2022 IR 203": (b"\x1b-b",), "ISO 2022 IR 166": (b"\x1b-T",),
          "ISO 2022 IR 13": (b"\x1b(J", b"\x1b)I"), "ISO 2022 IR 87": (b"\x1b$B",), "ISO 2022 IR 159": (b"\x1b$(D",),
          "ISO 2022 IR 149": (b"\x1b$)C",), "ISO 2022 IR 58": (b"\x1b$)A",)}
_State = Tuple[Tuple[bytes, str], Optional[str]]   # (G0 (escape, codec), G1 codec or None)


def codec_for(character_set: str) -> str:
    """The Python codec of a SpecificCharacterSet value (its first term; "ISO 2022 IR 100" as "ISO_IR 100");
    UTF-8 when it is absent or not known here."""
    first = (character_set or "").split("\\")[0].strip().upper().replace("ISO 2022 IR ", "ISO_IR ")
    return _CODECS.get(first, "utf_8")


def decode_tag(text: str, character_set: str = "") -> str:
    """``text`` as SimpleITK returned it (undecodable bytes as surrogates), decoded with ``character_set``; bytes
    that the character set cannot decode become U+FFFD, so the result is always valid Unicode."""
    if not any("\udc80" <= c <= "\udcff" for c in text) and "\x1b" not in text:
        return text  # valid UTF-8 (ASCII included) without ISO 2022 escapes: nothing to recover
    return decode_bytes(text.encode("utf-8", "surrogateescape"), character_set)


def decode_bytes(raw: bytes, character_set: str = "") -> str:
    """A text value's bytes decoded with a SpecificCharacterSet value: one set (the codec of :func:`codec_for`), or
    sets with ISO 2022 code extensions, switched by escape sequences; never an exception (U+FFFD instead)."""
    terms = [t.strip().upper() for t in (character_set or "").split("\\")]
    if len(terms) == 1 and not terms[0].startswith("ISO 2022"):
        return raw.decode(codec_for(character_set), errors="replace")
    return _decode_iso2022(raw, terms)


def _designate(state: _State, escape: bytes) -> _State:
    """The state after an escape sequence: it replaces the G0 or the G1 set it designates (unknown: no change)."""
    if escape in _G0:
        return _G0[escape], state[1]
    return state[0], _G1.get(escape, state[1])


def _decode_iso2022(raw: bytes, terms) -> str:
    """Bytes under ISO 2022 code extensions: the first term's sets are active at the start (the default repertoire
    when it is empty), each escape sequence switches its G0 or G1 set; bytes below 0x80 are decoded with the G0 set,
    the others with the G1 set. A writer that put upper-half bytes in without an escape (as many do for Latin-1)
    while the first term has no G1 set: those bytes are decoded with the first later term that has one."""
    state: _State = (_ASCII, None)
    for escape in _TERMS.get(terms[0], ()):
        state = _designate(state, escape)
    fallback = next((_G1[e] for t in terms[1:] for e in _TERMS.get(t, ()) if e in _G1), None)
    parts, position = [], 0
    while position < len(raw):
        if raw[position] == ESC:
            escape = next((e for e in (*_G0, *_G1) if raw.startswith(e, position)), None)
            if escape is None:   # not an escape of a DICOM set: one undecodable byte
                parts.append("\ufffd")
                position += 1
                continue
            state = _designate(state, escape)
            position += len(escape)
            continue
        end = raw.find(b"\x1b", position)
        parts.append(_decode_run(raw[position:end if end >= 0 else len(raw)], state, fallback))
        position = end if end >= 0 else len(raw)
    return "".join(parts)


def _decode_run(run: bytes, state: _State, fallback: Optional[str]) -> str:
    """Bytes between escape sequences, split into their G0 (below 0x80) and G1 (0x80 and up) stretches."""
    (prefix, g0), g1 = state
    return "".join(
        (stretch.decode(g1 or fallback or "ascii", errors="replace") if stretch[0] >= 0x80
         else (prefix + stretch).decode(g0, errors="replace"))
        for stretch in re.findall(rb"[\x00-\x7f]+|[\x80-\xff]+", run))
