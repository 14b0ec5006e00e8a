"""session-56 mutation audit round 15: rules of DCEDiff/DCEDiffBatch.py (argument handling, finishRun, the marks
file) that no earlier test could fail. Real MRML nodes from the slicer-core wheel; the Qt side of DCEDiff.py is the
stand-in of Testing/test_slicer_module.py, reused as that file uses it. Each test names the mutation it kills."""

import json
import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_module import CASE, modules  # noqa: E402,F401  (the Qt stand-ins of the module tests)
from test_slicer_scene import scene  # noqa: E402,F401  (a fresh scene per test, autouse)
from test_slicer_scene_hunt import CoreIOManagerStandIn  # noqa: E402  (Slicer's saveNodes, as that file uses it)


def test_a_centre_needs_exactly_three_coordinates(modules):
    """parseCenter: 'R,A,S' -> (r, a, s); four numbers are no point. Kills "len(values) != 3" -> "< 3" (B01)."""
    _, DCEDiffBatch = modules
    assert DCEDiffBatch.parseCenter("1,-2,3.5") == (1.0, -2.0, 3.5)
    for text in ("1,2", "1,2,3,4", "a,b,c"):
        with pytest.raises(ValueError, match="--center"):
            DCEDiffBatch.parseCenter(text)


def test_the_batch_centre_is_ras_as_slicer_shows_it_and_reaches_the_engine_as_lps(modules, tmp_path, monkeypatch):
    """docs/slicer.md: "--center is the prostate centre in RAS mm (as Slicer shows it)": the markups point handed to
    the logic sits at R,A,S, so the engine gets LPS (-R, -A, S). Kills placing the point at (-R, -A, S) (B06: the
    centre mirrored through the scanner axis, the crop on the wrong side)."""
    DCEDiff, DCEDiffBatch = modules
    files = {k: str(CASE / f"{k}.nii.gz") for k in ("t2w", "pd", "adc", "t1pre")}
    # stand-in for Slicer's IO manager (not in the wheel): the module's own reader, real nodes (--center is checked
    # against the T2W's voxel box)
    monkeypatch.setattr(slicer.util, "loadVolume",
                        lambda path, properties=None: scene_io.read_volume_node(path, properties["name"]))
    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "setupPythonRequirements", lambda self, **kwargs: None)
    seen = {}

    def process(self, *args, center=None, **kwargs):
        seen["center"] = center
        seen["lps"] = scene_io.center_lps_from_markups(center)
        return DCEDiff.DCEDiffResult({}, {}, 1.0, cancelled=True)

    monkeypatch.setattr(DCEDiff.DCEDiffLogic, "process", process)
    argv = [f"--{k}={v}" for k, v in files.items()] + ["--center", "-12,-10,30", "--out", str(tmp_path / "out")]
    assert DCEDiffBatch.main(argv) == DCEDiffBatch.EXIT_CANCELLED
    position = [0.0, 0.0, 0.0]
    seen["center"].GetNthControlPointPositionWorld(0, position)
    assert position == pytest.approx([-12.0, -10.0, 30.0])
    assert seen["lps"] == pytest.approx((12.0, 10.0, 30.0))


def test_the_marks_file_says_which_inputs_the_synthesis_was_made_without(modules, tmp_path):
    """writeMarks: the run's marks beside the files, "missing_inputs" among them (a synthesis made without PD is
    another result; the .nrrd files keep no node attribute). Kills writing [] (B07)."""
    DCEDiff, DCEDiffBatch = modules
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "synthetic_early")
    node.SetAttribute(scene_io.MISSING_ATTRIBUTE, "pd")
    result = DCEDiff.DCEDiffResult({"synthetic_early": node}, {"model": "m"}, 1.0, missingInputs=("pd",))
    DCEDiffBatch.writeMarks({"synthetic_early.nrrd": node}, result, tmp_path / DCEDiffBatch.MARKS_FILE)
    marks = json.loads((tmp_path / DCEDiffBatch.MARKS_FILE).read_text(encoding="utf-8"))
    assert marks["missing_inputs"] == ["pd"]
    assert marks["files"]["synthetic_early.nrrd"] == {scene_io.MISSING_ATTRIBUTE: "pd"}


