"""Image similarity metrics on the paper's scale: PSNR, SSIM and MAE of volumes scaled to [0, 1].

Scaling: each acquired target volume is mapped to [0, 1] by its own 0.5th/99.5th percentiles (clipped), as in the
paper's tables. The synthetic volume is mapped with the *acquired* volume's bounds, not its own, so a prediction that
is too bright or too dark is scored as wrong instead of being normalised into agreement.

Masks: every metric takes an optional boolean mask of the volume's shape; ``None`` means the whole grid. An empty
mask gives ``None`` (undefined), never a division by zero; callers record why in their notes.

Value encoding for JSON (:func:`json_safe`): finite floats stay floats; +inf (PSNR of a perfect prediction) becomes
the string ``"inf"`` (``"-inf"`` likewise); NaN never appears — an undefined value is ``None`` with a reason.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from DCEDiffLib.errors import InputError

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
SSIM_WINDOW = 7  # scikit-image's default uniform window (7×7); see ssim()
SSIM_GAUSSIAN_WINDOW = 11  # scikit-image's window for gaussian_weights=True (σ = 1.5, truncated at 3.5 σ)


def check_volume(array: np.ndarray, name: str, ndim: int = 3) -> np.ndarray:
    """Return ``array`` as a float64 copy after checking it is ``ndim``-D, non-empty and finite."""
    array = np.asarray(array)
    if array.ndim != ndim or array.size == 0:
        raise InputError(f"{name}: expected a non-empty {ndim}-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"{name}: expected real numbers, got dtype {array.dtype}")
    out = array.astype(np.float64)  # a copy: the caller's array is never modified
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise InputError(f"{name}: contains {bad} non-finite value(s) (NaN or inf); expected finite intensities")
    return out


def check_mask(mask: Optional[np.ndarray], shape: Tuple[int, ...], name: str = "mask") -> Optional[np.ndarray]:
    """Return ``mask`` as a boolean array of ``shape`` (or None); anything else is an InputError."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise InputError(f"{name}: shape {mask.shape} does not match the image shape {tuple(shape)}")
    return mask.astype(bool)


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise InputError(f"prediction shape {pred.shape} does not match reference shape {ref.shape}")
    return pred, ref


