"""Slice-to-slice consistency: does a synthesis made slice by slice hold together through the slices?

The networks see one slice at a time, so nothing ties neighbouring slices together but the inputs; flicker would
show in sagittal and coronal reformats. Two numbers over the pairs of neighbouring voxels (k, k+1) that both lie in
a mask, on the targets' own intensity scale:

- ``roughness_ratio``: mean |synthetic(k+1) − synthetic(k)| over the same for the acquired image: 1 when the
  synthesis changes from slice to slice as much as the acquisition does, above 1 for flicker, below 1 for a
  synthesis smoother through the slices than the scan;
- ``pearson``: the correlation of the two through-plane differences: how far the synthesis changes *where* the
  acquisition does (anatomy coming and going), not only by as much.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from DCEDiffLib.evaluation.enhancement import pearson

MIN_PAIRS = 50


def through_plane_consistency(synthetic: np.ndarray, acquired: np.ndarray, mask: Optional[np.ndarray] = None) -> dict:
    """``roughness_ratio``, ``pearson`` and ``pairs`` over neighbouring-slice voxel pairs of (K, H, W) volumes
    (both voxels of a pair in ``mask`` when given); None values when fewer than ``MIN_PAIRS`` pairs or K < 2."""
    syn = np.asarray(synthetic, np.float64)
    acq = np.asarray(acquired, np.float64)
    if syn.shape != acq.shape or syn.ndim != 3:
        raise ValueError(f"through_plane_consistency: expected two (K, H, W) volumes of one shape, got {syn.shape} "
                         f"and {acq.shape}")
    empty = {"roughness_ratio": None, "pearson": None, "pairs": 0}
    if syn.shape[0] < 2:
        return empty
    inside = np.ones(syn.shape, bool) if mask is None else np.asarray(mask, bool)
    pairs = inside[1:] & inside[:-1]  # both voxels of a neighbouring-slice pair inside
    n = int(pairs.sum())
    if n < MIN_PAIRS:
        return dict(empty, pairs=n)
    d_syn = np.diff(syn, axis=0)[pairs]
    d_acq = np.diff(acq, axis=0)[pairs]
    acquired_roughness = float(np.mean(np.abs(d_acq)))
    ratio = float(np.mean(np.abs(d_syn)) / acquired_roughness) if acquired_roughness > 0 else None
    r, _ = pearson(d_syn, d_acq, names=("synthetic through-plane difference", "acquired through-plane difference"))
    return {"roughness_ratio": ratio, "pearson": r, "pairs": n}
