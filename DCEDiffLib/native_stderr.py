"""Keep what C libraries print to the process' stderr (file descriptor 2) off the console while a DICOM file is
decoded: OpenJPEG and libjpeg inside GDCM print "Invalid marker size", "Expected a SOC marker" and the like once per
file they fail on, which buries dcediff's own message. The text is captured, so the error can quote it."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator, List


@contextlib.contextmanager
def captured_native_stderr(enabled: bool = True) -> Iterator[List[str]]:
    """Redirect file descriptor 2 to a temporary file inside the block; yields a list that holds the captured lines
    (stripped, repeats dropped) once the block ends. Python's own ``sys.stderr`` is flushed first and unaffected
    afterwards. ``enabled=False`` (or no usable descriptor 2) does nothing."""
    captured: List[str] = []
    try:
        saved = os.dup(2) if enabled else None
    except OSError:
        saved = None
    if saved is None:
        yield captured
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(1 << 16).decode("utf-8", "replace")
            for line in (line.strip() for line in text.splitlines()):
                if line and line not in captured:
                    captured.append(line)
