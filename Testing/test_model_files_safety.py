"""Model files are loaded safely (issue 7): every kind of bad model file is refused with a message naming it, and
nothing is unpickled. (Testing/test_diffusion.py covers the network and samplers, not these refusals.)"""

import json
import pickle
import shutil

import pytest

from DCEDiffLib.diffusion.model_files import load_model, save_model, sha256_of
from DCEDiffLib.errors import ModelFileError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import torch

    from DCEDiffLib.diffusion.presets import build_network, network_config
    from DCEDiffLib.training.model_card import make_model_card

    config = network_config("tiny", in_channels=6, out_channels=2)
    torch.manual_seed(0)
    network = build_network(config)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    card = make_model_card(config, "diffusion", ["t2w", "pd", "adc", "t1pre"], "tiny", {"data": "none (test)"})
    save_model(network, card, path)
    return path


def copy_model(saved, folder, name="m"):
    weights, card = folder / f"{name}.safetensors", folder / f"{name}.json"
    shutil.copy(saved, weights)
    shutil.copy(saved.with_suffix(".json"), card)
    return weights, card


def edit_card(card_path, change):
    card = json.loads(card_path.read_text(encoding="utf-8"))
    change(card)
    card_path.write_text(json.dumps(card), encoding="utf-8")


def test_a_good_model_loads(saved):
    model = load_model(saved)
    assert model.card["conditions"] == ["t2w", "pd", "adc", "t1pre"] and not model.network.training


def test_a_dotted_model_name_loads_that_model_and_other_files_are_named_for_what_they_are(saved, tmp_path):
    """'model_v1.5.safetensors' once loaded 'model_v1.safetensors' (Path.with_suffix drops the '.5')."""
    from DCEDiffLib.diffusion.model_files import model_paths

    weights, card = copy_model(saved, tmp_path, "model_v1.5")
    assert model_paths(weights) == (weights, card) and model_paths(card) == (weights, card)
    assert model_paths(tmp_path / "model_v1.5") == (weights, card)  # the stem
    assert load_model(weights).path == weights
    pickled = tmp_path / "ckpt.pt"
    pickled.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"ckpt.pt: expected a .safetensors model file .*a '.pt' file is not"):
        load_model(pickled)
    (tmp_path / "folder.safetensors").mkdir()
    with pytest.raises(ModelFileError, match="folder.safetensors is a folder, not a file"):
        load_model(tmp_path / "folder.safetensors")


def _truncate(weights, card):
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    edit_card(card, lambda c: c.update(weights_sha256=sha256_of(weights)))  # even with a matching digest


def _alter_tensor(weights, card):
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))


def _other_architecture(weights, card):
    edit_card(card, lambda c: c["architecture"].update(name="some-other-unet"))


def _pickle(weights, card):
    import torch

    torch.save({"state_dict": {}}, weights)  # a zip-format pickle, what torch.save writes


def _raw_pickle(weights, card):
    weights.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=2))


def _unknown_field(weights, card):
    edit_card(card, lambda c: c.update(run_this_code="import os"))


def _wrong_modality_order(weights, card):
    edit_card(card, lambda c: c.update(conditions=["pd", "t2w", "adc", "t1pre"]))


def _foreign_modality(weights, card):
    edit_card(card, lambda c: c.update(conditions=["t2w", "pd", "adc", "dwi"]))


def _one_input_named_twice(weights, card):  # the channel count still matches: PD's channel would get a T2W
    edit_card(card, lambda c: c.update(conditions=["t2w", "t2w", "adc", "t1pre"]))


def _wrong_targets(weights, card):
    edit_card(card, lambda c: c.update(targets=["dce_late", "dce_early"]))


def _missing_card(weights, card):
    card.unlink()


def _card_not_json(weights, card):
    card.write_text("{not json", encoding="utf-8")


def _newer_format(weights, card):
    edit_card(card, lambda c: c.update(format_version=99))


def _shape_mismatch(weights, card):
    edit_card(card, lambda c: c["architecture"]["config"].update(base_channels=c["architecture"]["config"]
                                                                 .get("base_channels", 8) * 2))


def _nan_weights(weights, card):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name][...] = float("nan")
    save_file(tensors, str(weights))
    edit_card(card, lambda c: c.update(weights_sha256=sha256_of(weights)))


def _normalization_not_an_object(weights, card):
    edit_card(card, lambda c: c.update(normalization="x"))


def _another_target_range_factor(weights, card):  # the outputs would be mapped back with 3: every voxel off
    edit_card(card, lambda c: c["normalization"].update(target_range_factor=0))


def _statistics_not_an_object(weights, card):  # read only after registration: refused when the card loads
    edit_card(card, lambda c: c.update(input_statistics="x"))


