"""A missing PD at inference: the model card's ``optional_inputs`` (written by training with ``augment.drop_pd``),
the pipeline and ``dcediff synthesize`` without ``--pd`` (and a ``--study`` without a PD series), the PD channel
set to ``MISSING_INPUT_VALUE`` exactly as training did, the out-of-distribution check skipping PD, the report,
``dcediff evaluate --missing pd`` and ``dcediff preprocess`` without ``--pd``.

The model that synthesizes without PD is exported by a short real training run (tiny preset) with drop_pd; a
random-weight model without the field is the one that must refuse. Registration is skipped and the crop centre
given (the phantom's series share one frame): fast.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib import ood
from DCEDiffLib.cli import main
from DCEDiffLib.diffusion.model_files import load_card, load_model, missing_inputs_allowed
from DCEDiffLib.errors import InputError, ModelFileError
from DCEDiffLib.modalities import INPUT_MODALITIES, MISSING_INPUT_VALUE
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
from DCEDiffLib.preprocess import preprocess_case

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_model import save_random_model  # noqa: E402
from test_training import make_trainer, tiny_config  # noqa: E402

CASE = SAMPLE_CASE_DIR
needs_case = pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")


@pytest.fixture(scope="module")
def dropout_model(tmp_path_factory):
    """A tiny model exported by a real (short) training run with augment.drop_pd."""
    folder = tmp_path_factory.mktemp("dropout")
    make_trainer(folder, tiny_config(iterations=2, augment={"drop_pd": 0.5}), "run").run()
    return folder / "run" / "model.safetensors"


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    """A random-weight model whose card has no optional_inputs (like the current shipped model)."""
    return save_random_model(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def centre():
    from DCEDiffLib.working_grid import field_of_view_center

    return ",".join(f"{c:.4f}" for c in field_of_view_center(sitk.ReadImage(str(CASE / "t2w.nii.gz"))))


def no_pd_args(out: Path, model: Path, centre: str, *extra) -> list:
    return ["synthesize", "--t2w", str(CASE / "t2w.nii.gz"), "--adc", str(CASE / "adc.nii.gz"),
            "--t1pre", str(CASE / "t1pre.nii.gz"), "--model", str(model), "--steps", "1", "--no-register",
            f"--center={centre}", "--out", str(out), *extra]


# ------------------------------------------------------------------------------------------------ the model card

def test_training_with_drop_pd_writes_optional_inputs_and_without_it_does_not(dropout_model, tmp_path):
    card = load_model(dropout_model).card
    assert card["optional_inputs"] == ["pd"] and missing_inputs_allowed(card) == ("pd",)
    assert card["training"]["recipe"]["augment"]["drop_pd"] == 0.5
    make_trainer(tmp_path, tiny_config(iterations=1, augment={"noise": 0.01}), "plain").run()
    plain = load_card(tmp_path / "plain" / "model.json")
    assert "optional_inputs" not in plain and missing_inputs_allowed(plain) == ()


def test_residual_card_lists_pd_only_when_the_mean_network_was_trained_without_it_too(tmp_path, capsys):
    for name, mean_drop in (("mean_plain", 0.0), ("mean_drop", 0.5)):
        make_trainer(tmp_path, tiny_config(iterations=1, objective="regression",
                                           augment={"drop_pd": mean_drop}), name).run()
    for mean, expected in (("mean_plain", None), ("mean_drop", ["pd"])):
        config = tiny_config(iterations=1, objective="residual", augment={"drop_pd": 0.5},
                             mean_model=str(tmp_path / mean / "model.safetensors"))
        make_trainer(tmp_path, config, f"residual_{mean}").run()
        card = load_card(tmp_path / f"residual_{mean}" / "model.json")
        assert card.get("optional_inputs") == expected, mean
    # the rule is said when it drops PD: the mean network never saw a missing PD
    assert "mean model was not trained without pd" in capsys.readouterr().out


def test_card_check_refuses_a_bad_optional_inputs(plain_model, tmp_path):
    card_path = plain_model.with_suffix(".json")
    good = json.loads(card_path.read_text(encoding="utf-8"))
    try:
        for bad in ("pd", ["adc"], ["pd", "pd"], ["PD"], [None], {"pd": True}):
            card_path.write_text(json.dumps(dict(good, optional_inputs=bad)), encoding="utf-8")
            with pytest.raises(ModelFileError, match=r"optional_inputs .*a subset of \['pd'\]"):
                load_model(plain_model)
        # a model without a PD channel cannot list PD as optional: it never reads it
        without_pd = dict(good, conditions=["t2w", "adc", "t1pre"], optional_inputs=["pd"])
        without_pd["architecture"] = dict(good["architecture"], config=dict(good["architecture"]["config"],
                                                                             in_channels=5))
        card_path.write_text(json.dumps(without_pd), encoding="utf-8")
        with pytest.raises(ModelFileError, match="among its conditions"):
            load_card(plain_model)
        card_path.write_text(json.dumps(dict(good, optional_inputs=[])), encoding="utf-8")
        assert missing_inputs_allowed(load_model(plain_model).card) == ()
    finally:
        card_path.write_text(json.dumps(good, indent=2), encoding="utf-8")


# ------------------------------------------------------------------------------------------------ synthesis

@needs_case
def test_pd_channel_is_exactly_the_missing_value_on_the_working_grid():
    from DCEDiffLib.pipeline import condition_array

    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "adc", "t1pre")}
    with pytest.raises(InputError, match=r"missing input\(s\): proton density \(pd\)"):
        preprocess_case(inputs, register=False)  # only a caller that knows the model allows it may leave PD out
    case = preprocess_case(inputs, register=False, optional=("pd",))
    assert case.missing_inputs == ["pd"] and "pd" not in case.images and "pd" not in case.registration
    cond = condition_array(case, INPUT_MODALITIES)
    assert cond.shape == (4, 16, 160, 160) and cond.dtype == np.float32
    assert np.all(cond[1] == MISSING_INPUT_VALUE)
    for index, modality in ((0, "t2w"), (2, "adc"), (3, "t1pre")):
        assert np.array_equal(cond[index], case.normalized(modality)), modality
    with pytest.raises(InputError, match="only pd can be left out"):
        preprocess_case(inputs, register=False, optional=("adc",))


@needs_case
def test_synthesize_without_pd_records_it_everywhere(dropout_model, centre, tmp_path, monkeypatch, capsys):
    import DCEDiffLib.diffusion.synthesis as synthesis

    seen = []
    real = synthesis.synthesize_volume

    def spy(model, conditions, **options):  # the conditions that reach the network
        seen.append(np.array(conditions, copy=True))
        return real(model, conditions, **options)

    monkeypatch.setattr(synthesis, "synthesize_volume", spy)
    before = {p.name: p.read_bytes() for p in CASE.iterdir() if p.is_file()}
    out = tmp_path / "out"
    assert main(no_pd_args(out, dropout_model, centre, "--dce-early", str(CASE / "dce_early.nii.gz"),
                           "--dce-late", str(CASE / "dce_late.nii.gz"))) == 0
    err = capsys.readouterr().err
    assert "made WITHOUT proton density (PD)" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in CASE.iterdir() if p.is_file()} == before  # inputs untouched
    (conditions,) = seen
    assert np.all(conditions[1] == MISSING_INPUT_VALUE) and conditions[0].std() > 0.1
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert side["missing_inputs"] == ["pd"] and "WITHOUT proton density" in side["missing_inputs_note"]
    assert side["provenance"]["missing_inputs"] == ["pd"]
    assert "pd" not in side["registration"]
    assert "made WITHOUT proton density (PD)" in side["label"]
    early = sitk.ReadImage(str(out / "synthetic_early.nii.gz"))
    assert "NO-PD" in early.GetMetaData("descrip") and early.GetMetaData("descrip").startswith("SYNTHETIC")
    assert (out / "report.png").is_file() and (out / "metrics.json").is_file()


@needs_case
def test_a_model_without_optional_inputs_refuses_a_missing_pd_by_name(plain_model, centre, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(no_pd_args(out, plain_model, centre)) == 2
    err = capsys.readouterr().err
    assert "missing input proton density (pd)" in err and f"the model {plain_model.stem} needs it" in err
    assert "augment.drop_pd" in err and "Traceback" not in err
    assert not out.exists()


@needs_case
def test_other_inputs_stay_required_even_for_a_dropout_model(dropout_model, centre, tmp_path, capsys):
    out = tmp_path / "out"
    args = no_pd_args(out, dropout_model, centre)
    without_adc = args[:3] + args[5:]
    assert without_adc[1:5] == ["--t2w", str(CASE / "t2w.nii.gz"), "--t1pre", str(CASE / "t1pre.nii.gz")]
    assert main(without_adc) == 2
    assert "missing inputs --pd, --adc" in capsys.readouterr().err
    from DCEDiffLib.pipeline import synthesize_case

    with pytest.raises(InputError, match=r"missing input\(s\): ADC map \(adc\)"):
        synthesize_case({"t2w": str(CASE / "t2w.nii.gz"), "t1pre": str(CASE / "t1pre.nii.gz")},
                        model_path=str(dropout_model), register=False)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ OOD check

@needs_case
def test_ood_check_skips_the_missing_pd_and_says_so():
    inputs = {m: str(CASE / f"{m}.nii.gz") for m in INPUT_MODALITIES}
    full_case = preprocess_case(inputs, register=False)
    full = np.stack([full_case.normalized(m) for m in INPUT_MODALITIES])
    reference = ood.case_statistics(full_case, full, INPUT_MODALITIES, inputs)
    card = ood.training_statistics([reference, reference])  # the exam itself is the training distribution
    from DCEDiffLib.pipeline import condition_array

    no_pd = dict(inputs, pd=None)
    case = preprocess_case(no_pd, register=False, optional=("pd",))
    cond = condition_array(case, INPUT_MODALITIES)
    # measured as if PD were given, the constant channel is far from anything trained on
    naive = ood.ood_score(ood.input_statistics(cond, INPUT_MODALITIES), card)
    assert naive["flagged"] and any("proton density (pd)" in r for r in naive["reasons"])
    statistics = ood.case_statistics(case, cond, INPUT_MODALITIES, no_pd, missing=["pd"])
    assert "pd" not in statistics["modalities"] and statistics["missing_inputs"] == ["pd"]
    assert not any("pd" in pair for pair in statistics["correlations"]) and "pd" not in statistics["geometry"]
    result = ood.ood_score(statistics, card)
    assert result["skipped_inputs"] == ["pd"] and "were skipped" in result["note"]
    assert "pd.hist_body" in result["not_checked"] and "t2w.hist_body" not in result["not_checked"]
    assert not any(name.startswith("pd.") or "pd|" in name or "|pd" in name for name in result["features"])
    assert not any("proton density (pd)" in r for r in result["reasons"])
    assert "pd not given: not checked" in ood.summary_line(result)


# ------------------------------------------------------------------------------------------------ --study

def test_study_without_pd_proceeds_for_a_dropout_model_and_is_refused_otherwise(dropout_model, plain_model,
                                                                                 tmp_path, capsys):
    from DCEDiffLib.dicom_study import scan_study
    from shared_phantom_case import generated_case
    from DCEDiffLib.phantom.study_export import write_phantom_study
    from DCEDiffLib.study_roles import pick_roles

    root = tmp_path / "study"
    write_phantom_study(generated_case(3), root, dce_layout="temporal", file_layout="mixed",
                        omit=("pd_ref", "vibe", "localizer", "t2_sag", "t2_cor", "dwi", "calc_bval", "mddw",
                              "adc_hb", "t1_post"))
    study = scan_study(root)
    with pytest.raises(InputError, match="no PD found"):
        pick_roles(study)
    picks = pick_roles(study, optional=("pd",))
    assert "pd" not in picks.picks and picks.absent == ["pd"] and picks.missing == []
    assert any(line.startswith("note: no PD found") and "without PD" in line for line in picks.lines())
    with pytest.raises(InputError, match="only pd can be left out"):
        pick_roles(study, optional=("adc",))

    out = tmp_path / "refused"
    assert main(["synthesize", "--study", str(root), "--model", str(plain_model), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no PD found" in err and f"The model {plain_model.stem} needs PD" in err and "augment.drop_pd" in err
    assert not out.exists()

    out = tmp_path / "out"
    assert main(["synthesize", "--study", str(root), "--model", str(dropout_model), "--steps", "1",
                 "--no-register", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: no PD found" in printed
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert side["missing_inputs"] == ["pd"] and "pd" not in side["series"]
    assert any("no PD found" in note for note in side["notes"])


# ------------------------------------------------------------------------------------------------ evaluation

def test_evaluate_missing_accepts_only_pd(tmp_path, capsys):
    from DCEDiffLib.evaluation_runner import check_missing

    assert check_missing(["pd", "pd"]) == ["pd"] and check_missing([]) == []
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", "x.safetensors", "--data", str(tmp_path), "--missing", "adc",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--missing adc: only pd can be evaluated as missing" in err and "Traceback" not in err
    assert not out.exists()


@needs_case
def test_evaluate_with_pd_missing_runs_every_method_without_it(dropout_model, plain_model, tmp_path, capsys,
                                                               monkeypatch):
    import shutil

    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.preprocess import write_preprocessed
    from DCEDiffLib.training.case_data import load_case

    data = tmp_path / "data"  # two preprocessed cases (the sample case twice; registration skipped: fast)
    inputs = {m: str(CASE / f"{m}.nii.gz") for m in INPUT_MODALITIES + ("dce_early", "dce_late", "labels")}
    preprocessed = preprocess_case(inputs, register=False)
    for name in ("case_000", "case_001"):
        write_preprocessed(preprocessed, data / name)
        shutil.copy(CASE / "case.json", data / name / "case.json")
    case = load_case(data / "case_000")
    model = load_model(dropout_model)
    before = case.conditions.copy()
    cond = model_conditions(model, case, ["pd"])
    assert np.all(cond[1] == MISSING_INPUT_VALUE) and np.array_equal(cond[[0, 2, 3]], before[[0, 2, 3]])
    assert np.array_equal(case.conditions, before)  # the case is not modified
    out = tmp_path / "eval"
    from DCEDiffLib.evaluation import report_figure

    drawn = []
    real_report = report_figure.write_report_png
    monkeypatch.setattr(report_figure, "write_report_png", lambda path, rows, **kw: drawn.append(rows) or
                        real_report(path, rows, **kw))
    assert main(["evaluate", "--model", str(dropout_model), "--data", str(data), "--compare",
                 f"plain={plain_model}", "--no-regression", "--missing", "pd", "--steps", "1", "--samples", "2",
                 "--no-fid", "--out", str(out)]) == 0
    # the report's spread column gets the model's spread (this card has no error model: the std of 2 samples)
    (rows,) = drawn
    assert all(set(r["uncertainty"]) == {"early", "late"} and "expected_error" not in r for r in rows)
    assert "plain (tiny) was not trained to do without pd" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    missing = metrics["meta"]["missing_inputs"]
    assert missing["inputs"] == ["pd"] and missing["value"] == MISSING_INPUT_VALUE
    assert missing["models_trained_without"] == {"model": True, "plain": False}
    rows = metrics["meta"]["protocol"]["per_case"]
    assert all("pd" not in r["linear_predictors"]["early"]["body"] for r in rows)
    assert "missing inputs: pd" in (out / "metrics.md").read_text(encoding="utf-8")
    assert (out / "report.png").is_file()
    assert metrics["meta"]["mean_enhancement_fit"] is None  # no --baseline-data, no split: no baseline
    # the baseline fitted on the scored folder itself is refused before any case is read
    capsys.readouterr()
    assert main(["evaluate", "--model", str(dropout_model), "--data", str(data), "--baseline-data", str(data),
                 "--no-regression", "--no-fid", "--out", str(tmp_path / "leak")]) != 0
    assert "fitted on 2 of the scored patients" in capsys.readouterr().err and not (tmp_path / "leak").exists()


def test_script_adds_optional_inputs_to_a_card_from_its_recipe_only(dropout_model, plain_model, tmp_path, capsys):
    import shutil

    from script_module import load_script

    script = load_script("add_optional_inputs")
    # a card exported before the field existed: the same weights and recipe, no optional_inputs
    old = tmp_path / "old.safetensors"
    shutil.copy(dropout_model, old)
    card = json.loads(dropout_model.with_suffix(".json").read_text(encoding="utf-8"))
    card.pop("optional_inputs")
    old.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    assert missing_inputs_allowed(load_card(old)) == ()
    assert script.main([str(old)]) == 0
    assert load_model(old).card["optional_inputs"] == ["pd"]
    before = plain_model.with_suffix(".json").read_bytes()
    assert script.main([str(plain_model)]) == 2
    assert "not trained to do without PD" in capsys.readouterr().err
    assert plain_model.with_suffix(".json").read_bytes() == before


# ------------------------------------------------------------------------------------------------ dcediff preprocess

@needs_case
def test_preprocess_without_pd_records_it_and_the_pd_channel_is_filled_as_in_training(centre, tmp_path, capsys):
    from DCEDiffLib.pipeline import condition_array
    from DCEDiffLib.preprocess import load_preprocessed
    from DCEDiffLib.training.case_data import load_case

    common = ["--t2w", str(CASE / "t2w.nii.gz"), "--adc", str(CASE / "adc.nii.gz"), "--t1pre",
              str(CASE / "t1pre.nii.gz"), "--no-register", f"--center={centre}"]
    out = tmp_path / "no_pd"
    assert main(["preprocess", *common, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "dcediff preprocess: note: preprocessed WITHOUT proton density (pd)" in captured.err
    assert "Traceback" not in captured.err
    assert json.loads(captured.out)["missing_inputs"] == ["pd"]
    # no PD image, transform or normalisation: nothing that could be mistaken for a PD series
    assert not (out / "pd.nii.gz").exists() and not (out / "transforms" / "pd.tfm").exists()
    for modality in ("t2w", "adc", "t1pre"):
        assert (out / f"{modality}.nii.gz").is_file(), modality
    meta = json.loads((out / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["missing_inputs"] == ["pd"] and "pd" not in meta["normalization"] and "pd" not in meta["modalities"]
    note = meta["missing_inputs_note"]
    assert "WITHOUT proton density (pd)" in note and "optional_inputs" in note and "MISSING_INPUT_VALUE (0," in note
    # read back: the case says what it lacks, and the model's PD channel is the training value
    case = load_preprocessed(out)
    assert case.missing_inputs == ["pd"]
    cond = condition_array(case, INPUT_MODALITIES)
    assert np.all(cond[1] == MISSING_INPUT_VALUE)
    for index, modality in ((0, "t2w"), (2, "adc"), (3, "t1pre")):
        assert cond[index].std() > 0.1 and np.array_equal(cond[index], case.normalized(modality)), modality
    # training and evaluation read every input: refused by name, not a KeyError
    with pytest.raises(InputError, match=r"case no_pd: preprocessed without pd .*--pd"):
        load_case(out)

    # with --pd: every input, no note, and the same T2W/ADC/T1-pre on the grid
    full = tmp_path / "full"
    assert main(["preprocess", *common, "--pd", str(CASE / "pd.nii.gz"), "--out", str(full)]) == 0
    assert "WITHOUT" not in capsys.readouterr().err
    meta = json.loads((full / "preprocess.json").read_text(encoding="utf-8"))
    assert meta["missing_inputs"] == [] and "missing_inputs_note" not in meta and (full / "pd.nii.gz").is_file()
    full_case = load_preprocessed(full)
    assert np.array_equal(condition_array(full_case, INPUT_MODALITIES)[[0, 2, 3]], cond[[0, 2, 3]])


def test_preprocess_still_requires_t2w_adc_and_t1pre(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["preprocess", "--t2w", "t2w.nii.gz", "--t1pre", "t1pre.nii.gz", "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --adc" in err and "--pd" not in err.split("required:")[1]
    assert not out.exists()


def test_the_missing_pd_cost_script_pairs_the_two_evaluations_by_patient(tmp_path):
    import subprocess

    def case(psnr, prostate_r, lesion_r):
        enhancement = {"prostate": {"pearson": prostate_r}, "lesion": {"pearson": lesion_r}}
        return {t: {"whole": {"psnr": psnr}, "enhancement": enhancement} for t in ("early", "late")}

    for name, cases in (("full", [case(30.0, 0.8, 0.5), case(28.0, 0.6, None)]),
                        ("nopd", [case(29.0, 0.7, 0.3), case(27.0, 0.6, None)])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"cases": {"model": cases}}), encoding="utf-8")
    script = Path(__file__).resolve().parents[1] / "scripts" / "missing_pd_cost.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "full"), str(tmp_path / "nopd")],
                         capture_output=True, text=True, check=True).stdout
    # both patients lose 1 dB: the paired mean is −1 with a zero-width interval; r −0.1 and 0 average to −0.05
    assert "early PSNR (dB): with PD 29.000, without 28.000; paired mean -1.000 [-1.000, -1.000] (n=2)" in out
    assert "early prostate r: with PD 0.700, without 0.650; paired mean -0.050" in out
    assert "early lesion r: with PD 0.500, without 0.300; paired mean -0.200 [-0.200, -0.200] (n=1)" in out
