"""``dcediff dataset``: training cases from a folder of DICOM studies, one per patient (e.g. a TCIA ProstateX download).

ROOT holds one folder per patient (``ROOT/ProstateX-0000/<study>/<series>/*.dcm``; any nesting and file names
below). For each patient the study is scanned from headers (:mod:`DCEDiffLib.dicom_study`), the roles are picked
with the rules of ``dcediff synthesize --study`` (:mod:`DCEDiffLib.study_roles`), only the chosen series are read,
and the case is written as a **raw case folder** — ``t2w/pd/adc/t1pre/dce_early/dce_late.nii.gz`` in each series'
own geometry plus ``case.json`` — the same form as a ``dcediff phantom`` case. ``dcediff train`` then registers,
crops and normalises it exactly as it does phantom cases and as synthesis does at inference
(:func:`DCEDiffLib.training.case_data.load_case`, cached with ``--cache``).

- Where the T1-pre is another series than the DCE (a VIBE beside a TWIST), the DCE's last frame before contrast
  arrival is written too (``dce_baseline.nii.gz``): training and evaluation divide the targets by its body median
  over the T1-pre's, so that they are on the T1-pre's intensity scale as the model assumes
  (:mod:`DCEDiffLib.acquired_scale`).
- A patient without an acquired DCE (no DCE series) is written to ``OUT/no_dce/<patient>/`` with
  ``usable_for_training`` false: training (``--data OUT``) does not see it, synthesis can use it.
- A patient without a required role (T2W, PD, ADC, T1-pre), with no readable DICOM, several studies or an
  unreadable chosen series is skipped; the manifest says why.
- Each case folder is written atomically (a temporary folder renamed at the end): an interrupted run leaves whole
  cases or none. A second run skips the finished cases (their ``case.json`` holds their manifest row) and retries
  the skipped patients (header scans are cheap). ``manifest.csv``/``manifest.json`` are rewritten after every
  patient.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from DCEDiffLib.errors import InputError

CASE_JSON = "case.json"
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
NO_DCE_DIR = "no_dce"
MANIFEST_VERSION = 1
CASE_ROLES = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")
# the series picks a manifest row lists: the case's roles and the DCE's pre-contrast frame (never a model input)
MANIFEST_PICKS = CASE_ROLES + ("dce_baseline",)
NO_DCE_POLICY = (f"patients without an acquired DCE series are written to {NO_DCE_DIR}/<patient>/ with "
                 "usable_for_training false: dcediff train --data OUT does not see them (no target); "
                 "synthesis can use them")
CSV_COLUMNS = ("patient", "status", "usable_for_training", "case_dir", "reason", "patient_id", "study_instance_uid",
               "series_found", "files_skipped", "dce_frames", "dce_layout", "dce_arrival_time_s", "seconds",
               "resumed") + tuple(f"{role}_{field}" for role in MANIFEST_PICKS
                                  for field in ("series_number", "series_description", "series_instance_uid",
                                                "frame_index", "rule"))
_PARTIAL = re.compile(r"^\..+\.partial$")


@dataclasses.dataclass
class DatasetResult:
    """What one ``dcediff dataset`` run found: every patient's manifest row, and where the manifest is."""

    out: Path
    records: List[dict]
    seconds: float

    def count(self, status: str, usable: Optional[bool] = None) -> int:
        """Rows with ``status`` (and, when given, ``usable_for_training``)."""
        return sum(1 for r in self.records if r["status"] == status
                   and (usable is None or r["usable_for_training"] == usable))

    @property
    def resumed(self) -> int:
        return sum(1 for r in self.records if r.get("resumed"))


# ----------------------------------------------------------------------------------------------- inputs

def find_patients(root) -> List[Path]:
    """The patient folders of ``root`` (its sub-folders, sorted by name; hidden ones ignored).

    :class:`InputError` when ``root`` is missing, a file, or has no sub-folder (e.g. one study's files directly)."""
    root = Path(root)
    expected = ("expected a folder with one sub-folder per patient, e.g. a TCIA ProstateX download: "
                "ROOT/ProstateX-0000/<study>/<series>/*.dcm")
    if not root.exists():
        raise InputError(f"--root {root}: does not exist; {expected}")
    if not root.is_dir():
        raise InputError(f"--root {root}: is a file; {expected}")
    patients = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not patients:
        files = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
        what = f"holds {len(files)} file(s) but no patient folder" if files else "is empty"
        raise InputError(f"--root {root}: {what}; {expected}")
    return patients


