"""DICOM study scanning rules at their definitions, on header-only series (found by a mutation audit): a dynamic series
is split only into whole volumes, frame times come from a tag whose values tell the frames apart, every b-value
counts (b = 0 included), a series' time is its earliest, DICOM TM times keep their fraction of a second, the
skipped-file warning counts what it does not name, a DICOMDIR index and hidden folders are not scanned. Enhanced MR
files written byte by byte: frame positions and functional-group timing in implicit VR, deflated, big endian,
behind a long private element, a look-alike tag or no Pixel Data element; frames that disagree on a timing value;
descriptions decoded with their character set (ISO 2022 code extensions too); the decoders' stderr captured inside
its block only."""

import dataclasses
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from DCEDiffLib.dicom_part10 import frame_positions, functional_group_timing
from DCEDiffLib.dicom_study import DicomFile, SeriesInfo, dicom_time_seconds, scan_folder
from DCEDiffLib.errors import InputError


def header_series(positions=4, *, tp=None, trigger_ms=None, acq_s=None, description="t1_twist_tra_dyn"):
    """A header-only series (no files on disk), as Testing/test_dicom_study.fake_series: one DicomFile per (time
    point, slice position), slices 3 mm apart along z; path ``/none/<time point>/<position>``."""
    frames = len(tp or trigger_ms or acq_s or [None])
    files = []
    for t in range(frames):
        for z in range(positions):
            files.append(DicomFile(f"/none/{t}/{z}", (0.0, 0.0, 3.0 * z), (1, 0, 0, 0, 1, 0),
                                   None if tp is None else tp[t], None if trigger_ms is None else trigger_ms[t],
                                   None if acq_s is None else acq_s[t], None, None, None))
    files.reverse()  # file order must not matter
    info = SeriesInfo("2.25.9", 9, description, description, "*fldyn3d1", ("ORIGINAL", "PRIMARY"), "MR", "1.2", "P",
                      "20000101", 12.0, 3.9, 1.4, "3D", 8, 8, (1.0, 1.0), files)
    info.orientation = "axial"
    return info


def frame_of(f: DicomFile) -> int:
    return int(f.path.split("/")[-2])


def test_a_frame_missing_a_slice_does_not_make_a_short_volume():
    """volumes(): a series is split by the first tag 'that gives volumes with one file per slice position'. Three
    temporal positions over 4 slice positions, one slice of the second frame missing: splitting by temporal position
    would give a 3-slice volume beside 4-slice ones, so the series is not split that way; every volume it gives holds
    every slice position (here the whole series is one volume, which the reader then refuses)."""
    series = header_series(4, tp=[1, 2, 3])
    series.files = [f for f in series.files if f.path != "/none/1/3"]
    volumes = series.volumes()
    assert series.num_positions == 4 and series.num_files == 11
    assert all(len({f.position for f in v.files}) == series.num_positions for v in volumes)
    assert len(volumes) == 1 and len(volumes[0].files) == 11


def test_frame_times_skip_a_tag_that_does_not_tell_the_frames_apart():
    """Volume.time_s: seconds from the first volume, from TriggerTime, else the acquisition times. A scanner that
    writes TriggerTime 0 on every frame gives no times by it: the acquisition times (10 s apart) must give them,
    not 0 s for every frame."""
    series = header_series(4, tp=[3, 1, 2, 5, 4], trigger_ms=[0.0] * 5,
                           acq_s=[1020.0, 1000.0, 1010.0, 1040.0, 1030.0])
    volumes = series.volumes()
    assert [v.temporal_position for v in volumes] == [1, 2, 3, 4, 5]
    assert [v.time_s for v in volumes] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert [sorted({frame_of(f) for f in v.files}) for v in volumes] == [[1], [2], [0], [4], [3]]


def test_a_time_tag_that_differs_from_slice_to_slice_does_not_cut_frames_into_slices():
    """volumes(): a tag splits a series only into volumes holding every slice position. A one-series TWIST whose
    AcquisitionTime is missing on some frames leaves ContentTime, which Siemens writes per slice (the time each image
    was made): grouping by it gave 20 one-slice "volumes", and the run ended in "DCE frame 0 … is a 2D image". The
    series is dynamic by name: its frames come by InstanceNumber instead, 5 whole volumes in time order."""
    series = header_series(4, tp=[None] * 5)
    for f in series.files:
        frame, z = frame_of(f), int(f.path.split("/")[-1])
        f.content_time_s = 36000.0 + 3.5 * frame + 30.0 + 0.016 * z
        f.instance_number = 1 + frame * 4 + z
    volumes = series.volumes()
    assert [len(v.files) for v in volumes] == [4] * 5
    assert [sorted({frame_of(f) for f in v.files}) for v in volumes] == [[t] for t in range(5)]
    # not named dynamic (a multi-echo series): one volume, never a stack of single slices
    series.description = series.protocol = series.sequence_name = "t2_map_se_mc_tra"
    series._volumes = None
    assert len(series.volumes()) == 1


class _Header:
    """The header of one file as the scanner reads it (what ``_tag`` asks of a SimpleITK reader)."""

    def __init__(self, tags: dict):
        self.tags = tags

    def HasMetaDataKey(self, key):  # noqa: N802 (SimpleITK's name)
        return key in self.tags

    def GetMetaData(self, key):  # noqa: N802
        return self.tags[key]


def test_every_b_value_of_a_series_counts_b0_included():
    """SeriesInfo.b_values: 'distinct DiffusionBValue values over the files'. A DWI series of b = 0 and b = 800
    images has two b-values; b = 0 is a value, not a missing tag (a series of b = 0 images only is diffusion by its
    b-values, whatever its name)."""
    from DCEDiffLib.dicom_study import TAGS, _series_info

    entries = []
    for index, (b, z) in enumerate([(0.0, 0), (0.0, 1), (800.0, 0), (800.0, 1)]):
        f = DicomFile(f"/none/{index}", (0.0, 0.0, 3.0 * z), (1, 0, 0, 0, 1, 0), None, None, None, None, b, index + 1)
        entries.append((f, _Header({TAGS["series_uid"]: "2.25.1", TAGS["description"]: "series_17"})))
    assert _series_info("2.25.1", entries).b_values == (0.0, 800.0)
    b0_only = _series_info("2.25.1", entries[:2])
    assert b0_only.b_values == (0.0,) and b0_only.diffusion


