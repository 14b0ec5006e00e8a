"""Residual diffusion over a regression mean, the enhancement and relative parameterizations and region-weighted
losses."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from DCEDiffLib.diffusion.model_files import load_model, save_model
from DCEDiffLib.diffusion.objectives import diffusion_loss, regression_loss
from DCEDiffLib.diffusion.presets import network_config
from DCEDiffLib.diffusion.residual import (RELATIVE_FLOOR, RELATIVE_REFERENCE, ResidualDiffusionModel,
                                          parameterization_terms, predict_mean, zero_enhancement)
from DCEDiffLib.diffusion.synthesis import synthesize_volume
from DCEDiffLib.errors import InputError, ModelFileError
from DCEDiffLib.training.batches import SliceBatches, region_weight_map
from DCEDiffLib.training.model_card import make_model_card
from DCEDiffLib.training import distributed
from DCEDiffLib.training.trainer import Trainer

from test_training import make_trainer, tiny_case, tiny_config

CONDITIONS = ["t2w", "pd", "adc", "t1pre"]


class ZeroNetwork(torch.nn.Module):
    """A regression network that predicts exactly zero (a stand-in with a known answer, not a mock of a part)."""

    out_channels = 2

    def forward(self, x, gamma):
        return torch.zeros(x.shape[0], 2, *x.shape[2:])


def test_zero_enhancement_maps_t1pre_onto_the_targets_scale():
    cond = torch.linspace(-1, 1, 4 * 3 * 3).reshape(1, 4, 3, 3)
    cond[:, 3] = torch.linspace(-1, 1, 9).reshape(3, 3)
    base = zero_enhancement(cond, CONDITIONS, 3.0)
    t1 = cond[:, 3]
    assert base.shape == (1, 2, 3, 3)
    assert torch.allclose(base[:, 0], (t1 + 1) / 3 - 1) and torch.allclose(base[:, 1], base[:, 0])
    # T1-pre's -1..1 becomes -1..-1/3 (target_scale: [-1, -1 + 2/f])
    assert math.isclose(float(base.min()), -1.0, abs_tol=1e-6) and math.isclose(float(base.max()), -1 / 3, abs_tol=1e-6)
    with pytest.raises(ValueError, match="T1-pre"):
        zero_enhancement(cond[:, :3], CONDITIONS[:3], 3.0)


def test_enhancement_parameterization_adds_zero_enhancement_to_the_network_output():
    cond = torch.rand(2, 4, 8, 8) * 2 - 1
    image = predict_mean(ZeroNetwork(), cond, "image", CONDITIONS, 3.0)
    enhancement = predict_mean(ZeroNetwork(), cond, "enhancement", CONDITIONS, 3.0)
    assert torch.equal(image, torch.zeros_like(image))
    assert torch.allclose(enhancement, zero_enhancement(cond, CONDITIONS, 3.0))
    with pytest.raises(ValueError):
        predict_mean(ZeroNetwork(), cond, "velocity", CONDITIONS, 3.0)


class ConstantNetwork(torch.nn.Module):
    """A regression network whose output is one known constant (a stand-in with a known answer)."""

    out_channels = 2

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x, gamma):
        return torch.full((x.shape[0], 2, *x.shape[2:]), self.value)


def test_relative_parameterization_scales_the_output_by_the_t1pre_signal():
    """Analytic case: y0 = zero + (zero + 1 + floor) / (reference + floor) · output, so a constant output is a
    constant relative enhancement wherever the signal is well above the floor, and 0 stays no enhancement."""
    cond = torch.rand(2, 4, 8, 8) * 2 - 1
    zero = zero_enhancement(cond, CONDITIONS, 3.0)
    assert torch.allclose(predict_mean(ZeroNetwork(), cond, "relative", CONDITIONS, 3.0), zero)
    y = predict_mean(ConstantNetwork(0.6), cond, "relative", CONDITIONS, 3.0)
    expected = zero + (zero + 1 + RELATIVE_FLOOR) / (RELATIVE_REFERENCE + RELATIVE_FLOOR) * 0.6
    assert torch.allclose(y, expected, atol=1e-6)
    # at the reference level the relative and the additive parameterizations agree (a shipped additive mean is a
    # sensible start for fine-tuning)
    cond[:, 3] = RELATIVE_REFERENCE * 3.0 - 1.0  # zero + 1 = reference on the targets' scale
    assert torch.allclose(zero_enhancement(cond, CONDITIONS, 3.0) + 1, torch.full((2, 2, 8, 8), RELATIVE_REFERENCE))
    assert torch.allclose(predict_mean(ConstantNetwork(0.2), cond, "relative", CONDITIONS, 3.0),
                          predict_mean(ConstantNetwork(0.2), cond, "enhancement", CONDITIONS, 3.0), atol=1e-6)
    with pytest.raises(ValueError, match="T1-pre"):
        parameterization_terms(cond[:, :3], "relative", CONDITIONS[:3], 3.0)


def test_relative_parameterization_makes_one_tissue_one_output_whatever_its_t1pre_level():
    """The point of it: a tissue with relative enhancement ρ needs (nearly) the same network output whether its
    pre-contrast signal sits low or high on the normalised scale (fat-suppressed or not, a receive bias); the
    additive parameterization needs an output that grows with the signal."""
    rho = 1.0
    signal = torch.tensor([0.12, 0.25, 0.5])  # zero + 1 over a fourfold range (the validation glands: 0.13–0.62)
    cond = torch.zeros(1, 4, 1, 3)
    cond[0, 3, 0] = signal * 3.0 - 1.0
    target = (zero_enhancement(cond, CONDITIONS, 3.0) + 1) * (1 + rho) - 1
    needed = {}
    for parameterization in ("enhancement", "relative"):
        base, gain = parameterization_terms(cond, parameterization, CONDITIONS, 3.0)
        output = (target - base) / (gain if gain is not None else 1.0)
        needed[parameterization] = float(output.max() / output.min())
    assert math.isclose(needed["enhancement"], 0.5 / 0.12, rel_tol=1e-4)
    assert needed["relative"] < 1.35  # only the floor keeps it from 1


def test_weighted_losses_equal_the_plain_ones_with_unit_weights_and_follow_the_weights():
    torch.manual_seed(0)
    cond, target = torch.rand(2, 4, 8, 8), torch.rand(2, 2, 8, 8)
    net = ZeroNetwork()
    plain = regression_loss(net, cond, target)
    assert torch.allclose(plain, regression_loss(net, cond, target, weights=torch.ones(2, 8, 8)))
    assert torch.allclose(plain, target.abs().mean())
    # all the weight on one pixel: the loss is that pixel's error
    w = torch.zeros(2, 8, 8)
    w[0, 3, 4] = 1.0
    assert torch.allclose(regression_loss(net, cond, target, weights=w), target[0, :, 3, 4].abs().mean())
    g = torch.Generator().manual_seed(1)
    eps_net = ZeroNetwork()
    loss_w = diffusion_loss(eps_net, cond, target, generator=g, weights=torch.ones(2, 8, 8))
    g = torch.Generator().manual_seed(1)
    assert torch.allclose(loss_w, diffusion_loss(eps_net, cond, target, generator=g))


def test_region_weight_map_urine_is_the_bladder_without_its_wall():
    case = tiny_case("p", 0, size=32, slices=2)
    case.grid = dict(case.grid, spacing=[1.0, 1.0, 50.0])          # 1 mm in-plane; thick slices
    case.labels = np.zeros((2, 32, 32), np.int16)
    case.labels[:, 4:28, 4:28] = 4                                  # a 24 mm bladder
    case.legend = {"bladder": 4, "fat": 1}
    weights = region_weight_map(case, {"urine": 2.0})
    # deeper than 6 mm from the edge (rows 4–27: depth 1 mm at row 4, 7 mm at row 10): rows and columns 10–21
    assert weights[0, 16, 16] == 3.0 and weights[0, 6, 16] == 1.0 and weights[0, 0, 0] == 1.0
    assert weights.sum() == 2 * 32 * 32 + 2 * 12 * 12 * 2.0
    case.legend = {"fat": 1}                                        # no bladder: no urine, nothing added
    assert region_weight_map(case, {"urine": 2.0}).sum() == 2 * 32 * 32


def test_region_weight_map_adds_weight_inside_named_labels_only():
    case = tiny_case("p", 0, size=8, slices=2)
    case.labels = np.zeros((2, 8, 8), np.int16)
    case.labels[0, 2:4, 2:4] = 7
    case.labels[1, 5, 5] = 9
    case.legend = {"peripheral_zone": 7, "lesion": 9, "fat": 1}
    weights = region_weight_map(case, {"peripheral_zone": 1.0, "lesion": 3.0, "not_a_label": 5.0})
    assert weights[0, 2, 2] == 2.0 and weights[1, 5, 5] == 4.0 and weights[0, 0, 0] == 1.0
    assert weights.sum() == 2 * 8 * 8 + 4 * 1.0 + 3.0
    assert np.array_equal(region_weight_map(case, {}), np.ones((2, 8, 8), np.float32))
    batches = SliceBatches([case], 2, 8, 0, region_weights={"lesion": 3.0}, flip_left_right=False)
    cond, target, w = batches.weighted_batch(0)
    c2, t2 = batches.batch(0)
    assert torch.equal(cond, c2) and torch.equal(target, t2) and float(w.max()) == 4.0


class GaussianResidualDenoiser(torch.nn.Module):
    """The exact ε-prediction for residuals r ~ N(0, σ²) per pixel: ε̂ = √(1−γ)·y / (γσ² + 1 − γ)."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x, gamma):
        y = x[:, -2:]
        g = gamma.float()[:, None, None, None]
        return (1 - g).sqrt() * y / (g * self.sigma ** 2 + 1 - g)


