"""A split names cases by folder name, and phantom folders are always case_000, case_001, ...: the patients behind
the names are recorded (DCEDiffLib/training/case_identity.py) and checked when a run resumes or an evaluation
applies a split, and an evaluation that scores a model's own training cases says so."""

import json
from pathlib import Path

import pytest

from DCEDiffLib import evaluation_runner
from DCEDiffLib.errors import InputError
from DCEDiffLib.training.case_identity import case_identity, identities
from DCEDiffLib.training.case_loading import load_split_cases
from DCEDiffLib.training.split import split_cases, write_split


def phantom_folder(root: Path, seeds, domain="A") -> Path:
    """Case folders as dcediff phantom names them, each with the case.json that says which patient it is."""
    for i, seed in enumerate(seeds):
        case = root / f"case_{i:03d}"
        case.mkdir(parents=True)
        (case / "t2w.nii.gz").write_bytes(b"")  # a case folder by its T2W (not read here)
        (case / "case.json").write_text(json.dumps({"case_id": case.name, "seed": seed, "domain": domain,
                                                    "anatomy_family": "procedural"}), encoding="utf-8")
    return root


def recorded_split(data: Path, run: Path) -> Path:
    dirs = {p.name: p for p in sorted(data.iterdir())}
    split = split_cases(list(dirs), (0.6, 0.2, 0.2), 0)
    split.update(data=str(data), identities=identities(dirs, sorted(dirs)))
    run.mkdir(parents=True, exist_ok=True)
    write_split(run / "split.json", split)
    return run / "split.json"


def test_identity_of_phantom_and_dataset_cases(tmp_path):
    data = phantom_folder(tmp_path / "a", [11, 12])
    assert case_identity(data / "case_000") == "phantom seed 11 anatomy procedural"
    study = tmp_path / "P-1"
    study.mkdir()
    (study / "case.json").write_text(json.dumps({"case_id": "P-1", "dataset": {"study_instance_uid": "1.2.3"}}))
    assert case_identity(study) == "study 1.2.3"
    (study / "case.json").write_text("{not json")
    assert case_identity(study) is None and case_identity(tmp_path / "nowhere") is None


def test_a_resumed_run_on_another_data_folder_with_the_same_names_is_refused(tmp_path):
    first = phantom_folder(tmp_path / "first", range(100, 105))
    other = phantom_folder(tmp_path / "other", range(200, 205))
    recorded_split(first, tmp_path / "run")
    with pytest.raises(InputError, match=r"other patients than the split .*case_00\d is phantom seed 2\d\d"):
        load_split_cases(other, tmp_path / "run", {}, ctx=None)


def test_evaluate_checks_the_split_and_says_when_it_scores_training_cases(tmp_path):
    first = phantom_folder(tmp_path / "first", range(100, 105))
    other = phantom_folder(tmp_path / "other", range(200, 205))
    split_path = recorded_split(first, tmp_path / "run")
    chosen = evaluation_runner._case_dirs(first, split_path, "test")
    assert chosen and all(p.parent == first for p in chosen)
    with pytest.raises(InputError, match="other patients than the split"):
        evaluation_runner._case_dirs(other, split_path, "test")
    # no --split: the model's own run folder says which patients trained and validated it
    split = json.loads(split_path.read_text(encoding="utf-8"))
    model = tmp_path / "run" / "model.safetensors"
    scored = evaluation_runner.training_cases_scored(model, sorted(first.iterdir()))
    assert sorted(scored) == sorted(split["train"] + split["validation"])
    assert evaluation_runner.training_cases_scored(model, sorted(other.iterdir())) == []
    assert evaluation_runner.training_cases_scored(tmp_path / "elsewhere" / "m.safetensors",
                                                   sorted(first.iterdir())) == []


def test_a_split_without_test_cases_says_so(tmp_path):
    data = phantom_folder(tmp_path / "two", [1, 2])
    dirs = {p.name: p for p in sorted(data.iterdir())}
    (tmp_path / "run").mkdir()
    write_split(tmp_path / "run" / "split.json", split_cases(list(dirs), (0.8, 0.1, 0.1), 0))
    with pytest.raises(InputError, match=r"no test case \(1 train, 1 validation, 0 test\).*--subset validation"):
        evaluation_runner._case_dirs(data, tmp_path / "run" / "split.json", "test")


