"""Measure a phantom case the way ``realism-targets.md`` measures real exams: per-tissue medians over label masks.

:func:`measure_case` takes a generated case (in memory or a written case folder) and returns, per tissue and per
lesion, the statistics the real-exam targets are given in: ADC medians (10⁻⁶ mm²/s), the T2W and PD contrast of a
lesion against the gland (its own zone) around it, the relative enhancement RE = (S − S_T1pre) / S_T1pre at the
phantom's early (middle) and late (last) DCE frames, and whether the T1-weighted series are fat suppressed and what
that does to fat. :func:`collect` turns many cases into lists of values per statistic (lesions pooled per kind) and
:func:`summarize` gives median and 10th–90th percentile; ``scripts/phantom_realism_statistics.py`` prints them next
to the real targets and ``Testing/test_phantom_realism.py`` asserts the ranges docs/phantom.md documents.

How a region is measured on a series: the label map lives on the T2W grid; every other series has its own grid
and its own (recorded) patient motion relative to T2W. Each voxel of the series grid is split into 2×2×2 sub-points,
each sub-point is mapped into the T2W frame with the case's true motion (``series.<s>.motion_relative_to_t2w``) and
looks up its label (SimpleITK, nearest neighbour, in physical space). A voxel belongs to a region's *core* when at
least :data:`CORE_FRACTION` of its sub-points carry the region's label, so medians are of tissue, not of its
partial-volume edge. The true motion is used because the point is the tissue's values, not the misregistration
(real-exam masks see both; the phantom's motion is ≤ 2.5 mm, small next to the gland, not next to a 5 mm lesion).

RE of a region is computed from the region's median signals, (median S_t − median S_pre) / median S_pre, as the
real table's region curves are; the baseline is the T1-pre, which is frame 0 of the phantom's DCE series (before
the bolus arrives, 22–34 s). The real table's "~137 s (middle frame)" and "266 s (last frame)" columns are what the
phantom's early (middle) and late (last) frames correspond to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

# A voxel of a series counts for a region when at least this share of its sub-points lies in the region.
CORE_FRACTION = 0.75
SUBSAMPLES = 2  # sub-points per axis and voxel (2³ = 8 per voxel: 6 of 8 make a core voxel)
# The gland around a lesion: voxels of the lesion's own zone (PZ or TZ label) 2–8 mm from the lesion's label. Own
# zone, because the PZ is bright and the TZ dark on T2W: a PZ lesion's ring that reaches into the TZ would make it
# look bright (radiologists, too, compare a lesion with its own zone).
RING_MM = (2.0, 8.0)
# Urine: the bladder label minus its wall (2.5–5 mm in both anatomy families), with a margin.
URINE_DEPTH_MM = 6.0
# The real-exam "central gland region": 16 × 16 × 4 voxels at the centre of the ADC grid (realism-targets.md).
ADC_CENTRE_BOX = (4, 16, 16)  # (k, j, i)
# Tissues measured on every series (names of case.json's label legend, plus the derived gland and urine).
TISSUES = ("gland", "peripheral_zone", "transition_zone", "fat", "muscle", "urine", "vessel")
# Tissues ranked by T1-pre brightness to place fat among them.
RANKED_TISSUES = ("fat", "muscle", "bone", "bladder", "rectum", "vessel", "peripheral_zone", "transition_zone",
                  "seminal_vesicle", "anterior_fibromuscular_stroma")
# Series (case.json's ``series``) → the image on its grid; image → its series.
SERIES = {"t2w": "t2w", "pd": "pd", "adc": "adc", "dce": "t1pre"}
IMAGE_SERIES = {"t2w": "t2w", "pd": "pd", "adc": "adc", "t1pre": "dce", "dce_early": "dce", "dce_late": "dce"}
MIN_CORE_VOXELS = 3  # fewer core voxels than this: the region is not measured on that series (NaN)

CaseLike = Union["PhantomCase", str, Path]  # noqa: F821 (PhantomCase: DCEDiffLib.phantom.generator)


def measure_case(case: CaseLike) -> Dict[str, object]:
    """Per-tissue and per-lesion statistics of one phantom case, measured on its images and label map.

    ``case``: a :class:`~DCEDiffLib.phantom.generator.PhantomCase` (cheapest: nothing is written or read) or a
    case folder written by ``dcediff phantom`` / ``write_case`` (NIfTI or DICOM; ``case.json`` and
    ``labels.nii.gz``). Returns a JSON-serialisable dict:

    - ``case_id``, ``seed``, ``domain``, ``anatomy_family``, ``fat_suppressed`` (``dce.t1_fat_suppressed``);
    - ``tissues``: name → ``adc``, ``t2w``, ``t1pre`` (median over core voxels), ``re_early``, ``re_late``
      (relative enhancement of the region's median signal against the T1-pre) and ``dce_voxels``;
      names in :data:`TISSUES` (``gland`` = PZ ∪ TZ labels, ``urine`` = bladder label deeper than
      :data:`URINE_DEPTH_MM`);
    - ``lesions``: one entry per lesion of case.json: ``id``, ``kind``, ``zone``, ``diameter_mm``, and for the lesion
      and its zone around it (``*_around``, :data:`RING_MM`): ``adc``, ``t2w``, ``pd``, ``re_early``, ``re_late``;
      ``t2w_ratio`` and ``pd_ratio`` = lesion / around; NaN where the lesion has fewer than
      :data:`MIN_CORE_VOXELS` core voxels on that series;
    - ``adc_centre_box``: median ADC of the 16 × 16 × 4 voxels at the ADC grid centre (the real-exam measurement);
    - ``fat_t1pre_rank`` (1 = brightest of :data:`RANKED_TISSUES` present), ``fat_to_muscle_t1pre`` (ratio of
      medians); ``body_enhancement_t1pre_r``: Pearson r of (late − T1-pre) with T1-pre over the body (T1-pre above
      its 30th percentile), the measure docs/phantom.md compares with ProstateX (−0.49, not fat suppressed).
    """
    params, images, labels = _load(case)
    legend = {name: int(value) for name, value in params["label_legend"].items()}
    per_series = _series_masks(params, images, labels, SERIES)
    arrays = {key: sitk.GetArrayViewFromImage(image).astype(np.float32) for key, image in images.items()}

    def median(key: str, region: str) -> float:
        mask = per_series[IMAGE_SERIES[key]].get(region)
        if mask is None or int(mask.sum()) < MIN_CORE_VOXELS:
            return float("nan")
        return float(np.median(arrays[key][mask]))

    def enhancement(region: str) -> Tuple[float, float]:
        s0 = median("t1pre", region)
        if not s0 > 0:
            return float("nan"), float("nan")
        return (median("dce_early", region) - s0) / s0, (median("dce_late", region) - s0) / s0

    tissues = {}
    for name in TISSUES:
        early, late = enhancement(name)
        dce_mask = per_series["dce"].get(name)
        tissues[name] = {"adc": median("adc", name), "t2w": median("t2w", name), "t1pre": median("t1pre", name),
                         "re_early": early, "re_late": late,
                         "dce_voxels": 0 if dce_mask is None else int(dce_mask.sum())}

    lesions = []
    for info in params.get("lesions", []):
        entry = {"id": int(info["id"]), "kind": info["kind"], "zone": info["zone"],
                 "diameter_mm": float(info["diameter_mm"])}
        for region, suffix in ((f"lesion_{info['id']}", ""), (f"around_{info['id']}", "_around")):
            early, late = enhancement(region)
            entry.update({"adc" + suffix: median("adc", region), "t2w" + suffix: median("t2w", region),
                          "pd" + suffix: median("pd", region), "re_early" + suffix: early, "re_late" + suffix: late})
        entry["t2w_ratio"] = _ratio(entry["t2w"], entry["t2w_around"])
        entry["pd_ratio"] = _ratio(entry["pd"], entry["pd_around"])
        lesions.append(entry)

    ranked = {name: median("t1pre", name) for name in RANKED_TISSUES if name in legend}
    ranked = {name: value for name, value in ranked.items() if np.isfinite(value)}
    order = sorted(ranked, key=ranked.get, reverse=True)
    return {
        "case_id": params.get("case_id"), "seed": params.get("seed"), "domain": params.get("domain"),
        "anatomy_family": params.get("anatomy_family", "procedural"),
        # Cases made before fat suppression became random (the shipped sample case) were all fat suppressed.
        "fat_suppressed": bool(params["dce"].get("t1_fat_suppressed", True)),
        "tissues": tissues, "lesions": lesions,
        "adc_centre_box": _centre_box_median(arrays["adc"]),
        "fat_t1pre_rank": order.index("fat") + 1 if "fat" in order else None,
        "fat_to_muscle_t1pre": _ratio(ranked.get("fat", np.nan), ranked.get("muscle", np.nan)),
        "body_enhancement_t1pre_r": body_enhancement_t1pre_r(arrays["t1pre"], arrays["dce_late"]),
    }


def region_masks(case: CaseLike, series: str) -> Dict[str, np.ndarray]:
    """Core masks (region name → boolean array in k, j, i order) of every region on the grid of ``series``
    ("t2w", "pd", "adc" or "dce"; T1-pre and the DCE frames share the "dce" grid), as :func:`measure_case` uses
    them: label names of case.json, ``gland``, ``urine``, ``bladder`` (wall and urine), ``lesion_<id>`` and
    ``around_<id>``. For statistics this module does not compute."""
    if series not in SERIES:
        raise ValueError(f"series {series!r}: expected one of {', '.join(SERIES)}")
    params, images, labels = _load(case)
    return _series_masks(params, images, labels, (series,))[series]


def collect(measurements: Iterable[Mapping[str, object]]) -> Dict[str, List[float]]:
    """Values per statistic over many :func:`measure_case` results: one value per case for tissue statistics
    (``adc.gland``, ``re_early.fat``, …), one per lesion for lesion statistics, pooled per kind
    (``lesion[textbook].re_early``, ``lesion[textbook].re_early_minus_around``, …), and fat-suppression-dependent
    statistics split by the exam's fat suppression (``fat_to_muscle_t1pre[not fat suppressed]``). NaNs (regions
    too small to measure on a series) are left out; ``fat_suppressed_share`` is one 0/1 value per case."""
    values: Dict[str, List[float]] = {}

    def add(key: str, value) -> None:
        if value is not None and np.isfinite(value):
            values.setdefault(key, []).append(float(value))

    for m in measurements:
        tissues = m["tissues"]
        for name in ("gland", "peripheral_zone", "transition_zone"):
            add(f"adc.{name}", tissues[name]["adc"])
        add("adc.centre_box", m["adc_centre_box"])
        for name in TISSUES:
            add(f"re_early.{name}", tissues[name]["re_early"])
            add(f"re_late.{name}", tissues[name]["re_late"])
        for name in ("gland", "peripheral_zone", "transition_zone"):
            add(f"re_late_minus_early.{name}", tissues[name]["re_late"] - tissues[name]["re_early"])
        add("re_early.vessel_minus_strongest_other",
            tissues["vessel"]["re_early"] - max(tissues[n]["re_early"] for n in TISSUES if n != "vessel"))
        add("re_late.fat_minus_gland", tissues["fat"]["re_late"] - tissues["gland"]["re_late"])
        fs = "fat suppressed" if m["fat_suppressed"] else "not fat suppressed"
        add("fat_suppressed_share", 1.0 if m["fat_suppressed"] else 0.0)
        add(f"fat_t1pre_rank[{fs}]", m["fat_t1pre_rank"])
        add(f"fat_to_muscle_t1pre[{fs}]", m["fat_to_muscle_t1pre"])
        add(f"body_enhancement_t1pre_r[{fs}]", m["body_enhancement_t1pre_r"])
        for lesion in m["lesions"]:
            prefix = f"lesion[{lesion['kind']}]"
            for key in ("adc", "adc_around", "t2w_ratio", "pd_ratio", "re_early", "re_late"):
                add(f"{prefix}.{key}", lesion[key])
            add(f"{prefix}.adc_minus_around", lesion["adc"] - lesion["adc_around"])
            add(f"{prefix}.re_early_minus_around", lesion["re_early"] - lesion["re_early_around"])
            add(f"{prefix}.re_late_minus_around", lesion["re_late"] - lesion["re_late_around"])
    return values


def summarize(values: Sequence[float]) -> Dict[str, float]:
    """``n``, ``median``, ``p10``, ``p90`` and ``min``/``max`` of ``values`` (NaN for an empty list)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "median": np.nan, "p10": np.nan, "p90": np.nan, "min": np.nan, "max": np.nan}
    return {"n": int(v.size), "median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
            "p90": float(np.percentile(v, 90)), "min": float(v.min()), "max": float(v.max())}


