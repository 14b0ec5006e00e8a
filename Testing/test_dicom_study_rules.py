"""DICOM study scanning rules at their definitions, on header-only series (found by a mutation audit): a dynamic series
is split only into whole volumes, frame times come from a tag whose values tell the frames apart, every b-value
counts (b = 0 included), a series' time is its earliest, DICOM TM times keep their fraction of a second, the
skipped-file warning counts what it does not name, a DICOMDIR index and hidden folders are not scanned."""

import pytest

from DCEDiffLib.dicom_study import DicomFile, SeriesInfo, dicom_time_seconds, scan_folder


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
