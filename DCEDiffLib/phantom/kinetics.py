"""Contrast-agent kinetics: Parker population AIF, (extended) Tofts model, concentration ↔ R1 ↔ SPGR signal.

Units: time in seconds, Ktrans and kep in 1/min (as reported in the literature and by the OSIPI/QIBA reference
data), concentrations in mM, relaxation rates in 1/s, relaxivity in 1/(s·mM).

References: Parker GJM et al., MRM 56:993–1000 (2006) (population AIF, Table 1); Tofts PS et al., JMRI 10:223–232
(1999) (standard model and symbols). Validated against the OSIPI DCE-DSC-MRI CodeCollection test data
(see Testing/test_phantom_kinetics.py and docs/phantom.md).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from DCEDiffLib.phantom.sequences import spgr_signal

# Parker et al. 2006, Table 1 (time constants in minutes, amplitudes in mM·min and mM).
PARKER_PARAMETERS: Dict[str, float] = {
    "A1": 0.809, "A2": 0.330, "T1": 0.17046, "T2": 0.365, "sigma1": 0.0563, "sigma2": 0.132,
    "alpha": 1.050, "beta": 0.1685, "s": 38.078, "tau": 0.483,
}
HEMATOCRIT = 0.42           # large-vessel haematocrit assumed with the Parker AIF
R1_RELAXIVITY_3T = 4.5      # 1/(s·mM), Gd-based agent in tissue at 3T (value used by the OSIPI reference data)


def parker_aif(t_s: np.ndarray, delay_s: float = 0.0, params: Optional[Dict[str, float]] = None) -> np.ndarray:
    """Whole-blood concentration Cb(t) [mM] of the Parker population AIF at times ``t_s`` (seconds).

    The curve is shifted by ``delay_s`` (bolus arrival) and is zero before it, as in the OSIPI reference data.
    """
    p = dict(PARKER_PARAMETERS, **(params or {}))
    t = (np.asarray(t_s, dtype=np.float64) - delay_s) / 60.0
    gauss = (p["A1"] / (p["sigma1"] * np.sqrt(2 * np.pi)) * np.exp(-(t - p["T1"]) ** 2 / (2 * p["sigma1"] ** 2))
             + p["A2"] / (p["sigma2"] * np.sqrt(2 * np.pi)) * np.exp(-(t - p["T2"]) ** 2 / (2 * p["sigma2"] ** 2)))
    with np.errstate(over="ignore"):
        sigmoid = p["alpha"] * np.exp(-p["beta"] * t) / (1.0 + np.exp(-p["s"] * (t - p["tau"])))
    return np.where(t >= 0, gauss + sigmoid, 0.0)


def plasma_from_blood(cb: np.ndarray, hematocrit: float = HEMATOCRIT) -> np.ndarray:
    """Plasma concentration from whole-blood concentration: Cp = Cb / (1 − Hct)."""
    return np.asarray(cb, dtype=np.float64) / (1.0 - hematocrit)


def exponential_convolution(t_s: np.ndarray, cp: np.ndarray, kep_per_min) -> np.ndarray:
    """∫₀ᵗ cp(τ) exp(−kep (t − τ)) dτ [mM·s], exact for ``cp`` linear between samples (any, increasing times).

    ``kep_per_min`` may be a scalar or an array of shape (M,); the result has shape (T,) or (M, T).
    Uses the exact recursion over intervals, so coarse or non-uniform sampling costs no accuracy beyond the
    piecewise-linear reading of ``cp``.
    """
    t = np.asarray(t_s, dtype=np.float64)
    cp = np.asarray(cp, dtype=np.float64)
    if t.ndim != 1 or t.shape != cp.shape or np.any(np.diff(t) <= 0):
        raise ValueError("exponential_convolution: t and cp must be 1-D of equal length with increasing t")
    k = np.atleast_1d(np.asarray(kep_per_min, dtype=np.float64))[:, None] / 60.0  # 1/s, (M, 1)
    # Every interval's terms at once (M, T-1); the same operations, in the same order, as one interval at a time
    # (so the same bits); only the recursion itself stays a loop: a fitted curve of 1321 samples took 69 ms a call.
    d = np.diff(t)
    x = k * d
    decay = np.exp(-x)
    small = x < 1e-6
    safe_k = np.where(small, 1.0, k)
    # A = ∫₀ᵈ e^{−k(d−u)} du, B = ∫₀ᵈ e^{−k(d−u)} u du (series for k → 0)
    a = np.where(small, d - k * d * d / 2, (1 - decay) / safe_k)
    b = np.where(small, d * d / 2 - k * d ** 3 / 6, d / safe_k - (1 - decay) / safe_k ** 2)
    level, slope = cp[:-1] * a, (cp[1:] - cp[:-1]) * b / d
    out = np.zeros((k.shape[0], t.size))
    for i in range(1, t.size):
        out[:, i] = out[:, i - 1] * decay[:, i - 1] + level[:, i - 1] + slope[:, i - 1]
    return out[0] if np.ndim(kep_per_min) == 0 else out


def tofts_concentration(t_s: np.ndarray, cp: np.ndarray, ktrans_per_min, ve, vp=0.0) -> np.ndarray:
    """Tissue concentration [mM] of the (extended) Tofts model: Ct = vp·Cp + Ktrans ∫ Cp(τ) e^{−kep(t−τ)} dτ.

    kep = Ktrans / ve. ``ktrans_per_min``, ``ve``, ``vp`` are scalars or equal-length arrays (result (M, T)).
    vp = 0 gives the standard Tofts model.
    """
    ktrans = np.asarray(ktrans_per_min, dtype=np.float64)
    ve = np.asarray(ve, dtype=np.float64)
    if np.any(ve <= 0):
        raise ValueError("tofts_concentration: ve must be positive")
    conv = exponential_convolution(t_s, cp, ktrans / ve)
    ktrans_s = (ktrans / 60.0)[..., None] if ktrans.ndim else ktrans / 60.0
    vp_arr = np.asarray(vp, dtype=np.float64)
    vp_arr = vp_arr[..., None] if vp_arr.ndim else vp_arr
    return ktrans_s * conv + vp_arr * np.asarray(cp, dtype=np.float64)


def r1_from_concentration(r10_per_s, concentration, relaxivity: float = R1_RELAXIVITY_3T):
    """Fast-exchange linear relaxation: R1 = R10 + r1·C."""
    return np.asarray(r10_per_s) + relaxivity * np.asarray(concentration)


def concentration_from_spgr_signal(signal: np.ndarray, t10_s: float, tr_s: float, flip_deg: float,
                                   baseline_points: int, relaxivity: float = R1_RELAXIVITY_3T,
                                   baseline_start: int = 0) -> np.ndarray:
    """Invert the spoiled gradient-echo equation: signal curve → concentration curve [mM].

    M0 is estimated from the mean of samples ``baseline_start`` … ``baseline_points − 1`` and the known
    pre-contrast T1 (``t10_s``), then R1(t) is solved exactly from S/M0 and C = (R1 − R10)/r1 (the OSIPI
    SI→concentration method; its reference data skip the first sample: ``baseline_start=1``).
    """
    s = np.asarray(signal, dtype=np.float64)
    r10 = 1.0 / t10_s
    baseline = np.mean(s[..., baseline_start:baseline_points], axis=-1, keepdims=True)
    m0 = baseline / spgr_signal(1.0, r10, tr_s, flip_deg)
    a = np.deg2rad(flip_deg)
    ratio = s / m0
    e1 = (ratio - np.sin(a)) / (ratio * np.cos(a) - np.sin(a))
    r1 = -np.log(e1) / tr_s
    return (r1 - r10) / relaxivity


def delayed_dispersed(t_s: np.ndarray, curve: np.ndarray, delay_s: float, dispersion_s: float) -> np.ndarray:
    """A curve delayed by ``delay_s`` and convolved with a unit-area exponential of time constant
    ``dispersion_s`` (e.g. venous outflow from an arterial curve). Sampling as in :func:`exponential_convolution`."""
    t = np.asarray(t_s, dtype=np.float64)
    shifted = np.interp(t - delay_s, t, curve, left=0.0)
    if dispersion_s <= 0:
        return shifted
    kep_per_min = 60.0 / dispersion_s
    return exponential_convolution(t, shifted, kep_per_min) / dispersion_s


class ToftsTable:
    """Ct(t) for many voxels at a few frame times, fast: Ct = Ktrans·F(kep, t) + vp_a·Cp_a(t) + vp_v·Cp_v(t).

    F(kep, t) = ∫ Cp(τ)e^{−kep(t−τ)}dτ is computed once on a log-spaced kep grid on a fine time grid and
    sampled at the frame times; per voxel it is interpolated linearly in log kep (relative error < 0.1 % for the
    default grid).
    """

    def __init__(self, frame_times_s: np.ndarray, fine_t_s: np.ndarray, cp_arterial: np.ndarray,
                 cp_venous: np.ndarray, kep_min: float = 0.02, kep_max: float = 20.0, nodes: int = 160):
        self.frame_times = np.asarray(frame_times_s, dtype=np.float64)
        self.log_kep = np.linspace(np.log(kep_min), np.log(kep_max), nodes)
        conv = exponential_convolution(fine_t_s, cp_arterial, np.exp(self.log_kep))   # (nodes, T_fine) mM·s
        self.F = np.stack([np.interp(self.frame_times, fine_t_s, row) for row in conv]) / 60.0  # mM·min
        self.cp_a = np.interp(self.frame_times, fine_t_s, cp_arterial)
        self.cp_v = np.interp(self.frame_times, fine_t_s, cp_venous)

    def kep_index(self, kep_per_min: np.ndarray):
        """(lower node index, weight of the upper node) for each voxel's kep."""
        pos = (np.log(np.clip(kep_per_min, np.exp(self.log_kep[0]), np.exp(self.log_kep[-1])))
               - self.log_kep[0]) / (self.log_kep[1] - self.log_kep[0])
        lower = np.minimum(pos.astype(np.int32), len(self.log_kep) - 2)
        return lower, (pos - lower).astype(np.float32)

    def concentration(self, frame: int, ktrans, index, vp_a, vp_v) -> np.ndarray:
        """Ct [mM] of every voxel at frame number ``frame`` (``index`` from :meth:`kep_index`)."""
        lower, weight = index
        column = self.F[:, frame].astype(np.float32)
        f = column[lower] * (1 - weight) + column[lower + 1] * weight
        return ktrans * f + vp_a * np.float32(self.cp_a[frame]) + vp_v * np.float32(self.cp_v[frame])
