"""A small random-weight DCEDiff model file for tests that need a model but not a trained one."""

from pathlib import Path

CONDITIONS = ["t2w", "pd", "adc", "t1pre"]


def _perturbed(network):
    """``network`` with every weight moved by seeded noise: the zero-initialised output layers would otherwise make
    every prediction identical."""
    import torch

    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return network


def save_random_model(directory: Path, **config_overrides) -> Path:
    """Write ``directory/tiny.safetensors`` (+ card): the ``tiny`` preset with ``config_overrides``, seeded weights.

    The zero-initialised output layer would make every prediction identical, so all weights are perturbed.
    """
    import torch

    from DCEDiffLib.diffusion.model_files import save_model
    from DCEDiffLib.diffusion.presets import build_network, network_config
    from DCEDiffLib.training.model_card import make_model_card

    config = network_config("tiny", in_channels=6, out_channels=2, **config_overrides)
    torch.manual_seed(0)
    network = _perturbed(build_network(config))
    path = Path(directory) / "tiny.safetensors"
    save_model(network, make_model_card(config, "diffusion", CONDITIONS, "tiny", {"data": "none (test)"}), path)
    return path


def save_copy_allowing_missing_pd(model: Path, name: str = "dropout") -> Path:
    """A copy of ``model`` (same weights) whose card lists ``"optional_inputs": ["pd"]``, as training with
    ``augment.drop_pd`` writes it; returns the copy's .safetensors path (beside ``model``)."""
    model = Path(model)
    copy = model.with_name(f"{name}.safetensors")
    copy.write_bytes(model.read_bytes())
    card = model.with_suffix(".json").read_text(encoding="utf-8")
    copy.with_suffix(".json").write_text(card.replace('"format": ', '"optional_inputs": ["pd"], "format": ', 1),
                                         encoding="utf-8")
    return copy


def save_narrow_copy_of_the_shipped_card(directory: Path, name: str = "narrow") -> Path:
    """``directory/<name>.safetensors`` (+ card): the shipped card — its conditions, normalisation, sampling, error
    tables and flags — with both networks narrowed to 8 channels and seeded random weights; the shipped learned
    error map is left out (it belongs to the shipped weights). For tests of the fitting scripts, which need a whole
    residual card but not its trained weights: the sample case goes through it in about a second on one thread,
    against about 25 s for the shipped networks."""
    import json

    import torch

    from DCEDiffLib.diffusion.model_files import build_from_card, model_paths, save_model
    from DCEDiffLib.model_registry import shipped_model_path

    card = json.loads(model_paths(shipped_model_path())[1].read_text(encoding="utf-8"))
    for part in (card["mean_network"], card["architecture"]):
        part["config"] = dict(part["config"], inner_channels=8)
    card.get("error_model", {}).pop("learned", None)
    torch.manual_seed(0)
    network = _perturbed(build_from_card(card))
    path = Path(directory) / f"{name}.safetensors"
    save_model(network, card, path)
    return path
