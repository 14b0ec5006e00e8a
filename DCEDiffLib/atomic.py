"""Atomic writes: a crash or cancel leaves either the complete result or nothing."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Iterator, List, Optional


def current_umask() -> int:
    """The process's umask: from /proc/self/status where Linux has it (no side effect), else by setting and
    restoring it (the portable way; briefly changes it for other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_mode(path: Path, directory: bool) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have given it: 0o666 (files) or 0o777 (folders)
    less the umask. ``tempfile.mkstemp``/``mkdtemp`` create 0600/0700, which would leave results that others
    cannot read. A mode the writer chose itself (anything but those tempfile modes) is kept."""
    if path.is_symlink() or not path.exists():
        return
    if (path.stat().st_mode & 0o777) == (0o700 if directory else 0o600):
        os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def _partial_prefix(final: Path) -> str:
    """``.<name>.pid<N>-<machine>.``: a temporary output names the process writing it and its machine, so that a
    later run can tell a temporary left by a killed process (SIGKILL, the OOM killer) from one another process is
    still writing (on a shared file system or in another container a process id alone says nothing)."""
    from DCEDiffLib.output_lock import machine_tag

    return f".{final.name}.pid{os.getpid()}-{machine_tag()}."


def remove_stale_partials(final: Path) -> List[Path]:
    """Remove the temporaries of ``final`` (beside it) whose writing process, on this machine, is gone; returns
    them. A previous result it had moved aside (``.old``) is put back instead when ``final`` is missing. Those of a
    running process, of another machine or namespace, and those without a process id (written before ids were
    recorded) are left alone."""
    stale = []
    try:
        candidates = sorted(final.parent.glob(f".{glob.escape(final.name)}.pid*"))
    except OSError:
        return stale
    for candidate in candidates:
        if not (candidate.name.endswith(".old") or ".partial" in candidate.name) or \
                not is_stale_partial(candidate.name, final.name):
            continue
        try:
            if candidate.name.endswith(".old") and not final.exists():
                os.replace(candidate, final)  # killed between moving the old result aside and putting the new one
                continue
            shutil.rmtree(candidate) if candidate.is_dir() and not candidate.is_symlink() else candidate.unlink()
            stale.append(candidate)
        except OSError:
            pass
    return stale


def is_stale_partial(name: str, final_name: Optional[str] = None) -> bool:
    """Whether ``name`` is a temporary (of ``final_name``, or of any output) left by a process of this machine that
    is gone."""
    from DCEDiffLib.output_lock import process_alive

    stem = re.escape(final_name) if final_name is not None else ".+?"
    match = re.match(rf"^\.{stem}\.pid(\d+)-([0-9a-f]{{8}})\.", name)
    return match is not None and not process_alive(int(match.group(1)), match.group(2))


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final_path``; rename it into place only if the block succeeds.

    The temporary name keeps the final suffixes (``.nii.gz``), so writers that pick a format from the
    extension behave the same.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes)
    remove_stale_partials(final)
    fd, tmp = tempfile.mkstemp(prefix=_partial_prefix(final), suffix=".partial" + suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _normal_mode(tmp_path, directory=tmp_path.is_dir())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# The record each kind of DCEDiff output folder holds: ``overwrite`` replaces only a folder with the record of the
# command that writes it again, never a user's folder, nor another command's output (a phantom case is data).
SYNTHESIS_RECORD = "synthesis.json"     # synthesize, demo, the benchmark's runs
PREPROCESS_RECORD = "preprocess.json"   # preprocess
EVALUATION_RECORD = "metrics.json"      # evaluate
CASE_RECORD = "case.json"               # a phantom or dataset case
OUTPUT_MANIFESTS = (SYNTHESIS_RECORD, PREPROCESS_RECORD, EVALUATION_RECORD, CASE_RECORD)


def path_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it, links resolved (False where either cannot be resolved)."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


def refuse_output_inside_input(out: str | os.PathLike, out_option: str, folder: str | os.PathLike,
                               folder_option: str, why: str) -> None:
    """Raise :class:`InputError` if the output folder ``out`` is the input folder ``folder`` or lies inside it
    (``why``: what would go wrong there, e.g. "it would be read as a patient"); one wording for every command."""
    from DCEDiffLib.errors import InputError

    if path_inside(Path(out), Path(folder)):
        raise InputError(f"{out_option} {out}: lies inside {folder_option} {folder} ({why}); expected a folder "
                         f"outside {folder_option}")


def _holds_the_current_folder(folder: Path) -> bool:
    try:
        return path_inside(Path.cwd(), folder)
    except OSError:  # the current folder itself was deleted
        return False


def check_output_folder(final_dir: str | os.PathLike, overwrite: bool = False,
                        inputs: Iterable[str | os.PathLike] = (),
                        records: Iterable[str] = OUTPUT_MANIFESTS,
                        replace_rule: str = "--overwrite replaces only such a previous output") -> None:
    """Raise :class:`InputError` if :func:`atomic_directory` would refuse ``final_dir``: an existing file, an
    existing non-empty folder (unless ``overwrite``), or a path whose nearest existing parent is not a folder one
    may write to. The current folder or one above it is refused (a result folder replaces its path whole). With
    ``overwrite`` a non-empty folder is replaced only if the same kind of command wrote it (it holds one of
    ``records``: ``synthesis.json`` for a synthesis, ...) and it holds none of ``inputs``; ``replace_rule`` says
    so in the refusal (a command without ``--overwrite``, the demo, words it its own way). Cheap: call it before
    any slow work so that a bad output path is refused first."""
    from DCEDiffLib.errors import InputError

    final = Path(final_dir)
    expected = "expected a writable folder path (its parent must be a folder you may write to)"
    remove_stale_partials(final)  # first: a killed run's leftovers, and its previous result put back where it was
    if final.exists() and not final.is_dir():
        raise InputError(f"output folder {final} is an existing file; {expected}")
    if final.is_dir() and _holds_the_current_folder(final):
        raise InputError(f"output folder {final} is the current folder or holds it; the result folder takes its "
                         "place whole: choose a new folder")
    if final.is_dir() and any(final.iterdir()):
        if not overwrite:
            raise InputError(f"output folder {final} already exists and is not empty; "
                             "choose a new folder or pass --overwrite")
        held = [str(p) for p in inputs if p and path_inside(Path(p), final)]
        if held:
            raise InputError(f"output folder {final} holds an input ({held[0]}); --overwrite would delete it: "
                             "choose another output folder")
        records = tuple(records)
        # a folder's kind is its first record in OUTPUT_MANIFESTS' order: a synthesis with the acquired DCE also
        # writes metrics.json, and must not pass for an evaluation
        kind = next((name for name in OUTPUT_MANIFESTS + records if (final / name).is_file()), None)
        if kind not in records:
            written_by = (f" (it holds {kind}: another command's output)" if kind else
                          f" (it has no {' or '.join(records)})")
            raise InputError(f"output folder {final} was not written by this kind of DCEDiff command{written_by}: "
                             f"{replace_rule}; choose a new folder, or empty this one yourself")
    check_writable_location(final.parent, f"output folder {final}")


def check_writable_location(folder: str | os.PathLike, what: str) -> None:
    """Raise :class:`InputError` (naming ``what``) unless ``folder``, or its nearest existing parent, is a folder
    this process may write in: a read-only mount or a file in the way is said before any slow work."""
    from DCEDiffLib.errors import InputError

    expected = "expected a writable folder path (its parent must be a folder you may write to)"
    parent = Path(folder)
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{what}: cannot write there ({parent} is a file, not a folder); {expected}")
    if not os.access(parent, os.W_OK | os.X_OK) or _read_only_mount(parent):
        raise InputError(f"{what}: cannot write there (no write permission in {parent}); {expected}")


def _read_only_mount(folder: Path) -> bool:
    """A folder on a file system mounted read-only (os.access says yes to root there)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def atomic_directory(final_dir: str | os.PathLike, overwrite: bool = False,
                     records: Iterable[str] = OUTPUT_MANIFESTS) -> Iterator[Path]:
    """Yield a temporary directory; it becomes ``final_dir`` only if the block succeeds.

    Refuses an existing non-empty ``final_dir`` unless ``overwrite`` is true (then it is replaced whole, and only if
    the same kind of command wrote it: :func:`check_output_folder`).
    """
    from DCEDiffLib.errors import DCEDiffError, InputError

    final = Path(final_dir)
    check_output_folder(final, overwrite=overwrite, records=records)
    if final.is_symlink():
        final = final.resolve()  # replace the folder the link points to; the link stays
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(final), suffix=".partial", dir=final.parent))
    except OSError as exc:
        raise InputError(f"output folder {final}: cannot write there ({exc.strerror or exc}); expected a writable "
                         "folder path (its parent must be a folder you may write to)") from exc
    try:
        yield tmp
        _normal_mode(tmp, directory=True)
        _replace_folder(tmp, final, overwrite)
    except (DCEDiffError, OSError) as exc:
        _name_the_final_folder(exc, tmp, final)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _name_the_final_folder(exc: BaseException, tmp: Path, final: Path) -> None:
    """Say ``final`` where the error names a file in the temporary folder ``tmp``: that hidden folder is deleted
    before the user reads the message (a full disk said '.out.pid12-ab12cd34.x1y2.partial/early.nii.gz')."""
    def named(value):
        return value.replace(str(tmp), str(final)) if isinstance(value, str) else value

    exc.args = tuple(named(arg) for arg in exc.args)
    if isinstance(exc, OSError) and exc.filename is not None:
        exc.filename = named(exc.filename)
    if isinstance(exc, OSError) and exc.filename2 is not None:  # set to None, str() would say "-> None"
        exc.filename2 = named(exc.filename2)