def test_dicom_times_keep_the_fraction_of_a_second():
    """dicom_time_seconds: DICOM TM 'hhmmss.ffffff' (or 'hh:mm:ss') → seconds after midnight. Frames 2.5 s apart
    must stay 2.5 s apart."""
    assert dicom_time_seconds("101502.250000") == pytest.approx(10 * 3600 + 15 * 60 + 2.25)
    assert dicom_time_seconds("10:15:04.75") == pytest.approx(10 * 3600 + 15 * 60 + 4.75)
    assert dicom_time_seconds("101504.75") - dicom_time_seconds("101502.25") == pytest.approx(2.5)
    assert dicom_time_seconds("1015") == 10 * 3600 + 15 * 60 and dicom_time_seconds("garbage") is None


def test_the_skipped_file_warning_names_ten_and_counts_the_rest(tmp_path):
    """scan_folder: files that are not DICOM images are named in one warning, MAX_LISTED_WARNINGS of them; the rest
    are counted ('and N more'): 13 such files → 10 named, 'and 3 more'."""
    from DCEDiffLib.dicom_study import MAX_LISTED_WARNINGS

    for i in range(13):
        (tmp_path / f"junk{i:02d}.dcm").write_bytes(b"not DICOM" * 20)
    said = []
    assert scan_folder(tmp_path, warn=said.append) == []
    (message,) = said
    assert "skipped 13 file(s)" in message
    assert sum(f"junk{i:02d}.dcm" in message for i in range(13)) == MAX_LISTED_WARNINGS == 10
    assert message.endswith(f"; and {13 - MAX_LISTED_WARNINGS} more")


def test_a_dicomdir_index_is_not_warned_about(tmp_path):
    """A DICOMDIR (a CD's index of the files, no image) is left out of the scan: no 'not a readable DICOM image'
    warning for it, while a foreign file beside it is still named."""
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    (tmp_path / "notes.txt").write_text("not DICOM", encoding="utf-8")
    said = []
    assert scan_folder(tmp_path, warn=said.append) == []
    assert len(said) == 1 and "skipped 1 file(s)" in said[0] and "notes.txt" in said[0] and "DICOMDIR" not in said[0]


def test_a_series_time_is_its_earliest_time():
    """SeriesInfo.series_time_s: 'earliest AcquisitionTime/ContentTime/SeriesTime of the series' (what tells a
    series acquired before the DCE from one acquired during it). Slices acquired 10:00:05–10:00:35, their content
    written later, the series started at 10:00:02: 10:00:02."""
    from DCEDiffLib.dicom_study import TAGS, _series_info

    entries = []
    for z, acquired in enumerate(("100005", "100015", "100025", "100035")):
        f = DicomFile(f"/none/{z}", (0.0, 0.0, 3.0 * z), (1, 0, 0, 0, 1, 0), None, None,
                      dicom_time_seconds(acquired), dicom_time_seconds("100100"), None, z + 1)
        entries.append((f, _Header({TAGS["series_uid"]: "2.25.2", TAGS["series_time"]: "100002"})))
    assert _series_info("2.25.2", entries).series_time_s == 10 * 3600 + 2
    assert _series_info("2.25.2", [(f, _Header({})) for f, _ in entries]).series_time_s == 10 * 3600 + 5


def test_hidden_folders_are_not_scanned(tmp_path):
    """scan_folder: 'Hidden files and folders (names starting with a dot) are ignored' (a .Trash, a .git): a hidden
    folder's files are not scanned, so not warned about either."""
    (tmp_path / ".Trash" / "old").mkdir(parents=True)
    (tmp_path / ".Trash" / "old" / "IM0001.dcm").write_bytes(b"not DICOM" * 20)
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "notes.txt").write_text("not DICOM", encoding="utf-8")
    said = []
    assert scan_folder(tmp_path, warn=said.append) == []
    assert len(said) == 1 and "skipped 1 file(s)" in said[0] and "notes.txt" in said[0] and ".Trash" not in said[0]


# ----------------------------------------------------------------------------------------------- round 16
# Mutation audit round 16 (dicom_part10, dicom_study, dicom_text, native_stderr): enhanced MR files written byte by
# byte, as a scanner or PACS stores them; each test names the mutations it kills.

def _data_element(group: int, number: int, vr: bytes, value: bytes, implicit: bool = False,
                  order: str = "<") -> bytes:
    """One data element, explicit VR (``vr`` + its length field) or implicit (4-byte length), tag and length in
    byte order ``order`` ("<" little endian, ">" big endian); the value padded to an even length."""
    value += (b"\0" if vr in (b"UI", b"OB", b"OW", b"SQ") else b" ") * (len(value) % 2)
    tag = struct.pack(order + "HH", group, number)
    if implicit:
        return tag + struct.pack(order + "I", len(value)) + value
    if vr in (b"OB", b"OW", b"OF", b"SQ", b"UN", b"UT"):
        return tag + vr + b"\0\0" + struct.pack(order + "I", len(value)) + value
    return tag + vr + struct.pack(order + "H", len(value)) + value


def _sequence_of(group: int, number: int, items, implicit: bool = False, order: str = "<") -> bytes:
    """A sequence of defined length whose items (of defined length) hold the given encoded elements."""
    item = struct.pack(order + "HH", 0xFFFE, 0xE000)
    return _data_element(group, number, b"SQ", b"".join(item + struct.pack(order + "I", len(i)) + i for i in items),
                         implicit, order)


