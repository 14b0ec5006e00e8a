"""The phantom's physics at its definitions (found by a mutation audit): closed forms of the turbo spin echo and the
spoiled gradient echo (with the local B1 flip-angle factor), the DCE, PD and ADC images against the signal equations
they state (DCE: its own inline SPGR of the Tofts concentration; ADC: defined at the reference b-values), the Tofts
table's arterial and venous plasma terms, the haematocrit, the noise σ from the SNR, Rician noise moments and the
scanner's 12-bit rounding."""

import numpy as np
import pytest

from DCEDiffLib.phantom.acquisition import PROTOCOLS, ExamPlan, SeriesPlan, add_rician_noise, to_scanner_integers
from DCEDiffLib.phantom.imaging import arterial_input, dce_series
from DCEDiffLib.phantom.kinetics import R1_RELAXIVITY_3T, r1_from_concentration, tofts_concentration
from DCEDiffLib.phantom.sequences import spgr_signal, tse_signal
from DCEDiffLib.phantom.tissues import Tissue


# ---------------------------------------------------------------- turbo spin echo
def test_tse_signal_closed_forms():
    """S = PD (1 − e^{−TR/T1}) e^{−TE/T2}: at TR = T1·ln 2 the longitudinal factor is exactly 1/2; at TE = T2 the
    transverse factor is 1/e; a long TR leaves PD·e^{−TE/T2}; a longer T1 gives less signal (T1 weighting)."""
    t1, t2 = 1.6, 0.09
    assert tse_signal(2.0, t1, t2, t1 * np.log(2.0), 0.0) == pytest.approx(1.0, rel=1e-12)
    assert tse_signal(1.0, t1, t2, 1e3, t2) == pytest.approx(np.exp(-1.0), rel=1e-12)
    assert tse_signal(1.0, t1, t2, 5.0, 0.1) == pytest.approx((1 - np.exp(-5.0 / t1)) * np.exp(-0.1 / t2), rel=1e-12)
    signals = tse_signal(1.0, np.array([0.4, 1.0, 1.6, 3.0]), t2, 4.5, 0.1)
    assert np.all(np.diff(signals) < 0)
    assert tse_signal(1.0, t1, np.array([0.05, 0.1, 0.2]), 4.5, 0.1)[0] < tse_signal(1.0, t1, 0.2, 4.5, 0.1)


# ---------------------------------------------------------------- spoiled gradient echo
def test_spgr_signal_peaks_at_the_ernst_angle_and_flip_scale_scales_the_flip():
    """E1 = e^{−TR/T1}: the signal is largest at the Ernst angle arccos E1, where it is M0 √((1 − E1)/(1 + E1));
    ``flip_scale`` (B1) multiplies the flip angle, so a nominal 2α at half B1 is the signal of α."""
    tr, t1 = 0.004, 1.6
    e1 = np.exp(-tr / t1)
    ernst = np.degrees(np.arccos(e1))
    assert spgr_signal(1.0, 1 / t1, tr, ernst) == pytest.approx(np.sqrt((1 - e1) / (1 + e1)), rel=1e-9)
    flips = np.linspace(0.5, 30.0, 600)
    assert flips[np.argmax(spgr_signal(1.0, 1 / t1, tr, flips))] == pytest.approx(ernst, abs=0.06)
    assert spgr_signal(1.0, 1 / t1, tr, 24.0, 0.5) == pytest.approx(spgr_signal(1.0, 1 / t1, tr, 12.0), rel=1e-12)
    scales = np.linspace(0.2, 2.0, 901)
    best = scales[np.argmax(spgr_signal(1.0, 1 / t1, tr, 10.0, scales))]
    assert best * 10.0 == pytest.approx(ernst, abs=0.02)


