"""Bad input and interruptions end with one clear line and leave nothing half-written (issues 14, 16)."""

import json
import shutil
import types
from pathlib import Path

import pytest
import SimpleITK as sitk

from DCEDiffLib import cli
from DCEDiffLib.cli import main
from DCEDiffLib.cli_argv import join_negative_values
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

needs_case = pytest.mark.skipif(not (SAMPLE_CASE_DIR / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")


def two_cases(tmp_path: Path) -> Path:
    """Two copies of the sample case, told to be two patients (a copy of one patient would be split as one)."""
    data = tmp_path / "data"
    for index, name in enumerate(("case_a", "case_b")):
        shutil.copytree(SAMPLE_CASE_DIR, data / name)
        record = json.loads((data / name / "case.json").read_text(encoding="utf-8"))
        record["seed"] = 900000 + index
        (data / name / "case.json").write_text(json.dumps(record), encoding="utf-8")
    return data


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("config, expected", [
    ({"preset": "nonexistent"}, "unknown key 'preset'"),
    ({"model": {"preset": "nonexistent"}}, "model.preset 'nonexistent'"),
    ({"model": {"preset": "tiny", "width": 3}}, "width"),
    ({"lr": 0}, "lr 0"),
    ({"split": [1.0, 0.0, 0.0]}, "split"),
    ({"iterations": 2.5}, "iterations 2.5"),
    ({"crop_size": "abc"}, "crop_size 'abc'"),  # these four were tracebacks
    ({"crop_size": None}, "crop_size None"),
    ({"without": 5}, "without 5"),
    ({"without": "adc"}, "without 'adc'"),  # was read letter by letter: "cannot drop ['a', 'd', 'c']"
    ({"ema_decay": float("nan")}, "ema_decay nan"),  # trained, and exported a model of NaN weights with exit 0
    ({"lr": float("inf")}, "lr inf"),
    ({"region_weights": {"lesion": float("nan")}}, "region_weights"),
    ({"lesion_ring_px": True}, "lesion_ring_px True"),
])
def test_bad_training_configs_are_refused_up_front_in_one_line(tmp_path, capsys, config, expected):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "data").mkdir()
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--data", str(tmp_path / "data"), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("dcediff train: error: training config") and expected in line, line
    assert not out.exists()


@needs_case
def test_train_refuses_one_case_and_an_old_split_without_training_cases_and_fresh_redoes_it(tmp_path, capsys):
    data = two_cases(tmp_path)
    shutil.rmtree(data / "case_b")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "at least 2" in line and "dcediff dataset --root" in line and not out.exists()
    for inside in (data, data / "case_a"):  # the run folder among the cases, or in one of them
        before = sorted(p.relative_to(data) for p in data.rglob("*"))
        assert main(["train", "--data", str(data), "--out", str(inside / "run")]) == 2
        assert "lies inside --data" in one_error_line(capsys.readouterr().err)
        assert sorted(p.relative_to(data) for p in data.rglob("*")) == before

    data = two_cases(tmp_path / "two")
    out.mkdir()
    old = {"train": [], "validation": ["case_a"], "test": ["case_b"], "seed": 0}  # what 0.8/0.1/0.1 used to give
    (out / "split.json").write_text(json.dumps(old), encoding="utf-8")
    assert main(["train", "--data", str(data), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "split.json has no train case" in line and "--fresh" in line
    assert json.loads((out / "split.json").read_text(encoding="utf-8")) == old  # refused, untouched

    for case in data.iterdir():  # --fresh splits again (the run then stops early on unreadable images)
        (case / "t2w.nii.gz").write_bytes(b"not an image")
    assert main(["train", "--data", str(data), "--out", str(out), "--fresh", "--quiet"]) == 2
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    assert len(split["train"]) == 1 and len(split["validation"]) == 1, split
    assert out.is_dir()  # a folder the user made is never removed


@needs_case
def test_a_train_that_fails_before_its_first_checkpoint_leaves_no_run_folder(tmp_path, capsys):
    data = two_cases(tmp_path)
    for case in data.iterdir():
        (case / "t2w.nii.gz").write_bytes(b"not an image")
    out = tmp_path / "run"
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": {"preset": "tiny"}}), encoding="utf-8")
    code = main(["train", "--config", str(config), "--data", str(data), "--out", str(out), "--fresh", "--quiet"])
    assert code == 2
    assert "t2w" in capsys.readouterr().err.lower()
    assert not out.exists()
    # an existing folder of the user's: only what the run added goes (split.json, config.json, its cache ...)
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    code = main(["train", "--config", str(config), "--data", str(data), "--out", str(out), "--fresh", "--quiet"])
    assert code == 2
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@needs_case
def test_a_case_json_that_is_not_json_is_one_error_line_naming_it(tmp_path, capsys):
    """It was a JSONDecodeError traceback when the case loaded (train, evaluate, synthesize)."""
    data = two_cases(tmp_path)
    for case in data.iterdir():
        (case / "case.json").write_text('{"seed": ', encoding="utf-8")
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    out = tmp_path / "run"
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": {"preset": "tiny"}}), encoding="utf-8")
    assert main(["train", "--config", str(config), "--data", str(data), "--out", str(out), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "case.json cannot be read" in line and str(data) in line and "expected the JSON object" in line, line
    assert not out.exists() and {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before


def test_a_case_json_legend_value_that_is_not_a_whole_number_is_refused_by_name(tmp_path):
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.training.case_data import legend_from_case_json

    for value in (2.7, "x"):  # 2.7 was read as label 2 without a word; "x" was a traceback
        (tmp_path / "case.json").write_text(json.dumps({"label_legend": {"lesion": value}}), encoding="utf-8")
        with pytest.raises(InputError, match=r"case\.json cannot be read \(label value .* is not a whole number"):
            legend_from_case_json(tmp_path)
    (tmp_path / "case.json").write_text(json.dumps({"label_legend": {"lesion": 9.0}}), encoding="utf-8")
    assert legend_from_case_json(tmp_path) == {"lesion": 9}


def test_train_interrupt_says_the_checkpoint_is_kept(tmp_path):
    from DCEDiffLib.commands.train import interrupted_message

    args = types.SimpleNamespace(out=tmp_path / "run")
    assert "nothing to resume" in interrupted_message(args)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"x")
    text = interrupted_message(args)
    assert "checkpoint" in text and "kept" in text and "resume" in text and "no partial output" not in text


def _write_a_stand_in_case(case, folder, *args, **kwargs):
    """Stands in for ``generator.write_case``: a case folder with one file, at once."""
    folder.mkdir(parents=True)
    (folder / "t2w.nii.gz").write_bytes(b"x")
    return folder


@pytest.mark.parametrize("existing", ["new", "empty"])
def test_phantom_interrupted_leaves_the_folder_as_before_so_the_same_command_runs_again(tmp_path, capsys,
                                                                                       monkeypatch, existing):
    from DCEDiffLib.phantom import generator

    calls = []

    def fake_generate(seed, domain, name):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return types.SimpleNamespace(params={"lesions": []})

    monkeypatch.setattr(generator, "generate_case", fake_generate)
    monkeypatch.setattr(generator, "write_case", _write_a_stand_in_case)
    out = tmp_path / "X"
    if existing == "empty":
        out.mkdir()
    assert main(["phantom", "--cases", "3", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "removed" in err and "re-run the same command" in err and "no partial output" not in err, err
    assert (not out.exists()) if existing == "new" else (out.is_dir() and not any(out.iterdir()))
    generator.check_dataset_request(out, 3, "A", 0, "nifti", False)  # the same command is accepted again


def test_a_failed_phantom_write_stops_the_dataset_and_keeps_the_cases_written_before(tmp_path, monkeypatch):
    """Each case is written on a second thread while the next one is generated: a write that fails is raised once
    the next case is generated, before anything more is written; the cases written before stay, progress counts
    written cases only, and no dataset.json claims the unfinished set."""
    from DCEDiffLib.phantom import generator

    generated, progress = [], []

    def fake_generate(seed, domain, name):
        generated.append(name)
        return types.SimpleNamespace(params={"lesions": []})

    def fake_write(case, folder, *args, **kwargs):
        if folder.name == "case_001":
            raise OSError("disk full")
        return _write_a_stand_in_case(case, folder)

    monkeypatch.setattr(generator, "generate_case", fake_generate)
    monkeypatch.setattr(generator, "write_case", fake_write)
    out = tmp_path / "X"
    with pytest.raises(OSError, match="disk full"):
        generator.generate_dataset(out, 4, progress=lambda done, total: progress.append((done, total)))
    assert generated == ["case_000", "case_001", "case_002"]
    assert progress == [(1, 4)]
    assert sorted(p.name for p in out.iterdir()) == ["case_000"]


def synthesize_args(out: Path, **roles) -> list:
    paths = {key: str(SAMPLE_CASE_DIR / f"{key}.nii.gz") for key in ("t2w", "pd", "adc", "t1pre")}
    paths.update(roles)
    args = ["synthesize", "--out", str(out), "--model", "no-model-needed"]
    for key, value in paths.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


@needs_case
def test_one_series_in_two_roles_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(synthesize_args(out, t1pre=SAMPLE_CASE_DIR / "pd.nii.gz")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--pd and --t1pre are the same series" in line, line
    assert not out.exists()


@needs_case
def test_labels_without_acquired_dce_say_what_they_still_do(tmp_path, capsys):
    from DCEDiffLib.cli import build_parser
    from DCEDiffLib.commands.common import collect_inputs

    args = build_parser().parse_args(synthesize_args(tmp_path / "out", labels=SAMPLE_CASE_DIR / "labels.nii.gz"))
    collect_inputs(args)
    err = capsys.readouterr().err
    assert "no region metrics" in err and "--dce-early" in err  # the shipped case has a legend: outlines stay
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy2(SAMPLE_CASE_DIR / "t2w.nii.gz", lone / "t2w.nii.gz")
    args = build_parser().parse_args(synthesize_args(tmp_path / "out", t2w=lone / "t2w.nii.gz",
                                                     labels=SAMPLE_CASE_DIR / "labels.nii.gz"))
    collect_inputs(args)
    assert "--labels is ignored" in capsys.readouterr().err
    args = build_parser().parse_args(synthesize_args(tmp_path / "out", labels=SAMPLE_CASE_DIR / "labels.nii.gz",
                                                     dce_early=SAMPLE_CASE_DIR / "dce_early.nii.gz",
                                                     dce_late=SAMPLE_CASE_DIR / "dce_late.nii.gz"))
    collect_inputs(args)
    assert capsys.readouterr().err == ""
    # with the acquired DCE but no legend beside the T2W: the region metrics stay empty, said on the console too
    args = build_parser().parse_args(synthesize_args(tmp_path / "out", t2w=lone / "t2w.nii.gz",
                                                     labels=SAMPLE_CASE_DIR / "labels.nii.gz",
                                                     dce_early=SAMPLE_CASE_DIR / "dce_early.nii.gz",
                                                     dce_late=SAMPLE_CASE_DIR / "dce_late.nii.gz"))
    collect_inputs(args)
    err = capsys.readouterr().err
    assert "--labels has no legend" in err and "prostate and lesion metrics stay empty" in err


def test_registration_is_reported_in_words_with_one_size_per_correction():
    import SimpleITK as sitk

    from DCEDiffLib.commands.common import registration_notes, registration_words
    from DCEDiffLib.registration import RegistrationResult, identity_result

    reason = "correction implausibly large (44.2 mm, 16.9°; at most 15 mm and 10° expected within one exam); " \
             "scanner alignment kept"
    registration = {
        "pd": RegistrationResult("pd", sitk.Euler3DTransform(), True, -0.5, -0.6, 1.25, 0.5, "applied"),
        "adc": RegistrationResult("adc", sitk.Euler3DTransform(), False, -0.5, -0.6, 35.1, 16.9, reason),
        "t1pre": identity_result("t1pre", "registration skipped (scanner alignment used)"),
    }
    words = registration_words(registration)
    assert words["pd"].startswith("corrected by 1.2 mm") or words["pd"].startswith("corrected by 1.3 mm")
    assert words["adc"] == reason and "35.1" not in words["adc"]
    assert registration_notes(registration) == [f"ADC: registration correction not applied, scanner alignment used: "
                                                f"{reason}"]


def test_demo_lists_only_the_files_it_wrote(tmp_path):
    from DCEDiffLib.commands.demo import written_files

    for name in ("synthetic_early.nii.gz", "synthetic_late.nii.gz", "residual_early.nii.gz", "synthesis.json"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "t2w_grid").mkdir()
    listed = " ".join(written_files(tmp_path))
    assert "synthetic_early/late" in listed and "residual" in listed and "t2w_grid/" in listed
    assert "uncertainty" not in listed and "metrics.json" not in listed and "report.png" not in listed
    assert "expected_error" not in listed
    (tmp_path / "uncertainty_early.nii.gz").write_bytes(b"")
    (tmp_path / "expected_error_late.nii.gz").write_bytes(b"")
    listed = " ".join(written_files(tmp_path))
    assert "uncertainty" in listed and "expected_error_early/late" in listed


@pytest.mark.parametrize("center", ["-12.5,30,4", "-0,1,2", "-.5,-1,-2"])
def test_a_centre_with_a_negative_first_coordinate_is_read_as_a_value(tmp_path, capsys, center):
    """``--center -12.5,30,4`` (any centre on the patient's right in LPS): argparse alone takes the value for an
    option and stops with "expected one argument"; the command must read it and go on to the inputs."""
    missing = str(tmp_path / "missing.nii.gz")
    argv = ["synthesize", "--t2w", missing, "--pd", missing, "--adc", missing, "--t1pre", missing,
            "--center", center, "--out", str(tmp_path / "out")]
    assert cli.main(argv) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "expected one argument" not in err and "missing.nii.gz" in err
    assert join_negative_values(["--center", center, "--seed", "-1"]) == [f"--center={center}", "--seed", "-1"]


REAL_EXAM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "prostatex" / "ProstateX-0000"


@pytest.mark.skipif(not REAL_EXAM.is_dir(), reason="real ProstateX series not found (read-only reference data)")
def test_swapped_series_folders_are_named_in_a_warning_before_any_work(tmp_path, capsys, monkeypatch):
    """An ADC map given as the T2W and the T2W as the ADC: their DICOM headers say so, before registration."""
    import DCEDiffLib.pipeline as pipeline

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # the warnings must come before the slow work

    monkeypatch.setattr(pipeline, "synthesize_case", stop)
    adc, t2w, pd = (str(REAL_EXAM / n) for n in ("7-ep2ddifftraDYNDISTADC", "4-t2tsetra", "9-tfl3d_PD_reftra1.5x1.5t3"))
    main(["synthesize", "--t2w", adc, "--adc", t2w, "--t1pre", pd, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "--t2w" in err and "looks like an ADC map" in err and "not like the T2W" in err
    assert "--adc" in err and "looks like a T2W" in err
    assert "--t1pre" not in err.split("interrupted")[0]  # the PD scan as a T1-pre stand-in is a choice: no warning
    main(["synthesize", "--t2w", t2w, "--adc", adc, "--t1pre", pd, "--out", str(tmp_path / "out")])
    assert "looks like" not in capsys.readouterr().err


@pytest.mark.parametrize("extra, expected", [(["--samples", "0"], "--samples 0: expected 1 or more"),
                                             (["--steps", "0"], "--steps 0: expected 1 or more"),
                                             (["--max-cases", "0"], "--max-cases 0: expected 1 or more"),
                                             (["--subset", "validation"], "only with --split")])
def test_evaluate_refuses_bad_counts_and_a_subset_without_split_at_once(tmp_path, capsys, extra, expected):
    code = main(["evaluate", "--model", "m.safetensors", "--data", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "%|" not in err  # before any progress bar


def test_negative_values_are_joined_for_abbreviations_and_not_after_the_option_end():
    assert join_negative_values(["--cent", "-1,2,3"]) == ["--cent=-1,2,3"]
    assert join_negative_values(["--", "--center", "-1,2,3"]) == ["--", "--center", "-1,2,3"]
    assert join_negative_values(["--c", "-1"]) == ["--c", "-1"]  # too short to be taken for --center


@pytest.mark.parametrize("raised, expected", [
    (MemoryError(), "out of memory"),
    (RuntimeError("could not create a primitive"), "out of memory"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes"), "out of memory"),
    (OSError(28, "No space left on device", "/full/out.png"), "no space left on the disk (/full/out.png)"),
    (OSError(30, "Read-only file system", "/ro/run"), "cannot write there (/ro/run): Read-only file system"),
    (PermissionError(13, "Permission denied", "/data/model.safetensors"),
     "permission denied (/data/model.safetensors): Permission denied"),
])
def test_a_machine_failure_is_one_error_line_not_a_traceback(monkeypatch, capsys, raised, expected):
    """Out of memory, a full disk, a read-only folder: an error line and exit code 2. Anything else stays a
    traceback (a bug)."""
    from DCEDiffLib.commands import phantom

    def fail(args):
        raise raised

    monkeypatch.setattr(phantom, "run", fail)
    assert main(["phantom", "--out", "x"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("dcediff phantom: error: ") and expected in line
    monkeypatch.setattr(phantom, "run", lambda args: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["phantom", "--out", "x"])


def test_a_phantom_run_that_fails_midway_leaves_no_folder(monkeypatch, tmp_path, capsys):
    """A full disk after the first case left the folder behind, and the same command was then refused."""
    import DCEDiffLib.phantom as phantom_package

    out = tmp_path / "ph"

    def first_case_then_full_disk(out_dir, *args, **kwargs):
        (Path(out_dir) / "case_000").mkdir(parents=True)
        raise OSError(28, "No space left on device", str(Path(out_dir) / "case_001"))

    monkeypatch.setattr(phantom_package, "generate_dataset", first_case_then_full_disk)
    assert main(["phantom", "--cases", "2", "--out", str(out), "--progress-lines"]) == 2
    assert "no space left on the disk" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


@needs_case
@pytest.mark.parametrize("mistake, expected", [
    ("split_folder", "is a folder; expected a split.json file written by dcediff train (this run folder's split is"),
    ("split_missing", "does not exist; expected a split.json file"),
    ("split_not_a_split", "expected a JSON object with train/validation/test lists"),
    ("data_file", "is a file; expected a folder of case folders"),
    ("model_folder", "is a folder, not a file; expected a .safetensors model file"),
])
def test_a_path_of_the_wrong_kind_is_one_error_line_naming_it(tmp_path, capsys, mistake, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / "split.json").write_text(json.dumps({"train": [], "validation": [], "test": ["case_a"]}),
                                    encoding="utf-8")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    data, model = two_cases(tmp_path), str(SAMPLE_CASE_DIR.parents[1] / "Models" / "dcediff_cpu_phantom.safetensors")
    extra = {"split_folder": ["--split", str(run)], "split_missing": ["--split", str(tmp_path / "no.json")],
             "split_not_a_split": ["--split", str(tmp_path / "list.json")]}.get(mistake, [])
    if mistake == "data_file":
        data = SAMPLE_CASE_DIR / "t2w.nii.gz"
    if mistake == "model_folder":
        model = str(SAMPLE_CASE_DIR.parents[1] / "Models")
    out = tmp_path / "out"
    code = main(["evaluate", "--model", model, "--data", str(data), "--out", str(out), "--no-fid", *extra])
    line = one_error_line(capsys.readouterr().err.split("\r")[-1])
    assert code == 2 and expected in line, line
    assert not out.exists()


def test_a_training_config_folder_is_one_error_line(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["train", "--config", str(tmp_path), "--data", str(tmp_path / "data"), "--out",
                 str(tmp_path / "run")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "training config" in line and "is a folder; expected a JSON file" in line, line


def test_the_demo_refuses_a_folder_it_did_not_write_without_naming_an_option_it_lacks(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["demo", "--out", str(mine)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "the demo replaces only a previous synthesis output" in line and "--overwrite" not in line, line
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_registration_words_give_the_rotation_of_the_correction():
    """registration_words: 'the correction applied' in words, with the guard's own numbers: 1.25 mm and 0.5°
    must read '1.2 mm' (or 1.3) and '0.5°' — not the translation again."""
    from DCEDiffLib.commands.common import registration_words
    from DCEDiffLib.registration import RegistrationResult

    result = RegistrationResult("pd", sitk.Euler3DTransform(), True, -0.5, -0.6, 1.25, 0.5, "applied")
    words = registration_words({"pd": result})["pd"]
    assert words.endswith(", 0.5°"), words


def test_evaluate_subset_validation_scores_the_validation_cases(tmp_path):
    """`dcediff evaluate --split S --subset validation` scores 'which cases of split_path to score': the validation
    cases, never the test cases (those are for the final numbers, once)."""
    import shutil

    from DCEDiffLib.cli import main
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

    from random_model import save_random_model

    data = tmp_path / "data"
    for index, name in enumerate(("case_a", "case_b", "case_c")):
        shutil.copytree(SAMPLE_CASE_DIR, data / name)
        record = json.loads((data / name / "case.json").read_text(encoding="utf-8"))
        record["seed"] = 910000 + index  # three patients, not three copies of one
        (data / name / "case.json").write_text(json.dumps(record), encoding="utf-8")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["case_a"], "validation": ["case_b"], "test": ["case_c"]}), encoding="utf-8")
    model = save_random_model(tmp_path / "model")
    out = tmp_path / "out"
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--split", str(split), "--subset",
                 "validation", "--steps", "2", "--no-regression", "--no-fid", "--out", str(out)]) == 0
    meta = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["meta"]
    assert meta["subset"] == "validation" and meta["cases"] == ["case_b"]
