"""How the phantom exam is acquired: protocols per domain, grids, patient motion, coil bias, noise, scaling.

Domain A imitates the ProstateX exams (Siemens 3T, pelvic phased-array coil): T2W TSE, a 3D turbo-FLASH
proton-density reference, DWI b = 50/400/800 with the scanner's ADC map, and a T1 VIBE DCE series. Domain B
imitates an external site with an endorectal coil (the paper's Prostate-MRI shift): other grids, b-values
(100/800/1400, so kurtosis lowers the ADC by ~10–15 %), sequence timings, noise and intensity scale, and the
coil's strong posterior hot spot.

All series share one frame of reference and one slice orientation (oblique, as in ProstateX); each has its own
field of view. Between series the patient moves a little (rigid, ≤ 2° and ≤ 2.5 mm, recorded in case.json).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from DCEDiffLib.phantom.anatomy import Anatomy, rotation_matrix
from DCEDiffLib.phantom.rasterize import Grid, local_mapping

DOMAINS = ("A", "B")
SERIES = ("t2w", "pd", "adc", "dce")
MAX_ROTATION_DEG = 2.0
MAX_TRANSLATION_MM = 2.5


@dataclasses.dataclass(frozen=True)
class SeriesProtocol:
    """Grid and noise of one series; ``sequence`` holds (low, high) ranges or fixed values of its parameters
    (TR/TE in ms, flip in degrees); ``fov_offset_mm`` the range of its field-of-view centre around the gland."""

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    snr: Tuple[float, float]
    gain: Tuple[float, float]
    fov_offset_mm: Tuple[Tuple[float, float], Tuple[float, float], Tuple[float, float]]
    sequence: Dict[str, object]


@dataclasses.dataclass(frozen=True)
class DomainProtocol:
    """Everything that differs between acquisition domains."""

    name: str
    description: str
    series: Dict[str, SeriesProtocol]
    b_values: Tuple[float, ...]
    reference_b_values: Tuple[float, ...]
    frames: int
    frame_interval_s: Tuple[float, float]
    arrival_delay_s: Tuple[float, float]
    aif_scale: Tuple[float, float]
    fat_sat_residual: Tuple[float, float]
    endorectal_coil: bool
    coil_gain: Tuple[float, float] = (0.0, 0.0)
    coil_length_mm: Tuple[float, float] = (12.0, 20.0)
    # Share of exams whose T1-weighted series (T1-pre and DCE) are fat suppressed. Real protocols differ: ProstateX's
    # TWIST/VIBE are not (fat is bright on T1 and does not enhance), the I2CVB VIBE is; a model must meet both.
    fat_suppressed_share: float = 0.5


PROTOCOLS: Dict[str, DomainProtocol] = {
    "A": DomainProtocol(
        name="A", description="ProstateX-like: Siemens 3T, pelvic phased-array coil, DWI b=50/400/800",
        series={
            "t2w": SeriesProtocol((256, 256, 19), (0.75, 0.75, 3.0), (20, 32), (200, 450),
                                  ((-6, 6), (-4, 12), (-3, 3)), {"tr_ms": (4500, 5700), "te_ms": (100, 110)}),
            "pd": SeriesProtocol((128, 128, 16), (1.5, 1.5, 3.0), (25, 40), (150, 400),
                                 ((-8, 8), (-8, 8), (-3, 3)), {"tr_ms": 800.0, "te_ms": 1.53, "flip_deg": 14.0}),
            "adc": SeriesProtocol((84, 128, 19), (2.0, 2.0, 3.0), (25, 40), (1, 1),
                                  ((-6, 6), (-4, 16), (-3, 3)), {"tr_ms": 2700.0, "te_ms": 63.0}),
            "dce": SeriesProtocol((160, 160, 20), (1.625, 1.625, 3.6), (16, 26), (60, 180),
                                  ((-10, 10), (-10, 10), (-4, 4)),
                                  {"tr_ms": (3.3, 4.0), "te_ms": 1.4, "flip_deg": (10.0, 15.0)}),
        },
        b_values=(50.0, 400.0, 800.0), reference_b_values=(50.0, 400.0, 800.0), frames=40,
        frame_interval_s=(6.5, 7.0), arrival_delay_s=(24.0, 34.0), aif_scale=(0.55, 0.8),
        fat_sat_residual=(0.1, 0.25), endorectal_coil=False),
    "B": DomainProtocol(
        name="B", description="external-site-like: endorectal + phased-array coil, DWI b=100/800/1400, "
                              "other grids, timings, noise and intensity scale",
        series={
            "t2w": SeriesProtocol((256, 256, 24), (0.55, 0.55, 3.0), (14, 24), (600, 1400),
                                  ((-5, 5), (-2, 10), (-3, 3)), {"tr_ms": (3500, 4500), "te_ms": (90, 120)}),
            "pd": SeriesProtocol((160, 160, 20), (1.2, 1.2, 3.0), (20, 32), (400, 900),
                                 ((-8, 8), (-8, 8), (-3, 3)), {"tr_ms": 600.0, "te_ms": 2.0, "flip_deg": 8.0}),
            "adc": SeriesProtocol((128, 128, 20), (1.6, 1.6, 3.5), (18, 30), (1, 1),
                                  ((-6, 6), (-4, 10), (-3, 3)), {"tr_ms": 3500.0, "te_ms": 75.0}),
            "dce": SeriesProtocol((160, 160, 16), (1.5, 1.5, 4.0), (12, 20), (150, 400),
                                  ((-8, 8), (-8, 8), (-4, 4)),
                                  {"tr_ms": (4.0, 5.0), "te_ms": 1.8, "flip_deg": (12.0, 15.0)}),
        },
        b_values=(100.0, 800.0, 1400.0), reference_b_values=(50.0, 400.0, 800.0), frames=40,
        frame_interval_s=(6.0, 7.5), arrival_delay_s=(22.0, 34.0), aif_scale=(0.55, 0.8),
        fat_sat_residual=(0.2, 0.4), endorectal_coil=True, coil_gain=(2.0, 4.0)),
}


def check_domain(domain: str) -> DomainProtocol:
    """The protocol of ``domain`` ("A" or "B"); InputError otherwise."""
    from DCEDiffLib.errors import InputError

    if domain not in PROTOCOLS:
        raise InputError(f"phantom domain {domain!r}: expected one of {', '.join(DOMAINS)}")
    return PROTOCOLS[domain]


@dataclasses.dataclass
class SeriesPlan:
    """One series as acquired in this case."""

    name: str
    grid: Grid
    motion: Tuple[np.ndarray, np.ndarray]       # anatomy moved by x ↦ R(x − c) + c + t relative to T2W
    sequence: Dict[str, float]
    snr: float
    gain: float
    bias_coefficients: np.ndarray

    def motion_summary(self, centre: np.ndarray) -> Dict[str, object]:
        rot, trans = self.motion
        angles = np.rad2deg(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
        return {"rotation_matrix": [[round(v, 9) for v in row] for row in rot],
                "translation_mm": [round(v, 4) for v in trans], "centre_lps": [round(v, 4) for v in centre],
                "rotation_angle_deg": round(float(angles), 4),
                "translation_norm_mm": round(float(np.linalg.norm(trans)), 4),
                "convention": "anatomy in this series = reference (T2W) anatomy moved by x -> R (x - c) + c + t; "
                              "a T2W point q is found at R (q - c) + c + t in this series"}


def true_series_points(case_meta: dict, series: str, points_lps: np.ndarray) -> np.ndarray:
    """Where T2W points (``points_lps``, (n, 3) LPS mm) lie in ``series`` of a phantom case by its true motion.

    ``case_meta`` is the case's case.json; its ``series.<s>.motion_relative_to_t2w`` follows the convention of
    :meth:`SeriesPlan.motion_summary`. A series without a motion of its own (the T1-pre, the DCE frames) moves with
    the DCE series, whose frames they are. The answer registrations are measured against."""
    motion = case_meta["series"].get(series, {}).get("motion_relative_to_t2w") or \
        case_meta["series"]["dce"]["motion_relative_to_t2w"]
    rotation = np.asarray(motion["rotation_matrix"], dtype=float)
    centre = np.asarray(motion["centre_lps"], dtype=float)
    points = np.asarray(points_lps, dtype=float)
    return (points - centre) @ rotation.T + centre + np.asarray(motion["translation_mm"], dtype=float)


@dataclasses.dataclass
class ExamPlan:
    """Everything drawn about one case's acquisition."""

    domain: DomainProtocol
    orientation: np.ndarray
    series: Dict[str, SeriesPlan]
    frame_times_s: np.ndarray
    arrival_delay_s: float
    aif_scale: float
    venous_delay_s: float
    venous_dispersion_s: float
    fat_sat_residual: float
    b1_mean: float
    b1_coefficients: np.ndarray
    coil_gain: float
    coil_length_mm: float
    fat_suppressed: bool = True

    @property
    def early_frame(self) -> int:
        """The middle time point (the paper's early response)."""
        return len(self.frame_times_s) // 2

    @property
    def late_frame(self) -> int:
        """The last time point (the paper's late response)."""
        return len(self.frame_times_s) - 1


