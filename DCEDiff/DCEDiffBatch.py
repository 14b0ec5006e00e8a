"""DCEDiff batch mode: run the module's logic on files, without the GUI.

    Slicer --no-splash --no-main-window --python-script DCEDiff/DCEDiffBatch.py \
        --t2w T2W.nii.gz --pd PD.nii.gz --adc ADC.nii.gz --t1pre T1PRE.nii.gz \
        [--dce-early EARLY --dce-late LATE] [--sampler dpmpp --steps 20 --samples 1 --seed 0 --device auto] \
        [--model MODEL.safetensors] --out DIR

Loads the inputs as volume nodes, runs ``DCEDiffLogic.process`` (blocking: the same code path as Apply), saves
every result node as ``DIR/<role>.nrrd`` (``synthetic_early``, ``residual_late``, ...) and the metrics table as
``DIR/metrics.tsv``, prints progress lines, and exits 0, or 2 with ``DCEDiffBatch: error: <message>`` on bad input
or failure (3 if cancelled). Argument names avoid those Slicer parses itself (``--testing``, ``--version``, ...).

The file is also a hidden Slicer module (class ``DCEDiffBatch``) because Slicer treats every ``.py`` file in
``qt-scripted-modules/`` as a module; the batch job runs only when it is executed as a script.
"""

import argparse
import os
import sys
from pathlib import Path

from slicer.ScriptedLoadableModule import ScriptedLoadableModule

EXIT_OK, EXIT_ERROR, EXIT_CANCELLED = 0, 2, 3


class DCEDiffBatch(ScriptedLoadableModule):
    """Hidden helper module: the DCEDiff batch script (see the module docstring)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "DCEDiff batch"
        self.parent.categories = ["Image Synthesis"]
        self.parent.dependencies = ["DCEDiff"]
        self.parent.hidden = True
        self.parent.helpText = "Batch script for DCEDiff; see docs/slicer.md."
        self.parent.acknowledgementText = ""


def buildParser() -> argparse.ArgumentParser:
    """The batch script's arguments; sampling defaults come from the engine (``DCEDiffLib.defaults``)."""
    from DCEDiff import defaults  # importing the module puts the engine on sys.path first

    parser = argparse.ArgumentParser(prog="DCEDiffBatch", description="DCEDiff batch synthesis inside 3D Slicer")
    for name, text in (("t2w", "T2-weighted"), ("pd", "proton density"), ("adc", "ADC map"),
                       ("t1pre", "T1 pre-contrast")):
        parser.add_argument(f"--{name}", required=True, help=f"{text} volume file (NIfTI/NRRD/MHA)")
    parser.add_argument("--dce-early", help="acquired early DCE (optional: residuals and metrics)")
    parser.add_argument("--dce-late", help="acquired late DCE (optional: residuals and metrics)")
    parser.add_argument("--model", help="model .safetensors (with its .json card); default: the shipped model")
    parser.add_argument("--sampler", default=defaults.DEFAULT_SAMPLER, choices=defaults.SAMPLERS)
    parser.add_argument("--steps", type=int, default=defaults.DEFAULT_STEPS)
    parser.add_argument("--samples", type=int, default=defaults.DEFAULT_SAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", required=True, help="output folder (created; must not exist or be empty)")
    return parser


def run(argv) -> int:
    import slicer

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # source checkout: DCEDiff.py sits next to this file
    from DCEDiff import DCEDiffLogic
    from DCEDiffSlicerLib import process_runner

    args = buildParser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out}: the folder exists and is not empty; choose a new folder")
    nodes = {}
    for key in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late"):
        path = getattr(args, key)
        if not path:
            continue
        label = process_runner.INPUT_LABELS[key]
        if not Path(path).is_file():
            raise ValueError(f"{label} (--{key.replace('_', '-')}): {path} is not a file")
        try:
            nodes[key] = slicer.util.loadVolume(path, {"name": Path(path).name.split(".")[0], "show": False})
        except RuntimeError as exc:
            raise ValueError(f"{label} (--{key.replace('_', '-')}): cannot load {path}: {exc}") from exc
    logic = DCEDiffLogic()
    logic.setupPythonRequirements()

    def progress(event):
        print(f"DCEDiffBatch: {process_runner.describe_event(event)}", flush=True)

    result = logic.process(nodes["t2w"], nodes["pd"], nodes["adc"], nodes["t1pre"], nodes.get("dce_early"),
                           nodes.get("dce_late"), model=args.model, sampler=args.sampler, steps=args.steps,
                           samples=args.samples, seed=args.seed, device=args.device, waitForCompletion=True,
                           progressCallback=progress, showResult=False)
    if result.cancelled:
        return EXIT_CANCELLED
    out.mkdir(parents=True, exist_ok=True)
    for role, node in result.nodes.items():
        path = out / (f"{role}.tsv" if node.IsA("vtkMRMLTableNode") else f"{role}.nrrd")
        if not slicer.util.saveNode(node, str(path)):
            raise RuntimeError(f"could not write {path}")
        print(f"DCEDiffBatch: wrote {path}", flush=True)
    return EXIT_OK


def main(argv) -> int:
    try:
        return run(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        return int(exc.code or 0)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"DCEDiffBatch: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        import slicer

        slicer.util.exit(code)
    except Exception:
        os._exit(code)
