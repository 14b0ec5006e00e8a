"""`dcediff dataset` (issue 15, part 2): a root of patient folders, one DICOM study each → training cases + manifest.

The root holds phantom studies written by DCEDiffLib/phantom/study_export.py (small: few distractors, 10 DCE
frames, in-plane shrink 4): two complete exams (DCE as one series per time point with a VIBE T1-pre; DCE as one
series with temporal positions, T1-pre = the pre-arrival frame, opaque file names), one without ADC, one without
DCE, and one folder of non-DICOM files. Checked: the cases and their picks, the manifest's skip reasons, the no-DCE
policy, resuming (finished cases not rewritten, a killed run's temporary folder removed), loading with
``load_case``, an interrupted write leaving no half case, and clear errors for bad --root/--out.
"""

import csv
import json
from pathlib import Path

import pytest
import SimpleITK as sitk

from DCEDiffLib.cli import main
from DCEDiffLib.errors import InputError
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.study_dataset import build_dataset, read_manifest
from DCEDiffLib.training.case_data import list_case_dirs, load_case
from dicom_slice_io import read_slice_with_tags
from phantom_frames import fewer_frames

FEW = ("localizer", "t2_sag", "t2_cor", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb", "t1_post")
ROLES = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    case = fewer_frames(generated_case(3))
    root = tmp_path_factory.mktemp("download") / "PROSTATEx"
    expected = {
        "P-A": write_phantom_study(case, root / "P-A", omit=FEW, study_key="a", patient_id="P-A"),
        "P-B": write_phantom_study(case, root / "P-B", omit=FEW + ("vibe",), dce_layout="temporal",
                                   file_layout="mixed", study_key="b", patient_id="P-B"),
        "P-C": write_phantom_study(case, root / "P-C", omit=FEW + ("adc", "dce"), study_key="c", patient_id="P-C"),
        "P-D": write_phantom_study(case, root / "P-D", omit=FEW + ("dce",), study_key="d", patient_id="P-D"),
    }
    broken = root / "P-E" / "study" / "series"
    broken.mkdir(parents=True)
    for i in range(3):
        (broken / f"1-0{i}.dcm").write_bytes(b"not a DICOM file" * 10)
    return root, expected


@pytest.fixture(scope="module")
def dataset(root, tmp_path_factory):
    """The first run, through the command line, with two worker processes."""
    root_dir, expected = root
    out = tmp_path_factory.mktemp("datasets") / "prostatex"
    code = main(["dataset", "--root", str(root_dir), "--out", str(out), "--workers", "2", "--progress-lines"])
    return out, expected, code


def rows(out):
    with open(out / "manifest.csv", newline="", encoding="utf-8") as handle:
        return {row["patient"]: row for row in csv.DictReader(handle)}


def test_cases_manifest_and_skip_reasons(dataset, capsys):
    out, expected, code = dataset
    assert code == 0
    # P-A's T1-pre is its VIBE, another series than the DCE: the DCE's pre-contrast frame comes along (its scale);
    # P-B's T1-pre is a frame of the DCE itself
    for name, extra in (("P-A", ["dce_baseline.nii.gz"]), ("P-B", [])):
        assert sorted(p.name for p in (out / name).iterdir()) == sorted([f"{r}.nii.gz" for r in ROLES] + ["case.json"]
                                                                        + extra)
    assert sorted(p.name for p in (out / "no_dce" / "P-D").iterdir()) == sorted(
        [f"{r}.nii.gz" for r in ROLES[:4]] + ["case.json"])
    assert not (out / "P-C").exists() and not (out / "P-E").exists()
    assert not [p for p in out.rglob(".*")]                  # no temporary folder or file left

    manifest = read_manifest(out)
    assert manifest["counts"] == {"patients": 5, "ok_usable_for_training": 2, "ok_no_dce": 1, "skipped": 2}
    assert "no_dce/" in manifest["no_dce_policy"]
    table = rows(out)
    assert [table[p]["status"] for p in sorted(table)] == ["ok", "ok", "skipped", "ok", "skipped"]
    assert table["P-A"]["usable_for_training"] == "True" and table["P-D"]["usable_for_training"] == "False"
    assert table["P-D"]["case_dir"] == "no_dce/P-D" and "no acquired DCE" in table["P-D"]["reason"]
    assert table["P-C"]["reason"].startswith("missing ADC: no ADC found (expected an ADC map")
    assert "Found" in table["P-C"]["reason"] and "'t2_tse_tra'" in table["P-C"]["reason"]
    assert table["P-C"]["t2w_series_number"] == str(expected["P-C"]["t2w"])   # what was found is listed too
    assert "holds no readable DICOM image files" in table["P-E"]["reason"] and "P-E" in table["P-E"]["reason"]

    # the picks: series number, description, UID, rule, and the DCE frame
    for name in ("P-A", "P-B"):
        want = expected[name]
        row = table[name]
        for role in ("t2w", "pd", "adc"):
            assert row[f"{role}_series_number"] == str(want[role]), (name, role)
            assert row[f"{role}_series_instance_uid"].startswith("2.25.") and row[f"{role}_rule"]
        for role in ("dce_early", "dce_late"):
            number, frame = want[role]
            assert (row[f"{role}_series_number"], row[f"{role}_frame_index"]) == (str(number), str(frame))
    assert table["P-A"]["t1pre_series_number"] == str(expected["P-A"]["t1pre"])
    assert table["P-B"]["t1pre_rule"].startswith("last DCE frame before contrast arrival")
    assert table["P-B"]["dce_layout"] == "one series, 5 temporal positions"
    case_json = json.loads((out / "P-B" / "case.json").read_text())
    assert case_json["series"]["t1pre"]["frame_index"] == int(table["P-B"]["t1pre_frame_index"])
    assert case_json["dataset"]["status"] == "ok"
    assert case_json["dce_baseline"] is None
    frame = json.loads((out / "P-A" / "case.json").read_text())["dce_baseline"]
    assert "last DCE frame before contrast arrival" in frame["rule"] and frame["frame_index"] >= 0
    # the manifest lists that frame too (what a user checks before training), and nothing for P-B, whose T1-pre is it
    assert table["P-A"]["dce_baseline_frame_index"] == str(frame["frame_index"])
    assert table["P-A"]["dce_baseline_series_instance_uid"] == frame["series_instance_uid"]
    assert table["P-B"]["dce_baseline_frame_index"] == "" and "dce_baseline" not in manifest["patients"][1]["series"]
    assert manifest["patients"][0]["series"]["dce_baseline"]["frame_index"] == frame["frame_index"]


def test_second_run_resumes_without_rewriting_finished_cases(dataset, root, capsys):
    out, _, _ = dataset
    root_dir, _ = root
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.parent != out)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in files}
    leftover = out / ".P-C.abc123.partial"      # what a killed run leaves behind
    leftover.mkdir()
    (leftover / "t2w.nii.gz").write_bytes(b"half")
    capsys.readouterr()
    assert main(["dataset", "--root", str(root_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "3 finished earlier" in printed.out and "skipped P-C: missing ADC" in printed.err
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in files} == before
    assert not leftover.exists()
    table = rows(out)
    assert {p: table[p]["resumed"] for p in table} == {"P-A": "True", "P-B": "True", "P-C": "False", "P-D": "True",
                                                       "P-E": "False"}
    assert table["P-C"]["status"] == "skipped"                 # skipped patients are retried, and still skipped
    # P-D has a VIBE but no DCE series to date it by: its T1-pre pick is said, one line, as synthesize --study says
    # it (StudyPicks.warnings), also for a case resumed from its case.json; P-C is skipped, its reason says enough
    warned = [line for line in printed.err.splitlines() if "not dated" in line]
    assert len(warned) == 1 and warned[0].startswith("dcediff dataset: warning: P-D: T1-pre #"), printed.err
    assert "by its name/description only" in warned[0]
    by_patient = {row["patient"]: row for row in read_manifest(out)["patients"]}
    assert by_patient["P-D"]["pick_warnings"] == [warned[0].split("P-D: ", 1)[1]]
    assert by_patient["P-A"]["pick_warnings"] == [] and by_patient["P-B"]["pick_warnings"] == []


def test_written_cases_load_for_training(dataset):
    out, _, _ = dataset
    assert [p.name for p in list_case_dirs(out)] == ["P-A", "P-B"]   # no_dce/ is not a training case
    for name in ("P-A", "P-B"):
        arrays = load_case(out / name, register=False)
        assert arrays.conditions.shape == (4, 16, 160, 160) and arrays.targets.shape == (2, 16, 160, 160)
    no_dce = load_case(out / "no_dce" / "P-D", register=False)
    assert no_dce.targets is None


def test_an_interrupted_run_leaves_no_half_case(root, tmp_path, monkeypatch):
    root_dir, _ = root
    small = tmp_path / "root"
    small.mkdir()
    (small / "P-D").symlink_to(root_dir / "P-D", target_is_directory=True)
    out = tmp_path / "out"
    written = []

    def write_then_interrupt(image, path, *args, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(path)
        return real_write(image, path, *args, **kwargs)

    real_write = sitk.WriteImage
    monkeypatch.setattr(sitk, "WriteImage", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(small, out)
    assert written and sorted(p.name for p in out.rglob("*") if p.is_file() or p.name.endswith(".partial")) == [
        "manifest.csv", "manifest.json"]                              # no case file, no temporary folder
    monkeypatch.setattr(sitk, "WriteImage", real_write)
    result = build_dataset(small, out)
    assert [r["status"] for r in result.records] == ["ok"] and (out / "no_dce" / "P-D" / "case.json").is_file()


def test_bad_root_and_out_are_refused_with_clear_errors(root, tmp_path, capsys):
    root_dir, _ = root
    with pytest.raises(InputError, match="--root .*missing: does not exist; expected a folder with one sub-folder "
                                         "per patient"):
        build_dataset(tmp_path / "missing", tmp_path / "out")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "1-01.dcm").write_bytes(b"x")
    with pytest.raises(InputError, match="holds 1 file\\(s\\) but no patient folder"):
        build_dataset(flat, tmp_path / "out")
    with pytest.raises(InputError, match="lies inside --root"):
        build_dataset(root_dir, root_dir / "P-A" / "cases")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["dataset", "--root", str(root_dir), "--out", str(other)]) == 2
    assert "has no manifest.json; expected a new folder or one made by dcediff dataset" in capsys.readouterr().err
    assert main(["dataset", "--root", str(root_dir), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers 0: expected a whole number ≥ 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "prostatex-studies"


@pytest.mark.skipif(not (REAL / "ProstateX-0000").is_dir(), reason=f"real ProstateX studies not found at {REAL}")
def test_real_prostatex_studies_are_skipped_for_their_missing_t1pre_with_the_right_picks(tmp_path):
    result = build_dataset(REAL, tmp_path / "out")       # these two exams have no T1-pre series and no DCE
    picks = {r["patient"]: tuple(r["series"][role]["series_number"] for role in ("t2w", "adc", "pd"))
             for r in result.records}
    assert picks == {"ProstateX-0000": (4, 7, 9), "ProstateX-0001": (10, 8, 11)}   # as in test_dicom_study.py
    assert all(r["status"] == "skipped" and r["reason"].startswith("missing T1-pre: no T1-pre found")
               for r in result.records)


def root_with_a_copy(root_dir: Path, tmp_path: Path):
    """(a root holding P-D and a second patient folder with the same study, the dataset folder to write)."""
    small = tmp_path / "root"
    small.mkdir()
    for name in ("P-D", "P-D-copy"):
        (small / name).symlink_to(root_dir / "P-D", target_is_directory=True)
    return small, tmp_path / "out"


def test_a_copy_of_a_study_counts_once_and_resuming_checks_what_is_there(root, tmp_path, monkeypatch):
    """A second patient folder with the same study is dropped; a resume refuses case folders of patients gone from
    the root, remakes a case missing an image, and does not depend on the current folder."""
    root_dir, _ = root
    small, out = root_with_a_copy(root_dir, tmp_path)
    monkeypatch.chdir(tmp_path)
    result = build_dataset(Path("root"), Path("out"))  # relative paths: the manifest records the root absolute
    status = {r["patient"]: (r["status"], r["reason"]) for r in result.records}
    assert status["P-D"][0] == "ok" and status["P-D-copy"][0] == "skipped"
    assert "the same DICOM study" in status["P-D-copy"][1] and "as patient folder P-D" in status["P-D-copy"][1]
    assert not (out / "no_dce" / "P-D-copy").exists()
    assert read_manifest(out)["root"] == str(small.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    case = out / "no_dce" / "P-D"
    (case / "adc.nii.gz").unlink()  # deleted by hand: the case is made again, not taken as finished
    result = build_dataset(small, out)
    again = {r["patient"]: r for r in result.records}["P-D"]
    assert again["status"] == "ok" and not again["resumed"] and (case / "adc.nii.gz").is_file()
    (small / "P-D").unlink()
    (small / "P-D-copy").unlink()
    (small / "P-X").symlink_to(root_dir / "P-A", target_is_directory=True)
    with pytest.raises(InputError, match=r"holds 1 case folder\(s\) of patients no longer in --root .*no_dce/P-D"):
        build_dataset(small, out)


def test_a_root_one_level_too_deep_is_said(root, tmp_path, capsys):
    """--root at a study folder: every series becomes a 'patient' and is skipped; the warning says why."""
    root_dir, _ = root
    study = root_dir / "P-A"  # its sub-folders are the series
    assert main(["dataset", "--root", str(study), "--out", str(tmp_path / "out"), "--progress-lines"]) == 2
    printed = capsys.readouterr()
    assert "hold parts of one DICOM study" in printed.err and "looks one level too deep" in printed.err
    assert "DCEDiff dataset:" in printed.err and "DCEDiff dataset:" not in printed.out  # stdout: progress lines only
    from DCEDiffLib.commands.dataset import root_too_deep_hint  # --root at one patient: its study-date folders

    assert "looks like one patient's folder" in root_too_deep_hint([{"patient": "07-07-2011-NA-MR prostaat"}])
    assert root_too_deep_hint([{"patient": "ProstateX-0000", "study_instance_uid": "1.2"}]) == ""


def test_phantom_writes_whole_studies_that_dataset_reads_back(tmp_path, capsys):
    """`dcediff phantom --format study`: each case as one DICOM study at the scanner's resolution, for users who
    want to try --study and dataset without real data; dataset picks the series the exporter says."""
    root = tmp_path / "studies"
    assert main(["phantom", "--cases", "1", "--seed", "7", "--format", "study", "--out", str(root)]) == 0
    case = root / "case_000"
    assert sorted(p.name for p in case.iterdir()) == ["case.json", "labels.nii.gz", "study"]
    expected = json.loads((case / "case.json").read_text(encoding="utf-8"))["study_series"]
    result = build_dataset(root, tmp_path / "cases")
    (record,) = result.records
    assert record["status"] == "ok" and record["usable_for_training"], record["reason"]
    for role in ("t2w", "pd", "adc", "t1pre"):
        assert record["series"][role]["series_number"] == expected[role], role
    t2w = sitk.ReadImage(str(tmp_path / "cases" / "case_000" / "t2w.nii.gz"))
    assert t2w.GetSpacing()[0] < 1.0  # not shrunk: the scanner's in-plane resolution


def test_an_axial_t2w_of_another_region_acquired_later_is_not_picked(root, tmp_path):
    """A later abdominal T2W (150 mm up) won 'the last acquired' rule, and registration then failed in ITK; the
    T2W that images the other series' region now goes first."""
    import shutil

    from DCEDiffLib.dicom_study import scan_study
    from DCEDiffLib.study_roles import pick_roles

    root_dir, expected = root
    study = tmp_path / "P-A"
    shutil.copytree(root_dir / "P-A", study)
    source = sorted(p for p in study.iterdir() if p.name.split("-", 1)[0] == f"{expected['P-A']['t2w']}.000000")
    (t2w_folder,) = source
    abdomen = study / "60.000000-t2tsetralargeFOVabdomen-11111"
    abdomen.mkdir()
    for index, path in enumerate(sorted(t2w_folder.glob("*.dcm"))):
        image = read_slice_with_tags(path)
        image.SetMetaData("0008|103e", "t2_tse_tra_large_FOV_abdomen")
        image.SetMetaData("0020|000e", image.GetMetaData("0020|000e") + ".60")
        image.SetMetaData("0008|0018", image.GetMetaData("0008|0018") + ".60")
        image.SetMetaData("0020|0011", "60")
        for tag in ("0008|0031", "0008|0032"):
            image.SetMetaData(tag, "235900.000000")  # acquired last
        position = [float(v) for v in image.GetMetaData("0020|0032").split("\\")]
        position[2] += 150.0
        image.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in position))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(abdomen / path.name))
        writer.Execute(image)
    picks = pick_roles(scan_study(study), require=False)
    assert picks.picks["t2w"].series.number == expected["P-A"]["t2w"]
    assert 60 in [s.number for s, _ in picks.picks["t2w"].lost]


def test_a_killed_runs_temporary_case_is_not_a_patient_gone_and_a_copy_is_not_converted_again(root, tmp_path):
    small, out = root_with_a_copy(root[0], tmp_path)
    build_dataset(small, out)
    killed = out / "no_dce" / ".P-X.pid999999-00000000.abc.partial"  # case.json is written just before the rename
    killed.mkdir()
    (killed / "case.json").write_text("{}")
    replaced = out / ".P-Y.1a2b3c4d.old"
    replaced.mkdir()
    (replaced / "case.json").write_text("{}")
    result = build_dataset(small, out)  # refused before: "holds 2 case folder(s) of patients no longer in --root"
    copy = {r["patient"]: r for r in result.records}["P-D-copy"]
    assert copy["resumed"] and copy["reason"].startswith("the same DICOM study")  # taken from the manifest
    assert not (out / "no_dce" / "P-D-copy").exists()
