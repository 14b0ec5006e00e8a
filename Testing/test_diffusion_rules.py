"""Rules of the diffusion core that follow from the math, checked on analytic cases (a mutation audit's survivors):
the forward process of the training loss and of the warm start, continuous training levels, the respaced ancestral
grid, one-step grids, DPM-Solver++'s second order on a non-uniform grid, DDIM's clamped trajectory, the U-Net's
noise-level conditioning and identity-initialised blocks, the regression's γ = 1, and the residual model's clamps,
start level, temperature and sample order."""

import math

import numpy as np
import pytest
import torch

from DCEDiffLib import sample
from DCEDiffLib.diffusion import samplers
from DCEDiffLib.diffusion.objectives import diffusion_loss
from DCEDiffLib.diffusion.presets import build_network, network_config
from DCEDiffLib.diffusion.schedules import (GAMMA_MAX, GAMMA_MIN_TRAIN, INFERENCE_SCHEDULE, ancestral_grid,
                                            gamma_from_log_snr, gammas, log_snr)
from DCEDiffLib.diffusion.unet import AttentionBlock, ResBlock

from test_diffusion import MU, SIGMA, gaussian_eps
from test_residual import ConstantNetwork


class ExactNoise(torch.nn.Module):
    """Knows the clean target, so it recovers the noise exactly from ỹ = √γ·y0 + √(1−γ)·ε and the γ it is told."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = target

    def forward(self, x, gamma):
        g = gamma.double()[:, None, None, None]
        noisy = x[:, -self.target.shape[1]:].double()
        return ((noisy - g.sqrt() * self.target.double()) / (1 - g).sqrt()).float()


def test_the_training_loss_noises_the_target_as_algorithm_1_says():
    """An exact noise predictor has zero loss only if the network input is √γ·y0 + √(1−γ)·ε at the γ it is told."""
    generator = torch.Generator().manual_seed(0)
    cond = torch.rand(64, 1, 4, 4, generator=generator) * 2 - 1
    target = torch.rand(64, 2, 4, 4, generator=generator) * 2 - 1
    loss = diffusion_loss(ExactNoise(target), cond, target, torch.Generator().manual_seed(1))
    assert float(loss) < 1e-3
    weighted = diffusion_loss(ExactNoise(target), cond, target, torch.Generator().manual_seed(1),
                              weights=torch.rand(64, 4, 4, generator=generator) + 0.5)
    assert float(weighted) < 1e-3
    # control: a predictor of zeros pays the noise's variance, 1
    zero = diffusion_loss(lambda x, g: torch.zeros_like(target), cond, target, torch.Generator().manual_seed(1))
    assert float(zero) == pytest.approx(1.0, abs=0.1)


def test_training_noise_levels_are_continuous_between_the_schedule_levels():
    """Palette/SR3 draw γ uniformly between γ(t−1) and γ(t), not the schedule's levels themselves: the network is
    conditioned on γ, and the fast samplers ask for levels between the training ones."""
    from DCEDiffLib.diffusion.objectives import sample_training_gammas
    from DCEDiffLib.diffusion.schedules import TRAIN_SCHEDULE

    g = sample_training_gammas(4000, torch.Generator().manual_seed(0)).numpy()
    table = gammas(TRAIN_SCHEDULE)
    assert len(np.unique(g)) == len(g)  # 1999 intervals: levels alone would repeat many times in 4000 draws
    assert not np.isin(g, table).any()
    # where γ lies between its two neighbouring levels is uniform: a quarter of the draws in each quarter
    t = np.searchsorted(-table, -g)  # table[t - 1] ≥ g > table[t] (the table decreases)
    position = (table[t - 1] - g) / (table[t - 1] - table[t])
    assert np.histogram(position, bins=4, range=(0, 1))[0].min() > 800


class Recording(torch.nn.Module):
    """Records its input and returns zeros shaped like two targets."""

    out_channels = 2

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, gamma):
        self.calls.append((x.clone(), gamma.clone()))
        return torch.zeros(x.shape[0], 2, *x.shape[2:])


def test_a_regression_network_is_told_there_is_no_noise():
    """predict_regression: inputs [conditions, zeros] at γ = 1, the clean end (shipped regression and mean networks
    were trained so; another γ would feed them a noise level they never saw)."""
    from DCEDiffLib.diffusion.objectives import predict_regression

    network = Recording()
    cond = torch.rand(3, 4, 8, 8) * 2 - 1
    predict_regression(network, cond)
    (x, gamma), = network.calls
    assert torch.equal(gamma, torch.ones(3))
    assert torch.equal(x[:, :4], cond) and x.shape[1] == 6 and not x[:, 4:].any()


@pytest.mark.parametrize("sampler,steps", [("dpmpp", 5), ("ddim", 5), ("ddpm", 20), ("x0", 1)])
def test_a_warm_start_begins_at_the_forward_process_of_the_start(sampler, steps):
    """The first evaluation sees ỹ = √γ·start + √(1−γ)·noise at its own level γ (SDEdit: the forward process)."""
    start = torch.linspace(-0.8, 0.8, 32).reshape(32, 1)
    noise = torch.randn(32, 1, generator=torch.Generator().manual_seed(1))
    seen = []

    def recording(y, g):
        seen.append((y.clone(), float(g[0])))
        return gaussian_eps(y, g)

    sample(recording, (32, 1), sampler=sampler, steps=steps, noise=noise, start=start, start_gamma=0.3, clamp=False)
    y, gamma = seen[0]
    assert 0.3 <= gamma < 0.35
    assert torch.allclose(y, math.sqrt(gamma) * start + math.sqrt(1 - gamma) * noise, atol=1e-6)


@pytest.mark.parametrize("steps", [2, 7, 50, 999])
@pytest.mark.parametrize("skip", [False, True])
def test_a_respaced_ancestral_grid_keeps_both_ends_of_the_schedule(steps, skip):
    """Respacing takes levels of the inference schedule, noisiest first, and always ends at its cleanest level (the
    last step of eq. 11 goes from there to the data)."""
    full = gammas(INFERENCE_SCHEDULE)[::-1]
    if skip:
        full = full[full >= GAMMA_MIN_TRAIN]
    levels = ancestral_grid(steps, skip_below_train_min=skip)
    assert len(levels) == min(steps, len(full))  # never more levels than the schedule has
    assert levels[0] == full[0] and levels[-1] == full[-1] == gammas(INFERENCE_SCHEDULE)[0]
    assert np.all(np.diff(levels) > 0) and set(levels.tolist()) <= set(full.tolist())


@pytest.mark.parametrize("sampler", ["dpmpp", "ddim"])
def test_one_fast_step_is_the_one_step_posterior_mean(sampler):
    """A one-level grid is the noisiest training level: one step of DPM-Solver++ or DDIM from pure noise is the x0
    sampler (the network's y0 estimate there), not an estimate at the clean end from pure noise."""
    noise = torch.randn(256, 1, generator=torch.Generator().manual_seed(3))
    seen = []
    one = sample(gaussian_eps, (256, 1), sampler=sampler, steps=1, noise=noise, clamp=False,
                 callback=lambda info: seen.append(info["gamma"]))
    x0 = sample(gaussian_eps, (256, 1), sampler="x0", steps=1, noise=noise, clamp=False)
    assert seen == [pytest.approx(GAMMA_MIN_TRAIN)] and torch.allclose(one, x0)


def _exact_flow_output(noise: torch.Tensor, gamma_start: float, gamma_end: float) -> torch.Tensor:
    """The probability-flow ODE of data N(MU, SIGMA²) keeps z = (y − √γ·MU)/√(γσ² + 1 − γ); the sampler returns
    E[y0 | y] at its last level."""
    z = (noise - math.sqrt(gamma_start) * MU) / math.sqrt(gamma_start * SIGMA ** 2 + 1 - gamma_start)
    return MU + SIGMA ** 2 * math.sqrt(gamma_end) * z / math.sqrt(gamma_end * SIGMA ** 2 + 1 - gamma_end)


def test_dpm_solver_is_second_order_on_a_non_uniform_grid(monkeypatch):
    """DPM-Solver++(2M) extrapolates y0 with the ratio of consecutive log-SNR steps; on a uniform grid the ratio is
    1 whichever way it is taken, so the grid here is not uniform. Against the exact flow its error stays far below
    first-order DDIM's on the same grid."""

    def uneven(steps, gamma_min=GAMMA_MIN_TRAIN, gamma_max=GAMMA_MAX):
        u = np.sqrt(np.linspace(0.0, 1.0, steps))
        return gamma_from_log_snr(log_snr(gamma_min) + (log_snr(gamma_max) - log_snr(gamma_min)) * u)

    monkeypatch.setattr(samplers, "log_snr_grid", uneven)
    noise = torch.randn(512, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = _exact_flow_output(noise, GAMMA_MIN_TRAIN, GAMMA_MAX)
    errors = {}
    for sampler in ("dpmpp", "ddim"):
        y = sample(gaussian_eps, (512, 1), sampler=sampler, steps=20, noise=noise, clamp=False, dtype=torch.float64)
        errors[sampler] = float((y - exact).abs().max())
    assert errors["ddim"] < 0.1  # the reference itself: first order converges to it
    assert errors["dpmpp"] < 0.02 * errors["ddim"], errors


@pytest.mark.parametrize("bounds", ["images", "tensors"])
def test_ddim_with_a_clamp_moves_along_the_trajectory_of_the_clamped_estimate(bounds):
    """Data all at 1.5 (outside [-1, 1]): the clamped estimate is 1, and the ε that goes with it must be the one
    that makes ỹ = √γ·1 + √(1−γ)·ε, so deterministic DDIM keeps that ε, the noise direction, at every level."""
    c = 1.5
    clamp = True if bounds == "images" else (torch.full((16, 1), -1.0), torch.full((16, 1), 1.0))
    seen = []

    def point_mass(y, g):
        seen.append((y.clone(), float(g[0])))
        gg = g.to(y.dtype)[:, None]
        return (y - gg.sqrt() * c) / (1 - gg).sqrt()

    out = sample(point_mass, (16, 1), sampler="ddim", steps=6, seed=2, clamp=clamp)
    assert torch.allclose(out, torch.ones_like(out))
    directions = [(y - math.sqrt(g)) / math.sqrt(1 - g) for y, g in seen]
    # y's float32 rounding (~1e-6) grows by 1/√(1−γ) = 100 at the last level: 1.07e-4 there on every CPU tried, which
    # passed the 1e-4 this had by allclose's rtol alone; an ε left inconsistent with the clamped estimate: 3.3e-3 to 8.5
    for later in directions[1:]:
        assert torch.allclose(later, directions[0], atol=1e-3)


def _randomised_tiny_network(in_channels: int = 3) -> torch.nn.Module:
    """The tiny U-Net with its zero-initialised layers given random weights (so that its output says something)."""
    torch.manual_seed(0)
    network = build_network(network_config("tiny", in_channels=in_channels)).eval()
    with torch.no_grad():
        for parameter in network.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.1)
    return network


def test_each_item_of_a_batch_is_denoised_at_its_own_noise_level():
    """γ conditions the network per item: a batch with two levels gives each item what it gets alone, and the level
    changes the output."""
    network = _randomised_tiny_network()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    gamma = torch.tensor([0.05, 0.9])
    with torch.no_grad():
        both = network(x, gamma)
        alone = torch.cat([network(x[i:i + 1], gamma[i:i + 1]) for i in range(2)])
        other_level = network(x, gamma.flip(0))
    # Batched and single convolutions take different kernels on some CPUs (1.4e-5 apart on a Xeon): the tolerance
    # leaves room for that and stays far below the 0.2 that a level applied to the wrong item makes.
    assert torch.allclose(both, alone, atol=1e-4)
    assert (both - other_level).abs().amax(dim=(1, 2, 3)).min() > 1e-3


def test_a_new_residual_block_is_its_skip_path():
    """Zero-initialised output convolutions make a residual block start as the identity (when its width is kept)."""
    torch.manual_seed(0)
    block = ResBlock(8, 16, dropout=0.0).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.equal(block(x, torch.randn(2, 16)), x)


def test_a_new_attention_block_is_the_identity():
    """Its zero-initialised projection makes a new attention block add nothing to its input (the residual path)."""
    torch.manual_seed(0)
    block = AttentionBlock(8).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert torch.equal(block(x), x)


@pytest.mark.parametrize("value", [5.0, -5.0])
def test_the_residual_models_mean_and_output_stay_in_the_image_range(value):
    """μ and μ + s·r are images on the targets' scale: clamped to [-1, 1] whatever the networks say."""
    from DCEDiffLib.diffusion.residual import ResidualDiffusionModel

    tiny = network_config("tiny", in_channels=6, out_channels=2)
    model = ResidualDiffusionModel(tiny, network_config("tiny", in_channels=8, out_channels=2),
                                   ["t2w", "pd", "adc", "t1pre"], 3.0, 0.2, "image")
    model.mean_network = ConstantNetwork(value)   # a mean far outside the image range
    cond = torch.rand(2, 4, 8, 8) * 2 - 1
    with torch.no_grad():
        mean = model.mean(cond)
    assert torch.equal(mean, torch.full_like(mean, math.copysign(1.0, value)))
    inside = torch.zeros(2, 2, 8, 8)
    assert torch.equal(model.combine(inside, torch.full_like(inside, 10 * value)), mean)
    small = torch.full_like(inside, 0.1)  # inside the range: untouched
    assert torch.allclose(model.combine(inside, small), 0.2 * small)


class PointMassPerSlice(torch.nn.Module):
    """The exact ε for data that is, in each row, the constant given by that row's first condition channel."""

    def forward(self, x, gamma):
        g = gamma.float()[:, None, None, None]
        return (x[:, 4:] - g.sqrt() * x[:, :1]) / (1 - g).sqrt()


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_several_samples_of_a_volume_stay_with_their_own_slices(tmp_path, sampler):
    """The sampler batch holds every slice × sample; the samples of slice k must be slice k's (same mean, and no
    spread where the data has none), whatever order the rows take inside."""
    from DCEDiffLib.diffusion.model_files import LoadedModel
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.training.model_card import make_model_card

    config = network_config("tiny", in_channels=6, out_channels=2)
    card = make_model_card(config, "diffusion", ["t2w", "pd", "adc", "t1pre"], "tiny", {"data": "none (test)"})
    model = LoadedModel(PointMassPerSlice(), card, tmp_path / "analytic.safetensors")
    levels = np.linspace(-0.6, 0.6, 4, dtype=np.float32)  # slice k's data: the constant levels[k]
    conditions = np.zeros((4, 4, 8, 8), np.float32)
    conditions[0] = levels[:, None, None]
    result = synthesize_volume(model, conditions, sampler=sampler, steps=4, samples=3, seed=0, device="cpu",
                               precision="fp32", warm_start="none", batch_size=5)
    expected = np.broadcast_to(levels[None, :, None, None], result.mean.shape)
    assert np.allclose(result.mean, expected, atol=1e-3)
    assert float(result.std.max()) < 1e-3


class ConstantNoise(torch.nn.Module):
    """A residual network that predicts ε ≡ c: its y0 estimate runs far past any bound when c is large."""

    def __init__(self, c: float, seen: list):
        super().__init__()
        self.c, self.seen = c, seen

    def forward(self, x, gamma):
        self.seen.append((x[:, -2:].clone(), float(gamma[0])))
        return torch.full_like(x[:, -2:], self.c)


@pytest.mark.parametrize("sampler", ["x0", "dpmpp"])
@pytest.mark.parametrize("c, bound", [(-50.0, 1.0), (50.0, -1.0)])
def test_a_runaway_residual_is_clamped_to_the_image_bound_not_inside_it(tmp_path, sampler, c, bound):
    """The residual estimate is clamped so that μ + s·r̂ stays in [-1, 1] (bounds (±1 − μ)/s in the residual's
    units): a residual that runs away upwards ends exactly at the image's top, downwards at its bottom."""
    from DCEDiffLib.diffusion.synthesis import synthesize_volume

    from test_residual import _residual_model

    model = _residual_model(tmp_path, scale=0.2)
    model.network.residual_network = ConstantNoise(c, [])
    conditions = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 2, 8, 8)).astype(np.float32)
    result = synthesize_volume(model, conditions, sampler=sampler, steps=2, seed=0, device="cpu", precision="fp32")
    assert np.allclose(result.mean, bound, atol=1e-5)


