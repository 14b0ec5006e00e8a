"""Out-of-distribution check (DCEDiffLib/ood.py, issue 17 "never silently wrong").

A card is built from 5 freshly generated procedural phantom cases (domain A, as the shipped model's training
data); the version-1 procedural phantom of `Testing/fixture_cases.py` (another patient; the sample case shipped
until 2026-12-07) is the in-distribution exam and the base of every perturbation:
ADC in 10⁻³ mm²/s (×0.001) and in mm²/s (×10⁻⁶), T2W and PD given the wrong way round, a heavy left–right bias
field on the T2W, a negated (sign-flipped) T2W, PD, T1-pre or ADC, and non-prostate volumes (smooth random, a
brain-like blob). Each must be flagged (the ADC refused) with the reason that names it.
Then: the card script, the pipeline's outputs (synthesis.json, NIfTI description, report banner, warning line)
and the Slicer node attribute. Registration is skipped (the phantom's series share one frame): fast.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib import ood
from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import INPUT_MODALITIES
from DCEDiffLib.preprocess import preprocess_case, write_preprocessed
from fixture_cases import VERSION1_PROCEDURAL_CASE as BASE_CASE  # procedural, as the card's cases

ROOT = Path(__file__).resolve().parent.parent
TRAINING_CASES = 5
pytestmark = pytest.mark.skipif(not (BASE_CASE / "t2w.nii.gz").is_file(),
                                reason="version-1 phantom test case missing (Testing/data)")


def exam_statistics(inputs: dict) -> dict:
    """What the pipeline measures: preprocess, normalise in the model's channel order, input_statistics."""
    case = preprocess_case(inputs, register=False)
    conditions = np.stack([case.normalized(m) for m in INPUT_MODALITIES])
    return ood.case_statistics(case, conditions, INPUT_MODALITIES, inputs)


def sample_inputs() -> dict:
    return {m: sitk.ReadImage(str(BASE_CASE / f"{m}.nii.gz"), sitk.sitkFloat32) for m in INPUT_MODALITIES}


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """Per-case statistics and preprocessed folders of 5 generated phantom cases, and the card statistics."""
    from DCEDiffLib.phantom import case_seed, generate_case

    folder = tmp_path_factory.mktemp("ood_cases")
    statistics = []
    for index in range(TRAINING_CASES):
        case = generate_case(case_seed(17, index), "A", case_id=f"case_{index:03d}")
        inputs = {m: case.images[m] for m in INPUT_MODALITIES}
        statistics.append(exam_statistics(inputs))
        write_preprocessed(preprocess_case(inputs, register=False), folder / f"case_{index:03d}")
    return {"cases": statistics, "card": ood.training_statistics(statistics), "folder": folder}


@pytest.fixture(scope="module")
def card(training):
    return training["card"]


def score(inputs: dict, card_statistics: dict) -> dict:
    return ood.ood_score(exam_statistics(inputs), card_statistics)


def reasons_text(result: dict) -> str:
    return "\n".join(result["reasons"])


# ------------------------------------------------------------------------------------------------ the check

def test_in_distribution_phantom_exam_scores_low(card):
    result = score(sample_inputs(), card)
    assert result["checked"] and result["threshold"] == 1.0
    assert not result["flagged"], reasons_text(result)
    assert result["score"] < 0.9, result["features"]
    assert result["reasons"] == []
    assert not result["not_checked"]  # every card feature was measured on the exam


