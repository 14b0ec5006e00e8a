"""scripts/lesion_contrast_from_inputs.py: per-lesion features and contrasts on a hand-made grid, and the agreement
summary on known predictions."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
pytest.importorskip("scipy")

import lesion_contrast_from_inputs as probe  # noqa: E402


def test_each_lesion_gets_its_mean_features_and_its_contrast_against_the_ring():
    shape = (3, 20, 20)
    lesion = np.zeros(shape, bool)
    lesion[1, 4:7, 4:7] = True      # 9 voxels
    lesion[1, 13:15, 13:15] = True  # 4 voxels
    lesion[2, 0, 0] = True          # 1 voxel: too small, left out
    channel = np.ones((1,) + shape, np.float32)
    channel[0][lesion] = 3.0
    acquired = np.zeros((2,) + shape, np.float32)
    acquired[0][lesion] = 0.5
    acquired[1][lesion] = -0.2
    drawn = 0.5 * acquired
    rows = probe.lesion_rows(channel, lesion, acquired, drawn)
    assert len(rows) == 2
    features, contrast, drawn_contrast = rows[0]
    assert features.tolist() == pytest.approx([3.0, 2.0, np.log(9)])
    assert contrast == pytest.approx([0.5, -0.2]) and drawn_contrast == pytest.approx([0.25, -0.1])
    assert rows[1][0][-1] == pytest.approx(np.log(4))


def test_agreement_of_predicted_with_acquired_contrasts():
    acquired = np.array([1.0, -1.0, 2.0, 0.5])
    assert probe.agreement(acquired, acquired) == {"lesions": 4, "sign_agreement": 1.0, "within_50_percent": 1.0,
                                                   "slope": 1.0, "r": 1.0}
    faint = probe.agreement(acquired, 0.2 * acquired)
    assert faint["sign_agreement"] == 1.0 and faint["within_50_percent"] == 0.0 and faint["slope"] == 0.2
    flipped = probe.agreement(acquired, -acquired)
    assert flipped["sign_agreement"] == 0.0 and flipped["r"] == -1.0