def enhanced_mr_file(path, positions, timing=None, frame_timing=None, implicit=False, deflated=False,
                     before_groups=b"", pixel_element=(0x7FE0, 0x0010, b"OW"), big_endian=False,
                     description=b"fl3d_vibe_tra", character_set=None, top_extra=(), pixels=None) -> None:
    """An Enhanced MR Image Storage file: per-frame ImagePositionPatient (0020,0032) in the Plane Position Sequence
    of each frame's functional groups; flip angle, TR (DS) and echo time (FD) in the MR Timing and MR Echo sequences
    of the shared groups (``timing``: (flip, TR, TE)) or of each frame (``frame_timing``: one such triple per
    frame). ``implicit``: the data set in implicit VR little endian; ``deflated``: in Deflated Explicit VR Little
    Endian (one raw deflate stream after the file meta header); ``before_groups``: encoded elements that come before
    the functional groups (a private element); ``pixel_element``: tag and VR of the pixel data; ``big_endian``: the
    data set in Explicit VR Big Endian (the file meta header stays little endian); ``description``: the
    SeriesDescription's bytes, ``character_set``: a SpecificCharacterSet (0008,0005) to declare; ``top_extra``:
    (group, element, VR, value) elements of the top level (put in tag order); ``pixels``: the pixel data's bytes
    (zero-padded to the frames' size)."""
    order = ">" if big_endian else "<"

    def element(group, number, vr, value):
        return _data_element(group, number, vr, value, implicit, order)

    def sequence(group, number, items):
        return _sequence_of(group, number, items, implicit, order)

    def us(value):
        return struct.pack(order + "H", value)

    def timing_of(flip, tr, te):
        return (sequence(0x0018, 0x9112, [element(0x0018, 0x0080, b"DS", f"{tr:g}".encode())
                                          + element(0x0018, 0x1314, b"DS", f"{flip:g}".encode())])
                + sequence(0x0018, 0x9114, [element(0x0018, 0x9082, b"FD", struct.pack(order + "d", te))]))

    shared = ((timing_of(*timing) if timing is not None else b"")
              + sequence(0x0020, 0x9116, [element(0x0020, 0x0037, b"DS", b"1\\0\\0\\0\\1\\0")])
              + sequence(0x0028, 0x9110, [element(0x0018, 0x0050, b"DS", b"3")
                                          + element(0x0028, 0x0030, b"DS", b"2\\2")]))
    frames = [(timing_of(*frame_timing[n]) if frame_timing else b"")
              + sequence(0x0020, 0x9113, [element(0x0020, 0x0032, b"DS", "\\".join(f"{v:g}" for v in p).encode())])
              for n, p in enumerate(positions)]
    syntax = (b"1.2.840.10008.1.2" if implicit else b"1.2.840.10008.1.2.1.99" if deflated
              else b"1.2.840.10008.1.2.2" if big_endian else b"1.2.840.10008.1.2.1")
    meta = (_data_element(2, 1, b"OB", b"\0\1") + _data_element(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.4.1")
            + _data_element(2, 3, b"UI", b"2.25.16") + _data_element(2, 0x10, b"UI", syntax))
    meta = _data_element(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
    top = [(0x0008, 0x0005, b"CS", character_set)] if character_set is not None else []
    top += [(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.4.1"), (0x0008, 0x0018, b"UI", b"2.25.16"),
            (0x0008, 0x0060, b"CS", b"MR"), (0x0008, 0x103E, b"LO", description),
            (0x0020, 0x000D, b"UI", b"2.25.1"), (0x0020, 0x000E, b"UI", b"2.25.2"), (0x0020, 0x0011, b"IS", b"7"),
            (0x0028, 0x0002, b"US", us(1)),
            (0x0028, 0x0004, b"CS", b"MONOCHROME2"), (0x0028, 0x0008, b"IS", str(len(positions)).encode()),
            (0x0028, 0x0010, b"US", us(4)), (0x0028, 0x0011, b"US", us(4)), (0x0028, 0x0100, b"US", us(16)),
            (0x0028, 0x0101, b"US", us(16)), (0x0028, 0x0102, b"US", us(15)), (0x0028, 0x0103, b"US", us(1))]
    top = sorted(top + list(top_extra), key=lambda e: (e[0], e[1]))
    data = (b"".join(element(*e) for e in top) + before_groups
            + sequence(0x5200, 0x9229, [shared]) + sequence(0x5200, 0x9230, frames))
    size = len(positions) * 32
    data += element(*pixel_element, np.arange(len(positions) * 16, dtype=order + "i2").tobytes() if pixels is None
                    else pixels.ljust(size, b"\0")[:size])
    if deflated:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = deflate.compress(data) + deflate.flush()
    Path(path).write_bytes(b"\0" * 128 + b"DICM" + meta + data)


def test_per_frame_timing_that_differs_between_frames_is_left_out(tmp_path):
    """functional_group_timing: from the per-frame groups 'where the frames that carry a value agree on it'; a value
    that differs between frames is left out (a series of two flip angles in one file is neither the PD nor the
    T1-pre by it). Frames at flip 10° and 15° with one TR and TE: TR and TE read, no flip angle. Audit round 16:
    kills the shared groups read to the end of the header (into the frames' groups; P15) and the agreement check
    dropped (P16)."""
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, [(0.0, 0.0, 3.0 * k) for k in range(2)],
                     frame_timing=[(10.0, 5.6, 1.6), (15.0, 5.6, 1.6)])
    assert functional_group_timing(path) == {"repetition_time": 5.6, "echo_time": 1.6}
    agreeing = tmp_path / "agreeing.dcm"
    enhanced_mr_file(agreeing, [(0.0, 0.0, 3.0 * k) for k in range(2)], frame_timing=[(15.0, 5.6, 1.6)] * 2)
    assert functional_group_timing(agreeing) == {"flip_angle": 15.0, "repetition_time": 5.6, "echo_time": 1.6}


def test_an_enhanced_file_in_implicit_vr_is_one_stack_with_its_timing(tmp_path):
    """frame_positions and functional_group_timing read explicit VR (2-byte length) and implicit VR little endian
    (4-byte length) data sets: an enhanced VIBE that a PACS or an anonymiser stored as Implicit VR Little Endian is
    one stack of 4 frames (not a single 'position', taken for a localizer) with its flip angle, TR and TE. Audit
    round 16: kills the implicit VR branch dropped from the position pattern (P05) or its length read big endian
    (P06), and from the timing pattern (P12)."""
    enhanced_mr_file(tmp_path / "vibe.dcm", [(0.0, 0.0, 3.0 * k) for k in range(4)], timing=(20.0, 5.6, 1.6),
                     implicit=True)
    (study,) = scan_folder(tmp_path, warn=lambda message: None)
    (series,) = study.series
    assert series.multi_frame and series.one_file_stack and series.num_positions == 4
    assert (series.flip_angle, series.repetition_time, series.echo_time) == (20.0, 5.6, 1.6)


def test_a_header_longer_than_one_read_is_read_up_to_its_pixel_data(tmp_path):
    """_header_bytes: 'the bytes of a file before its pixel data element', however long: a private element of more
    than one read (1 MiB; a vendor's private header, or the per-frame groups of a few thousand frames) before the
    functional groups leaves every frame's position and the timing readable. Audit round 16: kills the header cut
    after its first read (P01)."""
    from DCEDiffLib import dicom_part10

    private = _data_element(0x0029, 0x1010, b"OB", b"\1" * (dicom_part10._HEADER_CHUNK + 4096))
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, [(0.0, 0.0, 3.0 * k) for k in range(4)], timing=(20.0, 5.6, 1.6), before_groups=private)
    assert frame_positions(path) == [(0.0, 0.0, 3.0 * k) for k in range(4)]
    assert functional_group_timing(path) == {"flip_angle": 20.0, "repetition_time": 5.6, "echo_time": 1.6}


@pytest.mark.timeout(60)
def test_a_file_whose_pixels_are_no_pixel_data_element_is_read_to_its_end(tmp_path):
    """_header_bytes reads up to the Pixel Data (7FE0,0010) element, and to the end of a file that has none (Float
    Pixel Data (7FE0,0008) here): the frames' positions are read from the whole file instead of the reading going
    on forever. Audit round 16: kills the end-of-file check dropped (P03)."""
    path = tmp_path / "adc.dcm"
    enhanced_mr_file(path, [(0.0, 0.0, 3.0 * k) for k in range(4)], pixel_element=(0x7FE0, 0x0008, b"OF"))
    assert frame_positions(path) == [(0.0, 0.0, 3.0 * k) for k in range(4)]


def test_bytes_that_only_look_like_a_position_are_skipped_not_the_end(tmp_path):
    """frame_positions searches the header's bytes for the ImagePositionPatient tag: a match whose value does not
    decode (here inside a vendor's binary private element before the functional groups) is skipped, and every
    frame's position after it is still read. Audit round 16: kills a bad match ending the search (P07)."""
    look_alike = b"\x20\x00\x32\x00DS\x06\x00\xff\xfe\x01\x02\x03\x04"
    private = _data_element(0x0029, 0x1010, b"OB", b"CSA2" + look_alike + b"\0" * 16)
    path = tmp_path / "t2w.dcm"
    enhanced_mr_file(path, [(0.0, 0.0, 3.0 * k) for k in range(4)], before_groups=private)
    assert frame_positions(path) == [(0.0, 0.0, 3.0 * k) for k in range(4)]


def test_the_decoder_noise_is_captured_inside_the_block_only(capfd):
    """captured_native_stderr: what C code writes to file descriptor 2 inside the block is captured (the lines, not
    on the console); after the block the console gets descriptor 2 back, and enabled=False (an uncompressed file)
    captures nothing. Audit round 16: kills descriptor 2 left on the capture file (N01) and capturing while
    disabled (N03)."""
    from DCEDiffLib.native_stderr import captured_native_stderr

    with captured_native_stderr() as said:
        os.write(2, b"Expected a SOC marker\n")
    os.write(2, b"after the block\n")
    with captured_native_stderr(enabled=False) as unsaid:
        os.write(2, b"an uncompressed file's warning\n")
    assert said == ["Expected a SOC marker"] and unsaid == []
    err = capfd.readouterr().err
    assert "after the block" in err and "an uncompressed file's warning" in err and "SOC marker" not in err


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open descriptors in /proc/self/fd")
def test_capturing_the_decoder_noise_leaves_no_descriptor_open():
    """captured_native_stderr runs once per compressed file, at the scan and at the read: a descriptor left open
    each time would stop a study of a few thousand JPEG 2000 slices at the process' limit ('Too many open files').
    Audit round 16: kills the saved descriptor not closed (N04)."""
    from DCEDiffLib.native_stderr import captured_native_stderr

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with captured_native_stderr():
            os.write(2, b"Invalid marker size\n")
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_description_is_decoded_with_its_declared_character_set_and_never_fails():
    """dicom_text.decode_tag: SimpleITK hands bytes that are not UTF-8 over as surrogates ('\\udcfc' for a Latin-1
    'ü'); they are decoded with the file's SpecificCharacterSet, its ISO 2022 spelling included ('ISO 2022 IR 100'
    is Latin-1 with code extensions), and a byte the declared set cannot decode (a Latin-1 'ü' in a file that
    declares ASCII, or declares nothing) becomes U+FFFD: the result is always printable Unicode, never an error that
    stops the study listing. Audit round 16: kills the ISO 2022 spelling not recognised (T01), a file that
    declares nothing decoded as Latin-1 instead of UTF-8 (T03) and decoding without 'replace' (T04)."""
    from DCEDiffLib.dicom_text import decode_tag

    as_read = "t2_tse_tra M\udcfcnchen"
    assert decode_tag(as_read, "ISO_IR 100") == "t2_tse_tra München"
    assert decode_tag(as_read, "ISO 2022 IR 100") == "t2_tse_tra München"
    assert decode_tag(as_read, "ISO_IR 6") == decode_tag(as_read, "") == "t2_tse_tra M\ufffdnchen"



# ISO 2022 code extensions (PS3.5 6.1.2.5): (SpecificCharacterSet, a description's bytes, the text they are)
ISO_2022_DESCRIPTIONS = [
    ("ISO 2022 IR 6\\ISO 2022 IR 100", b"t2_tse_tra \x1b-AM\xfcnchen", "t2_tse_tra München"),   # ESC - A: Latin-1 G1
    ("ISO 2022 IR 6\\ISO 2022 IR 100", b"t2_tse_tra M\xfcnchen", "t2_tse_tra München"),  # Latin-1, its escape left out
    ("ISO 2022 IR 6\\ISO 2022 IR 144", b"t2 \x1b-L\xbf\xe0\xde\xe1\xe2\xd0\xe2\xd0", "t2 Простата"),   # Cyrillic
    ("\\ISO 2022 IR 87", b"t2_tse_tra \x1b$B;3ED\x1b(B", "t2_tse_tra 山田"),            # JIS X 0208 in G0, 7-bit
    ("\\ISO 2022 IR 149", b"t2_tse_tra \x1b$)C" + "전립선".encode("euc_kr"), "t2_tse_tra 전립선"),  # KS X 1001 in G1
]


@pytest.mark.parametrize("character_set, raw, text", ISO_2022_DESCRIPTIONS)
def test_a_description_with_iso_2022_code_extensions_is_decoded_set_by_set(tmp_path, character_set, raw, text):
    """A SpecificCharacterSet with ISO 2022 code extensions: the description's escape sequences switch its G0 or
    G1 set, and the bytes are decoded set by set, read from a real file through the study scan. Before: decoded
    with the first term only (ASCII): 'M\ufffdnchen' with the escape sequence left in, and a 7-bit Japanese text
    (ASCII bytes with escapes) not decoded at all."""
    enhanced_mr_file(tmp_path / "t2w.dcm", [(0.0, 0.0, 3.0 * k) for k in range(2)], description=raw,
                     character_set=character_set.encode("ascii"))
    (study,) = scan_folder(tmp_path, warn=lambda message: None)
    assert study.series[0].description == text


def test_iso_2022_values_of_the_standard_decode_and_bad_bytes_never_raise():
    """dicom_text.decode_bytes on PS3.5 Annex H and I's own examples (Japanese with half-width katakana in G1 and
    kanji/hiragana in G0; Korean with KS X 1001 in G1, designated before each part), and on bytes no set decodes
    (an unknown escape, a lone lead byte, an escape cut at the end): U+FFFD, never an exception."""
    from DCEDiffLib.dicom_text import decode_bytes, decode_tag

    japanese = (b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=\x1b$B$d$^$@\x1b(J^"
                b"\x1b$B$?$m$&\x1b(J")
    assert decode_bytes(japanese, "ISO 2022 IR 13\\ISO 2022 IR 87") == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
    korean = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf"
    assert decode_tag(korean.decode("utf-8", "surrogateescape"), "\\ISO 2022 IR 149") == "Hong^Gildong=洪^吉洞=홍^길동"
    assert decode_bytes(b"\x1b$)A\xb5\xda\x1b%G\xb5\x1b", "\\ISO 2022 IR 58") == "第\ufffd%G\ufffd\ufffd"
    assert decode_bytes(b"M\xfcnchen", "ISO 2022 IR 6") == "M\ufffdnchen"    # no G1 set declared: not guessed

def test_a_file_that_is_no_dicom_is_not_called_compressed(tmp_path):
    """dicom_part10.compressed: 'False for uncompressed files and non-DICOM files'. A text file beside the slices is
    skipped as 'not a readable DICOM image', not as an image in a transfer syntax GDCM cannot decode (which would
    send the user to decompress it). Audit round 16: kills a file without a transfer syntax taken for a compressed
    one (P23)."""
    (tmp_path / "notes.txt").write_text("exported by the PACS", encoding="utf-8")
    said = []
    assert scan_folder(tmp_path, warn=said.append) == []
    (message,) = said
    assert "notes.txt (not a readable DICOM image)" in message and "transfer syntax" not in message


def test_a_classic_series_without_an_echo_time_keeps_its_flip_angle_and_tr():
    """_series_info: flip angle, TR and TE of the first file; only those it lacks are looked for in an enhanced
    file's functional groups. A classic VIBE export without EchoTime (an anonymiser's or converter's choice) keeps
    its flip angle and TR, which pick it as the PD or the T1-pre. Audit round 16: kills the top-level values
    replaced by the (empty) functional-group ones (S02)."""
    from DCEDiffLib.dicom_study import TAGS, _series_info

    entries = []
    for z in range(3):
        f = DicomFile(str(Path("/none") / f"{z}.dcm"), (0.0, 0.0, 3.0 * z), (1, 0, 0, 0, 1, 0), None, None, None,
                      None, None, z + 1)
        entries.append((f, _Header({TAGS["series_uid"]: "2.25.3", TAGS["flip_angle"]: "20",
                                    TAGS["repetition_time"]: "5.6"})))
    info = _series_info("2.25.3", entries)
    assert (info.flip_angle, info.repetition_time, info.echo_time) == (20.0, 5.6, None)


def read_as_one_stack_of_four_with_timing(folder):
    """Scans ``folder``, which holds one enhanced MR file (``enhanced_mr_file``: 4 frames 3 mm apart, flip angle
    20°, TR 5.6, TE 1.6), checks that its one series is one stack of 4 positions with that timing, and returns the
    series read as the T1-pre: a 4 × 4 × 4 volume of 2 × 2 × 3 mm voxels (checked too)."""
    from DCEDiffLib.dicom_study import read_study_volume

    (study,) = scan_folder(folder, warn=lambda message: None)
    (series,) = study.series
    assert series.one_file_stack and series.num_positions == 4
    assert (series.flip_angle, series.repetition_time, series.echo_time) == (20.0, 5.6, 1.6)
    image = read_study_volume(series.volumes()[0], "T1-pre")
    assert image.GetSize() == (4, 4, 4) and image.GetSpacing() == (2.0, 2.0, 3.0)
    return image


def test_an_enhanced_file_in_the_deflated_syntax_is_one_stack_with_its_timing(tmp_path):
    """GDCM reads Deflated Explicit VR Little Endian (dicom_part10.DECODED), whose data set is one deflate stream:
    the frames' positions and the timing in the functional groups are read from the inflated data set, so an
    enhanced VIBE stored so is one stack of 4 frames, read as such, with its flip angle, TR and TE. Audit round 16
    (a bug: the compressed bytes were searched, no position or timing was found, and the file was one 'position',
    unusable, without a word)."""
    enhanced_mr_file(tmp_path / "vibe.dcm", [(0.0, 0.0, 3.0 * k) for k in range(4)], timing=(20.0, 5.6, 1.6),
                     deflated=True)
    read_as_one_stack_of_four_with_timing(tmp_path)


def test_an_enhanced_file_in_the_big_endian_syntax_is_one_stack_with_its_timing(tmp_path):
    """GDCM reads the retired Explicit VR Big Endian syntax (dicom_part10.UNCOMPRESSED; old archives still hold it),
    whose data set spells every tag, length and binary value big endian (the file meta header stays little
    endian): an enhanced VIBE stored so is one stack of 4 frames, read as such, with its flip angle, TR and the
    FD echo time. Before: its header was searched as little endian, no position or timing was found, and the file
    was one 'position' without a flip angle (no PD or T1-pre candidate), and refused when read as a volume."""
    import SimpleITK as sitk

    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, [(0.0, 0.0, 3.0 * k) for k in range(4)], timing=(20.0, 5.6, 1.6), big_endian=True)
    assert frame_positions(path) == [(0.0, 0.0, 3.0 * k) for k in range(4)]
    image = read_as_one_stack_of_four_with_timing(tmp_path)
    assert sitk.GetArrayFromImage(image).ravel().tolist() == list(range(64))   # GDCM swaps the pixels


def test_big_endian_per_frame_timing_is_read_where_the_frames_agree(tmp_path):
    """functional_group_timing in the big endian syntax from each frame's groups: the FD echo time unpacked big
    endian (read little endian it is a denormal or another number, and the frames' values are no timing)."""
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, [(0.0, 0.0, 3.0 * k) for k in range(2)], frame_timing=[(15.0, 5.6, 1.6)] * 2,
                     big_endian=True)
    assert functional_group_timing(path) == {"flip_angle": 15.0, "repetition_time": 5.6, "echo_time": 1.6}