def _dce_setup(b1_values, fat, ktrans, ve, vpa, fat_sat_residual=0.3):
    n = len(b1_values)
    f32 = lambda v: np.full(n, v, np.float32) if np.ndim(v) == 0 else np.asarray(v, np.float32)  # noqa: E731
    maps = {"pd": f32(0.9), "t1": f32(1.5), "fat": f32(fat), "inflow": f32(1.0), "ktrans": f32(ktrans),
            "ve": f32(ve), "vpa": f32(vpa), "vpv": f32(0.0)}
    tr_ms, flip = 4.0, 14.0
    series = SeriesPlan("dce", None, (np.eye(3), np.zeros(3)), {"tr_ms": tr_ms, "te_ms": 1.4, "flip_deg": flip},
                        snr=1e7, gain=600.0, bias_coefficients=np.zeros(9))
    plan = ExamPlan(domain=PROTOCOLS["A"], orientation=np.eye(3), series={"dce": series},
                    frame_times_s=np.arange(12) * 7.0, arrival_delay_s=20.0, aif_scale=0.7, venous_delay_s=8.0,
                    venous_dispersion_s=10.0, fat_sat_residual=fat_sat_residual, b1_mean=1.0,
                    b1_coefficients=np.zeros(3), coil_gain=0.0, coil_length_mm=15.0)
    reference = Tissue("peripheral_zone", {"pd": 1.0, "t1": 1.7})
    return maps, series, plan, reference, np.asarray(b1_values, np.float32), tr_ms / 1000, flip


def test_dce_series_is_the_spgr_equation_of_the_tofts_concentration_with_the_local_flip_angle():
    """Every frame of dce_series is S = PD·sin(α)(1 − E1)/(1 − cos(α)·E1), α = b1 × the nominal flip in sin AND
    cos, R1 = R10 + r1·Ct with Ct the Tofts concentration of the exam's arterial input; the lipid protons (fat
    fraction f, times the fat-suppression residual) keep their pre-contrast signal. Noise is made negligible
    (SNR 1e7), so the 12-bit frames must equal gain/ref × the closed form to within the integer rounding."""
    b1 = [1.0, 0.6, 1.3, 0.8]
    fat = [0.0, 0.0, 0.0, 0.5]
    ktrans, ve, vpa = [0.0, 0.4, 0.25, 0.3], [0.3, 0.35, 0.3, 0.3], [0.0, 0.03, 0.0, 0.0]
    maps, series, plan, reference, b1, tr, flip = _dce_setup(b1, fat, ktrans, ve, vpa)
    rng = np.random.default_rng(0)
    frames, info = dce_series(maps, series, plan, np.ones(4, np.float32), b1, reference, rng)
    ref = spgr_signal(1.0, 1 / 1.7, tr, flip)
    assert info["reference"] == pytest.approx(ref, rel=1e-9)
    fine_t, cp_a, _ = arterial_input(plan)
    conc = np.stack([np.interp(plan.frame_times_s, fine_t, tofts_concentration(fine_t, cp_a, k, v, p))
                     for k, v, p in zip(ktrans, ve, vpa)])  # (voxel, frame), no venous fraction here
    assert conc[1].max() > 0.2  # the enhancing voxels really enhance
    r10 = 1 / 1.5
    f = np.asarray(fat)[:, None]
    water = spgr_signal(0.9 * (1 - f), r1_from_concentration(r10, conc, R1_RELAXIVITY_3T), tr, flip, b1[:, None])
    lipid = spgr_signal(0.9 * f * plan.fat_sat_residual, r10, tr, flip, b1[:, None])
    expected = (water + lipid) * series.gain / ref
    # Rounding to integers (0.5) plus the Tofts table's kep interpolation (< 0.1 % of Ct): 1 LSB allowed.
    np.testing.assert_allclose(frames.T.astype(np.float64), expected, atol=1.0)
    assert abs(int(frames[0, 0]) - 0.9 * series.gain * spgr_signal(1.0, r10, tr, flip) / ref) <= 0.5 + 1e-6


# ---------------------------------------------------------------- noise and digitisation
def test_rician_noise_has_the_rayleigh_mean_and_the_rician_second_moment():
    """|A + n_re + i·n_im| with Gaussian n of std σ per channel: at A = 0 the magnitude is Rayleigh with mean
    σ√(π/2); at any A, E[M²] = A² + 2σ² exactly."""
    rng = np.random.default_rng(1)
    sigma = 2.0
    zero = add_rician_noise(np.zeros(400_000, np.float32), sigma, rng).astype(np.float64)
    assert zero.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.01)
    assert zero.min() >= 0.0
    signal = np.full(400_000, 5.0, np.float32)
    noisy = add_rician_noise(signal, sigma, rng).astype(np.float64)
    assert np.mean(noisy ** 2) == pytest.approx(25.0 + 2 * sigma ** 2, rel=0.01)


