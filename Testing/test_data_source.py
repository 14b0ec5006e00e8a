"""Where an input comes from (DCEDiffLib/data_source.py) and the OOD check's data-domain rule
(ood.apply_data_domain): a phantom-only model flags every exam that is not a marked DCEDiff phantom, even when the
statistics of its inputs fall inside the thresholds (docs/ood.md: ProstateX-0001 without PD scored 0.93)."""

import json
from pathlib import Path

import pytest
import SimpleITK as sitk

from DCEDiffLib import ood
from DCEDiffLib.data_source import NOT_MARKED, PHANTOM, PHANTOM_MARK, input_source, input_sources, mark_phantom
from DCEDiffLib.modalities import INPUT_MODALITIES

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CASE = ROOT / "Resources" / "SampleData" / "phantom_case"
PROSTATEX = ROOT.parent / "shared" / "data" / "prostatex"
needs_prostatex = pytest.mark.skipif(not (PROSTATEX / "ProstateX-0001").is_dir(),
                                     reason=f"ProstateX data not found at {PROSTATEX} (../shared/data is absent)")


@pytest.fixture(scope="module")
def phantom_case():
    from DCEDiffLib.phantom import case_seed, generate_case

    return generate_case(case_seed(23, 0), "A", case_id="case_000")


def test_phantom_images_files_and_dicom_carry_the_mark(phantom_case, tmp_path):
    from DCEDiffLib.phantom.generator import write_case

    for key, image in phantom_case.images.items():
        assert input_source(image) == PHANTOM, key  # in memory
    nifti = write_case(phantom_case, tmp_path / "nifti" / "case_000", include_series=False)
    dicom = write_case(phantom_case, tmp_path / "dicom" / "case_000", fmt="dicom", include_series=False)
    for m in INPUT_MODALITIES:
        assert input_source(nifti / f"{m}.nii.gz") == PHANTOM, m
        assert input_source(dicom / m) == PHANTOM, m  # a DICOM series folder: Manufacturer
        (dicom / "case.json").unlink(missing_ok=True)
        assert input_source(dicom / m) == PHANTOM, m  # the tag alone decides, not a case.json beside it
    assert sitk.ReadImage(str(nifti / "t2w.nii.gz")).GetMetaData("descrip").startswith(PHANTOM_MARK)


def test_the_shipped_sample_case_is_marked():
    for m in INPUT_MODALITIES:
        assert input_source(SAMPLE_CASE / f"{m}.nii.gz") == PHANTOM, m
        assert input_source(sitk.ReadImage(str(SAMPLE_CASE / f"{m}.nii.gz"), sitk.sitkFloat32)) == PHANTOM, m


def test_unmarked_inputs_are_not_phantoms(phantom_case, tmp_path):
    plain = sitk.GetImageFromArray(sitk.GetArrayFromImage(phantom_case.images["t2w"]))
    plain.CopyInformation(phantom_case.images["t2w"])
    assert input_source(plain) == NOT_MARKED  # the same pixels without the mark
    sitk.WriteImage(plain, str(tmp_path / "t2w.nii.gz"))
    assert input_source(tmp_path / "t2w.nii.gz") == NOT_MARKED
    # an older phantom case folder (files written before the mark): its case.json says what it is
    (tmp_path / "case.json").write_text(json.dumps({"generator": "DCEDiff phantom", "synthetic": True}))
    assert input_source(tmp_path / "t2w.nii.gz") == PHANTOM
    (tmp_path / "case.json").write_text(json.dumps({"generator": "scanner X", "synthetic": False}))
    assert input_source(tmp_path / "t2w.nii.gz") == NOT_MARKED
    (tmp_path / "case.json").write_text("{not json")
    assert input_source(tmp_path / "t2w.nii.gz") == NOT_MARKED
    assert input_source(tmp_path / "nothing_here.nii.gz") == NOT_MARKED
    assert input_source(None) == NOT_MARKED
    marked = sitk.Image(plain)
    mark_phantom(marked)
    sitk.WriteImage(marked, str(tmp_path / "marked.nrrd"))  # NRRD keeps the key (the Slicer module writes NRRD)
    assert input_source(tmp_path / "marked.nrrd") == PHANTOM
    assert input_source(plain) == NOT_MARKED  # marking a copy left the original alone


@needs_prostatex
def test_a_real_dicom_series_is_not_a_phantom():
    assert input_source(PROSTATEX / "ProstateX-0000" / "4-t2tsetra") == NOT_MARKED
    assert input_sources({"t2w": PROSTATEX / "ProstateX-0000" / "4-t2tsetra", "pd": None}, INPUT_MODALITIES) == \
        {"t2w": NOT_MARKED}


# ------------------------------------------------------------------------------------------------ the rule

def statistical_result(score: float, features: dict, reasons: list, swapped=None) -> dict:
    result = {"checked": True, "score": score, "threshold": 1.0, "flagged": score > 1.0, "reasons": list(reasons),
              "features": dict(features)}
    if swapped:
        result["swapped"] = swapped
    return result


PHANTOM_DOMAIN = {"kind": "phantom", "description": "DCEDiff phantom v2, domain A and B: simulated"}