def classic_mr_file(path, z: float, flip: float = 20.0, tr: float = 5.6) -> None:
    """A classic MR Image Storage file (one slice, no NumberOfFrames, no functional groups) at z = ``z``, explicit
    VR little endian, with a flip angle and TR and no EchoTime (an anonymiser's or converter's choice)."""
    storage, instance = b"1.2.840.10008.5.1.4.1.1.4", f"2.25.17{int(z)}".encode()
    meta = (_data_element(2, 1, b"OB", b"\0\1") + _data_element(2, 2, b"UI", storage)
            + _data_element(2, 3, b"UI", instance) + _data_element(2, 0x10, b"UI", b"1.2.840.10008.1.2.1"))
    meta = _data_element(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
    top = [(0x0008, 0x0016, b"UI", storage), (0x0008, 0x0018, b"UI", instance), (0x0008, 0x0060, b"CS", b"MR"),
           (0x0008, 0x103E, b"LO", b"fl3d_vibe_tra"), (0x0018, 0x0080, b"DS", f"{tr:g}".encode()),
           (0x0018, 0x1314, b"DS", f"{flip:g}".encode()), (0x0020, 0x000D, b"UI", b"2.25.1"),
           (0x0020, 0x000E, b"UI", b"2.25.3"), (0x0020, 0x0011, b"IS", b"8"),
           (0x0020, 0x0013, b"IS", str(int(z) + 1).encode()), (0x0020, 0x0032, b"DS", f"0\\0\\{z:g}".encode()),
           (0x0020, 0x0037, b"DS", b"1\\0\\0\\0\\1\\0"), (0x0028, 0x0002, b"US", struct.pack("<H", 1)),
           (0x0028, 0x0004, b"CS", b"MONOCHROME2"), (0x0028, 0x0010, b"US", struct.pack("<H", 4)),
           (0x0028, 0x0011, b"US", struct.pack("<H", 4)), (0x0028, 0x0030, b"DS", b"2\\2")]
    top += [(0x0028, number, b"US", struct.pack("<H", value))
            for number, value in ((0x0100, 16), (0x0101, 16), (0x0102, 15), (0x0103, 1))]
    data = b"".join(_data_element(*e) for e in top) + _data_element(0x7FE0, 0x0010, b"OW", bytes(32))
    Path(path).write_bytes(b"\0" * 128 + b"DICM" + meta + data)


def test_a_file_header_is_read_once_per_scan_and_a_classic_one_not_again(tmp_path, monkeypatch):
    """The scan reads a multi-frame file's header (the bytes before its pixel data) once, for its frames'
    positions and the timing its functional groups hold, and a classic file's not at all beyond GDCM's read (it
    declares no NumberOfFrames, so it has no functional groups); an enhanced file of one frame still has its timing
    from its groups. Counted on the real reader, wrapped. Before: an enhanced file's header was read twice (frame
    positions in the file scan, timing in _series_info), and a classic series without EchoTime's first file once
    more (in vain)."""
    from DCEDiffLib import dicom_part10

    reads = []
    header_bytes = dicom_part10._header_bytes
    monkeypatch.setattr(dicom_part10, "_header_bytes", lambda path: reads.append(Path(path).name) or header_bytes(path))
    for name in ("enhanced", "single", "classic"):
        (tmp_path / name).mkdir()
    enhanced_mr_file(tmp_path / "enhanced" / "vibe.dcm", [(0.0, 0.0, 3.0 * k) for k in range(4)],
                     frame_timing=[(15.0, 5.6, 1.6)] * 4)
    enhanced_mr_file(tmp_path / "single" / "one.dcm", [(0.0, 0.0, 0.0)], timing=(5.0, 5.6, 1.6))
    for z in range(3):
        classic_mr_file(tmp_path / "classic" / f"{z}.dcm", 3.0 * z)
    expected = {"enhanced": ((15.0, 5.6, 1.6), ["vibe.dcm"]), "single": ((5.0, 5.6, 1.6), ["one.dcm"]),
                "classic": ((20.0, 5.6, None), [])}
    for name, (timing, read) in expected.items():
        reads.clear()
        (study,) = scan_folder(tmp_path / name, warn=lambda message: None)
        (series,) = study.series
        assert (series.flip_angle, series.repetition_time, series.echo_time) == timing and reads == read, name
    assert series.num_positions == 3 and not series.multi_frame   # the classic files: one slice each

def test_an_enhanced_file_whose_positions_do_not_match_its_frames_is_no_stack():
    """An enhanced file is one stack only with a position read for every frame, and is read only where GDCM's
    slices are its frames' positions: a file of 5 frames with 4 positions readable (distinct, 3 mm apart) is no
    stack, and a 4-slice image beside 5 regular frame positions is refused by name. Audit round 16: kills the
    frame count not compared with the positions (S06) and GDCM's slice count not compared with them (S07)."""
    import SimpleITK as sitk

    from DCEDiffLib.dicom_study import _check_frame_stack

    axial = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    short = DicomFile("/none/adc.dcm", None, axial, None, None, None, None, None, 1, frames=5,
                      frame_positions=tuple((0.0, 0.0, 3.0 * k) for k in range(4)))
    series = header_series(1, description="ep2d_diff_tra_ADC")
    series.files = [short]
    assert not series.one_file_stack and series.num_positions == 1
    image = sitk.Image([8, 8, 4], sitk.sitkInt16)
    image.SetSpacing((1.0, 1.0, 3.0))
    five = dataclasses.replace(short, frame_positions=tuple((0.0, 0.0, 3.0 * k) for k in range(5)))
    with pytest.raises(InputError, match=r"ADC: the enhanced \(multi-frame\) file /none/adc.dcm is not one regular "
                                         r"stack of 5 frames"):
        _check_frame_stack(image, five, "ADC")


def test_only_mr_images_that_cannot_be_decoded_hold_the_picks_back(tmp_path):
    """Study.undecodable: the MR image files GDCM cannot read for their transfer syntax (their series might be the
    one a role needs, so the picks are refused unless every role is named); a CT or other image of the export in
    such a syntax is skipped with the same warning but does not hold the picks back. Audit round 16: kills the
    MR storage class check dropped (S10)."""
    import SimpleITK as sitk

    def write_slice(name, modality, sop_class, series_uid, compressed):
        image = sitk.GetImageFromArray((np.arange(32 * 32).reshape(32, 32) % 1000).astype(np.int16))
        tags = {"0008|0016": sop_class, "0008|0060": modality, "0020|000d": "2.25.8", "0020|000e": series_uid,
                "0020|0013": "1", "0020|0032": "0\\0\\0", "0020|0037": "1\\0\\0\\0\\1\\0"}
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(tmp_path / name))
        if compressed:  # JPEG 2000, relabelled as a syntax GDCM does not know (as long as JPEG 2000's UID)
            writer.UseCompressionOn()
            writer.SetCompressor("JPEG2000")
        writer.Execute(image)
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data.replace(b"1.2.840.10008.1.2.4.90", b"1.2.840.10008.1.2.4.99"))

    write_slice("t2w.dcm", "MR", "1.2.840.10008.5.1.4.1.1.4", "2.25.7", compressed=False)
    write_slice("mr.dcm", "MR", "1.2.840.10008.5.1.4.1.1.4", "2.25.9", compressed=True)
    write_slice("ct.dcm", "CT", "1.2.840.10008.5.1.4.1.1.2", "2.25.10", compressed=True)
    said = []
    (study,) = scan_folder(tmp_path, warn=said.append)
    assert [Path(path).name for path, _ in study.undecodable] == ["mr.dcm"]
    assert "skipped 2 file(s)" in said[0] and "ct.dcm (transfer syntax 1.2.840.10008.1.2.4.99" in said[0]


