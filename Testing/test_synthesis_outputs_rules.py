"""What the synthesis write stage records, at its rules (found by a mutation audit): the provenance holds the options
that ran (a regression is one pass whatever --steps said), a flagged exam's warning reaches synthesis.json's label
with the count of the reasons it leaves there, a checked exam that is not flagged carries no warning, the report's
banner says a failed registration self-check, the NIfTI description keeps sampler/steps/seed within its limit, the
sample spread is a spread (no offset), and an acquired DCE divided onto the T1-pre's scale gets no 'other scale'
note. One small random-weight synthesis of the shipped phantom case, reused."""

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib import ood
from fixture_cases import VERSION1_PROCEDURAL_CASE as CASE  # one exam whose DCE and T1-pre share a scale
from random_model import CONDITIONS, save_random_model

pytestmark = pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(),
                                reason="version-1 phantom test case missing (Testing/data)")
INPUTS = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")
OPTIONS = dict(steps=3, samples=2, seed=5, register=False, device="cpu")


def _as_run_model(model: Path, run: str) -> Path:
    """A copy of ``model`` (weights and card) exported the way dcediff train names it: ``<run>/model``."""
    target = model.parent / run / "model.safetensors"
    target.parent.mkdir()
    shutil.copyfile(model, target)
    shutil.copyfile(model.with_suffix(".json"), target.with_suffix(".json"))
    return target


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _as_run_model(save_random_model(tmp_path_factory.mktemp("model")), "run7")


@pytest.fixture(scope="module")
def output(model):
    from DCEDiffLib.pipeline import synthesize_case

    return synthesize_case({m: str(CASE / f"{m}.nii.gz") for m in INPUTS}, model_path=str(model), **OPTIONS)


def _noise_card_and_exam(t2w_noise: float, pd_noise: float) -> dict:
    """An ood_score result from noise levels alone: training cases at 0.05-0.06, the exam at the given levels."""
    cases = [{"gland_region": "central ellipsoid", "modalities": {"t2w": {"noise": v}, "pd": {"noise": v}}}
             for v in (0.050, 0.052, 0.055, 0.058, 0.060)]
    exam = {"gland_region": "central ellipsoid",
            "modalities": {"t2w": {"noise": t2w_noise}, "pd": {"noise": pd_noise}}}
    return ood.ood_score(exam, ood.training_statistics(cases))


def _descriptions(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.rglob("*.nii.gz")):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        out[str(path.relative_to(folder))] = reader.GetMetaData("descrip")
    return out


def test_the_provenance_records_the_options_that_ran_and_the_models_run_name(output):
    """synthesis.json's provenance: the sampler, step count, sample count and seed given (3 steps and 2 samples
    here, so that one cannot stand for the other), and the model named as results name a trained model: its run
    folder and file (run7/model), not the bare file stem every exported model shares."""
    provenance = output.provenance
    assert (provenance["steps"], provenance["samples"], provenance["seed"]) == (3, 2, 5)
    assert provenance["sampler"] == "dpmpp" and provenance["model"] == "run7/model"
    assert set(output.uncertainty) == {"early", "late"}  # two samples: a spread map per target


def test_a_regression_model_is_recorded_as_one_step_whatever_steps_asked(tmp_path):
    """A regression network predicts the DCE in one pass: the provenance says 1 step (with nfe 1) even where
    --steps 3 was given, so a label never claims sampler steps that were not taken."""
    import torch

    from DCEDiffLib.diffusion.model_files import save_model
    from DCEDiffLib.diffusion.presets import build_network, network_config
    from DCEDiffLib.pipeline import synthesize_case
    from DCEDiffLib.training.model_card import make_model_card

    config = network_config("tiny", in_channels=len(CONDITIONS) + 2, out_channels=2)
    torch.manual_seed(0)
    network = build_network(config)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    path = tmp_path / "regression.safetensors"
    save_model(network, make_model_card(config, "regression", CONDITIONS, "tiny", {"data": "none (test)"}), path)
    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")}
    result = synthesize_case(inputs, model_path=str(path), steps=3, samples=1, register=False, device="cpu")
    assert result.provenance["steps"] == 1 and result.provenance["nfe"] == 1


