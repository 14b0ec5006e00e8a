"""Rules of "Fill from study"'s status line (``StudyFill.message``), from the session-56 mutation audit round 15.

- ``test_a_missing_pd_is_called_required_only_for_a_model_that_needs_it`` kills: the "required by the selected
  model" note given for a model whose card lists PD among its optional inputs.
- ``test_the_pre_contrast_frame_note_needs_an_acquired_dce`` kills: the note on the DCE's pre-contrast frame shown
  when no acquired DCE was filled (the frame only matters for comparing an acquired DCE).
"""
import sys
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DCEDiff"))
from DCEDiffSlicerLib.study_fill import StudyFill  # noqa: E402

REQUIRED_NOTE = "is required by the selected model"
FRAME_NOTE = "pre-contrast frame is not loaded"


def _fill(**fields) -> StudyFill:
    return StudyFill(**{"nodes": {}, "lines": [], "missing": [], "notes": [], "study": "patient P, study 1.2",
                        **fields})


def test_a_missing_pd_is_called_required_only_for_a_model_that_needs_it():
    assert REQUIRED_NOTE in _fill(missing=["pd"], optional=()).message()
    assert REQUIRED_NOTE not in _fill(missing=["pd"], optional=("pd",)).message()
    assert REQUIRED_NOTE not in _fill(missing=[], optional=()).message()


def test_the_pre_contrast_frame_note_needs_an_acquired_dce():
    filled = {"t2w": object(), "dce_early": object(), "dce_late": object()}
    assert FRAME_NOTE in _fill(nodes=filled, not_loaded=["dce_baseline"]).message()
    assert FRAME_NOTE not in _fill(nodes={"t2w": object()}, not_loaded=["dce_baseline"]).message()
    assert FRAME_NOTE not in _fill(nodes=filled, not_loaded=[]).message()
