"""The project's performance targets and their PASS/FAIL verdict on a benchmark result.

Targets (default fast sampler, shipped model, this machine): within 0.3 dB PSNR and 0.01 SSIM of the paper's
1000-step sampler at ≤ 20 network evaluations; one 160×160×16 early+late volume in ≤ 30 s end to end and ≥ 50×
faster than the naive 1000-step loop; peak inference memory ≤ 4 GB. A target whose number is missing is
"n/a", never PASS.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, List, Optional

MAX_PSNR_GAP_DB = 0.3
MAX_SSIM_GAP = 0.01
MAX_NFE = 20
MAX_END_TO_END_S = 30.0
MIN_SPEEDUP = 50.0
MAX_MEMORY_MB = 4096.0


@dataclasses.dataclass(frozen=True)
class Target:
    key: str
    description: str
    passes: Callable[[float], bool]
    unit: str = ""


TARGETS = (
    Target("psnr_gap_db_default_vs_ddpm1000",
           f"default sampler within {MAX_PSNR_GAP_DB} dB PSNR of the 1000-step sampler (gap = PSNR_1000 − PSNR_default)",
           lambda v: v <= MAX_PSNR_GAP_DB, " dB"),
    Target("ssim_gap_default_vs_ddpm1000",
           f"default sampler within {MAX_SSIM_GAP} SSIM of the 1000-step sampler (gap = SSIM_1000 − SSIM_default)",
           lambda v: v <= MAX_SSIM_GAP),
    Target("default_nfe", f"default sampler uses ≤ {MAX_NFE} network evaluations per sample", lambda v: v <= MAX_NFE),
    Target("end_to_end_seconds", f"one 160×160×16 early+late volume end to end in ≤ {MAX_END_TO_END_S:g} s",
           lambda v: v <= MAX_END_TO_END_S, " s"),
    Target("speedup_vs_naive_ddpm1000", f"≥ {MIN_SPEEDUP:g}× faster than the naive 1000-step loop",
           lambda v: v >= MIN_SPEEDUP, "×"),
    Target("peak_inference_memory_mb", f"peak inference memory ≤ {MAX_MEMORY_MB / 1024:g} GB",
           lambda v: v <= MAX_MEMORY_MB, " MB"),
)


def _number(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def evaluate_targets(result: dict) -> List[dict]:
    """One verdict per target: ``{"key", "description", "value", "status": "PASS"|"FAIL"|"n/a", "line"}``."""
    verdicts = []
    for target in TARGETS:
        value = _number(result.get(target.key))
        status = "n/a" if value is None else ("PASS" if target.passes(value) else "FAIL")
        shown = "missing" if value is None else f"{value:.4g}{target.unit}"
        verdicts.append({"key": target.key, "description": target.description, "value": value, "status": status,
                         "line": f"{status}: {target.description}: {shown}"})
    return verdicts
