"""scripts/build_candidate_card.py: a candidate folder from two run folders, the shipped expected-error map carried."""

import json
import shutil
from pathlib import Path

import pytest

from script_module import load_script

MODELS = Path(__file__).resolve().parents[1] / "Resources" / "Models"
STEM = "dcediff_cpu_phantom"


def _run_folder(directory: Path, stem: str) -> Path:
    """A training run folder as `dcediff train` leaves it: the shipped weights under model.*, with a card that has
    no expected-error map (a fresh run's card has none) and a description of its own."""
    directory.mkdir()
    shutil.copyfile(MODELS / f"{stem}.safetensors", directory / "model.safetensors")
    card = json.loads((MODELS / f"{stem}.json").read_text(encoding="utf-8"))
    card.pop("error_model", None)
    card.get("sampling", {}).pop("residual_steps", None)
    card["description"] = "a run's own description"
    (directory / "model.json").write_text(json.dumps(card), encoding="utf-8")
    return directory


def test_the_candidate_gets_the_shipped_error_map_and_tree_file_and_loads(tmp_path):
    script = load_script("build_candidate_card")
    residual = _run_folder(tmp_path / "residual", STEM)
    mean = _run_folder(tmp_path / "mean", f"{STEM}_regression")
    out = tmp_path / "candidate"
    assert script.main([str(residual), str(mean), "--shipped", str(MODELS), "--out", str(out)]) == 0

    shipped = json.loads((MODELS / f"{STEM}.json").read_text(encoding="utf-8"))
    built = json.loads((out / f"{STEM}.json").read_text(encoding="utf-8"))
    assert built["error_model"] == shipped["error_model"]
    assert built["description"] == shipped["description"]
    # the run's card has no residual step count; the shipped one's is carried (else synthesis takes the default)
    assert "residual_steps" not in json.loads((residual / "model.json").read_text(encoding="utf-8")).get("sampling", {})
    assert built["sampling"]["residual_steps"] == shipped["sampling"]["residual_steps"]
    trees = shipped["error_model"]["learned"]["file"]
    assert (out / trees).read_bytes() == (MODELS / trees).read_bytes()
    assert (out / f"{STEM}_regression.safetensors").read_bytes() == (mean / "model.safetensors").read_bytes()
    # the run folders are left as they were
    assert "error_model" not in json.loads((residual / "model.json").read_text(encoding="utf-8"))


def test_refuses_a_candidate_with_other_targets_and_a_used_output_folder(tmp_path):
    script = load_script("build_candidate_card")
    shipped = json.loads((MODELS / f"{STEM}.json").read_text(encoding="utf-8"))
    other = dict(shipped, targets=["dce_early"])
    with pytest.raises(SystemExit, match="targets differ"):
        script.carried_card(other, shipped, trees_present=True)
    with pytest.raises(SystemExit, match="not beside the shipped card"):
        script.carried_card(dict(shipped), shipped, trees_present=False)
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with pytest.raises(SystemExit, match="expected an empty or new folder"):
        script.main([str(tmp_path), str(tmp_path), "--out", str(used)])