def test_the_mean_enhancement_baseline_is_never_fitted_on_a_scored_patient(tmp_path):
    """--baseline-data naming the scored folder, a copy of its patients, or a split whose train cases are its test
    cases would fit the baseline on the patients it is scored on (+0.5 dB on one phantom patient)."""
    scored = phantom_folder(tmp_path / "fresh", range(300, 303))
    training = phantom_folder(tmp_path / "train", range(100, 104))
    dirs = sorted(scored.iterdir())
    evaluation_runner.refuse_baseline_fit_on_scored_cases(sorted(training.iterdir()), dirs)  # other patients
    with pytest.raises(InputError, match=r"fitted on 3 of the scored patients \(case_000 \(= scored case_000\)"):
        evaluation_runner.refuse_baseline_fit_on_scored_cases(dirs, dirs)  # the same folder
    copy = phantom_folder(tmp_path / "copy", [999, 301])  # the same patient under another folder and name
    with pytest.raises(InputError, match=r"case_001 \(= scored case_001\).*--baseline-data"):
        evaluation_runner.refuse_baseline_fit_on_scored_cases(sorted(copy.iterdir()), dirs)
    with pytest.raises(InputError, match="fitted on 1 of the scored patients"):  # a hand-made overlapping split
        split = tmp_path / "split.json"
        split.write_text(json.dumps({"train": ["case_000", "case_001"], "validation": [], "test": ["case_001"]}))
        evaluation_runner.refuse_baseline_fit_on_scored_cases(evaluation_runner._case_dirs(scored, split, "train"),
                                                              evaluation_runner._case_dirs(scored, split, "test"))


def dataset_folder(root: Path, studies) -> Path:
    """Case folders as dcediff dataset writes them: (folder name, PatientID, StudyInstanceUID) each."""
    for name, patient_id, study in studies:
        case = root / name
        case.mkdir(parents=True)
        (case / "t2w.nii.gz").write_bytes(b"")
        (case / "case.json").write_text(json.dumps({"case_id": name, "made_by": "dcediff dataset", "dataset": {
            "patient_id": patient_id, "study_instance_uid": study}}), encoding="utf-8")
    return root


def test_two_studies_of_one_patient_and_a_copy_never_straddle_the_split(tmp_path):
    from DCEDiffLib.training.case_identity import patient_groups

    studies = [(f"PX-{i:04d}", f"PX-{i:04d}", f"1.2.{i}") for i in range(10)]
    studies += [("PX-0003-followup", "PX-0003", "1.2.3.99"), ("PX-0007-copy", "PX-0007", "1.2.7")]
    data = dataset_folder(tmp_path / "data", studies)
    dirs = {p.name: p for p in sorted(data.iterdir())}
    groups = patient_groups(dirs)
    assert groups["PX-0003-followup"] == groups["PX-0003"] == "patient PX-0003"
    for seed in range(20):
        split = split_cases(list(dirs), (0.6, 0.2, 0.2), seed, groups)
        where = {name: key for key in ("train", "validation", "test") for name in split[key]}
        assert sorted(where) == sorted(dirs)
        assert where["PX-0003-followup"] == where["PX-0003"] and where["PX-0007-copy"] == where["PX-0007"]
    # every case its own patient (phantoms): the split of the names alone, as before patients were known
    singles = {name: f"case {name}" for name in dirs}
    assert split_cases(list(dirs), (0.6, 0.2, 0.2), 3, singles) == split_cases(list(dirs), (0.6, 0.2, 0.2), 3)
    # an anonymisation that gave everyone one PatientID says nothing: the studies tell the patients apart
    anonymous = dataset_folder(tmp_path / "anon", [(f"S{i}", "ANON123", f"9.{i}") for i in range(4)])
    assert len(set(patient_groups({p.name: p for p in anonymous.iterdir()}).values())) == 4
    placeholder = dataset_folder(tmp_path / "blank", [("A", "", "8.1"), ("B", "anonymous", "8.2")])
    assert patient_groups({p.name: p for p in placeholder.iterdir()}) == {"A": "study 8.1", "B": "study 8.2"}
    with pytest.raises(InputError, match="at least 2 patients.*3 cases of one patient"):
        split_cases(["a", "b", "c"], (0.8, 0.1, 0.1), 0, {"a": "p", "b": "p", "c": "p"})