def test_training_statistics_hold_references_and_thresholds(card, training):
    assert card["cases"] == TRAINING_CASES and card["conditions"] == list(INPUT_MODALITIES)
    features = card["features"]
    for name in ("t2w.hist_body", "adc.hist_gland", "t1pre.noise", "pd.bias_lr", "corr.t2w|pd",
                 "adc_raw.gland_median", "geometry.t2w.inplane_mm", "geometry.adc.fov_mm", "t1pre.gland_level"):
        assert name in features, name
        assert features[name]["threshold"] > 0
    assert abs(sum(features["t2w.hist_gland"]["reference"]) - 1) < 1e-3
    low, high = features["adc_raw.gland_median"]["training_range"]
    assert 800 < low <= high < 2500  # scanner units, 10⁻⁶ mm²/s, in the gland
    # thresholds come from the training cases' own distances: none of them is beyond its own threshold
    assert max(ood.ood_score(s, card)["score"] for s in training["cases"]) < 1.0
    json.dumps(card, allow_nan=False)  # the card is JSON


@pytest.mark.parametrize("factor, units", [(1e-3, "in 10⁻³ mm²/s"), (1e-6, "in mm²/s")])
def test_adc_in_other_units_is_a_units_error_naming_them(card, factor, units):
    """A gland ADC of 1200 × 10⁻⁶ mm²/s is 1.2 in 10⁻³ mm²/s and 0.0012 in mm²/s: each is named as what it is."""
    inputs = sample_inputs()
    inputs["adc"] = inputs["adc"] * factor
    result = score(inputs, card)
    assert result["flagged"] and result["score"] > 3
    assert "ADC" in result["reasons"][0] and "units error" in result["reasons"][0], reasons_text(result)
    assert units in result["reasons"][0], reasons_text(result)


def test_swapped_t2w_and_pd_are_named(card):
    inputs = sample_inputs()
    inputs["t2w"], inputs["pd"] = inputs["pd"], inputs["t2w"]
    result = score(inputs, card)
    assert result["flagged"], result["features"]
    assert "T2-weighted (t2w) and proton density (pd) look swapped" in result["reasons"][0], reasons_text(result)


@pytest.mark.parametrize("modality", ["t2w", "pd", "t1pre"])
def test_a_negated_magnitude_input_is_named_as_negated_not_as_swapped(card, modality):
    """A sign-flipped export (every voxel <= 0) of a magnitude image: the first reason says its intensities look
    negated and what was expected; no swap guess comes first (a negated T1-pre once read "PD and T1-pre look
    swapped", and exchanging the files does nothing for a sign flip)."""
    inputs = sample_inputs()
    inputs[modality] = inputs[modality] * -1.0
    result = score(inputs, card)
    assert result["flagged"] and result["negated"] == [modality], result
    first = result["reasons"][0]
    assert f"({modality}): every nonzero voxel is negative" in first and "negated" in first, reasons_text(result)
    assert "expected a magnitude image with intensities ≥ 0" in first, reasons_text(result)
    assert "swapped" not in result and not any("look swapped" in r for r in result["reasons"]), reasons_text(result)
    plain = score(sample_inputs(), card)
    assert "negated" not in plain and not any("negated" in r for r in plain["reasons"])   # the control


def test_a_dropped_input_is_not_measured_for_its_sign():
    """case_statistics with ``missing``: an input left out (evaluate's run without PD keeps the case's PD file) is
    'left out of every statistic': its sign neither, so a negated PD that the model never sees flags nothing."""
    inputs = sample_inputs()
    inputs["pd"] = inputs["pd"] * -1.0
    case = preprocess_case(inputs, register=False)
    conditions = np.stack([case.normalized(m) for m in INPUT_MODALITIES])
    given = ood.case_statistics(case, conditions, INPUT_MODALITIES, inputs)
    assert ood.negated_inputs(given) == ["pd"]   # the control: measured when it is an input
    dropped = ood.case_statistics(case, conditions, INPUT_MODALITIES, inputs, missing=["pd"])
    assert set(dropped["sign"]) == {"t2w", "adc", "t1pre"} and ood.negated_inputs(dropped) == []


def test_a_negated_adc_is_refused_as_negated(card):
    """The ADC is refused below zero anyway (preprocess.MAX_NEGATIVE_ADC_FRACTION); negated, the message says so
    (the shipped ADC is 0 outside the body, so only a third of its voxels turn negative)."""
    inputs = sample_inputs()
    inputs["adc"] = inputs["adc"] * -1.0
    with pytest.raises(InputError, match=r"\(adc\): every nonzero voxel is negative .*negated.*expected an ADC map"):
        exam_statistics(inputs)


