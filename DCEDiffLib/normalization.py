"""Robust percentile normalisation to [-1, 1] and its exact inverse.

Each modality's robust range [p_low, p_high] (default 0.5th and 99.5th percentiles, optionally inside a mask)
maps linearly to [-1, 1]. :func:`normalize` does not clip, so :func:`denormalize` undoes it exactly (up to
float32 rounding); :func:`clip_for_model` clips separately where the model needs a bounded input.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from DCEDiffLib.errors import InputError

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


@dataclasses.dataclass
class NormParams:
    """Intensity ``low`` maps to -1 and ``high`` to +1; the percentiles they were measured at are kept."""

    low: float
    high: float
    low_percentile: float = LOW_PERCENTILE
    high_percentile: float = HIGH_PERCENTILE

    def to_dict(self) -> dict:
        return {"low": float(self.low), "high": float(self.high), "low_percentile": float(self.low_percentile),
                "high_percentile": float(self.high_percentile)}

    @classmethod
    def from_dict(cls, data: dict) -> "NormParams":
        try:
            params = cls(low=float(data["low"]), high=float(data["high"]),
                         low_percentile=float(data.get("low_percentile", LOW_PERCENTILE)),
                         high_percentile=float(data.get("high_percentile", HIGH_PERCENTILE)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"normalisation parameters {data!r}: expected numbers 'low' and 'high'") from exc
        _check_range(params, "normalisation parameters")
        return params


def _check_range(params: NormParams, name: str) -> None:
    if not (np.isfinite(params.low) and np.isfinite(params.high)) or params.high <= params.low:
        raise InputError(f"{name}: intensity range [{params.low:g}, {params.high:g}] is empty or invalid; "
                         "expected high > low (an image with contrast)")


def fit_normalization(array: np.ndarray, mask: Optional[np.ndarray] = None, low_percentile: float = LOW_PERCENTILE,
                      high_percentile: float = HIGH_PERCENTILE, name: str = "volume") -> NormParams:
    """Measure the robust intensity range of ``array`` (inside ``mask`` if given).

    Raises :class:`InputError` naming ``name`` when the range is degenerate (high == low), the mask is empty or
    the percentiles are not 0 <= low < high <= 100.
    """
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise InputError(f"{name}: percentiles ({low_percentile}, {high_percentile}); expected 0 <= low < high <= 100")
    values = np.asarray(array)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise InputError(f"{name}: mask shape {mask.shape} differs from the image shape {values.shape}")
        values = values[mask]
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputError(f"{name}: no voxels to measure the intensity range (empty mask or no finite values); "
                         "expected an image that covers the working grid")
    low, high = np.percentile(values.astype(np.float64), [low_percentile, high_percentile])
    params = NormParams(float(low), float(high), float(low_percentile), float(high_percentile))
    if not high > low:
        raise InputError(f"{name}: intensities are constant over the working grid ({low_percentile:g}th and "
                         f"{high_percentile:g}th percentiles both {low:g}); expected an image with contrast "
                         "(it cannot be normalised)")
    return params


def normalize(array: np.ndarray, params: NormParams) -> np.ndarray:
    """Map [low, high] linearly to [-1, 1] (float32, not clipped; the input array is not modified)."""
    _check_range(params, "normalisation parameters")
    values = np.asarray(array, dtype=np.float64)
    return ((values - params.low) * (2.0 / (params.high - params.low)) - 1.0).astype(np.float32)


def denormalize(array: np.ndarray, params: NormParams) -> np.ndarray:
    """Exact inverse of :func:`normalize`: back to the original intensity scale (float32)."""
    _check_range(params, "normalisation parameters")
    values = np.asarray(array, dtype=np.float64)
    return ((values + 1.0) * ((params.high - params.low) / 2.0) + params.low).astype(np.float32)


def spread_to_intensity(array: np.ndarray, params: NormParams) -> np.ndarray:
    """A spread in normalised units (a sample std, an expected error) on the intensity scale of ``params``: the
    [-1, 1] range spans ``high − low``, so only the slope of :func:`denormalize` applies (float32)."""
    _check_range(params, "normalisation parameters")
    return (np.asarray(array, dtype=np.float64) * ((params.high - params.low) / 2.0)).astype(np.float32)


def clip_for_model(array: np.ndarray) -> np.ndarray:
    """Clip normalised values to [-1, 1] (float32 copy) for a model that expects a bounded input."""
    return np.clip(np.asarray(array, dtype=np.float32), -1.0, 1.0)
