"""Tissue properties of the phantom at 3T: relaxation, proton density, diffusion, Tofts kinetics, texture.

Every case draws its own values inside literature ranges (docs/phantom.md lists them with sources), so patients
differ as real ones do. Inside a tissue, smooth random fields make the tissue heterogeneous; one *shared* field
moves T2, ADC and Ktrans together the way cellularity does (denser tissue: shorter T2, lower ADC, higher Ktrans),
which is what lets ADC carry information about enhancement. Lesions get their own values (see
:func:`sample_lesion_tissue`).

Units: t1/t2 in seconds, adc in 10⁻⁶ mm²/s (scanner units) as measured with the reference b-values
(domain A, b = 50/400/800), kurt dimensionless (diffusion kurtosis), ktrans in 1/min, ve/vpa/vpv/fat fractions,
pd relative to the peripheral zone, flow/inflow multiplicative flow effects (T2W/DWI flow void, GRE inflow).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

PROPERTIES = ("pd", "t1", "t2", "adc", "kurt", "ktrans", "ve", "vpa", "vpv", "fat", "flow", "inflow")
# Air / outside the body.
BACKGROUND = {"pd": 0.0, "t1": 1.0, "t2": 0.001, "adc": 0.0, "kurt": 0.0, "ktrans": 0.0, "ve": 0.1,
              "vpa": 0.0, "vpv": 0.0, "fat": 0.0, "flow": 1.0, "inflow": 1.0}
PLASMA_FRACTION_OF_BLOOD = 0.58  # 1 − Hct (Hct 0.42 as with the Parker AIF)

# name: {property: (low, high)} drawn uniformly per case; a single number is fixed. Times in ms here (converted).
# Sources (see docs/phantom.md): de Bazelaire 2004 (T1/T2 at 3T: prostate, muscle, fat, marrow), Stanisz 2005
# (blood, muscle), Gibbs 2001 / Liu 2011 (zonal T2), Tamada 2008 and ProstateX measurements (ADC), Rosenkrantz
# 2012 (kurtosis), Langer 2010 and Vos 2013 (Ktrans/ve), calibrated to the I2CVB relative enhancement table.
# Generator version 2 lowered the gland's Ktrans (PZ, TZ, BPH) to 0.7× of version 1: version 1's gland enhanced
# ~30 % above the real figures (PZ RE 1.24 / 1.29 against 0.93 / 1.07) and plateaued; see docs/phantom.md.
TISSUE_RANGES: Dict[str, Dict[str, object]] = {
    "fat": dict(t1=(350, 420), t2=(120, 150), pd=(0.9, 1.0), adc=(100, 250), kurt=0.0,
                ktrans=(0.005, 0.02), ve=(0.05, 0.1), fat=1.0),
    "muscle": dict(t1=(1350, 1500), t2=(35, 50), pd=(0.68, 0.78), adc=(1300, 1550), kurt=(0.5, 0.8),
                   ktrans=(0.03, 0.07), ve=(0.08, 0.15)),
    "cortical_bone": dict(t1=1000, t2=1.5, pd=0.05, adc=50, kurt=0.0, ktrans=0.0, ve=0.05),
    "marrow": dict(t1=(450, 600), t2=(110, 140), pd=(0.85, 0.95), adc=(300, 500), kurt=0.3,
                   ktrans=(0.02, 0.05), ve=(0.08, 0.15), fat=0.8),
    "urine": dict(t1=(2500, 3200), t2=(600, 1200), pd=1.0, adc=(2800, 3100), kurt=0.0, ktrans=0.0, ve=0.05),
    "bladder_wall": dict(t1=(1300, 1500), t2=(40, 60), pd=0.75, adc=(1400, 1700), kurt=0.6,
                         ktrans=(0.08, 0.15), ve=(0.15, 0.25)),
    "rectal_wall": dict(t1=(1200, 1400), t2=(50, 70), pd=0.8, adc=(1100, 1400), kurt=0.7,
                        ktrans=(0.15, 0.3), ve=(0.2, 0.35)),
    "rectal_content": dict(t1=1000, t2=(20, 60), pd=(0.0, 0.15), adc=(200, 800), kurt=0.0, ktrans=0.0, ve=0.05),
    "artery": dict(t1=(1850, 2000), t2=(150, 275), pd=0.9, adc=(2000, 3000), kurt=0.0, ktrans=0.0, ve=0.05,
                   vpa=PLASMA_FRACTION_OF_BLOOD, flow=(0.05, 0.15), inflow=(1.4, 1.8)),
    "vein": dict(t1=(1850, 2000), t2=(100, 200), pd=0.9, adc=(2000, 3000), kurt=0.0, ktrans=0.0, ve=0.05,
                 vpv=PLASMA_FRACTION_OF_BLOOD, flow=(0.3, 0.7), inflow=(1.1, 1.4)),
    # Capsular arteries and the periprostatic venous plexus: enhance strongly and early.
    "periprostatic_vessel": dict(t1=(1700, 1900), t2=(150, 250), pd=0.95, adc=(1800, 2400), kurt=0.1,
                                 ktrans=(0.15, 0.3), ve=(0.15, 0.25), vpa=(0.15, 0.3), vpv=(0.15, 0.3),
                                 flow=(0.8, 1.0), inflow=(1.1, 1.3)),
    "peripheral_zone": dict(t1=(1550, 1800), t2=(140, 200), pd=1.0, adc=(1450, 1900), kurt=(0.5, 0.7),
                            ktrans=(0.05, 0.11), ve=(0.25, 0.4)),
    "transition_zone": dict(t1=(1500, 1700), t2=(85, 115), pd=(0.93, 0.98), adc=(1150, 1450), kurt=(0.6, 0.8),
                            ktrans=(0.07, 0.15), ve=(0.3, 0.45)),
    "bph_stromal": dict(t1=(1450, 1600), t2=(65, 85), pd=(0.88, 0.93), adc=(950, 1200), kurt=(0.8, 0.9),
                        ktrans=(0.14, 0.28), ve=(0.3, 0.4)),
    "bph_glandular": dict(t1=(1600, 1800), t2=(140, 200), pd=(0.97, 1.0), adc=(1500, 1900), kurt=(0.5, 0.6),
                          ktrans=(0.08, 0.17), ve=(0.35, 0.5)),
    "anterior_fibromuscular_stroma": dict(t1=(1400, 1550), t2=(45, 60), pd=(0.78, 0.85), adc=(1100, 1350),
                                          kurt=0.8, ktrans=(0.04, 0.08), ve=(0.12, 0.2)),
    "seminal_vesicle": dict(t1=(2000, 2600), t2=(200, 350), pd=1.0, adc=(1600, 2200), kurt=0.3,
                            ktrans=(0.03, 0.08), ve=(0.1, 0.2)),
}

# Heterogeneity: property → (shared-field coefficient, independent-field coefficient, patch coefficient) of
# log-value modulation, and the correlation length of the fields in mm.
TEXTURES: Dict[str, Tuple[Dict[str, Tuple[float, float, float]], float]] = {
    "fat": ({"pd": (0.0, 0.04, 0.0), "t2": (0.0, 0.03, 0.0)}, 9.0),
    "muscle": ({"pd": (0.0, 0.05, 0.0), "t2": (0.05, 0.04, 0.0), "ktrans": (0.0, 0.1, 0.0)}, 12.0),
    "marrow": ({"pd": (0.0, 0.06, 0.0), "t2": (0.0, 0.06, 0.0)}, 8.0),
    # Prostatitis/atrophy-like bands in the PZ: darker T2, lower ADC, a little more enhancement.
    "peripheral_zone": ({"t2": (-0.08, 0.05, -0.35), "adc": (-0.05, 0.04, -0.18), "ktrans": (0.1, 0.08, 0.3),
                         "pd": (0.0, 0.02, -0.04)}, 7.0),
    "transition_zone": ({"t2": (-0.12, 0.06, 0.0), "adc": (-0.07, 0.04, 0.0), "ktrans": (0.15, 0.08, 0.0),
                         "pd": (-0.02, 0.02, 0.0)}, 5.0),
    "bph_stromal": ({"t2": (-0.06, 0.04, 0.0), "adc": (-0.05, 0.03, 0.0), "ktrans": (0.1, 0.06, 0.0)}, 4.0),
    "bph_glandular": ({"t2": (0.08, 0.05, 0.0), "adc": (0.05, 0.03, 0.0), "ktrans": (-0.05, 0.06, 0.0)}, 4.0),
    "anterior_fibromuscular_stroma": ({"t2": (0.0, 0.06, 0.0)}, 6.0),
    "seminal_vesicle": ({"t2": (0.0, 0.1, 0.0), "pd": (0.0, 0.05, 0.0)}, 3.0),
    "rectal_wall": ({"t2": (0.0, 0.08, 0.0), "ktrans": (0.0, 0.15, 0.0)}, 5.0),
    "lesion": ({"t2": (-0.05, 0.06, 0.0), "adc": (-0.06, 0.04, 0.0), "ktrans": (0.12, 0.1, 0.0)}, 3.0),
}


# Thin dark septa: the zero level set of the tissue's shared field becomes a network of fibrous lines, PD lowered
# by up to ``depth``; ``width`` is the field value range that counts as "on the line" (sets the thickness).
SEPTA: Dict[str, Tuple[float, float]] = {"fat": (0.5, 0.08), "marrow": (0.3, 0.08)}


class SmoothRandomField:
    """A zero-mean, unit-variance smooth random field in space (mm): a sum of random cosine waves whose
    wave vectors are Gaussian with scale 1/``length_mm`` (approximately a Gaussian-covariance field)."""

    def __init__(self, rng: np.random.Generator, length_mm: float, modes: int = 8):
        self.k = (rng.normal(size=(modes, 3)) / length_mm).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, modes).astype(np.float32)
        self.norm = np.float32(np.sqrt(2.0 / modes))

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        out = np.zeros(np.broadcast(x, y, z).shape, dtype=np.float32)
        for (kx, ky, kz), ph in zip(self.k, self.phase):
            out += np.cos(kx * x + ky * y + kz * z + ph)
        return out * self.norm


@dataclasses.dataclass
class Tissue:
    """One tissue of one case: base property values and optional texture."""

    name: str
    values: Dict[str, float]
    texture: Dict[str, Tuple[float, float, float]] = dataclasses.field(default_factory=dict)
    fields: Optional[Tuple[SmoothRandomField, SmoothRandomField]] = None

    def values_at(self, x, y, z, props) -> Dict[str, object]:
        """Property values at local points (scalars where the tissue has no texture for a property)."""
        out: Dict[str, object] = {}
        textured = [p for p in props if p in self.texture]
        septa = SEPTA.get(self.name) if "pd" in props and self.fields is not None else None
        if septa is not None and "pd" not in textured:
            textured.append("pd")
        if textured and self.fields is not None:
            # Evaluate only the fields the requested properties use (they cost most of the rasterisation).
            coefficients = {p: self.texture.get(p, (0.0, 0.0, 0.0)) for p in textured}
            uses_shared = septa is not None or any(c[0] or c[2] for c in coefficients.values())
            uses_indep = any(c[1] for c in coefficients.values())
            shared = self.fields[0](x, y, z) if uses_shared else 0.0
            indep = self.fields[1](x, y, z) if uses_indep else 0.0
            patch = None
            for p in textured:
                cs, ci, cp = coefficients[p]
                log_mod = np.float32(cs) * shared + np.float32(ci) * indep
                if cp:
                    if patch is None:  # sharp-edged patches where the shared field is high
                        patch = 1.0 / (1.0 + np.exp(-6.0 * (shared - 1.0)))
                    log_mod = log_mod + cp * patch
                out[p] = np.float32(self.values[p]) * np.exp(log_mod)
            if septa is not None:
                depth, width = septa
                out["pd"] = out["pd"] * (1 - np.float32(depth) * np.exp(-(shared / np.float32(width)) ** 2))
        for p in props:
            if p not in out:
                out[p] = np.float32(self.values[p])
        return out

    def summary(self) -> Dict[str, float]:
        """Base values in the units of case.json (T1/T2 in ms)."""
        result = {}
        for key, value in self.values.items():
            if key in ("t1", "t2"):
                result[key + "_ms"] = round(value * 1000.0, 2)
            else:
                result[key] = round(float(value), 5)
        return result


def _draw(rng: np.random.Generator, spec) -> float:
    if isinstance(spec, tuple):
        return float(rng.uniform(spec[0], spec[1]))
    return float(spec)


def _complete(values: Dict[str, float]) -> Dict[str, float]:
    full = dict(BACKGROUND)
    full.update({"flow": 1.0, "inflow": 1.0})
    full.update(values)
    return full


def sample_tissues(rng: np.random.Generator) -> Dict[str, Tissue]:
    """Draw every tissue's values for one case (inter-patient variation) and its texture fields."""
    tissues: Dict[str, Tissue] = {}
    for name, spec in TISSUE_RANGES.items():
        values = {key: _draw(rng, value) for key, value in spec.items()}
        for key in ("t1", "t2"):
            values[key] = values[key] / 1000.0
        texture, length = TEXTURES.get(name, ({}, 10.0))
        fields = (SmoothRandomField(rng, length), SmoothRandomField(rng, length)) if texture else None
        tissues[name] = Tissue(name, _complete(values), dict(texture), fields)
    return tissues


