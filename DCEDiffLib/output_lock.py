"""One DCEDiff run at a time per output folder, and which process wrote a temporary file.

Two runs started on the same ``--out`` (a script run twice, two terminals, a job array) used to interfere: the
second synthesis silently replaced the first's finished result, a refused second ``phantom`` run deleted the first
one's cases in its clean-up, and two ``train`` runs on one run folder merged their log rows. Each command that
writes an output folder now claims it first: an operating-system lock (``lockf``; on Windows ``msvcrt.locking``)
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
    name = final.name if len(final.name) <= 150 else \
        f"{final.name[:100]}-{hashlib.sha1(final.name.encode()).hexdigest()[:12]}"  # a file name holds 255 bytes
    return final.parent / f".{name}.dcediff-lock"


class LockingUnsupported(Exception):
    """The file system does not take locks (Lustre without flock, NFS without a lock daemon)."""


def _try_lock(handle) -> bool:
    """Take the system lock of an open file without waiting; False when another process holds it. A POSIX record
    lock (``lockf``), not ``flock``: forked children (worker pools, data loaders) do not inherit it, so a main process
    killed alone (the OOM killer) does not leave its workers holding the folder."""
    import errno

    try:
        if os.name == "nt":
            import msvcrt

            handle.seek(1 << 30)  # a byte far beyond the content, which a refused run still reads
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            handle.seek(0)
            return True
        import fcntl

        fcntl.lockf(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, getattr(errno, "EDEADLK", -1)) or \
                os.name == "nt":
            return False
        raise LockingUnsupported(str(exc)) from exc


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
    another running process holds it, or when its lock file is in the way (a folder, another user's file). A missing
    parent folder is made for the lock (and removed again if the run left it empty). Only where the parent folder
    cannot be made or written, or the file system takes no locks, does the block run without one: the command then
    fails on that folder with its own, clearer message, or runs as before locks."""
    from DCEDiffLib.atomic import check_writable_location

    path = lock_path(out)
    made = _missing_parents(path.parent)
    handle = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            check_writable_location(path.parent, f"output folder {out}")
        except (OSError, InputError):
            made = []
            yield None  # the command says what is wrong with the folder
            return
        for _ in range(100):  # again only when the file was replaced between opening and locking it
            try:
                candidate = open(path, "a+", encoding="utf-8", errors="replace")
            except OSError as exc:
                raise InputError(f"output folder {out}: its lock file {path} cannot be opened ({exc.strerror or exc});"
                                 " expected a file this run may write: remove it if no DCEDiff run is going") from None
            try:
                taken = _try_lock(candidate)
            except LockingUnsupported as exc:
                candidate.close()
                from DCEDiffLib.progress import say

                say(f"dcediff: note: {path.parent} takes no file locks ({exc}): this run does not keep a second "
                    "run from the same output folder")
                yield None
                return
            if not taken:
                candidate.seek(0)
                other = _parse(candidate.read())
                candidate.close()
                who = (f"dcediff {other.get('command', '?')}, process {other.get('pid', '?')} on "
                       f"{other.get('host', '?')}, since {other.get('started', '?')}") if other else "being claimed"
                raise InputError(f"output folder {out} is being written by another DCEDiff run ({who}); expected "
                                 "one run per output folder: wait for it, or choose another --out")
            if not _same_file(path, candidate):  # unlinked by its last holder after we opened it: lock the new one
                candidate.close()
                continue
            candidate.seek(0)
            candidate.truncate()
            json.dump({"pid": os.getpid(), "machine": machine_tag(), "host": socket.gethostname(),
                       "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S")}, candidate)
            candidate.flush()
            handle = candidate
            break
        else:
            raise InputError(f"output folder {out}: its lock {path} changed hands too often to be claimed; expected "
                             "one run per output folder")
        yield path
    finally:
        if handle is not None:
            if _same_file(path, handle):  # never another run's file that took its place
                with contextlib.suppress(OSError):
                    path.unlink()  # while still locked: a waiting run then opens a new file, not this one
            handle.close()
        for folder in reversed(made):  # made for the lock only, and the run left it empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def _same_file(path: Path, handle) -> bool:
    try:
        here, held = os.stat(path), os.fstat(handle.fileno())
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def _parse(text: str) -> Optional[dict]:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
