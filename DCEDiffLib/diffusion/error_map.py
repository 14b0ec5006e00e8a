"""An expected-error map for a synthesis: how far off is each voxel likely to be?

The sample spread of the residual diffusion model hardly ranks the error (Spearman 0.06–0.08 in the body on
validation patients, ≈ 0 in the prostate; docs/model_quality.md): the error sits at edges — vessel walls, organ
borders, lesion rims, where registration, partial volume and a blurred mean all miss — and the sampler's spread at
the card's low temperature does not. The in-plane gradient magnitude of the synthetic image ranks it far better
(0.35–0.41 in the body on the same patients, scripts/uncertainty_sources.py; for the shipped residual card it ranks
only 0.07–0.15, where the size of the drawn enhancement ranks 0.24–0.40: scripts/error_map_body_features.py,
docs/model_quality.md, "A lead for the expected-error map's ranking"). This module turns that feature into
an error estimate in intensity units: a monotone lookup table from the feature's quantile bins to the mean |error|
seen there on validation patients (fitted by scripts/fit_error_model.py, stored in the model card as
``error_model``), so that inside each bin the map says, on average, the error the validation patients had.

Edges alone promise the gland about half the error it has (fresh test, docs/model_quality.md): lesions and the
gland's enhancement are harder than the body's. So a table may carry a ``radial`` factor: the mean |error| over the
mean edge-based estimate in shells of distance from the grid's centre (the working grid centres the prostate;
distance in units of the central ellipsoid, ``ood.gland_radius``), interpolated between the shells' mean radii.

An exam's error level also depends on its T1 protocol: on phantoms, exams with a fat-suppressed T1-pre and DCE have
about 2.5× the body error of those without, relative to the edge estimate (docs/model_quality.md, twenty-second
step). A table may carry a ``t1pre_level_factor``: the whole edge estimate of an exam multiplied by a factor
interpolated in the T1-pre's central gland level (``t1pre_level.gland_level``), which separates the two protocols
(low: bright fat on top of the range; high: fat suppressed).

The edge feature ranks the body's error weakly for the residual card (above); the size of the enhancement the model
draws, |synthetic − T1-pre|, ranks it better (the error grows with the enhancement: kinetics the inputs do not show
scale it). A table may carry an ``enhancement_factor``: the estimate multiplied at each voxel by a factor
interpolated in that size (:func:`fit_enhancement_factor`, scripts/fit_enhancement_factor.py); it needs the T1-pre on
the targets' scale (``residual.zero_enhancement``). The shipped card's factor (0.55 where nothing is drawn, about 2
where most is) lifts the body's ranking from 0.13–0.15 to 0.32 on fresh patients at the same size
(docs/model_quality.md, "The expected-error map with the drawn enhancement").

Everything is in the model's normalised units ([-1, 1] targets); callers scale the map as they scale the sample
std (``(high − low) / 2`` of the target's normalisation).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np

from DCEDiffLib.errors import ModelFileError

FEATURE = "in-plane gradient magnitude of the synthetic image (normalised units per pixel)"
ERROR_MODEL_VERSION = 1
LEVEL_FEATURE = "t1pre.gland_level"  # what t1pre_level_factor is interpolated in (t1pre_level.gland_level)
ENHANCEMENT_FEATURE = "|synthetic - T1-pre| (normalised target units)"  # what enhancement_factor is interpolated in


def edge_feature(volume: np.ndarray) -> np.ndarray:
    """In-plane gradient magnitude of a (K, H, W) volume (slices are 2–3× thicker than the pixels, so the
    through-plane difference is left out)."""
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3:
        raise ValueError(f"edge_feature: expected a (K, H, W) volume, got shape {volume.shape}")
    gy, gx = np.gradient(volume, axis=(1, 2))
    return np.hypot(gy, gx).astype(np.float32)


def fit_error_model(features: Sequence[np.ndarray], abs_errors: Sequence[np.ndarray], bins: int = 10) -> dict:
    """Lookup table feature → mean |error| from voxel pairs (each pair of arrays already restricted to a region).

    Bin edges are the feature's quantiles over all voxels; each bin gets its voxels' median feature (the node) and
    mean |error| (the value); values are made non-decreasing in the feature (a running maximum), so a stronger
    edge never predicts a smaller error.
    """
    f = np.concatenate([np.asarray(a, np.float64).ravel() for a in features])
    e = np.concatenate([np.asarray(a, np.float64).ravel() for a in abs_errors])
    if f.shape != e.shape or f.size < bins * 20:
        raise ValueError(f"fit_error_model: need {bins * 20}+ voxel pairs of equal count, got {f.size} and {e.size}")
    edges = np.unique(np.quantile(f, np.linspace(0.0, 1.0, bins + 1)))
    which = np.clip(np.searchsorted(edges, f, side="right") - 1, 0, len(edges) - 2)
    nodes, values = [], []
    for b in range(len(edges) - 1):
        selected = which == b
        if selected.any():
            nodes.append(float(np.median(f[selected])))
            values.append(float(np.mean(e[selected])))
    values = np.maximum.accumulate(np.asarray(values)).tolist()
    return {"version": ERROR_MODEL_VERSION, "feature": FEATURE, "nodes": nodes, "mean_abs_error": values}


RADIAL_SHELLS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, np.inf)  # shells of ood.gland_radius for the radial factor


def _edge_estimate(volume: np.ndarray, table: dict) -> np.ndarray:
    nodes = np.asarray(table["nodes"], np.float64)
    values = np.asarray(table["mean_abs_error"], np.float64)
    return np.interp(edge_feature(volume), nodes, values)


def fit_radial_factor(estimates: Sequence[np.ndarray], abs_errors: Sequence[np.ndarray],
                      radii: Sequence[np.ndarray], shells: Sequence[float] = RADIAL_SHELLS,
                      min_voxels: int = 200) -> dict:
    """Per shell of ``radii`` (``ood.gland_radius`` of the voxels): mean |error| / mean edge-based estimate, with
    the shell's mean radius as its node. Shells with fewer than ``min_voxels`` voxels are left out."""
    e = np.concatenate([np.asarray(a, np.float64).ravel() for a in abs_errors])
    x = np.concatenate([np.asarray(a, np.float64).ravel() for a in estimates])
    r = np.concatenate([np.asarray(a, np.float64).ravel() for a in radii])
    if not (e.shape == x.shape == r.shape):
        raise ValueError(f"fit_radial_factor: need as many estimates, errors and radii, got {x.size}, {e.size}, {r.size}")
    nodes, factors = [], []
    for low, high in zip(shells[:-1], shells[1:]):
        selected = (r >= low) & (r < high)
        if selected.sum() >= min_voxels and x[selected].mean() > 0:
            nodes.append(float(r[selected].mean()))
            factors.append(float(e[selected].mean() / x[selected].mean()))
    if len(nodes) < 2:
        raise ValueError(f"fit_radial_factor: fewer than 2 shells with {min_voxels}+ voxels")
    return {"nodes": nodes, "factor": factors}


