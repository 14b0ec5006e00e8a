"""Intensity randomization of training slices (SynthSeg/SynthSR-style, on the normalised working-grid slices).

A phantom has one contrast per tissue; real scanners and protocols do not. Randomizing what the model sees makes
it rely on structure more than on the exact intensities of the phantom:

- ``gamma``: each of T2W and PD gets its own contrast curve u ↦ u^γ on [0, 1] (γ log-uniform in [1/g, g]);
- ``bias``: a smooth multiplicative field (low-order polynomial over the slice, amplitude up to ``bias``) per
  series. T1-pre and the DCE targets get *the same* field (the same coil and sequence), so the enhancement, which
  is relative to the T1-pre, is unchanged; T2W and PD get their own;
- ``adc_scale``: the ADC times one factor in [1 − a, 1 + a] (b-value choices and vendors);
- ``noise``: Gaussian noise of std up to ``noise`` (normalised units) on every condition;
- ``coil``: a local receive coil (endorectal or a close surface element): 1 + a·exp(−distance/L) around a random
  point, a up to ``coil``; like ``bias``, one field shared by T1-pre and the DCE, its own for T2W and PD;
- ``drop_pd``: the probability that the PD channel is missing (set to ``modalities.MISSING_INPUT_VALUE``), so a
  model also works for protocols without PD (modality dropout).

Multiplicative changes act on intensities (normalised value + 1, since −1 is the low percentile, close to zero
signal). Every draw comes from the batch's own generator, so batches stay a function of (seed, step, rank).
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from DCEDiffLib.modalities import MISSING_INPUT_VALUE

DEFAULTS = {"gamma": 0.0, "bias": 0.0, "adc_scale": 0.0, "noise": 0.0, "coil": 0.0, "drop_pd": 0.0}


def check_augmentation(settings: Dict[str, float]) -> Dict[str, float]:
    """The settings with defaults filled in; ValueError for an unknown key or a value out of range."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"augment: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    out = dict(DEFAULTS, **settings)
    limits = {"gamma": 1.0, "bias": 0.5, "adc_scale": 0.5, "noise": 0.2, "coil": 4.0, "drop_pd": 0.5}
    for key, value in out.items():
        if not isinstance(value, (int, float)) or not 0 <= float(value) <= limits[key]:
            raise ValueError(f"augment.{key} = {value!r}; expected a number in [0, {limits[key]}]")
    return out


def _bias_field(rng: np.random.Generator, shape, amplitude: float) -> np.ndarray:
    """exp of a random 2nd-order polynomial over [-1, 1]², scaled so it stays within about ±amplitude."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0], dtype=np.float32), np.linspace(-1, 1, shape[1], dtype=np.float32),
                       indexing="ij")
    terms = np.stack([x, y, x * y, x * x - 1 / 3, y * y - 1 / 3])
    coefficients = rng.normal(0.0, 1.0, len(terms)).astype(np.float32)
    field = np.tensordot(coefficients, terms, axes=1)
    field /= max(float(np.abs(field).max()), 1e-6)
    return np.exp(np.float32(np.log1p(amplitude) * rng.uniform(0, 1)) * field).astype(np.float32)


def _coil_field(rng: np.random.Generator, shape, amplitude: float) -> np.ndarray:
    """1 + a·exp(−r/L): the near-field gain of a local coil centred at a random point of the middle of the slice."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0], dtype=np.float32), np.linspace(-1, 1, shape[1], dtype=np.float32),
                       indexing="ij")
    cy, cx = rng.uniform(-0.6, 0.6, 2)
    length = rng.uniform(0.15, 0.5)
    gain = amplitude * rng.uniform(0, 1)
    return (1 + gain * np.exp(-np.hypot(y - cy, x - cx) / length)).astype(np.float32)


def augment_slice(rng: np.random.Generator, cond: np.ndarray, target: np.ndarray, channels: Sequence[str],
                  settings: Dict[str, float]):
    """Randomize one (C, H, W) condition slice and its (2, H, W) target slice; returns new arrays."""
    cond = np.array(cond, dtype=np.float32, copy=True)
    target = np.array(target, dtype=np.float32, copy=True)
    index = {name: i for i, name in enumerate(channels)}
    gamma, bias, adc_scale, noise, coil = (settings[k] for k in ("gamma", "bias", "adc_scale", "noise", "coil"))
    # a local coil, when drawn, reaches every series of the exam (each through its own receive profile)
    coil_present = bool(coil) and rng.uniform() < 0.5
    for name in ("t2w", "pd"):
        if name not in index:
            continue
        i = index[name]
        if gamma:
            g = float(np.exp(rng.uniform(-np.log1p(gamma), np.log1p(gamma))))
            unit = np.clip((cond[i] + 1) / 2, 0, 1)
            cond[i] = 2 * unit ** g - 1
        if bias:
            cond[i] = (cond[i] + 1) * _bias_field(rng, cond.shape[1:], bias) - 1
        if coil_present:
            cond[i] = (cond[i] + 1) * _coil_field(rng, cond.shape[1:], coil) - 1
    if (bias or coil_present) and "t1pre" in index:  # one field for T1-pre and the DCE: the enhancement stays
        field = _bias_field(rng, cond.shape[1:], bias) if bias else np.ones(cond.shape[1:], np.float32)
        if coil_present:
            field = field * _coil_field(rng, cond.shape[1:], coil)
        cond[index["t1pre"]] = (cond[index["t1pre"]] + 1) * field - 1
        target = (target + 1) * field - 1
    if adc_scale and "adc" in index:
        cond[index["adc"]] = (cond[index["adc"]] + 1) * np.float32(rng.uniform(1 - adc_scale, 1 + adc_scale)) - 1
    if noise:
        cond += rng.normal(0.0, rng.uniform(0, noise), cond.shape).astype(np.float32)
    if settings["drop_pd"] and "pd" in index and rng.uniform() < settings["drop_pd"]:
        cond[index["pd"]] = MISSING_INPUT_VALUE
    return cond, target
