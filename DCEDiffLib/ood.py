"""Out-of-distribution (OOD) check: does an exam look like what the model was trained on?

Three steps, all on the model's own view of the exam (the normalised condition volumes on the 160×160×16
working grid), so that what is compared is what the network sees:

1. :func:`input_statistics` measures one exam: normalised-intensity histograms per modality in the body and in the
   central gland region, the ADC's raw range (units), noise, a left–right intensity ramp (bias field), the contrast
   relations between the modalities (correlations in the body, gland-vs-body contrast) and, when known, each
   series' voxel size and field of view.
2. :func:`training_statistics` turns the statistics of the training cases into what the model card stores
   (``input_statistics``): per feature a reference (mean histogram, or centre and spread of a number) and a
   threshold set from the training cases themselves (``MARGIN`` × the ``PERCENTILE``-th percentile of their own
   leave-one-out distances).
3. :func:`ood_score` compares an exam with the card: every feature's distance divided by its threshold; the score
   is the largest of these ratios, flagged above 1, with one human-readable reason per feature beyond its
   threshold (and a guess at swapped series when exchanging two inputs makes the exam fit). An input whose raw
   intensities are negated (a sign-flipped export, DCEDiffLib/intensity_sign.py) is flagged, named first, and
   left out of the swap guesses: exchanging files does not undo a sign flip.
4. :func:`apply_data_domain` adds the rule statistics cannot promise: a phantom-only model flags every exam whose
   inputs are not marked as DCEDiff phantoms (DCEDiffLib/data_source.py).

No torch here: this runs in the pipeline after preprocessing and in ``scripts/add_input_statistics.py``.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from DCEDiffLib.errors import InputError
from DCEDiffLib.intensity_sign import looks_negated, negated_reason, sign_measure
from DCEDiffLib.modalities import DESCRIPTIONS, INPUT_MODALITIES

STATISTICS_VERSION = 1
HISTOGRAM_BINS = np.linspace(-1.5, 1.5, 31)   # normalised units; values outside fall into the end bins
BODY_THRESHOLD = -0.8                          # normalised T2W/PD above this = not air (air sits near -1)
GLAND_SEMI_AXES_MM = (18.0, 18.0, 9.0)         # (x, y, z): the central ellipsoid, mostly prostate on the grid
DEFAULT_SPACING_MM = (1.5, 1.5, 3.0)           # working grid (i, j, k), see working_grid.GRID_SPACING
MIN_VOXELS = 50                                # fewer body/gland voxels than this: the region is not measured
MARGIN = 1.5                                   # threshold = MARGIN × the training cases' own PERCENTILE distance
PERCENTILE = 95.0
SWAP_CANDIDATES = (("t2w", "pd"), ("t2w", "t1pre"), ("pd", "t1pre"))
ADC_SCANNER_UNITS = "10^-6 mm^2/s"

# Per feature kind: how a value is compared, and the smallest spread / threshold allowed, so that a feature the
# training cases never varied (e.g. one voxel size in a phantom) still tolerates ordinary differences.
KINDS = {
    "histogram": {"min_threshold": 0.1},      # earth mover's distance, normalised units
    "linear": {"min_scale": 0.05, "min_z": 3.0},
    "log": {"min_scale": 0.05, "min_z": 3.0},  # compared as log10(value): 0.05 ≈ a 12 % spread
    "log_upper": {"min_scale": 0.05, "min_z": 3.0},  # the same, only values above the centre count (noise:
                                                     # a cleaner image than any training case is no risk)
    # a level (0–1 of the normalised range) that matters only below the training cases' lowest: distance =
    # log(lowest / value), so the floor log(1.25) flags a level a fifth or more below every training case
    "level_lower": {"min_threshold": math.log(1.25)},
}


# ------------------------------------------------------------------------------------------------ measuring

def _name(modality: str) -> str:
    return f"{DESCRIPTIONS.get(modality, modality)} ({modality})"


def gland_radius(shape: Sequence[int], spacing_mm: Sequence[float] = DEFAULT_SPACING_MM) -> np.ndarray:
    """Each voxel's distance from the centre of a (K, H, W) grid with ``spacing_mm`` (i, j, k), in units of the
    central ellipsoid's semi-axes ``GLAND_SEMI_AXES_MM`` (1 = on the ellipsoid; the grid centres the prostate)."""
    k, h, w = (int(s) for s in shape)
    zz, yy, xx = np.ogrid[:k, :h, :w]
    ax, ay, az = (a / float(s) for a, s in zip(GLAND_SEMI_AXES_MM, spacing_mm))
    squared = (((xx - (w - 1) / 2) / ax) ** 2 + ((yy - (h - 1) / 2) / ay) ** 2
               + ((zz - (k - 1) / 2) / max(az, 0.5)) ** 2)
    return np.sqrt(squared).astype(np.float32)