def test_a_flagged_exam_says_so_in_the_label_with_the_count_of_the_other_reasons(output, tmp_path):
    """docs/ood.md, "What every output says": when flagged, the warning is in the label and OOD-WARNING right
    after SYNTHETIC in every NIfTI. The label quotes the first reason and says how many more synthesis.json holds:
    with two reasons, one more."""
    from DCEDiffLib.pipeline import write_outputs

    flagged = _noise_card_and_exam(0.5, 0.4)
    assert flagged["flagged"] and len(flagged["reasons"]) == 2
    out = write_outputs(dataclasses.replace(output, out_of_distribution=flagged), tmp_path / "out", t2w_grid=True,
                        report=False)
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert side["out_of_distribution"]["reasons"] == flagged["reasons"]
    label = side["label"]
    assert label.startswith("SYNTHETIC") and "WARNING: " + ood.summary_line(flagged) in label
    assert "(+1 more reason(s) in synthesis.json)" in label
    descriptions = _descriptions(out)
    assert len(descriptions) == 12  # synthetic, uncertainty, residual; early, late; working grid and T2W grid
    assert all(d.startswith("SYNTHETIC OOD-WARNING ") for d in descriptions.values()), descriptions


def test_an_exam_checked_and_not_flagged_carries_no_warning(output, tmp_path):
    """ood_warning: 'None when the inputs were not flagged': an exam checked and found inside the training
    distribution gets no WARNING in its label and no OOD-WARNING in any NIfTI (a check is no finding)."""
    from DCEDiffLib.pipeline import ood_warning, write_outputs

    inside = _noise_card_and_exam(0.055, 0.055)
    assert inside["checked"] and not inside["flagged"]
    checked = dataclasses.replace(output, out_of_distribution=inside)
    assert ood_warning(checked) is None
    out = write_outputs(checked, tmp_path / "out", report=False)
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert "WARNING" not in side["label"] and side["out_of_distribution"]["flagged"] is False
    assert not any("OOD-WARNING" in d for d in _descriptions(out).values())