def check_output(out, root) -> None:
    """Refuse an output folder that is a file, lies inside ``root`` (it would become a patient), holds something
    other than a ``dcediff dataset`` output, or was made from another root."""
    from DCEDiffLib.atomic import refuse_output_inside_input

    out, root = Path(out), Path(root)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is an existing file; expected a new folder or one made by dcediff dataset")
    refuse_output_inside_input(out, "--out", root, "--root", "it would be read as a patient")
    if not out.is_dir() or not any(out.iterdir()):
        return
    manifest = out / MANIFEST_JSON
    if not manifest.is_file():
        raise InputError(f"--out {out}: exists, is not empty and has no {MANIFEST_JSON}; expected a new folder or "
                         "one made by dcediff dataset (to resume it)")
    try:
        previous = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"--out {out}: {manifest} is not readable JSON ({exc}); expected the manifest of a "
                         "dcediff dataset run (remove the folder to start again)") from exc
    previous_root = previous.get("root")
    # recorded absolute since 2026-12-06; an older manifest's relative root is read from the current folder
    if previous_root and Path(previous_root).resolve() != root.resolve():
        raise InputError(f"--out {out}: was made from --root {previous_root}, not {root}; expected the same "
                         "--root to resume, or a new --out")


def remove_partial_folders(out) -> List[Path]:
    """Remove the temporary case folders (``.<patient>.*.partial``) a killed run left in ``out`` and
    ``out/no_dce``; returns them. Whole cases are never touched."""
    from DCEDiffLib.atomic import is_stale_partial

    removed = []
    for folder in (Path(out), Path(out) / NO_DCE_DIR):
        if folder.is_dir():
            for child in folder.iterdir():
                # only a killed run's: one named for a process that still runs is being written (a second run)
                if child.is_dir() and _PARTIAL.match(child.name) and (".pid" not in child.name
                                                                       or is_stale_partial(child.name)):
                    shutil.rmtree(child, ignore_errors=True)
                    removed.append(child)
    return removed


def finished_record(out, patient: str) -> Optional[dict]:
    """The manifest row of a case a previous run finished (from its ``case.json``), or None."""
    for case_dir in (Path(out) / patient, Path(out) / NO_DCE_DIR / patient):
        path = case_dir / CASE_JSON
        if path.is_file():
            try:
                record = json.loads(path.read_text(encoding="utf-8")).get("dataset")
            except (OSError, ValueError):
                return None
            if isinstance(record, dict) and record.get("status") == "ok":
                # a case folder missing one of its images (deleted by hand) is made again
                if all((case_dir / f"{role}.nii.gz").is_file() for role in record.get("series") or {}):
                    return dict(record, resumed=True)
                return None
    return None


# ----------------------------------------------------------------------------------------------- one patient

def _base_record(patient: Path) -> dict:
    return {"patient": patient.name, "source": str(patient), "status": "skipped", "usable_for_training": False,
            "case_dir": None, "reason": "", "warnings": [], "pick_warnings": [], "patient_id": None,
            "study_instance_uid": None, "series_found": 0, "files_skipped": 0, "series": {}, "dce": None,
            "seconds": 0.0, "resumed": False}