def test_scanner_integers_round_to_nearest_and_clip_to_twelve_bits():
    values = np.array([2.4, 2.6, -3.0, 0.49, 4094.6, 5000.7, 1000.5001])
    out = to_scanner_integers(values)
    assert out.dtype == np.int16
    assert out.tolist() == [2, 3, 0, 0, 4095, 4095, 1001]


@pytest.mark.parametrize("domain", ["A", "B"])
def test_adc_map_reports_the_tissue_adc_at_the_reference_b_values_and_the_kurtosis_shift_elsewhere(domain):
    """Tissue ADCs are defined at the reference b-values (50/400/800); the scanner fits its own b-values, so domain A
    reads the tissue ADC and domain B (100/800/1400) reads apparent_adc(D, K, its b-values) with D from the
    reference b-values: about 10–20 % lower (kurtosis). Noise-free (SNR 1e7): equal to within integer rounding."""
    from DCEDiffLib.phantom.imaging import adc_image
    from DCEDiffLib.phantom.sequences import apparent_adc, diffusivity_from_adc

    proto = PROTOCOLS[domain]
    adc_tissue = np.array([1650.0, 1300.0, 900.0], np.float32)
    kurt = np.array([0.6, 0.7, 1.0], np.float32)
    ones = np.ones(3, np.float32)
    maps = {"pd": ones, "t1": 1.6 * ones, "t2": 0.09 * ones, "fat": 0 * ones, "flow": ones, "adc": adc_tissue,
            "kurt": kurt}
    series = SeriesPlan("adc", None, (np.eye(3), np.zeros(3)), {"tr_ms": 3000.0, "te_ms": 70.0}, snr=1e7, gain=1.0,
                        bias_coefficients=np.zeros(9))
    plan = ExamPlan(domain=proto, orientation=np.eye(3), series={"adc": series}, frame_times_s=np.arange(3.0),
                    arrival_delay_s=20.0, aif_scale=0.7, venous_delay_s=8.0, venous_dispersion_s=10.0,
                    fat_sat_residual=0.3, b1_mean=1.0, b1_coefficients=np.zeros(3), coil_gain=0.0,
                    coil_length_mm=15.0)
    reference = Tissue("peripheral_zone", {"pd": 1.0, "t1": 1.7, "t2": 0.16, "adc": 1600.0, "kurt": 0.6})
    adc, _ = adc_image(maps, series, plan, ones, reference, np.random.default_rng(0))
    d = diffusivity_from_adc(adc_tissue.astype(np.float64) * 1e-6, kurt, (50.0, 400.0, 800.0))
    expected = apparent_adc(d, kurt, proto.b_values) * 1e6
    assert np.all(np.abs(adc.astype(np.float64) - expected) <= 1.0), (adc, expected)
    if domain == "A":
        assert np.all(np.abs(adc - adc_tissue) <= 1.0)
    else:
        assert np.all((adc / adc_tissue > 0.78) & (adc / adc_tissue < 0.92))


def test_t2w_noise_is_set_by_the_snr_of_the_peripheral_zone_signal():
    """imaging module: 'The noise σ of a series is set from its SNR relative to the noise-free peripheral-zone
    signal', and the receiver gain puts that signal at ``gain``. A uniform patch of the reference tissue therefore
    reads mean ≈ gain and std ≈ gain / SNR (Rician at SNR 20 is Gaussian to 0.1 %)."""
    from DCEDiffLib.phantom.imaging import t2w_image

    n = 200_000
    values = {"pd": 1.0, "t1": 1.7, "t2": 0.16}
    maps = {key: np.full(n, value, np.float32) for key, value in values.items()}
    maps["flow"] = np.ones(n, np.float32)
    series = SeriesPlan("t2w", None, (np.eye(3), np.zeros(3)), {"tr_ms": 5000.0, "te_ms": 105.0}, snr=20.0,
                        gain=2000.0, bias_coefficients=np.zeros(9))
    image, info = t2w_image(maps, series, np.ones(n, np.float32), Tissue("peripheral_zone", values),
                            np.random.default_rng(3))
    assert info["reference"] == pytest.approx(tse_signal(1.0, 1.7, 0.16, 5.0, 0.105), rel=1e-6)
    assert info["sigma"] == pytest.approx(info["reference"] / 20.0, rel=1e-9)
    pixels = image.astype(np.float64)
    assert pixels.mean() == pytest.approx(2000.0, rel=0.005)
    assert pixels.std() == pytest.approx(2000.0 / 20.0, rel=0.02)


