"""Study role rules at their definitions, on header-only series (found by a mutation audit, session 53): DCE frame
times counted from the earliest frame whatever the series order, a gradient echo acquired during the DCE is
post-contrast, a baseline blip is not the arrival, --early-time takes the closest frame, series orientation from the
slice normal."""

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.dicom_study import DicomFile, SeriesInfo, Study


def header_series(number, description, positions=4, *, acq_s=None, sequence="*fl3d1", flip=15.0,
                  orientation="axial"):
    """A header-only single-volume-per-time series (no files on disk), as Testing/test_dicom_study.fake_series:
    one DicomFile per (time point, slice position), slices 3 mm apart along z."""
    files = []
    times = acq_s or [None]
    for t in range(len(times)):
        for z in range(positions):
            files.append(DicomFile(f"/none/{number}/{t}/{z}", (0.0, 0.0, 3.0 * z), (1, 0, 0, 0, 1, 0),
                                   None, None, times[t], None, None, None))
    info = SeriesInfo(f"2.25.{number}", number, description, description, sequence, ("ORIGINAL", "PRIMARY"), "MR",
                      "1.2", "P", "20000101", flip, 3.9, 1.4, "3D", 8, 8, (1.0, 1.0), files)
    info.orientation = orientation
    info.series_time_s = min(t for t in times if t is not None) if acq_s else None
    return info


def per_time_point_dce(first_number, acq_s):
    """One 'perfusion_tra' series per time point, numbered in the order given, acquired at ``acq_s`` (s)."""
    return [header_series(first_number + i, "perfusion_tra", acq_s=[t], sequence="*fldyn3d1")
            for i, t in enumerate(acq_s)]


def test_per_time_point_times_count_from_the_earliest_frame_whatever_the_series_order():
    """DceSeries.times_s are 'seconds from the first frame'. Series numbered out of acquisition order (here the
    lowest-numbered series is the third frame) must still give times 0, 5, 10, 15, 20 in frame order; times
    relative to the lowest-numbered series would start at -10 s."""
    from DCEDiffLib.dce_series import find_dce_series

    frames = per_time_point_dce(40, [36010.0, 36000.0, 36020.0, 36005.0, 36015.0])
    (dce,) = find_dce_series(Study("/none", "1.2", "P", "20000101", frames))
    assert dce.time_source == "AcquisitionTime"
    assert [s.number for s, _ in dce.frames] == [41, 43, 40, 44, 42]
    assert dce.times_s == [0.0, 5.0, 10.0, 15.0, 20.0]


def test_a_gradient_echo_acquired_between_dce_frames_is_post_contrast():
    """is_post_contrast: 'acquired after the DCE series started'. With the DCE stored one series per time point,
    a VIBE acquired between the 2nd and 3rd frame is after the start (contrast is in the patient) and must not be
    taken as T1-pre; one acquired before the first frame is pre-contrast."""
    from DCEDiffLib.dce_series import find_dce_series
    from DCEDiffLib.study_roles import is_post_contrast

    frames = per_time_point_dce(20, [1000.0, 1010.0, 1020.0, 1030.0, 1040.0])
    during = header_series(30, "fl3d_vibe_tra", acq_s=[1015.0], flip=15.0)
    before = header_series(10, "fl3d_vibe_tra", acq_s=[900.0], flip=15.0)
    (dce,) = find_dce_series(Study("/none", "1.2", "P", "20000101", frames + [before, during]))
    assert is_post_contrast(during, dce)
    assert not is_post_contrast(before, dce)


def test_a_noise_blip_on_the_baseline_is_not_the_contrast_arrival():
    """arrival_index: the baseline fluctuates by ±3 around 100 (noise level about 2.2 from the MAD), then the mean
    jumps by 40 at frame 6. A +2 fluctuation at frame 1 is noise (far below 5 noise levels), so arrival is frame 6
    and frame 5 is the last pre-contrast frame; taking frame 1 would make frame 0 the T1-pre and call frames 1-5
    'after arrival'."""
    from DCEDiffLib.dce_series import arrival_index

    curve = [100.0, 102.0, 98.0, 101.0, 99.0, 103.0, 140.0, 180.0, 200.0]
    assert arrival_index(curve) == 6


def test_early_time_picks_the_frame_closest_to_the_time_after_arrival():
    """--early-time T picks 'the DCE frame closest to T s after contrast arrival'. Frames every 10 s; the mean curve
    rises from frame 3, so arrival is at t = 20 s (the last baseline frame). 34 s after arrival is t = 54 s: the
    frame at 50 s (30 s after arrival, 4 s off) is closer than the one at 60 s (6 s off)."""
    from DCEDiffLib.study_roles import pick_roles

    times = [5000.0 + 10.0 * i for i in range(10)]
    frames = per_time_point_dce(50, times)
    curve = [100.0, 100.0, 100.0, 150.0, 170.0, 180.0, 185.0, 188.0, 190.0, 191.0]
    index_of = {s.files[0].path: i for i, s in enumerate(frames)}

    def read(volume, name):
        image = sitk.Image(8, 8, 4, sitk.sitkFloat32) + curve[index_of[volume.files[0].path]]
        return image

    study = Study("/none", "1.2", "P", "20000101", frames)
    result = pick_roles(study, early_time=34.0, late_time=60.0, read=read, require=False)
    early, late = result.picks["dce_early"], result.picks["dce_late"]
    assert result.dce.arrival_index == 3 and result.dce.arrival_time_s == pytest.approx(20.0)
    assert early.frame_index == 5 and early.after_arrival_s == pytest.approx(30.0)
    assert late.frame_index == 8 and late.after_arrival_s == pytest.approx(60.0)