def _flag_as_text(weights, card):  # "false" is true in Python: a yes/no field must be JSON true/false
    edit_card(card, lambda c: c.update(t1pre_excess_added_back="false"))


CASES = {
    "truncated": (_truncate, ["m.safetensors", "corrupt or truncated"]),
    "altered_tensor_sha256_mismatch": (_alter_tensor, ["m.safetensors", "SHA-256", "does not match"]),
    "card_for_another_architecture": (_other_architecture, ["m.json", "some-other-unet", "palette-guided-unet"]),
    "torch_pickle": (_pickle, ["m.safetensors", "pickled", "nothing is unpickled"]),
    "raw_pickle": (_raw_pickle, ["m.safetensors", "pickled"]),
    "card_with_unknown_fields": (_unknown_field, ["m.json", "unknown field", "run_this_code"]),
    "wrong_modality_order": (_wrong_modality_order, ["m.json", "conditions", "in that order"]),
    "foreign_modality": (_foreign_modality, ["m.json", "dwi"]),
    "one_input_named_twice": (_one_input_named_twice, ["m.json", "conditions"]),
    "wrong_targets": (_wrong_targets, ["m.json", "targets"]),
    "missing_card": (_missing_card, ["m.json", "missing"]),
    "card_not_json": (_card_not_json, ["m.json", "not valid JSON"]),
    "newer_format": (_newer_format, ["m.json", "format_version 99"]),
    "nan_weights": (_nan_weights, ["m.safetensors", "NaN or Inf"]),
    "normalization_not_an_object": (_normalization_not_an_object, ["m.json", "normalization 'x'", "an object"]),
    "another_target_range_factor": (_another_target_range_factor, ["m.json", "target_range_factor 0", "expected 3"]),
    "statistics_not_an_object": (_statistics_not_an_object, ["m.json", "input_statistics 'x'"]),
    "flag_as_text": (_flag_as_text, ["m.json", "t1pre_excess_added_back 'false'", "true or false"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_model_files_are_refused(case, saved, tmp_path):
    make_bad, fragments = CASES[case]
    weights, card = copy_model(saved, tmp_path)
    make_bad(weights, card)
    with pytest.raises(ModelFileError) as info:
        load_model(weights)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_shape_mismatch_is_refused_when_the_config_changes(saved, tmp_path):
    weights, card = copy_model(saved, tmp_path)
    config = json.loads(card.read_text(encoding="utf-8"))["architecture"]["config"]
    key = next(k for k, v in config.items() if isinstance(v, int) and k not in ("in_channels", "out_channels")
               and v > 1)
    edit_card(card, lambda c: c["architecture"]["config"].update({key: config[key] * 2}))
    with pytest.raises(ModelFileError, match="m.json|m.safetensors"):
        load_model(weights)


def test_loading_never_unpickles(saved, tmp_path, monkeypatch):
    import torch

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load / pickle.load must never be called")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    load_model(saved)
    weights, card = copy_model(saved, tmp_path)
    _raw_pickle(weights, card)
    with pytest.raises(ModelFileError):
        load_model(weights)


def test_bad_model_through_the_command_exits_2_with_one_line(saved, tmp_path, capsys):
    from DCEDiffLib.cli import main
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

    weights, card = copy_model(saved, tmp_path)
    _alter_tensor(weights, card)
    out = tmp_path / "out"
    args = ["synthesize", "--model", str(weights), "--out", str(out), "--no-register",
            "--progress-lines"]
    for key in ("t2w", "pd", "adc", "t1pre"):
        args += [f"--{key}", str(SAMPLE_CASE_DIR / f"{key}.nii.gz")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dcediff synthesize: error: model weights") and "SHA-256" in err[0]
    assert not out.exists()


def test_a_safetensors_header_whose_length_ends_in_0x80_is_not_taken_for_pickle(tmp_path):
    """The first byte of a safetensors file is its header length's low byte: 0x80 (pickle's PROTO opcode) for one
    header in 256. Found by a 2.5D training run whose model file was refused as pickled (2026-12-01)."""
    import torch
    from safetensors.torch import save_file

    from DCEDiffLib.diffusion.model_files import looks_pickled

    path = tmp_path / "w.safetensors"
    for padding in range(300):  # lengthen the metadata until the header's length ends in 0x80
        save_file({"x": torch.zeros(2)}, str(path), metadata={"pad": "p" * padding})
        if path.read_bytes()[0] == 0x80:
            break
    head = path.read_bytes()[:9]
    assert head[0] == 0x80 and not looks_pickled(head)
    assert looks_pickled(pickle.dumps({"weights": [1, 2, 3]}, protocol=2)[:9])
    zipped = tmp_path / "z.pt"
    torch.save({"a": 1}, zipped)
    assert looks_pickled(zipped.read_bytes()[:9])
