"""Validation by the lesions (training/lesion_validation.py): which slices it scores, that its r is the evaluation's
r on analytic predictions, and that the trainer logs it, exports the best checkpoint by it and resumes it."""

import csv
import json

import numpy as np
import pytest
import torch

from DCEDiffLib.diffusion.residual import zero_enhancement
from DCEDiffLib.errors import InputError
from DCEDiffLib.target_scale import RANGE_FACTOR
from DCEDiffLib.training import distributed
from DCEDiffLib.training.lesion_validation import lesion_slices, region_correlations, score_regression_network
from DCEDiffLib.training.trainer import Trainer

from script_module import load_script
from test_auxiliary_segmentation import LEGEND, labelled_case
from test_training import tiny_case, tiny_config

CONDITIONS = ["t2w", "pd", "adc", "t1pre"]


def _zero(cond: torch.Tensor) -> torch.Tensor:
    return zero_enhancement(cond, CONDITIONS, RANGE_FACTOR)


def _with_lesion_on(case, slices_with_lesion):
    """The case with a lesion label on the given slices only (a 3×3 square) and gland around it elsewhere."""
    labels = np.full(case.conditions.shape[1:], LEGEND["fat"], dtype=np.int16)
    labels[:, 8:20, 8:20] = LEGEND["peripheral_zone"]
    for k in slices_with_lesion:
        labels[k, 10:13, 10:13] = LEGEND["lesion"]
    case.labels, case.legend = labels, dict(LEGEND)
    return case


def test_lesion_slices_are_the_slices_with_a_lesion_of_the_cases_that_have_one():
    cases = [_with_lesion_on(tiny_case("a", 1), [1, 3]), tiny_case("unlabelled", 2),
             _with_lesion_on(tiny_case("b", 3), [0])]
    slices = lesion_slices(cases, CONDITIONS)
    assert slices.names == ["a", "b"]
    assert slices.case.tolist() == [0, 0, 1]
    assert torch.equal(slices.cond[1], torch.from_numpy(np.clip(cases[0].conditions[:, 3], -1, 1)))
    assert torch.equal(slices.target[2], torch.from_numpy(np.clip(cases[2].targets[:, 0], -1, 1)))
    assert slices.lesion.sum() == 27 and slices.lesion[:, 10:13, 10:13].all()
    assert slices.gland.sum() == 3 * 144  # the prostate is the zones and the lesions, as in the evaluation
    # a case with a lesion label but no lesion voxel, and one without acquired DCE, give nothing to score
    no_lesion = _with_lesion_on(tiny_case("c", 4), [])
    no_targets = _with_lesion_on(tiny_case("d", 5), [2])
    no_targets.targets = None
    assert lesion_slices([no_lesion, no_targets], CONDITIONS) is None


def test_region_correlations_are_per_case_pearson_averaged_over_cases_and_targets():
    cases = [_with_lesion_on(tiny_case("a", 1), [1, 3]), _with_lesion_on(tiny_case("b", 3), [0, 2])]
    slices = lesion_slices(cases, CONDITIONS)
    acquired = np.random.default_rng(0).normal(size=slices.target.shape)
    assert region_correlations(acquired, acquired, slices) == pytest.approx({"lesion_r": 1.0, "gland_r": 1.0})
    # case a perfect, case b reversed: the mean is 0; an affine change of one case's prediction changes nothing
    mixed = acquired.copy()
    rows_b = slices.case == 1
    mixed[rows_b] = -mixed[rows_b]
    assert region_correlations(mixed, acquired, slices)["lesion_r"] == pytest.approx(0.0, abs=1e-12)
    mixed[~rows_b] = 3 * mixed[~rows_b] + 1
    assert region_correlations(mixed, acquired, slices)["lesion_r"] == pytest.approx(0.0, abs=1e-12)
    # the value for one case and target is numpy's Pearson r over that case's lesion voxels of all its slices
    noisy = acquired + np.random.default_rng(1).normal(size=acquired.shape)
    rows_a = slices.case == 0
    expected = np.mean([np.corrcoef(noisy[rows][:, t][slices.lesion[rows]], acquired[rows][:, t][slices.lesion[rows]])
                        [0, 1] for rows in (rows_a, rows_b) for t in (0, 1)])
    assert region_correlations(noisy, acquired, slices)["lesion_r"] == pytest.approx(expected)
    # no enhancement predicted anywhere: r undefined, reported as None (not 0)
    assert region_correlations(np.zeros_like(acquired), acquired, slices) == {"lesion_r": None, "gland_r": None}


