"""A voxel corrector: gradient-boosted trees that correct the synthetic early/late around the prostate.

The U-Net mean draws the gland's enhancement too evenly (it is trained with a loss that weighs the lesions 31×, which
makes every gland voxel a little lesion-like, docs/model_quality.md). A second stage, fitted on phantom patients the
U-Net never saw, reads per voxel the synthetic enhancement and the four inputs — each as it is, against the central
gland's median, smoothed at three in-plane scales and as local contrast, local minimum / maximum, gradient — and
predicts what the U-Net left over (acquired − synthetic), with the squared error (so the conditional mean, not a
lesion-weighted guess). Trees cannot extrapolate: on inputs outside what they saw, their output stays within the
corrections seen in training.

The trees are fitted with scikit-learn (``scripts/fit_voxel_corrector.py``) and stored as plain arrays in a
safetensors file beside the model card (no pickle); this module evaluates them with numpy and computes the features
with torch only, so synthesis needs neither scikit-learn nor scipy. A missing PD (a constant channel, as synthesis
gives it) makes its features NaN, which the trees route as they learnt with PD left out in training.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from DCEDiffLib.errors import ModelFileError

CORRECTOR_VERSION = 1
REGION_RADIUS = 2.0  # the corrected region: within 2 central-ellipsoid radii of the grid centre (ood.gland_radius)
TAPER = 0.25  # the correction fades to zero over the outer 0.25 radii, so the region has no seam
SCALES_PX = (1.0, 3.0, 7.0)  # in-plane Gaussian sigmas
WINDOW_PX = 5  # local minimum / maximum window
CHANNELS = ("t2w", "pd", "adc", "t1pre", "enh_early", "enh_late")
PREDICT_CHUNK = 1024  # voxels a tree-traversal pass takes at a time
# Threads walking chunks at once: numpy's fancy indexing, comparisons and where release the GIL, so the chunks run on
# every core the process may use (the networks are done by then; docs/performance.md, "The tree stages on both
# cores"). Each chunk writes its own rows: the result does not depend on the thread count.
PREDICT_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
TREE_ARRAYS = ("feature", "threshold", "left", "right", "is_leaf", "missing_left", "value", "roots")


def feature_names() -> List[str]:
    """The features' names in column order (stored in the card and checked on load)."""
    names = []
    for channel in CHANNELS:
        names += [f"{channel}_value", f"{channel}_vs_gland"]
        names += [f"{channel}_smooth{s:g}_vs_gland" for s in SCALES_PX]
        names += [f"{channel}_local_contrast", f"{channel}_min{WINDOW_PX}_vs_gland",
                  f"{channel}_max{WINDOW_PX}_vs_gland", f"{channel}_gradient"]
    return names + ["radius", "slice_offset"]


