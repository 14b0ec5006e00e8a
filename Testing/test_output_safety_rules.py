"""Output-folder safety rules at their definitions (found by a mutation audit): a killed run's moved-aside previous
result is put back only where there is no result, and otherwise removed; a folder with a long name gets a lock."""

import os
import subprocess
import sys

from DCEDiffLib.atomic import remove_stale_partials
from DCEDiffLib.output_lock import claim_output, lock_path, machine_tag


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_a_killed_runs_moved_aside_result_never_takes_the_place_of_a_newer_one(tmp_path):
    """remove_stale_partials: 'a previous result it had moved aside (.old) is put back instead when final is
    missing'. Where a newer result is in place (empty or not), the stale .old is removed and the newer result kept."""
    for name, newer in (("full", ["result.txt"]), ("empty", [])):
        final = tmp_path / name
        final.mkdir()
        for f in newer:
            (final / f).write_text("newer")
        aside = tmp_path / f".{name}.pid{_dead_pid()}-{machine_tag()}.1a2b3c4d.old"
        aside.mkdir()
        (aside / "result.txt").write_text("older")
        assert remove_stale_partials(final) == [aside]
        assert not aside.exists() and sorted(p.name for p in final.iterdir()) == newer
        assert all((final / f).read_text() == "newer" for f in newer)


def test_an_output_folder_with_a_long_name_is_claimed(tmp_path):
    """lock_path: the lock file is '.<name>.dcediff-lock' beside the folder, its name shortened where the folder's
    is long ('a file name holds 255 bytes'): a 250-character folder name still gets a lock that works."""
    out = tmp_path / ("run-" + "x" * 246)
    assert len(out.name) == 250
    path = lock_path(out)
    assert path.parent == tmp_path and len(path.name.encode()) <= 255 and path.name.startswith(".run-x")
    with claim_output(out, "train") as held:
        assert held == path and held.is_file() and str(os.getpid()) in held.read_text()
    assert not path.exists()
