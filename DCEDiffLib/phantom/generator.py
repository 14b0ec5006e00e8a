"""One phantom case (all series on their own grids, labels, parameters), writing it, and whole datasets.

A case is fully determined by (seed, domain): the seed fixes the patient (anatomy, tissues, lesions), the domain
the acquisition. The same seed in domains A and B is the same patient scanned at two sites. Same seed and domain
give identical arrays and identical files.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.atomic import CASE_RECORD, atomic_directory, write_text_atomic
from DCEDiffLib.data_source import PHANTOM_MARK, mark_phantom
from DCEDiffLib.errors import InputError
from DCEDiffLib.phantom import acquisition, imaging
from DCEDiffLib.phantom.anatomy import LABEL_LEGEND, build_anatomy
from DCEDiffLib.phantom.kinetics import HEMATOCRIT, PARKER_PARAMETERS, R1_RELAXIVITY_3T
from DCEDiffLib.phantom.rasterize import Grid, rasterize
from DCEDiffLib.phantom.tissues import sample_tissues

# Anatomy families: "procedural" (analytic shapes, phantom/anatomy.py; the default, on which issue 12's goals are
# measured; the shipped model is trained on both families), "prostatex" (warped label maps of real exams,
# phantom/template_anatomy.py) and "mixed" (each case draws one of the two from its seed).
ANATOMY_FAMILIES = ("procedural", "prostatex", "mixed")
from DCEDiffLib.progress import check_cancel

GENERATOR_NAME = "DCEDiff phantom"
# 2: gland Ktrans 0.7× of version 1 (real gland enhancement; tissues.py); 3: real-anatomy lesions as dark against
# their zone on T2W as the analytic family's (template_anatomy.lesions_keep_zone_contrast); 4: the lipid protons do not
# enhance (imaging.dce_series: fat RE ≈ 0, as on real exams; inputs and T1-pre bit-identical to version 3)
GENERATOR_VERSION = 4
FORMATS = ("nifti", "dicom", "study")
IMAGE_KEYS = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")
FILE_DESCRIPTIONS = {
    "t2w": "T2-weighted TSE", "pd": "proton density (3D GRE)", "adc": "ADC map (1e-6 mm2/s)",
    "t1pre": "T1 pre-contrast (DCE frame 0)", "dce_early": "DCE early (middle frame)",
    "dce_late": "DCE late (last frame)", "dce_series": "DCE time series (4D)", "labels": "phantom label map",
}


@dataclasses.dataclass
class PhantomCase:
    """One synthetic exam.

    ``images``: modality → ``sitk.Image`` (int16), each on its own grid (t2w, pd, adc, t1pre, dce_early,
    dce_late; t1pre and the DCE frames share the DCE grid); ``dce_series``: the 4D DCE series (4th axis = time,
    spacing = frame interval in s); ``labels``: uint8 label map on the T2W grid (legend in
    ``params['label_legend']``); ``params``: everything that generated the case (written as case.json).
    """

    case_id: str
    images: Dict[str, sitk.Image]
    dce_series: sitk.Image
    labels: sitk.Image
    params: Dict[str, object]
    generation_seconds: float = 0.0  # wall time of generate_case (not part of params: files stay deterministic)


def case_seed(dataset_seed: int, index: int) -> int:
    """The seed of case ``index`` of a dataset generated with ``dataset_seed`` (independent streams)."""
    state = np.random.SeedSequence([int(dataset_seed), int(index)]).generate_state(1, dtype=np.uint32)[0]
    return int(state) & 0x7FFFFFFF


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"phantom seed {seed!r}: expected a non-negative integer")
    return int(seed)


def _image(array: np.ndarray, grid: Grid) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(tuple(np.asarray(grid.direction, dtype=np.float64).ravel()))
    return image


def _image_4d(frames: np.ndarray, grid: Grid, interval_s: float) -> sitk.Image:
    image = sitk.GetImageFromArray(frames, isVector=False)
    image.SetSpacing(tuple(grid.spacing) + (float(interval_s),))
    image.SetOrigin(tuple(grid.origin) + (0.0,))
    direction = np.eye(4)
    direction[:3, :3] = np.asarray(grid.direction)
    image.SetDirection(tuple(direction.ravel()))
    return image


def check_anatomy(anatomy: str, option: str = "anatomy") -> str:
    """``anatomy`` if it names an anatomy family (:data:`ANATOMY_FAMILIES`); InputError naming ``option``
    otherwise."""
    if anatomy not in ANATOMY_FAMILIES:
        raise InputError(f"{option} {anatomy!r}: expected one of {', '.join(ANATOMY_FAMILIES)}")
    return anatomy


def case_anatomy(seed: int, anatomy: str = "procedural") -> Tuple[str, Optional[str]]:
    """(family, template) of the case with ``seed``: "mixed" draws the family, "prostatex" the template, each
    from its own stream of the seed (so the patient's other draws do not depend on them)."""
    from DCEDiffLib.phantom.templates import TEMPLATE_NAMES

    family = check_anatomy(anatomy)
    if family == "mixed":
        family = "prostatex" if np.random.default_rng([seed, 5]).random() < 0.5 else "procedural"
    if family == "procedural":
        return family, None
    return family, TEMPLATE_NAMES[int(np.random.default_rng([seed, 4]).integers(len(TEMPLATE_NAMES)))]


def generate_case(seed: int, domain: str = "A", case_id: str = "case_000", *,
                  lesion_count: Optional[int] = None, anatomy: str = "procedural") -> PhantomCase:
    """Generate one phantom exam.

    ``seed`` fixes the patient, ``domain`` ("A": ProstateX-like, "B": external site with endorectal coil) the
    acquisition; ``lesion_count`` (0–3) forces the number of lesions instead of drawing it; ``anatomy`` the
    anatomy family: "procedural" (analytic shapes, default), "prostatex" (a warped real label map) or "mixed"
    (drawn from the seed). case.json records the family (``anatomy_family``) and template (``anatomy.template``).
    """
    seed = _check_seed(seed)
    proto = acquisition.check_domain(domain)
    if lesion_count is not None and not (0 <= int(lesion_count) <= 3):
        raise InputError(f"lesion_count {lesion_count!r}: expected 0 to 3")
    family, template = case_anatomy(seed, anatomy)
    domain_index = acquisition.DOMAINS.index(domain)
    t_start = time.perf_counter()

    patient_rng = np.random.default_rng([seed, 1])
    tissues = sample_tissues(patient_rng)
    if family == "procedural":
        anatomy = build_anatomy(patient_rng, tissues, endorectal_coil=proto.endorectal_coil,
                                lesion_count=lesion_count)
    else:
        from DCEDiffLib.phantom.template_anatomy import build_template_anatomy

        # The template's anatomy is placed relative to the exam's slices as it was to the real exam's slices (the
        # orientation is the plan's first draw: the same rng stream gives it before the plan is made).
        orientation = acquisition.draw_orientation(np.random.default_rng([seed, 2, domain_index]))
        anatomy = build_template_anatomy(patient_rng, tissues, template, endorectal_coil=proto.endorectal_coil,
                                         lesion_count=lesion_count, slice_orientation=orientation)
    plan = acquisition.plan_exam(np.random.default_rng([seed, 2, domain_index]), domain, anatomy)
    noise_rng = np.random.default_rng([seed, 3, domain_index])
    reference = anatomy.tissues["peripheral_zone"]
    noise: Dict[str, Dict[str, float]] = {}

    t2w = plan.series["t2w"]
    maps, label_array = rasterize(anatomy, t2w.grid, t2w.motion, imaging.T2W_PROPERTIES, labels=True)
    bias = acquisition.receive_bias(plan, t2w, anatomy)
    t2w_array, noise["t2w"] = imaging.t2w_image(maps, t2w, bias, reference, noise_rng)

    pd = plan.series["pd"]
    maps, _ = rasterize(anatomy, pd.grid, pd.motion, imaging.PD_PROPERTIES)
    pd_array, noise["pd"] = imaging.pd_image(maps, pd, acquisition.receive_bias(plan, pd, anatomy),
                                             acquisition.transmit_field(plan, pd, anatomy), reference, noise_rng)

    adc = plan.series["adc"]
    maps, _ = rasterize(anatomy, adc.grid, adc.motion, imaging.ADC_PROPERTIES)
    adc_array, noise["adc"] = imaging.adc_image(maps, adc, plan, acquisition.receive_bias(plan, adc, anatomy),
                                                reference, noise_rng)

    dce = plan.series["dce"]
    maps, _ = rasterize(anatomy, dce.grid, dce.motion, imaging.DCE_PROPERTIES)
    frames, noise["dce"] = imaging.dce_series(maps, dce, plan, acquisition.receive_bias(plan, dce, anatomy),
                                              acquisition.transmit_field(plan, dce, anatomy), reference, noise_rng)
    del maps

    images = {"t2w": _image(t2w_array, t2w.grid), "pd": _image(pd_array, pd.grid),
              "adc": _image(adc_array, adc.grid), "t1pre": _image(frames[0], dce.grid),
              "dce_early": _image(frames[plan.early_frame], dce.grid),
              "dce_late": _image(frames[plan.late_frame], dce.grid)}
    series_4d = _image_4d(frames, dce.grid, float(plan.frame_times_s[1] - plan.frame_times_s[0]))
    labels = _image(label_array, t2w.grid)
    for image in (*images.values(), series_4d, labels):  # in memory too: the OOD check's data-domain rule
        mark_phantom(image)
    params = _parameters(seed, domain, case_id, anatomy, plan, noise)
    params = {**{k: v for k, v in params.items() if k != "anatomy"}, "anatomy_family": family,
              "anatomy": params["anatomy"]}
    return PhantomCase(case_id, images, series_4d, labels, params, time.perf_counter() - t_start)


def _parameters(seed, domain, case_id, anatomy, plan: acquisition.ExamPlan, noise) -> Dict[str, object]:
    tissue_table = {name: t.summary() for name, t in anatomy.tissues.items() if not name.startswith("lesion_")}
    series = {}
    for name in acquisition.SERIES:
        series[name] = acquisition.series_summary(plan, anatomy, name, noise[name]["sigma"], noise[name]["reference"])
    series["t1pre"] = {"same_series_as": "dce", "frame": 0}
    times = [round(float(t), 4) for t in plan.frame_times_s]
    return {
        "generator": GENERATOR_NAME, "generator_version": GENERATOR_VERSION, "synthetic": True,
        "case_id": case_id, "seed": seed, "domain": domain, "domain_description": plan.domain.description,
        "label_legend": dict(LABEL_LEGEND),
        "anatomy": anatomy.summary,
        "tissues": tissue_table,
        "lesions": anatomy.lesions,
        "series": series,
        "exam_orientation": [[round(v, 9) for v in row] for row in plan.orientation],
        "diffusion": {"b_values": list(plan.domain.b_values),
                      "tissue_adc_reference_b_values": list(plan.domain.reference_b_values),
                      "model": "kurtosis S(b) = S0 exp(-bD + (bD)^2 K/6); ADC = log-linear fit, x1e6"},
        "dce": {
            "frame_times_s": times, "frames": len(times), "frame_interval_s": round(times[1] - times[0], 4),
            "early_frame": plan.early_frame, "late_frame": plan.late_frame, "t1pre_frame": 0,
            "early_time_s": times[plan.early_frame], "late_time_s": times[plan.late_frame],
            "aif": "Parker 2006 population AIF (whole blood), zero before arrival",
            "aif_parameters": PARKER_PARAMETERS, "aif_arrival_delay_s": round(plan.arrival_delay_s, 4),
            "aif_scale": round(plan.aif_scale, 4), "hematocrit": HEMATOCRIT,
            "venous_delay_s": round(plan.venous_delay_s, 4), "venous_dispersion_s": round(plan.venous_dispersion_s, 4),
            "relaxivity_per_s_per_mM": R1_RELAXIVITY_3T, "model": "extended Tofts, Ct = vp Cp + Ktrans (Cp * exp(-kep t))",
            "fat_saturation_residual": round(plan.fat_sat_residual, 4),
            "t1_fat_suppressed": plan.fat_suppressed, "b1_mean": round(plan.b1_mean, 4),
        },
        "endorectal_coil": {"present": plan.domain.endorectal_coil, "gain": round(plan.coil_gain, 4),
                            "length_constant_mm": round(plan.coil_length_mm, 4)},
        "noise": "Rician (magnitude of complex Gaussian); sigma per series in 'series'",
    }


def _json_default(value):
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def case_json_text(params: Dict[str, object]) -> str:
    """case.json content (deterministic)."""
    return json.dumps(params, indent=1, default=_json_default) + "\n"


def write_case(case: PhantomCase, out_dir, fmt: str = "nifti", *, overwrite: bool = False,
               include_series: bool = True, progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Write ``case`` into the folder ``out_dir`` (e.g. ``DIR/case_000``), atomically: the folder appears
    complete or not at all. ``fmt`` "nifti" writes ``<modality>.nii.gz``; "dicom" one DICOM series folder per
    modality (``dce_series/`` holds one sub-folder per frame); the label map is NIfTI in both. ``include_series``
    False leaves out the 4D DCE series; "study" writes the case as one whole DICOM study (``study/``: every series a
    scanner writes, distractors included, TCIA ProstateX layout; what ``dcediff synthesize --study`` and
    ``dcediff dataset`` read) beside the label map and case.json. Refuses an existing non-empty folder unless
    ``overwrite``."""
    if fmt not in FORMATS:
        raise InputError(f"phantom format {fmt!r}: expected one of {', '.join(FORMATS)}")
    from DCEDiffLib.volume_io import write_volume

    out_dir = Path(out_dir)
    keys = list(IMAGE_KEYS) + (["dce_series"] if include_series else [])
    total = len(keys) + 2
    params = dict(case.params)
    files: Dict[str, str] = {}
    if fmt == "study":
        keys = ["study"]
        total = 3
    with atomic_directory(out_dir, overwrite=overwrite, records=(CASE_RECORD,)) as tmp:
        for step, key in enumerate(keys, start=1):
            if key == "study":  # at the scanner's resolution: the default in-plane shrink is for fast tests
                from DCEDiffLib.phantom.study_export import write_phantom_study

                picks = write_phantom_study(case, tmp / "study", shrink=1)
                files["study"] = "study/"
                params["study_series"] = {k: v for k, v in picks.items() if k != "frame_times_s"}
                if progress:
                    progress(step, total)
                continue
            image = case.dce_series if key == "dce_series" else case.images[key]
            if fmt == "nifti":
                name = f"{key}.nii.gz"
                write_volume(image, tmp / name, {"description": f"{PHANTOM_MARK}: {FILE_DESCRIPTIONS[key]}"})
            else:
                from DCEDiffLib.phantom.dicom_export import write_dicom_modality

                name = f"{key}/"
                write_dicom_modality(image, tmp / key, key, case)
            files[key] = name
            if progress:
                progress(step, total)
        write_volume(case.labels, tmp / "labels.nii.gz", {"description": f"{PHANTOM_MARK}: labels"})
        files["labels"] = "labels.nii.gz"
        if progress:
            progress(total - 1, total)
        params["format"] = fmt
        params["files"] = files
        if not include_series:
            params["dce_series_omitted"] = True
        (tmp / "case.json").write_text(case_json_text(params), encoding="utf-8")
        _usual_permissions(tmp)
        if progress:
            progress(total, total)
    return out_dir


def _usual_permissions(folder: Path) -> None:
    """Temporary files and folders are private (0600/0700); give the finished case the user's usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _stale_phantom_cases(out_dir: Path, keep: List[str]) -> List[Path]:
    stale = []
    for path in out_dir.glob("case_*"):
        if path.is_dir() and re.fullmatch(r"case_\d+", path.name) and path.name not in keep:
            meta = path / "case.json"
            try:
                if json.loads(meta.read_text(encoding="utf-8")).get("generator") == GENERATOR_NAME:
                    stale.append(path)
            except (OSError, ValueError):
                continue
    return stale


def _case_names(first_index: int, cases: int) -> List[str]:
    return [f"case_{first_index + i:03d}" for i in range(cases)]


def check_dataset_request(out_dir, cases: int, domain: str, seed: int, fmt: str, overwrite: bool,
                          anatomy: str = "procedural", first_index: int = 0) -> None:
    """Raise InputError (naming the option) for a request :func:`generate_dataset` would refuse (the output folder:
    :func:`~DCEDiffLib.phantom.output_folder.check_phantom_output_folder`)."""
    check_anatomy(anatomy, "--anatomy")
    if isinstance(cases, bool) or not isinstance(cases, (int, np.integer)) or cases < 1:
        raise InputError(f"--cases {cases!r}: expected a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"--seed {seed!r}: expected a non-negative integer")
    if domain not in acquisition.DOMAINS:
        raise InputError(f"--domain {domain!r}: expected one of {', '.join(acquisition.DOMAINS)}")
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output folder {out_dir} is a file; expected a folder")
    from DCEDiffLib.phantom.output_folder import check_phantom_output_folder

    check_phantom_output_folder(out_dir, _case_names(first_index, cases), overwrite, GENERATOR_NAME)
    from DCEDiffLib.atomic import check_writable_location

    check_writable_location(out_dir, f"output folder {out_dir}")


def generate_dataset(out_dir, cases: int, domain: str = "A", seed: int = 0, fmt: str = "nifti",
                     progress: Optional[Callable[[int, int], None]] = None, *, overwrite: bool = False,
                     include_series: bool = True, should_cancel: Optional[Callable[[], bool]] = None,
                     first_index: int = 0, anatomy: str = "procedural") -> List[Path]:
    """Generate ``cases`` cases into ``out_dir/case_000``, ``case_001``, … (each written atomically) and
    ``out_dir/dataset.json``. Case i uses :func:`case_seed` (seed, i). An existing non-empty ``out_dir`` is refused
    unless ``overwrite`` (then its phantom cases are replaced and stale ones removed). ``progress(done, total)``
    is called after each case; ``should_cancel`` is checked before each case (cases already written stay).
    ``anatomy``: the anatomy family of every case ("procedural", "prostatex") or "mixed" (per case, by its seed)."""
    check_dataset_request(out_dir, cases, domain, seed, fmt, overwrite, anatomy, first_index)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _case_names(first_index, cases)
    written: List[Path] = []
    entries = []
    pending = None  # the previous case's write

    def case_written() -> None:
        written.append(pending.result())  # a failed write is raised here, before the next case is written
        if progress:
            progress(len(written), cases)

    # Each case is written on a second thread while the next one is generated: the writer compresses without the
    # GIL, the generator is numpy on one core (docs/performance.md, "Phantom cases written while the next one is
    # generated"). At most one case waits, so two are in memory.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcediff-phantom-write") as writer:
        for i, name in enumerate(names):
            check_cancel(should_cancel)
            s = case_seed(seed, first_index + i)
            # A procedural dataset calls generate_case exactly as before the anatomy families existed.
            case = generate_case(s, domain, name, **({} if anatomy == "procedural" else {"anatomy": anatomy}))
            case.params["dataset"] = {"seed": seed, "index": first_index + i}
            if pending is not None:
                case_written()
            pending = writer.submit(write_case, case, out_dir / name, fmt, overwrite=overwrite,
                                    include_series=include_series)
            entry = {"case_id": name, "seed": s, "anatomy_family": case.params.get("anatomy_family", "procedural")}
            template = case.params.get("anatomy", {}).get("template")
            if template:
                entry["anatomy_template"] = template
            entries.append({**entry,
                            "lesions": [{"kind": l["kind"], "zone": l["zone"], "diameter_mm": l["diameter_mm"]}
                                        for l in case.params["lesions"]]})
        case_written()
    for path in _stale_phantom_cases(out_dir, names):
        shutil.rmtree(path)
    summary = {"generator": GENERATOR_NAME, "generator_version": GENERATOR_VERSION, "synthetic": True,
               "domain": domain, "seed": seed, "format": fmt, "dce_series": include_series, "anatomy": anatomy,
               "cases": entries}
    write_text_atomic(out_dir / "dataset.json", json.dumps(summary, indent=1) + "\n")
    umask = os.umask(0)
    os.umask(umask)
    (out_dir / "dataset.json").chmod(0o666 & ~umask)
    return written