# ------------------------------------------------------------------------------------------------
# Mutation audit of the session's header reading (big endian, _raw_values, multi_frame_header, ISO 2022 decoding,
# functional timing from one read): each test names the mutation it kills.

STACK = [(0.0, 0.0, 3.0 * k) for k in range(4)]


@pytest.mark.parametrize("big_endian", [False, True])
def test_the_header_ends_at_the_pixel_data_in_either_byte_order(tmp_path, big_endian):
    """frame_positions reads 'the bytes before the pixel data': pixel values that happen to spell an
    ImagePositionPatient element (in the file's byte order) are no frame's position. Kills the pixel data tag
    searched little endian only (a big endian header then runs to the end of the file), and the header not cut at
    the pixel data."""
    order = ">" if big_endian else "<"
    look_alike = _data_element(0x0020, 0x0032, b"DS", b"9\\9\\9", order=order)
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, STACK, big_endian=big_endian, pixels=look_alike)
    assert look_alike in path.read_bytes()
    assert frame_positions(path) == STACK


def test_a_position_cut_by_the_end_of_a_truncated_file_is_left_out(tmp_path):
    """_raw_values: 'values cut by the end of data are left out': a file truncated inside its last frame's
    position (an incomplete copy; no pixel data reached) gives the positions read whole, not a shortened number.
    Kills the length check dropped (the cut '9.1' of '9.125' taken as a position)."""
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, STACK[:3] + [(0.0, 0.0, 9.125)])
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"9.125") + 3])
    assert frame_positions(path) == STACK[:3]


