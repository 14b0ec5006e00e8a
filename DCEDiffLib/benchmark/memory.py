"""Peak memory of a block of code: the process's resident set on CPU, allocated device memory on CUDA.

On CPU a background thread reads ``/proc/self/statm`` every few milliseconds while the block runs; torch's
kernels release the GIL, so the thread keeps sampling during long convolutions. The absolute peak (what the
operating system must provide, interpreter and torch included) and the growth above the level at entry are
both kept. Where ``/proc`` does not exist, the process's lifetime maximum (``ru_maxrss``) is the fallback.
On CUDA, ``torch.cuda.max_memory_allocated`` after a reset is exact.
"""

from __future__ import annotations

import os
import threading
from typing import Optional

MB = 2 ** 20
SAMPLE_INTERVAL_S = 0.005


def current_rss_bytes() -> Optional[int]:
    """Resident set size of this process now, from ``/proc/self/statm`` (None where it does not exist)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def lifetime_max_rss_bytes() -> Optional[int]:
    """The process's lifetime peak resident set (``getrusage``; kilobytes on Linux, bytes on macOS)."""
    try:
        import resource
        import sys

        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(value) if sys.platform == "darwin" else int(value) * 1024
    except (ImportError, OSError):
        return None


class PeakMemory:
    """Context manager: ``with PeakMemory(device) as peak: ...`` then ``peak.result()``.

    ``result()`` is a dict: ``peak_mb`` (absolute peak of the process's RSS, or of allocated CUDA memory),
    ``increase_mb`` (peak minus the level at entry), ``kind`` ("cpu_rss", "cpu_rss_lifetime" or
    "cuda_allocated") and ``samples`` (how many RSS readings the thread took).
    """

    def __init__(self, device: str = "cpu", interval_s: float = SAMPLE_INTERVAL_S):
        self.device = str(device)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._start_bytes = 0
        self._peak_bytes = 0
        self._samples = 0
        self._kind = "cpu_rss"

    def _cuda(self) -> bool:
        return self.device.startswith("cuda")

    def _sample_loop(self) -> None:
        while not self._stop.is_set():
            self._read()
            self._stop.wait(self.interval_s)

    def _read(self) -> None:
        value = current_rss_bytes()
        if value is not None:
            self._samples += 1
            if value > self._peak_bytes:
                self._peak_bytes = value

    def __enter__(self) -> "PeakMemory":
        if self._cuda():
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start_bytes = torch.cuda.memory_allocated()
            self._kind = "cuda_allocated"
            return self
        start = current_rss_bytes()
        if start is None:
            self._kind = "cpu_rss_lifetime"
            self._start_bytes = lifetime_max_rss_bytes() or 0
            return self
        self._start_bytes = self._peak_bytes = start
        self._thread = threading.Thread(target=self._sample_loop, name="dcediff-peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._cuda():
            import torch

            torch.cuda.synchronize()
            self._peak_bytes = torch.cuda.max_memory_allocated()
            return
        if self._thread is None:
            self._peak_bytes = lifetime_max_rss_bytes() or 0
            return
        self._stop.set()
        self._thread.join()
        self._read()  # one last reading after the block

    def result(self) -> dict:
        """The measurement in MiB (see the class docstring)."""
        return {"peak_mb": round(self._peak_bytes / MB, 1),
                "increase_mb": round(max(self._peak_bytes - self._start_bytes, 0) / MB, 1),
                "kind": self._kind, "samples": self._samples}
