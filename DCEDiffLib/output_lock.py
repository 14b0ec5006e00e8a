"""One DCEDiff run at a time per output folder, and which process wrote a temporary file.

Two runs started on the same ``--out`` (a script run twice, two terminals, a job array) used to interfere: the
second synthesis silently replaced the first's finished result, a refused second ``phantom`` run deleted the first
one's cases in its clean-up, and two ``train`` runs on one run folder merged their log rows. Each command that
writes an output folder now claims it first with a lock file beside it (``.<name>.dcediff-lock``), created
exclusively; a second run is refused at once, naming the first. A lock whose process is gone (SIGKILL, a reboot)
is taken over when that process ran on this machine, in this process namespace; another machine's or container's
lock cannot be checked, so it is left for the user to remove (the message names the file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator, Optional

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
    machine or namespace, another user's process) counts as running: its files are left alone."""
    if tag is not None and tag != machine_tag():
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def lock_path(out: os.PathLike) -> Path:
    """The lock file of output folder ``out``: beside it, since the folder itself is replaced whole."""
    final = Path(os.path.abspath(out))
    return final.parent / f".{final.name}.dcediff-lock"


@contextlib.contextmanager
def claim_output(out: os.PathLike, command: str) -> Iterator[Optional[Path]]:
    """Hold the lock of output folder ``out`` for ``command`` while the block runs; :class:`InputError` when
    another live run holds it. Where no lock file can be made (a parent that cannot be written), the block runs
    without one: the command then fails on that folder with its own, clearer message."""
    path = lock_path(out)
    record = {"pid": os.getpid(), "machine": machine_tag(), "host": socket.gethostname(), "command": command,
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    held = None
    for _ in range(2):  # a second try after taking over a stale lock
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _read(path)
            if other is not None and process_alive(int(other.get("pid", -1)), other.get("machine")):
                where = "" if other.get("machine") == machine_tag() else f" on {other.get('host', 'another machine')}"
                raise InputError(f"output folder {out} is being written by another DCEDiff run (dcediff "
                                 f"{other.get('command', '?')}, process {other.get('pid')}{where}, since "
                                 f"{other.get('started', '?')}); expected one run per output folder: wait for it, "
                                 f"or choose another --out. If no such run is going, delete {path}") from None
            with contextlib.suppress(OSError):
                path.unlink()  # its process is gone (or the file is unreadable): the lock is stale
            continue
        except OSError:
            break
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        held = path
        break
    try:
        yield held
    finally:
        if held is not None and (_read(held) or {}).get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                held.unlink()


def _read(path: Path) -> Optional[dict]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
