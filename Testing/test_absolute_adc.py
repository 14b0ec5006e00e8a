"""The ADC in absolute units as one more input of the mean network (diffusion/absolute_adc.py): the channel's values,
the function-preserving insertion into a trained network, training, export, synthesis and the card's checks."""

import json

import numpy as np
import pytest
import torch

from DCEDiffLib.benchmark.sampler_sweep import REGRESSION_RUN, time_volume
from DCEDiffLib.diffusion.absolute_adc import absolute_adc_channel, reads_absolute_adc
from DCEDiffLib.diffusion.model_files import load_model
from DCEDiffLib.diffusion.network_growth import insert_zero_input_channels
from DCEDiffLib.diffusion.presets import build_network, network_config
from DCEDiffLib.diffusion.residual import predict_mean
from DCEDiffLib.diffusion.slice_context import first_convolution
from DCEDiffLib.diffusion.synthesis import synthesize_volume
from DCEDiffLib.errors import InputError, ModelFileError
from DCEDiffLib.normalization import NormParams, fit_normalization, normalize

from test_slice_context import random_tiny_network
from test_training import make_trainer, tiny_case, tiny_config

CONDITIONS = ["t2w", "pd", "adc", "t1pre"]
REGRESSION = dict(objective="regression", parameterization="enhancement")


def test_the_channel_is_the_adc_in_absolute_units_whatever_the_percentiles():
    adc = np.array([0.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0], np.float32)
    # two exams whose percentile ranges differ (one with urine in the grid): the same ADC, different normalised values
    for params in (NormParams(0.0, 3000.0), NormParams(200.0, 1800.0)):
        channel = absolute_adc_channel(normalize(adc, params), params)
        assert np.allclose(channel, [-1.0, -0.5, 0.0, 1.0, 2.0, 2.0], atol=1e-5)  # clipped at 2 above free water
    params = fit_normalization(np.linspace(0, 3000, 1000).astype(np.float32))
    assert absolute_adc_channel(normalize(adc, params), params).dtype == np.float32


def test_inserting_a_zero_channel_keeps_the_function_and_lets_the_channel_in():
    narrow = random_tiny_network()
    wide = build_network(network_config("tiny", in_channels=7, out_channels=2))
    insert_zero_input_channels(narrow, wide, position=4)
    cond = torch.rand(3, 4, 16, 16) * 2 - 1
    extra = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        before = predict_mean(narrow, cond, "enhancement", CONDITIONS, 3.0)
        after = predict_mean(wide, torch.cat([cond, extra], 1), "enhancement", CONDITIONS, 3.0)
        assert torch.allclose(before, after, atol=1e-6)
        first_convolution(wide).weight[:, 4] += 0.1  # once its weights move, the channel changes the output
        moved = predict_mean(wide, torch.cat([cond, extra], 1), "enhancement", CONDITIONS, 3.0)
    assert not torch.allclose(before, moved, atol=1e-4)
    # the targets' columns moved one place on, the conditions' stayed
    assert torch.equal(first_convolution(wide).weight[:, 5:], first_convolution(narrow).weight[:, 4:])
    with pytest.raises(ValueError, match="reads 7 channels"):
        insert_zero_input_channels(narrow, wide, position=4, count=2)


