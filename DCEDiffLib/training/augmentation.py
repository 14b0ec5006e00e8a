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
- ``centre_dark``: the receive profile of a pelvic phased array: the grid's centre (the prostate) darker than its
  edges by a factor up to 1 + ``centre_dark``, stronger front–back than left–right, drawn in working-grid
  coordinates (the crop's place in the grid is passed in). Real PD series show the gland at 0.63–0.75 of the fat
  where the phantom has 0.89–0.99 (docs/model_quality.md, eighth step). One field for T1-pre and the DCE, its own
  for T2W and PD;
- ``fat_gain``: fat (the label map's fat, borders softened over ~2 pixels) up to 1 + ``fat_gain`` times brighter.
  On the real ProstateX PD series fat stands at 1.46 and 2.12 × muscle and the gland at 0.76 and 0.58 of the fat,
  where the phantom has fat 1.3 × muscle and the gland at 0.89–0.99 of the fat (docs/model_quality.md, eighth step);
  a brighter fat pushes the rest of a T1-pre down the percentile scale. One gain for T1-pre and the DCE (fat does
  not enhance, so the pre and post signal scale together), its own for T2W and PD;
- ``t1_level``: in half of the slices, the T1-pre and the DCE targets times one factor drawn uniformly in
  [1 − ``t1_level``, 1] (normalised value + 1): the whole exam sits lower on its normalised scale, as a real
  non-fat-suppressed gradient echo does when its range is set by bright fat (the central gland at 0.10 of the
  range on the real exams' stand-ins, at 0.154 and above in every phantom exam; docs/ood.md). The relative
  enhancement is unchanged, so the model learns that a lower T1-pre means a smaller step;
- ``drop_pd``: the probability that the PD channel is missing (set to ``modalities.MISSING_INPUT_VALUE``), so a
  model also works for protocols without PD (modality dropout).

Multiplicative changes act on intensities (normalised value + 1, since −1 is the low percentile, close to zero
signal). Every draw comes from the batch's own generator, so batches stay a function of (seed, step, rank).
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from DCEDiffLib.modalities import MISSING_INPUT_VALUE

DEFAULTS = {"gamma": 0.0, "bias": 0.0, "adc_scale": 0.0, "noise": 0.0, "coil": 0.0, "drop_pd": 0.0, "centre_dark": 0.0,
            "fat_gain": 0.0, "t1_level": 0.0}


def check_augmentation(settings: Dict[str, float]) -> Dict[str, float]:
    """The settings with defaults filled in; ValueError for an unknown key or a value out of range."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"augment: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    out = dict(DEFAULTS, **settings)
    limits = {"gamma": 1.0, "bias": 0.5, "adc_scale": 0.5, "noise": 0.2, "coil": 4.0, "drop_pd": 0.5,
              "centre_dark": 2.0, "fat_gain": 2.0, "t1_level": 0.9}
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


def centre_dark_field(rng: np.random.Generator, grid_shape, window, amplitude: float) -> np.ndarray:
    """exp(−s·(1 − q)) on the ``window`` (row slice, column slice) of a ``grid_shape`` grid: q = 0 at a centre
    drawn near the grid's, 1 at and beyond its front/back edges (left–right weighted 0.3–1); s up to
    log(1 + amplitude), so the centre is up to 1 + amplitude times darker than the edges. The draws do not depend
    on the window, so crops of one grid see one field."""
    strength = np.float32(np.log1p(amplitude) * rng.uniform(0, 1))
    lr_weight = np.float32(rng.uniform(0.3, 1.0))
    cy, cx = (np.float32(v) for v in rng.uniform(-0.15, 0.15, 2))
    y = np.linspace(-1, 1, grid_shape[0], dtype=np.float32)[window[0]]
    x = np.linspace(-1, 1, grid_shape[1], dtype=np.float32)[window[1]]
    q = np.minimum((y[:, None] - cy) ** 2 + lr_weight * (x[None, :] - cx) ** 2, np.float32(1.0))
    return np.exp(-strength * (1 - q)).astype(np.float32)


def soft_mask(mask: np.ndarray) -> np.ndarray:
    """A 2D boolean mask blurred twice by a 3×3 box (borders ramp over ~2 pixels, like partial volume)."""
    out = mask.astype(np.float32)
    for _ in range(2):
        padded = np.pad(out, 1, mode="edge")
        out = sum(padded[dy:dy + out.shape[0], dx:dx + out.shape[1]] for dy in range(3) for dx in range(3)) / 9.0
    return out.astype(np.float32)


def _fat_field(rng: np.random.Generator, fat: np.ndarray, amplitude: float) -> np.ndarray:
    gain = np.float32(np.expm1(np.log1p(amplitude) * rng.uniform(0, 1)))   # 0 … amplitude, log-uniform in 1 + g
    return (1 + gain * fat).astype(np.float32)


def _scale_each_series(cond: np.ndarray, target: np.ndarray, index: Dict[str, int], draw_field) -> np.ndarray:
    """Multiply intensities (normalised + 1) by fields from ``draw_field()``: one each for T2W and PD, one shared by
    the T1-pre and the DCE targets (drawn in that order). ``cond`` changes in place; returns the new target."""
    for name in ("t2w", "pd"):
        if name in index:
            cond[index[name]] = (cond[index[name]] + 1) * draw_field() - 1
    if "t1pre" in index:
        field = draw_field()
        cond[index["t1pre"]] = (cond[index["t1pre"]] + 1) * field - 1
        target = (target + 1) * field - 1
    return target


def augment_slice(rng: np.random.Generator, cond: np.ndarray, target: np.ndarray, channels: Sequence[str],
                  settings: Dict[str, float], grid_shape=None, window=None, fat_mask=None):
    """Randomize one (C, H, W) condition slice and its (2, H, W) target slice; returns new arrays.

    ``cond`` may hold G groups of the ``channels`` (G·C channels: a slice and its neighbours, see
    ``diffusion.slice_context``): each draw then applies to a modality's channel in every group alike (one scanner
    setting per series; the fields vary in-plane only). ``grid_shape`` and ``window`` (row slice, column slice):
    where the slice was cropped from its working grid, for ``centre_dark`` (default: the slice is the whole grid);
    ``fat_mask``: (H, W) bool, the slice's fat, for ``fat_gain`` (None: no gain; the neighbours get the slice's)."""
    cond = np.array(cond, dtype=np.float32, copy=True)
    target = np.array(target, dtype=np.float32, copy=True)
    if cond.shape[0] % len(channels):
        raise ValueError(f"augment: {cond.shape[0]} condition channels are not groups of {list(channels)}")
    groups = cond.shape[0] // len(channels)
    index = {name: [i + g * len(channels) for g in range(groups)] for i, name in enumerate(channels)}
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
    centre_dark = settings.get("centre_dark", 0.0)
    if centre_dark:  # drawn after the others, so runs without it keep their batches
        grid_shape = tuple(grid_shape) if grid_shape is not None else tuple(cond.shape[1:])
        window = window if window is not None else (slice(None), slice(None))
        target = _scale_each_series(cond, target, index, lambda: centre_dark_field(rng, grid_shape, window,
                                                                                   centre_dark))
    fat_gain = settings.get("fat_gain", 0.0)
    if fat_gain and fat_mask is not None and fat_mask.any():
        fat = soft_mask(fat_mask)
        target = _scale_each_series(cond, target, index, lambda: _fat_field(rng, fat, fat_gain))
    if adc_scale and "adc" in index:
        cond[index["adc"]] = (cond[index["adc"]] + 1) * np.float32(rng.uniform(1 - adc_scale, 1 + adc_scale)) - 1
    if noise:
        cond += rng.normal(0.0, rng.uniform(0, noise), cond.shape).astype(np.float32)
    if settings["drop_pd"] and "pd" in index and rng.uniform() < settings["drop_pd"]:
        cond[index["pd"]] = MISSING_INPUT_VALUE
    t1_level = settings.get("t1_level", 0.0)
    if t1_level and "t1pre" in index and rng.uniform() < 0.5:  # drawn last, so runs without it keep their batches
        factor = np.float32(rng.uniform(1.0 - t1_level, 1.0))
        cond[index["t1pre"]] = (cond[index["t1pre"]] + 1) * factor - 1
        target = (target + 1) * factor - 1
    return cond, target
