"""Image metrics: PSNR, MAE, SSIM on hand-computed examples, masks, scaling and JSON encoding."""

import json
import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from DCEDiffLib.errors import InputError
from DCEDiffLib.evaluation import metrics


def random_volume(seed=0, shape=(3, 24, 24)):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, shape)


def test_psnr_of_a_known_mse():
    ref = np.zeros((2, 8, 8))
    pred = ref + 0.1  # MSE = 0.01 → PSNR = 10·log10(1 / 0.01) = 20 dB
    assert metrics.psnr(pred, ref) == pytest.approx(20.0, abs=1e-12)
    # Data range 2 → 10·log10(4 / 0.01) = 20 + 20·log10(2)
    assert metrics.psnr(pred, ref, data_range=2.0) == pytest.approx(20.0 + 20.0 * math.log10(2.0), abs=1e-12)


def test_psnr_masked_uses_only_the_mask():
    ref = np.zeros((1, 4, 4))
    pred = ref.copy()
    pred[0, 0, 0] = 1.0  # an error outside the mask
    pred[0, 3, 3] = 0.5  # an error inside it: MSE over the 2-voxel mask = 0.25 / 2
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 3, 2:] = True
    assert metrics.psnr(pred, ref, mask=mask) == pytest.approx(10 * math.log10(1 / 0.125))
    assert metrics.mse(pred, ref, mask=mask) == pytest.approx(0.125)
    mask[0, 3, 3] = False
    assert metrics.psnr(pred, ref, mask=mask) == math.inf


def test_mae_hand_example_and_mask():
    ref = np.zeros((1, 2, 2))
    pred = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    assert metrics.mae(pred, ref) == pytest.approx(1.5)
    mask = np.array([[[False, True], [False, True]]])
    assert metrics.mae(pred, ref, mask) == pytest.approx(2.0)


def test_ssim_identical_is_one_and_matches_skimage_per_slice():
    a = random_volume(1)
    b = np.clip(a + np.random.default_rng(2).normal(0, 0.1, a.shape), 0, 1)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    expected = np.mean([structural_similarity(a[k], b[k], data_range=1.0) for k in range(a.shape[0])])
    assert metrics.ssim(b, a) == pytest.approx(expected, rel=1e-12)
    expected_gauss = np.mean([structural_similarity(a[k], b[k], data_range=1.0, gaussian_weights=True)
                              for k in range(a.shape[0])])
    assert metrics.ssim(b, a, gaussian_weights=True) == pytest.approx(expected_gauss, rel=1e-12)
    assert metrics.ssim(b, a) < 0.99


def test_ssim_masked_is_the_map_mean_inside_the_mask():
    a = random_volume(3)
    b = np.clip(a + np.random.default_rng(4).normal(0, 0.2, a.shape), 0, 1)
    mask = np.zeros(a.shape, bool)
    mask[1, 8:16, 5:12] = True
    _, ssim_map = structural_similarity(a[1], b[1], data_range=1.0, full=True)
    assert metrics.ssim(b, a, mask=mask) == pytest.approx(ssim_map[8:16, 5:12].mean(), rel=1e-12)
    # Voxels in the 3-pixel border are excluded, as scikit-image excludes them.
    border_only = np.zeros(a.shape, bool)
    border_only[:, :3, :] = True
    assert metrics.ssim(b, a, mask=border_only) is None


def test_empty_mask_gives_none_not_a_division_by_zero():
    a, b = random_volume(5), random_volume(6)
    empty = np.zeros(a.shape, bool)
    assert metrics.psnr(a, b, mask=empty) is None
    assert metrics.mae(a, b, mask=empty) is None
    assert metrics.ssim(a, b, mask=empty) is None


def test_perfect_prediction_is_inf_one_zero_and_json_safe():
    a = random_volume(7)
    result = {"psnr": metrics.psnr(a, a), "ssim": metrics.ssim(a, a), "mae": metrics.mae(a, a),
              "undefined": float("nan")}
    assert result["psnr"] == math.inf and result["mae"] == 0.0 and result["ssim"] == pytest.approx(1.0)
    encoded = metrics.json_safe(result)
    text = json.dumps(encoded, allow_nan=False)
    assert json.loads(text) == {"psnr": "inf", "ssim": pytest.approx(1.0), "mae": 0.0, "undefined": None}
    assert metrics.decode_value("inf") == math.inf and metrics.decode_value(None) is None


