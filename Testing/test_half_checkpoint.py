"""Half a checkpoint is never silently replaced by a run from step 0 (found by a bug hunt: with last.json deleted, or
last.safetensors missing, `dcediff train` said nothing, trained from step 0 and overwrote the checkpoint). The tensors
file holds its own JSON, so a missing or unreadable last.json resumes from it; a missing tensors file is one clear
error naming it."""

import json

import pytest

from DCEDiffLib.errors import InputError
from test_training import assert_same_training_state, make_trainer, tiny_config


def test_a_missing_json_beside_the_tensors_resumes_from_the_tensors_own_step(tmp_path):
    full = make_trainer(tmp_path, tiny_config(), "full")
    full.run(max_steps=6)
    meta_path = tmp_path / "full" / "checkpoints" / "last.json"
    meta_path.unlink()
    resumed = make_trainer(tmp_path, tiny_config(), "full")
    assert resumed.resume() and resumed.step == 6
    assert json.loads(meta_path.read_text(encoding="utf-8"))["step"] == 6  # written again
    assert_same_training_state(full, resumed)


def test_an_unreadable_json_beside_the_tensors_resumes_from_the_tensors_own_step(tmp_path):
    full = make_trainer(tmp_path, tiny_config(), "full")
    full.run(max_steps=6)
    (tmp_path / "full" / "checkpoints" / "last.json").write_text('{"step": 5', encoding="utf-8")
    resumed = make_trainer(tmp_path, tiny_config(), "full")
    assert resumed.resume() and resumed.step == 6


def test_a_missing_tensors_file_is_one_clear_error(tmp_path):
    make_trainer(tmp_path, tiny_config()).run(max_steps=6)
    (tmp_path / "run" / "checkpoints" / "last.safetensors").unlink()
    resumed = make_trainer(tmp_path, tiny_config())
    with pytest.raises(InputError, match=r"last\.json has no tensors file beside it \(last\.safetensors is missing\)"):
        resumed.resume()


def test_the_recipe_check_reads_the_checkpoint_the_resume_reads(tmp_path):
    """With last.json missing (or stale), the resume reads the JSON stored in the tensors file; the recipe check
    reads the same, so another recipe is still refused instead of resuming unchecked."""
    make_trainer(tmp_path, tiny_config()).run(max_steps=6)
    (tmp_path / "run" / "checkpoints" / "last.json").unlink()
    with pytest.raises(InputError, match=r"trained with another recipe \(crop_size: 16 there, 24 now"):
        make_trainer(tmp_path, tiny_config(crop_size=24)).resume()
