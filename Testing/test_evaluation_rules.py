"""Two evaluation rules at their definition: the body mask keeps the largest connected component, and the calibration
curve reports the root-mean-square error per bin (found by a mutation audit, session 53)."""

import numpy as np
import pytest

# ---------------------------------------------------------------- evaluation body mask
def test_the_body_mask_keeps_only_the_largest_connected_component():
    """case_evaluation.derive_body_mask: "then the largest 3D connected component". A body (a cylinder of radius
    20 voxels) and one separate bright object of 4 x 4 voxels (e.g. a marker beside the patient): the mask is the
    body alone."""
    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask

    k, j, i = np.indices((8, 64, 64))
    body = (j - 30) ** 2 + (i - 30) ** 2 <= 20 ** 2
    marker = (j >= 56) & (j < 60) & (i >= 56) & (i < 60)
    volume = np.where(body | marker, 100.0, 1.0)
    mask = derive_body_mask(volume)
    assert not (mask & marker).any()
    assert (mask & body).sum() / body.sum() > 0.98


# ---------------------------------------------------------------- calibration curve
def test_the_calibration_curve_reports_the_root_mean_square_error_per_bin():
    """protocol.calibration: "RMSE per std quantile bin". 100 voxels of distinct std in 10 bins of 10; within every
    bin the errors are +-1 and +-3 in equal numbers: RMSE = sqrt((1 + 9) / 2) = sqrt(5) ~ 2.236 (the mean |error|
    would be 2)."""
    from DCEDiffLib.evaluation.protocol import calibration

    std = np.linspace(0.01, 1.0, 100)
    block = [1.0, -3.0, -1.0, 3.0, 1.0, -3.0, -1.0, 3.0, 3.0, -1.0]   # five of magnitude 1, five of 3
    error = np.array(block * 10)
    result = calibration(std, error, bins=10)
    assert [row["voxels"] for row in result["curve"]] == [10] * 10
    for row in result["curve"]:
        assert row["rmse"] == pytest.approx(np.sqrt(5.0))
