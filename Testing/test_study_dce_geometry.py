"""Study geometry the DICOM study reader checks (DCEDiffLib/dce_series.py, dicom_study.py, study_roles.py), on small
studies written as real DICOM files by SimpleITK (GDCM), as Testing/test_dicom_study_rules.write_timed_series does:

- a DCE stored one series per time point (TCIA ProstateX's TWIST) whose one time point misses a slice keeps that
  frame at its time, said in a warning recorded with the picks; the run is refused only where a frame it needs
  (early, late, T1-pre, pre-contrast baseline) is the incomplete one;
- slice positions of a one-series DCE that move between frames by less than the tolerance are one slice position;
  beyond it the note names the series and the drift; a slice stored twice is still no single volume;
- a picked series whose FrameOfReferenceUID differs from the T2W's is named in one warning.
"""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.dce_series import find_dce_series
from DCEDiffLib.dicom_slices import MR_IMAGE_STORAGE, write_slice
from DCEDiffLib.dicom_study import scan_folder
from DCEDiffLib.errors import InputError
from DCEDiffLib.study_roles import pick_roles

SLICES = 5
AS_IF_GIVEN = {"given": ("t2w", "adc"), "optional": ("pd",)}   # roles these studies leave out, as files would
FRAME_LEVELS = [100, 100, 100, 150, 180, 200]   # the mean curve rises from frame 3: frame 2 is the last before it


def write_series(folder: Path, uid: str, number: int, description: str, tags=(), frames=(None,), value=lambda t: 100,
                 z=lambda t, k: 3.0 * k, skip=()):
    """A small classic MR series: one 4×4×SLICES stack per entry of ``frames`` (that frame's
    TemporalPositionIdentifier, or None), slice k of frame t at z = ``z(t, k)`` mm, pixels ``value(t)`` plus 0-6;
    the files (frame, slice) in ``skip`` are not written. ``tags``: more (tag, value) pairs."""
    folder.mkdir(parents=True)
    for t, temporal in enumerate(frames):
        pattern = (np.arange(SLICES * 16).reshape(SLICES, 4, 4) % 7).astype(np.int16)   # contrast: not constant
        image = sitk.GetImageFromArray(pattern + int(value(t)))
        image.SetSpacing((2.0, 2.0, 3.0))
        for k in range(SLICES):
            if (t, k) in skip:
                continue
            fields = dict(file_tags(uid, number, description, 1 + t * SLICES + k), **dict(tags))
            if temporal is not None:
                fields["0020|0100"] = str(temporal)
            image.SetOrigin((0.0, 0.0, z(t, k) - 3.0 * k))
            write_slice(image, k, fields, folder / f"IM{1 + t * SLICES + k:04d}")


def file_tags(uid: str, number: int, description: str, instance: int) -> dict:
    """The tags of image ``instance`` of series ``uid`` (study 2.25.600), as write_slice takes them."""
    return {"0008|0016": MR_IMAGE_STORAGE, "0008|0018": f"{uid}.{instance}", "0008|0060": "MR",
            "0008|103e": description, "0020|000d": "2.25.600", "0020|000e": uid, "0020|0011": str(number),
            "0020|0013": str(instance)}


def write_twist(root: Path, missing_frame: int) -> None:
    """Six TWIST series, one per time point (``Twist_dynamic_TT=<8 t>s``, series 11-16), frame ``missing_frame``
    without its middle slice, and a pre-contrast VIBE (series 5) in ``root/vibe``."""
    for t, level in enumerate(FRAME_LEVELS):
        write_series(root / "dce" / f"tt{t}", f"2.25.61{t}", 11 + t, f"Twist_dynamic_TT={8.0 * t:.1f}s",
                     tags=[("0018|0024", "*fldyn3d1"), ("0018|1314", "12")], value=lambda _, level=level: level,
                     skip={(0, 2)} if t == missing_frame else ())
    write_series(root / "vibe", "2.25.605", 5, "t1_vibe_tra_15deg", tags=[("0018|0024", "*fl3d1"),
                                                                         ("0018|1314", "15")])


def study_of(folder):
    (study,) = scan_folder(folder, warn=lambda message: None)
    return study


