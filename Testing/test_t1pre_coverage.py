"""The share of the synthesized region without T1-pre behind it (t1pre_coverage.py): exact on hand-made masks, and
through ``synthesize_case`` with the shipped mean network on the version-1 phantom case, whose T1-pre is given whole
(no note) and cut to its inferior half of slices (a real file's geometry, as a T1-pre stand-in of 16 slices leaves
the top of the ProstateX grid uncovered): the record and the note land in the provenance (synthesis.json)."""

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError
from DCEDiffLib.model_registry import shipped_regression_path
from DCEDiffLib.t1pre_coverage import t1pre_coverage
from fixture_cases import VERSION1_PROCEDURAL_CASE

CASE = VERSION1_PROCEDURAL_CASE


def test_the_uncovered_share_and_slices_are_counted_inside_the_t2w_only():
    t2w = np.zeros((4, 6, 6), dtype=bool)
    t2w[:, 1:5, 1:5] = True                      # 16 voxels a slice, 64 in all
    t1pre = np.ones_like(t2w)
    t1pre[3] = False                             # the top slice: 16 of 64 uncovered
    t1pre[0, 0, :] = False                       # outside the T2W: does not count
    record = t1pre_coverage(t1pre, t2w)
    assert record["uncovered_share"] == 0.25 and record["covered_share"] == 0.75
    assert record["slices_mostly_uncovered"] == [4]
    assert "25.0%" in record["note"] and "slice(s) 4 of 4" in record["note"]


def test_a_covered_region_gets_no_note_and_bad_masks_are_refused():
    t2w = np.ones((2, 3, 3), dtype=bool)
    record = t1pre_coverage(np.ones_like(t2w), t2w)
    assert record["uncovered_share"] == 0.0 and record["slices_mostly_uncovered"] == [] and "note" not in record
    assert t1pre_coverage(np.ones_like(t2w), np.zeros_like(t2w)) is None
    with pytest.raises(InputError, match=r"shapes \(2, 3, 3\) and \(3, 3\)"):
        t1pre_coverage(t2w, t2w[0])


@pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="version-1 phantom test case missing (Testing/data)")
def test_synthesis_records_and_says_where_the_t1pre_does_not_reach():
    from DCEDiffLib.pipeline import synthesize_case

    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")}
    run = dict(seed=0, register=False, model_path=str(shipped_regression_path()))
    whole = synthesize_case(inputs, **run)
    assert "note" not in whole.provenance["t1pre_coverage"]
    assert whole.provenance["t1pre_coverage"]["covered_share"] > 0.99

    t1pre = sitk.ReadImage(inputs["t1pre"])
    direction = np.array(t1pre.GetDirection()).reshape(3, 3)
    half = t1pre.GetSize()[2] // 2
    # keep the inferior half of the slices (the third axis's LPS z sign says which end is inferior)
    cut = t1pre[:, :, :half] if direction[2, 2] > 0 else t1pre[:, :, half:]
    cut_run = synthesize_case(dict(inputs, t1pre=cut), **run)
    record = cut_run.provenance["t1pre_coverage"]
    assert record["uncovered_share"] > 0.2, record
    top = cut_run.case.grid.size[2]
    assert top in record["slices_mostly_uncovered"] and 1 not in record["slices_mostly_uncovered"], record
    assert record["note"].startswith(f"the T1-pre does not cover {record['uncovered_share']:.1%}")
    # report.png's text panel says it too; the whole exam's has no such line
    from DCEDiffLib.pipeline import report_row

    covered = f"T1-pre covers {record['covered_share']:.1%} of the synthesized region"
    assert report_row(cut_run)["notes"][0].startswith(covered)
    assert f"slice(s) {', '.join(map(str, record['slices_mostly_uncovered']))} mostly outside it" in \
        report_row(cut_run)["notes"][0]
    assert "notes" not in report_row(whole)