def _draw(rng: np.random.Generator, spec) -> float:
    if isinstance(spec, tuple):
        return float(rng.uniform(*spec))
    return float(spec)


def _random_motion(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.2, MAX_ROTATION_DEG))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
    direction = rng.normal(size=3)
    trans = direction / np.linalg.norm(direction) * rng.uniform(0.3, MAX_TRANSLATION_MM)
    return rot, trans


def draw_orientation(rng: np.random.Generator) -> np.ndarray:
    """The exam's slice orientation (columns = grid axes in LPS), the first draw of :func:`plan_exam`: oblique
    slices shared by the whole exam, mostly a tilt about the left-right axis (ProstateX: up to ~20°)."""
    return rotation_matrix([rng.uniform(-20, 5), rng.uniform(-4, 4), rng.uniform(-3, 3)])


def plan_exam(rng: np.random.Generator, domain: str, anatomy: Anatomy) -> ExamPlan:
    """Draw grids, orientation, motion, sequence parameters, noise, gains, bias and DCE timing of one exam."""
    proto = check_domain(domain)
    orientation = draw_orientation(rng)
    base_bias = rng.normal(0, 0.08, 9)
    base_bias[7] = rng.uniform(0.15, 0.4)   # phased-array: brighter towards anterior and posterior coils
    base_bias[6] = rng.uniform(0.0, 0.2)    # and towards the sides
    series: Dict[str, SeriesPlan] = {}
    for name in SERIES:
        sp = proto.series[name]
        offset = np.array([rng.uniform(*r) for r in sp.fov_offset_mm])
        centre = anatomy.centre_lps + orientation @ offset
        extent = np.asarray(sp.spacing) * (np.asarray(sp.size) - 1)
        origin = centre - orientation @ (extent / 2)
        grid = Grid(tuple(int(v) for v in sp.size), tuple(float(v) for v in sp.spacing),
                    tuple(float(v) for v in origin), tuple(tuple(float(v) for v in row) for row in orientation))
        motion = (np.eye(3), np.zeros(3)) if name == "t2w" else _random_motion(rng)
        sequence = {key: _draw(rng, value) for key, value in sp.sequence.items()}
        bias = base_bias + rng.normal(0, 0.03, 9)
        series[name] = SeriesPlan(name, grid, motion, sequence, _draw(rng, sp.snr), _draw(rng, sp.gain), bias)
    dt = rng.uniform(*proto.frame_interval_s)
    plan = ExamPlan(
        domain=proto, orientation=orientation, series=series, frame_times_s=np.arange(proto.frames) * dt,
        arrival_delay_s=rng.uniform(*proto.arrival_delay_s), aif_scale=rng.uniform(*proto.aif_scale),
        venous_delay_s=rng.uniform(6, 10), venous_dispersion_s=rng.uniform(8, 15),
        fat_sat_residual=rng.uniform(*proto.fat_sat_residual), b1_mean=rng.uniform(0.85, 1.0),
        b1_coefficients=rng.normal(0, 0.04, 3), coil_gain=rng.uniform(*proto.coil_gain),
        coil_length_mm=rng.uniform(*proto.coil_length_mm))
    # Drawn last so that every earlier draw of a seed stays what it was before fat suppression became random.
    plan.fat_suppressed = bool(rng.random() < proto.fat_suppressed_share)
    if not plan.fat_suppressed:
        plan.fat_sat_residual = 1.0
    return plan


