"""Enhancement maps, lesion conspicuity, baselines and the whole-case evaluation on constructed data."""

import json
import math

import numpy as np
import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.evaluation.baselines import MeanEnhancementBaseline, identity_baseline
from DCEDiffLib.evaluation.case_evaluation import derive_body_mask, evaluate_case, region_masks
from DCEDiffLib.evaluation.enhancement import compare_enhancement, fit_target_scale, pearson
from DCEDiffLib.evaluation.lesions import contrast_to_noise, lesion_conspicuity

LEGEND = {"background": 0, "fat": 2, "peripheral_zone": 7, "transition_zone": 8, "lesion": 9}


def small_case(seed=0, K=4, H=48, W=48):
    """A body with fat, a two-zone gland and one lesion; early/late = T1-pre + zone-wise enhancement + noise."""
    rng = np.random.default_rng(seed)
    k, j, i = np.mgrid[0:K, 0:H, 0:W]
    r2 = ((j - H / 2) / (0.42 * H)) ** 2 + ((i - W / 2) / (0.45 * W)) ** 2
    body, fat = r2 <= 1, (r2 > 0.7) & (r2 <= 1)
    gland = ((j - H / 2) / 9.0) ** 2 + ((i - W / 2) / 11.0) ** 2 <= 1
    tz = gland & (((j - H / 2) / 4.0) ** 2 + ((i - W / 2) / 6.0) ** 2 <= 1)
    lesion = gland & ~tz & ((j - H / 2 - 6) ** 2 + (i - W / 2) ** 2 <= 4) & (k >= 1) & (k <= 2)
    labels = np.zeros((K, H, W), np.int16)
    labels[fat] = 2
    labels[gland & ~tz] = 7
    labels[tz] = 8
    labels[lesion] = 9
    t1 = np.where(body, 300.0, 4.0) + 200.0 * fat + rng.normal(0, 6, (K, H, W))
    early = t1 + 60.0 * gland + 120.0 * lesion + rng.normal(0, 6, (K, H, W))
    late = t1 + 150.0 * gland + 60.0 * lesion + rng.normal(0, 6, (K, H, W))
    f32 = lambda a: np.abs(a).astype(np.float32)  # noqa: E731
    return {"t1pre": f32(t1), "early": f32(early), "late": f32(late), "labels": labels}


# -- enhancement -----------------------------------------------------------------------------------------------------
def test_pearson_known_values_and_undefined_cases():
    x = np.arange(10.0)
    assert pearson(x, 2 * x + 1)[0] == pytest.approx(1.0)
    assert pearson(x, -x)[0] == pytest.approx(-1.0)
    value, reason = pearson(np.zeros(10), x)
    assert value is None and "constant" in reason and "no enhancement" in reason
    value, reason = pearson(x, x, mask=np.eye(1, 10, dtype=bool)[0])
    assert value is None and "1 voxel" in reason


def test_compare_enhancement_hand_example():
    acquired = np.array([0.0, 10.0, 20.0, 30.0])
    synthetic = acquired + np.array([2.0, -2.0, 2.0, -2.0])
    out = compare_enhancement(synthetic, acquired, data_range=20.0)
    assert out["mae"] == pytest.approx(0.1)  # |±2| / 20
    assert out["psnr"] == pytest.approx(10 * math.log10(1 / 0.01))  # MSE of (±0.1)² = 0.01 → 20 dB
    assert out["pearson"] == pytest.approx(np.corrcoef(synthetic, acquired)[0, 1])
    assert out["mean_ratio"] == pytest.approx(1.0)  # the ±2 cancel: the mean enhancement is right
    half = compare_enhancement(0.5 * acquired, acquired, 20.0, mask=np.array([False, True, True, False]))
    assert half["mean_ratio"] == pytest.approx(0.5) and half["pearson"] == pytest.approx(1.0)
    assert compare_enhancement(acquired, -acquired, 20.0)["mean_ratio"] is None  # acquired mean not positive
    empty = compare_enhancement(synthetic, acquired, 20.0, mask=np.zeros(4, bool))
    assert empty["mae"] is None and empty["pearson"] is None and "empty" in empty["pearson_reason"]