def process_patient(patient, out) -> dict:
    """Turn one patient folder into a case folder under ``out``; returns its manifest row (never raises for bad
    data: the row says ``skipped`` and why). Safe to run in a worker process."""
    patient, out = Path(patient), Path(out)
    record = _base_record(patient)
    start = time.perf_counter()
    try:
        _convert(patient, out, record)
    except InputError as exc:
        record.update(status="skipped", usable_for_training=False, case_dir=None, reason=str(exc))
    except Exception as exc:  # one broken patient must not stop a 300-patient conversion; the row says what
        record.update(status="skipped", usable_for_training=False, case_dir=None,
                      reason=f"unexpected error ({type(exc).__name__}: {exc})")
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def _convert(patient: Path, out: Path, record: dict) -> None:
    from DCEDiffLib.atomic import atomic_directory
    from DCEDiffLib.dicom_study import scan_folder
    from DCEDiffLib.volume_io import write_volume
    from DCEDiffLib.study_roles import ROLE_NAMES, missing_roles_text, pick_roles, study_listing

    warnings: List[str] = record["warnings"]
    studies = scan_folder(patient, warn=warnings.append, name=f"patient {patient.name}")
    if not studies:
        raise InputError(f"patient folder {patient}: holds no readable DICOM image files; expected one DICOM study"
                         + (f" ({warnings[0]})" if warnings else ""))
    if len(studies) > 1:
        ids = sorted({s.patient_id or "?" for s in studies})
        listed = "; ".join(f"patient {s.patient_id or '?'}, date {s.study_date or '?'}, study {s.study_uid} "
                           f"({len(s.series)} series)" for s in studies[:5])
        hint = (" (--root should be the folder whose sub-folders are the patients)" if len(ids) > 1
                else " (give one study per patient folder)")
        raise InputError(f"patient folder {patient}: holds {len(studies)} DICOM studies: {listed}"
                         f"{'; …' if len(studies) > 5 else ''}; expected one study{hint}")
    study = studies[0]
    record.update(patient_id=study.patient_id, study_instance_uid=study.study_uid, series_found=len(study.series),
                  files_skipped=len(study.skipped))
    picks = pick_roles(study, require=False)
    record["pick_warnings"] = list(picks.warnings)  # picks to check by eye (a T1-pre dated by its name only)
    record["series"] = {role: pick.to_dict() for role, pick in picks.picks.items()}
    if picks.baseline is not None:
        record["series"][picks.baseline.role] = picks.baseline.to_dict()
    for pick in record["series"].values():
        pick.pop("lost", None)   # the manifest keeps the picks; case.json keeps the losers too
    record["dce"] = None if picks.dce is None else {
        "frames": len(picks.dce.frames), "layout": picks.dce.layout,
        "arrival_time_s": None if picks.dce.arrival_time_s is None else round(picks.dce.arrival_time_s, 2)}
    if picks.problem:
        detail = missing_roles_text(picks.missing) if picks.missing else picks.problem
        raise InputError(f"missing {', '.join(ROLE_NAMES[r] for r in picks.missing) or 'inputs'}: {detail}. "
                         f"Found {len(study.series)} series: {study_listing(study)}")
    # the DCE's own pre-contrast frame too, where the T1-pre is another series: training and evaluation put the
    # targets on the T1-pre's scale with it
    images = picks.load_inputs()
    usable = all(role in images for role in ("dce_early", "dce_late"))
    relative = patient.name if usable else f"{NO_DCE_DIR}/{patient.name}"
    record.update(status="ok", usable_for_training=usable, case_dir=relative,
                  reason="" if usable else "no acquired DCE series: not usable for training")
    # overwrite: only a case folder an earlier run left incomplete gets here (finished ones are kept, not rewritten)
    with atomic_directory(out / relative, overwrite=True, records=(CASE_JSON,)) as tmp:
        for role, image in images.items():
            write_volume(image, tmp / f"{role}.nii.gz")  # checked whole: ITK's NIfTI writer ignores a full disk
        case = {"case_id": patient.name, "made_by": "dcediff dataset", "source": str(patient),
                "dataset": dict(record, seconds=None), **picks.to_dict()}
        (tmp / CASE_JSON).write_text(json.dumps(case, indent=2, default=str), encoding="utf-8")
        _usual_modes(tmp)   # the temporary folder was private (0700); the case is not


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _usual_modes(path: Path) -> None:
    """Give a folder and its files (or one file) the modes a plain mkdir/open would have given them."""
    umask = _umask()
    for item in [path, *(path.rglob("*") if path.is_dir() else ())]:
        item.chmod((0o777 if item.is_dir() else 0o666) & ~umask)


# ----------------------------------------------------------------------------------------------- the dataset

