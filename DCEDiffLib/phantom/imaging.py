"""Image formation: tissue property maps of one series → the scanner's image (signal equation, coil bias,
Rician noise, receiver gain, 12-bit integers).

- T2W: turbo spin echo; arteries show a flow void.
- PD: the ProstateX 3D turbo-FLASH reference (TR 800 ms, TE 1.5 ms, flip 14°): proton-density dominated.
- ADC: diffusion-weighted EPI at each b-value (kurtosis signal, fat suppressed, own noise) and the scanner's
  log-linear fit in 10⁻⁶ mm²/s; voxels without signal are set to 0 as scanners do.
- DCE: VIBE spoiled gradient echo (fat suppressed or not) of R1(t) = R10 + r1·Ct(t), Ct from the (extended) Tofts
  model with the Parker AIF, for the water protons; the lipid protons' signal (fat fraction × the fat-suppression
  residual) keeps its pre-contrast value, since gadolinium does not reach them. T1-pre is the first (pre-arrival)
  frame of the same series.
The noise σ of a series is set from its SNR relative to the noise-free peripheral-zone signal.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from DCEDiffLib.phantom.acquisition import ExamPlan, SeriesPlan, add_rician_noise, to_scanner_integers
from DCEDiffLib.phantom.kinetics import (R1_RELAXIVITY_3T, ToftsTable, delayed_dispersed, parker_aif,
                                         plasma_from_blood)
from DCEDiffLib.phantom.sequences import (diffusivity_from_adc, fit_adc, kurtosis_signal, spgr_signal,
                                          tse_signal)
from DCEDiffLib.phantom.tissues import Tissue

T2W_PROPERTIES = ("pd", "t1", "t2", "flow")
PD_PROPERTIES = ("pd", "t1", "inflow")
ADC_PROPERTIES = ("pd", "t1", "t2", "fat", "flow", "adc", "kurt")
DCE_PROPERTIES = ("pd", "t1", "fat", "inflow", "ktrans", "ve", "vpa", "vpv")
DWI_FAT_SUPPRESSION = 0.02  # residual fat signal in the (SPAIR) fat-suppressed EPI


def _finish(signal: np.ndarray, sigma: float, gain: float, rng: np.random.Generator) -> np.ndarray:
    noisy = add_rician_noise(signal, sigma, rng)
    return to_scanner_integers(noisy * np.float32(gain))


def t2w_image(maps: Dict[str, np.ndarray], series: SeriesPlan, bias: np.ndarray, reference: Tissue,
              rng: np.random.Generator) -> Tuple[np.ndarray, Dict[str, float]]:
    """T2-weighted TSE image (int16) and its noise parameters."""
    tr, te = series.sequence["tr_ms"] / 1000, series.sequence["te_ms"] / 1000
    signal = tse_signal(maps["pd"] * maps["flow"], maps["t1"], maps["t2"], tr, te) * bias
    ref = float(tse_signal(reference.values["pd"], reference.values["t1"], reference.values["t2"], tr, te))
    sigma = ref / series.snr
    return _finish(signal, sigma, series.gain / ref, rng), {"sigma": sigma, "reference": ref}


def pd_image(maps: Dict[str, np.ndarray], series: SeriesPlan, bias: np.ndarray, b1: np.ndarray,
             reference: Tissue, rng: np.random.Generator) -> Tuple[np.ndarray, Dict[str, float]]:
    """Proton-density-weighted 3D gradient-echo image (int16)."""
    tr, flip = series.sequence["tr_ms"] / 1000, series.sequence["flip_deg"]
    signal = spgr_signal(maps["pd"] * maps["inflow"], 1.0 / maps["t1"], tr, flip, b1) * bias
    ref = float(spgr_signal(reference.values["pd"], 1.0 / reference.values["t1"], tr, flip))
    sigma = ref / series.snr
    return _finish(signal, sigma, series.gain / ref, rng), {"sigma": sigma, "reference": ref}


def adc_image(maps: Dict[str, np.ndarray], series: SeriesPlan, plan: ExamPlan, bias: np.ndarray,
              reference: Tissue, rng: np.random.Generator) -> Tuple[np.ndarray, Dict[str, float]]:
    """Scanner ADC map (int16, 10⁻⁶ mm²/s) from simulated diffusion-weighted images at the domain's b-values."""
    tr, te = series.sequence["tr_ms"] / 1000, series.sequence["te_ms"] / 1000
    fat_factor = 1.0 - maps["fat"] * np.float32(1.0 - DWI_FAT_SUPPRESSION)
    s0 = tse_signal(maps["pd"] * maps["flow"], maps["t1"], maps["t2"], tr, te) * fat_factor * bias
    # Tissue ADCs are defined at the reference b-values; D follows from the kurtosis model.
    d = diffusivity_from_adc(maps["adc"] * np.float32(1e-6), maps["kurt"], plan.domain.reference_b_values)
    d = d.astype(np.float32)
    rv = reference.values
    ref = float(tse_signal(rv["pd"], rv["t1"], rv["t2"], tr, te))
    ref_d = float(diffusivity_from_adc(rv["adc"] * 1e-6, rv["kurt"], plan.domain.reference_b_values))
    ref_low_b = float(kurtosis_signal(ref, plan.domain.b_values[0], ref_d, rv["kurt"]))
    sigma = ref_low_b / series.snr
    signals = [add_rician_noise(kurtosis_signal(s0, b, d, maps["kurt"]).astype(np.float32), sigma, rng)
               for b in plan.domain.b_values]
    adc = fit_adc(signals, plan.domain.b_values) * np.float32(1e6)
    # The scanner blanks voxels whose low-b signal is indistinguishable from noise (background, fat, air, cortex).
    adc[signals[0] < np.float32(3.0 * sigma)] = 0.0
    return to_scanner_integers(adc), {"sigma": sigma, "reference": ref_low_b}


