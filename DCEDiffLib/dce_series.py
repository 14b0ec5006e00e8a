"""The DCE acquisition of a study: its frames in temporal order (one series with temporal positions, or one series
per time point as TCIA ProstateX stores its TWIST), their times, and the contrast arrival on the mean curve."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.dicom_study import SLICE_POSITION_DECIMALS, SeriesInfo, Study, Volume
from DCEDiffLib.series_kinds import is_dynamic

DCE_MIN_FRAMES = 3
ARRIVAL_FRACTION = 0.05     # contrast has arrived once the mean curve rose by 5 % of its peak enhancement
ONSET_FRACTION = 0.005      # ... and its onset is the first frame 0.5 % of it (and 5 noise levels) above baseline
MIN_ENHANCEMENT = 0.01      # a mean curve rising by less than 1 % of its baseline shows no arrival
_TT = re.compile(r"tt\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*s")


@dataclasses.dataclass
class DceSeries:
    """One DCE acquisition: its frames in temporal order (each a series volume) and their times."""

    frames: List[Tuple[SeriesInfo, Volume]]
    times_s: Optional[List[float]]           # seconds from the first frame; None when the headers give no times
    layout: str                              # "one series per time point" / "one series, N temporal positions"
    time_source: str
    curve: Optional[List[float]] = None      # mean intensity per frame (read when needed)
    arrival_index: Optional[int] = None      # first frame after contrast arrival

    @property
    def series(self) -> List[SeriesInfo]:
        seen: Dict[str, SeriesInfo] = {}
        for s, _ in self.frames:
            seen.setdefault(s.uid, s)
        return list(seen.values())

    def label(self) -> str:
        first = self.frames[0][0]
        if len(self.series) == 1:
            return f"{first.label()} ({len(self.frames)} temporal positions)"
        last = self.frames[-1][0]
        return f"{first.label()} … {last.label()} ({len(self.frames)} series, one per time point)"

    @property
    def arrival_time_s(self) -> Optional[float]:
        """Contrast arrival: the time of the last frame before it (the end of the baseline)."""
        if self.arrival_index is None or self.arrival_index < 1 or self.times_s is None:
            return None  # arrival at frame 0 (e.g. a first frame brighter than the rest): no frame before it
        return self.times_s[self.arrival_index - 1]

    def to_dict(self) -> dict:
        return {"layout": self.layout, "frames": len(self.frames), "time_source": self.time_source,
                "times_s": None if self.times_s is None else [round(t, 2) for t in self.times_s],
                "series_numbers": [s.number for s in self.series],
                "arrival_frame_index": self.arrival_index, "arrival_time_s": self.arrival_time_s,
                "mean_curve": None if self.curve is None else [round(float(v), 4) for v in self.curve]}


def find_dce_series(study: Study) -> List[DceSeries]:
    """The DCE acquisitions of the study, the one with most frames first.

    A dynamic series with several temporal positions is one acquisition; single-volume dynamic series of the same
    protocol, sequence and geometry (one series per time point) are grouped into one. Fewer than 3 frames is
    not a DCE acquisition."""
    found: List[DceSeries] = []
    groups: Dict[tuple, List[SeriesInfo]] = {}
    for s in study.series:
        if not is_dynamic(s):
            continue
        volumes = s.volumes()
        if len(volumes) > 1:
            if len(volumes) >= DCE_MIN_FRAMES:
                times = [v.time_s for v in volumes]
                known = all(t is not None for t in times)
                found.append(DceSeries([(s, v) for v in volumes], times if known else None,
                                       f"one series, {len(volumes)} temporal positions",
                                       "TriggerTime/AcquisitionTime/ContentTime" if known
                                       else volumes[0].ordered_by or "none"))
            continue
        key = (_TT.sub("", s.description.lower()).strip(" _-"), s.sequence_name, s.orientation, s.rows, s.columns,
               s.num_positions)
        groups.setdefault(key, []).append(s)
    for members in groups.values():
        if len(members) >= DCE_MIN_FRAMES:
            found.append(_per_time_point(members))
    found.sort(key=lambda d: (-len(d.frames), d.frames[0][0].orientation != "axial", d.frames[0][0].number or 0))
    return found


def unusable_dynamic(study: Study, found: Sequence[DceSeries]) -> List[Tuple[SeriesInfo, str]]:
    """Series dynamic by their headers (name, sequence, NumberOfTemporalPositions) that are part of no DCE in
    ``found``, each with why its frames cannot be told apart: the user is told a DCE was there, not that none was."""
    used = {s.uid for dce in found for s in dce.series}
    out = []
    for s in study.series:
        if s.uid in used or not s.named_dynamic or s.modality not in ("MR", ""):
            continue
        if s.multi_frame and not s.one_file_stack:
            out.append((s, f"is stored as {s.num_files} enhanced (multi-frame) MR file(s) of up to "
                           f"{max(f.frames for f in s.files)} frames, which --study does not split into time points"))
        elif s.num_positions < s.num_files and len(s.volumes()) == 1 and _uneven_positions(s):
            low, high = _uneven_positions(s)
            out.append((s, f"holds {s.num_files} images at {s.num_positions} slice positions, some positions "
                           f"{low} times and others {high} (a time point missing slices, or a slice stored twice), "
                           "so it cannot be split into whole time points; expected every time point to hold every "
                           "slice"))
        elif s.num_positions < s.num_files and len(s.volumes()) == 1:
            out.append((s, f"holds {s.num_files} images at {s.num_positions} slice positions with no time tags "
                           "(TemporalPositionIdentifier, TriggerTime, AcquisitionTime, ContentTime) and no distinct "
                           "InstanceNumbers to order them into time points"))
    return out


def _uneven_positions(s: SeriesInfo) -> Optional[Tuple[int, int]]:
    """(fewest, most) images at one slice position of the series where positions repeat unequally often, else
    None."""
    counts = Counter(None if f.position is None else tuple(np.round(f.position, SLICE_POSITION_DECIMALS))
                     for f in s.files)
    low, high = min(counts.values()), max(counts.values())
    return (low, high) if low != high else None


def _per_time_point(members: List[SeriesInfo]) -> DceSeries:
    """Frames from one series per time point, ordered by the time in the description (Siemens ``TT=8.0s``),
    TriggerTime, AcquisitionTime or ContentTime, whichever every series has (else by series number)."""
    def first_file(s, key):
        values = [getattr(f, key) for f in s.files if getattr(f, key) is not None]
        return min(values) if values else None

    sources = (("TT= in the description", lambda s: _tt(s.description)),
               ("TriggerTime", lambda s: None if first_file(s, "trigger_time_ms") is None
                else first_file(s, "trigger_time_ms") / 1000.0),
               ("AcquisitionTime", lambda s: first_file(s, "acquisition_time_s")),
               ("ContentTime", lambda s: first_file(s, "content_time_s")))
    for source, get in sources:
        values = [get(s) for s in members]
        if all(v is not None for v in values) and len(set(values)) == len(values):
            order = np.argsort(values, kind="stable")
            members = [members[i] for i in order]
            start = values[order[0]]
            times = [values[i] - start for i in order]
            return DceSeries([(s, s.volumes()[0]) for s in members], times, "one series per time point", source)
    members = sorted(members, key=lambda s: (s.number or 0, s.uid))
    return DceSeries([(s, s.volumes()[0]) for s in members], None, "one series per time point",
                     "series number (no times in the headers)")


def _tt(description: str) -> Optional[float]:
    match = _TT.search(description.lower())
    return float(match.group(1)) if match else None


def find_arrival(dce: DceSeries, read: Callable[[Volume, str], sitk.Image]) -> DceSeries:
    """Fill ``dce.curve`` (mean intensity of every frame) and ``dce.arrival_index`` (the first frame whose mean
    rose above the first frame's by more than 5 % of the peak enhancement). Reads every frame's pixel data."""
    if dce.curve is None:
        curve = []
        for index, (series, volume) in enumerate(dce.frames):
            image = read(volume, f"DCE frame {index} {series.label()}")
            curve.append(float(np.mean(sitk.GetArrayViewFromImage(image), dtype=np.float64)))
        dce.curve = curve
        dce.arrival_index = arrival_index(curve)
    return dce


def arrival_index(curve: Sequence[float]) -> Optional[int]:
    """The first frame after contrast arrival on a mean DCE curve, or None when it shows no enhancement.

    Coarse step: the first frame above the first frame's value by 5 % of the peak rise. The frames before it are
    the baseline (median, noise from the median absolute deviation); arrival is the first frame above that
    baseline by more than 5 × noise and 0.5 % of the rise: the first arrival frame often holds only a few percent
    of the enhancement, and the frame before it must be free of contrast (it is the T1-pre candidate)."""
    values = np.asarray(curve, dtype=np.float64)
    rise = values.max() - values[0]
    if not rise > MIN_ENHANCEMENT * abs(values[0]):
        return None
    coarse = int(np.nonzero(values - values[0] > ARRIVAL_FRACTION * rise)[0][0])
    baseline = values[:coarse]
    level = np.median(baseline)
    noise = 1.4826 * np.median(np.abs(baseline - level))
    threshold = max(5.0 * noise, ONSET_FRACTION * rise)
    return int(np.nonzero(values[:coarse + 1] - level > threshold)[0][0]) if coarse > 0 else coarse