def robust_bounds(volume: np.ndarray, low_percentile: float = LOW_PERCENTILE,
                  high_percentile: float = HIGH_PERCENTILE, mask: Optional[np.ndarray] = None) -> Tuple[float, float]:
    """The (low, high) intensity percentiles of ``volume`` (inside ``mask`` if given)."""
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise InputError(f"percentiles: expected 0 <= low < high <= 100, got {low_percentile}, {high_percentile}")
    values = np.asarray(volume, dtype=np.float64)
    if mask is not None:
        values = values[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        raise InputError("robust range: the mask is empty")
    low, high = np.percentile(values, [low_percentile, high_percentile])
    return float(low), float(high)


def apply_scale(volume: np.ndarray, bounds: Tuple[float, float]) -> np.ndarray:
    """Map ``volume`` linearly so that ``bounds`` = (low, high) becomes (0, 1), then clip to [0, 1] (float64)."""
    low, high = float(bounds[0]), float(bounds[1])
    if not high > low:
        raise InputError(f"intensity scaling: high bound {high} must exceed low bound {low}")
    return np.clip((np.asarray(volume, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def scale_to_unit(volume: np.ndarray, low_percentile: float = LOW_PERCENTILE,
                  high_percentile: float = HIGH_PERCENTILE,
                  name: str = "volume") -> Tuple[np.ndarray, Tuple[float, float]]:
    """Scale a volume to [0, 1] by its own percentiles (clipped); returns ``(scaled, (lo, hi))``.

    Apply the returned bounds to the synthetic volume with :func:`apply_scale` so both share one scale.
    A constant volume (lo == hi) cannot be scaled and raises InputError naming ``name``.
    """
    low, high = robust_bounds(volume, low_percentile, high_percentile)
    if not high > low:
        raise InputError(f"{name}: its {low_percentile}th and {high_percentile}th percentiles are equal ({low:g}); "
                         "expected an image with contrast")
    return apply_scale(volume, (low, high)), (low, high)


def _masked(pred: np.ndarray, ref: np.ndarray, mask: Optional[np.ndarray]):
    if mask is None:
        return pred.ravel(), ref.ravel()
    mask = check_mask(mask, pred.shape)
    return pred[mask], ref[mask]


def mae(pred: np.ndarray, ref: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[float]:
    """Mean absolute error over the mask (whole array if None); None for an empty mask."""
    pred, ref = _check_pair(pred, ref)
    p, r = _masked(pred, ref, mask)
    if p.size == 0:
        return None
    return float(np.mean(np.abs(p - r)))


def mse(pred: np.ndarray, ref: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[float]:
    """Mean squared error over the mask (whole array if None); None for an empty mask."""
    pred, ref = _check_pair(pred, ref)
    p, r = _masked(pred, ref, mask)
    if p.size == 0:
        return None
    return float(np.mean((p - r) ** 2))


def psnr(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0,
         mask: Optional[np.ndarray] = None) -> Optional[float]:
    """Peak signal-to-noise ratio 10·log10(data_range² / MSE) in dB.

    ``math.inf`` for a perfect prediction (MSE = 0); None for an empty mask.
    """
    if not data_range > 0:
        raise InputError(f"PSNR data_range: expected a positive number, got {data_range}")
    error = mse(pred, ref, mask)
    if error is None:
        return None
    if error == 0.0:
        return math.inf
    return float(10.0 * np.log10(data_range ** 2 / error))


def ssim(pred: np.ndarray, ref: np.ndarray, data_range: float = 1.0, mask: Optional[np.ndarray] = None,
         win_size: Optional[int] = None, gaussian_weights: bool = False) -> Optional[float]:
    """Structural similarity of two (K, H, W) volumes, computed per 2D slice and pooled.

    Each slice goes through ``skimage.metrics.structural_similarity(..., full=True)`` with a uniform
    ``win_size``×``win_size`` window (default 7; scikit-image's defaults K1 = 0.01, K2 = 0.03, sample covariance;
    ``gaussian_weights=True`` gives Wang et al.'s σ = 1.5 Gaussian window, 11×11 by default). The map is averaged over
    every voxel of the mask, pooled across slices (each voxel counts once), excluding the ``(win_size-1)/2``-pixel
    border where the window leaves the slice — exactly the region scikit-image averages. Without a mask the result
    therefore equals the mean over slices of scikit-image's own per-slice SSIM. None if the mask has no voxel
    outside that border.
    """
    from skimage.metrics import structural_similarity

    pred, ref = _check_pair(pred, ref)
    if win_size is None:
        win_size = SSIM_GAUSSIAN_WINDOW if gaussian_weights else SSIM_WINDOW
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
        mask = None if mask is None else np.asarray(mask)[None]
    if pred.ndim != 3:
        raise InputError(f"SSIM: expected (K, H, W) volumes, got shape {pred.shape}")
    if min(pred.shape[1:]) < win_size:
        raise InputError(f"SSIM: slices of {pred.shape[1]}×{pred.shape[2]} are smaller than the "
                         f"{win_size}×{win_size} window")
    mask = check_mask(mask, pred.shape)
    pad = (win_size - 1) // 2
    valid = np.zeros(pred.shape[1:], dtype=bool)
    valid[pad:pred.shape[1] - pad, pad:pred.shape[2] - pad] = True
    total, count = 0.0, 0
    for k in range(pred.shape[0]):
        region = valid if mask is None else (valid & mask[k])
        n = int(region.sum())
        if n == 0:
            continue
        _, ssim_map = structural_similarity(ref[k], pred[k], data_range=data_range, win_size=win_size,
                                            gaussian_weights=gaussian_weights, full=True)
        total += float(ssim_map[region].sum())
        count += n
    if count == 0:
        return None
    return total / count


def encode_value(value):
    """A metric value as JSON can hold it: finite float, "inf"/"-inf", or None (NaN becomes None)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    return value


def decode_value(value) -> Optional[float]:
    """Inverse of :func:`encode_value` for numbers: "inf" → math.inf; None and other strings → None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return None


def json_safe(obj):
    """A deep copy of ``obj`` that strict JSON accepts (see :func:`encode_value`); numpy types become Python."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, float, np.integer, np.floating, type(None), bool, str)):
        return encode_value(obj)
    return str(obj)