def test_a_position_of_two_numbers_is_no_frame_position(tmp_path):
    """_frame_positions keeps 'every ImagePositionPatient ... that decodes as three numbers': a frame whose value has
    two is left out. Kills the count check widened to two or more."""
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, [STACK[0], (0.0, 3.0), STACK[2]])
    assert frame_positions(path) == [STACK[0], STACK[2]]


def test_a_shared_timing_value_that_is_not_finite_gives_way_to_the_frames(tmp_path):
    """_element_values keeps finite values only: a shared FlipAngle written as 'inf' is no flip angle, and the one
    the frames agree on is taken. Kills the finiteness check dropped."""
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, STACK[:2], timing=(float("inf"), 5.6, 1.6), frame_timing=[(15.0, 5.6, 1.6)] * 2)
    assert functional_group_timing(path) == {"flip_angle": 15.0, "repetition_time": 5.6, "echo_time": 1.6}


def test_the_frames_groups_are_searched_after_the_shared_groups(tmp_path):
    """The data set is in tag order: the per-frame groups (5200,9230) come after the shared ones (5200,9229), so
    bytes that spell the per-frame tag earlier (in a vendor's private element) do not hide the shared timing.
    Kills the per-frame tag searched from the start of the header."""
    private = _data_element(0x0029, 0x1010, b"OB", b"CSA2" + struct.pack("<HH", 0x5200, 0x9230) + b"\0" * 8)
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, STACK[:2], timing=(20.0, 5.6, 1.6), frame_timing=[(10.0, 5.6, 1.6), (15.0, 5.6, 1.6)],
                     before_groups=private)
    assert functional_group_timing(path) == {"flip_angle": 20.0, "repetition_time": 5.6, "echo_time": 1.6}


