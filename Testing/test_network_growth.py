"""A trained 1-block-per-level U-Net deepened without changing its function (diffusion/network_growth.py), and a
regression run started from it (training/initial_weights.py, init_weights)."""

import pytest
import torch

from DCEDiffLib.diffusion.model_files import load_model
from DCEDiffLib.diffusion.network_growth import deepen_res_blocks, is_deepened
from DCEDiffLib.diffusion.presets import build_network, network_config
from DCEDiffLib.diffusion.residual import predict_mean
from DCEDiffLib.errors import InputError

from test_training import make_trainer, tiny_config

CONDITIONS = ["t2w", "pd", "adc", "t1pre"]


def _trained_looking(config: dict) -> torch.nn.Module:
    """A network whose every weight is non-zero (as after training), so that no block is an identity by chance."""
    torch.manual_seed(0)
    network = build_network(config)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0.0, 0.05)
    return network.eval()


@pytest.mark.parametrize("blocks", [2, 3])
def test_the_deeper_network_computes_the_same_function_and_its_added_blocks_learn(blocks):
    source = _trained_looking(network_config("cpu"))
    before = {k: v.clone() for k, v in source.state_dict().items()}
    target = build_network(network_config("cpu", res_blocks=blocks)).eval()
    deepen_res_blocks(source, target)
    x, gamma = torch.randn(2, 6, 32, 32), torch.rand(2)
    with torch.no_grad():
        expected = source(x, gamma)
        assert expected.abs().mean() > 1e-3  # a function that is not zero everywhere
        assert torch.allclose(target(x, gamma), expected, atol=1e-6)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())  # the source is untouched
    assert sum(p.numel() for p in target.parameters()) > sum(p.numel() for p in source.parameters())
    # the added blocks are not frozen identities: one step of gradient moves their output convolutions
    target.train()
    target(x, gamma).square().mean().backward()
    added_encoder = target.input_blocks[2][0]  # level 0: the trained block, then the added one
    added_decoder = target.output_blocks[1][0]  # deepest level: the trained block, then the added one
    assert added_encoder.out_conv.weight.grad.abs().sum() > 0
    assert added_decoder.out_conv.weight.grad.abs().sum() > 0


def test_the_check_can_fail_added_decoder_blocks_left_as_built_change_the_function(monkeypatch):
    # the added decoder blocks' 1×1 skips mix the encoder skip in until they are set to pass the features through
    from DCEDiffLib.diffusion import network_growth

    monkeypatch.setattr(network_growth, "_pass_features_through", lambda block: None)
    source = _trained_looking(network_config("cpu"))
    target = build_network(network_config("cpu", res_blocks=2)).eval()
    network_growth.deepen_res_blocks(source, target)
    with torch.no_grad():
        x, gamma = torch.randn(1, 6, 32, 32), torch.rand(1)
        assert not torch.allclose(target(x, gamma), source(x, gamma), atol=1e-4)


def test_only_more_residual_blocks_on_a_one_block_network_count_as_growth():
    base = network_config("cpu")
    assert is_deepened(base, network_config("cpu", res_blocks=2)) is True
    assert is_deepened(base, dict(base)) is False
    with pytest.raises(ValueError, match="more than the residual blocks"):
        is_deepened(base, network_config("cpu", res_blocks=2, inner_channels=48))
    with pytest.raises(ValueError, match="only a network with 1 residual block"):
        is_deepened(network_config("cpu", res_blocks=2), network_config("cpu", res_blocks=3))
    with pytest.raises(ValueError, match="only a network with 1 residual block"):
        is_deepened(network_config("cpu", res_blocks=2), base)
    with pytest.raises(ValueError, match="attention"):
        is_deepened(network_config("cpu", attention_rates=[8]),
                          network_config("cpu", attention_rates=[8], res_blocks=2))
    with pytest.raises(ValueError, match="1 residual block per level"):
        deepen_res_blocks(build_network(network_config("cpu", res_blocks=2)),
                          build_network(network_config("cpu", res_blocks=3)))


def test_a_regression_run_starts_a_deeper_mean_from_a_trained_one_and_refuses_other_changes(tmp_path):
    base = dict(objective="regression", parameterization="enhancement")
    make_trainer(tmp_path, tiny_config(iterations=3, **base), "shallow").run()
    path = str(tmp_path / "shallow" / "model.safetensors")
    deeper_config = tiny_config(iterations=3, init_weights=path, **base)
    deeper_config["model"] = {"preset": "tiny", "res_blocks": 2}
    trainer = make_trainer(tmp_path, deeper_config, "deeper")
    assert trainer.network_config["res_blocks"] == 2
    shallow = load_model(path).network
    with torch.no_grad():
        cond = trainer.val_cond[:2]
        before = predict_mean(shallow, cond, "enhancement", CONDITIONS, 3.0)
        after = predict_mean(trainer.network, cond, "enhancement", CONDITIONS, 3.0)
    assert torch.allclose(before, after, atol=1e-5)
    trainer.run()
    exported = load_model(tmp_path / "deeper" / "model.safetensors")
    assert exported.card["architecture"]["config"]["res_blocks"] == 2
    # anything else that differs is still refused, with the reason
    wider = tiny_config(iterations=3, init_weights=path, **base)
    wider["model"] = {"preset": "tiny", "inner_channels": 24}
    with pytest.raises(InputError, match="its network config differs.*more than the residual blocks"):
        make_trainer(tmp_path, wider, "wider")