def test_evaluate_warns_when_it_scores_another_study_of_a_training_patient(tmp_path):
    data = dataset_folder(tmp_path / "data", [("PX-1", "PX-1", "1.1"), ("PX-2", "PX-2", "1.2"),
                                              ("PX-3", "PX-3", "1.3")])
    later = dataset_folder(tmp_path / "later", [("PX-1-fu", "PX-1", "1.1.9"), ("PX-9", "PX-9", "1.9")])
    dirs = {p.name: p for p in sorted(data.iterdir())}
    from DCEDiffLib.training.case_identity import patient_groups

    split = {"train": ["PX-1", "PX-2"], "validation": ["PX-3"], "test": [], "identities": identities(dirs, dirs),
             "patients": patient_groups(dirs)}
    (tmp_path / "run").mkdir()
    write_split(tmp_path / "run" / "split.json", split)
    scored = evaluation_runner.training_cases_scored(tmp_path / "run" / "model.safetensors", sorted(later.iterdir()))
    assert scored == ["PX-1-fu"]


def test_a_split_case_missing_from_the_data_folder_is_said(tmp_path, capsys):
    data = phantom_folder(tmp_path / "data", range(400, 404))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["case_000", "case_001", "case_009"], "validation": [],
                                 "test": ["case_002", "case_003"]}))
    assert [d.name for d in evaluation_runner._case_dirs(data, split, "test")] == ["case_002", "case_003"]
    assert capsys.readouterr().err == ""
    assert [d.name for d in evaluation_runner._case_dirs(data, split, "train")] == ["case_000", "case_001"]
    err = capsys.readouterr().err
    assert "1 of the split's 3 train cases are not in" in err and "case_009" in err and "baseline on the other 2" in err


def test_a_resumed_run_says_which_new_cases_it_leaves_out(tmp_path):
    data = phantom_folder(tmp_path / "data", range(500, 505))
    recorded_split(data, tmp_path / "run")
    later = data / "case_009"
    later.mkdir()
    (later / "t2w.nii.gz").write_bytes(b"")
    (later / "case.json").write_text(json.dumps({"seed": 777, "anatomy_family": "procedural"}), encoding="utf-8")
    import torch

    from DCEDiffLib.training.distributed import DistContext

    said = []
    with pytest.raises(InputError, match="case folder"):  # the empty stand-in images then fail: the note came first
        load_split_cases(data, tmp_path / "run", {}, DistContext(0, 1, 0, torch.device("cpu")), report=said.append)
    assert said and "1 case(s)" in said[0] and "case_009" in said[0] and "--fresh" in said[0]


def test_a_patient_grouped_split_follows_its_seed():
    """split_cases with patients: the seed must still choose the split (another seed, another split), and the
    returned 'seed' must be the one asked for; a split that ignored it would give every seed the seed-0 split."""
    from DCEDiffLib.training.split import split_cases

    names = [f"PX-{i:04d}" for i in range(12)] + ["PX-0003-followup"]
    patients = {name: f"patient {name[:7]}" for name in names}
    splits = {seed: split_cases(names, (0.6, 0.2, 0.2), seed, patients) for seed in range(8)}
    assert all(split["seed"] == seed for seed, split in splits.items())
    assert len({tuple(split["train"]) for split in splits.values()}) > 1
    for split in splits.values():  # still grouped by patient
        where = {n: key for key in ("train", "validation", "test") for n in split[key]}
        assert where["PX-0003-followup"] == where["PX-0003"]