def arterial_input(plan: ExamPlan, fine_dt_s: float = 0.5):
    """(fine time grid, arterial plasma Cp, venous plasma Cp) of this exam [s, mM]."""
    t_end = float(plan.frame_times_s[-1]) + 1.0
    fine_t = np.arange(0.0, t_end + fine_dt_s, fine_dt_s)
    cp_a = plasma_from_blood(parker_aif(fine_t, plan.arrival_delay_s)) * plan.aif_scale
    cp_v = delayed_dispersed(fine_t, cp_a, plan.venous_delay_s, plan.venous_dispersion_s)
    return fine_t, cp_a, cp_v


def dce_series(maps: Dict[str, np.ndarray], series: SeriesPlan, plan: ExamPlan, bias: np.ndarray,
               b1: np.ndarray, reference: Tissue, rng: np.random.Generator) -> Tuple[np.ndarray, Dict[str, float]]:
    """The DCE time series (frames, k, j, i) int16 of the spoiled gradient-echo sequence."""
    tr, flip = series.sequence["tr_ms"] / 1000, series.sequence["flip_deg"]
    fine_t, cp_a, cp_v = arterial_input(plan)
    table = ToftsTable(plan.frame_times_s, fine_t, cp_a, cp_v)
    fat_factor = 1.0 - maps["fat"] * np.float32(1.0 - plan.fat_sat_residual)
    angle = np.deg2rad(np.float32(flip)) * b1
    pd_inflow, sin_a = maps["pd"] * maps["inflow"], np.sin(angle)
    m0_sin = pd_inflow * fat_factor * bias * sin_a
    # The lipid protons' share of it (the fat fraction, times what fat suppression leaves of them): the contrast
    # agent stays in the water spaces and does not relax lipid protons (generator version 4).
    lipid_m0_sin = pd_inflow * (maps["fat"] * np.float32(plan.fat_sat_residual)) * bias * sin_a
    cos_a = np.cos(angle)
    r10 = 1.0 / maps["t1"]
    neg_tr = np.float32(-tr)
    e10 = np.exp(neg_tr * r10)
    lipid_baseline = (1 - e10) / (1 - cos_a * e10)
    ktrans = maps["ktrans"]
    index = table.kep_index(ktrans / np.maximum(maps["ve"], np.float32(0.02)))
    rv = reference.values
    ref = float(spgr_signal(rv["pd"], 1.0 / rv["t1"], tr, flip))
    sigma = ref / series.snr
    gain = np.float32(series.gain / ref)
    frames = np.empty((len(plan.frame_times_s),) + r10.shape, dtype=np.int16)
    r1 = np.float32(R1_RELAXIVITY_3T)
    for f in range(len(plan.frame_times_s)):
        conc = table.concentration(f, ktrans, index, maps["vpa"], maps["vpv"])
        e1 = np.exp(neg_tr * (r10 + r1 * conc))
        spgr_num, spgr_den = 1 - e1, 1 - cos_a * e1  # the SPGR factor (1 − E1) / (1 − cos α E1), in parts
        signal = m0_sin * spgr_num / spgr_den  # every proton relaxed as water (version 3)
        # less what the lipid protons gained that way; exactly 0 where the concentration is (the T1-pre frame stays
        # bit-identical to version 3's)
        signal = signal - lipid_m0_sin * (spgr_num / spgr_den - lipid_baseline)
        frames[f] = _finish(signal, sigma, gain, rng)
    return frames, {"sigma": sigma, "reference": ref}