def _left_right_bias(image: sitk.Image, strength: float) -> sitk.Image:
    """A smooth multiplicative field along the image's first (left–right) axis: exp(strength) edge to centre."""
    array = sitk.GetArrayFromImage(image)
    width = array.shape[2]
    ramp = (np.arange(width) - (width - 1) / 2) / (width / 2)
    out = sitk.GetImageFromArray((array * np.exp(strength * ramp)[None, None, :]).astype(np.float32))
    out.CopyInformation(image)
    return out


def test_heavy_bias_field_is_named(card):
    inputs = sample_inputs()
    inputs["t2w"] = _left_right_bias(inputs["t2w"], 1.0)  # e² ≈ 7× brighter on one side than the other
    result = score(inputs, card)
    assert result["flagged"]
    assert any(r.startswith("T2-weighted (t2w): left–right intensity ramp") and "bias field" in r
               for r in result["reasons"]), reasons_text(result)
    mild = sample_inputs()
    mild["t2w"] = _left_right_bias(mild["t2w"], 0.05)  # a few per cent, as real coils leave: not flagged
    assert not score(mild, card)["flagged"]


def test_a_gland_low_on_the_t1pre_is_named_with_what_it_does_to_the_enhancement(card):
    """Fat made as bright as on a real non-fat-suppressed VIBE (12× the shipped case's suppressed fat) puts the
    gland below every training case's level on the normalised T1-pre: flagged, naming the T1-pre and the consequence."""
    inputs = sample_inputs()
    legend = json.loads((BASE_CASE / "case.json").read_text(encoding="utf-8"))["label_legend"]
    t1pre = inputs["t1pre"]
    labels = sitk.Resample(sitk.ReadImage(str(BASE_CASE / "labels.nii.gz")), t1pre, sitk.Transform(),
                           sitk.sitkNearestNeighbor)
    array = sitk.GetArrayFromImage(t1pre)
    array[sitk.GetArrayFromImage(labels) == legend["fat"]] *= 12.0
    bright = sitk.GetImageFromArray(array)
    bright.CopyInformation(t1pre)
    assert score(sample_inputs(), card)["features"]["t1pre.gland_level"] == 0.0   # the plain exam: no distance
    result = score(dict(inputs, t1pre=bright), card)
    assert result["features"]["t1pre.gland_level"] > 1.0, result["features"]
    reason = next((r for r in result["reasons"] if "central gland region lies at" in r), None)
    assert reason is not None and reason.startswith("T1 pre-contrast (t1pre)"), reasons_text(result)
    assert "relative enhancement is then likely too high" in reason


