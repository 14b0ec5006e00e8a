"""Which arithmetic the network runs in: fp32, or bf16 autocast where the hardware has it and it is accurate enough.

``--precision auto`` (the default of ``dcediff synthesize``/``demo`` and of ``synthesize_volume``):

- CUDA: bf16 (tensor cores);
- CPU with native bf16 (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo) *and* the measured bf16-vs-fp32
  difference (:data:`BF16_CHECK`, ``scripts/bf16_quality_check.py``) inside :data:`BF16_BOUND`: bf16;
- any other CPU: fp32 (bf16 there is emulated and several times slower, docs/performance.md P4).

``fp32`` and ``bf16`` are always honoured; bf16 on a CPU without native bf16 runs, with a warning that it is
emulated and slow. :func:`choose_precision` returns what was used and why (recorded in synthesis.json).
No torch import: cheap to call anywhere (the Slicer GUI process included).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_HELP = ("arithmetic of the network: auto (default) = bf16 on a CUDA GPU and on a CPU with native bf16 "
                  "(avx512_bf16/amx_bf16), fp32 elsewhere; fp32; bf16 (emulated and slow on a CPU without native "
                  "bf16). The choice and why are recorded in synthesis.json")
# cpuinfo flags of hardware bf16 arithmetic: AVX512-BF16 dot products (Intel Cooper Lake+, AMD Zen 4+) or AMX tiles
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

# The bound the bf16 result must stay inside, against fp32 on the same inputs, seed and sampler (one sample, the
# default sampler): mean |bf16 − fp32| below 0.5 % of the acquired DCE's 0.5–99.5 percentile range, and PSNR
# against the acquired DCE within 0.1 dB of fp32's, for early and late.
BF16_BOUND = {"mean_abs_diff_fraction": 0.005, "psnr_db": 0.1}

# The measurement behind ``auto`` (docs/performance.md, "bf16 on the CPU"; `scripts/bf16_quality_check.py`):
# the shipped residual model a48f1f00… on the shipped sample case, default sampler, seed 0, one sample,
# 2026-12-04 (`--rounds 1 --threads 2`, on an AMD EPYC without native bf16: the numbers are bf16's, the time
# emulated, 7.0x fp32's CPU time). Early/late: mean |Δ| 0.07 % / 0.08 % of the range, max |Δ| 1.40 % / 1.45 %,
# PSNR Δ −0.016 / −0.008 dB. 19baaa36… measured 0.07 % / 0.08 %, −0.002 / −0.000 dB (`--rounds 2`) on an AMD EPYC
# with native bf16 (AVX512-BF16), where bf16 took 0.58x
# the CPU time of fp32 (10.9 s against 18.7 s, two threads; 8.4 s against 14.3 s on one thread for 8b19f24d…; an
# Intel Xeon with AMX measured 0.50x for 3032d5ac…); on an AMD EPYC without native bf16 it is emulated (7.7x the
# CPU time of fp32, measured for bda323aa…) and `auto` stays fp32 there.
# Re-measured at each model replacement (`scripts/bf16_quality_check.py --rounds 1 --threads 1`; each card's values:
# this comment's git history): every residual card from 81a3590f… to 929d185b… gave mean |Δ| 0.08 % and a PSNR Δ of
# 0.001–0.022 dB; the ε-prediction model c6ef46f1… 0.13 %, 0.082 dB.
BF16_CHECK: Dict[str, object] = {
    "model_weights_sha256": "00136218d421f41cf2e8aaec32e2cfa855ce1f27141774c96a8c3d60c06c68e7",
    "case": "Resources/SampleData/phantom_case",
    # re-measured on the real-anatomy sample case shipped since 2026-12-07, PD in 60 mm
    # (on the version-1 case: 0.00082, 0.0049 dB)
    "mean_abs_diff_fraction": 0.00184,  # worst of early/late
    "psnr_diff_db": 0.0409,             # worst |PSNR(bf16) − PSNR(fp32)| of early/late
    "within_bound": True,
}


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """``used`` ("fp32"/"bf16"), ``requested`` ("auto"/"fp32"/"bf16"), ``reason`` (words), ``warning`` (a line
    worth printing, or None)."""

    used: str
    requested: str
    reason: str
    warning: Optional[str] = None

    def to_dict(self) -> dict:
        data = {"used": self.used, "requested": self.requested, "reason": self.reason}
        if self.warning:
            data["warning"] = self.warning
        return data


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> List[str]:
    """The CPU feature flags of the first ``flags`` line of /proc/cpuinfo; empty where there is none."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags") and ":" in line:
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def native_bf16_flags(flags: Optional[Sequence[str]] = None) -> List[str]:
    """Which of :data:`NATIVE_BF16_FLAGS` this CPU (or ``flags``) has."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


def _check_words(check: Dict[str, object]) -> str:
    if check.get("mean_abs_diff_fraction") is None:
        return "bf16 vs fp32 not measured"
    sha = str(check.get("model_weights_sha256") or "?")[:12]
    # measured once, on the shipped model: a reader of another model's synthesis.json must not take it for its own
    return (f"bf16 vs fp32 measured on the shipped model {sha} and the sample case: mean |Δ| "
            f"{100 * float(check['mean_abs_diff_fraction']):.2f} % of the range, PSNR Δ "
            f"{float(check['psnr_diff_db']):.3f} dB (bound < {100 * BF16_BOUND['mean_abs_diff_fraction']:g} %, "
            f"< {BF16_BOUND['psnr_db']:g} dB)")


def choose_precision(requested: str, device_type: str, flags: Optional[Sequence[str]] = None,
                     check: Optional[Dict[str, object]] = None) -> PrecisionChoice:
    """The precision for ``requested`` (auto/fp32/bf16) on ``device_type`` ("cpu"/"cuda"); ``flags`` default to
    this CPU's, ``check`` to :data:`BF16_CHECK`. Raises :class:`InputError` for an unknown ``requested``."""
    from DCEDiffLib.errors import InputError

    requested = str(requested).lower()
    if requested not in PRECISIONS:
        raise InputError(f"precision {requested!r}: expected auto, fp32 or bf16")
    check = BF16_CHECK if check is None else check
    if device_type == "cuda":
        used = "fp32" if requested == "fp32" else "bf16"
        return PrecisionChoice(used, requested, ("auto" if requested == "auto" else f"requested {requested}")
                               + " on a CUDA GPU" + ("; bf16 autocast (tensor cores)" if used == "bf16" else ""))
    native = native_bf16_flags(flags)
    hardware = (f"native {' and '.join(native)} on this CPU" if native
                else f"no native bf16 on this CPU (none of {', '.join(NATIVE_BF16_FLAGS)})")
    if requested == "fp32":
        return PrecisionChoice("fp32", requested, f"requested fp32; {hardware}")
    if requested == "bf16":
        if native:
            return PrecisionChoice("bf16", requested, f"requested bf16; {hardware}")
        warning = ("bf16 was requested on a CPU without native bf16 (no avx512_bf16/amx_bf16): it runs emulated, "
                   "typically several times slower than fp32 (docs/performance.md); use --precision auto or fp32")
        return PrecisionChoice("bf16", requested, f"requested bf16; {hardware}: emulated, slow", warning)
    if not native:
        return PrecisionChoice("fp32", requested, f"auto: {hardware}, where bf16 is emulated and slow")
    if not check.get("within_bound"):
        return PrecisionChoice("fp32", requested, f"auto: {hardware}, but {_check_words(check)}: not within "
                                                  "the bound, so fp32")
    return PrecisionChoice("bf16", requested, f"auto: {hardware}; {_check_words(check)}")
