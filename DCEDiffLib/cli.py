"""The ``dcediff`` command: one subcommand per module in :mod:`DCEDiffLib.commands`.

Every subcommand module defines ``register(subparsers)``, which adds its parser and sets ``func`` (a callable
taking the parsed arguments and returning an exit code). Errors DCEDiff raises on purpose end with one line
``dcediff <command>: error: <message>`` on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from DCEDiffLib.cli_argv import join_negative_values
from DCEDiffLib.errors import CancelledError, DCEDiffError

# Order = order in --help.
COMMAND_MODULES = ("demo", "synthesize", "preprocess", "phantom", "dataset", "train", "evaluate", "benchmark")

EXIT_ERROR = 2
EXIT_CANCELLED = 3


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="dcediff",
        description="Synthesize early/late prostate DCE-MRI from T2W, PD, ADC and T1-pre (DCE-diff).")
    from DCEDiffLib import __version__

    parser.add_argument("--version", action="version", version=f"dcediff {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"DCEDiffLib.commands.{name}").register(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler, a cancelled Slicer run) raised as an interrupt, so that the atomic writers
    remove their partial files as they do on Ctrl-C."""


_MAIN_PID = os.getpid()


def _raise_terminated(signum, frame):
    if os.getpid() != _MAIN_PID:  # a forked worker (a process pool) inherited the handler: end as before, quietly
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


def _terminate_as_interrupt() -> None:
    global _MAIN_PID
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
        _MAIN_PID = os.getpid()
        signal.signal(signal.SIGTERM, _raise_terminated)


# what torch, oneDNN, ITK and onnxruntime (the gland model) say when an allocation fails (they raise RuntimeError
# or onnxruntime's own exceptions, not MemoryError)
_OUT_OF_MEMORY_TEXT = ("can't allocate memory", "could not create a primitive", "defaultcpuallocator",
                       "out of memory", "cannot allocate memory", "failed to allocate memory", "bad_alloc")
# what the dynamic loader says when a library cannot be mapped under a memory limit (ulimit -v, a batch system's
# h_vmem): importing torch then fails with an ImportError
_LIBRARY_MAP_TEXT = ("failed to map segment from shared object", "cannot allocate memory")


def resource_failure_words(exc: BaseException, out=None) -> Optional[str]:
    """One line for a failure of the machine rather than of DCEDiff (memory, a full or read-only disk), so that it
    ends as an error message instead of a traceback; None for anything else. ``out``: the command's output folder,
    named where the error itself names no file (a full disk hit inside a write names none)."""
    import errno

    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # onnxruntime's Fail/RuntimeException derive from Exception only
    native = isinstance(exc, RuntimeError) or type(exc).__module__.startswith("onnxruntime")
    if isinstance(exc, MemoryError) or (native and any(t in str(exc).lower() for t in _OUT_OF_MEMORY_TEXT)) or \
            (isinstance(exc, ImportError) and any(t in str(exc).lower() for t in _LIBRARY_MAP_TEXT)):
        said = text if len(text) <= 200 else "..." + text[-200:]  # an allocator says what failed at the end
        return (f"out of memory ({said}); expected about 2 GB free for a synthesis (more for training and "
                "evaluation): close other programs or use a machine with more memory")
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else f" (writing {out})" if out else ""
        if exc.errno == errno.ENOSPC:
            return f"no space left on the disk{where}: free some space and run it again"
        if exc.errno == errno.EROFS:
            return f"cannot write there{where}: {exc.strerror}; expected a folder you may write to"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied{where}: {exc.strerror}"
    if "os error 28" in str(exc).lower() or "no space left" in str(exc).lower():  # safetensors' Rust errors
        return f"no space left on the disk ({text[:200]}); free some space and run it again"
    return None


def finished_before_interrupt(args, started: float) -> Optional[str]:
    """Words for a Ctrl-C that came after the result folder was put in place (its record written during this run),
    which 'no partial output was kept' would hide: a script would rerun and be refused the existing folder."""
    from DCEDiffLib.atomic import OUTPUT_MANIFESTS

    out = getattr(args, "out", None)
    if not out:
        return None
    try:
        records = [Path(out) / name for name in OUTPUT_MANIFESTS if (Path(out) / name).is_file()]
        if records and max(r.stat().st_mtime for r in records) >= started:
            return f"interrupted after the result was complete: {out} holds it whole"
    except OSError:
        pass
    return None


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``dcediff`` console script."""
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    previous = signal.getsignal(signal.SIGTERM)
    started = time.time()
    _terminate_as_interrupt()
    try:
        out = getattr(args, "out", None)
        # one run per output folder; under torchrun the ranks are one run, and rank 0 holds its folder
        if not out or os.environ.get("RANK", "0") != "0":
            return int(args.func(args) or 0)
        from DCEDiffLib.output_lock import claim_output

        with claim_output(out, args.command):  # one run per output folder (output_lock.py)
            return int(args.func(args) or 0)
    except CancelledError as exc:
        print(f"dcediff {args.command}: cancelled: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except DCEDiffError as exc:
        print(f"dcediff {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - only a resource failure is turned into a message; the rest re-raised
        words = resource_failure_words(exc, getattr(args, "out", None))
        if words is None:  # not a resource failure: a bug, whose traceback is wanted
            raise
        print(f"dcediff {args.command}: error: {words}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        # A command that keeps something on Ctrl-C (train: its checkpoints; phantom: the finished cases) says
        # what through ``interrupted``; the others write atomically, so nothing partial is left.
        explain = getattr(args, "interrupted", None)
        message = explain(args) if explain else (finished_before_interrupt(args, started)
                                                 or "interrupted; no partial output was kept")
        print(f"dcediff {args.command}: {message}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        # None: a handler installed outside Python (an embedding host), which Python cannot put back
        if threading.current_thread() is threading.main_thread() and previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
