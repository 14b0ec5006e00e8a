"""Write ``optional_inputs`` into a model card exported before the trainer wrote it, from the card's own recipe.

Usage: .venv/bin/python scripts/add_optional_inputs.py MODEL

MODEL is the model's .safetensors, .json card or common stem. The inputs are those the training recipe recorded in
the card dropped (``training.recipe.augment.drop_pd`` > 0), by the trainer's rule
(``DCEDiffLib.training.model_card.optional_inputs_of_training``): for a residual model the mean network's recipe
(``mean_network.training``) must show it too. A card whose recipe shows no dropout is refused (exit 2): that model
was never trained without PD. The card is rewritten atomically; its ``weights_sha256`` covers only the .safetensors,
so the model stays loadable. See docs/architecture.md, "A missing input (PD)".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from DCEDiffLib.errors import InputError, ModelFileError  # noqa: E402


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.diffusion.model_files import check_card, load_card, model_paths
    from DCEDiffLib.training.model_card import optional_inputs_of_training

    _, card_path = model_paths(args.model)
    card = load_card(card_path)
    recipe = (card.get("training") or {}).get("recipe") or {}
    mean_card = None
    if card["objective"] == "residual":
        mean = card["mean_network"]
        mean_card = {"training": mean.get("training") or {}, "optional_inputs": mean.get("optional_inputs")}
    optional = optional_inputs_of_training(recipe.get("augment") or {}, card["conditions"], mean_card)
    if not optional:
        raise InputError(f"model card {card_path}: its training recipe shows no modality dropout (augment.drop_pd > 0"
                         + (" for both the residual and the mean network" if mean_card is not None else "")
                         + "); this model was not trained to do without PD, so optional_inputs is not written")
    updated = dict(card, optional_inputs=optional)
    check_card(updated, card_path)
    write_text_atomic(card_path, json.dumps(updated, indent=2))
    print(json.dumps({"card": str(card_path), "optional_inputs": optional}))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the model's .safetensors, .json card or stem")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (InputError, ModelFileError) as exc:
        print(f"add_optional_inputs: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