def _on_geometry(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image


def _smooth_random(reference: sitk.Image, seed: int) -> dict:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    shape = sitk.GetArrayFromImage(reference).shape
    volumes = {}
    for index, m in enumerate(INPUT_MODALITIES):
        field = gaussian_filter(rng.normal(size=shape), (1, 8, 8))
        field = (field - field.min()) / (field.max() - field.min())
        volumes[m] = _on_geometry(field * (2500 if m == "adc" else 1000) + 50, reference)
    return volumes


def _brain_like_blob(reference: sitk.Image, seed: int) -> dict:
    """A head-sized ellipsoid: bright rim (scalp/skull), grey interior with darker 'ventricles' (bright ADC)."""
    rng = np.random.default_rng(seed)
    k, h, w = sitk.GetArrayFromImage(reference).shape
    zz, yy, xx = np.ogrid[:k, :h, :w]
    r = np.sqrt(((xx - w / 2) / (0.42 * w)) ** 2 + ((yy - h / 2) / (0.48 * h)) ** 2 + 0 * zz)
    ventricles = (((xx - w / 2) / (0.08 * w)) ** 2 + ((yy - h / 2) / (0.2 * h)) ** 2) < 1
    inside, rim = r < 0.9, (r >= 0.9) & (r < 1.0)
    values = {"t2w": (600, 300, 1500), "pd": (900, 700, 1000), "adc": (800, 0, 3000), "t1pre": (700, 1100, 200)}
    volumes = {}
    for m, (grey, skin, fluid) in values.items():
        array = np.where(inside, grey, 0.0) + np.where(rim, skin, 0.0)
        array = np.where(inside & np.broadcast_to(ventricles, inside.shape), fluid, array)
        volumes[m] = _on_geometry(array + rng.normal(0, 20, array.shape).clip(0), reference)
    return volumes


@pytest.mark.parametrize("make", [_smooth_random, _brain_like_blob], ids=["smooth_random", "brain_like_blob"])
def test_non_prostate_volume_is_flagged(card, make):
    reference = sitk.ReadImage(str(BASE_CASE / "t2w.nii.gz"), sitk.sitkFloat32)
    result = score(make(reference, 3), card)
    assert result["flagged"] and result["score"] > 1.5, result["features"]
    # the reasons are about image content (histograms, contrast relations), not only units or geometry
    content = [r for r in result["reasons"] if "histogram" in r or "correlation" in r or "contrast" in r]
    assert len(content) >= 2, reasons_text(result)


def test_reasons_name_input_and_expectation(card):
    inputs = sample_inputs()
    inputs["adc"] = inputs["adc"] * 0.001
    result = score(inputs, card)
    for reason in result["reasons"]:
        assert "(" in reason and "training cases" in reason, reason  # names the input and what was expected


def test_missing_modality_is_skipped_and_bad_input_is_refused(card, training):
    statistics = dict(training["cases"][0])
    statistics["modalities"] = {m: v for m, v in statistics["modalities"].items() if m != "t1pre"}
    statistics["correlations"] = {p: r for p, r in statistics["correlations"].items() if "t1pre" not in p}
    result = ood.ood_score(statistics, card)
    assert "t1pre.hist_body" in result["not_checked"] and "t2w.hist_body" not in result["not_checked"]
    with pytest.raises(InputError, match=r"expected \(C, K, H, W\)"):
        ood.input_statistics(np.zeros((3, 4, 4, 4)), INPUT_MODALITIES)
    with pytest.raises(InputError, match="input_statistics"):
        ood.ood_score(training["cases"][0], {"version": 1})
    with pytest.raises(InputError, match="at least 2"):
        ood.training_statistics(training["cases"][:1])


# ------------------------------------------------------------------------------------------------ the card script

def _script():
    from script_module import load_script

    return load_script("add_input_statistics")


@pytest.fixture(scope="module")
def model_with_statistics(training, tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from random_model import save_random_model

    model = save_random_model(tmp_path_factory.mktemp("ood_model"))
    card_path = model.with_suffix(".json")
    before = json.loads(card_path.read_text())
    split = training["folder"].parent / "split.json"
    names = [f"case_{i:03d}" for i in range(TRAINING_CASES)]
    split.write_text(json.dumps({"train": names[:4], "validation": names[4:]}))
    assert _script().main([str(model), "--data", str(training["folder"]), "--split", str(split),
                           "--description", "test phantom"]) == 0
    return model, before


def test_script_writes_statistics_and_domain_into_the_card(model_with_statistics, capsys):
    from DCEDiffLib.diffusion.model_files import load_model

    model, before = model_with_statistics
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["input_statistics"]["cases"] == 4  # the split's training cases only
    assert card["data_domain"]["kind"] == "real"    # no dataset.json saying synthetic: the script does not guess
    assert card["data_domain"]["description"] == "test phantom"
    assert card["weights_sha256"] == before["weights_sha256"]
    assert {k: v for k, v in card.items() if k not in ("input_statistics", "data_domain")} == before
    assert load_model(model).card["input_statistics"]["version"] == ood.STATISTICS_VERSION  # still loads


def test_script_takes_the_data_kind_from_the_training_cases_not_the_folder(tmp_path):
    """A folder merging phantom runs (links to their cases, no dataset.json) is phantom data, not real exams."""
    merged = tmp_path / "merged"
    records = [{"synthetic": True, "generator": "DCEDiff phantom", "generator_version": 1, "domain": "A",
                "anatomy": {"family": "procedural"}},
               {"synthetic": True, "generator": "DCEDiff phantom", "generator_version": 1, "domain": "B",
                "anatomy": {"family": "prostatex"}}]
    dirs = []
    for index, record in enumerate(records + [None]):
        case_dir = merged / f"case_{index:03d}"
        case_dir.mkdir(parents=True)
        if record is not None:
            (case_dir / "case.json").write_text(json.dumps(record))
        dirs.append(case_dir)
    phantom = _script().data_domain(merged, None, None, dirs[:2])
    assert phantom["kind"] == "phantom" and phantom["phantom_cases"] == 2 and phantom["training_cases"] == 2
    assert phantom["phantom_domains"] == ["A", "B"] and phantom["anatomy_families"] == ["procedural", "prostatex"]
    assert "no real exam" in phantom["description"] and "domain A and B" in phantom["description"]
    mixed = _script().data_domain(merged, None, None, dirs)
    assert mixed["kind"] == "mixed" and "1 real exams" in mixed["description"]
    assert _script().data_domain(merged, None, None, dirs[2:])["kind"] == "real"
    assert _script().data_domain(merged, "real", "site X", dirs[:2])["description"] == "site X"  # the user decides


def test_script_refuses_a_split_naming_missing_cases(training, model_with_statistics, tmp_path, capsys):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["case_000", "case_999"]}))
    model, _ = model_with_statistics
    assert _script().main([str(model), "--data", str(training["folder"]), "--split", str(split)]) == 2
    assert "case_999 not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ at inference

