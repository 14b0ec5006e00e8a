"""FID/KID: the Fréchet and kernel maths against closed forms, and the offline FID-Inception features."""

import math

import numpy as np
import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.evaluation import fid


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.5, 3.0, 5), rng.uniform(0.5, 3.0, 5)
    # ||μ1 − μ2||² + Σ (σ1² + σ2² − 2 σ1 σ2) for diagonal covariances with variances σ²
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    value = fid.frechet_distance_from_stats(mu1, np.diag(var1), mu2, np.diag(var2))
    assert value == pytest.approx(expected, rel=1e-10)
    assert fid.frechet_distance_from_stats(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, (20000, 3))
    b = rng.normal(1.0, 2.0, (20000, 3))
    # 3·(1 − 0)² + 3·(1 + 4 − 2·1·2) = 3 + 3 = 6
    assert fid.frechet_distance(a, b) == pytest.approx(6.0, rel=0.03)


def test_frechet_distance_survives_singular_covariances_and_both_routes_agree():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(8, 64))  # fewer samples than dimensions: rank-deficient covariance
    b = rng.normal(size=(12, 64)) * 1.5 + 0.5
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    value = fid.frechet_distance(a, b)  # exact low-rank route
    via_sqrtm = fid.frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                                                np.cov(b, rowvar=False))
    assert math.isfinite(via_sqrtm) and value == pytest.approx(via_sqrtm, rel=1e-6)
    assert value > 64 * 0.25 * 0.5  # at least part of the mean shift shows
    with pytest.raises(InputError, match="feature"):
        fid.frechet_distance(a, b[:, :10])


def test_kid_hand_example_and_distribution_shift():
    # X = {0, 1}, Y = {2, 3} in 1D, k(x, y) = (x·y + 1)³: k(0,1) = 1, k(2,3) = 343,
    # cross terms 1, 1, 27, 64 (mean 23.25) → MMD² = 1 + 343 − 2·23.25 = 297.5
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    result = fid.kernel_inception_distance(x, y, subsets=1, subset_size=2, gamma=1.0)
    assert result["mean"] == pytest.approx(297.5)
    assert result["subset_size"] == 2
    rng = np.random.default_rng(3)
    same = fid.kernel_inception_distance(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), subsets=20,
                                         subset_size=100)
    shifted = fid.kernel_inception_distance(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 1.0,
                                            subsets=20, subset_size=100)
    assert abs(same["mean"]) < 0.1 * shifted["mean"]


def test_missing_or_foreign_weights_give_none_and_a_reason(tmp_path):
    assert fid.load_inception(tmp_path / "absent.pt") is None
    assert "does not exist" in fid.unavailable_reason()
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not an inception network")
    assert fid.load_inception(foreign) is None
    assert "SHA-1" in fid.unavailable_reason()


@pytest.fixture(scope="module")
def extractor():
    path, reason = fid.weights_path()
    if path is None:
        pytest.skip(reason)
    loaded = fid.load_inception()
    if loaded is None:
        pytest.skip(fid.unavailable_reason())
    return loaded


def _blobs(seed, n=10, size=40):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([np.exp(-((yy - size / 2 - rng.normal(0, 3)) ** 2 + (xx - size / 2 - rng.normal(0, 3)) ** 2)
                            / (2 * rng.uniform(5, 9) ** 2)) for _ in range(n)])


def test_inception_features_run_offline_and_fid_of_a_set_with_itself_is_zero(extractor):
    blobs = _blobs(4)
    noise = np.random.default_rng(5).uniform(0, 1, blobs.shape)
    steps = []
    features_blobs = fid.features(extractor, blobs, value_range=(0.0, 1.0), batch_size=4,
                                  progress=lambda step, total: steps.append((step, total)))
    features_noise = fid.features(extractor, noise, value_range=(0.0, 1.0))
    assert features_blobs.shape == (10, fid.FEATURE_DIM) and np.isfinite(features_blobs).all()
    assert steps[-1] == (3, 3)
    assert features_blobs.min() >= 0.0  # pool3 follows a ReLU
    different = fid.frechet_distance(features_blobs, features_noise)
    assert fid.frechet_distance(features_blobs, features_blobs) < 1e-6 * different
    similar = fid.frechet_distance(features_blobs, fid.features(extractor, _blobs(6), value_range=(0.0, 1.0)))
    assert similar < 0.5 * different
    # Scaling matters: the same slices twice as bright under a fixed range are not the same images.
    brighter = fid.features(extractor, blobs * 0.5, value_range=(0.0, 1.0))
    assert fid.frechet_distance(features_blobs, brighter) > 1.0


def test_kid_std_is_not_zero_by_construction_on_small_sets():
    """With fewer slices than subset_size, subsets are half the set, so they differ and the std is informative."""
    rng = np.random.default_rng(3)
    result = fid.kernel_inception_distance(rng.normal(size=(40, 8)), rng.normal(0.3, 1, size=(40, 8)), subsets=20)
    assert result["subset_size"] == 20
    assert result["std"] > 0


def test_kid_default_gamma_is_one_over_the_feature_dimension():
    """Bińkowski et al.'s kernel k(a, b) = (a·b / D + 1)³: the default gamma is 1/D. The 2-D copies (t, t) of the
    hand example's 1-D points have a·b = 2·(s·t), so with gamma 1/2 they give the 1-D values: MMD² = 297.5."""
    x, y = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 2.0], [3.0, 3.0]])
    assert fid.polynomial_mmd2(x, y) == pytest.approx(297.5)
    assert fid.kernel_inception_distance(x, y, subsets=1, subset_size=2)["mean"] == pytest.approx(297.5)


def test_features_hand_the_network_three_channel_299_pixel_slices_in_minus_one_to_one():
    """The FID-Inception network takes [-1, 1] at 299×299 with three identical channels (module docstring): a
    black slice (0 after scaling) must arrive as -1 everywhere, a white one (1) as +1, a mid-grey one as 0."""
    import torch

    seen = []

    def network(batch):
        seen.append(batch.detach().cpu().numpy().copy())
        return torch.zeros((batch.shape[0], fid.FEATURE_DIM, 1, 1))

    slices = np.stack([np.zeros((12, 10)), np.ones((12, 10)), np.full((12, 10), 0.5)])
    out = fid.features(fid.InceptionFeatures(network), slices, value_range=(0.0, 1.0))
    assert out.shape == (3, fid.FEATURE_DIM)
    batch = np.concatenate(seen)
    assert batch.shape == (3, 3, fid.INPUT_SIZE, fid.INPUT_SIZE)
    np.testing.assert_allclose(batch[0], -1.0, atol=1e-6)
    np.testing.assert_allclose(batch[1], 1.0, atol=1e-6)
    np.testing.assert_allclose(batch[2], 0.0, atol=1e-6)
