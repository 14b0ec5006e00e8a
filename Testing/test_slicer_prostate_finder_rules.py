"""The prostate finder's install and check (DCEDiff/DCEDiffSlicerLib/dependencies.py, DCEDiffBatch.py,
DCEDiffLib/prostate_localization.py ``missing_parts``) at their documented rules, found by mutation audit round 20:
each test fails on one plausible bug that Testing/test_slicer_prostate_finder.py let pass.

Real parts: ``importlib``'s own finders on a folder put on ``sys.path`` here (a package written into it as pip would),
the slicer-core wheel's ``slicer`` package. Stand-ins, the same as in Testing/test_slicer_prostate_finder.py (pip and
Qt cannot run here; imported from it): ``PackagingStandIn`` (``slicer.packaging``'s ``pip_install``),
``ConfirmStandIn`` (the confirmation dialog) and the Qt stand-ins of Testing/test_slicer_module.py. A pip run that
"succeeds" without installing is ``PackagingStandIn`` with the check left pointing at missing names.
"""

import importlib
import json
import os
import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffLib import prostate_localization as pl  # noqa: E402
from DCEDiffSlicerLib import dependencies as dep  # noqa: E402

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402
from test_slicer_module import batch_argv, make_widget, modules  # noqa: E402,F401
from test_slicer_prostate_finder import ConfirmStandIn, PackagingStandIn, packaging, without_finder  # noqa: E402,F401


def test_a_package_installed_within_the_same_second_is_found(monkeypatch, tmp_path):
    """prostate_finder_missing: 'a package pip just installed is found': Python's path finder caches a folder's
    listing until the folder's mtime changes, which a pip run within the same (coarse) mtime tick does not. The
    package is written into a folder on sys.path after a first look missed it, the folder's mtime put back."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(pl, "RUNTIME_PACKAGE", "dcediff_fresh_runtime")
    importlib.invalidate_caches()
    assert dep.prostate_finder_missing()[0] == "onnxruntime"   # cached now: the folder listed without it
    stamp = os.stat(site)
    (site / "dcediff_fresh_runtime").mkdir()
    (site / "dcediff_fresh_runtime" / "__init__.py").write_text("", encoding="utf-8")
    os.utime(site, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert "onnxruntime" not in dep.prostate_finder_missing()


def test_a_pip_run_that_installs_nothing_is_an_error_naming_the_missing_part(monkeypatch, packaging):
    """install_prostate_finder: after pip, the check runs again; a part still not found is a DependencyError naming
    it, not "installed"."""
    without_finder(monkeypatch)
    monkeypatch.setattr(packaging, "pip_install", lambda requirements, **kwargs: None)   # "succeeds", installs nothing
    with pytest.raises(dep.DependencyError, match="onnxruntime, lavlab-taps still not found"):
        dep.install_prostate_finder(mode="install")


def test_a_module_without_a_spec_counts_as_missing(monkeypatch):
    """missing_parts: what the model lacks, never an error: ``find_spec`` raises ValueError for a module in
    sys.modules whose ``__spec__`` is None (one put there by hand, as some tools do); it is counted as missing."""
    stub = types.ModuleType("dcediff_specless_runtime")
    stub.__spec__ = None
    monkeypatch.setitem(sys.modules, "dcediff_specless_runtime", stub)
    monkeypatch.setattr(pl, "RUNTIME_PACKAGE", "dcediff_specless_runtime")
    assert pl.missing_parts()[0] == "onnxruntime"
    assert "onnxruntime" in pl.unavailable_reason()


def test_batch_counts_both_installs_apart_from_the_synthesis(modules, monkeypatch, tmp_path, packaging):
    """DCEDiffBatch: 'both installs are timed apart from the synthesis': install_seconds is the Python packages'
    time plus the finder's, not the finder's alone."""
    DCEDiff, DCEDiffBatch = modules
    without_finder(monkeypatch)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", ConfirmStandIn(None))
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path, properties=None: ("node", path))

    def packages_installed(self, **kwargs):   # the Python packages "installed", taking a measurable time
        time.sleep(0.3)
        return True

    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", packages_installed)
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", lambda self, *a, **k: DCEDiff.DCEDiffResult({}, {}, 3.0))
    assert DCEDiffBatch.main(batch_argv(tmp_path) + ["--install-prostate-finder"]) == DCEDiffBatch.EXIT_OK
    marks = json.loads((tmp_path / "out" / DCEDiffBatch.MARKS_FILE).read_text(encoding="utf-8"))
    assert len(packaging.calls) == 2 and marks["install_seconds"] >= 0.3 and marks["synthesis_seconds"] == 3.0


@pytest.mark.parametrize("runtime, part, other", [(True, "onnxruntime", "TAPS model"),
                                                  (False, "the TAPS model (lavlab-taps)", "onnxruntime")])
def test_the_reason_names_the_part_that_is_missing(monkeypatch, runtime, part, other):
    """unavailable_reason: 'one line naming what to install': onnxruntime by its name, the ONNX file as the TAPS
    model of its distribution; only the part that is missing."""
    monkeypatch.delenv(pl.HOST_VARIABLE, raising=False)
    without_finder(monkeypatch, runtime=runtime, model=not runtime)
    reason = pl.unavailable_reason()
    assert reason.startswith(f"the prostate model needs {part} (") and other not in reason.split(" (")[0]