def _residual_model(tmp_path, sigma=None, scale=0.2):
    from DCEDiffLib.training.model_card import make_model_card

    mean_cfg = network_config("tiny", in_channels=6, out_channels=2)
    res_cfg = network_config("tiny", in_channels=8, out_channels=2)
    torch.manual_seed(0)
    model = ResidualDiffusionModel(mean_cfg, res_cfg, CONDITIONS, 3.0, scale, "enhancement")
    card = make_model_card(res_cfg, "residual", CONDITIONS, "tiny", {"data": "none (test)"},
                           residual={"mean_network": {"preset": "tiny", "config": mean_cfg,
                                                      "parameterization": "enhancement"},
                                     "residual_scale": scale})
    path = tmp_path / "residual.safetensors"
    save_model(model, card, path)
    loaded = load_model(path)
    if sigma is not None:
        loaded.network.residual_network = GaussianResidualDenoiser(sigma)
    return loaded


@pytest.mark.parametrize("warm_start", ["auto", "none"])
def test_residual_sampling_matches_the_analytic_gaussian_case(tmp_path, warm_start):
    """With the exact denoiser of N(0, σ²) residuals, 32 samples average to μ and spread s·σ around it, whether the
    sampler starts from unit noise at the default start level or from pure noise at the noisiest level."""
    sigma, scale = 1.0, 0.1
    model = _residual_model(tmp_path, sigma=sigma, scale=scale)
    rng = np.random.default_rng(0)
    conditions = rng.uniform(-0.6, 0.6, (4, 2, 16, 16)).astype(np.float32)
    conditions[3] = rng.uniform(0.4, 1.0, (2, 16, 16))  # bright T1-pre: the mean stays away from the clamp at -1
    # fp32: the check is against an fp32 reference (auto may pick bf16 on a CPU with native bf16)
    result = synthesize_volume(model, conditions, sampler="dpmpp", steps=10, samples=32, seed=3, device="cpu",
                               precision="fp32", warm_start=warm_start)
    with torch.no_grad():
        mean = model.network.mean(torch.from_numpy(conditions.transpose(1, 0, 2, 3))).numpy().transpose(1, 0, 2, 3)
    inside = np.abs(mean) < 1 - 4 * scale * sigma  # away from the clamp at ±1
    assert inside.mean() > 0.5
    assert np.abs(result.mean - mean)[inside].mean() < 0.25 * scale * sigma
    assert abs(float(result.std[inside].mean()) - scale * sigma) < 0.15 * scale * sigma
    assert result.nfe == 11  # one mean pass + 10 residual steps
    # a residual temperature of 0.5 halves the spread around the same mean
    model.network.temperature = 0.5
    cooled = synthesize_volume(model, conditions, sampler="dpmpp", steps=10, samples=32, seed=3, device="cpu",
                               precision="fp32", warm_start=warm_start)
    assert np.allclose(cooled.std[inside].mean(), 0.5 * result.std[inside].mean(), rtol=0.05)
    model.network.temperature = 1.0
    # σ → 0: every sample is the mean itself
    (tmp_path / "z").mkdir()
    zero = _residual_model(tmp_path / "z", sigma=1e-6, scale=scale)
    flat = synthesize_volume(zero, conditions, steps=5, samples=2, seed=0, device="cpu", precision="fp32")
    assert np.allclose(flat.mean, mean, atol=1e-4) and float(flat.std.max()) < 1e-4


