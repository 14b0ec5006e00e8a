"""--overwrite replaces only what DCEDiff wrote (DCEDiffLib/atomic.py): never a user's folder, the current folder or a
folder that holds an input; a replaced result survives an interruption; SIGTERM cleans up like Ctrl-C."""

import os
import shutil
import signal
from pathlib import Path

import pytest

from DCEDiffLib import atomic, cli
from DCEDiffLib.atomic import atomic_directory, check_output_folder
from DCEDiffLib.errors import InputError
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

needs_case = pytest.mark.skipif(not (SAMPLE_CASE_DIR / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")


def dcediff_output(folder: Path, text: str = "old", record: str = "synthesis.json") -> Path:
    """A folder as a DCEDiff command writes it: its results and its record (synthesis.json, metrics.json, ...)."""
    with atomic_directory(folder, overwrite=True) as tmp:
        (tmp / "result.txt").write_text(text)
        (tmp / record).write_text("{}")
    return folder


@pytest.mark.parametrize("record", ["synthesis.json", "preprocess.json", "metrics.json", "case.json"])
def test_overwrite_replaces_a_previous_output_but_never_a_users_folder(tmp_path, record):
    out = dcediff_output(tmp_path / "out", record=record)
    dcediff_output(out, "new", record=record)
    assert (out / "result.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("important")
    with pytest.raises(InputError, match="was not written by this kind of DCEDiff command"):
        dcediff_output(mine)
    assert (mine / "thesis.docx").read_text() == "important" and len(list(mine.iterdir())) == 1
    assert not list(tmp_path.glob(".mine*"))  # no temporary folder left beside it


def test_a_command_overwrites_only_its_own_kind_of_output(tmp_path):
    """A synthesis does not replace a phantom case (data, with its case.json) nor an evaluation."""
    case = dcediff_output(tmp_path / "case_005", record="case.json")
    with pytest.raises(InputError, match="it holds case.json: another command's output"):
        check_output_folder(case, overwrite=True, records=("synthesis.json",))
    synth = dcediff_output(tmp_path / "synth")
    check_output_folder(synth, overwrite=True, records=("synthesis.json",))
    # a synthesis with the acquired DCE writes metrics.json too: evaluate --overwrite must not take it for its own
    (synth / "metrics.json").write_text("{}")
    with pytest.raises(InputError, match="it holds synthesis.json: another command's output"):
        check_output_folder(synth, overwrite=True, records=("metrics.json",))
    check_output_folder(synth, overwrite=True, records=("synthesis.json",))


def test_the_current_folder_is_never_an_output_folder_even_empty(tmp_path, monkeypatch):
    out = dcediff_output(tmp_path / "out")
    monkeypatch.chdir(out)
    for name in (".", ""):
        with pytest.raises(InputError, match="current folder"):
            check_output_folder(Path(name), overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    for name in (".", str(empty)):  # the result folder would take its place: refused before any work
        with pytest.raises(InputError, match="current folder"):
            check_output_folder(Path(name))
    monkeypatch.chdir(tmp_path)
    (out / "in").mkdir()
    (out / "in" / "t2w.nrrd").write_text("x")
    with pytest.raises(InputError, match=r"holds an input \(.*t2w.nrrd\)"):
        check_output_folder(out, overwrite=True, inputs=[str(tmp_path / "elsewhere.nrrd"), "out/in/t2w.nrrd"])
    check_output_folder(out, overwrite=True, inputs=[str(tmp_path / "elsewhere.nrrd")])  # nothing of it inside


def test_an_interrupted_replacement_keeps_the_previous_result(tmp_path, monkeypatch):
    out = dcediff_output(tmp_path / "out", "old")
    real_replace = os.replace
    calls = []

    def replace_interrupted_after_the_old_one_moved_aside(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:  # the new folder into place
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_interrupted_after_the_old_one_moved_aside)
    with pytest.raises(KeyboardInterrupt):
        dcediff_output(out, "new")
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert (out / "result.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # neither the new nor the moved-aside folder left


@needs_case
@pytest.mark.parametrize("command", ["synthesize", "demo"])
def test_the_cli_refuses_to_overwrite_a_folder_with_the_inputs_or_a_users_files(tmp_path, capsys, command):
    exam = tmp_path / "exam"
    (exam / "in").mkdir(parents=True)
    for key in ("t2w", "adc", "t1pre"):
        shutil.copy(SAMPLE_CASE_DIR / f"{key}.nii.gz", exam / "in" / f"{key}.nii.gz")
    (exam / "notes.txt").write_text("mine")
    before = sorted(str(p.relative_to(exam)) for p in exam.rglob("*"))
    if command == "synthesize":
        argv = ["synthesize", "--t2w", str(exam / "in/t2w.nii.gz"), "--adc", str(exam / "in/adc.nii.gz"),
                "--t1pre", str(exam / "in/t1pre.nii.gz"), "--out", str(exam), "--overwrite"]
        expected = "holds an input"
    else:  # the demo always replaces its output folder: only a previous output, not any folder
        argv = ["demo", "--out", str(exam)]
        expected = "was not written by this kind of DCEDiff command"
    assert cli.main(argv) == cli.EXIT_ERROR
    assert expected in capsys.readouterr().err
    assert sorted(str(p.relative_to(exam)) for p in exam.rglob("*")) == before


def test_sigterm_cleans_up_like_ctrl_c(tmp_path, monkeypatch, capsys):
    """A command killed with SIGTERM (kill, a scheduler) leaves no partial folder and exits 143."""
    from DCEDiffLib.commands import preprocess

    def terminated_while_writing(args):
        with atomic_directory(args.out):
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    monkeypatch.setattr(preprocess, "run", terminated_while_writing)
    missing = str(tmp_path / "x.nii.gz")
    argv = ["preprocess", "--t2w", missing, "--pd", missing, "--adc", missing, "--t1pre", missing,
            "--out", str(tmp_path / "out")]
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(argv) == 143
    assert "no partial output was kept" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's only


def test_an_output_folder_given_as_a_symlink_is_replaced_where_it_points(tmp_path):
    target = dcediff_output(tmp_path / "target", "old")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    dcediff_output(link, "new")
    assert link.is_symlink() and (link / "result.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]  # nothing moved aside is left


def test_a_killed_runs_temporaries_are_removed_by_the_next_run_and_a_running_ones_kept(tmp_path):
    """SIGKILL (or the OOM killer) leaves `.NAME.pid<N>.*.partial`; nothing removed it before."""
    import subprocess
    import sys

    from DCEDiffLib.output_lock import machine_tag

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, here = int(gone.stdout), machine_tag()
    killed = tmp_path / f".out.pid{dead_pid}-{here}.abc.partial"
    killed.mkdir()
    (killed / "synthetic_early.nii.gz").write_bytes(b"half")
    killed_file = tmp_path / f".out.pid{dead_pid}-{here}.xyz.partial.nii.gz"
    killed_file.write_bytes(b"half")
    running = tmp_path / f".out.pid{os.getpid()}-{here}.def.partial"  # this process: still writing
    running.mkdir()
    elsewhere = tmp_path / f".out.pid{dead_pid}-0badc0de.ghi.partial"  # another machine or container: unknowable
    elsewhere.mkdir()
    older = tmp_path / ".out.k3j4.partial"  # no process id: left alone
    older.mkdir()
    dcediff_output(tmp_path / "out")
    assert not killed.exists() and not killed_file.exists()
    assert running.exists() and elsewhere.exists() and older.exists()
    assert (tmp_path / "out" / "result.txt").is_file()


def test_one_run_per_output_folder(tmp_path, monkeypatch, capsys):
    """A second run on the same --out is refused at once, naming the first (a refused second phantom run deleted
    the first one's cases; a second synthesis silently replaced the first's result). The lock is the operating
    system's: a run killed outright leaves at most the file, which the next run locks again. Under torchrun only
    rank 0 claims the folder."""
    import subprocess
    import sys
    import textwrap

    from DCEDiffLib.commands import synthesize
    from DCEDiffLib.output_lock import claim_output, lock_path

    out = tmp_path / "o"
    seen = []
    monkeypatch.setattr(synthesize, "run", lambda args: seen.append(lock_path(out).is_file()) or 0)
    holder = textwrap.dedent(f"""
        import sys, time
        from DCEDiffLib.output_lock import claim_output
        with claim_output({str(out)!r}, "phantom"):
            print("held", flush=True)
            time.sleep(60)
    """)
    other = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        assert cli.main(["synthesize", "--t2w", "x", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"output folder {out} is being written by another DCEDiff run (dcediff phantom, process " in err
        assert seen == []
        monkeypatch.setenv("RANK", "1")  # a torchrun rank beside rank 0: not refused
        assert cli.main(["synthesize", "--t2w", "x", "--out", str(out)]) == 0 and seen == [True]
        monkeypatch.delenv("RANK")
    finally:
        other.kill()  # SIGKILL: no clean-up in the holder; the system releases its lock
        other.wait()
    assert lock_path(out).is_file()  # the killed holder's file stays ...
    assert cli.main(["synthesize", "--t2w", "x", "--out", str(out)]) == 0  # ... and is simply locked again
    assert seen == [True, True] and not lock_path(out).exists()
    link = tmp_path / "latest"  # a link to the folder shares its lock
    link.symlink_to(out, target_is_directory=True) if out.exists() else link.symlink_to(out)
    assert lock_path(link) == lock_path(out)
    deep = tmp_path / "runs" / "new" / "a"  # a parent not made yet: made for the lock, removed again if left empty
    with claim_output(deep, "phantom") as held:
        assert held == lock_path(deep) and held.is_file()
    assert not (tmp_path / "runs").exists()


def test_a_result_that_appeared_meanwhile_is_not_replaced_without_overwrite(tmp_path):
    """Two runs on one folder started together (before locks): the later one silently replaced the first's."""
    out = tmp_path / "out"
    with pytest.raises(InputError, match="appeared while this run was writing it"):
        with atomic_directory(out) as tmp:
            (tmp / "mine.txt").write_text("second")
            dcediff_output(out, "first")  # another run finished first
    assert (out / "result.txt").read_text() == "first" and not (out / "mine.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_ctrl_c_after_the_result_is_in_place_says_so(tmp_path, monkeypatch, capsys):
    """'no partial output was kept' after the folder was complete sent scripts into a refused rerun."""
    from DCEDiffLib.commands import synthesize

    out = tmp_path / "o"

    def finish_then_interrupt(args):
        dcediff_output(out)
        raise KeyboardInterrupt

    monkeypatch.setattr(synthesize, "run", finish_then_interrupt)
    assert cli.main(["synthesize", "--t2w", "x", "--out", str(out)]) == 130
    assert f"interrupted after the result was complete: {out} holds it whole" in capsys.readouterr().err
    old = tmp_path / "old"
    dcediff_output(old)  # a result of an earlier run: not this one's
    os.utime(old / "synthesis.json", (1, 1))

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthesize, "run", interrupt)
    assert cli.main(["synthesize", "--t2w", "x", "--out", str(old)]) == 130
    assert "no partial output was kept" in capsys.readouterr().err


def test_the_lock_is_not_kept_by_forked_workers_nor_taken_from_its_next_holder(tmp_path):
    """A main process killed alone (the OOM killer) left its forked pool workers holding a flock; a finished run
    deleted the lock file of the run that had taken its place; a lock path that is a folder ran unlocked."""
    import subprocess
    import sys
    import textwrap

    from DCEDiffLib.output_lock import claim_output, lock_path

    out = tmp_path / "run"
    holder = textwrap.dedent(f"""
        import multiprocessing, time
        from DCEDiffLib.output_lock import claim_output
        with claim_output({str(out)!r}, "train"):
            worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
            worker.start()
            print(worker.pid, flush=True)
            time.sleep(60)
    """)
    main_process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    worker = int(main_process.stdout.readline())
    try:
        main_process.kill()
        main_process.wait()
        with claim_output(out, "train") as held:  # the orphaned worker does not hold it
            assert held == lock_path(out)
    finally:
        os.kill(worker, 9)
    import contextlib

    first_run, second_run = contextlib.ExitStack(), contextlib.ExitStack()
    first = first_run.enter_context(claim_output(out, "synthesize"))
    first.unlink()  # removed by hand while the run goes on, so another run claims the folder ...
    second = second_run.enter_context(claim_output(out, "synthesize"))
    first_run.close()  # ... and the first run, finishing, must not delete the second run's lock file
    assert second.is_file()
    second_run.close()
    assert not second.exists()
    lock_path(out).mkdir()
    with pytest.raises(InputError, match="its lock file .* cannot be opened"):
        with claim_output(out, "synthesize"):
            pass


def test_a_run_killed_between_the_two_renames_gets_its_previous_result_back(tmp_path):
    """--overwrite moves the old result aside, then puts the new one in place: a kill in between left no result."""
    import subprocess
    import sys

    from DCEDiffLib.output_lock import machine_tag

    out = dcediff_output(tmp_path / "out", "previous")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    aside = tmp_path / f".out.pid{int(gone.stdout)}-{machine_tag()}.1a2b3c4d.old"
    os.replace(out, aside)  # the killed run got this far
    check_output_folder(out, overwrite=True, records=("synthesis.json",))
    assert (out / "result.txt").read_text() == "previous" and not aside.exists()


_WRITE_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
import numpy as np
import SimpleITK as sitk
from DCEDiffLib.atomic import atomic_directory
from DCEDiffLib.volume_io import write_volume
image = sitk.GetImageFromArray(np.random.default_rng(0).random((16, 160, 160), dtype=np.float32))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    with atomic_directory(sys.argv[1]) as tmp:
        write_volume(image, tmp / "synthetic_early.nii.gz")
except Exception as exc:
    print("ERROR", exc)
"""


@pytest.mark.skipif(os.name == "nt", reason="RLIMIT_FSIZE and SIGXFSZ: POSIX")
def test_a_failed_write_names_the_output_folder_not_its_deleted_temporary(tmp_path):
    """A full disk in `dcediff synthesize --out /small/out` said 'output file /small/.out.pid12-....partial/
    expected_error_late.nii.gz: written incompletely': a hidden folder deleted before the message was read. Real
    writer, real failure: a file-size limit (as a full disk, the NIfTI writer stops short without raising)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", _WRITE_UNDER_A_FILE_SIZE_LIMIT, str(out)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert "ERROR" in done.stdout, done.stdout + done.stderr[-2000:]
    assert f"output file {out / 'synthetic_early.nii.gz'}: written incompletely" in done.stdout
    assert ".partial" not in done.stdout
    assert not out.exists() and os.listdir(tmp_path) == []  # nothing half-written
