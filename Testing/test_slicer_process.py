"""The Slicer module's process runner (DCEDiff/DCEDiffSlicerLib/process_runner.py): command line, progress parsing,
and real runs of the engine command in a subprocess (tiny random model, a few steps), including a cancel."""

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import process_runner as pr  # noqa: E402
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR  # noqa: E402
from DCEDiffLib.progress import ProgressEvent, format_progress_line  # noqa: E402
from random_model import save_copy_allowing_missing_pd, save_random_model  # noqa: E402

CASE = SAMPLE_CASE_DIR
needs_case = pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")
INPUTS = {k: str(CASE / f"{k}.nii.gz") for k in ("t2w", "pd", "adc", "t1pre")}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small random-weight model (tiny preset)."""
    return save_random_model(tmp_path_factory.mktemp("model"))


def test_command_line_has_every_option_in_the_engines_syntax(tmp_path):
    request = pr.SynthesisRequest(inputs={**INPUTS, "dce_early": "/e.nrrd", "dce_late": "/l.nrrd",
                                          "dce_baseline": "/b.nrrd"},
                                  out_dir=str(tmp_path / "out"), model="/m/x.safetensors", sampler="ddpm",
                                  steps=1000, samples=4, seed=9, device="cpu", center_lps=(1.5, -2, 30.25))
    cmd = pr.build_synthesize_command("/opt/Slicer/bin/PythonSlicer", request)
    assert cmd[:4] == ["/opt/Slicer/bin/PythonSlicer", "-m", "DCEDiffLib.cli", "synthesize"]
    pairs = {cmd[i]: cmd[i + 1] for i in range(4, len(cmd) - 1) if cmd[i].startswith("--")
             and not cmd[i + 1].startswith("--")}
    assert pairs == {"--t2w": INPUTS["t2w"], "--pd": INPUTS["pd"], "--adc": INPUTS["adc"], "--t1pre": INPUTS["t1pre"],
                     "--dce-early": "/e.nrrd", "--dce-late": "/l.nrrd", "--dce-baseline": "/b.nrrd",
                     "--model": "/m/x.safetensors",
                     "--sampler": "ddpm", "--steps": "1000", "--samples": "4", "--seed": "9", "--device": "cpu",
                     "--out": str(tmp_path / "out")}
    assert "--center=1.5,-2,30.25" in cmd
    assert "--progress-lines" in cmd and "--t2w-grid" in cmd
    # the engine's own parser accepts exactly this command line
    from DCEDiffLib.cli import build_parser

    args = build_parser().parse_args(cmd[3:])
    assert args.sampler == "ddpm" and args.steps == 1000 and args.center == "1.5,-2,30.25" and args.progress_lines
    minimal = pr.build_synthesize_command("py", pr.SynthesisRequest(inputs=INPUTS, out_dir="o"))
    assert "--model" not in minimal and not any(t.startswith("--center") for t in minimal)
    assert "--dce-early" not in minimal
    # no steps chosen: the engine runs the model's own count (its card's), so none is passed
    assert "--steps" not in minimal and build_parser().parse_args(minimal[3:]).steps is None


@pytest.mark.parametrize("center", [(-12.5, 30, 4), (0, -1, -2), (-0.5, 0, 0)])
def test_a_centre_with_a_negative_first_coordinate_reaches_the_engine(center):
    """A point right of the midline has a negative L coordinate; as two tokens argparse would read '-12.5,30,4' as
    an option ("expected one argument") and the run would fail."""
    from DCEDiffLib.cli import build_parser

    cmd = pr.build_synthesize_command("py", pr.SynthesisRequest(inputs=INPUTS, out_dir="o", center_lps=center))
    args = build_parser().parse_args(cmd[3:])
    assert tuple(float(v) for v in args.center.split(",")) == tuple(float(v) for v in center)


@pytest.mark.parametrize("change, message", [
    ({"inputs": {k: v for k, v in INPUTS.items() if k != "adc"}}, "ADC: no input volume selected"),
    ({"inputs": {**INPUTS, "dce_early": "e.nrrd"}}, "acquired DCE: select both"),
    ({"inputs": {**INPUTS, "dce_baseline": "b.nrrd"}}, "pre-contrast frame: selected without the acquired"),
    ({"sampler": "euler"}, "sampler 'euler'"),
    ({"steps": 0}, "steps 0"),
    ({"samples": 0}, "samples 0"),
    ({"device": "mps"}, "device 'mps'"),
    ({"center_lps": (1, 2)}, "centre"),
])
def test_bad_requests_are_refused_with_a_message_naming_the_input(change, message):
    request = pr.SynthesisRequest(**{"inputs": INPUTS, "out_dir": "o", **change})
    with pytest.raises(ValueError, match=message):
        pr.build_synthesize_command("py", request)


def test_progress_and_error_lines_are_parsed_and_described():
    event = ProgressEvent("sample", 5, 20, 0.5, 10.0, 75.0, "")
    runner = pr.ProcessRunner(["unused"])
    seen = []
    runner.on_progress = seen.append
    for line in ["some log line", format_progress_line(event), "DCEDIFF_PROGRESS {broken json",
                 "dcediff synthesize: error: PD: /x.nrrd does not exist; expected a DICOM folder"]:
        runner._handle(line)
    assert seen == [event]
    assert runner._error == "PD: /x.nrrd does not exist; expected a DICOM folder"
    assert "DCEDIFF_PROGRESS {broken json" in runner._tail
    assert pr.describe_event(event) == "Sampling: step 5 of 20 — 1 min 15 s left"
    assert pr.describe_event(ProgressEvent("register", 0, 1, 0.0, 0.1, None)) == "Registration"
    assert pr.describe_event(ProgressEvent("write", 1, 1, 1.0, 3.0, 0.0)) == "Writing results — 0 s left"
    assert pr.format_seconds(3725) == "1 h 02 min"
    assert pr.error_from_line("dcediff synthesize: cancelled: by the user") == "by the user"
    assert pr.error_from_line("DCEDIFF_PROGRESS {}") is None


def _command(tiny_model, out, steps, *extra_inputs):
    inputs = dict(INPUTS)
    for key in extra_inputs:
        inputs[key] = str(CASE / f"{key}.nii.gz")
    request = pr.SynthesisRequest(inputs=inputs, out_dir=str(out), model=str(tiny_model), steps=steps,
                                  samples=2, seed=3, device="cpu")
    return pr.build_synthesize_command(sys.executable, request)


@needs_case
@pytest.mark.slow  # real registrations + 3 sampling steps in a fresh Python with torch: minutes on a busy 2-core CPU
def test_real_engine_run_reports_progress_and_writes_results_on_the_t2w_grid(tiny_model, tmp_path):
    out = tmp_path / "out"
    # no acquired DCE: two registrations fewer (residuals and metrics are covered by test_pipeline.py and the
    # module's DCEDiffTest); the run is still the full command: load, registration, sampling, writing
    runner = pr.ProcessRunner(_command(tiny_model, out, 3), cwd=str(pr.engine_root()))
    result = runner.start().wait(timeout=800)
    last = runner.events[-1].describe() if runner.events else "no progress event"
    assert not result.cancelled, f"timed out after 800 s (CPU starved?); last progress: {last}"
    assert result.ok, result.error
    stages = [e.stage for e in runner.events]
    assert stages[0] == "load" and "register" in stages and stages[-1] == "write"
    sample_steps = [e.step for e in runner.events if e.stage == "sample"]
    assert sample_steps and max(sample_steps) >= 3  # a progress event per refinement step
    fractions = [e.fraction for e in runner.events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any(e.remaining is not None for e in runner.events)
    for name in ("synthetic_early", "synthetic_late", "uncertainty_early", "uncertainty_late"):
        assert (out / "t2w_grid" / f"{name}.nii.gz").is_file(), name
    assert (out / "synthesis.json").is_file() and not (out / "metrics.json").exists()


def test_engine_error_comes_back_as_one_message_naming_the_input(tmp_path):
    missing = tmp_path / "no_such_model.safetensors"
    request = pr.SynthesisRequest(inputs=INPUTS, out_dir=str(tmp_path / "out"), model=str(missing))
    runner = pr.ProcessRunner(pr.build_synthesize_command(sys.executable, request), cwd=str(pr.engine_root()))
    result = runner.start().wait(timeout=300)
    assert result.returncode == pr.EXIT_ERROR and not result.cancelled and not result.ok
    assert str(missing) in result.error and "missing" in result.error
    assert [e.stage for e in runner.events] == ["load"]
    assert not (tmp_path / "out").exists()


# Test double: stands in for the PythonSlicer launcher, which starts the real Python as a child process (so that
# killing only the direct child would leave the engine running).
LAUNCHER_STAND_IN = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (killed, not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@needs_case
@pytest.mark.skipif(os.name == "nt", reason="uses /proc and POSIX signals to check the tree kill")
def test_cancel_kills_the_whole_process_tree_and_leaves_no_output(tiny_model, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", LAUNCHER_STAND_IN] + _command(tiny_model, out, 400)
    runner = pr.ProcessRunner(cmd, cwd=str(pr.engine_root())).start()
    deadline = time.monotonic() + 300
    while not any(e.stage == "register" for e in runner.events):  # the engine is at work (torch loaded)
        assert runner.poll() is None, f"the run ended early: {runner.result}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    engine_pids = pr.descendant_pids(runner.process.pid)
    assert engine_pids, "the launcher stand-in should have a child (the engine)"
    runner.cancel()
    result = runner.wait(timeout=30)
    assert result.cancelled and not result.ok
    time.sleep(0.2)
    assert not any(_alive(pid) for pid in engine_pids), "the engine survived the cancel"
    assert not out.exists()
    assert not list(tmp_path.glob(".out*")), "a partial output folder was left behind"


# Test double: stands in for slicer.util.launchConsoleProcess (Slicer >= 5.10), which starts the child with Slicer's
# *startup* environment plus ``updateEnvironment`` and opens the pipe as text in the locale's encoding
# (universal_newlines=True). Here the "startup environment" has an ASCII-only stdout encoding, as a Windows code
# page would, and the pipe is decoded as ASCII, so that any non-ASCII byte would be a decode error.
def launch_console_process_stand_in(cmd, cwd=None, env_update=None):
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONIOENCODING"] = "ascii"
    env.update(env_update or {})
    return subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, encoding="ascii")


CHATTY_CHILD = r"""
import sys
print("step 1 → step 2", flush=True)               # non-ASCII through sys.stdout (crashes on an ASCII stdout)
sys.stdout.buffer.write(b"bad byte \xff here\n")   # not UTF-8 at all
sys.stdout.flush()
for i in range(20000):                              # ~500 KB: far more than a pipe holds
    print(f"line {i:05d} of the engine log")