def test_residual_model_file_round_trip_and_refusals(tmp_path):
    model = _residual_model(tmp_path)
    assert model.card["objective"] == "residual" and model.card["residual_scale"] == 0.2
    assert isinstance(model.network, ResidualDiffusionModel)
    card_path = tmp_path / "residual.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    foreign = dict(card["mean_network"], parameterization="velocity")
    for field, value, message in (("residual_scale", -1, "residual_scale"), ("mean_network", None, "mean_network"),
                                  ("mean_network", foreign, "mean network parameterization 'velocity'")):
        bad = dict(card, **{field: value})
        card_path.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(ModelFileError, match=message):
            load_model(tmp_path / "residual.safetensors")


def test_mean_flip_average_makes_the_mean_mirror_symmetric_and_is_read_from_the_card(tmp_path):
    torch.manual_seed(3)
    model = _residual_model(tmp_path)
    card_path = tmp_path / "residual.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    network = model.network
    assert network.mean_flip_average is False  # a card without the field keeps the single pass
    for parameter in network.mean_network.parameters():  # the output layer starts at zero: give it something to say
        parameter.data.normal_(0.0, 0.05)
    cond = torch.rand(2, 4, 16, 16) * 2 - 1
    with torch.no_grad():
        single = network.mean(cond)
        # a randomly initialised network is not mirror symmetric: the single pass is not equivariant
        assert not torch.allclose(network.mean(cond.flip(-1)), single.flip(-1), atol=1e-5)
        network.mean_flip_average = True
        averaged = network.mean(cond)
        assert torch.allclose(network.mean(cond.flip(-1)), averaged.flip(-1), atol=1e-5)
        raw = predict_mean(network.mean_network, cond, "enhancement", CONDITIONS, 3.0)
        mirrored = predict_mean(network.mean_network, cond.flip(-1), "enhancement", CONDITIONS, 3.0).flip(-1)
    assert torch.allclose(averaged, (0.5 * (raw + mirrored)).clamp(-1, 1), atol=1e-5)
    card_path.write_text(json.dumps(dict(card, sampling={"mean_flip_average": True})), encoding="utf-8")
    assert load_model(tmp_path / "residual.safetensors").network.mean_flip_average is True
    card_path.write_text(json.dumps(dict(card, sampling={"mean_flip_average": "yes"})), encoding="utf-8")
    with pytest.raises(ModelFileError, match="mean_flip_average 'yes'; expected true or false"):
        load_model(tmp_path / "residual.safetensors")