def test_a_mean_with_the_channel_trains_exports_and_serves_a_residual_model(tmp_path):
    make_trainer(tmp_path, tiny_config(iterations=3, **REGRESSION), "plain").run()
    plain_path = str(tmp_path / "plain" / "model.safetensors")
    trainer = make_trainer(tmp_path, tiny_config(iterations=3, absolute_adc=True, init_weights=plain_path,
                                                 **REGRESSION), "absolute")
    cond, _ = trainer.batches.batch(0)
    assert cond.shape[1] == 5 and trainer.val_cond.shape[1] == 5
    assert trainer.network_config["in_channels"] == 7
    # the channel is the ADC of the slice in absolute units (tiny cases: ADC normalised over 0..100)
    case = trainer.data["validation"][0]
    assert float(trainer.val_cond[:, 4].max()) <= -0.9 + 1e-6 and float(trainer.val_cond[:, 4].min()) >= -1 - 1e-6
    # it starts as the network without the channel
    with torch.no_grad():
        before = predict_mean(load_model(plain_path).network, trainer.val_cond[:2, :4], "enhancement", CONDITIONS, 3.0)
        after = predict_mean(trainer.network, trainer.val_cond[:2], "enhancement", CONDITIONS, 3.0)
    assert torch.allclose(before, after, atol=1e-5)
    trainer.run()
    mean_path = tmp_path / "absolute" / "model.safetensors"
    loaded = load_model(mean_path)
    assert loaded.card["absolute_adc"] is True and reads_absolute_adc(loaded.card)
    assert loaded.card["training"]["recipe"]["absolute_adc"] is True
    assert len(loaded.card["channel_meaning"]["input"]) == 7
    with pytest.raises(InputError, match="absolute units"):  # it cannot run without the ADC's normalisation
        synthesize_volume(loaded, case.conditions, device="cpu", precision="fp32")
    regression = synthesize_volume(loaded, case.conditions, device="cpu", precision="fp32", adc_norm=case.norm["adc"])
    assert np.isfinite(regression.mean).all()
    # the same normalised ADC read as a different absolute ADC changes the output (the channel is used)
    first_convolution(loaded.network).weight.data[:, 4] += 0.2
    low = synthesize_volume(loaded, case.conditions, device="cpu", precision="fp32", adc_norm=NormParams(0.0, 100.0))
    high = synthesize_volume(loaded, case.conditions, device="cpu", precision="fp32", adc_norm=NormParams(0.0, 3000.0))
    assert not np.allclose(low.mean, high.mean, atol=1e-5)
    # the benchmark times such a model without a case's normalisation (timing needs the shapes only)
    timed = time_volume(loaded, case.conditions, REGRESSION_RUN, device="cpu", precision="fp32")
    assert timed["nfe"] == 1 and timed["seconds"] > 0

    residual_trainer = make_trainer(tmp_path, tiny_config(iterations=3, objective="residual",
                                                          mean_model=str(mean_path)), "residual")
    assert residual_trainer.network_config["in_channels"] == 8  # the residual network reads only the conditions
    residual_trainer.run()
    model = load_model(tmp_path / "residual" / "model.safetensors")
    assert model.card["mean_network"]["absolute_adc"] is True and model.network.mean_absolute_adc
    model.network.temperature = 0.0  # the sampled residual adds nothing: the output is the mean's
    cold = synthesize_volume(model, case.conditions, steps=2, device="cpu", precision="fp32",
                             adc_norm=case.norm["adc"])
    unchanged = load_model(mean_path)
    reference = synthesize_volume(unchanged, case.conditions, device="cpu", precision="fp32",
                                  adc_norm=case.norm["adc"])
    assert np.allclose(cold.mean, reference.mean, atol=1e-5)


def test_absolute_adc_settings_are_checked_in_configs_init_weights_and_cards(tmp_path):
    with pytest.raises(InputError, match="absolute_adc True needs objective 'regression'"):
        tiny_config(absolute_adc=True, objective="diffusion")
    with pytest.raises(InputError, match="absolute_adc 1"):
        tiny_config(absolute_adc=1, **REGRESSION)
    with pytest.raises(InputError, match="ADC among 'without'"):
        tiny_config(absolute_adc=True, without=["adc"], **REGRESSION)
    make_trainer(tmp_path, tiny_config(iterations=2, absolute_adc=True, **REGRESSION), "absolute").run()
    path = tmp_path / "absolute" / "model.safetensors"
    with pytest.raises(InputError, match="reads the ADC in absolute units, this run does not"):
        make_trainer(tmp_path, tiny_config(iterations=2, init_weights=str(path), **REGRESSION), "back")
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    for value, message in ((False, "network has 7 inputs"), ("yes", "absolute_adc 'yes'")):
        card["absolute_adc"] = value
        card_path.write_text(json.dumps(card))
        with pytest.raises(ModelFileError, match=message):
            load_model(path)