LESION_KINDS = ("textbook", "less_enhancing")


def sample_lesion_tissue(rng: np.random.Generator, name: str, kind: str, zone: Tissue) -> Tuple[Tissue, Dict]:
    """A lesion's tissue and a description of it.

    ``textbook``: high Ktrans, early wash-in and wash-out, low ADC; ``less_enhancing``: enhances less than the
    gland (as in the I2CVB example of realism-targets.md), ADC moderately low. Within each kind an
    aggressiveness score z ∈ [0, 1] lowers ADC and T2 and raises Ktrans, each with its own scatter, so ADC predicts
    enhancement only as well as it does in patients (Langer 2010: ADC and Ktrans correlate moderately).
    """
    z = float(rng.uniform(0.0, 1.0))
    zv = zone.values
    if kind == "textbook":
        adc = float(np.clip(1000.0 - 380.0 * z + rng.normal(0, 60), 560, 1050))
        ktrans = float(np.clip(0.45 + 0.6 * z + rng.normal(0, 0.1), 0.4, 1.3))
        ve = float(rng.uniform(0.25, 0.4))
        vpa = float(rng.uniform(0.02, 0.06))
        t2 = float(np.clip(78.0 - 22.0 * z + rng.normal(0, 5), 50, 85)) / 1000.0
        kurt = 0.9 + 0.4 * z
    elif kind == "less_enhancing":
        z *= 0.6
        adc = float(np.clip(1150.0 - 300.0 * z + rng.normal(0, 60), 800, 1250))
        ktrans = float(zv["ktrans"] * rng.uniform(0.45, 0.75))
        ve = float(rng.uniform(0.2, 0.3))
        vpa = 0.0
        t2 = float(np.clip(85.0 - 20.0 * z + rng.normal(0, 6), 60, 95)) / 1000.0
        kurt = 0.8 + 0.3 * z
    else:
        raise ValueError(f"lesion kind {kind!r}: expected one of {LESION_KINDS}")
    values = _complete({
        "t1": zv["t1"] * float(rng.uniform(0.92, 1.0)), "t2": t2, "pd": zv["pd"] * float(rng.uniform(0.84, 0.93)),
        "adc": adc, "kurt": kurt, "ktrans": ktrans, "ve": ve, "vpa": vpa, "vpv": 0.0,
    })
    texture, length = TEXTURES["lesion"]
    tissue = Tissue(name, values, dict(texture), (SmoothRandomField(rng, length), SmoothRandomField(rng, length)))
    info = {"kind": kind, "aggressiveness": round(z, 4), "ktrans_per_min": round(ktrans, 4), "ve": round(ve, 4),
            "kep_per_min": round(ktrans / ve, 4), "vp": round(vpa, 4), "adc": round(adc, 1),
            "t2_ms": round(t2 * 1000, 2), "t1_ms": round(values["t1"] * 1000, 2), "pd": round(values["pd"], 4)}
    return tissue, info