def _replace_folder(new: Path, final: Path, overwrite: bool = True) -> None:
    """Move ``new`` to ``final``. An existing ``final`` is first moved aside and deleted only once ``new`` is in
    place, so that an interruption in between leaves the previous result, never neither. Without ``overwrite`` a
    ``final`` that appeared meanwhile (another run finished first) is kept, and this result is refused."""
    if final.exists() and not overwrite and (not final.is_dir() or any(final.iterdir())):
        from DCEDiffLib.errors import InputError

        raise InputError(f"output folder {final} appeared while this run was writing it (another run on the same "
                         "folder?); expected one run per output folder: it is kept, and nothing of this run")
    if not final.exists():
        try:
            os.replace(new, final)
        except OSError as exc:  # another process put a folder there in between (ENOTEMPTY)
            from DCEDiffLib.errors import InputError

            raise InputError(f"output folder {final} appeared while this run was writing it (another run on the "
                             "same folder?); expected one run per output folder: nothing of this run was kept"
                             ) from exc
        return
    # named for this process, so that a run killed between the two renames is repaired by the next one
    aside = final.parent / f"{_partial_prefix(final)}{uuid.uuid4().hex[:8]}.old"
    os.replace(final, aside)
    try:
        os.replace(new, final)
    except BaseException:
        os.replace(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a small text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
