"""The diffusion core: network size, samplers against an analytic denoiser, determinism, cancel, objectives."""

import math

import numpy as np
import pytest
import torch

from DCEDiffLib import sample
from DCEDiffLib.diffusion.presets import build_network, network_config
from DCEDiffLib.diffusion.schedules import GAMMA_MIN_TRAIN, INFERENCE_SCHEDULE, TRAIN_SCHEDULE, ancestral_grid, gammas
from DCEDiffLib.diffusion.unet import AttentionBlock
from DCEDiffLib.errors import CancelledError

MU, SIGMA = 0.3, 0.2


def gaussian_eps(y, gamma):
    """The optimal noise predictor for data x0 ~ N(MU, SIGMA²): E[ε | y] in closed form."""
    g = gamma.to(y.dtype).reshape(-1, *([1] * (y.dim() - 1)))
    return torch.sqrt(1 - g) * (y - torch.sqrt(g) * MU) / (g * SIGMA**2 + 1 - g)


def test_paper_preset_has_the_paper_size_and_one_attention_block_at_20x20():
    network = build_network(network_config("paper"))
    assert sum(p.numel() for p in network.parameters()) == 62_640_770
    attention = [m for m in network.modules() if isinstance(m, AttentionBlock)]
    assert len(attention) == 1 and attention[0].heads == 1
    seen = {}
    hook = attention[0].register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 6, 160, 160), torch.tensor([0.5]))
    hook.remove()
    assert seen["shape"][-2:] == (20, 20)
    assert counter.get_total_flops() / 1e9 == pytest.approx(160.9, rel=0.01)


def test_cpu_preset_size_and_overrides():
    assert sum(p.numel() for p in build_network(network_config("cpu")).parameters()) == pytest.approx(3.51e6, rel=0.01)
    narrow = build_network(network_config("cpu", in_channels=5))
    assert narrow.in_channels == 5
    with pytest.raises(ValueError, match="unknown network setting"):
        network_config("cpu", width=3)


def test_network_output_is_zero_initialised_and_shaped_like_the_targets():
    network = build_network(network_config("tiny"))
    out = network(torch.randn(3, 6, 32, 32), torch.rand(3))
    assert out.shape == (3, 2, 32, 32) and torch.count_nonzero(out) == 0


def test_schedules_match_the_paper():
    train, test = gammas(TRAIN_SCHEDULE), gammas(INFERENCE_SCHEDULE)
    assert len(train) == 2000 and len(test) == 1000
    assert GAMMA_MIN_TRAIN == pytest.approx(4.39e-5, rel=0.01)
    assert int((test < GAMMA_MIN_TRAIN).sum()) == 532
    assert len(ancestral_grid(1000)) == 1000 and len(ancestral_grid(1000, skip_below_train_min=True)) == 468


@pytest.mark.parametrize("sampler,steps,std_tolerance", [
    ("dpmpp", 20, 0.10), ("dpmpp", 10, 0.10), ("ddpm", 1000, 0.05), ("ddim", 50, 0.10)])
def test_samplers_reproduce_gaussian_data(sampler, steps, std_tolerance):
    y = sample(gaussian_eps, (20000, 1), sampler=sampler, steps=steps, seed=1, clamp=False)
    assert abs(float(y.mean()) - MU) < 0.01
    assert abs(float(y.std()) / SIGMA - 1.0) < std_tolerance


def test_one_step_x0_gives_the_posterior_mean():
    y = sample(gaussian_eps, (5000, 1), sampler="x0", steps=1, seed=1, clamp=False)
    assert abs(float(y.mean()) - MU) < 0.01 and float(y.std()) < 0.01