# --- loading -----------------------------------------------------------------------------------------------------

def _load(case: CaseLike) -> Tuple[Dict[str, object], Dict[str, sitk.Image], sitk.Image]:
    """(params, images by key, label map) of an in-memory case or a case folder."""
    if hasattr(case, "images") and hasattr(case, "labels"):
        return case.params, dict(case.images), case.labels
    from DCEDiffLib.volume_io import read_volume

    folder = Path(case)
    params = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    files = params.get("files", {})
    images = {key: read_volume(folder / files.get(key, f"{key}.nii.gz"), key) for key in IMAGE_SERIES}
    labels = sitk.ReadImage(str(folder / files.get("labels", "labels.nii.gz")))
    return params, images, labels


def _series_masks(params, images, labels: sitk.Image, series_names) -> Dict[str, Dict[str, np.ndarray]]:
    legend = {name: int(value) for name, value in params["label_legend"].items()}
    label_array = sitk.GetArrayFromImage(labels).astype(np.uint8)
    codes, code_counts, regions = _region_codes(label_array, labels, legend, params.get("lesions", []))
    masks = {}
    for series in series_names:
        reference = images[SERIES[series]]
        motion = params["series"][series].get("motion_relative_to_t2w")
        masks[series] = _core_masks(codes, code_counts, labels, reference, _motion_transform(motion), regions,
                                    native=(series == "t2w"))
    return masks


