"""The DCE acquisition of a study: its frames in temporal order (one series with temporal positions, or one series
per time point as TCIA ProstateX stores its TWIST), their times, and the contrast arrival on the mean curve."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.dicom_study import SeriesInfo, Study, Volume, slice_normal
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
    curve: Optional[List[Optional[float]]] = None   # mean intensity per frame (read when needed; None: incomplete)
    arrival_index: Optional[int] = None      # first frame after contrast arrival
    # frame index → what its series lacks: a time point stored as its own series that misses slices the others
    # hold. It keeps its place and time (the other frames keep theirs) but is never read or picked.
    incomplete: Dict[int, str] = dataclasses.field(default_factory=dict)

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
                "mean_curve": None if self.curve is None else [None if v is None else round(float(v), 4)
                                                               for v in self.curve],
                "incomplete_frames": [{"frame_index": i, "series_number": self.frames[i][0].number,
                                       "series_description": self.frames[i][0].description, "missing": what}
                                      for i, what in sorted(self.incomplete.items())]}

    def incomplete_text(self, index: int) -> str:
        """``DCE frame 3 #24 'twist_TT=24.0s' (24.0 s after the first frame) misses …`` for an incomplete frame."""
        series = self.frames[index][0]
        when = "" if self.times_s is None else f" ({self.times_s[index]:.1f} s after the first frame)"
        return f"DCE frame {index} {series.label()}{when} {self.incomplete[index]}"


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
        key = (_TT.sub("", s.description.lower()).strip(" _-"), s.sequence_name, s.orientation, s.rows, s.columns)
        groups.setdefault(key, []).append(s)
    for members in groups.values():
        for frames, short in _time_points(members):
            if len(frames) - len(short) >= DCE_MIN_FRAMES:   # whole frames: a DCE without the incomplete ones too
                found.append(_per_time_point(frames, short))
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
        elif len(s.volumes()) == 1 and _drift(s):
            drift, tag = _drift(s)
            out.append((s, f"has slice positions that move between its time points (told apart by {tag}) by up to "
                           f"{drift:.2f} mm, more than the {s.position_tolerance:.2f} mm within which positions are "
                           "one slice position (table drift, or positions rewritten by an export), so it cannot be "
                           "split into time points; expected every time point at the same slice positions"))
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


def _drift(s: SeriesInfo) -> Optional[Tuple[float, str]]:
    """(how far, mm, the slice positions of the series move between its time points, the tag that tells them apart)
    where a time tag splits its files into equal time points of distinct positions whose positions differ by more
    than the series' position tolerance (so they could not be grouped into slice positions), else None."""
    for key, tag in (("temporal_position", "TemporalPositionIdentifier"), ("trigger_time_ms", "TriggerTime"),
                     ("acquisition_time_s", "AcquisitionTime"), ("content_time_s", "ContentTime")):
        groups: Dict[float, List[np.ndarray]] = {}
        for f in s.files:
            value = getattr(f, key)
            if value is None or f.position is None:
                break
            groups.setdefault(value, []).append(np.asarray(f.position, dtype=float))
        else:
            sizes = {len(g) for g in groups.values()}
            if len(groups) < 2 or len(sizes) != 1 or sizes.pop() < 2:
                continue
            normal = slice_normal(s.files)
            stacks = [np.stack(sorted(g, key=lambda p: float(p @ normal))) for g in groups.values()]
            drift = max(float(np.max(np.linalg.norm(stack - stacks[0], axis=1))) for stack in stacks)
            if drift > s.position_tolerance:
                return drift, tag
    return None


def _uneven_positions(s: SeriesInfo) -> Optional[Tuple[int, int]]:
    """(fewest, most) images at one slice position of the series where positions repeat unequally often, else
    None."""
    counts = Counter(s.position_key(f) for f in s.files)
    low, high = min(counts.values()), max(counts.values())
    return (low, high) if low != high else None