def test_a_phantom_only_card_flags_an_unmarked_exam_inside_the_thresholds():
    sources = {"t2w": NOT_MARKED, "adc": NOT_MARKED, "t1pre": NOT_MARKED}
    result = ood.apply_data_domain(statistical_result(0.93, {"t1pre.hist_body": 0.93}, []), PHANTOM_DOMAIN, sources)
    assert result["flagged"] and result["score"] == ood.DOMAIN_MISMATCH_RATIO and result["statistical_score"] == 0.93
    assert "T2-weighted" in result["reasons"][0] and "phantoms only" in result["reasons"][0]
    assert "DCEDiff phantom v2" in result["reasons"][0] and result["input_sources"] == sources
    assert list(result["features"]) == [ood.DOMAIN_FEATURE, "t1pre.hist_body"]
    assert "OUT OF" in ood.summary_line(result) and "not a DCEDiff phantom" in ood.summary_line(result)


def test_the_rule_keeps_worse_reasons_first_and_leaves_phantoms_and_other_cards_alone():
    units = statistical_result(13.0, {"adc_raw.gland_median": 13.0, "t2w.noise": 1.5},
                               ["ADC … units error", "T2W noise"])
    result = ood.apply_data_domain(units, PHANTOM_DOMAIN, {"t2w": NOT_MARKED, "adc": NOT_MARKED})
    assert result["score"] == 13.0 and "units error" in result["reasons"][0]
    assert "not a DCEDiff phantom" in result["reasons"][1] and result["reasons"][2] == "T2W noise"
    swap = statistical_result(1.4, {"t2w.hist_body": 1.4}, ["look swapped", "T2W histogram"], swapped=["t2w", "pd"])
    result = ood.apply_data_domain(swap, PHANTOM_DOMAIN, {"t2w": NOT_MARKED})
    assert result["reasons"][0] == "look swapped" and "not a DCEDiff phantom" in result["reasons"][1]
    # all inputs marked: the statistics alone decide
    marked = ood.apply_data_domain(statistical_result(0.6, {"t2w.noise": 0.6}, []), PHANTOM_DOMAIN,
                                   {m: PHANTOM for m in INPUT_MODALITIES})
    assert not marked["flagged"] and marked["score"] == 0.6 and ood.DOMAIN_FEATURE not in marked["features"]
    # a card trained on real or mixed data has no reason to ask for the mark
    for kind in ("real", "mixed", None):
        other = ood.apply_data_domain(statistical_result(0.6, {"t2w.noise": 0.6}, []), {"kind": kind},
                                      {"t2w": NOT_MARKED})
        assert not other["flagged"] and other["score"] == 0.6
    assert ood.apply_data_domain({"checked": False, "reason": "x"}, PHANTOM_DOMAIN, {"t2w": NOT_MARKED}) == \
        {"checked": False, "reason": "x"}


@needs_prostatex
def test_shipped_card_flags_a_real_exam_given_without_pd():
    """The case that passed unflagged on statistics alone: ProstateX-0001, T2W + ADC + the PD series as T1-pre."""
    from DCEDiffLib.diffusion.model_files import load_card
    from DCEDiffLib.model_registry import shipped_model_path
    from DCEDiffLib.pipeline import check_out_of_distribution, condition_array
    from DCEDiffLib.preprocess import preprocess_case

    card = load_card(shipped_model_path())
    assert card["data_domain"]["kind"] == "phantom"
    exam = PROSTATEX / "ProstateX-0001"
    inputs = {"t2w": str(exam / "10-t2tsetra"), "adc": str(exam / "8-ep2ddifftraDYNDISTMIXADC"),
              "t1pre": str(exam / "11-tfl3d_PD_reftra1.5x1.5t3"), "pd": None}
    case = preprocess_case(inputs, register=False, optional=("pd",))
    conditions = condition_array(case, card["conditions"])
    result = check_out_of_distribution(card, case, conditions, card["conditions"], inputs, missing=["pd"])
    assert result["flagged"] and result["score"] >= ood.DOMAIN_MISMATCH_RATIO
    assert any("not a DCEDiff phantom" in r for r in result["reasons"])
    assert result["input_sources"] == {"t2w": NOT_MARKED, "adc": NOT_MARKED, "t1pre": NOT_MARKED}
    assert "statistical_score" in result


def test_shipped_card_does_not_flag_the_shipped_phantom_case():
    from DCEDiffLib.diffusion.model_files import load_card
    from DCEDiffLib.model_registry import shipped_model_path
    from DCEDiffLib.pipeline import check_out_of_distribution, condition_array
    from DCEDiffLib.preprocess import preprocess_case

    card = load_card(shipped_model_path())
    inputs = {m: str(SAMPLE_CASE / f"{m}.nii.gz") for m in INPUT_MODALITIES}
    case = preprocess_case(inputs, register=False)
    conditions = condition_array(case, card["conditions"])
    result = check_out_of_distribution(card, case, conditions, card["conditions"], inputs)
    assert not result["flagged"] and result["score"] == result["statistical_score"] < 1.0
    assert set(result["input_sources"].values()) == {PHANTOM}