def test_pipeline_labels_every_output_when_flagged(model_with_statistics, tmp_path, capfd):
    from DCEDiffLib.extras import extra_available
    from DCEDiffLib.pipeline import check_out_of_distribution, synthesize_to_folder

    model, _ = model_with_statistics
    inputs = sample_inputs()
    inputs["adc"] = inputs["adc"] * 0.001
    out = tmp_path / "out"
    synthesize_to_folder(inputs, out, model_path=str(model), steps=1, samples=1, register=False, device="cpu",
                         t2w_grid=True)
    assert "DCEDiff warning: inputs OUT OF the model's training distribution" in capfd.readouterr().err
    side = json.loads((out / "synthesis.json").read_text())
    result = side["out_of_distribution"]
    assert result["checked"] and result["flagged"] and result["score"] > 1
    assert "units error" in result["reasons"][0] and result["data_domain"]["description"] == "test phantom"
    for path in (out / "synthetic_early.nii.gz", out / "t2w_grid" / "synthetic_late.nii.gz"):
        descrip = sitk.ReadImage(str(path)).GetMetaData("descrip")
        assert descrip.startswith("SYNTHETIC OOD-WARNING"), descrip
    if extra_available("report"):
        from matplotlib.image import imread

        png = imread(str(out / "report.png"))[..., :3]
        top = png[: png.shape[0] // 8]
        red = (top[..., 0] > 0.75) & (top[..., 1] < 0.25) & (top[..., 2] < 0.25)
        assert red.sum() > 1000  # the red banner
    # a card without statistics: said, not silently skipped
    case = preprocess_case(sample_inputs(), register=False)
    conditions = np.stack([case.normalized(m) for m in INPUT_MODALITIES])
    unchecked = check_out_of_distribution({"conditions": list(INPUT_MODALITIES)}, case, conditions,
                                          INPUT_MODALITIES, sample_inputs())
    assert unchecked["checked"] is False and "no input_statistics" in unchecked["reason"]
    assert "inputs not checked against the model's training data" in capfd.readouterr().err  # said on the console


def test_report_has_no_banner_without_warning(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from DCEDiffLib.evaluation.report_figure import write_report_png

    rng = np.random.default_rng(0)
    volume = lambda: rng.random((4, 16, 16)).astype(np.float32)  # noqa: E731
    row = {"title": "t", "inputs": {m: volume() for m in INPUT_MODALITIES},
           "synthetic": {"early": volume(), "late": volume()}, "acquired": None}
    for warning, expect_red in ((None, False), ("inputs OUT OF the model's training distribution", True)):
        path = write_report_png(tmp_path / f"r{expect_red}.png", [row], warning=warning, dpi=60)
        png = imread(str(path))[..., :3]
        red = (png[..., 0] > 0.75) & (png[..., 1] < 0.25) & (png[..., 2] < 0.25)
        assert (red.sum() > 200) == expect_red


# ------------------------------------------------------------------------------------------------ Slicer

def test_slicer_result_nodes_carry_the_ood_attribute(tmp_path):
    slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
    sys.path.insert(0, str(ROOT / "DCEDiff"))
    from DCEDiffSlicerLib import scene_io

    slicer.mrmlScene = slicer.vtkMRMLScene()
    try:
        image = sitk.Image(8, 8, 4, sitk.sitkFloat32) + 1.0
        t2w = scene_io.image_to_volume_node(image, "T2W")
        flagged = {"checked": True, "flagged": True, "score": 3.2, "threshold": 1.0,
                   "reasons": ["ADC map (adc): units error"]}
        for verdict, expected in ((flagged, {"score": 3.2, "threshold": 1.0, "reasons": flagged["reasons"]}),
                                  ({"checked": False, "reason": "no statistics"}, None)):
            out = tmp_path / f"result_{expected is None}"
            out.mkdir()
            for target in ("early", "late"):
                sitk.WriteImage(image, str(out / f"synthetic_{target}.nii.gz"))
            (out / "synthesis.json").write_text(json.dumps({"provenance": {"model": "tiny"},
                                                            "out_of_distribution": verdict}))
            nodes = scene_io.load_results(out, t2w)
            for node in nodes.values():
                value = node.GetAttribute(scene_io.OOD_ATTRIBUTE)
                assert (json.loads(value) if value else None) == expected
            shutil.rmtree(out)
    finally:
        slicer.mrmlScene.Clear(1)


def test_histogram_threshold_is_margin_times_the_leave_one_out_distance():
    bins = len(ood.HISTOGRAM_BINS) - 1
    width = float(ood.HISTOGRAM_BINS[1] - ood.HISTOGRAM_BINS[0])
    a, b = np.zeros(bins), np.zeros(bins)
    a[5], b[15] = 1.0, 1.0  # all mass moved by 10 bins: earth mover's distance 10 bin widths
    cases = [{"gland_region": "central ellipsoid", "modalities": {"t2w": {"hist_body": list(h)}}} for h in (a, b)]
    card = ood.training_statistics(cases)
    # leave-one-out: each case's reference is the other case, so both distances are 10 widths
    assert card["features"]["t2w.hist_body"]["threshold"] == pytest.approx(ood.MARGIN * 10 * width, rel=1e-5)


def test_an_exam_cleaner_than_every_training_case_is_not_flagged_for_noise():
    cases = [{"gland_region": "central ellipsoid", "modalities": {"t2w": {"noise": v}}}
             for v in (0.050, 0.052, 0.055, 0.058, 0.060)]
    card = ood.training_statistics(cases)
    clean = ood.ood_score({"gland_region": "central ellipsoid", "modalities": {"t2w": {"noise": 0.005}}}, card)
    assert clean["features"]["t2w.noise"] == 0.0 and not clean["flagged"]
    noisy = ood.ood_score({"gland_region": "central ellipsoid", "modalities": {"t2w": {"noise": 0.5}}}, card)
    assert noisy["flagged"]
