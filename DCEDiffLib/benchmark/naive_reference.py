"""The paper's sampling loop written plainly, as a user would write it from the paper: the baseline.

DCE-diff samples like Palette/SR3 (paper eq. 11): ancestral DDPM over the 1000-step test schedule
β_t = linspace(1e-4, 0.09, 1000), α_t = 1 − β_t, γ_t = ∏_{s≤t} α_s. At each step t = 999 … 0 the network sees
``[condition, y_t]`` and γ_t and predicts the noise ε; then

    ŷ_0     = (y_t − √(1 − γ_t) ε) / √γ_t, clamped to [−1, 1]
    y_{t−1} = β_t √γ_{t−1} / (1 − γ_t) · ŷ_0 + (1 − γ_{t−1}) √α_t / (1 − γ_t) · y_t + σ_t z,
    σ_t²    = β_t (1 − γ_{t−1}) / (1 − γ_t),  z ~ N(0, I),  no noise at t = 0 (γ_{−1} = 1).

Without the clamp the mean is exactly eq. 11's 1/√α_t (y_t − β_t/√(1 − γ_t) ε); the clamp and σ_t are those
of the paper's reference code (Palette, ``p_mean_variance``, "fixed small" variance).

Deliberately naive: one slice at a time, float32, NCHW, under ``torch.no_grad`` as the reference code does (no
``inference_mode``, no batching, no channels_last, no bf16, every step of the schedule). It shares nothing with
``DCEDiffLib.diffusion`` (its own schedule, its own update), so agreeing with the project's ``ddpm`` sampler is a
real check of both. Noise can be injected (``noise_fn``) so that both can be fed the same noise sequence.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional, Tuple

import numpy as np
import torch

PAPER_STEPS = 1000
PAPER_BETA_START = 1e-4
PAPER_BETA_END = 0.09

NoiseFn = Callable[[Tuple[int, ...]], torch.Tensor]


def paper_test_schedule(steps: int = PAPER_STEPS, beta_start: float = PAPER_BETA_START,
                        beta_end: float = PAPER_BETA_END) -> dict:
    """β, α, γ and γ_prev (float64 numpy arrays, index t = 0 … steps−1) of the paper's test schedule."""
    betas = np.linspace(beta_start, beta_end, steps, dtype=np.float64)
    alphas = 1.0 - betas
    gammas = np.cumprod(alphas)
    gammas_prev = np.concatenate([[1.0], gammas[:-1]])
    return {"betas": betas, "alphas": alphas, "gammas": gammas, "gammas_prev": gammas_prev}


def seeded_noise(seed: int) -> NoiseFn:
    """A noise source: standard normal float32 tensors drawn in order from one seeded CPU generator."""
    generator = torch.Generator().manual_seed(int(seed))
    return lambda shape: torch.randn(shape, generator=generator, dtype=torch.float32)


def naive_ddpm_slice(network: Callable, condition: torch.Tensor, noise_fn: Optional[NoiseFn] = None, seed: int = 0,
                     steps: int = PAPER_STEPS, max_iterations: Optional[int] = None,
                     target_channels: int = 2) -> torch.Tensor:
    """Sample one slice with the paper's loop; returns y (target_channels, H, W), float32.

    ``network(x, gamma)`` takes x = cat([condition, y_t]) of shape (1, C + target_channels, H, W) and gamma of
    shape (1,) and returns ε (1, target_channels, H, W). ``noise_fn(shape)`` gives first the starting noise
    y_T and then each step's z (in that order, one call per step with t > 0); default: :func:`seeded_noise`.
    ``max_iterations`` stops after that many network evaluations (to time a part of the loop; the result is
    then not a sample).
    """
    schedule = paper_test_schedule(steps)
    noise_fn = noise_fn or seeded_noise(seed)
    cond = condition.to(torch.float32).unsqueeze(0)
    shape = (1, target_channels) + tuple(cond.shape[2:])
    y = noise_fn(shape).to(cond.device)
    done = 0
    with torch.no_grad():
        for t in reversed(range(steps)):
            if max_iterations is not None and done >= max_iterations:
                break
            beta, alpha = float(schedule["betas"][t]), float(schedule["alphas"][t])
            gamma, gamma_prev = float(schedule["gammas"][t]), float(schedule["gammas_prev"][t])
            eps = network(torch.cat([cond, y], dim=1), torch.tensor([gamma], dtype=torch.float32, device=cond.device))
            y0 = ((y - math.sqrt(1.0 - gamma) * eps) / math.sqrt(gamma)).clamp(-1.0, 1.0)
            mean = (beta * math.sqrt(gamma_prev) / (1.0 - gamma)) * y0 + \
                   ((1.0 - gamma_prev) * math.sqrt(alpha) / (1.0 - gamma)) * y
            if t > 0:
                sigma = math.sqrt(beta * (1.0 - gamma_prev) / (1.0 - gamma))
                y = mean + sigma * noise_fn(shape).to(cond.device)
            else:
                y = mean
            done += 1
    return y[0]


def naive_ddpm_volume(network: Callable, conditions: np.ndarray, seed: int = 0, steps: int = PAPER_STEPS,
                      slices: Optional[list] = None) -> np.ndarray:
    """The paper's loop over the slices of a (C, K, H, W) condition volume, one slice after another.

    Slice k uses ``seeded_noise(seed + k)``. Returns (2, len(slices), H, W) float32 (all K slices by default).
    """
    conditions = torch.from_numpy(np.ascontiguousarray(conditions, dtype=np.float32))
    slices = list(range(conditions.shape[1])) if slices is None else list(slices)
    out = [naive_ddpm_slice(network, conditions[:, k], seed=seed + k, steps=steps).numpy() for k in slices]
    return np.stack(out, axis=1)


def time_naive_loop(network: Callable, conditions: np.ndarray, slices: list, iterations: int,
                    total_slices: int = 16, total_steps: int = PAPER_STEPS, seed: int = 0,
                    device: str = "cpu") -> dict:
    """Time ``iterations`` network evaluations of the loop on each of ``slices`` and extrapolate to
    ``total_slices`` × ``total_steps``; every step costs the same (one batch-1 forward and a few element-wise
    operations), so the extrapolation is linear.

    Returns seconds measured, per slice-step, the extrapolated total, and ``extrapolated`` (True unless the
    whole loop ran on all slices).
    """
    if iterations < 1 or not slices:
        raise ValueError("time_naive_loop: needs at least one slice and one iteration")
    iterations = min(int(iterations), total_steps)
    from DCEDiffLib.benchmark.timing import synchronize

    conditions = torch.from_numpy(np.ascontiguousarray(conditions, dtype=np.float32)).to(device)
    # One untimed evaluation first, as for every other measurement (oneDNN picks its kernels on the first call).
    naive_ddpm_slice(network, conditions[:, slices[0]], seed=seed, steps=total_steps, max_iterations=1)
    start = time.perf_counter()
    for k in slices:
        naive_ddpm_slice(network, conditions[:, k], seed=seed + k, steps=total_steps, max_iterations=iterations)
    synchronize(device)
    measured = time.perf_counter() - start
    per_slice_step = measured / (len(slices) * iterations)
    return {"measured_s": round(measured, 4), "measured_slices": len(slices), "measured_steps": iterations,
            "seconds_per_slice_step": round(per_slice_step, 6),
            "total_slices": int(total_slices), "total_steps": int(total_steps),
            "seconds": round(per_slice_step * total_slices * total_steps, 2),
            "extrapolated": not (len(slices) >= total_slices and iterations >= total_steps)}
