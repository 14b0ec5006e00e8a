"""Assemble a candidate model folder from a fine-tune's runs, with the shipped card's expected-error map carried over.

Usage: .venv/bin/python scripts/build_candidate_card.py RESIDUAL_RUN MEAN_RUN --shipped Resources/Models --out DIR

RESIDUAL_RUN and MEAN_RUN are training run folders (each holding model.safetensors and model.json, as `dcediff train`
writes them). DIR gets dcediff_cpu_phantom.* (the residual card, which holds both networks) and
dcediff_cpu_phantom_regression.* (the mean alone), named as the shipped files are, so that DIR can replace
Resources/Models. The shipped card's ``error_model`` (and the tree file it names), ``description`` and
``sampling.residual_steps`` are carried over: the learned expected-error map needs the candidate's residuals on
patients no network saw to be refitted, which a fine-tune on those patients does not leave. The input statistics are
not carried over (the training data changed): run scripts/add_input_statistics.py on both cards afterwards. Nothing in
the run folders or in --shipped is changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

STEM = "dcediff_cpu_phantom"


def carried_card(candidate: dict, shipped: dict, trees_present: bool) -> dict:
    """The candidate card with the shipped card's expected-error map, description and residual step count; refuses
    a shipped card whose error map names a tree file that is not there, or a candidate whose targets differ from the
    shipped ones."""
    if candidate.get("targets") != shipped.get("targets"):
        raise SystemExit(f"targets differ: candidate {candidate.get('targets')}, shipped {shipped.get('targets')}")
    out = dict(candidate)
    if "error_model" in shipped:
        learned = shipped["error_model"].get("learned")
        if learned and not trees_present:
            raise SystemExit(f"the shipped error map names {learned.get('file')}, which is not beside the shipped card")
        out["error_model"] = shipped["error_model"]
    if "description" in shipped:
        out["description"] = shipped["description"]
    # The residual step count was chosen on validation for this kind of residual network (each soup step trains it
    # +200 steps from the same start); a run's own card has none, and without it synthesis would take the default.
    shipped_sampling = shipped.get("sampling")
    if isinstance(shipped_sampling, dict) and "residual_steps" in shipped_sampling:
        carried = {k: v for k, v in shipped_sampling.items() if k.startswith("residual_steps")}
        out["sampling"] = {**(candidate.get("sampling") or {}), **carried}
    return out


def main(argv=None) -> int:
    from DCEDiffLib.atomic import atomic_directory, check_output_folder
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.errors import InputError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("residual_run", type=Path)
    parser.add_argument("mean_run", type=Path)
    parser.add_argument("--shipped", type=Path, default=ROOT / "Resources" / "Models")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    try:
        check_output_folder(args.out)
    except InputError as exc:
        raise SystemExit(f"--out {args.out}: expected an empty or new folder ({exc})") from exc
    runs = {STEM: args.residual_run, f"{STEM}_regression": args.mean_run}
    shipped = {stem: json.loads((args.shipped / f"{stem}.json").read_text(encoding="utf-8")) for stem in runs}
    trees_name = shipped[STEM].get("error_model", {}).get("learned", {}).get("file")
    trees = args.shipped / trees_name if trees_name else None
    # every card is built (and refused) before anything is written
    cards = {stem: carried_card(json.loads((run / "model.json").read_text(encoding="utf-8")), shipped[stem],
                                trees is not None and trees.is_file())
             for stem, run in runs.items()}
    # the folder appears only once every file is there and both models load from it
    with atomic_directory(args.out) as tmp:
        for stem, run in runs.items():
            shutil.copyfile(run / "model.safetensors", tmp / f"{stem}.safetensors")
            (tmp / f"{stem}.json").write_text(json.dumps(cards[stem], indent=2), encoding="utf-8")
        if trees is not None:
            shutil.copyfile(trees, tmp / trees_name)
        for stem in runs:
            load_model(tmp / stem)  # the card, the weights' hash and the tree file check out
    print(f"candidate model folder: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
