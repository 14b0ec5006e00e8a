"""MR signal equations of the simulated sequences, and the ADC fit a scanner performs.

- T2-weighted turbo spin echo: S = PD·(1 − e^{−TR/T1})·e^{−TE/T2}
- spoiled gradient echo (VIBE/FLASH, also the ProstateX 'PD' tfl3d): S = M0·sinα(1 − E1)/(1 − cosα·E1), E1 = e^{−TR·R1}
- diffusion weighting with kurtosis: S(b) = S0·exp(−b·D + (b·D)²·K/6) (Jensen & Helpern 2005)
- ADC: the log-linear least-squares slope over the acquired b-values, as scanners compute it.
Times in seconds unless a name says otherwise; b in s/mm², D and ADC in mm²/s.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def tse_signal(pd, t1_s, t2_s, tr_s: float, te_s: float):
    """Turbo spin-echo magnitude (long echo train, full refocusing): PD·(1 − e^{−TR/T1})·e^{−TE/T2}."""
    return pd * (1.0 - np.exp(-tr_s / t1_s)) * np.exp(-te_s / t2_s)


def spgr_signal(m0, r1_per_s, tr_s: float, flip_deg, flip_scale=1.0):
    """Spoiled gradient-echo steady state: M0·sinα(1 − E1)/(1 − cosα·E1); ``flip_scale`` is the local B1 factor."""
    a = np.deg2rad(flip_deg) * flip_scale
    e1 = np.exp(-tr_s * np.asarray(r1_per_s))
    return m0 * np.sin(a) * (1.0 - e1) / (1.0 - np.cos(a) * e1)


def kurtosis_signal(s0, b: float, d_mm2_s, kurtosis):
    """Diffusion-weighted signal with the kurtosis representation (b ≤ ~2000 s/mm² where it is valid)."""
    bd = b * np.asarray(d_mm2_s)
    return s0 * np.exp(-bd + bd * bd * np.asarray(kurtosis) / 6.0)


def kurtosis_curvature(b_values: Sequence[float]) -> float:
    """c(b) such that the log-linear ADC over ``b_values`` of a kurtosis signal is D − K·D²·c (exact)."""
    b = np.asarray(b_values, dtype=np.float64)
    dev = b - b.mean()
    return float(np.sum(dev * b * b) / (6.0 * np.sum(dev * dev)))


def apparent_adc(d_mm2_s, kurtosis, b_values: Sequence[float]):
    """Noise-free ADC a scanner reports for tissue (D, K) acquired at ``b_values``."""
    d = np.asarray(d_mm2_s)
    return d - np.asarray(kurtosis) * d * d * kurtosis_curvature(b_values)


def diffusivity_from_adc(adc_mm2_s, kurtosis, b_values: Sequence[float]):
    """Inverse of :func:`apparent_adc`: the D that gives ``adc_mm2_s`` at ``b_values`` (smaller root)."""
    adc = np.asarray(adc_mm2_s, dtype=np.float64)
    kc = np.asarray(kurtosis, dtype=np.float64) * kurtosis_curvature(b_values)
    disc = np.sqrt(np.maximum(1.0 - 4.0 * kc * adc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(kc > 1e-12, (1.0 - disc) / (2.0 * np.where(kc > 1e-12, kc, 1.0)), adc)
    return d


def fit_adc(signals: Sequence[np.ndarray], b_values: Sequence[float], floor: float = 1e-3) -> np.ndarray:
    """Log-linear least-squares ADC [mm²/s] per voxel from diffusion-weighted magnitude images."""
    b = np.asarray(b_values, dtype=np.float64)
    weights = (b - b.mean()) / np.sum((b - b.mean()) ** 2)
    adc = np.zeros(np.shape(signals[0]), dtype=np.float32)
    for w, s in zip(weights, signals):
        adc -= np.float32(w) * np.log(np.maximum(s, floor)).astype(np.float32)
    return adc
