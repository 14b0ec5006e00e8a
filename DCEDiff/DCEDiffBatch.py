"""DCEDiff batch mode: run the module's logic on files, without the GUI.

    Slicer --no-splash --no-main-window --python-script <DCEDiffBatch.py> \
        --t2w T2W.nii.gz --pd PD.nii.gz --adc ADC.nii.gz --t1pre T1PRE.nii.gz \
        [--dce-early EARLY --dce-late LATE [--dce-baseline FRAME]] [--center R,A,S]
        [--sampler dpmpp --steps N --samples 1 --seed 0]
        [--device auto] [--model MODEL.safetensors] [--timeout SECONDS] [--install-dependencies]
        [--install-prostate-finder] --out DIR

``<DCEDiffBatch.py>``: ``DCEDiff/DCEDiffBatch.py`` in a source checkout; in an installed extension it sits next to
``DCEDiff.py`` in the extension's ``qt-scripted-modules`` folder, which Slicer prints with
``Slicer --no-splash --no-main-window --python-code "print(slicer.modules.dcediffbatch.path); slicer.util.exit(0)"``.

Loads the inputs as volume nodes, runs ``DCEDiffLogic.process`` (blocking: the same code path as Apply), saves
every result node as ``DIR/<role>.nrrd`` (``synthetic_early``, ``residual_late``, ...) and the metrics table as
``DIR/metrics.tsv`` (metrics.md's digits) with ``DIR/metrics.json`` (every digit), prints progress lines. Always
exits (a headless Slicer must never be left running): 0, 2 with
``DCEDiffBatch: error: <message>`` on bad input or any failure, 3 if cancelled or interrupted. Missing Python
packages are installed only with ``--install-dependencies`` (no dialog); otherwise the script stops at once with
the command to run. ``--install-prostate-finder`` installs the optional TAPS prostate finder (onnxruntime and
lavlab-taps, about 160 MB; the crop is then centred on the gland rather than the T2W's field-of-view centre) where
it is missing, also without a dialog; both installs are timed apart from the synthesis. Argument names avoid
those Slicer parses itself (``--testing``, ``--version``, ...), but ``-h``/``--help`` are Slicer's:
``Slicer --no-main-window --python-script <DCEDiffBatch.py> -- --help`` prints the script's options (Slicer hands
everything after ``--`` to the script; ``--help`` alone prints Slicer's help).

The file is also a hidden Slicer module (class ``DCEDiffBatch``, self-test ``DCEDiffBatchTest``) because Slicer
treats every ``.py`` file in ``qt-scripted-modules/`` as a module; the batch job runs only when it is executed as a
script.
"""

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

EXIT_OK, EXIT_ERROR, EXIT_CANCELLED = 0, 2, 3
HERE = Path(__file__).resolve().parent


def _engineRoot() -> Path:
    """The folder holding DCEDiffLib/: this one once installed, the repository root in a source checkout."""
    for candidate in (HERE, HERE.parent):
        if (candidate / "DCEDiffLib" / "__init__.py").is_file():
            return candidate
    return HERE


for _path in (str(HERE), str(_engineRoot())):
    if _path not in sys.path:
        sys.path.append(_path)


