"""scripts/lesion_r_ceiling.py: the phantom case regenerated without noise is the same patient, its early/late differ
from the acquired by the noise only, and the evaluation's r of that noise-free drawing is near 1 (the ceiling docs/
model_quality.md reports); a case of another patient is refused instead of scored."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from script_module import load_script


@pytest.fixture(scope="module")
def written_case(tmp_path_factory):
    """A written domain-A phantom case with at least one lesion (the first such of a fixed seed list)."""
    from DCEDiffLib.phantom import case_seed, generate_case
    from DCEDiffLib.phantom.generator import write_case

    for index in range(8):
        case = generate_case(case_seed(41, index), "A", case_id="case_000")
        if case.params["lesions"]:
            folder = tmp_path_factory.mktemp("ceiling") / "case_000"
            write_case(case, folder, include_series=False)
            return folder, case
    raise AssertionError("no case with a lesion among 8 seeds")


def test_noise_free_case_is_the_same_patient_without_the_noise(written_case):
    ceiling = load_script("lesion_r_ceiling")
    folder, noisy = written_case
    params = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    clean = ceiling.noise_free_case(params)
    assert np.array_equal(sitk.GetArrayFromImage(clean.labels), sitk.GetArrayFromImage(noisy.labels))
    for modality in ("dce_early", "dce_late"):
        a = sitk.GetArrayFromImage(noisy.images[modality]).astype(np.float64)
        b = sitk.GetArrayFromImage(clean.images[modality]).astype(np.float64)
        body = b > 0.1 * np.percentile(b, 99.5)
        difference = (a - b)[body]
        # noise: present, zero-mean-ish and small against the signal
        assert difference.std() > 0
        assert difference.std() < 0.2 * b[body].mean()
        assert abs(difference.mean()) < 0.5 * difference.std() + 0.02 * b[body].mean()


def test_ceiling_of_a_noise_free_drawing_is_near_one(written_case):
    ceiling = load_script("lesion_r_ceiling")
    folder, _ = written_case
    metrics = ceiling.ceiling_metrics(folder, None)
    for target in ("early", "late"):
        assert metrics[target]["enhancement"]["prostate"]["pearson"] > 0.9
        assert metrics[target]["enhancement"]["lesion"]["pearson"] > 0.8


def test_a_case_of_another_patient_is_refused(written_case, tmp_path):
    ceiling = load_script("lesion_r_ceiling")
    folder, _ = written_case
    params = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    params["seed"] = int(params["seed"]) + 1
    other = tmp_path / "case_000"
    import shutil

    shutil.copytree(folder, other)
    (other / "case.json").write_text(json.dumps(params), encoding="utf-8")
    with pytest.raises(SystemExit, match="differs from the stored one"):
        ceiling.ceiling_metrics(other, None)


def test_population_kinetics_sets_the_normal_tissues_to_their_middle_and_keeps_the_draws():
    ceiling = load_script("lesion_r_ceiling")
    from DCEDiffLib.phantom.tissues import TISSUE_RANGES, sample_tissues

    drawn = sample_tissues(np.random.default_rng(5))
    middle = ceiling.population_kinetics(sample_tissues)(np.random.default_rng(5))
    low, high = TISSUE_RANGES["peripheral_zone"]["ktrans"]
    assert middle["peripheral_zone"].values["ktrans"] == pytest.approx(0.5 * (low + high))
    assert drawn["peripheral_zone"].values["ktrans"] != pytest.approx(0.5 * (low + high))
    # everything that is not kinetic is the same draw
    assert middle["peripheral_zone"].values["t2"] == drawn["peripheral_zone"].values["t2"]
    assert middle["muscle"].values["t1"] == drawn["muscle"].values["t1"]


def test_lesion_kinetics_from_inputs_follow_what_the_adc_shows_and_keep_the_patient(written_case):
    ceiling = load_script("lesion_r_ceiling")
    table = ceiling.LesionKineticsFromInputs(draws=1500, seed=1)
    # a dark-ADC, dark-T2 lesion is mostly textbook (strong wash-in); a brighter one mostly less enhancing
    dense, mild = table.expected("peripheral_zone", 700.0, 60.0), table.expected("peripheral_zone", 1150.0, 84.0)
    assert dense["ktrans"] > 2 * mild["ktrans"] and dense["vpa"] > mild["vpa"]
    folder, case = written_case
    case_json = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    expected_case = ceiling.noise_free_case(case_json, False, False, table)
    plain = ceiling.noise_free_case(case_json, False, False)
    # the same patient (anatomy and lesions), other lesion enhancement
    assert np.array_equal(sitk.GetArrayFromImage(expected_case.labels), sitk.GetArrayFromImage(plain.labels))
    early = [sitk.GetArrayFromImage(c.images["dce_early"]) for c in (expected_case, plain)]
    lesion = sitk.GetArrayFromImage(expected_case.labels) == case_json["label_legend"]["lesion"]
    assert not np.allclose(early[0], early[1]) and lesion.any()


def test_a_patient_without_a_lesion_gets_a_prostate_r_line_of_its_own_group():
    ceiling = load_script("lesion_r_ceiling")
    no_lesion = {"early": {"enhancement": {"prostate": {"pearson": 0.4}}, "lesions": {"summary": {"n_lesions": 0}}},
                 "late": {"enhancement": {"prostate": {"pearson": 0.5}}, "lesions": {"summary": {"n_lesions": 0}}}}
    row = ceiling.ceiling_row("case_004", {"lesions": []}, no_lesion)
    assert row["group"] == ceiling.NO_LESION and row["lesion_voxels"] == 0
    assert (row["prostate_r_early"], row["prostate_r_late"]) == (0.4, 0.5)
    assert row["lesion_r_early"] is None and row["lesions_late"] == []
    lesion = {"voxels": 30, "cnr_synthetic": 1.0, "cnr_acquired": 1.2}
    with_one = {t: {"enhancement": {"prostate": {"pearson": 0.9}, "lesion": {"pearson": 0.8}},
                    "lesions": {"per_lesion": [lesion]}} for t in ("early", "late")}
    row = ceiling.ceiling_row("case_000", {"lesions": [{"kind": "textbook"}]}, with_one)
    assert row["group"].startswith("textbook") and row["lesion_voxels"] == 30 and row["lesion_r_late"] == 0.8