def test_target_scale_mappings():
    rng = np.random.default_rng(1)
    t1 = rng.uniform(100, 200, (2, 8, 8))
    body = np.ones(t1.shape, bool)
    assert fit_target_scale(t1, 3 * t1, "identity").scale == 1.0
    assert fit_target_scale(t1, 3 * t1, "body_median", body_mask=body).scale == pytest.approx(3.0)
    tissue = np.zeros(t1.shape, bool)
    tissue[0] = True
    target = 3 * t1
    target[1] += 1000  # "enhancement" outside the reference tissue does not bias the fit
    assert fit_target_scale(t1, target, "reference_tissue", tissue_mask=tissue).scale == pytest.approx(3.0)
    with pytest.raises(InputError, match="method"):
        fit_target_scale(t1, t1, "histogram")
    with pytest.raises(InputError, match="fat or muscle"):
        fit_target_scale(t1, t1, "reference_tissue")


# -- lesions ---------------------------------------------------------------------------------------------------------
def test_cnr_on_a_constructed_ring():
    # One lesion voxel at (10, 10); ring = disk of radius 3 voxels minus the lesion: 28 voxels (29 lattice points).
    # Ring values 5 + sign(column offset): 4 left, 6 right (11 each), 5 on the centre column (6) → mean exactly 5,
    # variance 22/28. Lesion value 10 → CNR = 5 / sqrt(22/28).
    shape = (1, 21, 21)
    _, jj, ii = np.mgrid[0:1, 0:21, 0:21]
    acquired = 5.0 + np.sign(ii - 10)
    lesion = (jj == 10) & (ii == 10)
    acquired[lesion] = 10.0
    synthetic = acquired.copy()
    synthetic[lesion] = 7.5  # half the contrast → relative CNR error −0.5
    prostate = np.ones(shape, bool)
    enh = np.zeros(shape)
    result, notes = lesion_conspicuity(synthetic, acquired, enh, enh, lesion, prostate)
    row = result["per_lesion"][0]
    assert row["ring_voxels"] == 28
    assert row["cnr_acquired"] == pytest.approx(5 / math.sqrt(22 / 28))
    assert row["cnr_synthetic"] == pytest.approx(2.5 / math.sqrt(22 / 28))
    assert row["cnr_relative_error"] == pytest.approx(-0.5)
    assert result["summary"]["n_lesions"] == 1 and notes == []
    # The ring stays inside the prostate: keep only the left half → ring = 11 voxels of value 4, constant.
    left = ii < 10
    result, notes = lesion_conspicuity(synthetic, acquired, enh, enh, lesion, left | lesion)
    assert result["per_lesion"][0]["ring_voxels"] == 11
    assert result["per_lesion"][0]["cnr_acquired"] is None
    assert any("constant" in n for n in notes)
    assert contrast_to_noise(acquired, lesion, np.zeros(shape, bool)) == (None, "no gland tissue around the lesion "
                                                                                "(empty ring)")


def test_fraction_of_lesions_above_the_gland_median():
    shape = (1, 30, 30)
    prostate = np.ones(shape, bool)
    lesions = np.zeros(shape, bool)
    centres = [(5, 5), (5, 20), (20, 12)]
    for j, i in centres:
        lesions[0, j:j + 2, i:i + 2] = True
    acquired_enh = np.linspace(0, 1, 900).reshape(shape)  # gland median ≈ 0.5
    synthetic_enh = acquired_enh.copy()
    values_acq = [2.0, 2.0, -1.0]  # above, above, below
    values_syn = [2.0, -1.0, -1.0]  # above, below, below
    for (j, i), a, s in zip(centres, values_acq, values_syn):
        acquired_enh[0, j:j + 2, i:i + 2] = a
        synthetic_enh[0, j:j + 2, i:i + 2] = s
    image = np.random.default_rng(0).normal(size=shape)
    result, _ = lesion_conspicuity(image, image, synthetic_enh, acquired_enh, lesions, prostate)
    summary = result["summary"]
    assert summary["n_lesions"] == 3
    assert summary["fraction_above_gland_median_acquired"] == pytest.approx(2 / 3)
    assert summary["fraction_above_gland_median_synthetic"] == pytest.approx(1 / 3)
    assert summary["above_gland_median_agreement"] == pytest.approx(2 / 3)
    ranks = [row["synthetic_gland_percentile"] for row in result["per_lesion"]]
    assert ranks == [1.0, 0.0, 0.0]