def _slice_points(s: SeriesInfo) -> np.ndarray:
    """One ImagePositionPatient per slice position of the series (its first file's), in no particular order."""
    first: Dict[int, Tuple[float, float, float]] = {}
    for f in s.files:
        key = s.position_key(f)
        if key is not None:
            first.setdefault(key, f.position)
    return np.asarray(list(first.values()), dtype=float).reshape(-1, 3)


def _missing_points(s: SeriesInfo, whole: np.ndarray, tolerance: float) -> Optional[np.ndarray]:
    """The slice positions of ``whole`` that the series ``s`` lacks, or None where ``s`` has a position that is not
    one of them (another slab or geometry: not the same time point series)."""
    points = _slice_points(s)
    if len(points) == 0 or len(points) != s.num_files:
        return None
    near = np.linalg.norm(points[:, None, :] - whole[None, :, :], axis=2) <= tolerance
    if not near.any(axis=1).all():
        return None
    return whole[~near.any(axis=0)]


def _time_points(members: List[SeriesInfo]) -> List[Tuple[List[SeriesInfo], Dict[str, str]]]:
    """Single-volume dynamic series of one protocol and matrix, in groups of one number of slice positions: (the
    group's series, {uid: what it misses} for those that hold only some of the whole time points' positions).

    The series of the most common number of positions are whole time points; a series with fewer, all of them among
    the whole ones' (a time point missing slices, e.g. a file lost in a download), joins them, marked: left out, it
    moved the middle frame, and the times where it was the first frame, by one frame without a word."""
    by_count: Dict[int, List[SeriesInfo]] = {}
    for s in members:
        by_count.setdefault(s.num_positions, []).append(s)
    count = max(by_count, key=lambda n: (len(by_count[n]), n))
    whole = by_count.pop(count)
    points = _slice_points(whole[0])
    short: Dict[str, str] = {}
    for n in sorted(by_count):
        if n > count:
            continue
        for s in list(by_count[n]):
            missing = _missing_points(s, points, whole[0].position_tolerance)
            if missing is None or len(missing) == 0:
                continue
            listed = ", ".join("(" + ", ".join(f"{v:.1f}" for v in p) + ")" for p in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            short[s.uid] = (f"misses {len(missing)} of the {len(points)} slice positions the other time points hold "
                            f"(ImagePositionPatient {listed}{more} mm)")
            by_count[n].remove(s)
    groups = [(whole + [s for s in members if s.uid in short], short)]
    return groups + [(rest, {}) for rest in by_count.values() if rest]


def _per_time_point(members: List[SeriesInfo], short: Optional[Dict[str, str]] = None) -> DceSeries:
    """Frames from one series per time point, ordered by the time in the description (Siemens ``TT=8.0s``),
    TriggerTime, AcquisitionTime or ContentTime, whichever every series has (else by series number). ``short``:
    the members that miss slices (uid → what), marked :attr:`DceSeries.incomplete` at their place in time."""
    dce = _ordered_time_points(members)
    short = short or {}
    dce.incomplete = {i: short[s.uid] for i, (s, _) in enumerate(dce.frames) if s.uid in short}
    return dce


def _ordered_time_points(members: List[SeriesInfo]) -> DceSeries:
    """The members in time order, with their times (see :func:`_per_time_point`)."""
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
    """Fill ``dce.curve`` (mean intensity of every frame) and ``dce.arrival_index`` (:func:`arrival_index`: the
    first frame after contrast arrival). Reads every frame's pixel data but an incomplete frame's
    (:attr:`DceSeries.incomplete`: its mean is None, the arrival is found on the other frames; the first whole frame
    after it is the arrival frame)."""
    if dce.curve is None:
        curve: List[Optional[float]] = []
        for index, (series, volume) in enumerate(dce.frames):
            if index in dce.incomplete:
                curve.append(None)
                continue
            image = read(volume, f"DCE frame {index} {series.label()}")
            curve.append(float(np.mean(sitk.GetArrayViewFromImage(image), dtype=np.float64)))
        dce.curve = curve
        whole = [i for i, v in enumerate(curve) if v is not None]
        found = arrival_index([curve[i] for i in whole]) if whole else None
        dce.arrival_index = None if found is None else whole[found]
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