def test_multi_frame_header_gives_back_only_what_is_asked_for(tmp_path):
    """multi_frame_header: 'what is not asked for comes back empty' (the scan asks for positions only where a file
    has more than one frame). Kills the positions read although not asked for."""
    from DCEDiffLib.dicom_part10 import multi_frame_header

    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, STACK, timing=(20.0, 5.6, 1.6))
    assert multi_frame_header(path, positions=False, timing=True) == (
        [], {"flip_angle": 20.0, "repetition_time": 5.6, "echo_time": 1.6})
    assert multi_frame_header(path, positions=True, timing=False) == (STACK, {})


def test_a_flip_angle_only_in_the_groups_is_read_and_the_top_levels_timing_kept(tmp_path):
    """_file_facts reads the functional groups where the top level lacks any of flip angle, TR and TE, and
    _series_info keeps what the top level holds: an enhanced file with TR 7 and TE 2 at its top level (a converter's
    copy) but its flip angle only in the shared groups (which say TR 5.6, TE 1.6) is flip 12°, TR 7, TE 2. Kills the
    groups read only when all three are missing, and the groups' values put over the top level's."""
    path = tmp_path / "vibe.dcm"
    enhanced_mr_file(path, STACK, timing=(12.0, 5.6, 1.6),
                     top_extra=[(0x0018, 0x0080, b"DS", b"7"), (0x0018, 0x0081, b"DS", b"2")])
    (study,) = scan_folder(tmp_path, warn=lambda message: None)
    (series,) = study.series
    assert (series.flip_angle, series.repetition_time, series.echo_time) == (12.0, 7.0, 2.0)


