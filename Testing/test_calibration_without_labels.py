"""The calibration of the sample std and of the expected-error map "in the prostate" (metrics.json
meta.protocol) was computed over the whole working grid for a case without a label map: the calibration functions
read a mask of None as the whole grid (found by a bug hunt: a `dcediff dataset` folder scored 409 600 "prostate"
voxels a case, 16 × 160 × 160, and a prostate median Spearman of 0.32). A region the case has no label for is now
undefined, with the reason; a labelled case is scored in its prostate as before."""

from types import SimpleNamespace

import numpy as np

from DCEDiffLib.evaluation_runner import _protocol_row, _protocol_summary
from DCEDiffLib.modalities import INPUT_MODALITIES

from test_enhancement import LEGEND, small_case


def _case(labels, legend):
    data = small_case(5)
    volumes = {m: data["t1pre"] for m in INPUT_MODALITIES}
    return SimpleNamespace(name="case_x", labels=labels, legend=legend, raw=lambda m: volumes[m]), data


def _row(labels, legend):
    case, data = _case(labels, legend)
    acquired = {"early": data["early"], "late": data["late"]}
    rng = np.random.default_rng(0)
    prediction = {t: v + rng.normal(0, 5, v.shape).astype(np.float32) for t, v in acquired.items()}
    spread = {t: np.abs(rng.normal(5, 2, v.shape)).astype(np.float32) for t, v in acquired.items()}
    return _protocol_row(case, acquired, data["t1pre"], prediction, spread, (), spread)


def test_without_labels_the_prostate_calibration_is_undefined_not_the_whole_grid():
    row = _row(None, None)
    for key in ("calibration", "expected_error_calibration"):
        prostate = row[key]["early"]["prostate"]
        assert prostate["spearman"] is None and prostate["curve"] == [], prostate
        assert prostate["reason"] == "no prostate label in this case"
        assert row[key]["early"]["body"]["spearman"] is not None
    assert row["expected_error_calibration"]["late"]["prostate"]["ratio"] is None
    summary = _protocol_summary([row], {"model": []})
    assert summary["calibration_median"]["early"]["prostate"] is None
    assert summary["expected_error_calibration_median"]["early"]["prostate"] == {"spearman": None, "ratio": None}


def test_with_labels_the_prostate_calibration_counts_the_prostate_voxels():
    _, data = _case(None, None)
    row = _row(data["labels"], LEGEND)
    prostate = int(np.isin(data["labels"], [7, 8, 9]).sum())
    for key in ("calibration", "expected_error_calibration"):
        curve = row[key]["early"]["prostate"]["curve"]
        assert sum(point["voxels"] for point in curve) == prostate
