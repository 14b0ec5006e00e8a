"""The rules of the acquired DCE's scale (acquired_scale.py, study_roles._dce_baseline, preprocess) that
test_acquired_scale.py leaves open: found by a mutation audit and a review of the feature (each test fails on one
plausible bug, or on the feature as first committed: two acquired frames of two series, the early frame picked as
the pre-contrast frame, the T1-pre file given as its own pre-contrast frame, an arrival at the first frame).

The rule: the gain is the body median of the DCE's own last pre-contrast frame over the T1-pre's, on voxels where
both image the body; that frame is moved as the early frame of its series; it is taken only where the acquired
frames are the DCE series' and the T1-pre is another series.
"""

import argparse
import dataclasses
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.acquired_scale import baseline_gain
from phantom_frames import fewer_frames

CASE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"


def anatomy(seed=0, shape=(6, 40, 40)):
    """Muscle, gland and fat (200, 300, 900) at random in a square body, air around: the T1-pre."""
    t1 = np.zeros(shape)
    t1[:, 5:35, 5:35] = np.random.default_rng(seed).choice([200.0, 300.0, 900.0], size=(shape[0], 30, 30))
    return t1


def test_the_gain_is_measured_only_where_both_the_frame_and_the_t1pre_image_the_body():
    """Either series may cover less of the working grid than the other (resampled as 0 outside its field of view).
    Voxels one of them does not image say nothing about the gain: it stays the frame's true gain either way."""
    t1, gain = anatomy(), 0.6
    half = np.zeros(t1.shape, bool)
    half[:, :, 20:] = True
    frame = gain * t1
    frame[half] = 0.0  # the DCE frame images only the left half
    found, voxels = baseline_gain(frame, t1)
    assert found == pytest.approx(gain, rel=1e-6)
    assert voxels == int(((t1 > 0) & ~half).sum())
    t1_half = np.where(half, 0.0, t1)  # the T1-pre images only the left half
    found, voxels = baseline_gain(gain * t1, t1_half)
    assert found == pytest.approx(gain, rel=1e-6)
    assert voxels == int(((t1 > 0) & ~half).sum())


