"""The warning for a training config that asks for bf16 on a CPU that only emulates it (said by
``Trainer.from_folder`` before the preprocessing)."""

from __future__ import annotations

from typing import Optional, Sequence

from DCEDiffLib.precision import NATIVE_BF16_FLAGS, native_bf16_flags


def emulated_bf16_warning(config: dict, device_type: str, flags: Optional[Sequence[str]] = None) -> Optional[str]:
    """A warning for a config that asks for bf16 autocast on a CPU without native bf16 (``flags`` default to this
    CPU's), where autocast is emulated; None otherwise. Measured 2026-12-04 on an AMD EPYC without it: the residual
    fine-tune of configs/cpu_residual_deep480.json made fewer than 25 steps in 8 minutes in bf16, 0.79 steps/s in
    fp32."""
    if config.get("mixed_precision") != "bf16" or device_type != "cpu" or native_bf16_flags(flags):
        return None
    return ("training config mixed_precision 'bf16' on a CPU without native bf16 (none of "
            f"{', '.join(NATIVE_BF16_FLAGS)}): autocast runs emulated, more than 15 times slower than fp32 here; "
            "set it to 'auto' or 'fp32' for this machine")