def test_a_residual_warm_start_begins_from_unit_noise(tmp_path):
    """The residual has unit scale, so its noised marginal at the start level is N(0, 1): the first residual input
    has unit variance (not √(1 − γs), which starting at zero with unscaled noise would give)."""
    from DCEDiffLib.diffusion.synthesis import synthesize_volume

    from test_residual import _residual_model

    model = _residual_model(tmp_path, scale=0.2)
    seen = []
    model.network.residual_network = ConstantNoise(0.0, seen)
    conditions = np.zeros((4, 4, 32, 32), np.float32)
    synthesize_volume(model, conditions, sampler="dpmpp", steps=2, samples=2, seed=0, device="cpu",
                      precision="fp32", warm_start=0.5, batch_size=8)
    first = torch.cat([y for y, g in seen if g == seen[0][1]])
    assert seen[0][1] == pytest.approx(0.5)
    assert first.numel() == 2 * 4 * 2 * 32 * 32 and abs(float(first.std()) - 1.0) < 0.03


@pytest.mark.parametrize("sampler, expected", [("dpmpp", 0.02), ("ddim", 0.02), ("ddpm", None), ("x0", None)])
def test_auto_warm_start_is_for_the_fast_samplers_only(sampler, expected):
    """'auto' starts DPM-Solver++ and DDIM from the T1-pre; the paper's ancestral sampler and x0 start from noise."""
    from DCEDiffLib.diffusion.synthesis import resolve_warm_start

    assert resolve_warm_start(sampler, "auto") == expected
    assert resolve_warm_start(sampler, "none") is None and resolve_warm_start(sampler, 0.3) == 0.3