def test_scale_to_unit_uses_percentiles_and_the_acquired_bounds_keep_brightness_errors():
    acquired = np.arange(1000, dtype=np.float64).reshape(10, 10, 10)
    scaled, (lo, hi) = metrics.scale_to_unit(acquired)
    # np.percentile of 0..999: 0.5th = 0.005·999, 99.5th = 0.995·999 (linear interpolation)
    assert lo == pytest.approx(4.995) and hi == pytest.approx(994.005)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    assert scaled[0, 5, 0] == pytest.approx((50 - lo) / (hi - lo))
    too_bright = acquired * 1.2
    # With its own bounds the brighter prediction would look nearly perfect; with the acquired bounds it is wrong.
    own = metrics.scale_to_unit(too_bright)[0]
    shared = metrics.apply_scale(too_bright, (lo, hi))
    assert metrics.psnr(own, scaled) > 60
    assert metrics.psnr(shared, scaled) < 25


def test_bad_inputs_raise_input_error_naming_them():
    with pytest.raises(InputError, match="acquired early"):
        metrics.scale_to_unit(np.ones((2, 8, 8)), name="acquired early")
    bad = random_volume(8)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="synthetic late.*non-finite"):
        metrics.check_volume(bad, "synthetic late")
    with pytest.raises(InputError, match="shape"):
        metrics.psnr(random_volume(), random_volume(shape=(3, 24, 20)))
    with pytest.raises(InputError, match="mask"):
        metrics.mae(random_volume(), random_volume(), mask=np.ones((3, 24, 20), bool))
    with pytest.raises(InputError, match="smaller than"):
        metrics.ssim(np.zeros((1, 5, 5)), np.zeros((1, 5, 5)))


def test_metrics_do_not_modify_inputs():
    a, b = random_volume(9), random_volume(10)
    a_copy, b_copy = a.copy(), b.copy()
    metrics.psnr(a, b), metrics.ssim(a, b), metrics.mae(a, b), metrics.scale_to_unit(a)
    assert np.array_equal(a, a_copy) and np.array_equal(b, b_copy)


def test_mae_averages_absolute_errors_of_both_signs():
    # errors −1 and +1: the mean absolute error is 1, the absolute mean error 0
    assert metrics.mae(np.array([[[-1.0, 1.0]]]), np.zeros((1, 1, 2))) == pytest.approx(1.0)


def test_ssim_pools_every_masked_voxel_once_across_slices_of_different_mask_sizes():
    """The docstring: the SSIM map is averaged over every voxel of the mask, pooled across slices (each voxel counts
    once), so a slice with 4 masked voxels weighs 4/104 and not half. Expected from scikit-image's maps directly."""
    a = random_volume(11)
    b = np.clip(a + np.random.default_rng(12).normal(0, 0.15, a.shape), 0, 1)
    b[1] = np.clip(a[1] + np.random.default_rng(13).normal(0, 0.4, a[1].shape), 0, 1)  # a much worse slice
    mask = np.zeros(a.shape, bool)
    mask[0, 5:15, 5:15] = True   # 100 voxels
    mask[1, 8:10, 8:10] = True   # 4 voxels
    maps = [structural_similarity(a[k], b[k], data_range=1.0, full=True)[1] for k in range(2)]
    expected = (maps[0][mask[0]].sum() + maps[1][mask[1]].sum()) / 104
    per_slice_mean = (maps[0][mask[0]].mean() + maps[1][mask[1]].mean()) / 2
    assert abs(expected - per_slice_mean) > 0.01  # the two poolings differ on this example
    assert metrics.ssim(b, a, mask=mask) == pytest.approx(expected, rel=1e-12)


def test_ssim_honours_the_data_range_it_is_given():
    """SSIM's constants are C1 = (K1·L)², C2 = (K2·L)² with L the data range; scaling both images and L by c scales
    every mean by c and every (co)variance by c², so SSIM(c·x, c·y; L = c) = SSIM(x, y; L = 1) exactly."""
    a = random_volume(14)
    b = np.clip(a + np.random.default_rng(15).normal(0, 0.2, a.shape), 0, 1)
    c = 1000.0
    assert metrics.ssim(c * b, c * a, data_range=c) == pytest.approx(metrics.ssim(b, a), rel=1e-9)
    assert metrics.ssim(c * b, c * a, data_range=c, gaussian_weights=True) == pytest.approx(
        metrics.ssim(b, a, gaussian_weights=True), rel=1e-9)
