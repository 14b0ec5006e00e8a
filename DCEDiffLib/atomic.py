"""Atomic writes: a crash or cancel leaves either the complete result or nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final_path``; rename it into place only if the block succeeds.

    The temporary name keeps the final suffixes (``.nii.gz``), so writers that pick a format from the
    extension behave the same.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial" + suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_directory(final_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory; it becomes ``final_dir`` only if the block succeeds.

    Refuses an existing non-empty ``final_dir`` unless ``overwrite`` is true (then it is replaced whole).
    """
    from DCEDiffLib.errors import InputError

    final = Path(final_dir)
    if final.exists() and any(final.iterdir()) and not overwrite:
        raise InputError(f"output folder {final} already exists and is not empty; "
                         "choose a new folder or pass --overwrite")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    except OSError as exc:
        raise InputError(f"output folder {final}: cannot write there ({exc.strerror or exc}); expected a writable "
                         "folder path (its parent must be a folder you may write to)") from exc
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a small text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
