"""Two lesion numbers that metrics.md gave as measured where nothing was measured (found by a bug hunt):

- a case without a label map (e.g. `dcediff dataset` cases of DICOM studies) counted 0 lesions, so the lesion table
  read "lesions/case 0.0 ± 0.0": lesions unknown, not absent. It is now undefined (null), while a label map with an
  empty lesion label still counts 0;
- the identity baseline, whose enhancement is exactly 0 everywhere, was scored "not above the gland median" for
  every lesion (0.00), and "agreeing" with each acquired lesion that is not above it (agreement 0.33 on a phantom
  evaluation), where its enhancement r is undefined for the same reason. The rank is now undefined for a constant
  enhancement map.
"""

import numpy as np

from DCEDiffLib.evaluation.case_evaluation import evaluate_case
from DCEDiffLib.evaluation.tables import aggregate, markdown_text

from test_enhancement import LEGEND, small_case


def _lesion_row(summary: dict, method: str, target: str = "early") -> list:
    lines = markdown_text(summary).split("## Lesion conspicuity")[1].splitlines()
    row = next(line for line in lines if line.startswith(f"| {method} | {target} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_without_a_label_map_the_lesion_count_is_undefined_not_zero():
    case = small_case(3)
    acquired = {"early": case["early"], "late": case["late"]}
    unlabelled = evaluate_case(acquired, acquired, case["t1pre"])
    assert unlabelled["early"]["lesions"]["summary"]["n_lesions"] is None
    no_lesion = case["labels"].copy()
    no_lesion[no_lesion == 9] = 7  # a lesion label in the legend, no lesion voxel: 0 lesions, measured
    empty = evaluate_case(acquired, acquired, case["t1pre"], no_lesion, LEGEND)
    assert empty["early"]["lesions"]["summary"]["n_lesions"] == 0
    cells = _lesion_row({"model": aggregate([unlabelled])}, "model")
    assert cells[2] == "undefined", cells


def test_a_prediction_without_enhancement_has_no_gland_median_rank():
    case = small_case(4)
    acquired = {"early": case["early"], "late": case["late"]}
    identity = {"early": case["t1pre"], "late": case["t1pre"]}
    result = evaluate_case(identity, acquired, case["t1pre"], case["labels"], LEGEND)
    lesion = result["early"]["lesions"]["per_lesion"][0]
    assert lesion["synthetic_above_gland_median"] is None and lesion["synthetic_gland_percentile"] is None
    assert lesion["acquired_above_gland_median"] is True  # the acquired lesion enhances above the gland
    summary = result["early"]["lesions"]["summary"]
    assert summary["fraction_above_gland_median_synthetic"] is None and summary["above_gland_median_agreement"] is None
    assert summary["fraction_above_gland_median_acquired"] == 1.0
    cells = _lesion_row({"identity": aggregate([result])}, "identity")
    assert cells[7] == "undefined" and cells[9] == "undefined", cells
    # a drawn enhancement keeps its rank
    drawn = evaluate_case(acquired, acquired, case["t1pre"], case["labels"], LEGEND)
    assert drawn["early"]["lesions"]["summary"]["above_gland_median_agreement"] == 1.0
    assert np.isfinite(drawn["early"]["lesions"]["per_lesion"][0]["synthetic_gland_percentile"])