@pytest.mark.parametrize("character_set, raw, text", [
    # one ISO 2022 term: its escapes are decoded, not printed (kills the ISO 2022 path taken only with two terms)
    ("ISO 2022 IR 100", b"\x1b-A\xe9t\xe9", "été"),
    # defined terms in lower case are the same terms (kills the terms not upper-cased)
    ("iso 2022 ir 6\\iso 2022 ir 100", b"caf\xe9", "café"),
    # a G0 escape (to kanji and back) leaves the G1 set as it was (kills a G0 escape resetting G1)
    ("ISO 2022 IR 100\\ISO 2022 IR 87", b"\xe9 \x1b$B;3\x1b(B \xe9", "é 山 é"),
    # the first term's own G1 set comes before a later term's (kills the later term's set put first)
    ("ISO 2022 IR 100\\ISO 2022 IR 144", b"\xe9", "é"),
    # 0x80 is the first byte of the G1 half (kills the split at 0x81)
    ("ISO 2022 IR 100", b"\x80\xe9", "\x80é"),
])
def test_iso_2022_sets_are_switched_as_the_standard_says(character_set, raw, text):
    """dicom_text.decode_bytes under ISO 2022 code extensions (PS3.5 6.1.2.5): the first term's sets active at the
    start, escape sequences switching the G0 or the G1 set only, bytes 0x80 and up decoded with the G1 set."""
    from DCEDiffLib.dicom_text import decode_bytes

    assert decode_bytes(raw, character_set) == text


def write_timed_series(folder: Path, uid: str, number: int, description: str, frames, flip: float, value=lambda t: t):
    """A small classic MR series written by SimpleITK (GDCM): one 4×4×3 stack per (AcquisitionTime "hhmmss.ff",
    SeriesTime) in ``frames``, pixels ``value(frame index)``, no TemporalPositionIdentifier or TriggerTime."""
    import SimpleITK as sitk

    from DCEDiffLib.dicom_slices import MR_IMAGE_STORAGE, write_slice

    folder.mkdir(parents=True)
    for t, (acquired, started) in enumerate(frames):
        image = sitk.Image([4, 4, 3], sitk.sitkInt16) + int(value(t))
        image.SetSpacing((2.0, 2.0, 3.0))
        for k in range(3):
            instance = 1 + t * 3 + k
            tags = {"0008|0016": MR_IMAGE_STORAGE, "0008|0018": f"{uid}.{instance}", "0008|0060": "MR",
                    "0008|103e": description, "0018|0024": "*fl3d1", "0018|1314": f"{flip:g}", "0018|0023": "3D",
                    "0020|000d": "2.25.500", "0020|000e": uid, "0020|0011": str(number),
                    "0020|0013": str(instance), "0008|0031": started, "0008|0032": acquired,
                    "0008|0033": acquired}
            write_slice(image, k, tags, folder / f"IM{instance:04d}")


def test_an_exam_over_midnight_keeps_its_frames_and_series_in_time_order(tmp_path):
    """Times of day are read as seconds after midnight. A DCE acquired 23:59:52 → 00:00:08 (frames 4 s apart) sorted
    its frames of 00:00 before those of 23:59: the middle and last frames, the arrival and the pre-contrast frame were
    wrong without a word, the times a day long. A VIBE started at 00:05, after the DCE, passed as pre-contrast. The
    study's times lie on the 24-hour clock with their longest pause not across midnight: after midnight is the next
    day."""
    from DCEDiffLib.dce_series import find_dce_series
    from DCEDiffLib.study_roles import is_post_contrast

    acquired = ["235952.00", "235956.00", "000000.00", "000004.00", "000008.00"]
    write_timed_series(tmp_path / "dyn", "2.25.501", 20, "t1_twist_tra_dyn", [(a, "235950.00") for a in acquired],
                       12.0, value=lambda t: 100 + t)
    write_timed_series(tmp_path / "vibe", "2.25.502", 30, "t1_vibe_tra", [("000500.00", "000500.00")], 15.0)
    study = scan_folder(tmp_path)[0]
    (dce,) = find_dce_series(study)
    assert dce.times_s == [0.0, 4.0, 8.0, 12.0, 16.0]
    # frame n holds the files of the n-th acquisition (written with InstanceNumbers 3n+1 … 3n+3)
    assert [sorted((f.instance_number - 1) // 3 for f in volume.files) for _, volume in dce.frames] == \
        [[t] * 3 for t in range(5)]
    vibe = next(s for s in study.series if s.number == 30)
    assert is_post_contrast(vibe, dce)
    # the files' times are counted on from the midnight before the exam (23:59:52 → 00:00:08 = 86408 s)
    for f in dce.series[0].files:
        assert 86340.0 < f.acquisition_time_s < 86400.0 + 10.0