class DCEDiffBatch(ScriptedLoadableModule):
    """Hidden helper module: the DCEDiff batch script (see the module docstring)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "DCEDiff batch"
        self.parent.categories = ["Image Synthesis"]
        self.parent.dependencies = ["DCEDiff"]
        self.parent.hidden = True
        self.parent.contributors = ["DCEDiff maintainers (DCEDiff project)"]
        self.parent.helpText = "Batch script for DCEDiff; see docs/slicer.md."
        self.parent.acknowledgementText = ""


def parseCenter(text: str):
    """'R,A,S' (mm, Slicer's RAS, as the slice views show it) → (r, a, s)."""
    import math

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    # "nan"/"inf" parse as floats: refused here by name, not later by the engine in LPS ("centre (nan, -0.0, 0.0)")
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--center {text!r}: expected three numbers R,A,S in mm (RAS, as Slicer shows them)")
    return values


def buildParser() -> argparse.ArgumentParser:
    """The batch script's arguments; sampling defaults come from the engine (``DCEDiffLib.defaults``, plain
    constants: parsing needs neither the GUI module nor torch)."""
    from DCEDiffLib import defaults

    parser = argparse.ArgumentParser(prog="DCEDiffBatch", description="DCEDiff batch synthesis inside 3D Slicer")
    for name, text in (("t2w", "T2-weighted"), ("pd", "proton density"), ("adc", "ADC map"),
                       ("t1pre", "T1 pre-contrast")):
        parser.add_argument(f"--{name}", required=name != "pd", help=f"{text} volume file (NIfTI/NRRD/MHA)" + (
            "; may be left out when the model's card lists pd in optional_inputs (trained with augment.drop_pd)"
            if name == "pd" else ""))
    parser.add_argument("--dce-early", help="acquired early DCE (optional: residuals and metrics)")
    parser.add_argument("--dce-late", help="acquired late DCE (optional: residuals and metrics)")
    parser.add_argument("--dce-baseline", help="with --dce-early/--dce-late: the acquired DCE's own pre-contrast "
                                             "frame, where the T1-pre is another series (puts the acquired DCE on "
                                             "the T1-pre's intensity scale)")
    parser.add_argument("--center", help="prostate centre R,A,S in mm (default: the centre of the gland the TAPS "
                                         "prostate model finds on the T2W; without it, the T2W field-of-view centre)")
    parser.add_argument("--model", help="model .safetensors (with its .json card); default: the shipped model")
    parser.add_argument("--sampler", default=defaults.DEFAULT_SAMPLER, choices=defaults.SAMPLERS)
    parser.add_argument("--steps", type=int, default=None,
                        help="sampler steps (default: the model's own count, from its card)")
    parser.add_argument("--samples", type=int, default=defaults.DEFAULT_SAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop the engine after this many seconds (exit 2)")
    parser.add_argument("--install-dependencies", action="store_true",
                        help="install missing Python packages (torch, requirements.txt) without asking; without "
                             "it the script stops with the command to run")
    parser.add_argument("--install-prostate-finder", action="store_true",
                        help="install the optional TAPS prostate finder (onnxruntime and lavlab-taps, about 160 MB) "
                             "without asking where it is missing: the crop is then centred on the gland it finds")
    parser.add_argument("--out", required=True, help="output folder (created; must not exist or be empty)")
    return parser


def run(argv) -> int:
    from DCEDiffLib.cli_argv import join_negative_values  # "--center -12,30,4": a value, not an option

    args = buildParser().parse_args(join_negative_values(argv))
    center = parseCenter(args.center) if args.center else None
    if args.timeout is not None and not args.timeout > 0:  # 0, negative or nan: the engine started, stopped at once
        raise ValueError(f"--timeout {args.timeout:g}: expected a positive number of seconds")
    out = Path(args.out)
    checkOutputFolder(out)

    import slicer

    from DCEDiff import DCEDiffLogic
    from DCEDiffSlicerLib import process_runner

    given = {key: getattr(args, key) for key in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late", "dce_baseline")
             if getattr(args, key)}
    for key, path in given.items():  # every path before any is loaded: a typo costs no loading time
        if not Path(path).is_file():
            # a DICOM series folder is the likeliest folder here: say what takes one
            hint = (" (a folder: batch mode reads volume files; for a DICOM series run the engine's `dcediff "
                    "synthesize`, which takes series folders and --study EXAM_DIR, or convert it to NIfTI/NRRD)"
                    if Path(path).is_dir() else "")
            raise ValueError(f"{process_runner.INPUT_LABELS[key]} (--{key.replace('_', '-')}): {path} is not a "
                             f"file{hint}; expected a NIfTI/NRRD/MHA volume file")
        checkFinite(key, path)
    from DCEDiffLib.commands.common import check_distinct_inputs

    check_distinct_inputs(given)  # one file in two roles (--pd t2w.nii.gz): refused, as `dcediff synthesize` does
    nodes = {}
    for key, path in given.items():
        label = process_runner.INPUT_LABELS[key]
        try:
            nodes[key] = slicer.util.loadVolume(path, {"name": Path(path).name.split(".")[0], "show": False})
        except RuntimeError as exc:
            raise ValueError(f"{label} (--{key.replace('_', '-')}): cannot load {path}: {exc}") from exc
    centerNode = None
    if center is not None:
        checkCenterInside(center, nodes["t2w"], given["t2w"])
        centerNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "DCEDiffBatch centre")
        centerNode.AddControlPoint(*center)
    logic = DCEDiffLogic()
    checked = time.monotonic()
    installSeconds = None
    if logic.setupPythonRequirements(mode="install" if args.install_dependencies else "never"):
        # reported apart: installing PyTorch takes minutes and is no part of the synthesis time
        installSeconds = time.monotonic() - checked
        print(f"DCEDiffBatch: Python packages installed in {process_runner.format_seconds(installSeconds)}",
              flush=True)
    if args.install_prostate_finder:
        from DCEDiffSlicerLib import dependencies

        finderStarted = time.monotonic()
        if logic.installProstateFinder(mode="install") == dependencies.PROSTATE_INSTALLED:
            finderSeconds = time.monotonic() - finderStarted
            installSeconds = (installSeconds or 0.0) + finderSeconds  # reported apart from the synthesis, too
            print(f"DCEDiffBatch: prostate finder installed in {process_runner.format_seconds(finderSeconds)}",
                  flush=True)
        else:
            print("DCEDiffBatch: prostate finder already installed", flush=True)

    def progress(event):
        print(f"DCEDiffBatch: {process_runner.describe_event(event)}", flush=True)

    result = logic.process(nodes["t2w"], nodes.get("pd"), nodes["adc"], nodes["t1pre"], nodes.get("dce_early"),
                           nodes.get("dce_late"), center=centerNode, model=args.model, sampler=args.sampler,
                           steps=args.steps, samples=args.samples, seed=args.seed, device=args.device,
                           waitForCompletion=True, progressCallback=progress, showResult=False,
                           timeoutSeconds=args.timeout, dceBaseline=nodes.get("dce_baseline"))
    return finishRun(result, out, installSeconds)


def checkFinite(key: str, path: str) -> None:
    """Refuse a NIfTI input with NaN or infinite voxels, as ``dcediff synthesize`` does: Slicer's reader (ITK's NIfTI
    reader) loads them as 0, so no check on the loaded node can see them and the run went on with them as dark
    voxels (``DCEDiffLib.nifti_nonfinite``)."""
    from DCEDiffLib.nifti_nonfinite import count_nonfinite, is_nifti
    from DCEDiffSlicerLib import process_runner

    counted = count_nonfinite(path) if is_nifti(Path(path)) else None
    if counted is not None and counted[0] > 0:
        raise ValueError(f"{process_runner.INPUT_LABELS[key]} (--{key.replace('_', '-')}): {path} has {counted[0]} "
                         f"NaN or infinite voxels (of {counted[1]}; Slicer would load them as 0); expected finite "
                         "intensities everywhere")


def checkCenterInside(center, t2w, path: str) -> None:
    """Refuse a --center (RAS mm) outside the loaded T2W's voxel box (half a voxel beyond the outer centres, as the
    engine's ``working_grid`` test), before the engine starts: the engine's refusal names no option and gives the
    point in LPS, the signs of R and A flipped from what was typed."""
    import vtk

    toIjk = vtk.vtkMatrix4x4()
    t2w.GetRASToIJKMatrix(toIjk)
    ijk = toIjk.MultiplyPoint((*center, 1.0))[:3]
    dimensions = t2w.GetImageData().GetDimensions()
    if all(-0.5 <= v <= n - 0.5 for v, n in zip(ijk, dimensions)):
        return
    # the centre, not RAS bounds: an oblique T2W's bounding box holds points outside its voxel box
    toRas = vtk.vtkMatrix4x4()
    t2w.GetIJKToRASMatrix(toRas)
    middle = toRas.MultiplyPoint(tuple((n - 1) / 2.0 for n in dimensions) + (1.0,))[:3]
    raise ValueError(f"--center {','.join(f'{v:g}' for v in center)}: outside the T2W {path} (its voxel box is "
                     f"centred at R,A,S {','.join(f'{v:.1f}' for v in middle)} mm); expected the prostate centre "
                     "inside it, in RAS as Slicer shows it (not LPS)")


def checkOutputFolder(out: Path) -> None:
    """Refuse an unusable --out before any work (the synthesis takes minutes, the results are written last): an
    existing file, a folder that is not empty, or a path whose nearest existing parent is not a folder one may
    write to."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: an existing file; expected a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"--out {out}: the folder exists and is not empty; choose a new folder")
    parent = out.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot be created ({parent} is not a folder you may write to); expected a "
                         "new or empty folder in a writable place")


def finishRun(result, out: Path, installSeconds=None) -> int:
    """The exit code of a finished run, after its notes and, unless it was cancelled, its result files in ``out``:
    EXIT_CANCELLED writes nothing. ``installSeconds``: the time spent installing Python packages first (None: none
    were installed), reported apart from the synthesis time (``result.seconds``, from the engine's start)."""
    if result.cancelled:
        return EXIT_CANCELLED
    from DCEDiffSlicerLib.process_runner import format_seconds

    print(f"DCEDiffBatch: synthesis done in {format_seconds(result.seconds)}"
          + (f" (Python packages installed before it in {format_seconds(installSeconds)}, not counted)"
             if installSeconds is not None else ""), flush=True)
    if result.outOfDistribution:
        from DCEDiff import outOfDistributionText

        print(f"DCEDiffBatch: WARNING: {outOfDistributionText(result.outOfDistribution)}", flush=True)
    if result.intensityNotes:
        from DCEDiff import intensityNotesText

        print(f"DCEDiffBatch: note: {intensityNotesText(result.intensityNotes)}", flush=True)
        for note in result.intensityNotes.values():
            print(f"DCEDiffBatch: note: {note}", flush=True)
    if result.enhancementRescaled:
        from DCEDiff import enhancementRescaledText

        print(f"DCEDiffBatch: note: {enhancementRescaledText(result.enhancementRescaled)}", flush=True)
    if result.t1preCoverage:
        from DCEDiff import t1preCoverageText

        print(f"DCEDiffBatch: note: {t1preCoverageText(result.t1preCoverage)}", flush=True)
    writeResults(result, out, installSeconds)
    return EXIT_OK


def writeResults(result, out: Path, installSeconds=None) -> None:
    """Write every result node (``<role>.nrrd``, tables ``<role>.tsv``; beside the metrics table's text, the
    engine's full-precision values it was made from, ``metrics.json``) and the marks file into ``out``, whole or
    not at all: into a temporary folder beside it that becomes ``out`` only once all are written
    (``DCEDiffLib.atomic.atomic_directory``, as ``dcediff synthesize`` writes its --out). A write that fails (a
    full disk, an unwritable file) leaves no .nrrd without the DCEDiff.json that marks it synthetic, and ``out``
    as it was (absent, or the empty folder given)."""
    import json

    import slicer.util
    from DCEDiffSlicerLib import scene_io

    from DCEDiffLib.atomic import atomic_directory

    # absolute: a storage node resolves a relative file name against the scene's root directory (Slicer sets it to
    # the default scene folder, e.g. ~/Documents), not the working directory --out was typed in
    out = Path(out).absolute()
    files = {}
    with atomic_directory(out) as partial:
        for role, node in result.nodes.items():
            name = f"{role}.tsv" if node.IsA("vtkMRMLTableNode") else f"{role}.nrrd"
            if not slicer.util.saveNode(node, str(partial / name)):
                raise RuntimeError(f"could not write {out / name} (node {node.GetName()!r}); nothing was written "
                                   f"to --out {out}")
            files[name] = node
        values = []
        for role, node in result.nodes.items():  # the table's text has metrics.md's digits, its metrics.json all
            metrics = scene_io.table_metrics(node) if node.IsA("vtkMRMLTableNode") else None
            if metrics is not None:
                (partial / f"{role}.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
                values.append(f"{role}.json")
        writeMarks(files, result, partial / MARKS_FILE, installSeconds)
    for name in list(files) + values + [MARKS_FILE]:
        print(f"DCEDiffBatch: wrote {out / name}", flush=True)


MARKS_FILE = "DCEDiff.json"


def writeMarks(files: dict, result, path: Path, installSeconds=None) -> None:
    """Beside the result files, what the scene's nodes say of each (their ``DCEDiff.*`` attributes: synthetic, the
    out-of-distribution verdict, the provenance) and of the run (its synthesis time, and apart from it the time
    spent installing Python packages first, or None): a .nrrd written by Slicer's storage node carries no
    node attributes, so without this the files were marked synthetic by their names only."""
    import json

    def marks(node) -> dict:
        return {name: node.GetAttribute(name) for name in sorted(node.GetAttributeNames() or ())
                if name.startswith("DCEDiff.")}

    record = {"synthetic": True, "out_of_distribution": result.outOfDistribution,
              "missing_inputs": list(result.missingInputs), "provenance": result.provenance,
              "synthesis_seconds": result.seconds, "install_seconds": installSeconds,
              "files": {name: marks(node) for name, node in files.items()}}
    path.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")


def main(argv) -> int:
    """Run and turn *every* outcome into an exit code (never raises)."""
    try:
        return run(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_ERROR)
    except KeyboardInterrupt:
        print("DCEDiffBatch: cancelled", file=sys.stderr, flush=True)
        return EXIT_CANCELLED
    except Exception as exc:  # noqa: BLE001  an ImportError, a pip failure, a bug: report it and exit
        known = isinstance(exc, (ValueError, RuntimeError, OSError))
        if not known:
            traceback.print_exc()
        message = str(exc) if known else f"{type(exc).__name__}: {exc}"
        print(f"DCEDiffBatch: error: {message}", file=sys.stderr, flush=True)
        return EXIT_ERROR


def interruptOnSignals() -> dict:
    """Make Ctrl-C (SIGINT) and SIGTERM raise KeyboardInterrupt in the script; returns the handlers replaced.

    Slicer resets SIGINT to the default action once Python has started (CTK ``ctkAbstractPythonManager::
    initPythonQt`` and Slicer's ``qSlicerAbstractModuleFactoryManager::instantiateModules``: ``signal(SIGINT,
    SIG_DFL)``), and SIGTERM has no Python handler: without this either signal ended Slicer at once, the engine
    signalled apart from Slicer ran on alone and the copies of the inputs stayed in Slicer's temporary folder. With
    it the blocking run kills the engine's tree and removes that folder, and the script exits EXIT_CANCELLED."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    replaced = {}
    for name in ("SIGINT", "SIGTERM"):
        number = getattr(signal, name, None)
        if number is None:
            continue
        try:
            replaced[number] = signal.signal(number, interrupt)
        except (ValueError, OSError):  # not the main thread, or not settable here: keep Slicer's
            pass
    return replaced


def restoreSignals(replaced: dict) -> None:
    """Put back the handlers :func:`interruptOnSignals` replaced (a signal after the run ends Slicer at once)."""
    for number, handler in replaced.items():
        try:
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        except (ValueError, OSError, TypeError):
            pass


def exitSlicer(code: int) -> None:
    """Leave Slicer with ``code``, whatever state it is in (``slicer.util.exit`` keeps the code; if even that
    fails, end the process)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        import slicer

        slicer.util.exit(code)
    except BaseException:  # noqa: BLE001
        os._exit(code)


class DCEDiffBatchTest(ScriptedLoadableModuleTest):
    """Self-test of the batch script (SelfTests, Reload and Test): argument handling and exit codes, without
    running the engine (the full engine path is DCEDiffTest)."""

    def setUp(self):
        import slicer

        slicer.mrmlScene.Clear()

    def runTest(self):
        for name in sorted(n for n in dir(self) if n.startswith("test_")):
            self.setUp()
            getattr(self, name)()

    def test_DCEDiffBatch_center(self):
        self.assertEqual(parseCenter("1.5,-2,30"), (1.5, -2.0, 30.0))
        with self.assertRaisesRegex(ValueError, "--center"):
            parseCenter("1,2")

    def test_DCEDiffBatch_exit_codes(self):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            missing = str(Path(tmp) / "missing.nii.gz")
            args = ["--t2w", missing, "--pd", missing, "--adc", missing, "--t1pre", missing,
                    "--out", str(Path(tmp) / "out")]
            self.assertEqual(main(args), EXIT_ERROR)  # the T2W is not a file
            self.assertEqual(main(["--out", tmp]), EXIT_ERROR)  # usage error (required inputs)
            self.assertEqual(main(args + ["--center", "x"]), EXIT_ERROR)
            self.assertFalse((Path(tmp) / "out").exists())


if __name__ == "__main__":
    exitCode = EXIT_ERROR
    replacedHandlers = {}
    try:
        replacedHandlers = interruptOnSignals()
        exitCode = main(sys.argv[1:])
    finally:
        restoreSignals(replacedHandlers)
        exitSlicer(exitCode)