def eq11_reference(eps_fn, noise, generator):
    """The paper's eq. 11 transcribed directly over the 1000-step inference schedule."""
    beta = np.linspace(1e-4, 0.09, 1000)
    alpha = 1 - beta
    gamma = np.cumprod(alpha)
    y = noise.clone()
    for t in range(999, -1, -1):
        eps = eps_fn(y, torch.full((y.shape[0],), float(gamma[t])))
        y0 = ((y - math.sqrt(1 - gamma[t]) * eps) / math.sqrt(gamma[t])).clamp(-1, 1)
        gamma_prev = gamma[t - 1] if t > 0 else 1.0
        mean = (math.sqrt(gamma_prev) * beta[t] / (1 - gamma[t])) * y0 + \
               (math.sqrt(alpha[t]) * (1 - gamma_prev) / (1 - gamma[t])) * y
        if t > 0:
            var = beta[t] * (1 - gamma_prev) / (1 - gamma[t])
            y = mean + math.sqrt(var) * torch.randn(y.shape, generator=generator)
        else:
            y = mean
    return y


def test_paper_sampler_matches_a_direct_transcription_of_eq_11():
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(64, 2, generator=generator)
    ours = sample(gaussian_eps, (64, 2), sampler="ddpm", steps=1000, generator=generator, noise=noise)
    g2 = torch.Generator().manual_seed(5)
    torch.randn(64, 2, generator=g2)
    reference = eq11_reference(gaussian_eps, noise, g2)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_dpm_solver_agrees_with_the_diffusers_scheduler_on_the_same_grid():
    """An independent implementation: diffusers' DPMSolverMultistepScheduler (2M, data prediction) stepped over
    our log-SNR grid (given as its sigmas) with the same analytic noise predictor."""
    pytest.importorskip("diffusers")
    from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

    from DCEDiffLib.diffusion.schedules import log_snr_grid

    steps = 12
    levels = log_snr_grid(steps)
    noise = torch.randn(256, 1, generator=torch.Generator().manual_seed(2))
    ours = sample(gaussian_eps, (256, 1), sampler="dpmpp", steps=steps, noise=noise, clamp=False)
    scheduler = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
                                            final_sigmas_type="zero", lower_order_final=True)
    scheduler.sigmas = torch.tensor(np.append(np.sqrt((1 - levels) / levels), 0.0), dtype=torch.float32)
    scheduler.timesteps = torch.arange(steps)
    scheduler.num_inference_steps = steps
    scheduler.model_outputs = [None] * scheduler.config.solver_order
    scheduler.lower_order_nums = 0
    scheduler._step_index = None
    scheduler._begin_index = None
    x = noise.clone()
    for i in range(steps):
        x = scheduler.step(gaussian_eps(x, torch.full((256,), float(levels[i]))), scheduler.timesteps[i], x).prev_sample
    assert torch.allclose(ours, x, atol=2e-3), float((ours - x).abs().max())


def test_ddim_agrees_with_the_diffusers_scheduler_on_the_same_grid():
    """An independent implementation: diffusers' DDIMScheduler (η = 0) whose alphas_cumprod are our log-SNR grid,
    one training timestep per level (index 0 = the cleanest level; the final step goes to γ = 1)."""
    pytest.importorskip("diffusers")
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler

    from DCEDiffLib.diffusion.schedules import log_snr_grid

    steps = 15
    levels = log_snr_grid(steps)  # noisiest first
    noise = torch.randn(256, 1, generator=torch.Generator().manual_seed(4))
    ours = sample(gaussian_eps, (256, 1), sampler="ddim", steps=steps, noise=noise, clamp=False)
    scheduler = DDIMScheduler(num_train_timesteps=steps, clip_sample=False, set_alpha_to_one=True,
                              timestep_spacing="leading", steps_offset=0)
    scheduler.alphas_cumprod = torch.tensor(levels[::-1].copy(), dtype=torch.float64)
    scheduler.set_timesteps(steps)
    assert scheduler.timesteps.tolist() == list(range(steps - 1, -1, -1))
    x = noise.clone().double()
    for i, t in enumerate(scheduler.timesteps):
        eps = gaussian_eps(x, torch.full((256,), float(levels[i]), dtype=torch.float64))
        x = scheduler.step(eps, t, x, eta=0.0).prev_sample
    assert torch.allclose(ours.double(), x, atol=1e-4), float((ours.double() - x).abs().max())