def fit_enhancement_factor(estimates: Sequence[np.ndarray], abs_errors: Sequence[np.ndarray],
                           enhancements: Sequence[np.ndarray], bins: int = 10, min_voxels: int = 200) -> dict:
    """Per quantile bin of the drawn enhancement |synthetic − T1-pre| (``enhancements``): mean |error| / mean
    estimate, with the bin's median enhancement as its node (bins with fewer than ``min_voxels`` voxels are left
    out). Multiplying ``estimates`` by the factor interpolated at each voxel makes them right on average in every
    bin of the fitted voxels."""
    e = np.concatenate([np.asarray(a, np.float64).ravel() for a in abs_errors])
    x = np.concatenate([np.asarray(a, np.float64).ravel() for a in estimates])
    f = np.concatenate([np.asarray(a, np.float64).ravel() for a in enhancements])
    if not (e.shape == x.shape == f.shape) or not f.size:
        raise ValueError(f"fit_enhancement_factor: need as many estimates, errors and enhancements (and some), got "
                         f"{x.size}, {e.size}, {f.size}")
    order = np.argsort(f, kind="stable")  # sorted once: each bin is a run of the sorted voxels (millions of them)
    f, e, x = f[order], e[order], x[order]
    edges = np.unique(np.quantile(f, np.linspace(0.0, 1.0, bins + 1)))
    which = np.clip(np.searchsorted(edges, f, side="right") - 1, 0, max(len(edges) - 2, 0))
    starts = np.searchsorted(which, np.arange(len(edges) - 1), side="left")
    stops = np.searchsorted(which, np.arange(len(edges) - 1), side="right")
    nodes, factors = [], []
    for start, stop in zip(starts, stops):
        if stop - start >= min_voxels and x[start:stop].mean() > 0:
            nodes.append(float(np.median(f[start:stop])))
            factors.append(float(e[start:stop].mean() / x[start:stop].mean()))
    if len(nodes) < 2 or np.any(np.diff(nodes) <= 0):
        raise ValueError(f"fit_enhancement_factor: fewer than 2 distinct bins with {min_voxels}+ voxels")
    return {"feature": ENHANCEMENT_FEATURE, "nodes": nodes, "factor": factors}


def enhancement_factor(table: dict, volume: np.ndarray,
                       zero_enhancement: Optional[np.ndarray]) -> Union[np.ndarray, float]:
    """The table's ``enhancement_factor`` at each voxel's drawn enhancement |volume − zero_enhancement| (held
    constant beyond the nodes); 1 when the table has none. ValueError when it has one and no zero enhancement is
    given (the factor cannot be left out silently: the table's values were fitted with it)."""
    block = table.get("enhancement_factor")
    if not block:
        return 1.0
    if zero_enhancement is None or np.shape(zero_enhancement) != np.shape(volume):
        raise ValueError("expected_error: this error model has an enhancement_factor and needs the T1-pre on the "
                         f"targets' scale (zero_enhancement) of shape {np.shape(volume)}, got "
                         f"{None if zero_enhancement is None else np.shape(zero_enhancement)}")
    drawn = np.abs(np.asarray(volume, np.float64) - np.asarray(zero_enhancement, np.float64))
    return np.interp(drawn, block["nodes"], block["factor"])


