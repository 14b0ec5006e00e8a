"""scripts/average_weights.py: the element-wise average of two model files of one network, on the shipped regression
network and a perturbed copy of it (real files on disk); different networks are refused by name."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from DCEDiffLib.diffusion.model_files import load_model
from script_module import ROOT, load_script

SHIPPED = ROOT / "Resources" / "Models" / "dcediff_cpu_phantom_regression.safetensors"


@pytest.fixture(scope="module")
def script():
    return load_script("average_weights")


def _perturbed_copy(tmp_path: Path, shift: float) -> Path:
    """The shipped regression network with every weight shifted by ``shift``, its card updated to match."""
    weights = {k: v.float() + shift for k, v in load_file(str(SHIPPED)).items()}
    card = json.loads(SHIPPED.with_suffix(".json").read_text(encoding="utf-8"))
    out = tmp_path / "shifted.safetensors"
    save_file(weights, str(out), metadata={"format": "dcediff-model"})
    from DCEDiffLib.diffusion.model_files import sha256_of
    card["weights_sha256"] = sha256_of(out)
    out.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    return out


def test_the_average_lies_between_the_two_networks_and_loads(script, tmp_path):
    a = tmp_path / "a.safetensors"
    shutil.copy(SHIPPED, a)
    shutil.copy(SHIPPED.with_suffix(".json"), a.with_suffix(".json"))
    b = _perturbed_copy(tmp_path, 0.1)
    written, card_path = script.average_models(a, b, tmp_path / "avg.safetensors", alpha=0.25)
    original, averaged = load_file(str(SHIPPED)), load_file(str(written))
    for key in list(original)[:20]:
        assert torch.allclose(averaged[key].float(), original[key].float() + 0.025, atol=1e-6)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert "0.75 × a.safetensors" in card["description"] and "0.25 × shifted.safetensors" in card["description"]
    loaded = load_model(written)          # a checked card with the new weights' hash
    assert loaded.card["weights_sha256"] != json.loads(SHIPPED.with_suffix(".json").read_text())["weights_sha256"]


def test_different_networks_and_a_bad_alpha_are_refused(script, tmp_path):
    a = _perturbed_copy(tmp_path, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        script.average_models(a, a, tmp_path / "x.safetensors", alpha=1.5)
    weights = load_file(str(a))
    first = next(iter(weights))
    weights[first] = torch.zeros(3)
    save_file(weights, str(tmp_path / "other.safetensors"))
    shutil.copy(a.with_suffix(".json"), tmp_path / "other.json")
    with pytest.raises(ValueError, match="shape"):
        script.average_state(load_file(str(a)), weights, 0.5)
    card = json.loads(a.with_suffix(".json").read_text(encoding="utf-8"))
    card["objective"] = "residual"
    (tmp_path / "other.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ValueError, match="objective"):
        script.average_models(a, tmp_path / "other.safetensors", tmp_path / "y.safetensors")
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.safetensors").exists()