def test_same_seed_same_bits_other_seed_differs_and_chunking_does_not_matter():
    a = sample(gaussian_eps, (8, 2, 4, 4), sampler="ddpm", steps=50, seed=3)
    b = sample(gaussian_eps, (8, 2, 4, 4), sampler="ddpm", steps=50, seed=3)
    c = sample(gaussian_eps, (8, 2, 4, 4), sampler="ddpm", steps=50, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)

    def chunked(y, g):
        return torch.cat([gaussian_eps(y[i:i + 3], g[i:i + 3]) for i in range(0, len(y), 3)])

    d = sample(chunked, (8, 2, 4, 4), sampler="ddpm", steps=50, seed=3)
    assert torch.equal(a, d)


def test_progress_once_per_evaluation_and_cancel_within_one_step():
    seen = []
    sample(gaussian_eps, (4, 1), sampler="dpmpp", steps=7, callback=lambda info: seen.append(info["step"]))
    assert seen == list(range(1, 8))
    calls = []

    def counting(y, g):
        calls.append(1)
        return gaussian_eps(y, g)

    with pytest.raises(CancelledError):
        sample(counting, (4, 1), sampler="ddpm", steps=100, should_cancel=lambda: len(calls) >= 3)
    assert len(calls) == 3


def test_training_gammas_lie_between_consecutive_schedule_levels():
    from DCEDiffLib.diffusion.objectives import sample_training_gammas

    g = sample_training_gammas(10000, torch.Generator().manual_seed(0)).numpy()
    assert g.min() >= GAMMA_MIN_TRAIN and g.max() <= 1.0
    table = gammas(TRAIN_SCHEDULE)
    assert g.min() < table[100] and g.max() > table[1]  # covers the range


def test_diffusion_loss_decreases_on_a_tiny_problem():
    from DCEDiffLib.diffusion.objectives import diffusion_loss

    torch.manual_seed(0)
    network = build_network(network_config("tiny", in_channels=3))
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    cond = torch.rand(8, 1, 16, 16) * 2 - 1
    target = torch.cat([cond, -cond], dim=1)  # learnable from the condition
    generator = torch.Generator().manual_seed(0)
    losses = []
    for step in range(200):
        loss = diffusion_loss(network, cond, target, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-30:]) < 0.6 * np.mean(losses[:30])


@pytest.mark.parametrize("sampler,steps", [("dpmpp", 10), ("ddim", 50), ("ddpm", 200)])
def test_warm_start_from_data_keeps_the_data_distribution(sampler, steps):
    """Started from real data noised to γs (SDEdit), an exact denoiser must return the data distribution."""
    generator = torch.Generator().manual_seed(7)
    start = MU + SIGMA * torch.randn(20000, 1, generator=generator)
    seen = []
    y = sample(gaussian_eps, (20000, 1), sampler=sampler, steps=steps, seed=3, clamp=False, start=start,
               start_gamma=0.02, callback=lambda info: seen.append(info["gamma"]))
    assert len(seen) == steps and seen[0] == pytest.approx(0.02, rel=0.05)
    assert abs(float(y.mean()) - MU) < 0.01
    assert abs(float(y.std()) / SIGMA - 1.0) < 0.10


def test_warm_start_near_the_clean_end_returns_the_start_and_bad_requests_are_refused():
    start = torch.linspace(-0.5, 0.5, 64).reshape(64, 1)
    y = sample(gaussian_eps, (64, 1), sampler="dpmpp", steps=5, seed=0, start=start, start_gamma=0.999)
    assert float((y - start).abs().mean()) < 0.05  # only a little noise was added, so little can change
    with pytest.raises(ValueError, match="both start and start_gamma"):
        sample(gaussian_eps, (64, 1), sampler="dpmpp", steps=5, start=start)
    with pytest.raises(ValueError, match="shape"):
        sample(gaussian_eps, (32, 1), sampler="dpmpp", steps=5, start=start, start_gamma=0.5)
    for bad in (1.5, 0.99995):
        with pytest.raises(ValueError, match="between 0 and"):
            sample(gaussian_eps, (64, 1), sampler="dpmpp", steps=5, start=start, start_gamma=bad)

