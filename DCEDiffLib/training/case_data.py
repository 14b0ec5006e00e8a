"""One case as model-ready arrays: normalised conditions and targets on the working grid, plus labels.

A data folder holds one sub-folder per patient/case, in any of the forms users have:
- the output of ``dcediff preprocess`` (has ``preprocess.json``): read as is;
- a raw case, e.g. from ``dcediff phantom`` (``t2w.nii.gz`` ... or one DICOM folder per modality): preprocessed
  here (registration included, exactly as at inference) and cached as ``.npz`` so it is done once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import ACQUIRED_BASELINE, INPUT_MODALITIES, TARGET_MODALITIES
from DCEDiffLib.normalization import NormParams, normalize
from DCEDiffLib.target_scale import target_norm_params

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
CACHE_VERSION = 11  # 2: the heavy-tail rule of intensity_tail.py (a case it fires on is normalised differently)
# 3: the DCE frames registered to the T1-pre (registration.register_through), not each to the T2W
# 4: the ADC and the T1-pre registered in an 80 mm sphere (registration.REGION_RADIUS_BY_SERIES_MM)
# 5: the T1-pre and the DCE frames stop at a 0.01 mm step (registration.MIN_STEP_BY_SERIES_MM)
# 6: the T1-pre registered without the translation-only stage (registration.RIGID_FROM_THE_START)
# 7: the prostate window's edge slices filled by one rule (prostate_localization._resample_normalized): crop centres
#    of some T2Ws moved by up to 0.4 mm
# 8: the PD registered in a 60 mm sphere (registration.REGION_RADIUS_BY_SERIES_MM)
# 9: the ADC's metric on the exact gradient of a seeded random sample (registration.SAMPLED_EXACT_GRADIENT_SERIES)
# 10: the T1-pre's metric likewise (every T1-pre and, through it, every DCE frame moves)
# 11: the PD's metric likewise


@dataclasses.dataclass
class CaseArrays:
    """Model-ready arrays of one case on the working grid (k, j, i).

    ``conditions``: (4, K, H, W) float32 in INPUT_MODALITIES order, normalised (not clipped, so exact to invert);
    ``targets``: (2, K, H, W) float32 on the T1-pre-relative scale (see ``target_scale``), or None if the case has
    no acquired DCE; ``labels``: (K, H, W) int16 or None; ``legend``: label name → value; ``norm``: modality → params
    (targets included); ``grid``: the working grid as a dict.
    """

    name: str
    conditions: np.ndarray
    targets: Optional[np.ndarray]
    labels: Optional[np.ndarray]
    legend: Optional[Dict[str, int]]
    norm: Dict[str, NormParams]
    grid: dict
    # modality → why its range was set from the bulk (preprocess's intensity_notes); empty for phantom-like cases
    intensity_notes: Dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def num_slices(self) -> int:
        return int(self.conditions.shape[1])

    def raw(self, modality: str) -> np.ndarray:
        """A modality back on its original intensity scale (exact inverse of the normalisation)."""
        from DCEDiffLib.normalization import denormalize

        if modality in INPUT_MODALITIES:
            array = self.conditions[INPUT_MODALITIES.index(modality)]
        else:
            if self.targets is None:
                raise InputError(f"case {self.name}: has no acquired {modality}")
            array = self.targets[TARGET_MODALITIES.index(modality)]
        return denormalize(array, self.norm[modality]).astype(np.float32)


def find_case_inputs(case_dir: Path) -> Dict[str, Path]:
    """Paths of the modalities present in a raw case folder (file ``<mod>.<ext>`` or DICOM folder ``<mod>/``)."""
    found = {}
    for modality in INPUT_MODALITIES + TARGET_MODALITIES + (ACQUIRED_BASELINE, "labels", "prostate_mask"):
        for suffix in VOLUME_SUFFIXES:
            candidate = case_dir / f"{modality}{suffix}"
            if candidate.is_file():
                found[modality] = candidate
                break
        else:
            if (case_dir / modality).is_dir():
                found[modality] = case_dir / modality
    return found


def list_case_dirs(data_dir: Path) -> List[Path]:
    """Case folders of a data folder, sorted by name; a folder is a case if it has a T2W or a preprocess.json."""
    data_dir = Path(data_dir)
    if data_dir.is_file():
        raise InputError(f"data folder {data_dir} is a file; expected a folder of case folders")
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} does not exist; expected a folder of case folders")
    cases = [p for p in sorted(data_dir.iterdir())
             if p.is_dir() and ((p / "preprocess.json").is_file() or "t2w" in find_case_inputs(p))]
    if not cases:
        raise InputError(f"data folder {data_dir} contains no cases; expected sub-folders with t2w/pd/adc/t1pre "
                         "volumes (dcediff phantom) or preprocess.json (dcediff preprocess)")
    return cases


def legend_from_case_json(case_dir: Path) -> Optional[Dict[str, int]]:
    """The label legend (name → value) of a phantom case folder's case.json, or None. A case.json that is not a
    JSON object, or whose legend values are not whole numbers, is an :class:`InputError` naming the file."""
    path = case_dir / "case.json"
    if not path.is_file():
        return None
    try:  # a broken case.json was a JSONDecodeError traceback in train, evaluate and synthesize
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"a JSON {type(meta).__name__}")
        for key in ("label_legend", "labels_legend", "legend"):
            if isinstance(meta.get(key), dict):
                return {str(k): _label_value(v) for k, v in meta[key].items()}
    except ValueError as exc:
        raise InputError(f"{path} cannot be read ({exc}); expected the JSON object dcediff phantom or dcediff "
                         "dataset writes (fix or remove it)") from None
    return None


def _label_value(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValueError(f"label value {value!r} is not a whole number")  # int(2.7) was 2; int("x") a traceback
    return int(value)


def _fingerprint(case_dir: Path) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for path in sorted(case_dir.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(case_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def arrays_from_preprocessed(name: str, case, legend: Optional[Dict[str, int]] = None) -> CaseArrays:
    """Build :class:`CaseArrays` from a ``PreprocessedCase`` (see ``DCEDiffLib.preprocess``). A case preprocessed
    without PD (``dcediff preprocess`` without ``--pd``) is refused by name: training and evaluation read every
    input of every case (``dcediff evaluate --missing pd`` measures a missing PD on complete cases)."""
    import SimpleITK as sitk

    if case.missing_inputs:
        missing = ", ".join(case.missing_inputs)
        raise InputError(f"case {name}: preprocessed without {missing} (preprocess.json missing_inputs "
                         f"{case.missing_inputs}); training and evaluation need every input of every case: run "
                         f"'dcediff preprocess' with --{' --'.join(case.missing_inputs)} (dcediff evaluate "
                         "--missing pd measures a missing PD on complete cases)")
    norm = {m: case.norm[m] for m in INPUT_MODALITIES}
    conditions = np.stack([case.normalized(m) for m in INPUT_MODALITIES]).astype(np.float32)
    targets = None
    if all(m in case.images for m in TARGET_MODALITIES):
        tnorm = target_norm_params(case.norm["t1pre"])
        frames = {m: sitk.GetArrayFromImage(case.images[m]) for m in TARGET_MODALITIES}
        if ACQUIRED_BASELINE in case.images:  # a DCE of another series than the T1-pre: onto the T1-pre's scale
            from DCEDiffLib.acquired_scale import to_t1pre_scale

            frames, _ = to_t1pre_scale(frames, sitk.GetArrayFromImage(case.images[ACQUIRED_BASELINE]),
                                       sitk.GetArrayFromImage(case.images["t1pre"]))
        targets = np.stack([normalize(frames[m], tnorm) for m in TARGET_MODALITIES]).astype(np.float32)
        norm.update({m: tnorm for m in TARGET_MODALITIES})
    labels = None
    if "labels" in case.images:
        labels = sitk.GetArrayFromImage(case.images["labels"]).astype(np.int16)
    return CaseArrays(name, conditions, targets, labels, legend, norm, case.grid.to_dict(),
                      dict(case.intensity_notes))


@contextlib.contextmanager
def naming_the_case(case_dir: Path):
    """Re-raise an :class:`InputError` that does not name ``case_dir`` with the case folder in front, so that of a
    hundred cases the user learns which one; an error that names it already is left as it is (named once)."""
    try:
        yield
    except InputError as error:
        if str(case_dir) in str(error):
            raise
        raise InputError(f"case folder {case_dir}: {error}") from error


def load_case(case_dir: Path, cache_dir: Optional[Path] = None, register: bool = True) -> CaseArrays:
    """Load one case folder as :class:`CaseArrays`, preprocessing (and caching) raw cases."""
    from DCEDiffLib.preprocess import load_preprocessed, preprocess_case

    case_dir = Path(case_dir)
    legend = legend_from_case_json(case_dir)
    if (case_dir / "preprocess.json").is_file():
        return arrays_from_preprocessed(case_dir.name, load_preprocessed(case_dir), legend)
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / f"{case_dir.name}-{_fingerprint(case_dir)}.npz"
        if cache_path.is_file():
            cached = _read_cache(cache_path, case_dir.name)
            if _axial_grid(cached.grid):
                return cached
            # made before the working grid was made axial (2026-12-06) from a T2W stored in another axis order:
            # its arrays are not what the engine computes now (an axial LPS-ordered T2W gives the same, bit for bit)
    inputs = find_case_inputs(case_dir)
    missing = [m for m in INPUT_MODALITIES if m not in inputs]
    if missing:
        raise InputError(f"case folder {case_dir}: missing {', '.join(missing)}; expected files named "
                         f"{', '.join(m + '.nii.gz' for m in INPUT_MODALITIES)} (or DICOM folders)")
    with naming_the_case(case_dir):  # "acquired DCE: give both ..." names no file: of a hundred cases, say which
        processed = preprocess_case(inputs, register=register)
    arrays = arrays_from_preprocessed(case_dir.name, processed, legend)
    if cache_path is not None:
        _write_cache(cache_path, arrays)
    return arrays


def _write_cache(path: Path, arrays: CaseArrays) -> None:
    from DCEDiffLib.atomic import atomic_path

    meta = {"norm": {m: p.to_dict() for m, p in arrays.norm.items()}, "legend": arrays.legend, "grid": arrays.grid,
            "intensity_notes": arrays.intensity_notes}
    payload = {"conditions": arrays.conditions, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    if arrays.targets is not None:
        payload["targets"] = arrays.targets
    if arrays.labels is not None:
        payload["labels"] = arrays.labels
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **payload)


def _axial_grid(grid: dict) -> bool:
    """Whether a cached case's grid has the axes the engine gives it now (working_grid.closest_to_lps)."""
    from DCEDiffLib.working_grid import closest_to_lps

    direction = tuple(float(v) for v in (grid or {}).get("direction", ()))
    return len(direction) == 9 and closest_to_lps(direction) == direction


def _read_cache(path: Path, name: str) -> CaseArrays:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        return CaseArrays(
            name=name,
            conditions=data["conditions"],
            targets=data["targets"] if "targets" in data else None,
            labels=data["labels"] if "labels" in data else None,
            legend=meta["legend"],
            norm={m: NormParams.from_dict(p) for m, p in meta["norm"].items()},
            grid=meta["grid"], intensity_notes=dict(meta.get("intensity_notes") or {}))