def test_a_network_that_returns_the_target_scores_one_and_one_that_adds_nothing_scores_none():
    slices = lesion_slices([_with_lesion_on(tiny_case("a", 1), [0, 1, 2, 3])], CONDITIONS)
    batches = iter(range(0, len(slices.cond), 3))

    def oracle(cond):
        start = next(batches)
        return slices.target[start:start + len(cond)]

    assert score_regression_network(oracle, slices, _zero, batch=3) == pytest.approx({"lesion_r": 1.0,
                                                                                       "gland_r": 1.0})
    assert score_regression_network(_zero, slices, _zero) == {"lesion_r": None, "gland_r": None}


def _trainer(tmp_path, config, name, labelled=True):
    make = labelled_case if labelled else tiny_case
    cases = [make(f"p{i}", i) for i in range(4)]
    data = {"split": {"train": ["p0", "p1", "p2"], "validation": ["p3"], "test": []},
            "train": cases[:3], "validation": cases[3:]}
    return Trainer(config, tmp_path / name, data, distributed.setup("cpu"), show_progress=False)


def _diffusion_model(tmp_path):
    from random_model import save_random_model

    (tmp_path / "diffusion").mkdir()
    return save_random_model(tmp_path / "diffusion")


def test_the_trainer_logs_the_lesion_r_exports_its_best_checkpoint_and_resumes_it(tmp_path):
    config = tiny_config(objective="regression", parameterization="enhancement", lesion_validation=True,
                         iterations=12, validate_every=3, checkpoint_every=3)
    trainer = _trainer(tmp_path, config, "run")
    summary = trainer.run()
    with open(tmp_path / "run" / "log.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["val_loss"]]
    logged = [float(r["val_lesion_r"]) for r in rows]
    assert [int(r["step"]) for r in rows] == [3, 6, 9, 12]
    assert all(-1 <= r <= 1 for r in logged) and all(r["val_gland_r"] for r in rows)
    card = json.loads((tmp_path / "run" / "best_lesion.json").read_text(encoding="utf-8"))
    assert card["metrics"]["validation_lesion_r"] == pytest.approx(max(logged))
    assert card["metrics"]["step"] == int(rows[int(np.argmax(logged))]["step"])
    assert summary["best_validation_lesion_r"] == pytest.approx(max(logged))
    # the exported weights are the EMA of that step: re-scoring them gives the logged value
    assert trainer.lesion_validation()["lesion_r"] == pytest.approx(logged[-1])
    # resumed: the best so far comes back from the checkpoint, so a worse later value does not replace it
    again = _trainer(tmp_path, config, "run")
    assert again.resume() and again.best_lesion_r == pytest.approx(max(logged))
    # scripts/lesion_validation_of_models.py, reading the exported file, gives the value logged for its step
    script = load_script("lesion_validation_of_models")
    scored = script.score_model(str(tmp_path / "run" / "best_lesion.safetensors"), trainer.data["validation"])
    assert scored["lesion_r"] == pytest.approx(max(logged), abs=1e-6)
    assert scored["cases"] == 1 and scored["slices"] == len(trainer.lesion_slices.cond)
    with pytest.raises(InputError, match="expected a regression"):
        script.score_model(str(_diffusion_model(tmp_path)), trainer.data["validation"])


def test_lesion_validation_is_refused_where_it_cannot_measure(tmp_path):
    with pytest.raises(InputError, match="no validation case of this split has both"):
        _trainer(tmp_path, tiny_config(objective="regression", lesion_validation=True), "unlabelled", labelled=False)
    with pytest.raises(InputError, match="lesion_validation True needs objective 'regression'"):
        tiny_config(lesion_validation=True)
    with pytest.raises(InputError, match="cannot be used with 't1pre' in 'without'"):
        tiny_config(objective="regression", lesion_validation=True, without=["t1pre"])
    with pytest.raises(InputError, match="expected true or false"):
        tiny_config(objective="regression", lesion_validation="yes")
    # without the setting, nothing is scored and no best_lesion file appears
    plain = _trainer(tmp_path, tiny_config(objective="regression", parameterization="enhancement"), "plain")
    plain.run()
    assert not (tmp_path / "plain" / "best_lesion.json").exists()
