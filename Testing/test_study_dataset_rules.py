"""`dcediff dataset` rules at their definitions, without DICOM (found by a mutation audit): hidden folders are not
patients, a dataset folder resumes only from its own root, a running process's temporary case is left alone, and a
study is kept once counting only the patients that made a case."""

import json
import os

import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.study_dataset import (COPY_REASON, MANIFEST_JSON, NO_DCE_DIR, check_output, drop_copies_of_one_study,
                                      find_patients, remove_partial_folders)


def test_hidden_folders_are_not_patients(tmp_path):
    """find_patients: 'its sub-folders, sorted by name; hidden ones ignored' (a killed run's temporaries, .git)."""
    for name in ("P-2", "P-1", ".P-3.partial", ".git"):
        (tmp_path / name).mkdir()
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_patients(tmp_path)] == ["P-1", "P-2"]


def test_a_dataset_folder_resumes_only_from_the_root_it_was_made_from(tmp_path):
    """check_output refuses an output folder 'made from another root': its cases would be mixed with the new root's
    patients. The same root (given by another path to the same folder) resumes."""
    first, second = tmp_path / "download-1", tmp_path / "download-2"
    first.mkdir()
    second.mkdir()
    out = tmp_path / "cases"
    out.mkdir()
    (out / MANIFEST_JSON).write_text(json.dumps({"root": str(first.resolve()), "patients": []}), encoding="utf-8")
    check_output(out, first)
    (tmp_path / "link").symlink_to(first, target_is_directory=True)
    check_output(out, tmp_path / "link")
    with pytest.raises(InputError, match="was made from --root .*download-1, not .*download-2"):
        check_output(out, second)


def test_a_running_processs_temporary_case_is_left_alone(tmp_path):
    """remove_partial_folders removes 'only a killed run's' temporary case folders: one named for a process of this
    machine that is gone, or without a process id (older runs); one named for a process that still runs (this one:
    a second dataset run writing into the folder) is being written and stays."""
    import subprocess
    import sys

    from DCEDiffLib.output_lock import machine_tag

    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    here = machine_tag()
    (tmp_path / NO_DCE_DIR).mkdir()
    killed = tmp_path / f".P-1.pid{gone}-{here}.abc.partial"
    running = tmp_path / NO_DCE_DIR / f".P-2.pid{os.getpid()}-{here}.def.partial"
    older = tmp_path / ".P-3.k3j4.partial"
    case = tmp_path / "P-4"
    for folder in (killed, running, older, case):
        folder.mkdir()
    assert sorted(p.name for p in remove_partial_folders(tmp_path)) == sorted([killed.name, older.name])
    assert running.is_dir() and case.is_dir() and not killed.exists() and not older.exists()


def test_a_study_is_kept_once_among_the_patients_that_made_a_case(tmp_path):
    """drop_copies_of_one_study keeps 'one case of each DICOM study'. A skipped patient folder (no case written) with
    the same StudyInstanceUID as a later, converted one is no case to keep: the converted one stays, its folder
    too. Among converted folders the first by name stays and the later one is removed, its row naming the first."""
    for name in ("P-B", "P-C"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "case.json").write_text("{}")
    records = [{"patient": "P-A", "status": "skipped", "study_instance_uid": "1.2.3", "case_dir": None,
                "usable_for_training": False, "reason": "missing ADC"},
               {"patient": "P-B", "status": "ok", "study_instance_uid": "1.2.3", "case_dir": "P-B",
                "usable_for_training": True, "reason": ""},
               {"patient": "P-C", "status": "ok", "study_instance_uid": "1.2.3", "case_dir": "P-C",
                "usable_for_training": True, "reason": ""}]
    drop_copies_of_one_study(tmp_path, records)
    assert [r["status"] for r in records] == ["skipped", "ok", "skipped"]
    assert records[0]["reason"] == "missing ADC" and (tmp_path / "P-B" / "case.json").is_file()
    assert records[2]["reason"].startswith(COPY_REASON) and "as patient folder P-B" in records[2]["reason"]
    assert not (tmp_path / "P-C").exists() and records[2]["case_dir"] is None


def test_a_copy_whose_patient_is_gone_is_converted_not_left_as_a_copy(tmp_path):
    """A patient folder holding the same study as another is kept once: a copy. When the patient it copies is
    removed (and, as the refusal asks, its case), the next run must convert the copy — its study's only folder now —
    instead of taking its old 'copy' row as finished and leaving the study out. Found by the session-54 audit."""
    import shutil

    from shared_phantom_case import generated_case
    from DCEDiffLib.phantom.study_export import write_phantom_study
    from DCEDiffLib.study_dataset import build_dataset

    few = ("localizer", "t2_sag", "t2_cor", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb", "t1_post", "dce")
    source = tmp_path / "source" / "P-D"
    write_phantom_study(generated_case(3), source, omit=few, study_key="d", patient_id="P-D")
    root, out = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    for name in ("P-D", "P-D-copy"):
        shutil.copytree(source, root / name)
    first = {r["patient"]: r for r in build_dataset(root, out).records}
    assert first["P-D"]["status"] == "ok" and first["P-D-copy"]["reason"].startswith(COPY_REASON)
    assert first["P-D-copy"]["copy_of"] == "P-D"
    shutil.rmtree(root / "P-D")
    shutil.rmtree(out / NO_DCE_DIR / "P-D")
    again = {r["patient"]: r for r in build_dataset(root, out).records}
    assert again["P-D-copy"]["status"] == "ok" and not again["P-D-copy"]["resumed"]
    assert (out / NO_DCE_DIR / "P-D-copy" / "case.json").is_file()
