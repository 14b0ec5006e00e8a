"""Model-file refusals at their definition (DCEDiffLib/diffusion/model_files.py): a card that is not UTF-8 text is
"not valid JSON" (a ModelFileError naming it, not a crash), NaN weights are refused in any floating-point type, and
a residual card's sampling temperature (0..1) and residual scale ((0, 10)) are held to their documented ranges
(found by a mutation audit)."""

import json
import shutil

import pytest

from DCEDiffLib.diffusion.model_files import load_card, load_model, save_model, sha256_of
from DCEDiffLib.errors import ModelFileError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    from DCEDiffLib.diffusion.presets import build_network, network_config
    from DCEDiffLib.training.model_card import make_model_card

    config = network_config("tiny", in_channels=6, out_channels=2)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    card = make_model_card(config, "diffusion", ["t2w", "pd", "adc", "t1pre"], "tiny", {"data": "none (test)"})
    save_model(build_network(config), card, path)
    return path


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    from test_residual import _residual_model

    return _residual_model(tmp_path_factory.mktemp("residual")).path


def _copy(path, folder):
    shutil.copy(path, folder / path.name)
    shutil.copy(path.with_suffix(".json"), folder / path.with_suffix(".json").name)
    return folder / path.name


def test_a_card_that_is_not_utf8_text_is_refused_by_name(tiny, tmp_path):
    """load_model/load_card: a card that cannot be read as JSON text is refused as "not valid JSON" with its path
    (a ModelFileError, which the command turns into one line), whatever the reason - also bytes that are no UTF-8."""
    weights = _copy(tiny, tmp_path)
    card = weights.with_suffix(".json")
    card.write_bytes(b"\xff\xfe" + card.read_bytes())
    for load in (load_model, load_card):
        with pytest.raises(ModelFileError, match=r"tiny\.json is not valid JSON"):
            load(weights)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_nan_weights_are_refused_in_any_floating_point_type(tiny, tmp_path, dtype):
    """load_model refuses "NaN/Inf" weights (module docstring): weights stored in half precision are floating
    point too. The same half-precision file without the NaN loads (the refusal is the NaN, not the type)."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = _copy(tiny, tmp_path)
    tensors = {k: (v.to(getattr(torch, dtype)) if v.is_floating_point() else v)
               for k, v in load_file(str(weights)).items()}

    def write(values):
        save_file(values, str(weights))
        card = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))
        card["weights_sha256"] = sha256_of(weights)
        weights.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")

    write(tensors)
    load_model(weights)
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    write(tensors)
    with pytest.raises(ModelFileError, match=f"tensor {name} contains NaN or Inf"):
        load_model(weights)


@pytest.mark.parametrize("field, value, accepted", [
    ("residual_temperature", 1.0, True), ("residual_temperature", 0.0, True),
    ("residual_temperature", 1.5, False), ("residual_temperature", -0.1, False)])
def test_the_sampling_temperature_is_held_to_0_to_1(residual, tmp_path, field, value, accepted):
    """_check_residual_fields: sampling.residual_temperature "expected 0..1" (it scales the sampled residual, ≤ 1,
    docs/diffusion.md): both ends accepted, anything outside refused at load."""
    weights = _copy(residual, tmp_path)
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.setdefault("sampling", {})[field] = value
    card_path.write_text(json.dumps(card), encoding="utf-8")
    if accepted:
        assert load_card(weights)["sampling"][field] == value
    else:
        with pytest.raises(ModelFileError, match=f"sampling.{field}"):
            load_card(weights)


@pytest.mark.parametrize("value, accepted", [(0.2, True), (9.99, True), (0, False), (0.0, False), (10, False)])
def test_the_residual_scale_is_held_to_the_open_interval(residual, tmp_path, value, accepted):
    """_check_residual_fields: residual_scale "expected a number in (0, 10)" - open at both ends: a scale of 0 would
    make every residual vanish."""
    weights = _copy(residual, tmp_path)
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["residual_scale"] = value
    card_path.write_text(json.dumps(card), encoding="utf-8")
    if accepted:
        assert load_card(weights)["residual_scale"] == value
    else:
        with pytest.raises(ModelFileError, match="residual_scale"):
            load_card(weights)


@pytest.mark.parametrize("place, field", [("sampling", "residual_temperature"), ("sampling", "residual_start"),
                                          ("card", "residual_scale")])
def test_true_is_not_a_number_in_a_residual_card(residual, tmp_path, place, field):
    """JSON true is no number: Python counts a bool as an int, so `true` would read as 1 (a temperature of 1, a
    scale of 1) without a word; refused by name like any other value of the wrong kind."""
    weights = _copy(residual, tmp_path)
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    (card.setdefault("sampling", {}) if place == "sampling" else card)[field] = True
    card_path.write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelFileError, match=f"{field} True"):
        load_card(weights)


@pytest.mark.parametrize("field", ["weights_sha256", "normalization", "schedules"])
def test_a_card_without_a_required_field_is_refused_by_name(tiny, tmp_path, field):
    """check_card: the card ties the weights to it by their SHA-256 and says how inputs are normalised; a card
    without one of the required fields is refused with the field's name (not a KeyError later on)."""
    weights = _copy(tiny, tmp_path)
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.pop(field)
    card_path.write_text(json.dumps(card), encoding="utf-8")
    for load in (load_model, load_card):
        with pytest.raises(ModelFileError, match=rf"tiny\.json: missing field\(s\) \['{field}'\]"):
            load(weights)