def range_level(values: np.ndarray) -> float:
    """Where the median of normalised values lies in their [-1, 1] range, 0 (bottom) to 1 (top): the
    ``gland_level`` feature when the values are a T1-pre's gland region."""
    return float((np.median(values) + 1.0) / 2.0)


def gland_region(shape: Sequence[int], spacing_mm: Sequence[float] = DEFAULT_SPACING_MM) -> np.ndarray:
    """A central ellipsoid (semi-axes ``GLAND_SEMI_AXES_MM``) on a (K, H, W) grid with ``spacing_mm`` (i, j, k):
    the working grid is centred on the prostate, so this is mostly gland when no prostate mask is given."""
    return gland_radius(shape, spacing_mm) <= 1.0


def _histogram(values: np.ndarray) -> Optional[List[float]]:
    if values.size < MIN_VOXELS:
        return None
    clipped = np.clip(values, HISTOGRAM_BINS[0], HISTOGRAM_BINS[-1])
    counts, _ = np.histogram(clipped, bins=HISTOGRAM_BINS)
    return [float(c) for c in counts / max(counts.sum(), 1)]


def _noise(volume: np.ndarray, body: np.ndarray) -> Optional[float]:
    """Robust noise level (normalised units): the median absolute difference of in-plane neighbours in the body,
    scaled to a Gaussian σ (1.4826 / √2); edges are a minority, so the median ignores them."""
    diff = volume[:, :, 1:] - volume[:, :, :-1]
    both = body[:, :, 1:] & body[:, :, :-1]
    values = diff[both]
    if values.size < MIN_VOXELS:
        return None
    return float(1.4826 * np.median(np.abs(values)) / math.sqrt(2.0))


def _lr_ramp(volume: np.ndarray, body: np.ndarray) -> Optional[float]:
    """A bias field's signature that anatomy does not mimic: a left–right intensity ramp. The pelvis is close to
    mirror-symmetric about the grid's centre line, so differences between mirrored body voxels, divided by their
    distance, are shading: the median is the rise from the centre to the edge (normalised units, signed).
    A front–back or centre–edge shading is not measured here (anatomy differs front to back); the histograms
    see it."""
    width = volume.shape[2]
    offsets = (np.arange(width) - (width - 1) / 2) / (width / 2)
    right = np.flatnonzero(offsets >= 0.2)   # away from the centre line, where differences are mostly noise
    left = width - 1 - right
    both = body[:, :, right] & body[:, :, left]
    if both.sum() < MIN_VOXELS:
        return None
    ratio = (volume[:, :, right] - volume[:, :, left]) / (2 * offsets[right])
    return float(np.median(ratio[both]))


def series_geometry(image) -> Optional[Dict[str, float]]:
    """Voxel size and field of view of one series (a SimpleITK image, or a NIfTI/NRRD/MHA file whose header is
    read); None for what cannot be read cheaply (a DICOM folder)."""
    import SimpleITK as sitk
    from pathlib import Path

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            return None
        from DCEDiffLib.volume_io import read_header

        reader = read_header(path)  # header only, no pixel data
        if reader is None:
            return None
        spacing, size, direction = reader.GetSpacing(), reader.GetSize(), reader.GetDirection()
    elif isinstance(image, sitk.Image):
        spacing, size, direction = image.GetSpacing(), image.GetSize(), image.GetDirection()
    else:
        return None
    if len(spacing) < 3:
        return None
    # by patient axis, as the axial working grid sees the series (a T2W stored transposed or with its slice axis
    # first is the same acquisition; its stored third axis is not its slice thickness)
    from DCEDiffLib.working_grid import lps_axis_order

    dim = len(spacing)
    order = lps_axis_order(np.asarray(direction, dtype=float).reshape(dim, dim)[:3, :3].ravel())
    spacing = [float(spacing[order[a]]) for a in range(3)]
    size = [int(size[order[a]]) for a in range(3)]
    return {"inplane_mm": float((spacing[0] + spacing[1]) / 2), "slice_mm": float(spacing[2]),
            "fov_mm": float(max(size[0] * spacing[0], size[1] * spacing[1]))}