def test_a_time_point_missing_a_slice_keeps_its_place_and_is_said(tmp_path):
    """Frame 4 of six (32 s) lacks its middle slice. Before, its series fell out of the DCE without a word: five
    frames, the middle frame (the early pick) the 40 s one instead of the 24 s one. Now it keeps its place and time,
    is left out of the mean curve, and one warning naming it and the missing position is printed (StudyPicks.warnings)
    and recorded in synthesis.json's study record; the picks (frames 3 and 5, T1-pre frame 2) are whole, so the run
    goes on."""
    write_twist(tmp_path, missing_frame=4)
    picks = pick_roles(study_of(tmp_path / "dce"), **AS_IF_GIVEN)
    dce = picks.dce
    assert len(dce.frames) == 6 and dce.times_s == [0.0, 8.0, 16.0, 24.0, 32.0, 40.0]
    assert [s.number for s, _ in dce.frames] == [11, 12, 13, 14, 15, 16]
    assert dce.curve[4] is None and dce.arrival_index == 3
    assert [picks.picks[r].frame_index for r in ("t1pre", "dce_early", "dce_late")] == [2, 3, 5]
    assert picks.picks["dce_early"].series.number == 14 and picks.problem == ""
    (warning,) = picks.warnings
    assert warning.startswith("DCE frame 4 #15 'Twist_dynamic_TT=32.0s' (32.0 s after the first frame) misses 1 of "
                              "the 5 slice positions the other time points hold (ImagePositionPatient (0.0, 0.0, 6.0)")
    record = picks.to_dict()
    assert record["warnings"] == [warning]
    assert record["dce"]["incomplete_frames"] == [{"frame_index": 4, "series_number": 15, "series_description":
                                                   "Twist_dynamic_TT=32.0s", "missing": dce.incomplete[4]}]


@pytest.mark.parametrize("missing_frame, with_vibe, refused", [
    (3, True, r"DCE early \(middle time point of the DCE series \(paper\)\): DCE frame 3 #14 .* misses 1 of the 5"),
    (2, False, r"T1-pre: the DCE's last frame before contrast arrival is incomplete: DCE frame 2 #13 .* misses 1"),
    (2, True, r"DCE baseline: the acquired DCE's last frame before contrast arrival, .* is incomplete: DCE frame 2"),
])
def test_a_frame_the_run_needs_missing_a_slice_is_refused_by_name(tmp_path, missing_frame, with_vibe, refused):
    """The incomplete frame is the early pick (the middle frame), the T1-pre (the last frame before arrival, with no
    VIBE), or the DCE's pre-contrast baseline (with a VIBE as the T1-pre): refused, naming the frame and its series,
    with what to do. Before, it was dropped and a neighbouring frame taken in its place without a word."""
    write_twist(tmp_path, missing_frame)
    study = study_of(tmp_path if with_vibe else tmp_path / "dce")
    with pytest.raises(InputError, match=refused):
        pick_roles(study, **AS_IF_GIVEN)


def write_dynamic(folder: Path, drift_mm: float) -> None:
    """One TWIST series (#20) of 5 frames told apart by TemporalPositionIdentifier, frame t's slices ``t ×
    drift_mm`` farther along z than frame 0's."""
    write_series(folder, "2.25.620", 20, "t1_twist_tra_dyn", tags=[("0018|0024", "*fldyn3d1")], frames=[1, 2, 3, 4, 5],
                 z=lambda t, k: 3.0 * k + drift_mm * t)


def test_slice_positions_that_move_a_little_between_frames_are_one_position(tmp_path):
    """Positions were the same slice position only when equal to 0.01 mm: a one-series DCE whose positions move by
    0.02 mm from frame to frame (an export's rounding, a little table drift) had 25 'positions' for 25 files, so it
    was one volume and the study had 'no acquired DCE series'. Within 0.1 mm (at most a tenth of the spacing) they are
    one position: five frames of five slices."""
    write_dynamic(tmp_path / "dyn", drift_mm=0.02)
    study = study_of(tmp_path)
    (series,) = study.series
    assert series.num_positions == SLICES and series.position_tolerance == pytest.approx(0.1)
    (dce,) = find_dce_series(study)
    assert len(dce.frames) == 5 and all(len(volume.files) == SLICES for _, volume in dce.frames)
    assert [volume.temporal_position for _, volume in dce.frames] == [1, 2, 3, 4, 5]


