"""scripts/error_rankability.py: the per-patient Spearman it reports, on hand-made scores whose ranks are known,
and the whole script on a small samples file (the learned map must rank a feature-driven error better than chance)."""

import numpy as np
import pytest

from script_module import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("error_rankability")


def test_per_patient_spearman_ranks_within_each_patient_and_region(script):
    patient = np.repeat([0, 1], 20)
    error = np.tile(np.arange(20.0), 2)
    score = np.concatenate([np.arange(20.0), -np.arange(20.0)])  # patient 0 ranked right, patient 1 reversed
    region = np.ones(40, bool)
    assert script.per_patient_spearman(score, error, patient, region) == pytest.approx([1.0, -1.0])
    region[20:] = False  # patient 1 left out entirely
    assert script.per_patient_spearman(score, error, patient, region) == pytest.approx([1.0])


def test_script_finds_an_error_its_features_explain(script, tmp_path, capsys):
    from DCEDiffLib.diffusion import voxel_corrector as vc

    columns = vc.feature_names()
    rng = np.random.default_rng(0)
    patients, per = 12, 200
    features = rng.normal(size=(patients * per, len(columns))).astype(np.float32)
    features[:, columns.index("radius")] = rng.uniform(0, 2, patients * per)
    driver = features[:, columns.index("adc_value")]
    residual = (np.abs(driver) * rng.normal(size=driver.size)).astype(np.float32)  # |error| grows with |adc|
    samples = tmp_path / "samples.npz"
    np.savez(samples, features=features, names=np.array([f"case_{i:03d}" for i in range(patients)]),
             residual_dce_early=residual, residual_dce_late=residual, lesion=np.zeros(patients * per, np.uint8))
    assert script.main([str(samples), "--held-out", "4", "--iterations", "30"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "whole region" in line]
    assert len(lines) == 2
    learned = float(lines[0].split("learned ")[1].split(",")[0])
    assert learned > 0.3, lines[0]