def input_statistics(conditions: np.ndarray, condition_names: Sequence[str] = INPUT_MODALITIES, *,
                     adc_raw: Optional[np.ndarray] = None, geometry: Optional[Mapping[str, Mapping]] = None,
                     prostate_mask: Optional[np.ndarray] = None,
                     spacing_mm: Sequence[float] = DEFAULT_SPACING_MM, missing: Sequence[str] = (),
                     raw_intensities: Optional[Mapping[str, np.ndarray]] = None) -> dict:
    """Statistics of one exam as the model sees it.

    ``conditions``: (C, K, H, W) normalised condition volumes in ``condition_names`` order (the model's input);
    ``adc_raw``: (K, H, W) ADC on its original scale (units); ``geometry``: modality → :func:`series_geometry`
    of the original series; ``prostate_mask``: (K, H, W) gland mask on the grid (default: the central
    ellipsoid, :func:`gland_region`); ``spacing_mm``: the grid spacing (i, j, k); ``missing``: inputs that were
    not given (their channel is a constant stand-in): left out of every statistic (histograms, noise, shading,
    correlations, the body mask, geometry) and listed in ``missing_inputs``; ``raw_intensities``: modality →
    its intensities on the original scale (any shape), whose sign is kept as ``sign`` (:func:`sign_measure`).
    Returns a JSON-safe dict.
    """
    conditions = np.asarray(conditions)
    names = list(condition_names)
    if conditions.ndim != 4 or conditions.shape[0] != len(names):
        raise InputError(f"OOD check: conditions of shape {conditions.shape}; expected (C, K, H, W) with "
                         f"C = {len(names)} ({', '.join(names)})")
    shape = conditions.shape[1:]
    missing = [m for m in names if m in set(missing)]
    volumes = {m: np.nan_to_num(conditions[i].astype(np.float64), nan=-1.0) for i, m in enumerate(names)
               if m not in missing}
    if not volumes:
        raise InputError(f"OOD check: every input ({', '.join(names)}) is missing; nothing to measure")
    names = [m for m in names if m not in missing]
    # Body: not air in T2W or PD (muscle is almost as dark as air on T2W, urine on PD, never both); ADC is not
    # used (fat is dark there). The maximum is symmetric, so two swapped series keep the same body.
    anchors = [volumes[m] for m in ("t2w", "pd") if m in volumes] or list(volumes.values())
    body = np.max(anchors, axis=0) > BODY_THRESHOLD
    if prostate_mask is not None:
        gland = np.asarray(prostate_mask) > 0
        if gland.shape != shape:
            raise InputError(f"OOD check: prostate mask of shape {gland.shape}; expected the grid shape {shape}")
        region = "prostate mask"
    else:
        gland = gland_region(shape, spacing_mm)
        region = "central ellipsoid"
    modalities = {}
    for m, volume in volumes.items():
        in_body, in_gland = volume[body], volume[gland]
        entry = {"hist_body": _histogram(in_body), "hist_gland": _histogram(in_gland),
                 "noise": _noise(volume, body), "bias_lr": _lr_ramp(volume, body), "gland_contrast": None,
                 "gland_level": None}
        if in_body.size >= MIN_VOXELS and in_gland.size >= MIN_VOXELS:
            entry["gland_contrast"] = float(np.median(in_gland) - np.median(in_body))
        if in_gland.size >= MIN_VOXELS:  # where the gland sits in the normalised range, 0 (bottom) to 1 (top)
            entry["gland_level"] = range_level(in_gland)
        modalities[m] = entry
    correlations = {}
    if body.sum() >= MIN_VOXELS:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                x, y = volumes[a][body], volumes[b][body]
                if x.std() > 0 and y.std() > 0:
                    correlations[f"{a}|{b}"] = float(np.corrcoef(x, y)[0, 1])
    adc = None
    if adc_raw is not None:
        raw = np.asarray(adc_raw, dtype=np.float64)
        if raw.shape != shape:
            raise InputError(f"OOD check: raw ADC of shape {raw.shape}; expected the grid shape {shape}")
        gland_values = raw[gland & np.isfinite(raw)]
        body_values = raw[body & np.isfinite(raw)]
        if gland_values.size >= MIN_VOXELS:
            adc = {"gland_median": float(np.median(gland_values)),
                   "gland_p5_p95": [float(v) for v in np.percentile(gland_values, [5, 95])],
                   "body_p99": float(np.percentile(body_values, 99)) if body_values.size >= MIN_VOXELS else None}
    out = {"version": STATISTICS_VERSION, "conditions": names, "gland_region": region,
           "body_fraction": round(float(body.mean()), 4), "modalities": modalities,
           "correlations": correlations, "adc": adc,
           "geometry": {m: dict(g) for m, g in (geometry or {}).items() if g and m not in missing}}
    if raw_intensities is not None:
        out["sign"] = {m: sign_measure(v) for m, v in raw_intensities.items() if m not in missing}
    if missing:
        out["missing_inputs"] = missing
    return out