# -- baselines -------------------------------------------------------------------------------------------------------
def _four_level_case(gain: float):
    """T1-pre takes 100, 200, 300, 400 (×gain), 25 % each; early enhancement 0/30/60/90 (×gain) ± 6, late twice."""
    levels = np.repeat(np.array([100.0, 200.0, 300.0, 400.0]), 64)
    noise = np.tile([6.0, -6.0], levels.size // 2)
    enhancement = (levels - 100.0) * 0.3
    t1 = (levels * gain).reshape(4, 8, 8)
    early = t1 + ((enhancement + noise) * gain).reshape(4, 8, 8)
    late = t1 + ((2 * enhancement + noise) * gain).reshape(4, 8, 8)
    return t1, early, late


def test_mean_enhancement_baseline_learns_the_per_bin_average():
    # Each case: range(T1-pre) = 400 − 100 = 300 (×gain) → normalised levels 0, 1/3, 2/3, 1; quantile edges 0.25,
    # 0.5, 0.75 put one level per bin; the mean enhancement per bin is 0, 30, 60, 90 (/300 = 0, 0.1, 0.2, 0.3).
    baseline = MeanEnhancementBaseline(n_bins=4).fit([_four_level_case(1.0), _four_level_case(2.0)])
    np.testing.assert_allclose(baseline.inner_edges, [0.25, 0.5, 0.75], atol=1e-12)
    np.testing.assert_allclose(baseline.early, [0.0, 0.1, 0.2, 0.3], atol=1e-12)
    np.testing.assert_allclose(baseline.late, [0.0, 0.2, 0.4, 0.6], atol=1e-12)
    assert baseline.voxels.tolist() == [128, 128, 128, 128]
    # A new case with levels 50..200 (range 150): early = T1 + (0, .1, .2, .3)·150.
    t1 = np.repeat(np.array([50.0, 100.0, 150.0, 200.0]), 16).reshape(4, 4, 4)
    early, late = baseline.predict(t1)
    np.testing.assert_allclose(early[:, 0, 0], [50.0, 115.0, 180.0, 245.0], rtol=1e-6)
    np.testing.assert_allclose(late[:, 0, 0], [50.0, 130.0, 210.0, 290.0], rtol=1e-6)


def test_mean_enhancement_baseline_round_trips_through_json(tmp_path):
    training = [small_case(seed) for seed in (0, 10)]
    baseline = MeanEnhancementBaseline(n_bins=8).fit([(c["t1pre"], c["early"], c["late"]) for c in training])
    restored = MeanEnhancementBaseline.from_dict(json.loads(json.dumps(baseline.to_dict())))
    t1 = small_case(1)["t1pre"]
    for a, b in zip(baseline.predict(t1), restored.predict(t1)):
        np.testing.assert_array_equal(a, b)
    path = baseline.save(tmp_path / "baseline.json")
    np.testing.assert_array_equal(MeanEnhancementBaseline.load(path).predict(t1)[1], baseline.predict(t1)[1])
    bad = small_case(2)
    bad_late = bad["late"].copy()
    bad_late[0, 0, 0] = np.nan
    before = baseline.predict(t1)[0]
    with pytest.raises(InputError, match="late target.*non-finite"):
        baseline.fit([(bad["t1pre"], bad["early"], bad_late)])
    np.testing.assert_array_equal(baseline.predict(t1)[0], before)  # a failed fit changes nothing
    with pytest.raises(InputError, match="kind"):
        MeanEnhancementBaseline.from_dict({"kind": "something else"})
    with pytest.raises(InputError, match="not fitted"):
        MeanEnhancementBaseline().predict(t1)
    with pytest.raises(InputError, match="no training case"):
        MeanEnhancementBaseline().fit([])


# -- whole case ------------------------------------------------------------------------------------------------------
def test_identity_baseline_has_undefined_enhancement_correlation():
    case = small_case(2)
    acquired = {"early": case["early"], "late": case["late"]}
    identity = identity_baseline(case["t1pre"], case["early"])
    result = evaluate_case({"early": identity, "late": identity}, acquired, case["t1pre"], case["labels"], LEGEND)
    for target in ("early", "late"):
        for region in ("whole", "body", "prostate", "lesion"):
            entry = result[target]["enhancement"][region]
            assert entry["pearson"] is None
            assert "no enhancement predicted" in entry["pearson_reason"]
        assert isinstance(result[target]["whole"]["psnr"], float)
    json.dumps(result, allow_nan=False)


def test_identity_baseline_with_a_gain_mapping_is_still_exactly_zero_enhancement():
    case = small_case(3)
    acquired = {"early": case["early"] * 2.5, "late": case["late"] * 2.5}
    body = derive_body_mask(acquired["early"])
    identity = identity_baseline(case["t1pre"], acquired["early"], method="body_median", body_mask=body)
    result = evaluate_case({"early": identity, "late": identity}, acquired, case["t1pre"], case["labels"], LEGEND,
                           body_mask=body, enhancement_method="body_median")
    assert result["info"]["enhancement_mapping"]["scale"] == pytest.approx(2.5, rel=0.2)
    assert result["early"]["enhancement"]["body"]["pearson"] is None


def test_a_float64_t1pre_as_the_prediction_has_undefined_enhancement_correlation():
    """A float64 T1-pre whose values float32 cannot hold, passed as the prediction (the identity baseline built by
    hand) and through identity_baseline with a gain mapping: its enhancement is exactly 0, so r and the lesion rank
    are undefined (the T1-pre used to be rounded to float32 first, leaving noise that correlated at r ≈ 0.01)."""
    case = small_case(5)
    t1 = case["t1pre"].astype(np.float64) + np.random.default_rng(5).uniform(0.0, 1.0, case["t1pre"].shape)
    acquired = {"early": case["early"].astype(np.float64), "late": case["late"].astype(np.float64)}
    result = evaluate_case({"early": t1, "late": t1}, acquired, t1, case["labels"], LEGEND)
    for target in ("early", "late"):
        for region in ("whole", "body", "prostate", "lesion"):
            entry = result[target]["enhancement"][region]
            assert entry["pearson"] is None, (target, region, entry)
            assert "no enhancement predicted" in entry["pearson_reason"]
        assert result[target]["lesions"]["summary"]["fraction_above_gland_median_synthetic"] is None
    body = derive_body_mask(acquired["early"])
    gain = identity_baseline(t1, 2.5 * acquired["early"], method="body_median", body_mask=body)
    assert gain.dtype == np.float64
    result = evaluate_case({"early": gain, "late": gain}, {k: 2.5 * v for k, v in acquired.items()}, t1,
                           case["labels"], LEGEND, body_mask=body, enhancement_method="body_median")
    assert result["early"]["enhancement"]["body"]["pearson"] is None
    assert identity_baseline(case["t1pre"], case["early"]).dtype == np.float32  # float32 stays float32


def test_perfect_prediction_scores_inf_one_zero_and_serialises():
    case = small_case(4)
    acquired = {"early": case["early"], "late": case["late"]}
    result = evaluate_case({k: v.copy() for k, v in acquired.items()}, acquired, case["t1pre"], case["labels"],
                           LEGEND, spacing=(3.0, 1.0, 1.0))
    for target in ("early", "late"):
        for region in ("whole", "body", "prostate"):
            assert result[target][region]["psnr"] == "inf"
            assert result[target][region]["ssim"] == pytest.approx(1.0)
            assert result[target][region]["mae"] == 0.0
        assert result[target]["enhancement"]["prostate"]["pearson"] == pytest.approx(1.0)
        assert result[target]["lesions"]["summary"]["cnr_relative_error"] == 0.0
    assert json.loads(json.dumps(result, allow_nan=False))["early"]["whole"]["psnr"] == "inf"


def test_a_real_synthesis_scores_between_and_lesions_are_found():
    case = small_case(5)
    acquired = {"early": case["early"], "late": case["late"]}
    rng = np.random.default_rng(9)
    synthetic = {k: (v + rng.normal(0, 20, v.shape)).astype(np.float32) for k, v in acquired.items()}
    result = evaluate_case(synthetic, acquired, case["t1pre"], case["labels"], LEGEND)
    early = result["early"]
    assert 10 < early["whole"]["psnr"] < 40 and 0 < early["whole"]["ssim"] < 1
    assert 0.3 < early["enhancement"]["prostate"]["pearson"] < 1
    assert early["lesions"]["summary"]["n_lesions"] == 1
    assert result["info"]["masks"]["lesion"]["voxels"] == int((case["labels"] == 9).sum())
    assert result["notes"] == []


def test_empty_masks_and_missing_labels_are_reported_not_divided_by_zero():
    case = small_case(6)
    acquired = {"early": case["early"], "late": case["late"]}
    no_lesion = case["labels"].copy()
    no_lesion[no_lesion == 9] = 7
    result = evaluate_case(acquired, acquired, case["t1pre"], no_lesion, LEGEND,
                           body_mask=np.zeros(no_lesion.shape, bool))
    assert result["early"]["body"] == {"psnr": None, "ssim": None, "mae": None}
    assert result["early"]["enhancement"]["lesion"]["pearson"] is None
    assert result["early"]["lesions"]["summary"]["n_lesions"] == 0
    assert any("body mask is empty" in n for n in result["notes"])
    assert any("lesion mask is empty" in n for n in result["notes"])
    unlabelled = evaluate_case(acquired, acquired, case["t1pre"])
    assert unlabelled["early"]["prostate"]["psnr"] is None
    assert any("no label map" in n for n in unlabelled["notes"])
    without_legend = evaluate_case(acquired, acquired, case["t1pre"], case["labels"], None)
    assert any("without a legend" in n for n in without_legend["notes"])
    json.dumps([result, unlabelled, without_legend], allow_nan=False)


def test_bad_case_inputs_raise_input_error_and_inputs_stay_untouched():
    case = small_case(7)
    acquired = {"early": case["early"], "late": case["late"]}
    copies = {k: v.copy() for k, v in acquired.items()}
    evaluate_case(acquired, acquired, case["t1pre"], case["labels"], LEGEND)
    assert all(np.array_equal(copies[k], acquired[k]) for k in acquired)
    with pytest.raises(InputError, match="targets"):
        evaluate_case({"early": case["early"]}, acquired, case["t1pre"])
    with pytest.raises(InputError, match="T1-pre"):
        evaluate_case(acquired, acquired, case["t1pre"][:2])
    with pytest.raises(InputError, match="label map"):
        evaluate_case(acquired, acquired, case["t1pre"], case["labels"][:, :10], LEGEND)


def test_body_mask_and_region_masks():
    case = small_case(8)
    body = derive_body_mask(case["early"])
    truth = case["t1pre"] > 100
    assert (body & truth).sum() / truth.sum() > 0.98 and (body & ~truth).sum() < 0.02 * truth.sum()
    masks, notes = region_masks(case["labels"], {"Peripheral Zone": 7, "transition-zone": 8, "Lesion 1": 9,
                                                 "fat": 2}, case["labels"].shape)
    assert np.array_equal(masks["prostate"], np.isin(case["labels"], [7, 8, 9]))
    assert np.array_equal(masks["lesion"], case["labels"] == 9)
    assert np.array_equal(masks["reference_tissue"], case["labels"] == 2) and notes == []


def test_synthetic_is_scaled_with_the_acquired_bounds():
    from DCEDiffLib.evaluation.metrics import apply_scale, mae

    case = small_case(9)
    acquired = {"early": case["early"], "late": case["late"]}
    brighter = {t: v * 1.5 for t, v in acquired.items()}  # self-scaled, this would match almost perfectly
    result = evaluate_case(brighter, acquired, case["t1pre"], case["labels"], LEGEND)
    low, high = np.percentile(case["early"].astype(np.float64), [0.5, 99.5])
    scaling = result["info"]["scaling"]["early"]
    assert (scaling["low"], scaling["high"]) == (pytest.approx(low), pytest.approx(high))
    expected = mae(apply_scale(brighter["early"], (low, high)), apply_scale(acquired["early"], (low, high)))
    assert result["early"]["whole"]["mae"] == pytest.approx(expected)
    assert result["early"]["whole"]["psnr"] < 25


def test_a_lesion_of_fewer_voxels_than_the_floor_has_no_lesion_r_and_one_at_the_floor_has_one():
    """Over 2 voxels r is ±1 whatever is drawn: a tiny lesion gets None and the reason, not a ±1 that moves means."""
    from DCEDiffLib.evaluation.enhancement import MIN_LESION_CORRELATION_VOXELS

    case = small_case(7)
    rng = np.random.default_rng(3)
    synthetic = {t: case[t] + rng.normal(0, 20, case[t].shape).astype(np.float32) for t in ("early", "late")}
    acquired = {"early": case["early"], "late": case["late"]}
    lesion_voxels = np.argwhere(case["labels"] == 9)
    assert len(lesion_voxels) > MIN_LESION_CORRELATION_VOXELS   # the constructed lesion is large enough
    large = evaluate_case(synthetic, acquired, case["t1pre"], case["labels"], LEGEND)
    assert large["early"]["enhancement"]["lesion"]["pearson"] is not None
    for keep in (2, MIN_LESION_CORRELATION_VOXELS - 1, MIN_LESION_CORRELATION_VOXELS):
        labels = case["labels"].copy()
        for k, j, i in lesion_voxels[keep:]:
            labels[k, j, i] = 7   # the rest of the lesion becomes peripheral zone
        result = evaluate_case(synthetic, acquired, case["t1pre"], labels, LEGEND)
        lesion = result["early"]["enhancement"]["lesion"]
        if keep < MIN_LESION_CORRELATION_VOXELS:
            assert lesion["pearson"] is None and f"{keep} lesion voxel" in lesion["pearson_reason"]
            assert result["early"]["lesions"]["summary"]["n_lesions"] >= 1   # conspicuity is still measured
        else:
            assert lesion["pearson"] is not None and "pearson_reason" not in lesion


def test_the_linear_predictor_baselines_keep_the_same_lesion_floor_as_the_model():
    """A one-input baseline's |r| over a 2-voxel lesion would be 1 by construction, beating any model for nothing."""
    from DCEDiffLib.evaluation.enhancement import MIN_LESION_CORRELATION_VOXELS
    from DCEDiffLib.evaluation.protocol import linear_predictor_r

    rng = np.random.default_rng(5)
    enhancement = rng.normal(size=(2, 8, 8))
    inputs = {"adc": rng.normal(size=(2, 8, 8))}
    tiny, large = np.zeros((2, 8, 8), bool), np.zeros((2, 8, 8), bool)
    tiny[0, 0, :2] = True
    large.reshape(-1)[:MIN_LESION_CORRELATION_VOXELS] = True
    out = linear_predictor_r(inputs, enhancement, {"lesion": tiny, "prostate": tiny})
    assert out["lesion"]["adc"] is None
    assert out["prostate"]["adc"] == pytest.approx(1.0)   # the floor is the lesion's alone
    assert linear_predictor_r(inputs, enhancement, {"lesion": large})["lesion"]["adc"] is not None
