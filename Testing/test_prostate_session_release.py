"""The gland model's onnxruntime session is not held after the crop centre is found (helper audit, session 64).

Before, the session (and its arena: ~0.5 GB RSS after one fast-path look) stayed in a module global for the rest of
the process, through the diffusion sampling: ``dcediff synthesize`` on the sample case peaked at 1.53 GB RSS, 1.22 GB
with the session released (docs/performance.md). Checked with a weak reference to the real session, on the shipped
sample case's T2W, with the real model (no stand-in).
"""

import gc
import weakref
import pytest
import SimpleITK as sitk

from DCEDiffLib import prostate_localization as pl
from DCEDiffLib.errors import CancelledError
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

T2W = SAMPLE_CASE_DIR / "t2w.nii.gz"

needs_model = pytest.mark.skipif(not pl.available(), reason=f"{pl.unavailable_reason()}")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A private, empty mask cache (the user's ~/.cache is not touched)."""
    monkeypatch.setenv("DCEDIFF_CACHE_DIR", str(tmp_path / "cache"))
    pl._memory_cache.clear()
    yield
    pl._memory_cache.clear()


def _session_reference():
    """A weak reference to the session the next look will use (created now, as the look would)."""
    return weakref.ref(pl._get_session())


@needs_model
def test_the_session_is_gone_once_the_gland_is_found(private_cache):
    t2w = sitk.ReadImage(str(T2W))
    session = _session_reference()
    assert session() is not None
    location = pl.locate_prostate(t2w, warn=pytest.fail)
    assert location.source == pl.SOURCE_MODEL and location.mask is not None and not location.cached
    gc.collect()
    assert session() is None, "the onnxruntime session is still referenced after locate_prostate"
    # the next exam creates it again and finds the same gland
    with pl.computed_afresh():
        again = pl.locate_prostate(t2w, warn=pytest.fail)
    assert again.source == pl.SOURCE_MODEL and again.centre_lps == location.centre_lps
    assert pl._session is None


@needs_model
def test_a_cancelled_look_releases_the_session_too(private_cache):
    t2w = sitk.ReadImage(str(T2W))
    session = _session_reference()
    with pytest.raises(CancelledError):
        pl.locate_prostate(t2w, should_cancel=lambda: True)
    gc.collect()
    assert session() is None, "the onnxruntime session is still referenced after a cancelled locate_prostate"