def case_statistics(case, conditions: np.ndarray, condition_names: Sequence[str],
                    inputs: Optional[Mapping[str, object]] = None, use_prostate_mask: bool = False,
                    missing: Sequence[str] = ()) -> dict:
    """:func:`input_statistics` of a ``PreprocessedCase`` (the pipeline's view): raw ADC and grid spacing from
    the case, geometry from the original T2W and the other inputs as preprocessing read them (``case.input_geometry``;
    a case read back from disk has none: then their files' headers, where cheap to read).
    ``missing``: inputs not given, skipped (see :func:`input_statistics`)."""
    import SimpleITK as sitk

    geometry = {"t2w": series_geometry(case.t2w)}
    read = getattr(case, "input_geometry", None) or {}  # the series as preprocessing read them (DICOM included)
    for m in condition_names:
        if m == "t2w" or m in missing:
            continue
        if m in read:
            geometry[m] = read[m]
        elif inputs is not None and inputs.get(m) is not None:
            geometry[m] = series_geometry(inputs[m])
    mask = None
    if use_prostate_mask and "prostate_mask" in case.images:
        mask = sitk.GetArrayFromImage(case.images["prostate_mask"])
    adc = sitk.GetArrayFromImage(case.images["adc"]) if "adc" in case.images else None
    raw = {m: sitk.GetArrayViewFromImage(case.images[m]) for m in condition_names
           if m in case.images and m not in missing}
    return input_statistics(conditions, condition_names, adc_raw=adc, geometry=geometry, prostate_mask=mask,
                            spacing_mm=case.grid.spacing, missing=missing, raw_intensities=raw)


# ------------------------------------------------------------------------------------------------ features

def _features(statistics: Mapping) -> Dict[str, Tuple[str, object]]:
    """Flatten statistics into feature name → (kind, value); missing measurements are left out."""
    out: Dict[str, Tuple[str, object]] = {}
    for m, entry in (statistics.get("modalities") or {}).items():
        for region in ("body", "gland"):
            if entry.get(f"hist_{region}") is not None:
                out[f"{m}.hist_{region}"] = ("histogram", entry[f"hist_{region}"])
        for key, kind in (("noise", "log_upper"), ("bias_lr", "linear"), ("gland_contrast", "linear")):
            if entry.get(key) is not None:
                out[f"{m}.{key}"] = (kind, entry[key])
        # The T1-pre's gland level sets the scale of the drawn enhancement (docs/preprocessing.md, "The gland as
        # the T1-pre's reference tissue"): below every training exam, the relative enhancement comes out too high.
        if m == "t1pre" and entry.get("gland_level") is not None:
            out["t1pre.gland_level"] = ("level_lower", entry["gland_level"])
    for pair, r in (statistics.get("correlations") or {}).items():
        out[f"corr.{pair}"] = ("linear", r)
    adc = statistics.get("adc") or {}
    for key in ("gland_median", "body_p99"):
        if adc.get(key) is not None:
            out[f"adc_raw.{key}"] = ("log", adc[key])
    for m, geo in (statistics.get("geometry") or {}).items():
        for key in ("inplane_mm", "slice_mm", "fov_mm"):
            if geo.get(key) is not None:
                out[f"geometry.{m}.{key}"] = ("log", geo[key])
    return out


def _log(value: float) -> float:
    return math.log10(max(float(value), 1e-12))  # an ADC of 0 (or less) is far from anything trained


def _emd(a: Sequence[float], b: Sequence[float]) -> float:
    """Earth mover's (Wasserstein-1) distance of two histograms on ``HISTOGRAM_BINS``, in normalised units: how
    far the voxels' intensities would have to move on average. Unlike a bin-wise distance it grows with the size
    of a shift, so a narrow gland peak that moves a little is not already "completely different"."""
    cdf = np.cumsum(np.asarray(a, dtype=np.float64)) - np.cumsum(np.asarray(b, dtype=np.float64))
    return float(np.abs(cdf).sum() * (HISTOGRAM_BINS[1] - HISTOGRAM_BINS[0]))


def _scalar_reference(values: np.ndarray, kind: str) -> Tuple[float, float]:
    """Centre (median) and spread (1.4826 × MAD, at least the kind's floor) of training values."""
    centre = float(np.median(values))
    spread = float(1.4826 * np.median(np.abs(values - centre)))
    return centre, max(spread, KINDS[kind]["min_scale"])