def level_factor(table: dict, t1pre_level: Optional[float]) -> float:
    """The table's ``t1pre_level_factor`` at an exam's T1-pre gland level (held constant beyond the nodes); 1 when
    the table has none or the level is unknown."""
    block = table.get("t1pre_level_factor")
    if not block or t1pre_level is None or not np.isfinite(t1pre_level):
        return 1.0
    return float(np.interp(float(t1pre_level), block["nodes"], block["factor"]))


def expected_error(volume: np.ndarray, table: dict, radius: Optional[np.ndarray] = None,
                   t1pre_level: Optional[float] = None, zero_enhancement: Optional[np.ndarray] = None) -> np.ndarray:
    """The expected |error| map (normalised units) of a (K, H, W) synthetic volume under a fitted ``table``;
    with a ``radial`` factor in the table, scaled by it at each voxel's ``radius`` (default: ``ood.gland_radius``
    of the volume's grid at the working grid's spacing); with a ``t1pre_level_factor``, scaled by it at the exam's
    ``t1pre_level`` (:func:`level_factor`); with an ``enhancement_factor``, scaled by it at each voxel's drawn
    enhancement against ``zero_enhancement`` (:func:`enhancement_factor`; required then)."""
    estimate = _edge_estimate(volume, table) * level_factor(table, t1pre_level)
    estimate = estimate * enhancement_factor(table, volume, zero_enhancement)
    radial = table.get("radial")
    if radial:
        if radius is None:
            from DCEDiffLib.ood import gland_radius

            radius = gland_radius(np.shape(volume))
        estimate = estimate * np.interp(radius, radial["nodes"], radial["factor"])
    return estimate.astype(np.float32)


def _check_factor_table(block: Optional[dict], where: str, feature: Optional[str] = None) -> None:
    """A ``{"nodes", "factor"[, "feature"]}`` table interpolated by ``np.interp`` (absent is fine): ≥ 2 increasing
    nodes, as many finite positive factors and, when ``feature`` is given, that feature; ModelFileError otherwise."""
    if block is None:
        return
    nodes, factors = block["nodes"], block["factor"]
    if (feature is not None and block.get("feature") != feature) or len(nodes) < 2 or len(nodes) != len(factors) or \
            np.any(np.diff(nodes) <= 0) or not np.all(np.isfinite(factors)) or np.any(np.asarray(factors) <= 0):
        expected = f"feature {feature!r}, " if feature is not None else ""
        raise ModelFileError(f"model card {where}: expected {expected}≥ 2 increasing nodes and as many finite "
                             "positive factors")


def error_models_of_card(card: dict, targets: Sequence[str]) -> Optional[Dict[str, dict]]:
    """The card's ``error_model`` tables per target, checked; None when the card has none."""
    block = card.get("error_model")
    if block is None:
        return None
    try:
        if int(block["version"]) != ERROR_MODEL_VERSION:
            raise ModelFileError(f"model card error_model version {block['version']}: this DCEDiff reads version "
                                 f"{ERROR_MODEL_VERSION}")
        tables = {t: block["targets"][t] for t in targets}
        for t, table in tables.items():
            nodes, values = table["nodes"], table["mean_abs_error"]
            if len(nodes) < 2 or len(nodes) != len(values) or np.any(np.diff(nodes) <= 0) or \
                    not np.all(np.isfinite(values)) or np.any(np.asarray(values) < 0):
                raise ModelFileError(f"model card error_model.targets.{t}: expected ≥ 2 increasing nodes and as many "
                                     f"finite non-negative mean_abs_error values")
            _check_factor_table(table.get("radial"), f"error_model.targets.{t}.radial")
            _check_factor_table(table.get("t1pre_level_factor"), f"error_model.targets.{t}.t1pre_level_factor",
                                feature=LEVEL_FEATURE)
            _check_factor_table(table.get("enhancement_factor"), f"error_model.targets.{t}.enhancement_factor",
                                feature=ENHANCEMENT_FEATURE)
        if any(table.get("enhancement_factor") for table in tables.values()) and \
                "t1pre" not in list(card.get("conditions") or []):
            raise ModelFileError("model card error_model: an enhancement_factor needs the T1-pre among the card's "
                                 f"conditions, which are {card.get('conditions')}")
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"model card error_model: malformed ({error!r}); expected version, targets.<target>."
                             f"nodes and .mean_abs_error") from error
    return tables
