"""What the model-quality protocol adds to the per-case metrics: the best-gain baseline, single-input linear
predictors, uncertainty calibration and paired bootstrap intervals over patients.

- ``best_gain_baseline``: the T1-pre times the one global gain that best fits the acquired target (least squares
  over the whole grid). An oracle (it reads the acquired image), so it is an *upper* bound of what "copy the
  pre-contrast image" can score; a model must beat it to show it synthesises enhancement.
- ``linear_predictor_r``: |Pearson r| between each input and the acquired enhancement in a region. That is the
  correlation the best linear predictor from that one input reaches (in-sample, so again an upper bound).
- ``calibration``: does the sample spread say where the error is? Spearman correlation of the per-voxel sample std
  with |error|, and a curve of RMSE per std decile (a calibrated model has RMSE ≈ std in every bin).
- ``expected_error_calibration``: the same question for the card's expected-error map, which also claims a size:
  Spearman, mean |error| / mean expected, and mean |error| per expected-error decile.
- ``paired_bootstrap``: mean difference of two methods over the same patients and its 95 % percentile interval
  from resampling patients.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

CALIBRATION_BINS = 10
BOOTSTRAP_RESAMPLES = 2000


def best_gain_baseline(t1pre: np.ndarray, acquired: np.ndarray) -> np.ndarray:
    """g·T1-pre with g = argmin ‖g·T1-pre − acquired‖² over the whole grid (float32)."""
    t1 = np.asarray(t1pre, dtype=np.float64)
    target = np.asarray(acquired, dtype=np.float64)
    denominator = float((t1 * t1).sum())
    gain = float((t1 * target).sum()) / denominator if denominator > 0 else 1.0
    return (gain * t1).astype(np.float32)


def _pearson(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    x = x - x.mean()
    y = y - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return None if denominator == 0 else float((x * y).sum() / denominator)


def linear_predictor_r(inputs: Dict[str, np.ndarray], acquired_enhancement: np.ndarray,
                       masks: Dict[str, Optional[np.ndarray]]) -> Dict[str, Dict[str, Optional[float]]]:
    """region → input → |r| of that input with the acquired enhancement inside the region (None: empty mask, or a
    lesion region under the lesion r's voxel floor, as the model's lesion r)."""
    from DCEDiffLib.evaluation.enhancement import MIN_LESION_CORRELATION_VOXELS

    out: Dict[str, Dict[str, Optional[float]]] = {}
    enhancement = np.asarray(acquired_enhancement, dtype=np.float64)
    for region, mask in masks.items():
        too_small = region == "lesion" and mask is not None and int(np.count_nonzero(mask)) < \
            MIN_LESION_CORRELATION_VOXELS
        if mask is None or not np.any(mask) or too_small:
            out[region] = {name: None for name in inputs}
            continue
        selected = np.asarray(mask, bool)
        out[region] = {}
        for name, volume in inputs.items():
            r = _pearson(np.asarray(volume, dtype=np.float64)[selected], enhancement[selected])
            out[region][name] = None if r is None else abs(r)
    return out


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    # ties get their mean rank
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Spearman rank correlation (ties: mean ranks); None when either side is constant."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(x) < 3:
        return None
    return _pearson(_ranks(x), _ranks(y))


def _masked_pair(values: np.ndarray, error: np.ndarray, mask: Optional[np.ndarray]):
    """(map values, |error|) as flat float64 arrays, restricted to ``mask`` when given."""
    x = np.asarray(values, dtype=np.float64)
    e = np.abs(np.asarray(error, dtype=np.float64))
    if mask is not None:
        x, e = x[np.asarray(mask, bool)], e[np.asarray(mask, bool)]
    return x.ravel(), e.ravel()


def _quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Each value's quantile bin 0 … bins − 1 (edges: the values' own quantiles)."""
    edges = np.quantile(values, np.linspace(0, 1, bins + 1))
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)


def calibration(std: np.ndarray, error: np.ndarray, mask: Optional[np.ndarray] = None,
                bins: int = CALIBRATION_BINS) -> dict:
    """Spearman(std, |error|) and RMSE per std quantile bin; ``std``/``error`` on the same (acquired) scale."""
    s, e = _masked_pair(std, error, mask)
    if len(s) < bins or not np.isfinite(s).all() or float(s.max() - s.min()) == 0:
        return {"spearman": None, "curve": [], "reason": "too few voxels or a constant std"}
    index = _quantile_bins(s, bins)
    curve = []
    for b in range(bins):
        selected = index == b
        if selected.any():
            curve.append({"std_mean": float(s[selected].mean()), "rmse": float(np.sqrt((e[selected] ** 2).mean())),
                          "voxels": int(selected.sum())})
    return {"spearman": spearman(s, e), "curve": curve}


def expected_error_calibration(expected: np.ndarray, error: np.ndarray, mask: Optional[np.ndarray] = None,
                               bins: int = CALIBRATION_BINS) -> dict:
    """Does an expected-error map (diffusion/error_map.py) say where and how large the error is?

    Spearman(expected, |error|), the ratio mean |error| / mean expected (1 = right on average), and per expected
    decile the mean expected against the mean |error| (a calibrated map has them equal in every bin).
    """
    x, e = _masked_pair(expected, error, mask)
    if len(x) < bins or not np.isfinite(x).all() or float(x.max() - x.min()) == 0 or float(x.mean()) <= 0:
        return {"spearman": None, "ratio": None, "curve": [], "reason": "too few voxels or a constant map"}
    index = _quantile_bins(x, bins)
    curve = [{"expected_mean": float(x[index == b].mean()), "abs_error_mean": float(e[index == b].mean()),
              "voxels": int((index == b).sum())} for b in range(bins) if (index == b).any()]
    return {"spearman": spearman(x, e), "ratio": float(e.mean() / x.mean()), "curve": curve}


def format_paired(result: Optional[dict], digits: int = 2) -> str:
    """'+0.12 [+0.05, +0.20]' for a :func:`paired_bootstrap` result; '+0.12 (n 1)' without an interval; '–' without
    a mean."""
    if not result or result.get("mean") is None:
        return "–"
    if result.get("ci95") is None:
        return f"{result['mean']:+.{digits}f} (n {result.get('n', 1)})"
    low, high = result["ci95"]
    return f"{result['mean']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def paired_bootstrap(a: Sequence[Optional[float]], b: Sequence[Optional[float]],
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Mean of a − b over patients with both values, and its 95 % bootstrap interval (patients resampled; None for
    one patient, whose resamples are all the same)."""
    pairs = [(float(x), float(y)) for x, y in zip(a, b) if x is not None and y is not None
             and np.isfinite(float(x)) and np.isfinite(float(y))]
    if not pairs:
        return {"mean": None, "ci95": None, "n": 0}
    diff = np.array([x - y for x, y in pairs])
    if len(diff) == 1:
        return {"mean": float(diff[0]), "ci95": None, "n": 1}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    return {"mean": float(diff.mean()), "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
            "n": len(diff)}