def training_statistics(cases: Sequence[Mapping], margin: float = MARGIN, percentile: float = PERCENTILE,
                        data_description: Optional[str] = None) -> dict:
    """Aggregate per-case :func:`input_statistics` of the training cases into the model card's
    ``input_statistics``: per feature a reference and a threshold = ``margin`` × the ``percentile``-th percentile of
    the training cases' own leave-one-out distances (never below the kind's floor)."""
    cases = list(cases)
    if len(cases) < 2:
        raise InputError(f"training statistics: {len(cases)} case(s); expected at least 2 training cases")
    regions = {c.get("gland_region") for c in cases}
    if len(regions) != 1:
        raise InputError(f"training statistics: cases measured with different gland regions {sorted(regions)}; "
                         "expected one kind for all")
    flat = [_features(c) for c in cases]
    names = sorted(set().union(*flat))
    features = {}
    for name in names:
        present = [f[name] for f in flat if name in f]
        if len(present) < 2:
            continue
        kind = present[0][0]
        if kind == "level_lower":
            raw = np.asarray([float(v) for _, v in present])
            distances = [_level_below(raw[i], float(np.delete(raw, i).min())) for i in range(len(raw))]
            threshold = max(margin * float(np.percentile(distances, percentile)), KINDS[kind]["min_threshold"])
            features[name] = {"kind": kind, "minimum": round(float(raw.min()), 6), "threshold": round(threshold, 6),
                              "training_range": [round(float(raw.min()), 6), round(float(raw.max()), 6)]}
        elif kind == "histogram":
            hists = np.asarray([v for _, v in present], dtype=np.float64)
            total = hists.sum(axis=0)
            n = len(hists)
            distances = np.asarray([_emd(h, (total - h) / (n - 1)) for h in hists])  # leave-one-out
            threshold = max(margin * float(np.percentile(distances, percentile)), KINDS[kind]["min_threshold"])
            features[name] = {"kind": kind, "reference": [round(float(v), 6) for v in total / n],
                              "threshold": round(threshold, 6),
                              "training_distance_max": round(float(distances.max()), 6)}
        else:
            raw = np.asarray([float(v) for _, v in present])
            values = np.asarray([_log(v) for v in raw]) if kind.startswith("log") else raw
            z = []
            for i in range(len(values)):  # leave-one-out: a case is never its own reference
                rest = np.delete(values, i)
                centre, spread = _scalar_reference(rest, kind)
                z.append(_z(values[i], centre, spread, kind))
            centre, spread = _scalar_reference(values, kind)
            threshold = margin * max(float(np.percentile(z, percentile)), KINDS[kind]["min_z"])
            features[name] = {"kind": kind, "centre": round(centre, 6), "scale": round(spread, 6),
                              "threshold": round(threshold, 4),
                              "training_range": [round(float(raw.min()), 6), round(float(raw.max()), 6)]}
    return {"version": STATISTICS_VERSION, "cases": len(cases), "conditions": list(cases[0].get("conditions", [])),
            "gland_region": regions.pop(), "margin": margin, "percentile": percentile,
            "histogram_bins": [round(float(b), 6) for b in HISTOGRAM_BINS],
            "body_threshold": BODY_THRESHOLD, "gland_semi_axes_mm": list(GLAND_SEMI_AXES_MM),
            "description": data_description or "", "features": features}


# ------------------------------------------------------------------------------------------------ scoring

def _z(x: float, centre: float, spread: float, kind: str) -> float:
    """Distance of a (log-)value from the centre in spreads; one-sided for ``log_upper``."""
    deviation = x - centre
    return (max(deviation, 0.0) if kind == "log_upper" else abs(deviation)) / spread


def _level_below(value: float, minimum: float) -> float:
    """How far a level lies below ``minimum``: log(minimum / value), 0 at or above it (a level at the very bottom
    counts as 1e-4, so the distance stays finite)."""
    if value >= minimum:
        return 0.0
    return math.log(minimum / max(value, 1e-4))


def _distance(kind: str, value, reference: Mapping) -> float:
    if kind == "histogram":
        return _emd(value, reference["reference"])
    if kind == "level_lower":
        return _level_below(float(value), float(reference["minimum"]))
    x = _log(value) if kind.startswith("log") else float(value)
    return _z(x, float(reference["centre"]), float(reference["scale"]), kind)


def _ratios(features: Mapping[str, Tuple[str, object]], card_features: Mapping[str, Mapping]
            ) -> Dict[str, Tuple[float, float]]:
    """Feature → (distance / threshold, distance) for every feature both sides have."""
    out = {}
    for name, reference in card_features.items():
        if name not in features or features[name][0] != reference.get("kind"):
            continue
        kind, value = features[name]
        if kind == "histogram" and len(value) != len(reference["reference"]):
            continue
        distance = _distance(kind, value, reference)
        out[name] = (distance / float(reference["threshold"]), distance)
    return out


