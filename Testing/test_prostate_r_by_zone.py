"""scripts/prostate_r_by_zone.py: the gland's enhancement split by zone, on hand-made maps whose answer is known."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
pytest.importorskip("scipy")

import prostate_r_by_zone as probe  # noqa: E402

LEGEND = {"background": 0, "peripheral_zone": 7, "transition_zone": 8, "lesion": 9}


def _gland(shape=(4, 32, 32)):
    labels = np.zeros(shape, np.int16)
    labels[:, 4:28, 4:16] = LEGEND["peripheral_zone"]
    labels[:, 4:28, 16:28] = LEGEND["transition_zone"]
    labels[1:3, 10:15, 18:23] = LEGEND["lesion"]
    return labels


def test_a_model_that_draws_only_the_zone_means_scores_the_zone_share_and_nothing_within():
    rng = np.random.default_rng(0)
    labels = _gland()
    texture = rng.normal(size=labels.shape)
    inputs = np.stack([texture, rng.normal(size=labels.shape)])  # channel 0 carries the within-zone pattern
    level = {7: 1.0, 8: 2.0, 9: 4.0}
    zone_means = np.vectorize(lambda v: level.get(v, 0.0))(labels).astype(np.float64)
    acquired = zone_means + 0.5 * texture * (labels > 0)
    drawn = np.zeros_like(acquired)
    for value in level:
        drawn[labels == value] = acquired[labels == value].mean()  # the acquired zone means, exactly
    result = probe.zone_decomposition(drawn, acquired, labels, LEGEND, probe.smoothed_inputs(inputs))
    # The model's r over the gland is exactly the zone share: it draws the zone means and nothing else.
    assert result["prostate_r"] == pytest.approx(result["zone_share_r"], abs=1e-9)
    assert 0.5 < result["zone_share_r"] < 0.95
    for zone in ("peripheral_zone", "transition_zone"):
        inside = result["zones"][zone]
        assert np.isnan(inside["model_r"])  # constant inside the zone: undefined, not a number that looks fine
        assert inside["oracle_linear_r"] > 0.99  # the texture channel explains the within-zone pattern
        assert inside["synthetic_std"] == 0.0


def test_the_oracle_cannot_find_a_pattern_that_no_input_carries():
    rng = np.random.default_rng(1)
    labels = _gland()
    inputs = rng.normal(size=(2,) + labels.shape)
    hidden = rng.normal(size=labels.shape)
    result = probe.zone_decomposition(hidden.copy(), hidden, labels, LEGEND, probe.smoothed_inputs(inputs))
    assert result["prostate_r"] == pytest.approx(1.0)
    for zone in ("peripheral_zone", "transition_zone"):
        assert result["zones"][zone]["model_r"] == pytest.approx(1.0)
        assert result["zones"][zone]["oracle_linear_r"] < 0.25  # 7 columns over ~1000 voxels of unrelated noise
    assert "lesion" not in result["zones"] or result["zones"]["lesion"]["voxels"] >= probe.MIN_ZONE_VOXELS
