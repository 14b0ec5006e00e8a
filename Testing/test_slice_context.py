"""2.5D context for the mean network (diffusion/slice_context.py): neighbour channels, the function-preserving
widening of a 2D network, training and synthesis with a 2.5D mean, and the card's checks."""

import json

import numpy as np
import pytest
import torch

from DCEDiffLib.diffusion.model_files import load_model, mean_context_slices
from DCEDiffLib.diffusion.presets import build_network, network_config
from DCEDiffLib.diffusion.residual import predict_mean
from DCEDiffLib.diffusion.slice_context import (context_offsets, first_convolution, slice_with_context,
                                                volume_with_context, widen_first_convolution)
from DCEDiffLib.diffusion.synthesis import synthesize_volume
from DCEDiffLib.errors import InputError, ModelFileError
from DCEDiffLib.training.augmentation import augment_slice, check_augmentation
from DCEDiffLib.training.batches import fixed_slices

from test_training import make_trainer, tiny_case, tiny_config

CONDITIONS = ["t2w", "pd", "adc", "t1pre"]


def _volume(slices=5, size=4):
    """(C, K, H, W) whose value names its channel and slice: 10·channel + slice."""
    channel = np.arange(4, dtype=np.float32)[:, None, None, None]
    k = np.arange(slices, dtype=np.float32)[None, :, None, None]
    return np.broadcast_to(10 * channel + k, (4, slices, size, size)).copy()


def test_context_channels_are_the_slice_then_its_neighbours_with_the_ends_repeated():
    assert context_offsets(0) == [0] and context_offsets(2) == [0, -1, 1, -2, 2]
    volume = _volume()
    middle = slice_with_context(volume, 2, 1)[:, 0, 0]
    assert middle.tolist() == [2, 12, 22, 32, 1, 11, 21, 31, 3, 13, 23, 33]
    assert slice_with_context(volume, 2, 1, channels=[3, 0])[:, 0, 0].tolist() == [32, 2, 31, 1, 33, 3]
    first = slice_with_context(volume, 0, 2)[:, 0, 0]  # below slice 0 the volume repeats slice 0
    assert first[:4].tolist() == [0, 10, 20, 30] and first[4:8].tolist() == [0, 10, 20, 30]
    assert first[12:16].tolist() == [0, 10, 20, 30] and first[16:].tolist() == [2, 12, 22, 32]
    # the torch version over a whole volume gives every slice the same channels
    wide = volume_with_context(torch.from_numpy(volume.transpose(1, 0, 2, 3)), 2).numpy()
    for k in range(volume.shape[1]):
        assert np.array_equal(wide[k], slice_with_context(volume, k, 2))
    with pytest.raises(ValueError, match="context_slices 3"):
        context_offsets(3)


def random_tiny_network(in_channels: int = 6):
    """A tiny U-Net with every weight drawn at random (seed 0): as built, its output layer is zero and it would
    say nothing a widening could change."""
    torch.manual_seed(0)
    network = build_network(network_config("tiny", in_channels=in_channels, out_channels=2))
    for parameter in network.parameters():
        parameter.data.normal_(0.0, 0.05)
    return network


def test_widening_a_2d_network_keeps_its_function_and_lets_the_neighbours_in():
    narrow = random_tiny_network()
    wide = build_network(network_config("tiny", in_channels=14, out_channels=2))
    widen_first_convolution(narrow, wide, 4, 1)
    volume = torch.rand(3, 4, 16, 16) * 2 - 1
    with torch.no_grad():
        before = predict_mean(narrow, volume, "enhancement", CONDITIONS, 3.0)
        after = predict_mean(wide, volume_with_context(volume, 1), "enhancement", CONDITIONS, 3.0)
        assert torch.allclose(before, after, atol=1e-6)
        # once the neighbours' weights move, the neighbours change the output
        first_convolution(wide).weight[:, 4:12] += 0.1
        moved = predict_mean(wide, volume_with_context(volume, 1), "enhancement", CONDITIONS, 3.0)
    assert not torch.allclose(before, moved, atol=1e-4)
    with pytest.raises(ValueError, match="reads 14 channels"):
        widen_first_convolution(narrow, wide, 4, 2)


def test_augmentation_draws_once_per_series_for_a_slice_and_its_neighbours():
    rng = np.random.default_rng(0)
    single = rng.uniform(-0.8, 0.8, (4, 24, 24)).astype(np.float32)
    target = rng.uniform(-0.8, 0.8, (2, 24, 24)).astype(np.float32)
    settings = check_augmentation({"gamma": 0.3, "bias": 0.3, "adc_scale": 0.15, "coil": 2.0, "drop_pd": 0.5})
    for seed in range(6):
        grouped, grouped_target = augment_slice(np.random.default_rng(seed), np.concatenate([single] * 3), target,
                                                CONDITIONS, settings)
        alone, alone_target = augment_slice(np.random.default_rng(seed), single, target, CONDITIONS, settings)
        # three equal groups stay equal, and equal to the slice augmented alone with the same draws
        for group in range(3):
            assert np.allclose(grouped[4 * group:4 * group + 4], alone, atol=1e-6)
        assert np.allclose(grouped_target, alone_target)
    with pytest.raises(ValueError, match="not groups of"):
        augment_slice(np.random.default_rng(0), single[:3], target, CONDITIONS, settings)