def _fmt(value: float) -> str:
    value = float(value)
    if value != 0 and (abs(value) < 0.01 or abs(value) >= 10000):
        return f"{value:.2g}"
    return f"{value:.3g}" if abs(value) >= 1 else f"{value:.2f}"


def _range(reference: Mapping) -> str:
    low, high = reference["training_range"]
    return f"{_fmt(low)}–{_fmt(high)}" if _fmt(low) != _fmt(high) else _fmt(low)


def _reason(name: str, value, reference: Mapping, distance: float) -> str:
    """One sentence naming the input, what it has and what the training cases had."""
    parts = name.split(".")
    if parts[0] == "corr":
        a, b = parts[1].split("|")
        return (f"{_name(a)} vs {_name(b)}: correlation in the body {float(value):+.2f}; the training cases had "
                f"{float(reference['training_range'][0]):+.2f} to {float(reference['training_range'][1]):+.2f} "
                "(the contrast relation between the series differs: another sequence or a mix-up?)")
    if parts[0] == "adc_raw":
        where = "median in the central gland" if parts[1] == "gland_median" else "99th percentile in the body"
        text = (f"{_name('adc')}: {where} {_fmt(value)}; the training cases had {_range(reference)} "
                f"(scanner units {ADC_SCANNER_UNITS})")
        centre = 10 ** float(reference["centre"])
        # a gland ADC of 1.2e-3 mm²/s is 1200 in 10⁻⁶ mm²/s, 1.2 in 10⁻³ mm²/s (µm²/ms) and 0.0012 in mm²/s
        if centre / 1e5 < float(value) < centre / 100:
            text += (f" — values about 1000× smaller mean the ADC is in 10⁻³ mm²/s (µm²/ms): a units error (expected "
                     f"{ADC_SCANNER_UNITS}, e.g. 800–2500 in the gland)")
        elif centre / 1e8 < float(value) <= centre / 1e5:
            text += (f" — values about 10⁶× smaller mean the ADC is in mm²/s: a units error (expected "
                     f"{ADC_SCANNER_UNITS}, e.g. 800–2500 in the gland)")
        elif float(value) < centre / 100:
            text += " — not an ADC map in the expected units"
        elif float(value) > centre * 100:
            text += " — values far too large: wrong units or not an ADC map"
        return text
    if parts[0] == "geometry":
        # by patient axis (series_geometry): a sagittal series' head–foot size is its in-plane pixel, not a slice
        what = {"inplane_mm": "voxel size across the body (in-plane for an axial series)",
                "slice_mm": "voxel size head–foot (the slice spacing of an axial series)",
                "fov_mm": "field of view across the body"}
        return (f"{_name(parts[1])} series: {what[parts[2]]} {_fmt(value)} mm; the training cases had "
                f"{_range(reference)} mm")
    modality, feature = parts
    if feature.startswith("hist_"):
        region = "the body" if feature == "hist_body" else "the central gland region"
        return (f"{_name(modality)}: normalised intensity histogram in {region} differs from the training cases' "
                f"(distance {distance:.2f}; the training cases were within "
                f"{float(reference['training_distance_max']):.2f} of their mean): another contrast, anatomy or "
                "sequence than the model was trained on")
    if feature == "noise":
        return (f"{_name(modality)}: noise level {_fmt(value)} (normalised units), more than in the training cases "
                f"({_range(reference)})")
    if feature == "gland_level":
        return (f"{_name(modality)}: the central gland region lies at {float(value):.2f} of the normalised intensity "
                f"range, below every training case ({_fmt(reference['minimum'])} or above): something else — fat on "
                "a T1-weighted series without fat suppression, a hot spot — is far brighter than the gland compared "
                "with the training exams, and the synthetic relative enhancement is then likely too high (1.3–3× on "
                "phantoms made so; docs/preprocessing.md); synthesis scales the enhancement down by level / minimum "
                "for it (DCEDiffLib/t1pre_level.py), which brings it back near, not onto, the true one")
    if feature == "bias_lr":
        return (f"{_name(modality)}: left–right intensity ramp {float(value):+.2f} (normalised units, centre to "
                f"edge: a bias field / coil shading); the training cases had "
                f"{float(reference['training_range'][0]):+.2f} to {float(reference['training_range'][1]):+.2f}")
    return (f"{_name(modality)}: gland-minus-body contrast {float(value):+.2f} (normalised units); the training "
            f"cases had {float(reference['training_range'][0]):+.2f} to {float(reference['training_range'][1]):+.2f}")