@pytest.mark.parametrize("parameterization", ["enhancement", "relative"])
def test_residual_training_run_exports_one_loadable_model(tmp_path, parameterization):
    mean_trainer = make_trainer(tmp_path, tiny_config(iterations=4, objective="regression",
                                                      parameterization=parameterization), "mean")
    mean_trainer.run()
    mean_card = json.loads((tmp_path / "mean" / "model.json").read_text(encoding="utf-8"))
    assert mean_card["parameterization"] == parameterization
    config = tiny_config(iterations=4, objective="residual", mean_model=str(tmp_path / "mean" / "model.safetensors"))
    trainer = make_trainer(tmp_path, config, "residual")
    assert 0 < trainer.residual_scale < 2
    trainer.run()
    loaded = load_model(tmp_path / "residual" / "model.safetensors")
    assert loaded.card["objective"] == "residual" and loaded.card["architecture"]["config"]["in_channels"] == 8
    # the frozen mean network is carried over unchanged
    for name, tensor in mean_trainer.ema.shadow.items():
        assert torch.equal(loaded.network.mean_network.state_dict()[name], tensor), name
    result = synthesize_volume(loaded, tiny_case("q", 9, size=16, slices=2).conditions, steps=2, device="cpu")
    assert result.mean.shape == (2, 2, 16, 16) and np.isfinite(result.mean).all()


