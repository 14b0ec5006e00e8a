"""The acquired DCE brought onto the T1-pre's intensity scale by its own pre-contrast frame (acquired_scale.py).

A T1-pre from another series (a VIBE beside a TWIST DCE) puts the acquired DCE on another scale, ``a`` times the
T1-pre's. The gain is measured on the DCE's pre-contrast frame (no enhancement in it) and divided out; then the
enhancement acquired − T1-pre is the tissue's own again, not ``(a − 1) × T1-pre`` plus it.
"""

from pathlib import Path

import numpy as np
import pytest

from DCEDiffLib.acquired_scale import acquired_scale_note, baseline_gain, to_t1pre_scale

from fixture_cases import VERSION1_PROCEDURAL_CASE as CASE  # its T1-pre is its DCE's pre-contrast frame


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small random-weight model (tiny preset): the scale question needs a synthesis, not a good one."""
    from random_model import save_random_model

    return save_random_model(tmp_path_factory.mktemp("model"))


def anatomy(seed=0, shape=(6, 40, 40)):
    """A positive T1-pre-like volume (tissues of different brightness, air around) and an enhancement pattern that
    does not follow it (cur: relative enhancement, 0 in air)."""
    rng = np.random.default_rng(seed)
    t1 = np.zeros(shape)
    t1[:, 5:35, 5:35] = rng.choice([200.0, 300.0, 900.0], size=(shape[0], 30, 30))  # muscle, gland, fat
    cur = np.zeros(shape)
    cur[:, 5:35, 5:35] = rng.uniform(0.0, 1.5, size=(shape[0], 30, 30))
    return t1, cur


def test_the_gain_of_the_pre_contrast_frame_is_found_whatever_the_anatomy():
    t1, _ = anatomy()
    noise = np.random.default_rng(1).normal(0.0, 2.0, t1.shape)
    gain, voxels = baseline_gain(0.37 * t1 + noise * (t1 > 0), t1)
    assert gain == pytest.approx(0.37, rel=0.01)
    assert voxels == int((t1 > 0).sum())  # the body: every tissue voxel, no air


def test_on_the_t1pre_scale_the_enhancement_is_the_tissues_own():
    """The acquired frame is a × T1-pre × (1 + cur); a perfect synthesis is T1-pre × (1 + cur). After the division
    the acquired enhancement equals the synthetic one (r = 1); left as it is, it carries (a − 1) × T1-pre and its
    correlation with the true enhancement falls — so the test fails if the gain is not divided out."""
    t1, cur = anatomy()
    a = 0.5
    acquired = {"early": (a * t1 * (1 + cur)).astype(np.float32)}
    scaled, record = to_t1pre_scale(acquired, (a * t1).astype(np.float32), t1)
    assert record["applied"] is True and record["gain"] == pytest.approx(a, rel=1e-5)
    body = t1 > 0
    truth = (t1 * cur)[body]
    assert np.allclose(scaled["early"][body] - t1[body], truth, rtol=1e-4, atol=1e-2)
    r_unscaled = np.corrcoef(acquired["early"][body] - t1[body], truth)[0, 1]
    assert r_unscaled < 0.9  # the T1-pre's anatomy dominates the unscaled "enhancement"
    assert acquired["early"].dtype == np.float32 and scaled["early"] is not acquired["early"]
    assert np.array_equal(acquired["early"], (a * t1 * (1 + cur)).astype(np.float32))  # the input is not modified


def test_a_frame_without_a_body_leaves_the_acquired_dce_as_it_is():
    t1, _ = anatomy()
    frame = np.zeros_like(t1)
    frame[0, 0, :5] = 50.0  # 5 voxels: too few to measure a gain on
    acquired = {"early": np.ones_like(t1, dtype=np.float32)}
    scaled, record = to_t1pre_scale(acquired, frame, t1)
    assert record["applied"] is False and "too few body voxels" in record["reason"]
    assert np.array_equal(scaled["early"], acquired["early"])


def test_the_note_no_longer_says_the_correlations_are_unaffected():
    """The old note said the enhancement correlations did not depend on the scale; they do (above). It must say
    that and how to fix it."""
    t1, cur = anatomy()
    note = acquired_scale_note(0.2 * t1 * (1 + cur), t1)
    assert note is not None and "carries a multiple of the T1-pre" in note and "--dce-baseline" in note
    assert acquired_scale_note(t1 * (1 + cur), t1) is None


def test_the_pipeline_compares_a_rescaled_acquired_dce_as_if_it_were_on_the_t1pre_scale(tiny_model):
    """The sample case's T1-pre is its DCE's frame 0 (one scale). The same exam with the acquired DCE at 0.4× (another
    receiver gain) and its pre-contrast frame at 0.4× as well must score as the original: same residuals, same
    metrics. Without the frame the acquired DCE stays as given, and the scale is said."""
    import SimpleITK as sitk

    from DCEDiffLib.pipeline import synthesize_case

    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    options = dict(model_path=str(tiny_model), steps=2, samples=1, register=False, device="cpu")
    original = synthesize_case(dict(inputs), **options)

    def at(gain, key):
        image = sitk.ReadImage(str(CASE / f"{key}.nii.gz"), sitk.sitkFloat32)
        return image * gain

    other = dict(inputs, dce_early=at(0.4, "dce_early"), dce_late=at(0.4, "dce_late"))
    rescaled = synthesize_case(dict(other, dce_baseline=at(0.4, "t1pre")), **options)
    assert rescaled.provenance["acquired_scale"]["gain"] == pytest.approx(0.4, rel=1e-4)
    assert "acquired_scale_note" not in rescaled.provenance
    for target in ("early", "late"):
        assert np.allclose(rescaled.acquired[target], original.acquired[target], rtol=1e-4, atol=1e-2)
        first, second = (sitk.GetArrayFromImage(o.residual[target]) for o in (original, rescaled))
        assert np.allclose(first, second, atol=0.05)
        for region in ("whole", "body"):
            assert rescaled.metrics[target][region]["psnr"] == pytest.approx(
                original.metrics[target][region]["psnr"], abs=0.01)
        assert rescaled.metrics[target]["enhancement"]["body"]["pearson"] == pytest.approx(
            original.metrics[target]["enhancement"]["body"]["pearson"], abs=1e-3)
    left = synthesize_case(dict(other), **options)  # no pre-contrast frame: compared as given, and said
    assert "acquired_scale" not in left.provenance and "different intensity scales" in left.provenance[
        "acquired_scale_note"]
    assert np.allclose(left.acquired["early"], 0.4 * original.acquired["early"], rtol=1e-4, atol=1e-2)


def test_a_pre_contrast_frame_without_the_acquired_dce_is_refused():
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.preprocess import read_inputs

    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")}
    with pytest.raises(InputError, match="given without the acquired DCE"):
        read_inputs(dict(inputs, dce_baseline=str(CASE / "t1pre.nii.gz")))


def test_training_targets_of_a_case_with_its_pre_contrast_frame_are_on_the_t1pre_scale(tmp_path):
    """A case folder (what `dcediff dataset` writes for a study whose T1-pre is a VIBE) with the acquired DCE at 0.4×
    and its pre-contrast frame beside it: load_case gives the targets of the same case at 1× (training and
    evaluation read these). Without the frame the targets stay at 0.4×, so the test fails if the frame is ignored."""
    import shutil

    import SimpleITK as sitk

    from DCEDiffLib.training.case_data import load_case

    original = tmp_path / "original"
    shutil.copytree(CASE, original)
    other = tmp_path / "other"
    shutil.copytree(CASE, other)
    for key in ("dce_early", "dce_late"):
        frame = sitk.ReadImage(str(CASE / f"{key}.nii.gz"), sitk.sitkFloat32)
        sitk.WriteImage(frame * 0.4, str(other / f"{key}.nii.gz"))
    plain = load_case(original, register=False)
    unscaled = load_case(other, register=False)
    sitk.WriteImage(sitk.ReadImage(str(CASE / "t1pre.nii.gz"), sitk.sitkFloat32) * 0.4,
                    str(other / "dce_baseline.nii.gz"))
    scaled = load_case(other, register=False)
    assert np.allclose(scaled.targets, plain.targets, atol=1e-4)
    assert not np.allclose(unscaled.targets, plain.targets, atol=1e-2)
    assert np.array_equal(scaled.conditions, plain.conditions)  # the model's inputs do not change