def build_dataset(root, out, workers: int = 1,
                  progress: Optional[Callable[[int, int, str], None]] = None) -> DatasetResult:
    """Convert every patient folder of ``root`` into a case under ``out``; write the manifest; return the rows.

    ``workers`` > 1 converts patients in that many processes. ``progress(done, total, patient)`` is called after
    each patient (finished cases of an earlier run count at once). Resumable: finished cases are kept and not
    rewritten. :class:`InputError` for an unusable ``root`` or ``out`` (before anything is written)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers {workers!r}: expected a whole number ≥ 1")
    root, out = Path(root), Path(out)
    patients = find_patients(root)
    check_output(out, root)
    remove_partial_folders(out)  # first: a killed run's temporary case folder is not a patient gone
    refuse_cases_of_patients_gone(out, root, patients)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    # a copy stays a copy only while the patient it copies has its case (else it is converted: its study's only one)
    copies = {name: row for name, row in copies_found_earlier(out).items()
              if row.get("copy_of") and finished_record(out, row["copy_of"]) is not None}
    records: Dict[str, dict] = {}
    todo: List[Path] = []
    for patient in patients:
        record = finished_record(out, patient.name) or copies.get(patient.name)
        if record is not None:
            records[patient.name] = record
        else:
            todo.append(patient)
    total = len(patients)
    # at once: OUT is then known as this command's folder, so a run interrupted before its first case resumes
    write_manifest(out, root, [records[p.name] for p in patients if p.name in records])

    def finish(record: dict) -> None:
        records[record["patient"]] = record
        write_manifest(out, root, [records[p.name] for p in patients if p.name in records])
        if progress is not None:
            progress(len(records), total, record["patient"])

    if progress is not None:
        progress(len(records), total, "")
    if workers == 1 or len(todo) <= 1:
        for patient in todo:
            finish(process_patient(patient, out))
    else:
        _run_parallel(todo, out, min(workers, len(todo)), finish)
    ordered = [records[p.name] for p in patients]
    drop_copies_of_one_study(out, ordered)
    write_manifest(out, root, ordered)
    return DatasetResult(out, ordered, time.perf_counter() - start)


def refuse_cases_of_patients_gone(out, root, patients: Sequence[Path]) -> None:
    """Refuse to resume into ``out`` while it holds case folders of patients no longer in ``root``: training reads
    every case folder, so they would train while the manifest no longer lists them."""
    names = {p.name for p in patients}
    gone = [str(case.relative_to(out)) for folder in (Path(out), Path(out) / NO_DCE_DIR) if folder.is_dir()
            for case in sorted(folder.iterdir())  # hidden names: temporaries and replaced folders, not cases
            if case.is_dir() and not case.name.startswith(".") and (case / CASE_JSON).is_file()
            and case.name not in names]
    if gone:
        raise InputError(f"--out {out}: holds {len(gone)} case folder(s) of patients no longer in --root {root} "
                         f"({', '.join(gone[:5])}{', …' if len(gone) > 5 else ''}); training would still read them. "
                         "Expected the patients of an earlier run to still be there: delete those case folders "
                         "yourself, or write to a new --out")


COPY_REASON = "the same DICOM study"  # how a copy's manifest row begins (drop_copies_of_one_study)


def copies_found_earlier(out) -> Dict[str, dict]:
    """The rows an earlier run of this dataset marked as copies of another patient's study, by patient: taken as
    finished (the copy is not converted again on every resume only to be dropped again)."""
    try:
        rows = json.loads((Path(out) / MANIFEST_JSON).read_text(encoding="utf-8")).get("patients") or []
    except (OSError, ValueError, AttributeError):
        return {}
    return {row["patient"]: dict(row, resumed=True) for row in rows
            if isinstance(row, dict) and str(row.get("reason", "")).startswith(COPY_REASON) and row.get("patient")}


def drop_copies_of_one_study(out, records: Sequence[dict]) -> None:
    """Keep one case of each DICOM study: a second patient folder holding the same StudyInstanceUID (a copy) would
    count one patient twice. The later folder (by name) is removed and its row says which it copies."""
    first: Dict[str, str] = {}
    for record in records:
        uid = record.get("study_instance_uid")
        if record.get("status") != "ok" or not uid:
            continue
        if uid not in first:
            first[uid] = record["patient"]
            continue
        if record.get("case_dir"):
            shutil.rmtree(Path(out) / record["case_dir"], ignore_errors=True)
        record.update(status="skipped", usable_for_training=False, case_dir=None, resumed=False,
                      copy_of=first[uid],
                      reason=f"{COPY_REASON} (StudyInstanceUID {uid}) as patient folder {first[uid]}: "
                             "a copy, kept once")


def _worker_init(threads: int) -> None:
    import SimpleITK as sitk

    from DCEDiffLib.registration_schedule import limit_workers

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, threads))
    limit_workers(threads)  # the workers already share the cores: no more registrations at a time than their share


def _run_parallel(todo: List[Path], out: Path, workers: int, finish: Callable[[dict], None]) -> None:
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)

    def start_pool() -> ProcessPoolExecutor:   # spawn: ITK's thread pool does not survive fork safely
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(threads,))

    executor = start_pool()
    pending: Dict[object, Path] = {}
    queue = list(todo)
    try:
        while queue or pending:
            while queue and len(pending) < 2 * workers:   # bounded: Ctrl-C leaves little queued work
                patient = queue.pop(0)
                pending[executor.submit(process_patient, patient, out)] = patient
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                patient = pending.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool as exc:   # a worker died (e.g. killed, or a crash in a reader)
                    broken = True
                    record = _base_record(patient)
                    record["reason"] = (f"the worker process died while converting this patient or another one "
                                        f"({exc}); re-run to retry (--workers 1 shows which patient)")
                finish(record)
            if broken:
                executor.shutdown(wait=False, cancel_futures=True)
                executor = start_pool()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------------------------- manifest

def write_manifest(out, root, records: Sequence[dict]) -> None:
    """Write ``manifest.json`` (every row in full) and ``manifest.csv`` (one line per patient) atomically."""
    from DCEDiffLib import __version__
    from DCEDiffLib.atomic import write_text_atomic

    out = Path(out)
    counts = {"patients": len(records),
              "ok_usable_for_training": sum(1 for r in records if r["status"] == "ok" and r["usable_for_training"]),
              "ok_no_dce": sum(1 for r in records if r["status"] == "ok" and not r["usable_for_training"]),
              "skipped": sum(1 for r in records if r["status"] != "ok")}
    manifest = {"version": MANIFEST_VERSION, "made_by": f"dcediff dataset {__version__}",
                "root": str(Path(root).resolve()),
                "case_format": "raw case folders (<role>.nii.gz in each series' geometry + case.json); dcediff train "
                               "registers, crops and normalises them as it does phantom cases",
                "no_dce_policy": NO_DCE_POLICY, "counts": counts, "patients": list(records)}
    write_text_atomic(out / MANIFEST_JSON, json.dumps(manifest, indent=2, default=str))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(csv_row(record))
    write_text_atomic(out / MANIFEST_CSV, buffer.getvalue())
    for name in (MANIFEST_JSON, MANIFEST_CSV):
        _usual_modes(out / name)


def csv_row(record: dict) -> Dict[str, object]:
    """One manifest row flattened for the CSV (picks as <role>_series_number, ...)."""
    dce = record.get("dce") or {}
    row = {key: record.get(key) for key in CSV_COLUMNS if key in record}
    row.update(dce_frames=dce.get("frames"), dce_layout=dce.get("layout"),
               dce_arrival_time_s=dce.get("arrival_time_s"))
    for role, pick in (record.get("series") or {}).items():
        for field in ("series_number", "series_description", "series_instance_uid", "frame_index", "rule"):
            row[f"{role}_{field}"] = pick.get(field)
    return row


def read_manifest(out) -> dict:
    """The ``manifest.json`` of a dataset folder."""
    path = Path(out) / MANIFEST_JSON
    if not path.is_file():
        raise InputError(f"dataset folder {out}: has no {MANIFEST_JSON}; expected the output of dcediff dataset")
    return json.loads(path.read_text(encoding="utf-8"))