def _red_banner_pixels(path: Path) -> int:
    from matplotlib.image import imread

    png = imread(str(path))[..., :3]
    top = png[: png.shape[0] // 6]
    return int(((top[..., 0] > 0.75) & (top[..., 1] < 0.25) & (top[..., 2] < 0.25)).sum())


def test_the_report_banner_says_a_registration_self_check_that_disagrees(output, tmp_path):
    """write_case_report: the banner carries the registration warning as well as the OOD one ('the console said
    it as each check ended; the report says it again'). No warning: no red banner; a PD whose self-check
    disagrees: a red banner."""
    pytest.importorskip("matplotlib")
    from DCEDiffLib.pipeline import write_case_report

    assert not (output.out_of_distribution or {}).get("flagged")
    write_case_report(output, tmp_path / "plain.png")
    case = copy.copy(output.case)
    case.registration = dict(case.registration)
    case.registration["pd"] = dataclasses.replace(case.registration["pd"],
                                                  self_check={"agrees": False, "summary": "DISAGREES"})
    write_case_report(dataclasses.replace(output, case=case), tmp_path / "disagrees.png")
    assert _red_banner_pixels(tmp_path / "plain.png") == 0
    assert _red_banner_pixels(tmp_path / "disagrees.png") > 1000


def test_the_nifti_description_drops_the_word_dcediff_before_shortening_sampler_and_steps():
    """provenance_descrip: 'shorter words first, then the name itself'. With both flags (OOD-WARNING NO-PD) and a
    four-digit seed, dropping 'DCEDiff' leaves room enough: the tail keeps 'sampler=' and 'steps='."""
    from DCEDiffLib.pipeline import provenance_descrip

    provenance = {"model": "dcediff_cpu_phantom", "sampler": "dpmpp", "steps": 20, "seed": 1234}
    tail = " sampler=dpmpp steps=20 seed=1234"
    assert 79 - len("SYNTHETIC OOD-WARNING NO-PD DCEDiff model=") - len(tail) < 5  # the full head leaves no room
    text = provenance_descrip(provenance, warning="OOD-WARNING NO-PD")
    assert len(text) <= 79 and text.startswith("SYNTHETIC OOD-WARNING NO-PD model=") and text.endswith(tail)


def test_the_nifti_description_never_exceeds_the_limit_given():
    """provenance_descrip: 'in at most ``limit`` ASCII characters', for any limit and warning."""
    from DCEDiffLib.pipeline import provenance_descrip

    provenance = {"model": "m" * 60, "sampler": "dpmpp", "steps": 1000, "seed": 2 ** 63 - 1}
    for limit in (20, 40, 60, 79):
        for warning in (None, "OOD-WARNING", "OOD-WARNING NO-PD"):
            text = provenance_descrip(provenance, limit=limit, warning=warning)
            assert len(text) <= limit and text.isascii(), (limit, warning, text)
            assert text.startswith("SYNTHETIC")


def test_the_sample_spread_is_a_spread_on_the_intensity_scale_without_an_offset(output):
    """SynthesisOutput.uncertainty: the per-voxel std over samples, on the intensity scale. The samples lie in the
    target range [low, high] (the normalised [-1, 1]) and their mean is the synthetic value μ, so the std obeys
    the Bhatia-Davis bound σ² ≤ (high − μ)(μ − low): a width, never the intensity a normalised std denotes."""
    from DCEDiffLib.target_scale import target_norm_params

    assert "intensity_notes" not in output.provenance  # the synthetic value is the samples' mean, nothing added
    tnorm = target_norm_params(output.case.norm["t1pre"])
    tolerance = 1e-4 * (tnorm.high - tnorm.low) ** 2
    for short in ("early", "late"):
        spread = sitk.GetArrayFromImage(output.uncertainty[short]).astype(np.float64)
        mean = sitk.GetArrayFromImage(output.synthetic[short]).astype(np.float64)
        assert spread.min() >= 0 and spread.max() > 0
        assert np.all(spread ** 2 <= (tnorm.high - mean) * (mean - tnorm.low) + tolerance), short


def test_a_divided_acquired_dce_gets_no_note_that_nothing_brought_the_scales_together(model):
    """acquired_scale_note speaks when the acquired DCE and the T1-pre are on different scales 'and nothing brought
    them together', and asks for --dce-baseline. Given a pre-contrast frame at 0.1× the T1-pre, the acquired DCE is
    divided by 0.1 (10× the T1-pre's scale: an implausible gain, warned about in acquired_scale itself), so the
    division was made and that note must not be added."""
    from DCEDiffLib.pipeline import synthesize_case

    inputs = {m: str(CASE / f"{m}.nii.gz") for m in INPUTS}
    inputs["dce_baseline"] = sitk.ReadImage(str(CASE / "t1pre.nii.gz"), sitk.sitkFloat32) * 0.1
    result = synthesize_case(inputs, model_path=str(model), steps=1, samples=1, register=False, device="cpu")
    scale = result.provenance["acquired_scale"]
    assert scale["applied"] and scale["gain"] == pytest.approx(0.1, rel=1e-3) and "warning" in scale
    early = sitk.GetArrayFromImage(result.case.images["dce_early"]).astype(np.float64)
    assert np.allclose(result.acquired["early"], early / scale["gain"], rtol=1e-5)  # divided, not multiplied
    assert "acquired_scale_note" not in result.provenance


def test_a_flagged_exams_dicom_series_say_so_first_in_their_description(output, tmp_path):
    """docs/preprocessing.md, --dicom: SeriesDescription 'SYNTHETIC [OOD-WARNING] [NO-PD] early DCE (DCEDiff)' and
    the provenance line with the out-of-distribution warning, as the NIfTI's (mutation audit round 20)."""
    from DCEDiffLib.dicom_results import dicom_target
    from DCEDiffLib.pipeline import write_outputs
    from test_dicom_results_rules import header, t2w_series, tag

    flagged = _noise_card_and_exam(0.5, 0.4)
    target = dicom_target(t2w_series(tmp_path / "t2w"))
    out = write_outputs(dataclasses.replace(output, out_of_distribution=flagged), tmp_path / "out", report=False,
                        dicom=target)
    for short in ("early", "late"):
        first = header(sorted((out / "dicom" / f"synthetic_{short}").iterdir())[0])
        assert tag(first, "0008|103e") == f"SYNTHETIC OOD-WARNING {short} DCE (DCEDiff)"
        assert "WARNING: " + ood.summary_line(flagged) in tag(first, "0020|4000")