def test_sagittal_and_coronal_series_are_named_by_their_slice_normal(tmp_path):
    """A series' plane is 'the axis the slice normal is closest to': a normal along patient x (left-right) is a
    sagittal series, along y (front-back) coronal, along z axial. The phantom study's t2_tse_sag/t2_tse_cor are
    resampled in those planes (study_export._plane), so their labels (shown in every listing a user reads to choose
    --series) must say so; the slice normal of the files read back is checked here too."""
    from DCEDiffLib.dicom_study import scan_study
    from shared_phantom_case import generated_case
    from DCEDiffLib.phantom.study_export import PARTS, write_phantom_study

    root = tmp_path / "exam"
    keep = {"t2_sag", "t2_cor", "t2_tra"}
    write_phantom_study(generated_case(3), root, omit=tuple(p for p in PARTS if p not in keep))
    study = scan_study(root)
    by_name = {s.description: s for s in study.series}
    for name, axis, plane in (("t2_tse_sag", 0, "sagittal"), ("t2_tse_cor", 1, "coronal"), ("t2_tse_tra", 2, "axial")):
        o = np.asarray(by_name[name].files[0].orientation, dtype=float)
        normal = np.cross(o[:3], o[3:])
        assert int(np.argmax(np.abs(normal))) == axis, (name, normal)
        assert by_name[name].orientation == plane, (name, by_name[name].orientation)


def test_an_unreadable_dce_frame_costs_the_pre_contrast_frame_not_the_run():
    """The DCE's pre-contrast frame is looked for only to put the acquired DCE on the T1-pre's scale. A frame that
    cannot be read (here the fourth) must not stop a study whose T1-pre is a VIBE: the picks stand, the baseline is
    None, and a note says why."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.study_roles import pick_roles

    times = [5000.0 + 10.0 * i for i in range(10)]
    frames = per_time_point_dce(50, times)
    vibe = header_series(20, "t1_vibe_tra_20deg", acq_s=[4000.0], flip=20.0)
    index_of = {s.files[0].path: i for i, s in enumerate(frames)}

    def read(volume, name):
        if index_of.get(volume.files[0].path) == 3:
            raise InputError(f"{name}: unreadable")
        return sitk.Image(8, 8, 4, sitk.sitkFloat32) + 100.0

    result = pick_roles(Study("/none", "1.2", "P", "20000101", frames + [vibe]), read=read, require=False)
    assert result.picks["t1pre"].series.number == 20 and "dce_early" in result.picks
    assert result.baseline is None
    assert any("could not all be read" in note and "unreadable" in note for note in result.notes)


def ten_frame_study(times):
    """A study of one DCE series per time point at ``times`` (10 frames; contrast arrives at the fourth) and a
    reader giving each frame its level of a rising curve."""
    frames = per_time_point_dce(50, times)
    curve = [100.0, 100.0, 100.0, 150.0, 170.0, 180.0, 185.0, 188.0, 190.0, 191.0]
    index_of = {s.files[0].path: i for i, s in enumerate(frames)}

    def read(volume, name):
        return sitk.Image(8, 8, 4, sitk.sitkFloat32) + curve[index_of[volume.files[0].path]]

    return Study("/none", "1.2", "P", "20000101", frames), read


def test_a_time_past_the_last_frame_is_refused_with_the_series_span():
    """--early-time 9999 on a DCE that ends 70 s after arrival took the last frame for both phases, and the run
    warned that 'a copy of one file was likely given for both' (found by a fresh-user audit). A time more than one
    frame interval past the last frame is refused with the span; one within it still takes the last frame."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.study_roles import pick_roles

    times = [5000.0 + 10.0 * i for i in range(10)]
    study, read = ten_frame_study(times)
    far = pick_roles(study, early_time=9999.0, read=read, require=False)  # the problem is listed, not picked
    assert "--early-time 9999: the DCE series" in far.problem and "ends 70 s after contrast arrival" in far.problem
    assert "dce_early" not in far.picks
    with pytest.raises(InputError, match=r"--late-time 81: .* ends 70 s after"):
        pick_roles(study, late_time=81.0, read=read)
    assert pick_roles(study, late_time=79.0, read=read, require=False).picks["dce_late"].frame_index == 9
    # one frame interval past the last frame is still the last frame (mutation audit: kills > made >=)
    assert pick_roles(study, late_time=80.0, read=read, require=False).picks["dce_late"].frame_index == 9


def test_the_interval_past_the_last_frame_is_the_series_usual_one():
    """The allowance past the last frame is the series' usual (median) frame interval, not its longest gap: frames
    every 10 s and a last one 40 s later (ends 100 s after arrival) refuse --late-time 115. Mutation audit: kills the
    median replaced by the largest interval."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.study_roles import pick_roles

    times = [5000.0 + 10.0 * i for i in range(9)] + [5120.0]
    study, read = ten_frame_study(times)
    with pytest.raises(InputError, match=r"--late-time 115: .* ends 100 s after"):
        pick_roles(study, late_time=115.0, read=read)
    assert pick_roles(study, late_time=105.0, read=read, require=False).picks["dce_late"].frame_index == 9
