"""`dcediff synthesize --study DIR` (issue 15, part 1): a DICOM study folder → the right series for every role.

- phantom exams exported as whole DICOM studies (DCEDiffLib/phantom/study_export.py) in both DCE layouts (one
  series per time point, TCIA file layout; one series with temporal positions, opaque mixed file names), with
  localizers, T2W in three planes and repeated, stacked DWI, TRACEW, FA, three ADC maps, a PD reference, a VIBE
  flip-angle set and post-contrast T1 → the right picks, the losers listed, the pre-arrival DCE frame as T1-pre;
- the real ProstateX-0000/0001 studies in ../shared/data (no T1-pre, no DCE): right T2W/ADC/PD, T1-pre named as
  missing (skipped when the data are absent);
- a missing role, two studies, a corrupt file, an empty folder, bad --series → clear errors, nothing written.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.cli import main
from DCEDiffLib.dce_series import arrival_index
from DCEDiffLib.dicom_study import read_study_volume, scan_folder, scan_study
from DCEDiffLib.errors import InputError
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.study_roles import parse_series_overrides, pick_roles

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "prostatex-studies"
HAVE_REAL = (REAL / "ProstateX-0000").is_dir()
needs_real = pytest.mark.skipif(not HAVE_REAL, reason=f"real ProstateX studies not found at {REAL} (read-only "
                                                      "reference data outside the repository)")
# T2W, ADC, PD series numbers (0001 has two axial T2W: the later one, as in Testing/test_preprocess_realdata.py)
REAL_PICKS = {"ProstateX-0000": (4, 7, 9), "ProstateX-0001": (10, 8, 11)}
SMALL = ("localizer", "t2_sag", "t2_cor", "dwi", "calc_bval", "mddw", "adc_hb", "dce", "t1_post")


@pytest.fixture(scope="module")
def case():
    return generated_case(3)


@pytest.fixture(scope="module")
def tcia_study(case, tmp_path_factory):
    """Every distractor, DCE as one series per time point, TCIA folder layout."""
    root = tmp_path_factory.mktemp("tcia") / "PHANTOM-3"
    return root, write_phantom_study(case, root, dce_layout="per_time_point", file_layout="tcia")


@pytest.fixture(scope="module")
def mixed_study(case, tmp_path_factory):
    """DCE as one series with temporal positions, opaque file names mixed in nested folders, no VIBE series."""
    root = tmp_path_factory.mktemp("mixed") / "exam"
    return root, write_phantom_study(case, root, dce_layout="temporal", file_layout="mixed", omit=("vibe",))


def small_study(case, root, omit=(), **options):
    """A quick study without DCE and most distractors (error cases)."""
    return write_phantom_study(case, root, omit=tuple(SMALL) + tuple(omit), **options)


def numbers(pick):
    return [s.number for s, _ in pick.lost]


# ------------------------------------------------------------------------------------------------ phantom studies

def test_tcia_layout_with_every_distractor_gives_the_right_picks(tcia_study):
    root, expected = tcia_study
    study = scan_study(root)
    assert study.skipped == []
    picks = pick_roles(study).picks
    for role in ("t2w", "adc", "pd", "t1pre"):
        assert picks[role].series.number == expected[role], (role, picks[role].line())
    for role in ("dce_early", "dce_late"):
        number, frame = expected[role]
        assert (picks[role].series.number, picks[role].frame_index) == (number, frame), picks[role].line()
    by_name = {s.description: s.number for s in study.series}
    # the earlier axial T2W and the sagittal/coronal ones lost; localizers were never candidates
    assert set(numbers(picks["t2w"])) == {by_name["t2_tse_sag"], by_name["t2_tse_cor"],
                                          expected["t2w"] - 1}
    assert by_name["t2_localizer"] not in numbers(picks["t2w"])
    assert "axial" in picks["t2w"].rule
    # each line says which criterion put the pick ahead of the runner-up (a repeat looked arbitrary without it)
    runner_up = {role: picks[role].lost[0][0].label() for role in ("t2w", "adc", "pd", "t1pre")}
    assert f"chosen over {runner_up['t2w']} as the later acquisition" in picks["t2w"].rule
    assert f"chosen over {runner_up['adc']} for its more slices" in picks["adc"].rule
    assert f"chosen over {runner_up['pd']} for 'ref' in its description" in picks["pd"].rule
    assert f"chosen over {runner_up['t1pre']} for its higher flip angle" in picks["t1pre"].rule
    assert all("chosen over" not in rule for pick in picks.values() for _, rule in pick.lost)  # the winner's only
    assert set(numbers(picks["adc"])) == {by_name["diff_mddw_12_tra_ADC"], by_name["ep2d_diff_tra_b1400_high_b_ADC"]}
    assert "PD reference" in picks["pd"].rule
    assert by_name["fl3d_vibe_pre_flip_2deg_tra_PD"] in numbers(picks["pd"])
    # T1-pre: the highest pre-contrast flip angle; post-contrast series (named, or acquired after the DCE) never
    assert numbers(picks["t1pre"]) == [by_name["fl3d_vibe_pre_flip_10deg_tra"]]
    assert "highest flip angle" in picks["t1pre"].rule
    assert "middle time point" in picks["dce_early"].rule and "last time point" in picks["dce_late"].rule
    frames = expected["dce_frames"]
    assert picks["dce_late"].time_s == pytest.approx(expected["frame_times_s"][frames - 1], abs=0.06)


def test_picks_are_recorded_with_number_description_uid_rule_and_losers(tcia_study):
    root, expected = tcia_study
    result = pick_roles(scan_study(root))
    record = json.loads(json.dumps(result.to_dict()))
    t2w = record["series"]["t2w"]
    assert t2w["series_number"] == expected["t2w"] and t2w["series_description"] == "t2_tse_tra"
    assert t2w["series_instance_uid"].startswith("2.25.") and t2w["rule"]
    assert {"series_number", "series_description", "series_instance_uid", "rule"} <= set(t2w["lost"][0])
    # a sagittal T2W that lost to the axial one is listed with its rule, which must not say the study has no axial
    sagittal = [lost["rule"] for lost in t2w["lost"] if lost["series_description"] == "t2_tse_sag"]
    assert sagittal and "no usable axial T2W" in sagittal[0] and "has no axial" not in sagittal[0]
    assert record["dce"]["layout"] == "one series per time point"
    assert record["dce"]["time_source"].startswith("TT=")
    lines = result.lines()
    assert len(lines) == 7 and lines[0].startswith("t2w") and "lost:" in lines[0]
    assert lines[6].startswith("dce_baseline") and record["dce_baseline"]["frame_index"] == result.baseline.frame_index


def test_a_t1pre_of_another_series_brings_the_dce_pre_contrast_frame_for_its_scale(tcia_study, mixed_study):
    """With a VIBE as T1-pre the acquired DCE may be on another intensity scale: the study gives the DCE's last frame
    before contrast arrival (the phantom's AIF delay is known) as the baseline of that scale, and the early/late
    frames their time after the arrival. With the T1-pre taken from the DCE series itself there is none to give."""
    root, expected = tcia_study
    result = pick_roles(scan_study(root))
    times = expected["frame_times_s"]
    last_pre = max(i for i, t in enumerate(times) if t < expected["arrival_delay_s"])
    assert result.picks["t1pre"].series.number == expected["t1pre"]
    assert result.baseline is not None and result.baseline.frame_index == last_pre, result.baseline.line()
    assert "for the evaluation only" in result.baseline.rule
    arrival = result.dce.arrival_time_s
    for role in ("dce_early", "dce_late"):
        pick = result.picks[role]
        assert pick.after_arrival_s == pytest.approx(pick.time_s - arrival) and pick.after_arrival_s > 0
    assert "dce_baseline" not in result.picks  # never a model input (load_inputs reads the picks)
    early = read_study_volume(result.picks["dce_early"].volume, "DCE early")
    assert result.load_baseline().GetSize() == early.GetSize()
    mixed_root, _ = mixed_study
    assert pick_roles(scan_study(mixed_root)).baseline is None  # no VIBE: the T1-pre is that frame already


def test_mixed_file_names_and_one_temporal_dce_series(mixed_study, case):
    root, expected = mixed_study
    result = pick_roles(scan_study(root))
    picks = result.picks
    for role in ("t2w", "adc", "pd"):
        assert picks[role].series.number == expected[role], picks[role].line()
    number, _ = expected["dce_early"]
    assert result.dce.layout == f"one series, {expected['dce_frames']} temporal positions"
    assert (picks["dce_early"].series.number, picks["dce_early"].frame_index) == expected["dce_early"]
    assert (picks["dce_late"].series.number, picks["dce_late"].frame_index) == expected["dce_late"]
    # no VIBE: T1-pre is the last DCE frame before the contrast arrives (the phantom's AIF delay is known)
    t1 = picks["t1pre"]
    times = expected["frame_times_s"]
    last_pre = max(i for i, t in enumerate(times) if t < expected["arrival_delay_s"])
    assert (t1.series.number, t1.frame_index) == (number, last_pre), t1.line()
    assert "before contrast arrival" in t1.rule
    # the frames read back are the exported frames (shrunk like the export)
    images = result.load_inputs()
    exported = sitk.BinShrink(case.dce_series[:, :, :, last_pre], [4, 4, 1])
    assert np.array_equal(sitk.GetArrayFromImage(images["t1pre"]), sitk.GetArrayFromImage(exported))
    assert np.allclose(images["t1pre"].GetOrigin(), exported.GetOrigin(), atol=1e-3)
    assert np.allclose(images["t2w"].GetDirection(), case.images["t2w"].GetDirection(), atol=1e-6)


def test_early_and_late_time_choose_frames_after_the_arrival(mixed_study):
    root, expected = mixed_study
    picks = pick_roles(scan_study(root), early_time=60.0, late_time=200.0).picks
    interval = expected["frame_times_s"][1] - expected["frame_times_s"][0]
    assert abs(picks["dce_early"].after_arrival_s - 60.0) <= interval / 2
    assert abs(picks["dce_late"].after_arrival_s - 200.0) <= interval / 2
    assert "60 s after contrast arrival" in picks["dce_early"].rule
    with pytest.raises(InputError, match="expected seconds after contrast arrival"):
        pick_roles(scan_study(root), early_time=-5.0)
    for wanted in (float("nan"), float("inf")):  # would pick frame 0, before the arrival, without a word
        with pytest.raises(InputError, match="a finite number"):
            pick_roles(scan_study(root), early_time=wanted)
        with pytest.raises(InputError, match="--late-time"):
            pick_roles(scan_study(root), late_time=wanted)


def test_arrival_on_a_mean_curve():
    baseline = [100.0, 100.01, 99.99, 100.0, 100.4, 110.0, 118.0, 120.0]
    assert arrival_index(baseline) == 4            # the small first rise counts: frame 3 is the last clean one
    assert arrival_index([100.0, 100.0, 100.001, 100.0]) is None


def test_pd_falls_back_to_the_lowest_flip_vibe(case, tmp_path):
    expected = small_study(case, tmp_path / "s", omit=("pd_ref",))
    study = scan_study(tmp_path / "s")
    picks = pick_roles(study).picks
    by_name = {s.description: s.number for s in study.series}
    assert picks["pd"].series.number == expected["pd"] == by_name["fl3d_vibe_pre_flip_2deg_tra_PD"]
    assert picks["t1pre"].series.number == by_name["fl3d_vibe_pre_flip_20deg_tra"]
    assert by_name["fl3d_vibe_pre_flip_5deg_tra"] in numbers(picks["pd"])


def test_a_phantom_case_written_as_dicom_is_read_as_a_study(case, tmp_path):
    """`dcediff phantom --format dicom` writes a case folder that `--study` takes: its 'T2W TSE' and 'T1
    pre-contrast' descriptions are recognised (they were not until "T2W" counted as a T2 name), the 4D series is
    the DCE and its frames are the case's early and late frames."""
    from DCEDiffLib.phantom.generator import write_case

    write_case(case, tmp_path / "case", fmt="dicom")
    with pytest.warns(UserWarning, match="case.json"):      # case.json and the label map are not DICOM
        study = scan_study(tmp_path / "case")
    picks = pick_roles(study).picks
    by_role = {role: (pick.series.description, pick.frame_index) for role, pick in picks.items()}
    dce = case.params["dce"]
    assert by_role == {"t2w": ("PHANTOM T2W TSE (synthetic)", None), "pd": ("PHANTOM PD 3D GRE (synthetic)", None),
                       "adc": ("PHANTOM ADC (1e-6 mm2/s) (synthetic)", None),
                       "t1pre": ("PHANTOM T1 pre-contrast (synthetic)", None),
                       "dce_early": ("PHANTOM DCE dynamic (synthetic)", dce["early_frame"]),
                       "dce_late": ("PHANTOM DCE dynamic (synthetic)", dce["late_frame"])}


@pytest.mark.parametrize("description, t2w", [
    ("t2_tse_tra", True), ("T2W_TSE_ax", True), ("sT2W_TSE", True), ("Ax T2 FRFSE", True), ("T2WI tra", True),
    ("T2-weighted TSE", True), ("T2*_fl2d_tra", False), ("T2star_tra", False), ("T2_map", False),
    ("PD_TSE_tra", False)])
def test_t2w_names_of_several_vendors(description, t2w):
    """A long-TE turbo spin echo is T2W by any of the usual names (Siemens, Philips, GE, Canon); T2* and T2
    maps are not."""
    from DCEDiffLib.series_kinds import is_t2w

    series = dataclasses.replace(fake_series(20, description, 19), sequence_name="", flip_angle=None,
                                 echo_time=104.0)
    assert is_t2w(series) is t2w


@pytest.mark.parametrize("description, t1", [
    ("t1_vibe_tra", True), ("T1W_FFE", True), ("T1WI pre", True), ("sT1W_3D", True), ("Ax LAVA", True),
    ("t2_tse_tra", False), ("T1rho", False)])
def test_t1_gradient_echo_names_of_several_vendors(description, t1):
    """A spoiled gradient echo with a flip angle is a T1-pre candidate by the usual names, "T1W" included."""
    from DCEDiffLib.series_kinds import is_gradient_echo_t1

    series = dataclasses.replace(fake_series(21, description, 19), sequence_name="")
    assert is_gradient_echo_t1(series) is t1


@pytest.mark.parametrize("description, adc", [
    ("ep2d_diff_tra_ADC", True), ("dADC_tra", True), ("Apparent Diffusion Coefficient (mm2/s)", True),
    ("ep2d_diff_tra_EADC", False), ("ep2d_diff_tra_FA", False), ("ep2d_diff_tra_TRACEW", False)])
def test_adc_names_of_several_vendors(description, adc):
    """Without ImageType ADC, an ADC map is found by its name as Siemens, Philips and GE write it."""
    from DCEDiffLib.series_kinds import is_adc

    series = dataclasses.replace(fake_series(22, description, 19), sequence_name="", image_type=("DERIVED",))
    assert is_adc(series) is adc


def test_series_override_replaces_a_pick(tcia_study):
    root, expected = tcia_study
    study = scan_study(root)
    first_t2w = expected["t2w"] - 1
    picks = pick_roles(study, parse_series_overrides([f"t2w={first_t2w}", "t1pre=dce"])).picks
    assert picks["t2w"].series.number == first_t2w and "--series t2w=" in picks["t2w"].rule
    assert expected["t2w"] in numbers(picks["t2w"])
    assert "before contrast arrival" in picks["t1pre"].rule and picks["t1pre"].frame_index is not None
    # the study has a T1 gradient echo series (the VIBE lost to the override): the rule says it was chosen
    assert "--series t1pre=dce" in picks["t1pre"].rule and "no pre-contrast" not in picks["t1pre"].rule
    with pytest.raises(InputError, match="no series number 999"):
        pick_roles(study, {"adc": 999})
    dwi = [s.number for s in study.series if s.description == "ep2d_diff_tra_DYNDIST"][0]
    with pytest.raises(InputError, match="57 images at 19 slice positions"):
        pick_roles(study, {"adc": dwi})
    for bad in (["t2=4"], ["t2w=four"], ["t2w"]):
        with pytest.raises(InputError, match="--series"):
            parse_series_overrides(bad)


def fake_series(number, description, positions, *, tp=None, trigger_ms=None, acq_s=None, sequence="*fldyn3d1"):
    """A header-only series (no files on disk): one DicomFile per (time point, slice position)."""
    from DCEDiffLib.dicom_study import DicomFile, SeriesInfo

    files = []
    for t in range(len(trigger_ms or acq_s or tp or [None])):
        for z in range(positions):
            files.append(DicomFile(f"/none/{number}/{t}/{z}", (0.0, 0.0, 3.0 * z), (1, 0, 0, 0, 1, 0),
                                   None if tp is None else tp[t], None if trigger_ms is None else trigger_ms[t],
                                   None if acq_s is None else acq_s[t], None, None, None))
    files.reverse()   # file order must not matter
    info = SeriesInfo(str(number), number, description, description, sequence, ("ORIGINAL", "PRIMARY"), "MR",
                      "1.2", "P", "20000101", 12.0, 3.9, 1.4, "3D", 8, 8, (1.0, 1.0), files)
    info.orientation = "axial"
    info.series_time_s = min(acq_s) if acq_s else None
    return info


def test_dce_order_without_temporal_position_or_tt():
    from DCEDiffLib.dicom_study import Study
    from DCEDiffLib.dce_series import find_dce_series

    # one series, frames told apart by TriggerTime only (no TemporalPositionIdentifier)
    one = fake_series(30, "t1_dyn", 4, trigger_ms=[12000.0, 0.0, 24000.0, 6000.0, 18000.0])
    volumes = one.volumes()
    assert [v.time_s for v in volumes] == [0.0, 6.0, 12.0, 18.0, 24.0]
    assert all(len(v.files) == 4 for v in volumes)
    # one series per time point, numbered out of time order, no TT= in the description: AcquisitionTime decides
    frames = [fake_series(40 + i, "perfusion_tra", 4, acq_s=[36000.0 + 5.0 * ((i * 3) % 5)]) for i in range(5)]
    (dce,) = find_dce_series(Study("/none", "1.2", "P", "20000101", frames))
    assert dce.time_source == "AcquisitionTime" and dce.times_s == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert [s.number for s, _ in dce.frames] == [40, 42, 44, 41, 43]


def test_a_dynamic_series_without_time_tags_is_split_by_instance_number():
    from DCEDiffLib.dicom_study import Study
    from DCEDiffLib.dce_series import find_dce_series

    # an anonymiser blanked every time tag: 5 frames × 4 positions, told apart by InstanceNumber only, numbered
    # slice by slice within each frame (time-major, as Siemens numbers a TWIST series) and listed shuffled
    series = fake_series(12, "t1_twist_tra_dyn", 4, tp=[None] * 5)
    for f in series.files:
        frame, z = (int(part) for part in f.path.split("/")[-2:])
        f.instance_number = 1 + frame * 4 + z
    series.files = [series.files[i] for i in np.random.default_rng(0).permutation(len(series.files))]
    volumes = series.volumes()
    assert len(volumes) == 5
    assert [sorted(int(f.path.split("/")[-2]) for f in v.files) for v in volumes] == [[t] * 4 for t in range(5)]
    assert all(v.time_s is None and v.ordered_by.startswith("InstanceNumber") for v in volumes)
    (dce,) = find_dce_series(Study("/none", "1.2", "P", "20000101", [series]))
    assert dce.times_s is None and dce.time_source.startswith("InstanceNumber") and len(dce.frames) == 5
    # numbered frame by frame within each position (slice-major) gives the same frames
    for f in series.files:
        frame, z = (int(part) for part in f.path.split("/")[-2:])
        f.instance_number = 1 + z * 5 + frame
    series._volumes = None
    assert [sorted(int(f.path.split("/")[-2]) for f in v.files) for v in series.volumes()] == \
        [[t] * 4 for t in range(5)]
    # a multi-echo series (a T2 map) repeats its positions the same way but is not dynamic by its headers: one
    # volume, never a DCE (it would take the DCE role from the real one, or make every later VIBE "post-contrast")
    echoes = fake_series(20, "t2_map_se_mc_tra", 4, tp=[None] * 8, sequence="*se2d8")
    for f in echoes.files:
        frame, z = (int(part) for part in f.path.split("/")[-2:])
        f.instance_number = 1 + frame * 4 + z
    assert len(echoes.volumes()) == 1 and not find_dce_series(Study("/none", "1.2", "P", "20000101", [echoes]))
    # nor is a Siemens DWI ("DYNDIST": dynamic distortion correction) whose b-values an anonymiser removed
    dwi = fake_series(6, "ep2d_diff_tra_DYNDIST", 4, tp=[None] * 3, sequence="*ep_b50t")
    for f in dwi.files:
        frame, z = (int(part) for part in f.path.split("/")[-2:])
        f.instance_number = 1 + frame * 4 + z
    assert len(dwi.volumes()) == 1
    # several b-values stacked (a DWI series) are not frames: one volume, which the reader then refuses
    for f in series.files:
        f.b_value = 50.0 * int(f.path.split("/")[-2])
    series.b_values, series._volumes = (0.0, 50.0, 100.0, 150.0, 200.0), None
    assert len(series.volumes()) == 1


# ------------------------------------------------------------------------------------------------ errors

def test_a_dynamic_series_given_as_one_input_points_to_the_study_reader(case, tmp_path, capsys):
    """The whole 4D DCE series folder given as the acquired early DCE (what a user may try): refused before any
    work, naming the role, the number of volumes, and the reader that picks the frames."""
    from DCEDiffLib.volume_io import read_volume

    omit = tuple(p for p in SMALL if p != "dce")
    expected = write_phantom_study(case, tmp_path / "s", omit=omit, dce_layout="temporal")
    folders = {int(f.name.split(".")[0]): f for f in (tmp_path / "s").iterdir()}
    dynamic = folders[expected["dce_numbers"][0]]
    with pytest.raises(InputError) as info:
        read_volume(dynamic, name="acquired early DCE (dce_early)")
    message = str(info.value)
    assert "acquired early DCE (dce_early)" in message and "duplicate slice positions" in message
    assert f"{expected['dce_frames']} volumes" in message and "--study" in message
    out = tmp_path / "out"
    args = ["synthesize", *(a for role in ("t2w", "pd", "adc", "t1pre")
                            for a in (f"--{role}", str(folders[expected[role]]))),
            "--dce-early", str(dynamic), "--dce-late", str(tmp_path / "late.nii.gz"), "--out", str(out)]
    sitk.WriteImage(read_volume(folders[expected["t1pre"]]), str(tmp_path / "late.nii.gz"))  # a volume of its own
    capsys.readouterr()
    assert main(args) == 2 and not out.exists()
    said = capsys.readouterr().err
    assert "(dce_early)" in said and "duplicate slice positions" in said and "--study" in said, said


def test_missing_role_is_one_error_listing_what_was_found(case, tmp_path):
    small_study(case, tmp_path / "s", omit=("adc", "vibe"))
    with pytest.raises(InputError) as info:
        pick_roles(scan_study(tmp_path / "s"))
    message = str(info.value)
    assert "no ADC found" in message and "no T1-pre found" in message and "no PD" not in message
    assert "'t2_tse_tra'" in message and "'tfl_3d PD ref_tra_1.5x1.5_t3'" in message
    assert "--series ROLE=NUMBER" in message


def test_two_studies_in_one_folder_are_listed(case, tmp_path):
    small_study(case, tmp_path / "root" / "a", patient_id="PAT-A")
    small_study(case, tmp_path / "root" / "b", patient_id="PAT-B", study_key="second")
    assert len(scan_folder(tmp_path / "root")) == 2
    with pytest.raises(InputError, match="holds 2 DICOM studies") as info:
        scan_study(tmp_path / "root")
    assert "PAT-A" in str(info.value) and "PAT-B" in str(info.value)


def test_corrupt_and_foreign_files_are_skipped_with_a_warning(case, tmp_path):
    root = tmp_path / "s"
    expected = small_study(case, root)
    victim = next(root.rglob("*.dcm"))
    (root / "broken.dcm").write_bytes(victim.read_bytes()[:300])
    (root / "notes.txt").write_text("not DICOM", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\0\0")          # hidden: ignored silently
    messages = []
    study = scan_study(root, warn=messages.append)
    assert len(messages) == 1 and "skipped 2 file(s)" in messages[0]
    assert "broken.dcm" in messages[0] and "notes.txt" in messages[0]
    picks = pick_roles(study).picks
    assert picks["t2w"].series.number == expected["t2w"]


def _slices_in_order(folder: Path):
    """The DICOM files of a series folder sorted along the slice normal (by ImagePositionPatient)."""
    def along_normal(path):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        rows = np.array([float(v) for v in reader.GetMetaData("0020|0037").split("\\")]).reshape(2, 3)
        return np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")]) @ np.cross(*rows)
    return sorted(folder.glob("*.dcm"), key=along_normal)


def test_a_damaged_first_or_last_slice_is_named_not_read_around(case, tmp_path):
    """A truncated slice file at either end of a stack leaves no gap for the spacing check: GDCM drops it and the
    series would be read a slice short. Through --study and through the series folder given as a file, the damaged
    file is named; a slice left out on purpose (the file removed) reads as the shorter series it then is."""
    from DCEDiffLib.volume_io import read_volume

    root = tmp_path / "s"
    expected = small_study(case, root, file_layout="tcia")
    study = scan_study(root)
    t2w = pick_roles(study).picks["t2w"]
    assert t2w.series.number == expected["t2w"]
    folder = Path(sorted(t2w.series.folders)[0])
    slices = _slices_in_order(folder)
    for victim in (slices[0], slices[-1]):
        kept = victim.read_bytes()
        victim.write_bytes(kept[:len(kept) // 2])
        with pytest.raises(InputError, match=rf"T2W .*cannot be read \(truncated or corrupt\).*{victim.name}"):
            pick_roles(scan_study(root, warn=lambda _: None)).load_inputs()
        with pytest.raises(InputError, match=rf"cannot be read \(truncated or corrupt\): {victim.name}"):
            read_volume(folder, name="T2W")
        victim.write_bytes(kept)
    slices[-1].unlink()
    assert read_volume(folder, name="T2W").GetSize()[2] == len(slices) - 1
    # a structured report beside the slices is no slice: GDCM reads no image from it either, and nothing is refused
    (folder / "report.dcm").write_bytes(dicom_without_pixels(SR_STORAGE))
    assert read_volume(folder, name="T2W").GetSize()[2] == len(slices) - 1
    assert pick_roles(scan_study(root, warn=lambda _: None)).load_inputs()["t2w"].GetSize()[2] == len(slices) - 1


SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR


def dicom_without_pixels(storage_class: str) -> bytes:
    """A minimal DICOM Part 10 file (explicit VR little endian) of ``storage_class`` holding no pixel data."""
    import struct

    def element(group, number, vr, value: bytes) -> bytes:
        value += (b"\0" if vr == b"UI" else b" ") * (len(value) % 2)
        head = struct.pack("<HH", group, number) + vr
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
            return head + b"\0\0" + struct.pack("<I", len(value)) + value
        return head + struct.pack("<H", len(value)) + value

    meta = (element(2, 1, b"OB", b"\0\1") + element(2, 2, b"UI", storage_class.encode())
            + element(2, 3, b"UI", b"2.25.1") + element(2, 0x10, b"UI", b"1.2.840.10008.1.2.1"))
    meta = element(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
    data = (element(8, 0x16, b"UI", storage_class.encode()) + element(8, 0x18, b"UI", b"2.25.1")
            + element(8, 0x60, b"CS", b"SR") + element(0x20, 0xE, b"UI", b"2.25.3"))
    return b"\0" * 128 + b"DICM" + meta + data


def test_the_storage_class_is_read_from_the_file_meta_header(tcia_study, tmp_path):
    """dicom_part10.media_storage_class reads (0002,0002) from the first bytes: MR Image Storage for an exported
    slice (so a damaged one counts as an image), the SR's class for a report; a file cut inside its meta header, or
    no DICOM at all, has none. looks_like_image_file: an image class, or no class to tell (a cut file)."""
    from DCEDiffLib.dicom_part10 import looks_like_image_file, media_storage_class

    root, _ = tcia_study
    slice_file = next(root.rglob("*.dcm"))
    assert media_storage_class(slice_file) == "1.2.840.10008.5.1.4.1.1.4" and looks_like_image_file(slice_file)
    report = tmp_path / "report.dcm"
    report.write_bytes(dicom_without_pixels(SR_STORAGE))
    assert media_storage_class(report) == SR_STORAGE and not looks_like_image_file(report)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(slice_file.read_bytes()[:140])
    assert media_storage_class(cut) is None and looks_like_image_file(cut)
    (tmp_path / "notes.txt").write_text("not DICOM")
    assert not looks_like_image_file(tmp_path / "notes.txt") and media_storage_class(tmp_path / "notes.txt") is None


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InputError, match="holds no readable DICOM image files"):
        scan_study(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        scan_study(tmp_path / "nowhere")


def test_command_errors_write_nothing(case, tmp_path, capsys):
    small_study(case, tmp_path / "s", omit=("adc",))
    out = tmp_path / "out"
    assert main(["synthesize", "--study", str(tmp_path / "s"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "no ADC found" in err and "Traceback" not in err
    assert main(["synthesize", "--study", str(tmp_path / "s"), "--adc", "x.nii.gz", "--series", "adc=3",
                 "--out", str(out)]) == 2
    assert "also given with their own options (--adc)" in capsys.readouterr().err
    assert main(["synthesize", "--series", "t2w=3", "--out", str(out)]) == 2
    assert "missing inputs --t2w, --pd, --adc, --t1pre" in capsys.readouterr().err
    assert main(["synthesize", "--study", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_command_synthesizes_from_a_study_and_records_the_picks(mixed_study, tmp_path, capsys):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from random_model import save_random_model

    root, expected = mixed_study
    model = save_random_model(tmp_path)
    out = tmp_path / "out"
    code = main(["synthesize", "--study", str(root), "--out", str(out), "--model", str(model), "--steps", "1",
                 "--no-register", "--series", f"pd={expected['pd']}", "--progress-lines"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "t2w " in printed and "t1pre" in printed and f"--series pd={expected['pd']}" in printed
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert side["provenance"]["synthetic"] is True
    assert side["series"]["t2w"]["series_number"] == expected["t2w"]
    assert side["series"]["t1pre"]["frame_index"] is not None
    assert side["dce"]["arrival_time_s"] is not None
    assert (out / "metrics.json").is_file()        # the acquired DCE frames were used


# ------------------------------------------------------------------------------------------------ real studies

@pytest.mark.realdata
@needs_real
@pytest.mark.parametrize("patient", sorted(REAL_PICKS))
def test_real_prostatex_study(patient):
    root = next((REAL / patient).iterdir())
    study = scan_study(root)
    with pytest.raises(InputError) as info:
        pick_roles(study)
    message = str(info.value)
    assert "no T1-pre found" in message and "DCE: none" in message
    assert "no T2W" not in message and "no ADC" not in message and "no PD" not in message
    t2w, adc, pd = REAL_PICKS[patient]
    result = pick_roles(study, given=["t1pre"])          # a T1-pre from elsewhere (a file) completes the exam
    picks = result.picks
    assert (picks["t2w"].series.number, picks["adc"].series.number, picks["pd"].series.number) == (t2w, adc, pd)
    assert "t1pre" not in picks and "dce_early" not in picks
    assert any("T1-pre given with --t1pre, not taken from the study" in n for n in result.notes)
    assert any("no acquired DCE" in n for n in result.notes)
    with pytest.raises(InputError, match="PD and T1-pre are the same series"):
        pick_roles(study, {"t1pre": pd})
    if patient == "ProstateX-0001":
        assert 6 in numbers(picks["t2w"])               # the first axial T2W lost to the repeat
        # both image the same region: the line says which criterion decided (the audit found it did not)
        assert "chosen over #6 't2_tse_tra' as the later acquisition" in picks["t2w"].rule
    else:
        assert "chosen over" not in picks["t2w"].rule    # one axial T2W: nothing was decided between two


@pytest.mark.realdata
@needs_real
def test_a_real_study_without_pd_and_with_its_pd_series_as_the_t1pre(tmp_path, capsys):
    """The exams at hand have no T1-pre; users give the PD reference scan as the T1-pre. From a study that takes
    --series pd=none (the model may do without PD); the PD series given as the T1-pre file while the study still
    uses it as PD is refused, as one series in two roles is everywhere else."""
    root = next((REAL / "ProstateX-0000").iterdir())
    study = scan_study(root)
    assert parse_series_overrides(["pd=none", "t2w=4"]) == {"pd": "none", "t2w": 4}
    with pytest.raises(InputError, match="--series"):
        parse_series_overrides(["t2w=none"])  # only an optional role can be left out
    result = pick_roles(study, {"pd": "none"}, given=["t1pre"], optional=["pd"])
    assert "pd" not in result.picks and result.absent == ["pd"] and not result.missing
    assert any("PD left out (--series pd=none)" in n for n in result.notes)
    assert not any(n.startswith("no PD found") for n in result.notes)
    with pytest.raises(InputError, match="the model needs PD"):
        pick_roles(study, {"pd": "none"}, given=["t1pre"])  # a model that cannot do without PD
    pd_folder = next(p for p in root.iterdir() if "PD" in p.name)
    out = tmp_path / "out"
    assert main(["synthesize", "--study", str(root), "--t1pre", str(pd_folder), "--out", str(out)]) == 2
    assert "this is the study's PD series (#9" in capsys.readouterr().err and not out.exists()


@pytest.mark.realdata
@needs_real
def test_real_root_with_two_patients_is_refused():
    with pytest.raises(InputError, match="holds 2 DICOM studies") as info:
        scan_study(REAL)
    assert "ProstateX-0000" in str(info.value) and "ProstateX-0001" in str(info.value)