def _swapped(statistics: Mapping, a: str, b: str) -> dict:
    """The statistics as if series ``a`` and ``b`` were exchanged (what a correct assignment would give)."""
    swap = {a: b, b: a}
    modalities = dict(statistics.get("modalities") or {})
    modalities[a], modalities[b] = modalities.get(b), modalities.get(a)
    original = statistics.get("correlations") or {}
    correlations = {}
    for pair, r in original.items():
        x, y = (swap.get(m, m) for m in pair.split("|"))
        correlations[f"{x}|{y}" if f"{x}|{y}" in original else f"{y}|{x}"] = r
    geometry = dict(statistics.get("geometry") or {})
    if a in geometry or b in geometry:
        geometry[a], geometry[b] = geometry.get(b), geometry.get(a)
    return {**statistics, "modalities": {k: v for k, v in modalities.items() if v is not None},
            "correlations": correlations, "geometry": {k: v for k, v in geometry.items() if v}}


NEGATED_RATIO = 2.0   # a negated input: flagged whatever the statistics say (twice the threshold, as the data domain)


def negated_inputs(statistics: Mapping) -> List[str]:
    """The inputs whose raw intensities look negated (:func:`DCEDiffLib.intensity_sign.looks_negated`)."""
    return [m for m, measure in (statistics.get("sign") or {}).items() if looks_negated(measure)]


def _negated_reason(modality: str, measure: Mapping) -> str:
    expected = ("an ADC map (apparent diffusion coefficient ≥ 0)" if modality == "adc" else
                "a magnitude image with intensities ≥ 0")
    return negated_reason(_name(modality), measure, expected)


def check_card_statistics(card_statistics: Mapping, where: str = "model card") -> None:
    """Refuse card statistics this version cannot use, naming what was expected."""
    if not isinstance(card_statistics, Mapping) or not isinstance(card_statistics.get("features"), Mapping):
        raise InputError(f"{where}: input_statistics without 'features'; expected the output of "
                         "scripts/add_input_statistics.py")
    if card_statistics.get("version") != STATISTICS_VERSION:
        raise InputError(f"{where}: input_statistics version {card_statistics.get('version')!r}; expected "
                         f"{STATISTICS_VERSION}")


def ood_score(statistics: Mapping, card_statistics: Mapping) -> dict:
    """Compare one exam's :func:`input_statistics` with the card's :func:`training_statistics`.

    Returns ``{"checked": True, "score", "threshold": 1.0, "flagged", "reasons": [...], "features": {name:
    ratio}, "not_checked": [...]}``: ``score`` is the largest feature distance divided by its threshold (1.0 =
    the edge of what the training cases showed, with margin); ``reasons`` explain every feature above its
    threshold, worst first, plus a swapped-series guess when exchanging two inputs makes the exam fit; ``features``
    are listed worst first too (the order synthesis.json shows; :func:`apply_data_domain` keeps it). An input
    whose raw intensities look negated (``statistics["sign"]``) is named first, listed in ``negated``, flagged at
    ``NEGATED_RATIO`` (feature ``sign.MODALITY``) and never part of a swap guess (a sign flip explains the misfit).
    """
    check_card_statistics(card_statistics)
    card_features = card_statistics["features"]
    features = _features(statistics)
    ratios = _ratios(features, card_features)
    if not ratios:
        raise InputError("OOD check: no feature in common between the exam's statistics and the model card's; "
                         f"expected statistics of the inputs {', '.join(card_statistics.get('conditions', []))}")
    worst = sorted(ratios.items(), key=lambda item: -item[1][0])
    score = worst[0][1][0]
    reasons = [_reason(name, features[name][1], card_features[name], distance)
               for name, (ratio, distance) in worst if ratio > 1.0]
    negated = negated_inputs(statistics)
    reasons[:0] = [_negated_reason(m, statistics["sign"][m]) for m in negated]   # what is wrong comes first
    swapped_pair = None
    if score > 1.0:
        present = set((statistics.get("modalities") or {})) - set(negated)
        for a, b in SWAP_CANDIDATES:
            if a not in present or b not in present:
                continue
            swapped = _ratios(_features(_swapped(statistics, a, b)), card_features)
            swapped_score = max(r for r, _ in swapped.values())
            # only a clear improvement counts: swapping two series that are both wrong must not be "the" reason
            if swapped_score <= 1.0 or swapped_score < 0.5 * score:
                fits = "fits the training data" if swapped_score <= 1.0 else "comes much closer to the training data"
                reasons.insert(len(negated), f"{_name(a)} and {_name(b)} look swapped: exchanged, the exam {fits} "
                                  f"(score {swapped_score:.2f} instead of {score:.2f}); check which series "
                                  "was given for which input")
                swapped_pair = [a, b]
                break
    ranked = [(f"sign.{m}", NEGATED_RATIO) for m in negated] + [(name, r) for name, (r, _) in worst]
    ranked.sort(key=lambda item: -item[1])
    score = max([score] + [NEGATED_RATIO for _ in negated])
    result = {"checked": True, "score": round(float(score), 3), "threshold": 1.0, "flagged": bool(score > 1.0),
              "reasons": reasons, "features": {name: round(float(r), 3) for name, r in ranked},
              "not_checked": sorted(set(card_features) - set(ratios)),
              "gland_region": statistics.get("gland_region")}
    if swapped_pair:
        result["swapped"] = swapped_pair
    if negated:
        result["negated"] = negated
    missing = list(statistics.get("missing_inputs") or ())
    if missing:
        result["skipped_inputs"] = missing
        result["note"] = missing_inputs_note(missing)
    return result