@pytest.mark.parametrize("sampling, expected", [({"residual_start": 0.3}, 0.3), ({"residual_start": None}, None),
                                                ({}, 0.5)])
def test_a_residual_model_starts_where_its_card_says(tmp_path, sampling, expected):
    """sampling.residual_start (chosen on validation patients) is the residual's 'auto' start; null is pure noise;
    without it, the engine's default 0.5."""
    from DCEDiffLib.diffusion.synthesis import synthesize_volume

    from test_residual import _residual_model

    model = _residual_model(tmp_path)
    model.card["sampling"] = dict(sampling)
    conditions = np.zeros((4, 1, 16, 16), np.float32)
    result = synthesize_volume(model, conditions, sampler="dpmpp", steps=1, device="cpu", precision="fp32")
    assert result.warm_start == expected


def test_the_residual_temperature_scales_the_residual_not_the_mean(tmp_path):
    """μ + s·(t·r): with residuals of (almost) no spread every sample is μ, whatever the temperature t."""
    from DCEDiffLib.diffusion.synthesis import synthesize_volume

    from test_residual import GaussianResidualDenoiser, _residual_model

    model = _residual_model(tmp_path)
    model.network.residual_network = GaussianResidualDenoiser(1e-6)
    model.network.temperature = 0.5
    conditions = np.random.default_rng(0).uniform(0.2, 0.8, (4, 2, 8, 8)).astype(np.float32)
    result = synthesize_volume(model, conditions, steps=2, device="cpu", precision="fp32")
    with torch.no_grad():
        mean = model.network.mean(torch.from_numpy(conditions.transpose(1, 0, 2, 3))).numpy().transpose(1, 0, 2, 3)
    assert np.abs(mean).max() > 0.1  # a mean that a factor t would visibly change
    assert np.allclose(result.mean, mean, atol=1e-4)
