"""The model loads while the series are read (DCEDiffLib/model_loading.py; docs/performance.md, "The model loaded
while the series are read"): the pipeline checks the model file first, without torch, then reads and registers the
series while a thread imports torch and loads the weights. Real files, a real (tiny) model, the real pipeline; the
load is wrapped only to see when it runs, or to make it fail the way a card whose architecture does not fit its
weights does."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

CENTRE_TIMEOUT_S = 60.0


def _inputs() -> dict:
    return {m: str(SAMPLE_CASE_DIR / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")}


def _centre() -> tuple:
    import SimpleITK as sitk

    from DCEDiffLib.working_grid import field_of_view_center

    return field_of_view_center(sitk.ReadImage(str(SAMPLE_CASE_DIR / "t2w.nii.gz")))


def test_the_series_are_read_while_the_model_loads(tmp_path, monkeypatch):
    """The weights' load waits until the series' preprocessing has begun: with the model loaded first, as before,
    the run would wait for a preprocessing that never starts (the load gives up after a minute)."""
    from random_model import save_random_model

    from DCEDiffLib import pipeline, preprocess
    from DCEDiffLib.diffusion import model_files

    model = save_random_model(tmp_path)
    reading = threading.Event()
    real_preprocess, real_load = preprocess.preprocess_case, model_files.load_model

    def preprocess_noting_its_start(*args, **kwargs):
        reading.set()
        return real_preprocess(*args, **kwargs)

    def load_once_the_series_are_read(*args, **kwargs):
        if not reading.wait(CENTRE_TIMEOUT_S):
            raise RuntimeError("the model was loaded before the series were read")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(preprocess, "preprocess_case", preprocess_noting_its_start)
    monkeypatch.setattr(model_files, "load_model", load_once_the_series_are_read)
    output = pipeline.synthesize_case(_inputs(), model_path=str(model), steps=1, register=False,
                                      center_lps=_centre())
    assert reading.is_set() and output.synthetic["early"].GetSize()[2] == 16


def test_a_model_that_cannot_load_stops_the_registrations_with_its_own_error(tmp_path, monkeypatch):
    """A load that fails in the thread (here as a card whose architecture does not fit its weights fails) ends the
    run with that ModelFileError, not with a cancel: the preprocessing is stopped at its next cancel check."""
    from random_model import save_random_model

    from DCEDiffLib import pipeline, preprocess
    from DCEDiffLib.diffusion import model_files
    from DCEDiffLib.errors import ModelFileError
    from DCEDiffLib.progress import check_cancel

    model = save_random_model(tmp_path)
    failed = threading.Event()
    stopped = []

    def load_failing(*args, **kwargs):
        failed.set()
        raise ModelFileError("model weights tiny.safetensors do not fit the card's architecture (test)")

    def preprocess_until_stopped(*args, should_cancel=None, **kwargs):
        failed.wait(CENTRE_TIMEOUT_S)
        for _ in range(200):  # the thread records its error just after the event: poll as the registrations do
            try:
                check_cancel(should_cancel)
            except Exception as error:
                stopped.append(type(error).__name__)
                raise
            threading.Event().wait(0.01)
        raise AssertionError("the preprocessing was not stopped")

    monkeypatch.setattr(model_files, "load_model", load_failing)
    monkeypatch.setattr(preprocess, "preprocess_case", preprocess_until_stopped)
    with pytest.raises(ModelFileError, match="do not fit the card's architecture"):
        pipeline.synthesize_case(_inputs(), model_path=str(model), steps=1, register=False, center_lps=_centre())
    assert stopped == ["CancelledError"]


def test_a_foreign_model_or_a_bad_word_is_refused_before_the_series_are_read(tmp_path, monkeypatch):
    """What needs no torch is still checked first: an altered weights file (its SHA-256 not the card's), an unknown
    device or precision word; the series are never read."""
    from random_model import save_random_model

    from DCEDiffLib import pipeline, preprocess
    from DCEDiffLib.errors import InputError, ModelFileError

    model = save_random_model(tmp_path)
    monkeypatch.setattr(preprocess, "preprocess_case", lambda *a, **k: pytest.fail("the series were read"))
    with pytest.raises(InputError, match="device 'gpu'"):
        pipeline.synthesize_case(_inputs(), model_path=str(model), device="gpu")
    with pytest.raises(InputError, match="precision 'fp16'"):
        pipeline.synthesize_case(_inputs(), model_path=str(model), precision="fp16")
    with open(model, "r+b") as handle:  # one byte of the weights changed
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    with pytest.raises(ModelFileError, match="SHA-256"):
        pipeline.synthesize_case(_inputs(), model_path=str(model))


def test_a_model_file_is_checked_without_importing_torch():
    """``precheck_model`` (what the pipeline runs before the series are read) imports no torch, so that torch's
    import can overlap the reading: checked in a fresh interpreter."""
    code = ("import sys; from DCEDiffLib.diffusion.model_files import precheck_model; "
            "from DCEDiffLib.model_registry import resolve_model; "
            "weights, card_path, card = precheck_model(resolve_model(None)); "
            "print(card['objective'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8",
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["residual", "False"]
