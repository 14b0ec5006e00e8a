"""The sampler's step count when nobody chooses one: a residual model's card count (``sampling.residual_steps``)
with the default sampler, the engine default otherwise; what synthesis, evaluate and synthesis.json record; bad card
values refused at load."""

import json

import numpy as np
import pytest

from DCEDiffLib import defaults
from DCEDiffLib.diffusion.model_files import load_model
from DCEDiffLib.diffusion.synthesis import synthesize_volume
from DCEDiffLib.errors import InputError, ModelFileError
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
from DCEDiffLib.sampling_steps import resolve_steps

from test_residual import _residual_model

RESIDUAL = {"objective": "residual", "sampling": {"residual_start": 0.5, "residual_steps": 2}}


def test_the_card_count_applies_to_a_residual_model_with_the_default_sampler_only():
    assert resolve_steps(RESIDUAL, defaults.DEFAULT_SAMPLER) == 2
    assert resolve_steps(RESIDUAL, defaults.DEFAULT_SAMPLER, 7) == 7          # the user's count wins
    assert resolve_steps(RESIDUAL, "ddim") == defaults.DEFAULT_STEPS           # measured for dpmpp only
    assert resolve_steps({"objective": "residual", "sampling": {}}, "dpmpp") == defaults.DEFAULT_STEPS
    assert resolve_steps({"objective": "diffusion", "sampling": {"residual_steps": 2}}, "dpmpp") == \
        defaults.DEFAULT_STEPS                                                  # an image model has no such count
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="steps"):
            resolve_steps(RESIDUAL, "dpmpp", bad)


def _with_card_steps(tmp_path, value):
    _residual_model(tmp_path)  # writes residual.safetensors and its card
    card_path = tmp_path / "residual.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["sampling"] = {"residual_start": 0.5, "residual_temperature": 0.1, "residual_steps": value}
    card_path.write_text(json.dumps(card), encoding="utf-8")
    return tmp_path / "residual.safetensors"


def test_synthesis_runs_the_card_count_unless_told_otherwise(tmp_path):
    model = load_model(_with_card_steps(tmp_path, 2))
    conditions = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 2, 16, 16)).astype(np.float32)
    run = dict(device="cpu", precision="fp32", seed=0)
    assert synthesize_volume(model, conditions, **run).nfe == 1 + 2           # one mean pass, two residual steps
    assert synthesize_volume(model, conditions, steps=4, **run).nfe == 1 + 4
    model.card["sampling"].pop("residual_steps")
    assert synthesize_volume(model, conditions, **run).nfe == 1 + defaults.DEFAULT_STEPS


@pytest.mark.parametrize("value", [0, 1001, "2", True, 2.5, None])
def test_a_card_step_count_that_is_not_one_is_refused_at_load(tmp_path, value):
    with pytest.raises(ModelFileError, match="sampling.residual_steps"):
        load_model(_with_card_steps(tmp_path, value))


@pytest.mark.skipif(not (SAMPLE_CASE_DIR / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")
def test_synthesis_json_records_the_steps_a_residual_model_ran(tmp_path):
    """Before the card count, synthesis.json said 1 step for every residual model; it now says what ran."""
    from DCEDiffLib.pipeline import synthesize_case

    path = _with_card_steps(tmp_path, 3)
    inputs = {m: str(SAMPLE_CASE_DIR / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")}
    output = synthesize_case(inputs, model_path=str(path), register=False, device="cpu", precision="fp32")
    assert output.provenance["steps"] == 3 and output.provenance["nfe"] == 1 + 3
