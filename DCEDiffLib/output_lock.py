"""One DCEDiff run at a time per output folder, and which process wrote a temporary file.

Two runs started on the same ``--out`` (a script run twice, two terminals, a job array) used to interfere: the
second synthesis silently replaced the first's finished result, a refused second ``phantom`` run deleted the first
one's cases in its clean-up, and two ``train`` runs on one run folder merged their log rows. Each command that
writes an output folder now claims it first: an operating-system lock (``flock``; on Windows ``msvcrt.locking``)
on a file beside it, ``.<name>.dcediff-lock``, which also says who holds it. The system releases the lock when its
process ends, however it ends (SIGKILL, the OOM killer), so a lock is never stale; the file itself may stay and is
simply locked again by the next run. Processes in other containers on the same machine see the lock, and so do
other machines on a file system that supports locks (NFSv4).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator, List, Optional

from DCEDiffLib.errors import InputError


def machine_tag() -> str:
    """Eight hex digits naming this host and process namespace: a process id means something only there."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha1(f"{socket.gethostname()}/{namespace}".encode()).hexdigest()[:8]


def process_alive(pid: int, tag: Optional[str] = None) -> bool:
    """Whether process ``pid`` of machine ``tag`` (default: this one) may still be running. Unknowable (another
    machine or namespace, another user's process, Windows, where signal 0 is a Ctrl-C event) counts as running:
    its files are left alone."""
    if tag is not None and tag != machine_tag():
        return True
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def lock_path(out: os.PathLike) -> Path:
    """The lock file of output folder ``out``: beside it, since the folder itself is replaced whole; through a
    symbolic link, beside the folder it points to (the one that is replaced)."""
    final = Path(os.path.realpath(out))
    return final.parent / f".{final.name}.dcediff-lock"


def _try_lock(handle) -> bool:
    """Take the system lock of an open file without waiting; False when another process holds it."""
    if os.name == "nt":
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _missing_parents(folder: Path) -> List[Path]:
    """The folders above ``folder`` (itself included) that do not exist yet, deepest last."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return list(reversed(missing))


@contextlib.contextmanager
def claim_output(out: os.PathLike, command: str) -> Iterator[Optional[Path]]:
    """Hold the lock of output folder ``out`` for ``command`` while the block runs; :class:`InputError` when
    another running process holds it. A missing parent folder is made for the lock (and removed again if the run
    left it empty). Where no lock file can be made at all (a parent that cannot be written), the block runs without
    one: the command then fails on that folder with its own, clearer message."""
    path = lock_path(out)
    made = _missing_parents(path.parent)
    handle = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            made = []
        for _ in range(3):  # again when the file was replaced between opening and locking it
            try:
                candidate = open(path, "a+", encoding="utf-8")
            except OSError:
                break
            if not _try_lock(candidate):
                candidate.seek(0)
                other = _parse(candidate.read())
                candidate.close()
                who = (f"dcediff {other.get('command', '?')}, process {other.get('pid', '?')} on "
                       f"{other.get('host', '?')}, since {other.get('started', '?')}") if other else "being claimed"
                raise InputError(f"output folder {out} is being written by another DCEDiff run ({who}); expected "
                                 "one run per output folder: wait for it, or choose another --out")
            try:
                same = os.stat(path).st_ino == os.fstat(candidate.fileno()).st_ino
            except OSError:
                same = False
            if not same:  # unlinked by its last holder after we opened it: lock the file now at that path
                candidate.close()
                continue
            candidate.seek(0)
            candidate.truncate()
            json.dump({"pid": os.getpid(), "machine": machine_tag(), "host": socket.gethostname(),
                       "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S")}, candidate)
            candidate.flush()
            handle = candidate
            break
        yield path if handle is not None else None
    finally:
        if handle is not None:
            with contextlib.suppress(OSError):
                path.unlink()  # while still locked: a waiting run then opens a new file, not this one
            handle.close()
        for folder in reversed(made):  # made for the lock only, and the run left it empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def _parse(text: str) -> Optional[dict]:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
