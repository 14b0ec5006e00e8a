"""End to end through the `dcediff synthesize` and `demo` commands on the shipped phantom case.

Uses a small random-weight model (tiny preset) so the suite does not depend on how well the shipped model is
trained; one test runs the real shipped model with a few steps.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.cli import main
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR, shipped_model_path
from DCEDiffLib.progress import parse_progress_line
from random_model import save_random_model

CASE = SAMPLE_CASE_DIR
pytestmark = pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")


def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small random-weight model (tiny preset)."""
    return save_random_model(tmp_path_factory.mktemp("model"))


def args_for(case: Path, out: Path, *extra) -> list:
    return ["synthesize", "--t2w", str(case / "t2w.nii.gz"), "--pd", str(case / "pd.nii.gz"),
            "--adc", str(case / "adc.nii.gz"), "--t1pre", str(case / "t1pre.nii.gz"), "--out", str(out), *extra]


def test_synthesize_writes_labelled_outputs_on_the_working_grid(tiny_model, tmp_path, capsys):
    before = digest(CASE)
    out = tmp_path / "out"
    code = main(args_for(CASE, out, "--dce-early", str(CASE / "dce_early.nii.gz"), "--dce-late",
                         str(CASE / "dce_late.nii.gz"), "--model", str(tiny_model), "--steps", "2",
                         "--samples", "2", "--t2w-grid", "--progress-lines"))
    assert code == 0
    assert digest(CASE) == before  # inputs untouched
    names = {p.name for p in out.iterdir()}
    for name in ("synthetic_early.nii.gz", "synthetic_late.nii.gz", "uncertainty_early.nii.gz",
                 "uncertainty_late.nii.gz", "residual_early.nii.gz", "residual_late.nii.gz", "metrics.json",
                 "report.png", "synthesis.json", "t2w_grid"):
        assert name in names, name
    early = sitk.ReadImage(str(out / "synthetic_early.nii.gz"))
    assert early.GetSize() == (160, 160, 16)
    assert np.allclose(early.GetSpacing(), (1.5, 1.5, 3.0))
    assert "SYNTHETIC" in early.GetMetaData("descrip")
    values = sitk.GetArrayFromImage(early)
    assert np.isfinite(values).all() and values.std() > 0
    t2w = sitk.ReadImage(str(CASE / "t2w.nii.gz"))
    pasted = sitk.ReadImage(str(out / "t2w_grid" / "synthetic_early.nii.gz"))
    assert pasted.GetSize() == t2w.GetSize() and np.allclose(pasted.GetDirection(), t2w.GetDirection())
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert side["provenance"]["synthetic"] is True and side["provenance"]["seed"] == 0
    precision = side["precision"]  # what ran, what was asked for, and why (DCEDiffLib/precision.py)
    assert precision["used"] == side["provenance"]["precision"] and precision["requested"] == "auto"
    assert precision["reason"].startswith("auto")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert {"early", "late"} <= set(metrics)
    events = [e for e in map(parse_progress_line, capsys.readouterr().out.splitlines()) if e]
    stages = [e.stage for e in events]
    assert {"register", "sample", "write"} <= set(stages)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert sum(1 for e in events if e.stage == "sample") >= 2  # one per network evaluation (samples are batched)
    for stage in ("register", "sample"):  # announced when they start: the benchmark times the stages by it
        assert next(e for e in events if e.stage == stage).step == 0, stage