print("dcediff synthesize: error: T2W: caf\u00e9 is not a volume")
sys.exit(2)
"""


def test_engine_output_is_utf8_unbuffered_and_undecodable_bytes_do_not_stop_the_reader():
    runner = pr.ProcessRunner([sys.executable, "-c", CHATTY_CHILD], launch=launch_console_process_stand_in,
                              tail_lines=20000 + 10)
    for key, value in pr.ENGINE_ENVIRONMENT.items():
        assert runner.env_update[key] == value
    started = time.monotonic()
    result = runner.start().wait(timeout=60)
    assert not result.timed_out and time.monotonic() - started < 60, "the child blocked on a full pipe"
    assert result.returncode == 2
    assert result.log_tail[0] == "step 1 → step 2"
    assert result.log_tail[1].startswith("bad byte ") and result.log_tail[1].endswith(" here")
    assert sum(line.startswith("line ") for line in result.log_tail) == 20000
    assert result.error == "T2W: café is not a volume"


def test_wait_times_out_kills_the_engine_and_says_so():
    runner = pr.ProcessRunner([sys.executable, "-c", "import time; print('working', flush=True); time.sleep(120)"])
    started = time.monotonic()
    result = runner.start().wait(timeout=1.5)
    assert time.monotonic() - started < 15
    assert result.timed_out and not result.ok and not result.cancelled
    assert "did not finish within 2 s" in result.error
    assert runner.process.poll() is not None


ESCAPING_GRANDCHILD = r"""
import os, sys, time
if os.fork() == 0:          # a grandchild that leaves the tree (re-parented) and keeps the pipe open
    os.setsid()
    print(f"grandchild {os.getpid()}", flush=True)
    time.sleep(60)
    os._exit(0)