def test_finish_run_writes_volumes_as_nrrd_and_the_metrics_table_as_tsv(modules, tmp_path, monkeypatch):
    """docs/slicer.md: each result node goes to results/<role>.nrrd "and results/metrics.tsv". Kills saving the
    table as .nrrd (B04: Slicer cannot write a table there, and the whole batch run fails at its end)."""
    import types

    import numpy as np

    DCEDiff, DCEDiffBatch = modules
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(coreIOManager=CoreIOManagerStandIn), raising=False)
    volume = slicer.util.addVolumeFromArray(np.ones((3, 4, 5), dtype=np.float32), name="synthetic_early")
    table = scene_io.create_metrics_table({"early": {"whole": {"psnr": 24.0, "ssim": 0.8, "mae": 0.03}}}, "metrics")
    result = DCEDiff.DCEDiffResult({"synthetic_early": volume, "metrics": table}, {}, 1.0)
    out = tmp_path / "results"
    assert DCEDiffBatch.finishRun(result, out) == DCEDiffBatch.EXIT_OK
    names = {p.name for p in out.iterdir()}  # (Slicer's table writer adds metrics.schema.tsv beside the table)
    assert {"DCEDiff.json", "metrics.tsv", "synthetic_early.nrrd"} <= names and "metrics.nrrd" not in names
    header = (out / "metrics.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert header == list(scene_io.METRIC_COLUMNS)


def test_finish_run_writes_the_metrics_every_digit_beside_the_table_s_rounded_text(modules, tmp_path, monkeypatch):
    """docs/slicer.md: metrics.tsv holds the table's text (metrics.md's digits, "undefined" where a metric has no
    value) and results/metrics.json the engine's values, every digit, as the table node keeps them (attribute
    DCEDiff.Metrics). Without it a batch run kept only the rounded text."""
    import types

    DCEDiff, DCEDiffBatch = modules
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(coreIOManager=CoreIOManagerStandIn), raising=False)
    metrics = {"early": {"whole": {"psnr": 24.123456789, "ssim": 0.812345678, "mae": 0.0312345678},
                         "enhancement": {"lesion": {"mae": None, "psnr": None, "pearson": None}}}}
    table = scene_io.create_metrics_table(metrics, "metrics")
    out = tmp_path / "results"
    assert DCEDiffBatch.finishRun(DCEDiff.DCEDiffResult({"metrics": table}, {}, 1.0), out) == DCEDiffBatch.EXIT_OK
    lines = [line.split("\t") for line in (out / "metrics.tsv").read_text(encoding="utf-8").splitlines()]
    assert lines[1:] == [["early", "whole", "24.12", "0.812", "0.0312", "–"],
                         ["early", "enhancement: lesion", "undefined", "–", "undefined", "undefined"]]
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics


# Every option Slicer's own parser takes (long and short names, without prefix), as listed in
# Base/QTCore/qSlicerCoreCommandOptions.cxx and Base/QTGUI/qSlicerCommandOptions.cxx (addArguments; prefixes "--" and
# "-", qSlicerCoreCommandOptions.cxx:67 `setArgumentPrefix("--", "-")`). ctkCommandLineParser hands the script only
# the arguments it does not know (qSlicerCoreApplication::handleCommandLineArguments: sys.argv = the script and
# unparsedArguments()); after "--" (the "ignore-rest" option, short name "-") everything goes to the script.
SLICER_OPTIONS = {
    "ignore-rest", "-", "help", "h", "testing", "disable-python", "python-script", "python-code", "c",
    "ignore-slicerrc", "additional-module-path", "additional-module-paths", "modules-to-ignore", "disable-modules",
    "disable-builtin-modules", "disable-cli-modules", "disable-builtin-cli-modules", "disable-loadable-modules",
    "disable-builtin-loadable-modules", "disable-scripted-loadable-modules",
    "disable-builtin-scripted-loadable-modules", "version", "program-path", "home", "settings-path", "temporary-path",
    "application-information", "verbose-module-discovery", "disable-settings", "keep-temporary-settings",
    "disable-message-handlers", "disable-terminal-outputs", "disable-tooltips", "no-splash", "no-main-window",
    "show-python-console", "show-python-interactor", "qt-testing", "exit-after-startup", "report-startup-timing"}


def test_no_batch_option_is_one_slicer_takes_and_its_help_is_reached_after_a_double_dash(modules):
    """Slicer parses the whole command line before the script runs: an option of the script that Slicer also knows
    never reaches it. ``-h``/``--help`` (argparse's) are Slicer's own: ``Slicer --python-script DCEDiffBatch.py
    --help`` prints Slicer's help and exits; the batch help needs ``-- --help``, which the usage text and
    docs/slicer.md must say."""
    _, DCEDiffBatch = modules
    parser = DCEDiffBatch.buildParser()
    names = {s.lstrip("-") for action in parser._actions for s in action.option_strings}
    assert names & SLICER_OPTIONS == {"h", "help"}
    docs = (ROOT / "docs" / "slicer.md").read_text(encoding="utf-8")
    assert "-- --help" in docs and "-- --help" in (DCEDiffBatch.__doc__ or "")