def test_augmentation_keeps_the_enhancement_relative_to_t1pre_and_stays_reproducible():
    from DCEDiffLib.training.augmentation import augment_slice, check_augmentation

    rng = np.random.default_rng(0)
    cond = rng.uniform(-1, 1, (4, 24, 24)).astype(np.float32)
    target = np.clip(cond[3:4].repeat(2, 0) + 0.3, -1, 1)
    settings = check_augmentation({"gamma": 0.4, "bias": 0.3, "adc_scale": 0.2})
    new_cond, new_target = augment_slice(np.random.default_rng(5), cond, target, CONDITIONS, settings)
    again = augment_slice(np.random.default_rng(5), cond, target, CONDITIONS, settings)
    assert np.array_equal(new_cond, again[0]) and np.array_equal(new_target, again[1])
    assert not np.allclose(new_cond[0], cond[0]) and not np.allclose(new_cond[3], cond[3])
    # T1-pre and targets share one multiplicative field: (target + 1) / (t1pre + 1) is unchanged
    field = (new_cond[3] + 1) / (cond[3] + 1)
    assert np.allclose((new_target + 1), (target + 1) * field, atol=1e-4)
    assert 0.7 < float(field.min()) and float(field.max()) < 1.35
    # the ADC is scaled by one factor
    adc_ratio = (new_cond[2] + 1) / (cond[2] + 1)
    assert np.allclose(adc_ratio, adc_ratio.flat[0], atol=1e-4) and 0.8 <= adc_ratio.flat[0] <= 1.2
    with pytest.raises(ValueError, match="unknown"):
        check_augmentation({"rotation": 1})
    with pytest.raises(ValueError, match="bias"):
        check_augmentation({"bias": 3})


def test_local_coil_field_is_shared_by_t1pre_and_targets_and_peaks_near_its_centre():
    from DCEDiffLib.training.augmentation import augment_slice, check_augmentation

    rng = np.random.default_rng(1)
    cond = rng.uniform(-0.5, 0.5, (4, 32, 32)).astype(np.float32)
    target = np.clip(cond[3:4].repeat(2, 0) + 0.2, -1, 1)
    settings = check_augmentation({"coil": 3.0})
    gains = []
    for seed in range(12):
        new_cond, new_target = augment_slice(np.random.default_rng(seed), cond, target, CONDITIONS, settings)
        field = (new_cond[3] + 1) / (cond[3] + 1)
        # the enhancement relative to T1-pre is unchanged by the coil
        assert np.allclose(new_target + 1, (target + 1) * field, atol=1e-4)
        assert float(field.min()) >= 1 - 1e-5 and float(field.max()) <= 4.0 + 1e-4
        assert np.array_equal(new_cond[2], cond[2])  # the ADC is a ratio of signals: no coil gain
        gains.append(float(field.max()))
    # about half of the draws have a coil, and those are far from flat
    assert sum(g > 1.05 for g in gains) >= 2 and sum(g < 1.0001 for g in gains) >= 2
    with pytest.raises(ValueError, match="coil"):
        check_augmentation({"coil": 9})


def test_pd_dropout_sets_the_missing_value_at_the_requested_rate():
    from DCEDiffLib.modalities import MISSING_INPUT_VALUE
    from DCEDiffLib.training.augmentation import augment_slice, check_augmentation

    cond = np.random.default_rng(2).uniform(-1, 1, (4, 16, 16)).astype(np.float32)
    target = cond[3:4].repeat(2, 0)
    settings = check_augmentation({"drop_pd": 0.3})
    dropped = 0
    for seed in range(400):
        new_cond, new_target = augment_slice(np.random.default_rng(seed), cond, target, CONDITIONS, settings)
        if np.all(new_cond[1] == MISSING_INPUT_VALUE):
            dropped += 1
            assert np.array_equal(new_cond[[0, 2, 3]], cond[[0, 2, 3]]) and np.array_equal(new_target, target)
        else:
            assert np.array_equal(new_cond, cond)
    assert 90 <= dropped <= 150  # 0.3 of 400 = 120
    with pytest.raises(ValueError, match="drop_pd"):
        check_augmentation({"drop_pd": 0.9})


