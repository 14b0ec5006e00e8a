"""Trivial baselines, scored exactly like a model: what does a prediction that knows no anatomy achieve?

- ``identity``: T1-pre on the target's intensity scale as the prediction for early and late — zero enhancement.
  Whole-image PSNR/SSIM of this "copy the pre-contrast frame" prediction are high because a DCE frame mostly *is*
  the pre-contrast anatomy; a model must beat it on the enhancement metrics to show it synthesises anything.
- ``mean_enhancement`` (:class:`MeanEnhancementBaseline`): T1-pre plus the training set's average enhancement for
  the voxel's T1-pre intensity bin. It learns an intensity → enhancement curve and nothing about anatomy.

Both assume, like DCEDiff's training data (``target_scale``), that T1-pre and the targets share one intensity scale
(T1-pre is the pre-contrast frame of the same sequence); for other data pass the evaluation's mapping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from DCEDiffLib.errors import InputError

BASELINE_KIND = "mean_enhancement"
FORMAT_VERSION = 1
MAX_EDGE_SAMPLES = 2_000_000  # voxels used to place the quantile bin edges (all of them up to this many)


def identity_baseline(t1pre: np.ndarray, target_scale_reference: Optional[np.ndarray] = None,
                      method: str = "identity", body_mask: Optional[np.ndarray] = None,
                      tissue_mask: Optional[np.ndarray] = None) -> np.ndarray:
    """T1-pre mapped onto the target's intensity scale (float32; float64 for a float64 T1-pre): a prediction with
    exactly zero enhancement.

    ``target_scale_reference`` is the acquired target whose scale is matched (the early one: least enhanced); it is
    only read by the data-driven mappings. Use the same ``method`` (and masks) as the evaluation, so the evaluation's
    enhancement of this prediction is exactly 0.
    """
    from DCEDiffLib.evaluation.enhancement import fit_target_scale
    from DCEDiffLib.evaluation.metrics import check_volume

    t1 = check_volume(t1pre, "T1-pre")
    reference = t1 if target_scale_reference is None else check_volume(target_scale_reference, "target reference")
    mapping = fit_target_scale(t1, reference, method, body_mask=body_mask, tissue_mask=tissue_mask)
    return mapping.apply(np.asarray(t1pre))


class MeanEnhancementBaseline:
    """T1-pre + the training set's mean enhancement per T1-pre intensity bin (early and late separately).

    Each T1-pre is normalised by its own robust range (``low_percentile``/``high_percentile`` → 0/1, not clipped).
    The normalised values of all training cases define ``n_bins`` quantile bins (edges shared by ties are merged,
    so there may be fewer). In each bin the enhancement ``(target − T1-pre) / range(T1-pre)`` is averaged over every
    training voxel (pooled, whole grid). Expressing enhancement as a fraction of the T1-pre's range makes the
    baseline independent of each case's receiver gain. ``predict`` adds the bin's mean back, times the new case's
    range. A bin that received no training voxel takes the value interpolated between its neighbours.
    """

    def __init__(self, n_bins: int = 32, low_percentile: float = 0.5, high_percentile: float = 99.5):
        if int(n_bins) < 1:
            raise InputError(f"mean-enhancement baseline n_bins: expected >= 1, got {n_bins}")
        self.n_bins = int(n_bins)
        self.low_percentile = float(low_percentile)
        self.high_percentile = float(high_percentile)
        self.inner_edges: Optional[np.ndarray] = None  # bin boundaries on the normalised T1-pre
        self.early: Optional[np.ndarray] = None  # mean enhancement per bin, fraction of the T1-pre range
        self.late: Optional[np.ndarray] = None
        self.voxels: Optional[np.ndarray] = None  # training voxels per bin
        self.n_cases = 0

    # -- normalisation -------------------------------------------------------------------------------------------
    def _normalise(self, t1pre: np.ndarray, name: str) -> Tuple[np.ndarray, float, float]:
        low, high = np.percentile(t1pre, [self.low_percentile, self.high_percentile])
        span = float(high - low)
        if not span > 0:
            raise InputError(f"{name}: T1-pre has no contrast (its {self.low_percentile}th and "
                             f"{self.high_percentile}th percentiles are equal)")
        return (t1pre - low) / span, float(low), span

    @staticmethod
    def _bins(inner_edges: np.ndarray, normalised: np.ndarray) -> np.ndarray:
        return np.searchsorted(inner_edges, normalised, side="right")

    # -- fit / predict -------------------------------------------------------------------------------------------
    def fit(self, cases: Iterable[Sequence[np.ndarray]]) -> "MeanEnhancementBaseline":
        """Learn the per-bin mean enhancement from ``(t1pre, target_early, target_late)`` triples; returns self.

        Two passes over the cases (bin edges, then sums), so no pooled copy of the training set is held in memory.
        """
        cases = list(cases)
        if not cases:
            raise InputError("mean-enhancement baseline: no training case with acquired early/late DCE")
        for index, case in enumerate(cases):
            if len(case) != 3:
                raise InputError(f"mean-enhancement baseline case {index}: expected (t1pre, early, late)")
            shapes = [np.shape(volume) for volume in case]
            if len(set(shapes)) != 1:
                raise InputError(f"baseline case {index}: T1-pre {shapes[0]}, early {shapes[1]} and late "
                                 f"{shapes[2]} must have one shape")
        total = sum(int(np.prod(np.shape(case[0]))) for case in cases)
        stride = max(1, int(np.ceil(total / MAX_EDGE_SAMPLES)))  # deterministic thinning; quantiles barely move

        samples = []
        for index, case in enumerate(cases):
            normalised, _ = self._case_arrays(case, index, enhancement=False)
            samples.append(normalised.ravel()[::stride])
        edges = np.quantile(np.concatenate(samples), np.linspace(0.0, 1.0, self.n_bins + 1))
        del samples
        inner_edges = np.unique(edges[1:-1])
        n_bins = inner_edges.size + 1
        counts = np.zeros(n_bins)
        sums_early = np.zeros(n_bins)
        sums_late = np.zeros(n_bins)
        for index, case in enumerate(cases):
            normalised, (enh_early, enh_late) = self._case_arrays(case, index, enhancement=True)
            bins = self._bins(inner_edges, normalised.ravel())
            counts += np.bincount(bins, minlength=n_bins)
            sums_early += np.bincount(bins, weights=enh_early.ravel(), minlength=n_bins)
            sums_late += np.bincount(bins, weights=enh_late.ravel(), minlength=n_bins)
        filled = counts > 0
        centres = np.arange(n_bins, dtype=np.float64)
        # Assigned only now: a case that fails its checks leaves the baseline as it was.
        self.inner_edges = inner_edges
        self.early = np.interp(centres, centres[filled], sums_early[filled] / counts[filled])
        self.late = np.interp(centres, centres[filled], sums_late[filled] / counts[filled])
        self.voxels = counts.astype(np.int64)
        self.n_cases = len(cases)
        return self

    def _case_arrays(self, case: Sequence[np.ndarray], index: int, enhancement: bool):
        """Normalised T1-pre and, if asked, early/late enhancement as fractions of the T1-pre's range."""
        from DCEDiffLib.evaluation.metrics import check_volume

        t1 = check_volume(case[0], f"baseline case {index} T1-pre")
        normalised, _, span = self._normalise(t1, f"baseline case {index}")
        if not enhancement:
            return normalised, None
        early = check_volume(case[1], f"baseline case {index} early target")
        late = check_volume(case[2], f"baseline case {index} late target")
        return normalised, ((early - t1) / span, (late - t1) / span)

    def predict(self, t1pre: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Early and late predictions (float32, T1-pre's shape) for one T1-pre volume."""
        from DCEDiffLib.evaluation.metrics import check_volume

        if self.inner_edges is None:
            raise InputError("mean-enhancement baseline: not fitted (call fit() or load it from a file)")
        t1 = check_volume(t1pre, "T1-pre")
        normalised, _, span = self._normalise(t1, "T1-pre")
        bins = self._bins(self.inner_edges, normalised)
        early = t1 + self.early[bins] * span
        late = t1 + self.late[bins] * span
        return early.astype(np.float32), late.astype(np.float32)

    # -- persistence (JSON next to a model) ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Everything needed to predict, as plain JSON types."""
        if self.inner_edges is None:
            raise InputError("mean-enhancement baseline: not fitted; nothing to save")
        return {"kind": BASELINE_KIND, "format_version": FORMAT_VERSION, "n_bins": self.n_bins,
                "low_percentile": self.low_percentile, "high_percentile": self.high_percentile,
                "units": "enhancement as a fraction of the T1-pre's robust range, per normalised-T1-pre bin",
                "inner_edges": self.inner_edges.tolist(), "early": self.early.tolist(), "late": self.late.tolist(),
                "voxels": self.voxels.tolist(), "n_cases": self.n_cases}

    @classmethod
    def from_dict(cls, data: dict) -> "MeanEnhancementBaseline":
        """Rebuild a fitted baseline from :meth:`to_dict`'s output; InputError if it is not one."""
        if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND:
            raise InputError(f"baseline file: expected kind {BASELINE_KIND!r}")
        if data.get("format_version") != FORMAT_VERSION:
            raise InputError(f"baseline file: format version {data.get('format_version')!r} is not supported "
                             f"(expected {FORMAT_VERSION})")
        try:
            model = cls(int(data["n_bins"]), float(data["low_percentile"]), float(data["high_percentile"]))
            model.inner_edges = np.asarray(data["inner_edges"], dtype=np.float64).reshape(-1)
            model.early = np.asarray(data["early"], dtype=np.float64).reshape(-1)
            model.late = np.asarray(data["late"], dtype=np.float64).reshape(-1)
            model.voxels = np.asarray(data.get("voxels", [0] * model.early.size), dtype=np.int64).reshape(-1)
            model.n_cases = int(data.get("n_cases", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"baseline file: malformed ({exc})") from exc
        n = model.inner_edges.size + 1
        if model.early.size != n or model.late.size != n or not np.all(np.diff(model.inner_edges) > 0):
            raise InputError("baseline file: bin edges and values do not match")
        if not (np.isfinite(model.early).all() and np.isfinite(model.late).all()):
            raise InputError("baseline file: non-finite enhancement values")
        return model

    def save(self, path) -> Path:
        """Write the baseline as JSON atomically."""
        from DCEDiffLib.atomic import write_text_atomic

        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path) -> "MeanEnhancementBaseline":
        """Read a baseline written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"baseline file {path}: cannot be read as JSON ({exc})") from exc
        return cls.from_dict(data)

