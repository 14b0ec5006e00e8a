"""Run the engine's ``synthesize`` command in a separate Python process, read its progress, stop it on cancel.

No Slicer import here: the command line, the parsing of its output and the runner are plain Python, so they are
tested with pytest outside Slicer (``Testing/test_slicer_process.py``). Inside Slicer the module passes
``slicer.util.launchConsoleProcess`` as the ``launch`` function (it starts ``PythonSlicer`` with Slicer's startup
environment); anywhere else :func:`default_launch` uses :class:`subprocess.Popen`.

Why a subprocess and not a thread: see ``docs/slicer.md``. In short: torch never runs in Slicer's GUI process (crashes
like Slicer#9275, VRAM released on exit), and cancel is a kill of the process tree, which takes effect at once,
whatever the engine is doing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from DCEDiffLib import defaults
from DCEDiffLib.progress import ProgressEvent, parse_progress_line

SAMPLERS = defaults.SAMPLERS
DEVICES = ("auto", "cpu", "cuda")
EXIT_OK, EXIT_ERROR, EXIT_CANCELLED = 0, 2, 3
REQUIRED_INPUTS = ("t2w", "pd", "adc", "t1pre")
OPTIONAL_INPUTS = ("dce_early", "dce_late", "dce_baseline")  # dce_baseline: only with the two frames
MODEL_OPTIONAL_INPUTS = ("pd",)  # required unless the model's card allows it (SynthesisRequest.missing_allowed)
INPUT_LABELS = {"t2w": "T2W", "pd": "PD", "adc": "ADC", "t1pre": "T1 pre-contrast",
                "dce_early": "acquired early DCE", "dce_late": "acquired late DCE",
                "dce_baseline": "acquired DCE pre-contrast frame"}
STAGE_LABELS = {"load": "Loading the model", "register": "Registration", "sample": "Sampling",
                "write": "Writing results"}
_ERROR_LINE = re.compile(r"^dcediff \w+: (error|cancelled): (.*)$")
# Set for every engine run, whatever launches it (launchConsoleProcess passes Slicer's startup environment, which
# has neither): unbuffered output, so progress lines arrive as they are printed; UTF-8 on the child's stdout/stderr,
# so a non-ASCII message ("→", a patient name) cannot crash the child on a Windows code page, and is what we decode.
# DCEDIFF_HOST: messages meant for a terminal (pip advice) are worded for the module instead.
ENGINE_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "PYTHONUTF8": "1",
                      "DCEDIFF_HOST": "slicer"}
KILL_GRACE_SECONDS = 10.0  # after a kill or the process's exit: how long to wait for the last output at most


@dataclasses.dataclass
class SynthesisRequest:
    """Everything one ``dcediff synthesize`` run needs. ``inputs`` maps modality key → file path
    (``t2w, pd, adc, t1pre`` required; ``dce_early`` and ``dce_late`` together or not at all; ``dce_baseline``, the
    acquired DCE's own pre-contrast frame, only with them)."""

    inputs: Dict[str, str]
    out_dir: str
    model: Optional[str] = None            # None or "": the shipped model
    sampler: str = defaults.DEFAULT_SAMPLER
    steps: Optional[int] = None           # None: the model's own count (its card; the engine decides)
    samples: int = defaults.DEFAULT_SAMPLES
    seed: int = 0
    device: str = "auto"
    center_lps: Optional[Sequence[float]] = None
    t2w_grid: bool = True
    missing_allowed: Sequence[str] = ()    # inputs the model can do without (model_cards.optional_inputs): pd

    def validate(self) -> None:
        """Raise ValueError naming the bad option or input."""
        for key in REQUIRED_INPUTS:
            if not self.inputs.get(key) and not (key in MODEL_OPTIONAL_INPUTS and key in self.missing_allowed):
                raise ValueError(missing_input_message(key))
        if bool(self.inputs.get("dce_early")) != bool(self.inputs.get("dce_late")):
            raise ValueError("acquired DCE: select both the early and the late acquired DCE, or neither")
        if self.inputs.get("dce_baseline") and not self.inputs.get("dce_early"):
            raise ValueError(BASELINE_WITHOUT_DCE)
        unknown = set(self.inputs) - set(REQUIRED_INPUTS) - set(OPTIONAL_INPUTS)
        if unknown:
            raise ValueError(f"unknown input(s) {sorted(unknown)}; expected {REQUIRED_INPUTS + OPTIONAL_INPUTS}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler {self.sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r}: expected one of {', '.join(DEVICES)}")
        if self.steps is not None and int(self.steps) < 1:
            raise ValueError(f"steps {self.steps}: expected 1 or more")
        if int(self.samples) < 1:
            raise ValueError(f"samples {self.samples}: expected 1 or more")
        if self.center_lps is not None and len(self.center_lps) != 3:
            raise ValueError(f"centre {self.center_lps}: expected three coordinates (LPS mm)")


BASELINE_WITHOUT_DCE = ("acquired DCE pre-contrast frame: selected without the acquired early and late DCE; it only "
                        "puts them on the T1-pre's intensity scale")


def missing_input_message(key: str) -> str:
    """The error for an input not selected; for PD it also says which model could do without it."""
    text = f"{INPUT_LABELS[key]}: no input volume selected"
    if key in MODEL_OPTIONAL_INPUTS:
        text += f" ({model_needs_input(key)})"
    return text


def same_volume_message(nodes: Dict[str, object]) -> Optional[str]:
    """The error for one volume selected for two roles (e.g. the T2W as PD: the engine would synthesize from a
    T2W where the model expects a PD, without a word), or None. ``nodes``: role key → selected node or None."""
    seen: Dict[object, str] = {}
    for key, node in nodes.items():
        if node is None:
            continue
        # the scene's node ID where there is one (two Python wrappers of one node are one volume), else the object
        identity = (node.GetID() if hasattr(node, "GetID") else None) or id(node)
        if key == "dce_baseline" and seen.get(identity) == "t1pre":
            continue  # the DCE's own pre-contrast frame may be the T1-pre itself, not another role's volume
        if identity in seen:
            return (f"{INPUT_LABELS[seen[identity]]} and {INPUT_LABELS[key]}: the same volume is selected for both; "
                    "expected a different series for each")
        seen[identity] = key
    return None


def model_needs_input(key: str) -> str:
    """Why a model needs ``key`` (PD) and which model would not (the Apply error, *Fill from study*'s status)."""
    return (f"the model needs it; a model trained with augment.drop_{key}, whose card lists optional_inputs "
            f"['{key}'], can do without it")


def engine_root() -> Path:
    """The folder that holds ``DCEDiffLib/``: next to this module's folder once installed
    (``qt-scripted-modules/``), the repository root in a source checkout."""
    here = Path(__file__).resolve().parent.parent  # DCEDiff/ in the source tree, qt-scripted-modules/ installed
    for candidate in (here, here.parent):
        if (candidate / "DCEDiffLib" / "__init__.py").is_file():
            return candidate
    raise FileNotFoundError(f"DCEDiffLib not found next to {here}; reinstall the DCEDiff extension")


def build_synthesize_command(python: str, request: SynthesisRequest) -> List[str]:
    """The argument list of ``<python> -m DCEDiffLib.cli synthesize ... --progress-lines`` for ``request``.

    Run it with the working directory :func:`engine_root` (``-m`` puts it on ``sys.path``)."""
    request.validate()
    cmd = [str(python), "-m", "DCEDiffLib.cli", "synthesize"]
    for key in REQUIRED_INPUTS + OPTIONAL_INPUTS:
        if request.inputs.get(key):
            cmd += [f"--{key.replace('_', '-')}", str(request.inputs[key])]
    if request.model:
        cmd += ["--model", str(request.model)]
    cmd += ["--sampler", request.sampler]
    if request.steps is not None:
        cmd += ["--steps", str(int(request.steps))]
    cmd += ["--samples", str(int(request.samples)), "--seed", str(int(request.seed)), "--device", request.device]
    if request.center_lps is not None:
        # one token: argparse would take a leading minus sign (any centre right of the midline) for an option
        cmd.append("--center=" + ",".join(f"{float(v):.6g}" for v in request.center_lps))
    if request.t2w_grid:
        cmd.append("--t2w-grid")
    cmd += ["--progress-lines", "--out", str(request.out_dir)]
    return cmd


def describe_event(event: ProgressEvent) -> str:
    """Progress-bar text, e.g. 'Sampling: step 5 of 20 — 12 s left'."""
    label = STAGE_LABELS.get(event.stage, event.stage.capitalize())
    text = f"{label}: step {event.step} of {event.total}" if event.total > 1 else label
    if event.remaining is not None:
        text += f" — {format_seconds(event.remaining)} left"
    return text


def format_seconds(seconds: float) -> str:
    """'45 s', '3 min 05 s', '1 h 02 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


def error_from_line(line: str) -> Optional[str]:
    """The message of a ``dcediff <command>: error: <message>`` line, None for any other line."""
    match = _ERROR_LINE.match(line.strip())
    return match.group(2) if match else None


@dataclasses.dataclass
class RunResult:
    """How a run ended: ``returncode``, whether it was ``cancelled``, the engine's ``error`` message if any,
    and the last lines of its output (for the log)."""

    returncode: Optional[int]
    cancelled: bool
    error: Optional[str]
    log_tail: List[str]
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == EXIT_OK and not self.cancelled


def default_launch(cmd: Sequence[str], cwd: Optional[str] = None,
                   env_update: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """Start ``cmd`` with stdout and stderr merged into one text pipe (what ``launchConsoleProcess`` does)."""
    env = dict(os.environ)
    env.update(ENGINE_ENVIRONMENT)
    env.update(env_update or {})
    kwargs = {}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
    return subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs)


def descendant_pids(pid: int) -> List[int]:
    """Every live descendant of ``pid`` (children first-level first). psutil when present; else /proc (Linux)
    or ``ps`` (macOS)."""
    try:
        import psutil

        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    except ImportError:
        pass
    parents: Dict[int, List[int]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text(encoding="utf-8")
            except OSError:
                continue
            # pid (comm) state ppid ...; comm may contain spaces and parentheses
            fields = stat[stat.rfind(")") + 2:].split()
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    elif shutil.which("ps"):
        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        for row in out.splitlines():
            child, parent = (int(v) for v in row.split())
            parents.setdefault(parent, []).append(child)
    result, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(0), []):
            result.append(child)
            todo.append(child)
    return result


def kill_process_tree(pid: int) -> List[int]:
    """Kill ``pid`` and every process below it; returns the processes killed. ``Popen.kill()`` alone would stop
    only the ``PythonSlicer`` launcher and leave the real Python (and torch) running."""
    targets = [pid] + descendant_pids(pid)  # collect first: children of a killed parent get re-parented
    if os.name == "nt":
        # no console window: Slicer is a GUI program, and a console program it starts gets a new, visible console
        # (the window default_launch and launchConsoleProcess hide for the engine) that flashed on every cancel
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True,
                       creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000))
        return targets
    for target in targets:
        try:
            os.kill(target, signal.SIGSTOP)  # freeze the tree so that nothing forks while we kill it
        except OSError:
            pass
    for target in reversed(targets):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    return targets


def release_output_lock(cmd: Sequence[str], killed: Sequence[int]) -> None:
    """Remove the output-folder lock a killed engine held (DCEDiffLib/output_lock.py): a process killed at once
    cannot remove its own, and it would stay beside the output folder."""
    if "--out" not in cmd:
        return
    from DCEDiffLib.output_lock import lock_path

    path = lock_path(cmd[list(cmd).index("--out") + 1])
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") in set(killed):
            path.unlink()
    except (OSError, ValueError, AttributeError, IndexError):
        pass


class ProcessRunner:
    """One engine run in a child process, read without blocking.

    ``start()`` launches; a reader thread queues the output lines. ``poll()`` (from a GUI timer) hands the new
    progress events to ``on_progress`` and log lines to ``on_log``, and returns a :class:`RunResult` once the
    process has ended, else None. ``wait()`` is the blocking mode (batch, tests). ``cancel()`` kills the tree.
    """

    def __init__(self, cmd: Sequence[str], cwd: Optional[str] = None, env_update: Optional[Dict[str, str]] = None,
                 launch: Callable = default_launch,
                 on_progress: Optional[Callable[[ProgressEvent], None]] = None,
                 on_log: Optional[Callable[[str], None]] = None, tail_lines: int = 40,
                 kill_grace: float = KILL_GRACE_SECONDS):
        self.cmd = list(cmd)
        self.cwd = cwd
        self.env_update = {**ENGINE_ENVIRONMENT, **(env_update or {})}
        self.kill_grace = kill_grace
        self._ended_at: Optional[float] = None  # when the process was first seen ended (or killed)
        self._killed_at: Optional[float] = None  # when cancel() killed a running tree
        self._timed_out: Optional[float] = None
        self._launch = launch
        self.on_progress = on_progress
        self.on_log = on_log
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._tail: List[str] = []
        self._tail_lines = tail_lines
        self._error: Optional[str] = None
        self._cancelled = False
        self._reader_done = False
        self.process = None
        self.result: Optional[RunResult] = None
        self.events: List[ProgressEvent] = []

    def start(self) -> "ProcessRunner":
        self.process = self._launch(self.cmd, cwd=self.cwd, env_update=self.env_update)
        threading.Thread(target=self._read, daemon=True, name="DCEDiff-output-reader").start()
        return self

    def _read(self) -> None:
        """Queue every output line until end of file. Reads bytes and decodes them as UTF-8 (bad bytes replaced):
        ``launchConsoleProcess`` opens a text pipe in the locale's encoding, where one undecodable byte would raise
        and end the reading, and a child whose pipe nobody drains blocks once the pipe is full. Whatever happens,
        the pipe is drained to the end."""
        stream = self.process.stdout
        raw = getattr(stream, "buffer", None)
        try:
            if raw is not None or isinstance(stream.readline(0), bytes):
                source = raw if raw is not None else stream
                for data in iter(source.readline, b""):
                    self._lines.put(data.decode("utf-8", errors="replace").rstrip("\r\n"))
            else:  # a text stream without a byte buffer: decode errors are per line, reading goes on
                while True:
                    try:
                        line = stream.readline()
                    except UnicodeDecodeError as exc:
                        self._lines.put(f"[DCEDiff: undecodable engine output skipped: {exc}]")
                        continue
                    if not line:
                        break
                    self._lines.put(line.rstrip("\r\n"))
        except Exception as exc:  # noqa: BLE001  keep draining, never leave the child blocked on a full pipe
            self._lines.put(f"[DCEDiff: reading the engine output failed: {exc!r}]")
            self._drain(stream)
        finally:
            self._lines.put(None)

    @staticmethod
    def _drain(stream) -> None:
        try:
            fd = stream.fileno()
            while os.read(fd, 65536):
                pass
        except Exception:  # noqa: BLE001
            pass

    def poll(self) -> Optional[RunResult]:
        """Handle the lines read so far; a :class:`RunResult` once the process ended and its output is drained."""
        if self.result is not None:
            return self.result
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._reader_done = True
                break
            self._handle(line)
        ended = self.process.poll() is not None
        if ended and self._ended_at is None:
            self._ended_at = time.monotonic()
        if not ended and self._killed_at is not None and time.monotonic() - self._killed_at > self.kill_grace:
            return self._give_up()  # killed, but the tree will not die: the GUI's timer polls, nothing else ends it
        # The output ends when the reader reaches end of file; if a stray grandchild keeps the pipe open after the
        # engine has ended (or was killed), stop waiting for it after ``kill_grace`` seconds.
        drained = self._reader_done or (self._ended_at is not None
                                        and time.monotonic() - self._ended_at > self.kill_grace)
        if ended and drained:
            code = self.process.returncode
            if self._timed_out is not None:
                error = (f"the DCEDiff engine did not finish within {format_seconds(self._timed_out)} and was "
                         "stopped; run it with fewer steps or samples, on a GPU, or allow more time")
                self.result = RunResult(code, False, error, list(self._tail), timed_out=True)
                return self.result
            cancelled = self._cancelled or code == EXIT_CANCELLED
            error = None if cancelled or code == EXIT_OK else (
                self._error or f"the DCEDiff engine stopped with exit code {code}; last output:\n"
                + "\n".join(self._tail[-10:]))
            self.result = RunResult(code, cancelled, error, list(self._tail))
        return self.result

    def _handle(self, line: str) -> None:
        event = parse_progress_line(line)
        if event is not None:
            self.events.append(event)
            if self.on_progress is not None:
                self.on_progress(event)
            return
        self._tail = (self._tail + [line])[-self._tail_lines:]
        message = error_from_line(line)
        if message is not None:
            self._error = message
        if self.on_log is not None:
            self.on_log(line)

    def wait(self, timeout: Optional[float] = None, interval: float = 0.1,
             should_cancel: Optional[Callable[[], bool]] = None) -> RunResult:
        """Block until the run ends. After ``timeout`` seconds the process tree is killed and the result is a
        time-out error (``timed_out``); after a cancel (``should_cancel()`` true) it is cancelled. Either way this
        returns within ``kill_grace`` seconds of the kill, even if the process or a stray child does not go away."""
        started = time.monotonic()
        killed_at: Optional[float] = None
        while True:
            result = self.poll()
            if result is not None:
                return result
            now = time.monotonic()
            if killed_at is None:
                if timeout is not None and now - started > timeout:
                    self._timed_out = float(timeout)
                    self.cancel()
                    killed_at = now
                elif should_cancel is not None and should_cancel():
                    self.cancel()
                    killed_at = now
            elif now - killed_at > self.kill_grace:  # the tree would not die: give up waiting for it
                return self._give_up()
            time.sleep(interval)

    def _give_up(self) -> RunResult:
        """The end of a run whose process tree was killed but does not go away: cancelled, or the time-out error."""
        timed_out = self._timed_out is not None
        self.result = RunResult(self.process.poll(), not timed_out, None if not timed_out else
                                f"the DCEDiff engine did not finish within {format_seconds(self._timed_out)} "
                                "and could not be stopped", list(self._tail), timed_out=timed_out)
        return self.result

    def cancel(self) -> None:
        """Kill the whole process tree now; the run ends as cancelled."""
        self._cancelled = True
        if self.process is not None and self.process.poll() is None:
            release_output_lock(self.cmd, kill_process_tree(self.process.pid))
            if self._killed_at is None:
                self._killed_at = time.monotonic()
        if self._ended_at is None:
            self._ended_at = time.monotonic()  # start the grace period for the last output

    @property
    def running(self) -> bool:
        return self.process is not None and self.result is None


def python_slicer_executable(slicer_home: Optional[str] = None) -> str:
    """``PythonSlicer`` of the running Slicer (on PATH inside Slicer; else under ``<slicer_home>/bin``);
    outside Slicer, the current interpreter."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    if slicer_home:
        for name in ("PythonSlicer.exe", "PythonSlicer"):
            candidate = Path(slicer_home) / "bin" / name
            if candidate.is_file():
                return str(candidate)
    return sys.executable
