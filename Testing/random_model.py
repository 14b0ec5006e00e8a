"""A small random-weight DCEDiff model file for tests that need a model but not a trained one."""

from pathlib import Path

CONDITIONS = ["t2w", "pd", "adc", "t1pre"]


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
    network = build_network(config)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = Path(directory) / "tiny.safetensors"
    save_model(network, make_model_card(config, "diffusion", CONDITIONS, "tiny", {"data": "none (test)"}), path)
    return path
