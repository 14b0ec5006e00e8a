"""Wall-clock timing of a callable: warm-up runs, then repeats; the median is the number reported."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable, List


@dataclasses.dataclass
class Timing:
    """Seconds of each timed repeat; ``median`` and ``best`` summarise them."""

    seconds: List[float]

    @property
    def median(self) -> float:
        return float(statistics.median(self.seconds))

    @property
    def best(self) -> float:
        return float(min(self.seconds))

    def to_dict(self) -> dict:
        return {"median_s": round(self.median, 6), "best_s": round(self.best, 6),
                "repeats": len(self.seconds)}


def synchronize(device: str) -> None:
    """Wait for queued GPU work so that a timer measures it (no-op on CPU)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, device: str = "cpu") -> Timing:
    """Run ``fn`` ``warmup`` times untimed (first-call allocations, oneDNN kernel selection), then ``repeats``
    times timed."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(max(warmup, 0)):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return Timing(seconds)
