"""A learned expected-error map: trees that predict how far off the synthesis is around the prostate.

The edge-based map (``error_map.py``) ranks the body's errors but not the gland's (Spearman about 0 inside the
prostate on every fresh set, docs/model_quality.md): there the error is in the enhancement pattern, not at edges.
Gradient-boosted trees fitted on the absolute error of the card's own synthesis, over the voxel corrector's per-voxel
features (the four inputs and the synthetic enhancement as they are, against the central gland, smoothed, local
contrast, minimum / maximum, gradient; radius; slice), on phantom patients the networks never saw, rank it better
(``scripts/error_rankability.py``). With the squared error their prediction is the conditional mean |error|, so the
map keeps saying how large the error is on average, as the edge-based map does.

The trees cover the voxel corrector's region (``voxel_corrector.REGION_RADIUS`` central-ellipsoid radii around the
grid centre); outside it the edge-based map stands, and over the region's tapered rim the two are blended with the
corrector's weight, so the map has no seam. The trees are stored like the corrector's (a safetensors file beside the
card, named in ``error_model.learned`` with its SHA-256; no pickle) and read the synthesis the card outputs, so they
must be fitted on that output (``scripts/fit_learned_error_map.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from DCEDiffLib.diffusion.voxel_corrector import TreeEnsemble, load_tree_file, region_features
from DCEDiffLib.errors import ModelFileError

LEARNED_MAP_VERSION = 1
FLOOR = 1e-4  # squared-error trees can dip below zero where errors are small; an expected |error| cannot


@dataclasses.dataclass
class LearnedErrorMap:
    """One tree ensemble per target predicting |synthetic − acquired| (normalised units) per voxel."""

    ensembles: Dict[str, TreeEnsemble]
    targets: Tuple[str, ...]

    def blend(self, synthetic: np.ndarray, conditions: np.ndarray, zero_enhancement: np.ndarray,
              edge_maps: np.ndarray) -> np.ndarray:
        """``edge_maps`` (2, K, H, W) with the trees' prediction inside the region (weighted by the corrector's
        tapered region weight); ``synthetic`` (2, K, H, W) is the card's output, ``conditions`` (t2w, pd, adc,
        t1pre) clipped, ``zero_enhancement`` the T1-pre on the targets' scale (``synthesis.voxel_corrector_inputs``).
        A new array; the inputs are not modified."""
        features, region, weight = region_features(synthetic, conditions, zero_enhancement)
        out = np.array(edge_maps, dtype=np.float32, copy=True)
        w = weight[region]
        for index, target in enumerate(self.targets):
            learned = np.maximum(self.ensembles[target].predict(features), FLOOR)
            out[index][region] = (w * learned + (1.0 - w) * out[index][region]).astype(np.float32)
        return out


def load_learned_error_map(card: dict, card_path: Path) -> Optional[LearnedErrorMap]:
    """The card's ``error_model.learned`` trees (None when it has none), the file checked against the card's
    SHA-256 and the feature list against the one this DCEDiff computes."""
    entry = (card.get("error_model") or {}).get("learned")
    if not entry:
        return None
    if not isinstance(entry, dict):
        raise ModelFileError(f"model card {card_path}: error_model.learned is malformed (expected an object with "
                             "version, file, sha256, baseline and features)")
    if card.get("voxel_corrector") and not entry.get("fitted_with_corrector", False):
        raise ModelFileError(f"model card {card_path}: error_model.learned was fitted on the synthesis without the "
                             "voxel corrector the card now has; refit it (scripts/fit_learned_error_map.py)")
    ensembles = load_tree_file(card_path, entry, card["targets"], "learned error map", LEARNED_MAP_VERSION)
    return LearnedErrorMap(ensembles, tuple(card["targets"]))
