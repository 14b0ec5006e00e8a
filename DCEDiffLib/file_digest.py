"""The hex digest of a file, read in blocks (model weights, FID weights): plain hashlib, no torch, so that the
Slicer module may use it in Slicer's own process."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Union


def file_digest(path: Union[str, Path], algorithm: str = "sha256", block_bytes: int = 1 << 20) -> str:
    """Hex digest of the file at ``path`` with the hashlib ``algorithm``, read ``block_bytes`` at a time (a large
    model never sits in memory whole). ``hashlib.file_digest`` would do it from Python 3.11 on; DCEDiff runs on 3.9."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(block_bytes), b""):
            digest.update(block)
    return digest.hexdigest()
