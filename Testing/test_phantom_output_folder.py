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
