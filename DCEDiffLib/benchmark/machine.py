"""What a benchmark ran on: CPU, cores, threads, memory, torch build and the CPU's matrix capabilities."""

from __future__ import annotations

import os
import platform
from typing import Dict, List, Optional

# lscpu/cpuinfo flags that decide whether bf16 on the CPU is fast (hardware bf16 dot products or AMX tiles).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni") + BF16_FLAGS


def _cpuinfo_field(name: str, cpuinfo_path: str) -> Optional[str]:
    """The value of the first ``name : value`` line of /proc/cpuinfo, or None (no such line, or no such file)."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(name) and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> List[str]:
    """The CPU feature flags (Linux ``/proc/cpuinfo``, the same list ``lscpu`` prints); empty elsewhere."""
    flags = _cpuinfo_field("flags", cpuinfo_path)
    return flags.split() if flags is not None else []


def cpu_model_name(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name, or ``platform.processor()`` where /proc/cpuinfo does not exist."""
    return _cpuinfo_field("model name", cpuinfo_path) or platform.processor() or platform.machine()


def total_memory_gb() -> Optional[float]:
    """Physical memory in GiB (None where it cannot be read)."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def has_fast_bf16(flags: Optional[List[str]] = None) -> bool:
    """True if the CPU has hardware bf16 (avx512_bf16 or AMX), where bf16 autocast can beat fp32."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_FLAGS)


def torch_cpu_capability() -> str:
    """``torch.backends.cpu.get_cpu_capability()`` (e.g. "AVX512"), or "unknown" on an old torch."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:
        return "unknown"


def load_average() -> Optional[float]:
    """The 1-minute load average: other work on a shared machine slows every measurement (None if unknown)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def machine_info(device: str = "cpu") -> Dict[str, object]:
    """Everything needed to compare a benchmark with another run: CPU, cores, threads, torch, flags, GPU."""
    import torch

    flags = cpu_flags()
    info: Dict[str, object] = {
        "cpu": cpu_model_name(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": total_memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_cpu_capability": torch_cpu_capability(),
        "cpu_flags": {flag: flag in flags for flag in REPORTED_FLAGS},
        "fast_bf16_cpu": has_fast_bf16(flags),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "device": device,
        "load_average_1min": load_average(),
        "cuda": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda"] = {"name": props.name, "memory_gb": round(props.total_memory / 2 ** 30, 1),
                        "capability": f"{props.major}.{props.minor}", "cuda_version": torch.version.cuda}
    return info


def describe(info: Dict[str, object]) -> str:
    """One line, e.g. 'AMD EPYC, 2 cores, 23.4 GB, torch 2.13.0+cpu (AVX512, avx512_bf16), 2 threads'."""
    flags = [name for name, present in dict(info.get("cpu_flags", {})).items() if present and name in BF16_FLAGS]
    text = (f"{info['cpu']}, {info['usable_cpus']} usable cores, {info['memory_gb']} GB, torch {info['torch']} "
            f"({info['torch_cpu_capability']}{', ' + ', '.join(flags) if flags else ', no bf16/AMX flags'}), "
            f"{info['torch_threads']} threads")
    if info.get("cuda"):
        text += f"; GPU {info['cuda']['name']}"
    return text