def test_slice_positions_that_move_beyond_the_tolerance_are_named_with_the_drift(tmp_path):
    """Frames 0.5 mm apart (2 mm from the first to the last) are no longer one position: not a DCE, and the note
    names the series and how far its positions move, not 'no acquired DCE series in the study'."""
    write_dynamic(tmp_path / "dyn", drift_mm=0.5)
    study = study_of(tmp_path)
    assert find_dce_series(study) == []
    notes = pick_roles(study, **AS_IF_GIVEN, require=False).notes
    assert any("the dynamic series #20 't1_twist_tra_dyn' has slice positions that move between its time points "
               "(told apart by TemporalPositionIdentifier) by up to 2.00 mm" in note for note in notes), notes


def test_a_slice_stored_twice_is_still_no_single_volume(tmp_path):
    """The tolerance joins positions, so a slice stored twice, exactly or 0.05 mm off, is still two images at one
    position: the axial T2W is no single stack and the picks are refused naming it (the 0.05 mm copy was read as its
    own slice before, and refused only later as 'unevenly spaced')."""
    from DCEDiffLib.series_kinds import is_single_volume, unusable_axial_t2w

    t2w = [("0018|0024", "*tse2d1_15"), ("0018|0081", "100")]
    for offset in (0.0, 0.05):
        folder = tmp_path / f"t2_{offset}"
        write_series(folder, "2.25.630", 3, "t2_tse_tra", tags=t2w)
        copy = sitk.GetImageFromArray(np.full((1, 4, 4), 7, dtype=np.int16))   # slice 2 (z = 6 mm) again
        copy.SetSpacing((2.0, 2.0, 3.0))
        copy.SetOrigin((0.0, 0.0, 6.0 + offset))
        write_slice(copy, 0, dict(file_tags("2.25.630", 3, "t2_tse_tra", 99), **dict(t2w)), folder / "IM0099")
        (series,) = study_of(folder).series
        assert series.num_files == SLICES + 1 and series.num_positions == SLICES and not is_single_volume(series)
        assert "a slice stored twice" in unusable_axial_t2w(series)
        with pytest.raises(InputError, match=r"the axial T2W #3 't2_tse_tra' cannot be read as one volume"):
            pick_roles(study_of(folder))


def test_a_series_in_another_frame_of_reference_than_the_t2w_is_named_once(tmp_path):
    """FrameOfReferenceUID was never compared: an ADC whose scanner coordinates are not tied to the T2W's was
    registered from them as if they were. The picked series whose UID differs from the T2W's are named in one
    warning, recorded with the picks; a series without the UID (the PD here) is not named."""
    frame = ("0020|0052", "2.25.700")
    write_series(tmp_path / "t2", "2.25.631", 3, "t2_tse_tra", tags=[("0018|0024", "*tse2d1_15"),
                                                                    ("0018|0081", "100"), frame])
    write_series(tmp_path / "adc", "2.25.632", 7, "ep2d_diff_tra_ADC",
                 tags=[("0008|0008", "DERIVED\\PRIMARY\\DIFFUSION\\ADC"), ("0020|0052", "2.25.701")])
    write_series(tmp_path / "pd", "2.25.633", 9, "tfl3d PD ref_tra", tags=[("0018|0024", "*tfl3d1")])
    write_series(tmp_path / "vibe", "2.25.634", 5, "t1_vibe_tra_15deg", tags=[("0018|0024", "*fl3d1"),
                                                                             ("0018|1314", "15"), frame])
    picks = pick_roles(study_of(tmp_path))
    assert [picks.picks[r].series.number for r in ("t2w", "adc", "pd", "t1pre")] == [3, 7, 9, 5]
    (warning,) = [w for w in picks.warnings if "FrameOfReferenceUID" in w]
    assert warning.startswith("ADC #7 'ep2d_diff_tra_ADC': FrameOfReferenceUID differs from the T2W #3 "
                              "'t2_tse_tra''s, so their scanner coordinates are not tied to the T2W's")
    assert picks.to_dict()["warnings"] == picks.warnings
