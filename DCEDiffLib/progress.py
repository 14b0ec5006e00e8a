"""One progress-event shape for the CLI progress bar, the Slicer progress bar and the batch log.

A long job reports :class:`ProgressEvent` objects to a callback. ``ProgressTracker`` turns stage-local steps
into an overall fraction and a time-left estimate. In a subprocess, :func:`format_progress_line` prints each
event as one machine-readable line that :func:`parse_progress_line` reads back (the Slicer module does).
No torch import here: Slicer's GUI process imports this module.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Callable, Dict, Optional, Sequence

from DCEDiffLib.errors import CancelledError

PROGRESS_PREFIX = "DCEDIFF_PROGRESS "


@dataclasses.dataclass
class ProgressEvent:
    """Where a job is: ``stage`` (e.g. "register", "sample"), ``step`` of ``total`` within it,
    ``fraction`` of the whole job (0..1), seconds ``elapsed`` and estimated ``remaining`` (None if unknown)."""

    stage: str
    step: int
    total: int
    fraction: float
    elapsed: float
    remaining: Optional[float] = None
    message: str = ""

    def describe(self) -> str:
        """A one-line human description, e.g. 'sample: step 5 of 20 (25%, 12 s left)'."""
        text = f"{self.stage}: step {self.step} of {self.total} ({self.fraction:.0%}"
        if self.remaining is not None:
            text += f", {self.remaining:.0f} s left"
        text += ")"
        if self.message:
            text += f" — {self.message}"
        return text


ProgressCallback = Callable[[ProgressEvent], None]
CancelHook = Callable[[], bool]


def check_cancel(should_cancel: Optional[CancelHook]) -> None:
    """Raise :class:`CancelledError` if the hook says the user cancelled."""
    if should_cancel is not None and should_cancel():
        raise CancelledError("cancelled by the user; no output was written")


class ProgressTracker:
    """Maps (stage, step, total) to an overall fraction using relative stage weights, and estimates time left.

    ``stages`` maps stage name to weight, in order, e.g. ``{"load": 1, "register": 3, "sample": 10, "write": 1}``.
    The time-left estimate extrapolates the elapsed time over the overall fraction done.
    """

    def __init__(self, stages: Dict[str, float], callback: Optional[ProgressCallback] = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.stage_names: Sequence[str] = list(stages)
        weight_sum = float(sum(stages.values())) or 1.0
        self._start = {}
        acc = 0.0
        for name in self.stage_names:
            self._start[name] = acc
            acc += stages[name] / weight_sum
        self._weight = {name: stages[name] / weight_sum for name in self.stage_names}
        self._callback = callback
        self._clock = clock
        self._t0 = clock()

    def report(self, stage: str, step: int, total: int, message: str = "") -> ProgressEvent:
        """Report step ``step`` of ``total`` in ``stage``; returns the event (also sent to the callback)."""
        total = max(int(total), 1)
        local = min(max(step / total, 0.0), 1.0)
        fraction = self._start.get(stage, 0.0) + self._weight.get(stage, 0.0) * local
        elapsed = self._clock() - self._t0
        remaining = elapsed * (1.0 - fraction) / fraction if fraction > 0.02 else None
        event = ProgressEvent(stage, int(step), total, fraction, elapsed, remaining, message)
        if self._callback is not None:
            self._callback(event)
        return event

    def stage_callback(self, stage: str) -> Callable[[int, int], None]:
        """A ``(step, total)`` callback bound to one stage, for code that knows nothing of stages."""
        return lambda step, total: self.report(stage, step, total)


def format_progress_line(event: ProgressEvent) -> str:
    """Serialise an event as one line: the prefix, then JSON."""
    return PROGRESS_PREFIX + json.dumps(dataclasses.asdict(event), separators=(",", ":"))


def parse_progress_line(line: str) -> Optional[ProgressEvent]:
    """Read back a line written by :func:`format_progress_line`; None for any other line."""
    line = line.strip()
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        data = json.loads(line[len(PROGRESS_PREFIX):])
        return ProgressEvent(**data)
    except (ValueError, TypeError):
        return None


def say(text: str) -> None:
    """Print a note or warning on stderr on a line of its own: with a progress bar running, above it (``tqdm.write``
    clears the bar, prints and draws it again) instead of glued to its end."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a core dependency; without it there is no bar to keep clear of
        print(text, file=sys.stderr, flush=True)
        return
    tqdm.write(text, file=sys.stderr)
    sys.stderr.flush()


def print_progress_lines(event: ProgressEvent) -> None:
    """A callback that prints machine-readable progress lines to stdout (for subprocess use)."""
    print(format_progress_line(event), flush=True)


class TqdmProgress:
    """A callback that drives one tqdm bar over the whole job (0..100 %) with the stage in its description."""

    def __init__(self, desc: str = "DCEDiff", disable: bool = False):
        from tqdm import tqdm

        self._bar = tqdm(total=1000, desc=desc, unit="‰", disable=disable,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
        self._last = 0

    def __call__(self, event: ProgressEvent) -> None:
        position = int(round(event.fraction * 1000))
        if position > self._last:
            self._bar.update(position - self._last)
            self._last = position
        self._bar.set_description_str(f"{event.stage} {event.step}/{event.total}")

    def close(self) -> None:
        """Finish the bar."""
        self._bar.close()
