"""Noise schedules (Palette/DCE-diff defaults) and the noise-level grids the samplers step through.

γ is the cumulative product of (1 − β) ("alpha-bar"): a noisy target is ỹ = √γ·y0 + √(1−γ)·ε. The network is
conditioned on γ itself, so sampling may use another schedule than training (the paper does).
"""

from __future__ import annotations

import numpy as np

# Training: linear β from 1e-6 to 0.01 over 2000 steps; inference: linear β from 1e-4 to 0.09 over 1000 steps.
TRAIN_SCHEDULE = {"kind": "linear", "beta_start": 1e-6, "beta_end": 0.01, "steps": 2000}
INFERENCE_SCHEDULE = {"kind": "linear", "beta_start": 1e-4, "beta_end": 0.09, "steps": 1000}
# The cleanest level the fast samplers end at (logSNR ≈ 9.2, as the last step of the inference schedule).
GAMMA_MAX = 0.9999


def betas(schedule: dict) -> np.ndarray:
    """β_t of a schedule description (only "linear" is used by DCE-diff)."""
    if schedule.get("kind") != "linear":
        raise ValueError(f"unknown schedule kind {schedule.get('kind')!r}; expected 'linear'")
    return np.linspace(schedule["beta_start"], schedule["beta_end"], int(schedule["steps"]), dtype=np.float64)


def gammas(schedule: dict) -> np.ndarray:
    """γ_t = ∏(1 − β) for t = 1..T (decreasing: γ_1 ≈ 1 is almost clean, γ_T is almost pure noise)."""
    return np.cumprod(1.0 - betas(schedule))


GAMMA_MIN_TRAIN = float(gammas(TRAIN_SCHEDULE)[-1])  # ≈ 4.39e-5: the noisiest level seen in training


def log_snr(gamma):
    """log(γ / (1 − γ))."""
    gamma = np.asarray(gamma, dtype=np.float64)
    return np.log(gamma) - np.log1p(-gamma)


def gamma_from_log_snr(lam):
    """Inverse of :func:`log_snr` (the logistic sigmoid)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(lam, dtype=np.float64)))


def log_snr_grid(steps: int, gamma_min: float = GAMMA_MIN_TRAIN, gamma_max: float = GAMMA_MAX) -> np.ndarray:
    """``steps`` noise levels from ``gamma_min`` (noisy) to ``gamma_max`` (clean), uniform in log-SNR.

    With the linear schedules, uniform-t spacing leaves few steps where the image forms; uniform log-SNR is what
    makes DPM-Solver++ accurate in 10–20 steps (see docs/diffusion.md).
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if steps == 1:
        return np.array([gamma_min])
    return gamma_from_log_snr(np.linspace(log_snr(gamma_min), log_snr(gamma_max), steps))


def ancestral_grid(steps: int, skip_below_train_min: bool = False) -> np.ndarray:
    """Noise levels of the paper's ancestral sampler, noisiest first.

    ``steps`` = 1000 is the inference schedule itself; fewer steps take evenly spaced levels of it (respacing).
    ``skip_below_train_min`` drops the levels noisier than anything seen in training (532 of the 1000).
    """
    levels = gammas(INFERENCE_SCHEDULE)[::-1]  # noisiest first
    if skip_below_train_min:
        levels = levels[levels >= GAMMA_MIN_TRAIN]
    if steps < len(levels):
        index = np.round(np.linspace(0, len(levels) - 1, steps)).astype(int)
        levels = levels[index]
    return levels