time.sleep(0.5)
print("engine done", flush=True)
sys.exit(0)
"""


@pytest.mark.skipif(os.name == "nt", reason="os.fork")
def test_run_ends_even_if_a_stray_process_keeps_the_output_pipe_open():
    runner = pr.ProcessRunner([sys.executable, "-c", ESCAPING_GRANDCHILD], kill_grace=1.0)
    started = time.monotonic()
    try:
        result = runner.start().wait(timeout=50)
        assert time.monotonic() - started < 20, "waited for the stray process instead of the engine"
        assert result.ok and "engine done" in result.log_tail
    finally:
        kill_reported_grandchildren(runner)


def kill_reported_grandchildren(runner) -> None:
    """Kill the re-parented grandchildren a stand-in engine reported ("grandchild PID" in its output): they left the
    process tree, so no tree kill reaches them."""
    for line in runner._tail:
        if line.startswith("grandchild "):
            try:
                os.kill(int(line.split()[1]), 9)
            except OSError:
                pass

def test_pd_may_be_left_out_only_when_the_model_allows_it(tmp_path):
    from DCEDiffSlicerLib import model_cards

    without_pd = {k: v for k, v in INPUTS.items() if k != "pd"}
    with pytest.raises(ValueError, match=r"PD: no input volume selected \(the model needs it; .*augment.drop_pd"):
        pr.build_synthesize_command("py", pr.SynthesisRequest(inputs=without_pd, out_dir="o"))
    cmd = pr.build_synthesize_command("py", pr.SynthesisRequest(inputs=without_pd, out_dir="o",
                                                                missing_allowed=("pd",)))
    assert "--pd" not in cmd and "--t2w" in cmd and "--adc" in cmd and "--t1pre" in cmd
    with pytest.raises(ValueError, match="ADC: no input volume selected"):  # only PD can be allowed to be missing
        pr.build_synthesize_command("py", pr.SynthesisRequest(inputs={**INPUTS, "adc": ""}, out_dir="o",
                                                              missing_allowed=("pd", "adc")))
    # the model card decides (the engine's rule, read without torch)
    model = save_random_model(tmp_path)
    assert model_cards.optional_inputs(model) == ()
    assert model_cards.optional_inputs(save_copy_allowing_missing_pd(model)) == ("pd",)
    assert model_cards.optional_inputs(tmp_path / "absent.safetensors") == ()


def test_the_model_card_line_shows_the_test_metrics_with_metrics_md_digits(tmp_path):
    """The line under the model field writes a card's test PSNR / SSIM as metrics.md, report.png and the metrics
    table do (the engine's ``format_value``): 27.12 dB / 0.835, not 27.1 / 0.83; '∞' for the JSON "inf"."""
    import json

    from DCEDiffLib.evaluation.tables import format_value
    from DCEDiffSlicerLib import model_cards

    weights = tmp_path / "m.safetensors"
    card = {"training": {"data": "phantoms"},
            "metrics": {"test_set": {"samples_1": {"early": {"psnr_db": 27.123456, "ssim": 0.8345121},
                                                   "late": {"psnr_db": "inf"}}}}}
    weights.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    assert model_cards.summary(weights) == (f"m; trained on phantoms; test set: early PSNR "
                                            f"{format_value(27.123456, 'psnr')} dB, SSIM 0.835; late PSNR ∞ dB")
    assert "27.12 dB" in model_cards.summary(weights)