def test_a_2d_mean_fine_tuned_as_2_5d_trains_exports_and_serves_a_residual_model(tmp_path):
    base = dict(objective="regression", parameterization="enhancement")
    make_trainer(tmp_path, tiny_config(iterations=3, **base), "mean2d").run()
    path_2d = str(tmp_path / "mean2d" / "model.safetensors")
    config = tiny_config(iterations=3, context_slices=1, init_weights=path_2d, **base)
    trainer = make_trainer(tmp_path, config, "mean25d")
    # the batches and the validation slices carry the neighbours' channels after the slice's own
    cond, _ = trainer.batches.batch(0)
    assert cond.shape[1] == 12 and trainer.val_cond.shape[1] == 12
    assert trainer.network_config["in_channels"] == 14
    # it starts as the 2D network: same output on the same slices
    narrow = load_model(path_2d).network
    with torch.no_grad():
        before = predict_mean(narrow, trainer.val_cond[:2, :4], "enhancement", CONDITIONS, 3.0)
        after = predict_mean(trainer.network, trainer.val_cond[:2], "enhancement", CONDITIONS, 3.0)
    assert torch.allclose(before, after, atol=1e-5)
    trainer.run()
    mean_path = tmp_path / "mean25d" / "model.safetensors"
    loaded = load_model(mean_path)
    assert loaded.card["context_slices"] == 1 and mean_context_slices(loaded.card) == 1
    assert loaded.card["training"]["recipe"]["context_slices"] == 1
    assert len(loaded.card["channel_meaning"]["input"]) == 14
    case = tiny_case("q", 9, size=16, slices=3)
    regression = synthesize_volume(loaded, case.conditions, device="cpu", precision="fp32")
    assert regression.mean.shape == (2, 3, 16, 16) and np.isfinite(regression.mean).all()
    # the regression output of one slice depends on its neighbours (the widened weights were trained)
    changed = case.conditions.copy()
    changed[:, 2] = -changed[:, 2]
    moved = synthesize_volume(loaded, changed, device="cpu", precision="fp32")
    assert not np.allclose(moved.mean[:, 1], regression.mean[:, 1], atol=1e-6)

    residual_config = tiny_config(iterations=3, objective="residual", mean_model=str(mean_path))
    residual_trainer = make_trainer(tmp_path, residual_config, "residual")
    assert residual_trainer.network_config["in_channels"] == 8  # the residual network stays 2D
    residual_trainer.run()
    model = load_model(tmp_path / "residual" / "model.safetensors")
    assert model.card["mean_network"]["context_slices"] == 1 and model.network.mean_context_slices == 1
    result = synthesize_volume(model, case.conditions, steps=2, device="cpu", precision="fp32")
    # the residual model's mean is the 2.5D regression's (temperature 0: the sampled residual adds nothing)
    model.network.temperature = 0.0
    cold = synthesize_volume(model, case.conditions, steps=2, device="cpu", precision="fp32")
    assert np.isfinite(result.mean).all() and np.allclose(cold.mean, regression.mean, atol=1e-5)


def test_context_settings_are_checked_in_configs_init_weights_and_cards(tmp_path):
    with pytest.raises(InputError, match="context_slices 1 needs objective 'regression'"):
        tiny_config(context_slices=1, objective="diffusion")
    with pytest.raises(InputError, match="context_slices 5"):
        tiny_config(context_slices=5, objective="regression")
    base = dict(objective="regression", parameterization="enhancement")
    make_trainer(tmp_path, tiny_config(iterations=2, context_slices=1, **base), "wide").run()
    wide_path = tmp_path / "wide" / "model.safetensors"
    with pytest.raises(InputError, match="reads 1 context slices, this run 2"):
        make_trainer(tmp_path, tiny_config(iterations=2, context_slices=2, init_weights=str(wide_path), **base), "z")
    card_path = wide_path.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    for value, message in ((0, "network has 14 inputs"), (2, "network has 14 inputs"), ("one", "context_slices 'one'")):
        card_path.write_text(json.dumps(dict(card, context_slices=value)), encoding="utf-8")
        with pytest.raises(ModelFileError, match=message):
            load_model(wide_path)


def test_fixed_slices_with_context_match_the_volume():
    case = tiny_case("c", 3, size=16, slices=4)
    cond, _ = fixed_slices([case], 4, CONDITIONS, context_slices=1)
    assert cond.shape == (4, 12, 16, 16)
    volume = np.clip(case.conditions, -1, 1)
    candidates = [slice_with_context(volume, k, 1) for k in range(4)]
    for row in cond.numpy():
        assert any(np.allclose(row, c) for c in candidates)
