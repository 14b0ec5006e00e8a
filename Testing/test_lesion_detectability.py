"""scripts/lesion_detectability.py: per-lesion contrasts against the gland ring, and their summary (slope, sign
agreement, share within ±50 %), on hand-made volumes whose answers are known; the input features exclude anything
drawn from a synthesis."""

import numpy as np
import pytest

from script_module import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("lesion_detectability")


def test_lesion_rows_measure_each_lesion_against_its_gland_ring(script):
    legend = {"peripheral_zone": 7, "transition_zone": 8, "lesion": 9}
    labels = np.zeros((3, 40, 40), np.int16)
    labels[:, 5:35, 5:35] = legend["peripheral_zone"]
    labels[1, 10:14, 10:14] = legend["lesion"]  # lesion 1: 16 voxels
    labels[1, 25:28, 25:28] = legend["lesion"]  # lesion 2: 9 voxels
    labels[0, 30:31, 30:32] = legend["lesion"]  # 2 voxels: too small, left out
    acquired = np.where(labels > 0, 1.0, 0.0)
    acquired[1, 10:14, 10:14] = 3.0  # +2 against the ring
    acquired[1, 25:28, 25:28] = 0.5  # −0.5
    drawn = np.where(labels > 0, 1.0, 0.0)
    drawn[1, 10:14, 10:14] = 2.0  # +1: half strength
    drawn[1, 25:28, 25:28] = 1.25  # +0.25: the wrong sign
    rows = script.lesion_rows(drawn, acquired, labels, legend)
    assert rows == [pytest.approx((2.0, 1.0)), pytest.approx((-0.5, 0.25))]
    summary = script.contrast_summary(rows)
    assert summary["lesions"] == 2
    assert summary["slope"] == pytest.approx((2.0 * 1.0 - 0.5 * 0.25) / (4.0 + 0.25), abs=1e-3)
    assert summary["sign_agreement"] == 0.5
    assert summary["within_50_percent"] == 0.5  # 1.0 is within 50 % of 2.0; 0.25 is not within 50 % of −0.5


def test_features_come_from_the_inputs_only(script):
    from DCEDiffLib.diffusion import voxel_corrector as vc

    names = vc.feature_names()
    kept = [names[i] for i in script.input_columns()]
    assert kept and not any(name.startswith("enh_") for name in kept)
    assert len(kept) == len(names) - sum(name.startswith("enh_") for name in names)
    assert any(name.startswith("adc") for name in kept) and any(name.startswith("t2w") for name in kept)
