"""Every ``slicer.util.<name>(...)`` call in the Slicer module (DCEDiff/*.py, DCEDiff/DCEDiffSlicerLib/*.py) names a
function of Slicer's real ``slicer.util`` and passes arguments its signature accepts.

Why: the module tests replace several of these functions with stand-ins (``confirmOkCancelDisplay``, ``loadVolume``,
``errorDisplay``, ``mainWindow``, ``resetSliceViews``, ``pip_install``, ...: their Qt parts cannot run here), so a
misspelt name or keyword would pass them and fail in Slicer. The calls are read with ``ast`` and bound with
``inspect.signature`` against ``slicer.util`` of the slicer-core wheel, which is Slicer's own
``Base/Python/slicer/util.py`` (the functions called are the same text as in Slicer main 583e9b3). No stand-in."""

import ast
import inspect
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "DCEDiff").glob("*.py")) + sorted((ROOT / "DCEDiff" / "DCEDiffSlicerLib").glob("*.py"))


def util_calls(source: str, where: str):
    """``(where:line, name, call)`` for every ``slicer.util.<name>(...)`` call in ``source``."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        func = getattr(node, "func", None) if isinstance(node, ast.Call) else None
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "util"
                and isinstance(func.value.value, ast.Name) and func.value.value.id == "slicer"):
            calls.append((f"{where}:{node.lineno}", func.attr, node))
    return calls


def problems(calls):
    """What Slicer's ``slicer.util`` would refuse among ``calls``: a missing function, or arguments its signature
    cannot bind (a call that splats ``*args``/``**kwargs`` is checked for its name only)."""
    found = []
    for where, name, call in calls:
        function = getattr(slicer.util, name, None)
        if not callable(function):
            found.append(f"{where}: slicer.util.{name} does not exist in Slicer's slicer.util")
            continue
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            continue
        try:
            inspect.signature(function).bind(*call.args, **{k.arg: k.value for k in call.keywords})
        except TypeError as exc:
            found.append(f"{where}: slicer.util.{name}: {exc}")
    return found


def test_every_slicer_util_call_of_the_module_fits_slicers_own_function():
    calls = [c for path in SOURCES for c in util_calls(path.read_text(encoding="utf-8"), path.relative_to(ROOT))]
    names = {name for _, name, _ in calls}
    # the control: the functions the tests replace with stand-ins are among those checked here
    assert {"confirmOkCancelDisplay", "loadVolume", "errorDisplay", "warningDisplay", "mainWindow",
            "resetSliceViews", "pip_install", "launchConsoleProcess", "tryWithErrorDisplay"} <= names, names
    assert problems(calls) == []


@pytest.mark.parametrize("call, expected", [
    ("slicer.util.setSliceViewerLayers(background=None, fitAll=True)", "unexpected keyword argument 'fitAll'"),
    ('slicer.util.loadVolume("f.nrrd", {"name": "a"}, True, 1)', "too many positional arguments"),
    ("slicer.util.resetSliceView()", "slicer.util.resetSliceView does not exist"),
    ('slicer.util.launchConsoleProcess(["x"], environment={})', "unexpected keyword argument 'environment'"),
])
def test_a_misspelt_name_or_keyword_is_reported(call, expected):
    """Each kind of mistake the check exists for is caught (a name, a keyword, too many arguments)."""
    found = problems(util_calls(call, "case"))
    assert len(found) == 1 and expected in found[0], found