# --- regions on the T2W (label) grid -----------------------------------------------------------------------------

# Region layers: "base" (the tissue labels, the bladder split into wall and urine) and "lesion" (each lesion and the
# gland around it). Both are coded as small integers and combined into one code per T2W voxel,
# base * lesion_codes + lesion, so that one resampling per series carries both.
Regions = Dict[str, Tuple[str, Tuple[int, ...]]]


def urine_mask(bladder: np.ndarray, spacing_kji: Sequence[float]) -> np.ndarray:
    """The urine of a bladder label: its voxels deeper than :data:`URINE_DEPTH_MM` from its edge (``bladder`` a
    boolean (k, j, i) mask, ``spacing_kji`` in mm); the outer margin holds the enhancing wall."""
    depth = ndimage.distance_transform_edt(bladder, sampling=list(spacing_kji))
    return bladder & (depth > URINE_DEPTH_MM)


def _region_codes(labels: np.ndarray, image: sitk.Image, legend: Dict[str, int],
                  lesions: Sequence[Mapping[str, object]]) -> Tuple[np.ndarray, Dict[str, int], Regions]:
    """(combined code map on the T2W grid, code counts {"base": Nb, "lesion": Nl}, regions).

    Base codes: the label values, urine = max label + 1, "outside the label grid" = max label + 2. Lesion codes:
    0 = none, lesion i = 2i − 1, its zone around it = 2i, outside = 2·(lesions) + 1. Regions: name →
    (layer, codes)."""
    spacing_kji = np.asarray(image.GetSpacing(), dtype=np.float64)[::-1]
    base = labels.astype(np.int16)
    top = max(legend.values())
    urine_code = top + 1
    bladder = labels == legend["bladder"]
    if bladder.any():
        box = _bounding_box(bladder, 1)
        base[box][urine_mask(bladder[box], spacing_kji)] = urine_code
    regions: Regions = {name: ("base", (value,)) for name, value in legend.items() if name != "background"}
    regions["gland"] = ("base", (legend["peripheral_zone"], legend["transition_zone"]))
    regions["urine"] = ("base", (urine_code,))
    regions["bladder"] = ("base", (legend["bladder"], urine_code))

    lesion = np.zeros(labels.shape, dtype=np.int16)
    lesion_voxels = np.argwhere(labels == legend["lesion"])
    ids = [int(l["id"]) for l in lesions]
    if ids and len(lesion_voxels):
        # Each lesion voxel belongs to the nearest recorded lesion centre (lesions are drawn apart, so this
        # splits the single "lesion" label into its lesions).
        points = _index_to_physical(image, lesion_voxels)
        centres = np.array([l["centre_lps"] for l in lesions], dtype=np.float64)
        nearest = np.argmin(np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2), axis=1)
        lesion[tuple(lesion_voxels.T)] = (2 * np.asarray(ids) - 1)[nearest]
        margin = int(np.ceil(RING_MM[1] / spacing_kji.min())) + 1
        for lesion_id, info in zip(ids, lesions):
            own = lesion == 2 * lesion_id - 1
            if not own.any():
                continue
            box = _bounding_box(own, margin)
            distance = ndimage.distance_transform_edt(~own[box], sampling=spacing_kji)
            zone = labels[box] == legend[str(info["zone"])]
            ring = (distance > RING_MM[0]) & (distance <= RING_MM[1]) & zone & (lesion[box] == 0)
            lesion[box][ring] = 2 * lesion_id
    for lesion_id in ids:
        regions[f"lesion_{lesion_id}"] = ("lesion", (2 * lesion_id - 1,))
        regions[f"around_{lesion_id}"] = ("lesion", (2 * lesion_id,))
    counts = {"base": top + 3, "lesion": 2 * max(ids, default=0) + 2}
    return base * np.int16(counts["lesion"]) + lesion, counts, regions