def test_the_gain_is_a_median_that_a_few_bright_voxels_do_not_move():
    """Inflow or a vessel bright in the DCE frame alone (0.5 % of the body at 20×) is no gain: the body median is."""
    t1, gain = anatomy(1), 1.7
    frame = gain * t1
    body = np.flatnonzero(t1 > 0)
    hot = np.random.default_rng(2).choice(body, size=body.size // 200, replace=False)
    frame.flat[hot] *= 20.0
    found, _ = baseline_gain(frame, t1)
    assert found == pytest.approx(gain, rel=1e-6)


def test_the_pre_contrast_frame_is_moved_as_the_early_frame_of_its_series(monkeypatch):
    """The frame belongs to the DCE series: on the working grid it must land where the early frame lands, whatever
    the registration found for the T1-pre. Given the early frame's own image as the frame, the two resampled arrays
    are equal; moved by the T1-pre's transform or by none, they are not."""
    import DCEDiffLib.preprocess as preprocess
    from DCEDiffLib.registration import identity_result

    shifts = {"pd": (0.0, 0.0, 0.0), "adc": (0.0, 0.0, 0.0), "t1pre": (-4.0, 3.0, 0.0),
              "dce_early": (5.0, -2.0, 1.0), "dce_late": (5.0, -2.0, 1.0)}

    def registered(t2w, images, modalities, centre, **kwargs):
        results = {}
        for modality in modalities:
            result = identity_result(modality, "test: a known correction")
            results[modality] = dataclasses.replace(result, transform=sitk.TranslationTransform(3, shifts[modality]),
                                                    applied=True)
        return results

    monkeypatch.setattr(preprocess, "register_series", registered)
    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    early = sitk.ReadImage(inputs["dce_early"], sitk.sitkFloat32)
    case = preprocess.preprocess_case(dict(inputs, dce_baseline=early), register=True)
    on_grid = {k: sitk.GetArrayFromImage(case.images[k]) for k in ("dce_early", "dce_baseline")}
    assert np.array_equal(on_grid["dce_baseline"], on_grid["dce_early"])
    unmoved = preprocess.resample_to_grid(early, case.grid, None, name="test")
    assert not np.allclose(sitk.GetArrayFromImage(unmoved), on_grid["dce_early"])  # the shift shows on the grid


class _Series:
    def __init__(self, uid):
        self.uid, self.number, self.description = uid, 1, "twist"

    def label(self):
        return f"#{self.number} {self.description!r}"


def test_a_dce_whose_only_pre_contrast_frame_is_its_first_gives_that_frame():
    """Contrast arriving at the second frame leaves frame 0 as the one clean frame: it is the baseline, not 'none'."""
    from DCEDiffLib.dce_series import DceSeries
    from DCEDiffLib.study_roles import _dce_baseline

    series = _Series("1.2.3")
    means = [100.0, 160.0, 220.0, 260.0, 280.0, 290.0]
    frames = [(series, types.SimpleNamespace(index=i, files=[], temporal_position=i + 1)) for i in range(len(means))]
    dce = DceSeries(frames, [4.0 * i for i in range(len(means))], "one series, 6 temporal positions", "test")

    def read(volume, name):
        return sitk.GetImageFromArray(np.full((2, 4, 4), means[volume.index], np.float32))

    pick, why = _dce_baseline(dce, None, read)
    assert dce.arrival_index == 1
    assert why == "" and pick is not None and pick.frame_index == 0 and pick.volume is frames[0][1]


@pytest.fixture(scope="module")
def vibe_study(tmp_path_factory):
    """A phantom study whose T1-pre is its VIBE (another series than the DCE), with post-contrast VIBEs beside."""
    from shared_phantom_case import generated_case
    from DCEDiffLib.phantom.study_export import write_phantom_study

    case = generated_case(3)
    case = fewer_frames(case)
    root = tmp_path_factory.mktemp("vibe_study") / "P-7"
    omit = ("localizer", "t2_sag", "t2_cor", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb")
    write_phantom_study(case, root, omit=omit, patient_id="P-7")
    return root


def test_no_dce_baseline_when_the_early_frame_comes_from_another_series(vibe_study):
    """The gain of the DCE series says nothing of a series picked by hand as the early frame (a post-contrast
    VIBE): no DCE frame is taken to rescale it."""
    from DCEDiffLib.dicom_study import scan_study
    from DCEDiffLib.study_roles import parse_series_overrides, pick_roles

    study = scan_study(vibe_study)
    default = pick_roles(study)
    assert default.baseline is not None  # the T1-pre is the VIBE: the DCE's frame comes along
    post = next(s for s in study.series if s.description == "t1_vibe_fs_tra_post")
    other = pick_roles(study, overrides=parse_series_overrides([f"dce_early={post.number}"]))
    assert other.picks["dce_early"].series.uid == post.uid
    assert other.baseline is None


def test_the_command_line_refuses_a_pre_contrast_frame_without_the_acquired_dce_before_reading_it():
    """--dce-baseline alone is refused by collect_inputs, before any series is read, naming the option."""
    from DCEDiffLib.commands.common import collect_inputs
    from DCEDiffLib.errors import InputError

    args = argparse.Namespace(**{m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")},
                              dce_early=None, dce_late=None, dce_baseline=str(CASE / "dce_early.nii.gz"),
                              labels=None, out=None)
    with pytest.raises(InputError, match="--dce-baseline"):
        collect_inputs(args)


def test_the_t1pre_given_as_its_own_pre_contrast_frame_is_no_same_image_warning(capsys):
    """One series as T1-pre and as the DCE's pre-contrast frame is no mistake (the gain is then 1): the warning for
    one image given in two roles is not said for that pair."""
    from DCEDiffLib.preprocess import read_inputs

    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    read_inputs(dict(inputs, dce_baseline=sitk.ReadImage(inputs["t1pre"], sitk.sitkFloat32)))
    assert "same image" not in capsys.readouterr().err


def test_no_dce_baseline_when_the_late_frame_comes_from_another_series(vibe_study):
    """A post-contrast VIBE picked as the late frame is on its own series' scale: the DCE's gain must not divide
    it, so no DCE frame is taken, and a note says the two acquired frames come from two series."""
    from DCEDiffLib.dicom_study import scan_study
    from DCEDiffLib.study_roles import parse_series_overrides, pick_roles

    study = scan_study(vibe_study)
    post = next(s for s in study.series if s.description == "t1_vibe_fs_tra_post")
    picks = pick_roles(study, overrides=parse_series_overrides([f"dce_late={post.number}"]))
    assert picks.picks["dce_late"].series.uid == post.uid
    assert picks.baseline is None
    assert any("not a frame of the DCE series" in note for note in picks.notes)


def test_a_first_frame_brighter_than_the_baseline_is_no_arrival_time_and_no_t1pre():
    """An arrival found at frame 0 has no frame before it: no arrival time (not the last frame's), no T1-pre frame
    (index −1 would be the last, most enhanced frame)."""
    import types

    from DCEDiffLib.dce_series import DceSeries, arrival_index
    from DCEDiffLib.study_roles import _t1_from_dce

    curve = [110.0, 100.0, 100.0, 100.0, 100.0, 200.0, 300.0]
    assert arrival_index(curve) == 0
    series = types.SimpleNamespace(uid="1", number=1, description="twist", label=lambda: "#1")
    frames = [(series, types.SimpleNamespace(files=[])) for _ in curve]
    dce = DceSeries(frames, [4.0 * i for i in range(len(curve))], "test", "test", curve=curve, arrival_index=0)
    assert dce.arrival_time_s is None
    pick, why = _t1_from_dce(dce, None, [])
    assert pick is None and "first frame" in why


def test_the_slicer_refuses_the_early_frame_selected_as_its_pre_contrast_frame():
    """The pre-contrast frame may be the T1-pre's volume (one series), never an acquired frame: the gain would then
    be measured on contrast."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DCEDiff"))
    from DCEDiffSlicerLib import process_runner as pr

    class Node:
        def __init__(self, name):
            self.name = name

        def GetID(self):
            return self.name

    nodes = {k: Node(k) for k in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    assert pr.same_volume_message(dict(nodes, dce_baseline=Node("t1pre"))) is None
    message = pr.same_volume_message(dict(nodes, dce_baseline=Node("dce_early")))
    assert message is not None and "pre-contrast frame" in message


def test_the_command_line_takes_the_t1pre_file_as_its_own_pre_contrast_frame_and_refuses_an_acquired_frame():
    """As the engine and the Slicer module: --dce-baseline may name the --t1pre file, never an acquired frame's."""
    from DCEDiffLib.commands.common import check_distinct_inputs
    from DCEDiffLib.errors import InputError

    case = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"
    inputs = {m: str(case / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    check_distinct_inputs(dict(inputs, dce_baseline=inputs["t1pre"]))
    with pytest.raises(InputError, match="--dce-baseline"):
        check_distinct_inputs(dict(inputs, dce_baseline=inputs["dce_early"]))


def test_a_pre_contrast_frame_far_from_any_receiver_gain_is_divided_by_and_questioned():
    """A 'pre-contrast frame' at 20× the T1-pre is more likely another image than a receiver gain: the division is
    made (the rule), and the record carries a warning to check the frame; at 2× there is none."""
    from DCEDiffLib.acquired_scale import PLAUSIBLE_GAIN, to_t1pre_scale

    t1 = anatomy()
    acquired = {"early": (3.0 * t1).astype(np.float32)}
    _, far = to_t1pre_scale(acquired, 20.0 * t1, t1)
    assert far["applied"] and far["gain"] == pytest.approx(20.0) and "check that it is the DCE's own" in far["warning"]
    _, near = to_t1pre_scale(acquired, 2.0 * t1, t1)
    assert near["applied"] and "warning" not in near
    assert PLAUSIBLE_GAIN[0] < 2.0 < PLAUSIBLE_GAIN[1] < 20.0