def test_init_weights_starts_a_run_from_a_trained_model_and_refuses_a_different_one(tmp_path):
    """Fine-tuning without the run's checkpoint: the new run's network starts equal to the model file's weights
    (regression, and the residual network of a residual model); a model of another objective is refused."""
    base = dict(objective="regression", parameterization="enhancement")
    first = make_trainer(tmp_path, tiny_config(iterations=3, **base), "mean")
    first.run()
    mean_path = str(tmp_path / "mean" / "model.safetensors")
    exported = load_model(mean_path).network.state_dict()
    fresh = make_trainer(tmp_path, tiny_config(iterations=3, seed=5, **base), "fresh")
    tuned = make_trainer(tmp_path, tiny_config(iterations=3, seed=5, init_weights=mean_path, **base), "tuned")
    differs = [name for name, tensor in exported.items() if not torch.equal(fresh.network.state_dict()[name], tensor)]
    assert differs, "a fresh run with another seed should not already hold the trained weights"
    for name, tensor in exported.items():
        assert torch.equal(tuned.network.state_dict()[name], tensor), name
        assert torch.equal(tuned.ema.shadow[name], tensor), name  # the EMA starts there too

    residual_config = tiny_config(iterations=3, objective="residual", mean_model=mean_path)
    make_trainer(tmp_path, residual_config, "residual").run()
    residual_path = str(tmp_path / "residual" / "model.safetensors")
    trained = load_model(residual_path).network.residual_network.state_dict()
    again = make_trainer(tmp_path, dict(residual_config, seed=7, init_weights=residual_path), "residual2")
    for name, tensor in trained.items():
        assert torch.equal(again.network.state_dict()[name], tensor), name
    assert "sampling" not in again.model_card({})  # the source card had no sampling settings: none invented
    # a source card with sampling settings (chosen on validation): the fine-tuned card keeps them, saying whence
    card_path = Path(residual_path).with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["sampling"] = {"residual_start": 0.5, "residual_temperature": 0.25, "chosen_on": "validation"}
    card_path.write_text(json.dumps(card), encoding="utf-8")
    tuned_residual = make_trainer(tmp_path, dict(residual_config, seed=7, init_weights=residual_path), "residual3")
    tuned_residual.run()
    sampling = load_model(str(tmp_path / "residual3" / "model.safetensors")).card["sampling"]
    assert sampling["residual_temperature"] == 0.25 and sampling["residual_start"] == 0.5
    assert "carried over from init_weights" in sampling["chosen_on"] and "validation" in sampling["chosen_on"]

    with pytest.raises(InputError, match="init_weights .*objective 'residual'"):
        make_trainer(tmp_path, tiny_config(iterations=3, init_weights=residual_path, **base), "wrong")


@pytest.mark.parametrize("start", [0.0, 1.0])
def test_a_residual_start_at_either_end_of_the_noise_scale_is_refused(tmp_path, start):
    """sampling.residual_start is 'a noise level in (0, 1) or null': γ = 0 is pure noise (that is what null says;
    the warm start's log-SNR is then infinite) and γ = 1 is no noise at all (the sampler would return the mean and
    never sample). Both ends are refused at load time, like the other sampling fields; 0.5 loads."""
    import torch

    from DCEDiffLib.diffusion.model_files import load_model, save_model
    from DCEDiffLib.diffusion.presets import network_config
    from DCEDiffLib.diffusion.residual import ResidualDiffusionModel
    from DCEDiffLib.errors import ModelFileError
    from DCEDiffLib.training.model_card import make_model_card

    mean_cfg = network_config("tiny", in_channels=6, out_channels=2)
    res_cfg = network_config("tiny", in_channels=8, out_channels=2)
    torch.manual_seed(0)
    model = ResidualDiffusionModel(mean_cfg, res_cfg, ["t2w", "pd", "adc", "t1pre"], 3.0, 0.2, "enhancement")
    card = make_model_card(res_cfg, "residual", ["t2w", "pd", "adc", "t1pre"], "tiny", {"data": "none (test)"},
                           residual={"mean_network": {"preset": "tiny", "config": mean_cfg,
                                                      "parameterization": "enhancement"}, "residual_scale": 0.2})
    path = tmp_path / "residual.safetensors"
    save_model(model, card, path)
    card_path = path.with_suffix(".json")
    written = json.loads(card_path.read_text(encoding="utf-8"))
    card_path.write_text(json.dumps(dict(written, sampling={"residual_start": 0.5})), encoding="utf-8")
    load_model(path)
    card_path.write_text(json.dumps(dict(written, sampling={"residual_start": start})), encoding="utf-8")
    with pytest.raises(ModelFileError, match="residual_start"):
        load_model(path)