DOMAIN_FEATURE = "data_domain"
DOMAIN_MISMATCH_RATIO = 2.0   # a phantom-only model on an exam that is not a phantom: flagged, whatever the
                              # statistics say (twice the threshold, so no statistical margin hides it)


def apply_data_domain(result: dict, data_domain: Optional[Mapping], sources: Mapping[str, str]) -> dict:
    """The data-domain rule: a model whose card says it was trained on phantoms only (``data_domain.kind`` =
    "phantom") flags every exam whose inputs are not all marked as DCEDiff phantoms (``sources``: modality →
    :func:`DCEDiffLib.data_source.input_source`). The statistics cannot promise this on their own: a real exam
    can fall inside the thresholds (docs/ood.md). Adds ``input_sources`` and, on a mismatch, the feature
    ``DOMAIN_FEATURE`` (ratio ``DOMAIN_MISMATCH_RATIO``) and its reason, placed among the others by its ratio
    (a negated input and a swapped-series guess stay first); the statistical score is kept as
    ``statistical_score``. ``result`` is a :func:`ood_score` result, changed in place and returned."""
    from DCEDiffLib.data_source import PHANTOM

    if not result.get("checked"):
        return result
    result["input_sources"] = dict(sources)
    result["statistical_score"] = result["score"]
    kind = (data_domain or {}).get("kind")
    foreign = [m for m, source in sources.items() if source != PHANTOM]
    if kind != "phantom" or not foreign:
        return result
    description = (data_domain or {}).get("description") or "DCEDiff phantoms"
    names = ", ".join(_name(m) for m in foreign)
    reason = (f"{names}: not a DCEDiff phantom (no phantom mark in the header), but the model was trained on "
              f"phantoms only ({description.split(':')[0]}) and has never seen a real exam: its synthesis of a "
              "real exam is not validated")
    features = dict(result.get("features") or {})
    # worst first, like the statistical reasons (a negated input and a swapped-series guess stay first; a negated
    # input's own feature sits at DOMAIN_MISMATCH_RATIO, so it is not counted twice)
    position = (sum(1 for ratio in features.values() if ratio > DOMAIN_MISMATCH_RATIO) + bool(result.get("swapped"))
                + len(result.get("negated") or ()))
    reasons = list(result.get("reasons") or [])
    result["reasons"] = reasons[:position] + [reason] + reasons[position:]
    features[DOMAIN_FEATURE] = DOMAIN_MISMATCH_RATIO
    result["features"] = dict(sorted(features.items(), key=lambda item: -item[1]))
    result["score"] = round(max(float(result["score"]), DOMAIN_MISMATCH_RATIO), 3)
    result["flagged"] = True
    return result


def missing_inputs_note(missing: Sequence[str]) -> str:
    """What the check could not look at when inputs were not given."""
    names = ", ".join(_name(m) for m in missing)
    return (f"{names} not given: its statistics (histograms, noise, shading, correlations with the other inputs, "
            "series geometry) were skipped; the other inputs were checked")


def not_checked(reason: str) -> dict:
    """The record written when no check was possible (e.g. the model card has no input statistics)."""
    return {"checked": False, "reason": reason}


def summary_line(result: Mapping) -> str:
    """One line for a terminal, a log or a file header: the score and the main reason."""
    if not result.get("checked"):
        return f"out-of-distribution check not done: {result.get('reason', '')}"
    head = (f"inputs OUT OF the model's training distribution (score {result['score']:.2f} > "
            f"{result['threshold']:.0f})" if result.get("flagged") else
            f"inputs within the model's training distribution (score {result['score']:.2f} ≤ "
            f"{result['threshold']:.0f})")
    reasons: Iterable[str] = result.get("reasons") or []
    first = next(iter(reasons), None)
    skipped = result.get("skipped_inputs")
    tail = f" ({', '.join(skipped)} not given: not checked)" if skipped else ""
    return head + tail + (f": {first}" if first and result.get("flagged") else "")