def test_same_seed_gives_identical_bits_and_another_seed_differs(tiny_model, tmp_path):
    outs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(args_for(CASE, tmp_path / name, "--model", str(tiny_model), "--steps", "2", "--seed", seed,
                             "--no-register")) == 0
        outs.append(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name / "synthetic_late.nii.gz"))))
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_existing_output_folder_is_refused_and_left_alone(tiny_model, tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("user data", encoding="utf-8")
    code = main(args_for(CASE, out, "--model", str(tiny_model), "--steps", "1"))
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bad_input_gives_a_clear_error_and_writes_nothing(tiny_model, tmp_path, capsys):
    flat = sitk.GetImageFromArray(np.zeros((8, 8), np.float32))
    sitk.WriteImage(flat, str(tmp_path / "flat.nii.gz"))
    out = tmp_path / "out"
    args = args_for(CASE, out, "--model", str(tiny_model), "--steps", "1")
    args[args.index("--adc") + 1] = str(tmp_path / "flat.nii.gz")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ADC" in err.upper() and "error" in err
    assert not out.exists()


def test_cancel_stops_within_a_step_and_leaves_nothing(tiny_model, tmp_path):
    from DCEDiffLib.errors import CancelledError
    from DCEDiffLib.pipeline import synthesize_to_folder

    calls = []

    def cancel_during_sampling():
        calls.append(1)
        return len(calls) > 6

    out = tmp_path / "cancelled"
    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")}
    with pytest.raises(CancelledError):
        synthesize_to_folder(inputs, out, model_path=str(tiny_model), steps=50, register=False,
                             should_cancel=cancel_during_sampling)
    assert not out.exists()
    assert not list(tmp_path.glob(".cancelled*"))


@pytest.mark.skipif(not shipped_model_path().is_file(), reason="shipped model not trained yet")
def test_demo_with_the_shipped_model(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "3", "--samples", "2"]) == 0
    text = capsys.readouterr().out
    assert "PSNR" in text and (out / "report.png").stat().st_size > 50_000
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    # Since 2026-12-01 the DCE frames are registered through the T1-pre and the ADC/T1-pre in an 80 mm sphere
    # (docs/preprocessing.md): with this test's settings bda323aa… measures PSNR 30.20 / 30.09 dB, SSIM 0.883 / 0.872,
    # prostate r 0.83 / 0.89, lesion r 0.87 / 0.91 (each frame registered to the T2W on its own: 25.06 / 25.52 dB);
    # the PSNR floor of 27 dB fails a preprocessing that shifts the frames off the T1-pre again.
    # Quality floors for the shipped model (00136218…, the fifty-fourth step: the union soup of four CPU runs averaged
    # with the mean they started from, 2026-12-05, passes them: on the sample case with the default sampler and 1
    # sample, `python -m DCEDiffLib.cli demo --samples 1 --precision fp32`, it measured PSNR 30.92 / 30.65 dB, SSIM
    # 0.892 / 0.880, prostate r 0.81 / 0.88, lesion r 0.83 / 0.89; before it 929d185b…, the fifty-third step, PSNR
    # 30.89 / 30.61 dB, SSIM 0.892 / 0.880, prostate r 0.81 / 0.88, lesion r 0.83 / 0.90; before it 23d307ab…, the fifty-second step: ¾ of the
    # fifty-first step's two GPU runs and ¼ of the mean they started from, PSNR 30.88 / 30.59 dB, SSIM 0.892 /
    # 0.880, prostate r 0.82 / 0.89, lesion r 0.82 / 0.90; before it a48f1f00…, the fifty-first step's GPU soup,
    # 30.95 / 30.59 dB, SSIM 0.892 / 0.879, prostate r 0.83 / 0.89, lesion r 0.82 / 0.89, a little below its
    # predecessor on this one version-1 case; before it 19baaa36…, the forty-eighth step's GPU soup, 31.06 / 30.69
    # dB, SSIM 0.892 / 0.879,
    # prostate r 0.85 / 0.90, lesion r 0.83 / 0.89; before it 8b19f24d…, two runs on 480 patients, 30.82 / 30.53 dB,
    # SSIM 0.891 / 0.878, prostate r 0.85 / 0.91, lesion r 0.83 / 0.90; before it 36d94f0b…, its mean averaged with a 360-patient
    # fine-tune, 30.79 / 30.46 dB, SSIM 0.890 / 0.877, prostate r 0.84 / 0.91, lesion r 0.81 / 0.90; before it
    # 88be68ee…, its mean trained on targets over the clipped T1-pre,
    # 30.85 / 30.45 dB, SSIM 0.888 / 0.875, prostate r 0.84 / 0.91, lesion r 0.82 / 0.90; before it 8bc747b0…, its
    # mean fine-tuned on phantom version 4, 30.75 / 30.39 dB, SSIM 0.889 /
    # 0.876, prostate r 0.83 / 0.91, lesion r 0.82 / 0.90; before it df73aafc…, the weight-averaged mean, 30.70 /
    # 30.67 dB, SSIM 0.893 / 0.880, prostate r 0.84 / 0.91, lesion r 0.82 / 0.90; before it 3032d5ac…, the deeper
    # mean, 30.82 / 30.75 dB, SSIM 0.892 / 0.880, prostate r 0.85 / 0.91, lesion r 0.79 / 0.89; before it bda323aa…,
    # the lesion-weighted fine-tune, on the sample case
    # with the default sampler and 1 sample, `dcediff demo --samples 1`, it measured PSNR 25.04 / 25.50 dB, SSIM
    # 0.771 / 0.778, prostate r 0.75 / 0.79, lesion r 0.90 / 0.84; with this test's settings 25.06 / 25.52 dB; before
    # it 7638fb0a… measured PSNR 25.12 / 25.48 dB, SSIM
    # 0.767 / 0.773, prostate r 0.77 / 0.82, lesion r 0.89 / 0.87 — the sample case is a version-1 phantom; 3d58c39d…
    # measured 24.72 / 25.15 dB, SSIM 0.768 / 0.772, prostate r 0.76 / 0.81 in fp32, scripts/bf16_quality_check.py),
    # set below what earlier models measured with these settings (2026-11-30, the
    # residual model bc8581bf…: PSNR 24.69 / 25.25 dB, SSIM 0.777 / 0.784, prostate enhancement r 0.75 / 0.80,
    # lesion r 0.89 / 0.86, early / late; earlier models: 9019b238… 25.36 / 25.89, 0.780 / 0.785, 0.77 / 0.83,
    # 0.89 / 0.87; 81a3590f… 25.12 / 25.60, 0.766 / 0.771, 0.71 / 0.78, 0.64 / 0.67). Copying the T1-pre scores about 20 dB and has no enhancement; the
    # replaced ε-prediction model scored 21.5 / 20.5 dB and r ≈ 0.4, so these floors fail it and any broken model.
    for target in ("early", "late"):
        assert metrics[target]["whole"]["psnr"] > 27.0, metrics[target]["whole"]
        assert metrics[target]["whole"]["ssim"] > 0.7, metrics[target]["whole"]
        assert metrics[target]["enhancement"]["prostate"]["pearson"] > 0.6, metrics[target]["enhancement"]
        assert metrics[target]["enhancement"]["lesion"]["pearson"] > 0.45, metrics[target]["enhancement"]