def test_pd_image_uses_the_local_flip_angle():
    """pd_image: the 3D turbo-FLASH reference is an SPGR with the local B1 factor on the flip angle; noise-free
    (SNR 1e7), the 12-bit values are gain/ref × spgr_signal(PD, R1, TR, flip, b1) to within rounding."""
    from DCEDiffLib.phantom.imaging import pd_image

    b1 = np.array([1.0, 0.7, 1.25], np.float32)
    maps = {"pd": np.array([1.0, 0.9, 0.8], np.float32), "t1": np.array([1.7, 1.4, 0.4], np.float32),
            "inflow": np.ones(3, np.float32)}
    series = SeriesPlan("pd", None, (np.eye(3), np.zeros(3)), {"tr_ms": 800.0, "te_ms": 1.53, "flip_deg": 14.0},
                        snr=1e7, gain=1000.0, bias_coefficients=np.zeros(9))
    reference = Tissue("peripheral_zone", {"pd": 1.0, "t1": 1.7})
    image, info = pd_image(maps, series, np.ones(3, np.float32), b1, reference, np.random.default_rng(0))
    expected = 1000.0 * spgr_signal(maps["pd"].astype(np.float64), 1 / maps["t1"].astype(np.float64), 0.8, 14.0,
                                     b1.astype(np.float64)) / info["reference"]
    assert np.all(np.abs(image - expected) <= 0.5 + 1e-3), (image, expected)


def test_tofts_table_plasma_terms_are_the_arterial_and_the_venous_curve():
    """ToftsTable: Ct = Ktrans·F + vp_a·Cp_a(t) + vp_v·Cp_v(t). With Ktrans = 0 a pure-arterial voxel (vp_a = 1)
    reads the arterial curve and a pure-venous one (vp_v = 1) the delayed, dispersed venous curve, at the frames."""
    from DCEDiffLib.phantom.kinetics import ToftsTable, delayed_dispersed, parker_aif, plasma_from_blood

    fine = np.arange(0, 200, 0.5)
    cp_a = plasma_from_blood(parker_aif(fine, 25.0))
    cp_v = delayed_dispersed(fine, cp_a, 8.0, 10.0)
    frames = np.arange(25) * 7.0
    table = ToftsTable(frames, fine, cp_a, cp_v)
    zero = np.zeros(1, np.float32)
    index = table.kep_index(np.ones(1, np.float32))
    arterial = [table.concentration(f, zero, index, np.float32(1), np.float32(0))[0] for f in range(25)]
    venous = [table.concentration(f, zero, index, np.float32(0), np.float32(1))[0] for f in range(25)]
    np.testing.assert_allclose(arterial, np.interp(frames, fine, cp_a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(venous, np.interp(frames, fine, cp_v), rtol=1e-5, atol=1e-6)
    assert np.argmax(venous) > np.argmax(arterial)


def test_plasma_concentration_is_the_blood_concentration_over_the_plasma_fraction():
    """The agent stays in the plasma: Cp = Cb / (1 − Hct), with the Parker AIF's haematocrit 0.42; the vessels'
    plasma fraction of blood is the same 1 − Hct."""
    from DCEDiffLib.phantom.kinetics import HEMATOCRIT, plasma_from_blood
    from DCEDiffLib.phantom.tissues import PLASMA_FRACTION_OF_BLOOD

    assert HEMATOCRIT == pytest.approx(0.42)
    assert PLASMA_FRACTION_OF_BLOOD == pytest.approx(1 - HEMATOCRIT)
    np.testing.assert_allclose(plasma_from_blood(np.array([0.0, 0.58, 2.9])), [0.0, 1.0, 5.0], rtol=1e-12)
    assert plasma_from_blood(1.0, hematocrit=0.5) == pytest.approx(2.0)
