"""``dcediff phantom --out``: a case folder is refused whatever --cases (it was written into: a dataset nested in a
case), --overwrite replaces only a phantom dataset, and every refusal comes before any case is written
(DCEDiffLib/phantom/output_folder.py). Real datasets written by the generator, no stand-ins."""

import os
import shutil
from pathlib import Path

import pytest

from DCEDiffLib.cli import main
from DCEDiffLib.phantom.generator import generate_dataset


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """One phantom dataset of one case (no 4D series: the folder layout is what matters here)."""
    out = tmp_path_factory.mktemp("written") / "X"
    generate_dataset(out, 1, include_series=False)
    return out


@pytest.fixture
def dataset(written, tmp_path) -> Path:
    return Path(shutil.copytree(written, tmp_path / "X"))


@pytest.fixture(scope="module")
def written_two(tmp_path_factory) -> Path:
    """A phantom dataset of two cases (no 4D series), written once and copied by each test that rewrites it."""
    out = tmp_path_factory.mktemp("written_two") / "X"
    generate_dataset(out, 2, include_series=False)
    return out


def tree(folder: Path) -> dict:
    """Every path under ``folder`` with its inode (and a file's modification time): a case replaced, even by
    identical bytes, gets a new folder (atomic write) and new files. A folder's time is left out: the run's lock
    file beside --out comes and goes."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, None if p.is_dir() else p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def refused(args, capsys) -> str:
    assert main(["phantom", "--no-dce-series"] + args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("cases", ["1", "3"])
@pytest.mark.parametrize("overwrite", [["--overwrite"], []])
@pytest.mark.parametrize("inside", ["", "sub"])
def test_a_case_folder_as_out_is_refused_naming_the_dataset_folder(dataset, capsys, cases, overwrite, inside):
    """It wrote a second case_000 and a dataset.json inside case_000 (a dataset nested in a case)."""
    before = tree(dataset)
    out = dataset / "case_000" / inside if inside else dataset / "case_000"
    line = refused(["--cases", cases, "--out", str(out)] + overwrite, capsys)
    where = "is a case folder" if not inside else f"lies inside the case folder {dataset / 'case_000'}"
    assert f"--out {out} {where} (it holds case.json); expected a dataset folder" in line, line
    assert f"give --out {dataset} --overwrite" in line, line
    assert tree(dataset) == before


def test_overwrite_refuses_a_users_folder_by_name_and_leaves_it_as_it_was(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("important")
    line = refused(["--out", str(mine), "--overwrite"], capsys)
    assert f"--out {mine} was not written by dcediff phantom" in line, line
    assert [p.name for p in mine.iterdir()] == ["thesis.docx"] and (mine / "thesis.docx").read_text() == "important"
    (mine / "dataset.json").write_text('{"generator": "my lab"}')  # another writer's record is not replaced either
    line = refused(["--out", str(mine), "--overwrite"], capsys)
    assert f"--out {mine}: its dataset.json was not written by dcediff phantom" in line, line
    assert (mine / "dataset.json").read_text() == '{"generator": "my lab"}'


def test_overwrite_refuses_a_case_folder_no_phantom_wrote_before_writing_any_case(dataset, capsys):
    """It replaced case_000, then stopped at the user's case_001: a half-rewritten dataset."""
    notes = dataset / "case_001"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    before = tree(dataset)
    line = refused(["--cases", "2", "--out", str(dataset), "--overwrite"], capsys)
    assert f"--out {dataset}: {notes} is not a phantom case" in line, line
    assert tree(dataset) == before


def test_overwrite_still_rewrites_a_phantom_dataset(dataset, capsys):
    old = (dataset / "case_000").stat().st_ino
    assert main(["phantom", "--no-dce-series", "--seed", "3", "--out", str(dataset), "--overwrite"]) == 0
    assert (dataset / "case_000").stat().st_ino != old
    assert '"seed": 3' in (dataset / "dataset.json").read_text()
    assert sorted(os.listdir(dataset)) == ["case_000", "dataset.json"]


@pytest.mark.parametrize("out", ["..", "dataset"])
def test_running_inside_a_case_folder_is_refused_before_any_case_is_rewritten(written_two, tmp_path, capsys,
                                                                             monkeypatch, out):
    """``cd X/case_001; dcediff phantom --cases 2 --out .. --overwrite``: case_000 was rewritten, then the case
    writer refused case_001 (the current folder) and dataset.json still described the old dataset; ``--out ..`` was
    moreover called "inside the case folder" and --out X advised, the same folder."""
    dataset = Path(shutil.copytree(written_two, tmp_path / "X"))
    before = tree(dataset)
    monkeypatch.chdir(dataset / "case_001")
    given = ".." if out == ".." else str(dataset)
    line = refused(["--cases", "2", "--seed", "4", "--out", given, "--overwrite"], capsys)
    assert (f"--out {given}: the current folder {dataset / 'case_001'} is {dataset / 'case_001'} or inside it, and "
            f"--overwrite replaces that case folder whole: run the command from outside it (e.g. from {dataset})"
            in line), line
    assert tree(dataset) == before
    monkeypatch.chdir(dataset)  # from the dataset folder itself: rewritten
    assert main(["phantom", "--no-dce-series", "--cases", "2", "--seed", "4", "--out", ".", "--overwrite"]) == 0
    assert '"seed": 4' in (dataset / "dataset.json").read_text()


def test_a_symlink_to_a_case_folder_is_refused_naming_the_real_dataset_folder(dataset, tmp_path, capsys):
    """The advice named the symlink's own folder (``--out <folder of the link> --overwrite``), not the dataset."""
    link = tmp_path / "elsewhere" / "shortcut"
    link.parent.mkdir()
    link.symlink_to(dataset / "case_000")
    before = tree(dataset)
    line = refused(["--out", str(link) + "/", "--overwrite"], capsys)
    assert f"--out {link} is a case folder" in line and f"give --out {dataset.resolve()} --overwrite" in line, line
    assert tree(dataset) == before and [p.name for p in link.parent.iterdir()] == ["shortcut"]


def test_a_damaged_dataset_record_is_said_to_be_unreadable_not_foreign(dataset, capsys):
    """A truncated dataset.json of a phantom dataset was reported as "not written by dcediff phantom"."""
    (dataset / "dataset.json").write_text('{"generator": "dcediff-pha')
    before = tree(dataset)
    line = refused(["--out", str(dataset), "--overwrite"], capsys)
    assert f"--out {dataset}: its dataset.json cannot be read as a JSON object (damaged?)" in line, line
    assert f"remove {dataset / 'dataset.json'} if this is a phantom dataset" in line, line
    assert tree(dataset) == before
    (dataset / "dataset.json").unlink()  # as the message says: the phantom cases are then rewritten
    assert main(["phantom", "--no-dce-series", "--out", str(dataset), "--overwrite"]) == 0
