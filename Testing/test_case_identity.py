"""A split names cases by folder name, and phantom folders are always case_000, case_001, ...: the patients behind
the names are recorded (DCEDiffLib/training/case_identity.py) and checked when a run resumes or an evaluation
applies a split, and an evaluation that scores a model's own training cases says so."""

import json
from pathlib import Path

import pytest

from DCEDiffLib import evaluation_runner
from DCEDiffLib.errors import InputError
from DCEDiffLib.training.case_identity import case_identity, identities
from DCEDiffLib.training.split import split_cases, write_split
from DCEDiffLib.training.trainer import load_split_cases


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
    cases would fit the baseline on the patients it is scored on (1.75 dB better on one phantom patient)."""
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