def _local_points(grid: Grid, anatomy: Anatomy, motion):
    a0, steps = local_mapping(grid, anatomy, motion)
    k, j, i = (np.arange(n, dtype=np.float32) for n in grid.shape)
    st = steps.astype(np.float32)
    return [np.float32(a0[a]) + k[:, None, None] * st[a, 2] + j[None, :, None] * st[a, 1] + i[None, None, :] * st[a, 0]
            for a in range(3)]


def receive_bias(plan: ExamPlan, series: SeriesPlan, anatomy: Anatomy) -> np.ndarray:
    """Smooth multiplicative receive-coil sensitivity on the series' grid (attached to the patient), with the
    endorectal coil's hot spot in domain B."""
    x, y, z = _local_points(series.grid, anatomy, series.motion)
    bx, by, body_cy = anatomy.body_axes
    xn, yn, zn = x / np.float32(bx), (y - np.float32(body_cy)) / np.float32(by), z / np.float32(100.0)
    c = series.bias_coefficients.astype(np.float32)
    log_bias = (c[0] * xn + c[1] * yn + c[2] * zn + c[3] * xn * yn + c[4] * yn * zn + c[5] * xn * zn
                + c[6] * xn * xn + c[7] * yn * yn + c[8] * zn * zn)
    bias = np.exp(log_bias - c[7] * np.float32(0.3))
    if anatomy.coil_axis_local is not None and plan.coil_gain > 0:
        p0, p1 = (np.asarray(p, dtype=np.float32) for p in anatomy.coil_axis_local)
        d = p1 - p0
        t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / np.float32(d @ d), 0, 1)
        dist = np.sqrt((x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2)
        bias = bias * (1 + np.float32(plan.coil_gain) * np.exp(-dist / np.float32(plan.coil_length_mm)))
    return bias.astype(np.float32)


def transmit_field(plan: ExamPlan, series: SeriesPlan, anatomy: Anatomy) -> np.ndarray:
    """Relative flip angle (B1+) on the series' grid: below nominal on average at 3T in the pelvis, lowest
    centrally, with a small random gradient."""
    x, y, z = _local_points(series.grid, anatomy, series.motion)
    bx, by, body_cy = anatomy.body_axes
    xn, yn = x / np.float32(bx), (y - np.float32(body_cy)) / np.float32(by)
    c = plan.b1_coefficients.astype(np.float32)
    field = np.float32(plan.b1_mean) * (1 + np.float32(0.08) * (xn * xn + yn * yn) + c[0] * xn + c[1] * yn
                                        + c[2] * z / np.float32(100))
    return field.astype(np.float32)


def add_rician_noise(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of standard deviation ``sigma`` per channel."""
    sigma = np.float32(sigma)
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag)


def to_scanner_integers(values: np.ndarray, maximum: int = 4095) -> np.ndarray:
    """Round to the scanner's 12-bit unsigned range, stored as int16."""
    return np.clip(np.rint(values), 0, maximum).astype(np.int16)


def series_summary(plan: ExamPlan, anatomy: Anatomy, name: str, noise_sigma: Optional[float],
                   reference_signal: Optional[float]) -> Dict[str, object]:
    """case.json entry of one series: grid, sequence, noise, gain, motion."""
    s = plan.series[name]
    summary = {"grid": s.grid.to_dict(), "sequence": {k: round(v, 4) for k, v in s.sequence.items()},
               "snr_peripheral_zone": round(s.snr, 3), "intensity_gain": round(s.gain, 4),
               "bias_coefficients": [round(v, 5) for v in s.bias_coefficients],
               "motion_relative_to_t2w": s.motion_summary(anatomy.centre_lps)}
    if noise_sigma is not None:
        summary["noise_sigma"] = round(float(noise_sigma), 6)
    if reference_signal is not None:
        summary["reference_signal_peripheral_zone"] = round(float(reference_signal), 6)
    return summary


def overlap_check(grids: Sequence[Grid], point_lps: np.ndarray) -> bool:
    """Whether ``point_lps`` lies inside every grid (used to keep the gland in every field of view)."""
    for g in grids:
        idx = np.linalg.solve(g.matrix(), np.asarray(point_lps) - np.asarray(g.origin))
        if np.any(idx < -0.5) or np.any(idx > np.asarray(g.size) - 0.5):
            return False
    return True