def _gaussian(volume: torch.Tensor, sigma: float) -> torch.Tensor:
    """In-plane Gaussian of a (K, H, W) tensor (separable, edges replicated)."""
    radius = int(np.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=volume.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    v = volume[:, None]
    v = F.conv2d(F.pad(v, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    v = F.conv2d(F.pad(v, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return v[:, 0]


def _local_extreme(volume: torch.Tensor, sign: float) -> torch.Tensor:
    half = WINDOW_PX // 2
    padded = F.pad(sign * volume[:, None], (half, half, half, half), mode="replicate")
    return sign * F.max_pool2d(padded, WINDOW_PX, stride=1)[:, 0]


def _gradient(volume: torch.Tensor) -> torch.Tensor:
    smooth = _gaussian(volume, 1.0)
    gy = torch.zeros_like(smooth)
    gx = torch.zeros_like(smooth)
    gy[:, 1:-1] = (smooth[:, 2:] - smooth[:, :-2]) / 2
    gx[:, :, 1:-1] = (smooth[:, :, 2:] - smooth[:, :, :-2]) / 2
    return torch.hypot(gy, gx)


def region_weight(radius: np.ndarray) -> np.ndarray:
    """1 inside the corrected region, fading linearly to 0 over its outer :data:`TAPER` radii."""
    return np.clip((REGION_RADIUS - radius) / TAPER, 0.0, 1.0).astype(np.float32)


def region_features(synthetic: np.ndarray, conditions: np.ndarray, zero_enhancement: np.ndarray):
    """(features, region, weight) of a synthesis: :func:`voxel_features` of the voxels in the corrected region
    (``weight`` > 0, see :func:`region_weight`), that region as a (K, H, W) mask, and the weight map. The fitting
    script and :meth:`VoxelCorrector.correct` both take their voxels from here."""
    from DCEDiffLib import ood

    radius = ood.gland_radius(synthetic.shape[1:])
    weight = region_weight(radius)
    region = weight > 0
    return voxel_features(conditions, synthetic - zero_enhancement[None], radius, region), region, weight


def voxel_features(conditions: np.ndarray, enhancement: np.ndarray, radius: np.ndarray,
                   region: np.ndarray) -> np.ndarray:
    """(voxels in ``region``, features) float32 in :func:`feature_names` order.

    ``conditions`` (4, K, H, W) normalised t2w, pd, adc, t1pre (clipped to [-1, 1] as synthesis feeds them);
    ``enhancement`` (2, K, H, W) synthetic early/late minus the T1-pre on the targets' scale; ``radius``
    (K, H, W) from ``ood.gland_radius``. A constant PD channel (left out) gives NaN PD features.
    """
    conditions = np.clip(np.asarray(conditions, np.float32), -1, 1)
    if conditions.ndim != 4 or conditions.shape[0] != 4 or enhancement.shape != (2,) + conditions.shape[1:]:
        raise ValueError(f"voxel_features: conditions (4, K, H, W) and enhancement (2, K, H, W) expected, got "
                         f"{conditions.shape} and {enhancement.shape}")
    central = radius <= 1.0
    stacked = np.concatenate([conditions, np.asarray(enhancement, np.float32)])
    columns = []
    for index, channel in enumerate(CHANNELS):
        values = torch.from_numpy(np.ascontiguousarray(stacked[index], dtype=np.float32))
        reference = float(np.median(stacked[index][central]))
        maps = [values, values - reference]
        smooth = [_gaussian(values, s) for s in SCALES_PX]
        maps += [s - reference for s in smooth]
        maps += [values - smooth[1], _local_extreme(values, -1.0) - reference, _local_extreme(values, 1.0) - reference,
                 _gradient(values)]
        block = np.stack([m.numpy()[region] for m in maps], axis=1)
        if channel == "pd" and float(stacked[index].max() - stacked[index].min()) == 0.0:
            block[:] = np.nan
        columns.append(block)
    k = np.arange(radius.shape[0], dtype=np.float32)[:, None, None] - (radius.shape[0] - 1) / 2
    columns.append(np.stack([radius[region], np.broadcast_to(k, radius.shape)[region]], axis=1))
    return np.concatenate(columns, axis=1).astype(np.float32)


@dataclasses.dataclass
class TreeEnsemble:
    """Additive regression trees as flat arrays (all trees' nodes together; ``roots`` their first nodes).

    A voxel goes left when its feature is ≤ the threshold, or when it is NaN and ``missing_left``; the prediction is
    ``baseline`` plus the leaf values it reaches, one per tree.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """One value per row of ``features`` (N, F)."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or (features.shape[1] <= int(self.feature.max(initial=0))):
            raise ValueError(f"TreeEnsemble.predict: (N, F) features with F > {int(self.feature.max(initial=0))} "
                             f"expected, got {features.shape}")
        out = np.empty(features.shape[0])
        starts = range(0, features.shape[0], PREDICT_CHUNK)
        threads = min(PREDICT_THREADS, len(starts))
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda start: self._predict_chunk(features, start, out), starts))  # raises an error
        else:
            for start in starts:
                self._predict_chunk(features, start, out)
        return self.baseline + out

    def _predict_chunk(self, features: np.ndarray, start: int, out: np.ndarray) -> None:
        """The trees' sum for rows ``start … start + PREDICT_CHUNK`` of ``features``, written into ``out``."""
        trees = len(self.roots)
        # Only the (voxel, tree) pairs still inside a tree take the next step: the average path is far shorter than
        # the deepest (a step for every pair at every level cost 5–7× more, docs/performance.md); voxels go in
        # chunks so the index arrays stay small.
        x = features[start:start + PREDICT_CHUNK]
        row = np.repeat(np.arange(x.shape[0]), trees)
        node = np.tile(self.roots, x.shape[0])
        active = np.flatnonzero(~self.is_leaf[node])
        for _ in range(len(self.feature)):  # no path is longer than the nodes; a corrupt file must not loop
            if not active.size:
                break
            current = node[active]
            value = x[row[active], self.feature[current]]
            go_left = (value <= self.threshold[current]) | (np.isnan(value) & self.missing_left[current])
            current = np.where(go_left, self.left[current], self.right[current])
            node[active] = current
            active = active[~self.is_leaf[current]]
        if active.size:
            raise ValueError("TreeEnsemble.predict: a path through the trees never reaches a leaf (a cycle)")
        out[start:start + x.shape[0]] = self.value[node].reshape(x.shape[0], trees).sum(axis=1)

    def tensors(self, prefix: str) -> Dict[str, np.ndarray]:
        """The arrays under ``prefix.name`` for a safetensors file."""
        return {f"{prefix}.{name}": np.ascontiguousarray(getattr(self, name)) for name in TREE_ARRAYS}

    @classmethod
    def from_tensors(cls, tensors: Dict[str, np.ndarray], prefix: str, baseline: float) -> "TreeEnsemble":
        """The ensemble stored under ``prefix`` (see :meth:`tensors`), checked for consistency."""
        try:
            arrays = {name: np.asarray(tensors[f"{prefix}.{name}"]) for name in TREE_ARRAYS}
        except KeyError as exc:
            raise ValueError(f"tree array {exc} is missing") from None
        nodes = len(arrays["feature"])
        if any(len(arrays[name]) != nodes for name in TREE_ARRAYS if name != "roots"):
            raise ValueError("tree arrays of unequal length")
        for name in ("left", "right", "roots"):
            if nodes == 0 or arrays[name].min() < 0 or arrays[name].max() >= nodes:
                raise ValueError(f"tree array {name} points outside the {nodes} nodes")
        if not np.isfinite(arrays["value"]).all():
            raise ValueError("tree leaf values contain NaN or Inf")
        split = ~arrays["is_leaf"].astype(bool)
        index = np.arange(nodes)
        if (arrays["left"][split] <= index[split]).any() or (arrays["right"][split] <= index[split]).any():
            raise ValueError("tree arrays point a split back to itself or an earlier node (a cycle)")
        return cls(feature=arrays["feature"].astype(np.int64), threshold=arrays["threshold"].astype(np.float64),
                   left=arrays["left"].astype(np.int64), right=arrays["right"].astype(np.int64),
                   is_leaf=arrays["is_leaf"].astype(bool), missing_left=arrays["missing_left"].astype(bool),
                   value=arrays["value"].astype(np.float64), roots=arrays["roots"].astype(np.int64),
                   baseline=float(baseline))


def ensemble_from_sklearn(regressor) -> TreeEnsemble:
    """Flatten a fitted ``sklearn.ensemble.HistGradientBoostingRegressor`` (numeric features only)."""
    parts, roots, offset = [], [], 0
    for (predictor,) in regressor._predictors:
        nodes = predictor.nodes
        if "is_categorical" in nodes.dtype.names and nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported")
        parts.append((nodes, offset))
        roots.append(offset)
        offset += len(nodes)

    def joined(field, shift=False):  # child indices move by the tree's offset in the flat arrays
        return np.concatenate([n[field].astype(np.int64) + o if shift else n[field] for n, o in parts])

    return TreeEnsemble(feature=joined("feature_idx").astype(np.int64), threshold=joined("num_threshold")
                        .astype(np.float64), left=joined("left", True), right=joined("right", True),
                        is_leaf=joined("is_leaf").astype(bool), missing_left=joined("missing_go_to_left").astype(bool),
                        value=joined("value").astype(np.float64), roots=np.asarray(roots, np.int64),
                        baseline=float(np.ravel(regressor._baseline_prediction)[0]))


@dataclasses.dataclass
class VoxelCorrector:
    """One tree ensemble per target; :meth:`correct` adds their prediction around the prostate."""

    ensembles: Dict[str, TreeEnsemble]
    targets: Tuple[str, ...]

    def correct(self, synthetic: np.ndarray, conditions: np.ndarray, zero_enhancement: np.ndarray) -> np.ndarray:
        """``synthetic`` (2, K, H, W) plus the predicted correction (tapered at the region's edge), clipped to
        [-1, 1]; ``zero_enhancement`` (K, H, W) is the T1-pre on the targets' scale. Inputs are not modified."""
        features, region, weight = region_features(synthetic, conditions, zero_enhancement)
        out = np.array(synthetic, dtype=np.float32, copy=True)
        for index, target in enumerate(self.targets):
            out[index][region] += (weight[region] * self.ensembles[target].predict(features)).astype(np.float32)
        return np.clip(out, -1.0, 1.0)


def tree_file_path(card_path: Path, entry: dict) -> Path:
    """A tree file (the corrector's, the learned error map's), named in the card relative to the card's folder."""
    return Path(card_path).parent / str(entry["file"])


def load_tree_file(card_path: Path, entry: dict, targets, what: str, version: int) -> Dict[str, TreeEnsemble]:
    """One tree ensemble per target from the safetensors file a card ``entry`` names (``file``, ``sha256``,
    ``baseline``): the entry's ``version`` and feature list checked against what this DCEDiff computes, the file
    against the card's SHA-256; ``what`` names the entry in error messages."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from DCEDiffLib.diffusion.model_files import sha256_of

    if entry.get("version") != version or entry.get("features") != feature_names():
        raise ModelFileError(f"model card {card_path}: {what} version {entry.get('version')} or its feature list is "
                             f"not the one this DCEDiff computes (version {version})")
    if not isinstance(entry.get("file"), str) or not entry["file"]:
        raise ModelFileError(f"model card {card_path}: the {what} entry names no file (expected 'file': "
                             "'<name>.safetensors' beside the card)")
    path = tree_file_path(card_path, entry)
    if not path.is_file():
        raise ModelFileError(f"{what} {path} is missing (named by the card {card_path})")
    if sha256_of(path) != entry.get("sha256"):
        raise ModelFileError(f"{what} {path}: SHA-256 does not match the card's; the file was altered or belongs to "
                             "another card")
    try:
        tensors = load_file(str(path))
        return {t: TreeEnsemble.from_tensors(tensors, t, entry["baseline"][t]) for t in targets}
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{what} {path} is corrupt or does not fit its card ({exc})") from None


def load_corrector(card: dict, card_path: Path) -> Optional[VoxelCorrector]:
    """The card's ``voxel_corrector`` (None when it has none), its file checked against the card's SHA-256."""
    entry = card.get("voxel_corrector")
    if not entry:
        return None
    ensembles = load_tree_file(card_path, entry, card["targets"], "voxel corrector", CORRECTOR_VERSION)
    return VoxelCorrector(ensembles, tuple(card["targets"]))