def _bounding_box(mask: np.ndarray, margin: int) -> Tuple[slice, ...]:
    where = np.argwhere(mask)
    lo = np.maximum(where.min(axis=0) - margin, 0)
    hi = np.minimum(where.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _index_to_physical(image: sitk.Image, kji: np.ndarray) -> np.ndarray:
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    ijk = kji[:, ::-1].astype(np.float64)
    return np.asarray(image.GetOrigin()) + (ijk * spacing) @ direction.T


# --- regions on a series grid ------------------------------------------------------------------------------------

def _motion_transform(motion: Optional[Mapping[str, object]]) -> sitk.Transform:
    """The transform taking a point of the series into the T2W frame.

    case.json: a T2W point q is found at p = R (q − c) + c + t in the series, so q = Rᵀ (p − c − t) + c."""
    if not motion:
        return sitk.Transform(3, sitk.sitkIdentity)
    rot = np.asarray(motion["rotation_matrix"], dtype=np.float64)
    trans = np.asarray(motion["translation_mm"], dtype=np.float64)
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(rot.T.ravel()))
    transform.SetCenter(tuple(float(v) for v in motion["centre_lps"]))
    transform.SetTranslation(tuple(float(v) for v in -(rot.T @ trans)))
    return transform


def _core_masks(codes: np.ndarray, counts: Mapping[str, int], labels: sitk.Image, reference: sitk.Image,
                transform: sitk.Transform, regions: Regions, native: bool) -> Dict[str, np.ndarray]:
    """Region name → boolean core mask on ``reference``'s grid (see the module docstring).

    ``native``: the reference is the label grid itself (T2W), where the label map is used as it is (as a mask
    drawn on the real T2W is)."""
    if native:
        sub = codes.reshape(1, -1)
    else:
        outside = (counts["base"] - 1) * counts["lesion"] + counts["lesion"] - 1
        sub = _subsampled(codes, labels, reference, transform, outside)
    points = sub.shape[0]  # sub-points (rows) × voxels (columns): sums over rows are contiguous
    layers = {"base": sub // np.int16(counts["lesion"]), "lesion": sub % np.int16(counts["lesion"])}
    # Lesions and their rings cover a small part of the grid: count their codes only where they occur.
    lesion_voxels = np.flatnonzero(((layers["lesion"] > 0) & (layers["lesion"] < counts["lesion"] - 1)).any(axis=0))
    layers["lesion"] = layers["lesion"][:, lesion_voxels]
    shape = reference.GetSize()[::-1]
    masks = {}
    for name, (layer, values) in regions.items():
        hits = np.zeros(layers[layer].shape[1], dtype=np.int16)
        for value in values:
            hits += (layers[layer] == value).sum(axis=0, dtype=np.int16)
        core = hits >= CORE_FRACTION * points
        if layer == "lesion":
            full = np.zeros(sub.shape[1], dtype=bool)
            full[lesion_voxels] = core
            core = full
        masks[name] = core.reshape(shape)
    return masks


def _subsampled(codes: np.ndarray, labels: sitk.Image, reference: sitk.Image, transform: sitk.Transform,
                outside: int) -> np.ndarray:
    """``codes`` (on the label grid) looked up at SUBSAMPLES³ sub-points of every voxel of ``reference``:
    array (SUBSAMPLES³, voxels in k, j, i order); sub-points outside the label grid get ``outside``."""
    n = SUBSAMPLES
    size = np.asarray(reference.GetSize())
    spacing = np.asarray(reference.GetSpacing(), dtype=np.float64)
    direction = np.asarray(reference.GetDirection(), dtype=np.float64).reshape(3, 3)
    # The first sub-point of voxel 0 sits (n − 1) / (2n) of a voxel before its centre, along each axis.
    origin = np.asarray(reference.GetOrigin()) - direction @ (spacing * (n - 1) / (2.0 * n))
    source = sitk.GetImageFromArray(codes)
    source.CopyInformation(labels)
    fine = sitk.Resample(source, [int(v) for v in size * n], transform, sitk.sitkNearestNeighbor,
                         tuple(origin), tuple(spacing / n), tuple(direction.ravel()), float(outside),
                         sitk.sitkInt16)
    array = sitk.GetArrayViewFromImage(fine)
    k, j, i = size[::-1]
    return array.reshape(k, n, j, n, i, n).transpose(1, 3, 5, 0, 2, 4).reshape(n ** 3, k * j * i)


# --- single numbers ----------------------------------------------------------------------------------------------

def _ratio(a: float, b: float) -> float:
    return float(a / b) if np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")


def _centre_box_median(adc: np.ndarray) -> float:
    centre = [s // 2 for s in adc.shape]
    box = tuple(slice(max(c - h // 2, 0), c + h - h // 2) for c, h in zip(centre, ADC_CENTRE_BOX))
    return float(np.median(adc[box]))


def body_enhancement_t1pre_r(t1pre: np.ndarray, image: np.ndarray) -> float:
    """Pearson r of the enhancement (``image`` − T1-pre) with the T1-pre over the body (T1-pre above its 30th
    percentile); NaN where either is constant. Real non-fat-suppressed exams: negative (fat bright, not enhancing)."""
    t1pre = np.asarray(t1pre, dtype=np.float64)
    image = np.asarray(image, dtype=np.float64)
    body = t1pre > np.percentile(t1pre, 30)
    x, y = t1pre[body], image[body] - t1pre[body]
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
