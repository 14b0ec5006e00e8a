"""Samplers as plain functions over a noise-level grid (which levels: ``schedules``; how to step: here).

Every sampler takes ``eps_fn(y, gamma)`` — the predicted noise for a batch ``y`` at noise levels ``gamma`` (B,) —
so it can be tested against an analytic denoiser without any network:

- ``ddpm``: the paper's ancestral sampler (Palette ``p_sample``; DCE-diff Algorithm 2 / eq. 11) over the
  1000-step inference schedule, predicted y0 clamped to [-1, 1], fixed small posterior variance.
- ``ddim``: deterministic DDIM (η = 0; Song et al. 2021) on a grid uniform in log-SNR.
- ``dpmpp``: DPM-Solver++(2M) (Lu et al. 2022), data prediction with clamped y0, grid uniform in log-SNR,
  first order at the first and the last step. The default sampler (steps: ``defaults.DEFAULT_STEPS``).
- ``x0``: one network evaluation at the noisiest training level, returning the predicted y0 (a regression-style
  baseline: the posterior mean).

All noise comes from one generator seeded once, drawn with the full batch shape in a fixed order, so results are
bit-identical for a seed and do not depend on how ``eps_fn`` chunks the batch.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from DCEDiffLib.diffusion.schedules import GAMMA_MAX, GAMMA_MIN_TRAIN, ancestral_grid, log_snr_grid
from DCEDiffLib.progress import check_cancel

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SAMPLERS = ("ddpm", "ddim", "dpmpp", "x0")


class _Evaluator:
    """Calls ``eps_fn`` and derives y0; counts evaluations, checks cancel, reports progress."""

    def __init__(self, eps_fn: EpsFn, batch: int, total: int, clamp, callback, should_cancel, device):
        self.eps_fn, self.batch, self.total = eps_fn, batch, total
        self.clamp, self.callback, self.should_cancel = clamp, callback, should_cancel
        self.device = device
        self.count = 0

    def __call__(self, y: torch.Tensor, gamma: float):
        """(eps, y0) at noise level ``gamma``; eps is made consistent with a clamped y0."""
        check_cancel(self.should_cancel)
        g = torch.full((self.batch,), gamma, dtype=torch.float32, device=self.device)
        eps = self.eps_fn(y, g).to(y.dtype)
        y0 = (y - math.sqrt(1.0 - gamma) * eps) / math.sqrt(gamma)
        if isinstance(self.clamp, tuple):  # per-element bounds (e.g. a residual whose sum with a mean is an image)
            y0 = torch.maximum(torch.minimum(y0, self.clamp[1]), self.clamp[0])
            eps = (y - math.sqrt(gamma) * y0) / math.sqrt(1.0 - gamma)
        elif self.clamp:
            y0 = y0.clamp(-1.0, 1.0)
            eps = (y - math.sqrt(gamma) * y0) / math.sqrt(1.0 - gamma)
        self.count += 1
        if self.callback is not None:
            self.callback({"step": self.count, "total": self.total, "gamma": gamma, "x0": y0})
        return eps, y0


def _ddpm(evaluate: _Evaluator, y: torch.Tensor, levels, generator) -> torch.Tensor:
    """Ancestral sampling, eq. 11: y_{t-1} = posterior mean(y0̂, y_t) + σ_t z, no noise at the last step."""
    for index, gamma in enumerate(levels):
        gamma_prev = float(levels[index + 1]) if index + 1 < len(levels) else 1.0
        gamma = float(gamma)
        alpha = gamma / gamma_prev
        beta = 1.0 - alpha
        _, y0 = evaluate(y, gamma)
        coef_y0 = beta * math.sqrt(gamma_prev) / (1.0 - gamma)
        coef_y = (1.0 - gamma_prev) * math.sqrt(alpha) / (1.0 - gamma)
        mean = coef_y0 * y0 + coef_y * y
        if index + 1 < len(levels):
            variance = beta * (1.0 - gamma_prev) / (1.0 - gamma)
            std = math.exp(0.5 * math.log(max(variance, 1e-20)))
            y = mean + std * torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        else:
            y = mean
    return y


def _ddim(evaluate: _Evaluator, y: torch.Tensor, levels) -> torch.Tensor:
    """DDIM, η = 0: y_next = √γ_next·y0̂ + √(1−γ_next)·ε̂; the last level returns y0̂."""
    y0 = y
    for index, gamma in enumerate(levels):
        eps, y0 = evaluate(y, float(gamma))
        if index + 1 < len(levels):
            nxt = float(levels[index + 1])
            y = math.sqrt(nxt) * y0 + math.sqrt(1.0 - nxt) * eps
    return y0


def _dpmpp_2m(evaluate: _Evaluator, y: torch.Tensor, levels) -> torch.Tensor:
    """DPM-Solver++(2M) in data prediction, with λ = log(α/σ), α = √γ, σ = √(1−γ)."""
    lam = [0.5 * (math.log(float(g)) - math.log1p(-float(g))) for g in levels]
    previous_y0, previous_h = None, None
    y0 = y
    for index, gamma in enumerate(levels):
        _, y0 = evaluate(y, float(gamma))
        if index + 1 == len(levels):
            break
        gamma_next = float(levels[index + 1])
        h = lam[index + 1] - lam[index]
        sigma_ratio = math.sqrt((1.0 - gamma_next) / (1.0 - float(gamma)))
        alpha_next = math.sqrt(gamma_next)
        if previous_y0 is None:
            d = y0
        else:
            r = previous_h / h
            d = (1.0 + 1.0 / (2.0 * r)) * y0 - (1.0 / (2.0 * r)) * previous_y0
        y = sigma_ratio * y - alpha_next * math.expm1(-h) * d
        previous_y0, previous_h = y0, h
    return y0


def sampler_levels(sampler: str, steps: int, skip_below_train_min: bool = False,
                   start_gamma: Optional[float] = None):
    """The noise levels (noisiest first) a sampler evaluates the network at; its length is the NFE.

    ``start_gamma`` (a warm start, see :func:`sample`) begins the grid at that noise level instead of pure noise.
    """
    if start_gamma is not None and not 0.0 < float(start_gamma) < 1.0:
        raise ValueError(f"start_gamma {start_gamma}: expected a noise level between 0 and 1")
    if sampler == "ddpm":
        levels = ancestral_grid(1000 if start_gamma is not None else steps, skip_below_train_min)
        if start_gamma is not None:
            levels = levels[levels >= float(start_gamma)]
            if steps < len(levels):
                levels = levels[np.round(np.linspace(0, len(levels) - 1, steps)).astype(int)]
        return levels
    if sampler in ("ddim", "dpmpp"):
        if start_gamma is not None and float(start_gamma) >= GAMMA_MAX:
            raise ValueError(f"start_gamma {start_gamma}: expected a noise level between 0 and {GAMMA_MAX} (the "
                             "cleanest level of the grid)")
        return log_snr_grid(steps, gamma_min=GAMMA_MIN_TRAIN if start_gamma is None else float(start_gamma))
    if sampler == "x0":
        return [GAMMA_MIN_TRAIN if start_gamma is None else float(start_gamma)]
    raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")


def sample(eps_fn: EpsFn, shape: Sequence[int], *, sampler: str = "dpmpp", steps: int = 20, seed: int = 0,
           generator: Optional[torch.Generator] = None, clamp=True, callback=None,
           should_cancel: Optional[Callable[[], bool]] = None, noise: Optional[torch.Tensor] = None,
           dtype: torch.dtype = torch.float32, device: Union[str, torch.device] = "cpu",
           skip_below_train_min: bool = False, start: Optional[torch.Tensor] = None,
           start_gamma: Optional[float] = None) -> torch.Tensor:
    """Draw y0 of ``shape`` with ``sampler``; see the module docstring.

    ``steps`` is the number of network evaluations (ddpm with 1000 steps is the paper's inference schedule; fewer
    respace it). ``callback(info)`` runs after every evaluation with keys step, total, gamma, x0;
    ``should_cancel()`` is checked before every evaluation (raises ``CancelledError``). ``noise`` replaces the
    initial Gaussian draw. ``clamp``: True clamps each y0 estimate to [-1, 1] (images), False not at all, a pair
    of tensors (low, high) of ``shape`` clamps element-wise (a residual whose sum with a mean must stay an image).

    Warm start (SDEdit-style): with ``start`` (an estimate of y0 of ``shape``) and ``start_gamma``, sampling begins
    at ỹ = √γs·start + √(1−γs)·noise and runs the sampler's grid from γs onwards, so the coarse intensities come
    from the estimate and the network refines the rest.
    """
    if (start is None) != (start_gamma is None):
        raise ValueError("a warm start needs both start and start_gamma")
    levels = sampler_levels(sampler, steps, skip_below_train_min, start_gamma)
    device = torch.device(device)
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    if noise is None:
        y = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    else:
        y = noise.to(device=device, dtype=dtype).clone()
    if start is not None:
        start = start.to(device=device, dtype=dtype)
        if tuple(start.shape) != tuple(shape):
            raise ValueError(f"warm start of shape {tuple(start.shape)}; expected {tuple(shape)}")
        y = math.sqrt(float(levels[0])) * start + math.sqrt(1.0 - float(levels[0])) * y
    evaluate = _Evaluator(eps_fn, int(shape[0]), len(levels), clamp, callback, should_cancel, device)
    if sampler == "ddpm":
        return _ddpm(evaluate, y, levels, generator)
    if sampler == "ddim":
        return _ddim(evaluate, y, levels)
    if sampler == "dpmpp":
        return _dpmpp_2m(evaluate, y, levels)
    _, y0 = evaluate(y, float(levels[0]))
    return y0
