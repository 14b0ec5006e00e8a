"""Inputs the engine must refuse or tame, each at its documented threshold, not only far beyond it: a series
covering a few percent of the working grid, an ADC with 5 % negative voxels, a series off the crop centre on either
side, a T1-pre tail moderately above every training case (found by a mutation audit, session 53)."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError

# ---------------------------------------------------------------- small synthetic exams (as Testing/test_reliability)
SIZE = (48, 48, 12)
SPACING = (5.0, 5.0, 4.0)
ORIGIN = tuple(-(n - 1) / 2.0 * s for n, s in zip(SIZE, SPACING))   # centred on (0, 0, 0): the T2W FOV centre
MODALITIES = ("t2w", "pd", "adc", "t1pre")


def volume(key: str) -> sitk.Image:
    """A smooth positive volume with contrast covering the whole 240 x 240 x 48 mm working grid."""
    rng = np.random.default_rng(MODALITIES.index(key))
    k, j, i = np.meshgrid(*(np.linspace(-1, 1, n) for n in reversed(SIZE)), indexing="ij")
    blob = np.exp(-((i / 0.5) ** 2 + (j / 0.4) ** 2 + (k / 0.8) ** 2))
    base = {"t2w": 400, "pd": 900, "adc": 1500, "t1pre": 300}[key]
    array = base * (0.5 + blob + 0.3 * i * j) + rng.normal(0, base * 0.02, blob.shape)
    image = sitk.GetImageFromArray(np.maximum(array, 1.0).astype(np.float32))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    return image


def exam(tmp_path: Path, **replaced) -> dict:
    """Paths of the four inputs written as NIfTI; ``replaced`` maps a modality to another image."""
    paths = {}
    for key in MODALITIES:
        image = replaced.get(key, volume(key))
        paths[key] = str(tmp_path / f"{key}.nii.gz")
        sitk.WriteImage(image, paths[key])
    return paths


def test_a_good_synthetic_exam_preprocesses(tmp_path):
    """The control for the three refusals below: the untouched exam goes through."""
    from DCEDiffLib.preprocess import preprocess_case

    case = preprocess_case(exam(tmp_path), register=False)
    assert min(case.coverage[m] for m in MODALITIES) > 0.9


def test_a_series_covering_a_few_percent_of_the_working_grid_is_refused(tmp_path):
    """preprocess.MIN_COVERAGE: every input must cover at least 10 % of the working grid. A PD cut down to a
    40 x 40 mm column around the centre covers (40/240)^2 ~ 2.8 % of the 240 x 240 mm grid: refused, naming it."""
    from DCEDiffLib.preprocess import preprocess_case

    narrow = volume("pd")[20:28, 20:28, :]          # 8 x 8 voxels of 5 mm, still containing the centre (0, 0, 0)
    with pytest.raises(InputError, match=r"\(pd\): covers only"):
        preprocess_case(exam(tmp_path, pd=narrow), register=False)


def test_an_adc_with_five_percent_negative_voxels_is_refused(tmp_path):
    """preprocess.MAX_NEGATIVE_ADC_FRACTION: an ADC is >= 0 and only ~1 % noisy negative voxels are tolerated;
    5 % negative voxels is not an ADC map."""
    from DCEDiffLib.preprocess import preprocess_case

    adc = volume("adc")
    array = sitk.GetArrayFromImage(adc)
    flat = array.reshape(-1)
    flat[: int(0.05 * flat.size)] = -50.0
    negative = sitk.GetImageFromArray(array)
    negative.CopyInformation(adc)
    with pytest.raises(InputError, match=r"\(adc\): 5\.0% of the voxels are negative"):
        preprocess_case(exam(tmp_path, adc=negative), register=False)


@pytest.mark.parametrize("dz", [150.0, -150.0])
def test_a_series_off_the_centre_is_refused_on_either_side(tmp_path, dz):
    """refuse_series_off_the_centre: a series 150 mm above *or below* the crop centre images another region; the
    refusal is a geometric fact about its field of view and must not depend on the direction of the offset."""
    from DCEDiffLib.preprocess import preprocess_case

    moved = volume("t1pre")
    moved.SetOrigin(tuple(o + d for o, d in zip(ORIGIN, (0.0, 0.0, dz))))
    with pytest.raises(InputError, match=r"\(t1pre\): the field of view does not contain the crop centre"):
        preprocess_case(exam(tmp_path, t1pre=moved), register=False)


def test_a_t2w_off_every_other_series_is_named_as_the_odd_one(tmp_path):
    """refuse_series_off_the_centre: a T2W moved 150 mm head-ward in its header (the audit of session 63: the user
    was told that the PD, ADC and T1-pre were likely the wrong series) sets the crop centre where no other series
    reaches; the refusal names the T2W as the likely odd one out. One series off still gets the usual hint."""
    from DCEDiffLib.preprocess import preprocess_case

    moved = volume("t2w")
    moved.SetOrigin(tuple(o + d for o, d in zip(ORIGIN, (0.0, 0.0, 150.0))))
    with pytest.raises(InputError, match=r"\(t1pre\): the field of view .* None of the 3 other series reaches it, "
                                         r"so the T2W \(--t2w\) is the likely odd one out"):
        preprocess_case(exam(tmp_path, t2w=moved), register=False)
    moved = volume("t1pre")
    moved.SetOrigin(tuple(o + d for o, d in zip(ORIGIN, (0.0, 0.0, 150.0))))
    with pytest.raises(InputError, match=r"One of them is likely the wrong series"):
        preprocess_case(exam(tmp_path, t1pre=moved), register=False)


# ---------------------------------------------------------------- intensity tail rule
def test_a_tail_moderately_above_every_training_case_is_tamed():
    """intensity_tail.tame_heavy_tail: the rule applies as soon as the spread exceeds TAIL_LIMITS (the largest
    training case's, 2.2), not only for extreme hot spots. A T1-pre whose top 2 % is 3x the bulk has a spread of
    about 3 (checked with tail_spread): its range must be set from the 90th percentile."""
    from DCEDiffLib.intensity_tail import TAIL_LIMITS, TAIL_TYPICAL, tail_spread, tame_heavy_tail
    from DCEDiffLib.normalization import fit_normalization

    values = np.random.default_rng(3).normal(300.0, 60.0, 20000).clip(1, None)
    values[: int(0.02 * values.size)] *= 3.0
    params = fit_normalization(values)
    spread = tail_spread(values, params)
    assert TAIL_LIMITS["t1pre"] < spread < 1.8 * TAIL_LIMITS["t1pre"], spread
    tamed, note = tame_heavy_tail(values, params, "t1pre")
    p90 = np.percentile(values, 90)
    assert note is not None and "t1pre" in note
    assert tamed.high == pytest.approx(params.low + TAIL_TYPICAL["t1pre"] * (p90 - params.low))


@pytest.mark.parametrize("cut", ["slices", "columns"])
def test_a_series_with_three_voxels_along_an_axis_is_refused_before_registration(tmp_path, cut):
    """preprocess.MIN_VOXELS_PER_AXIS: a PD of 3 slices (or 3 columns) ended, once registered, in an ITK traceback
    naming no series ("SmoothingRecursiveGaussianImageFilter ... less than 4"), in synthesize, preprocess and
    evaluate alike (found by a bad-input audit, session 63). Without registration 3 slices of 4 mm still cover
    25 % of the grid and went through: it must be refused while reading, naming the series."""
    from DCEDiffLib.preprocess import preprocess_case

    pd = volume("pd")
    thin = pd[:, :, 5:8] if cut == "slices" else pd[22:25, :, :]
    with pytest.raises(InputError, match=r"\(pd\): size .* voxels has fewer than 4 along an axis"):
        preprocess_case(exam(tmp_path, pd=thin), register=False)
