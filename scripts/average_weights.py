"""The element-wise average of two networks of the same architecture (weights (1 − α)·A + α·B), saved as a model file
with A's card.

Why: two fine-tunes from one starting network lie on one path through weight space; their average can keep what each
gained (docs/model_quality.md, thirty-second to thirty-fourth steps: half the shipped mean and half the lesion-pattern
fine-tune). Both model files must have the same architecture and the same parameter names and shapes; the card's
description records the average, and its ``weights_sha256`` is that of the new weights.

Usage: .venv/bin/python scripts/average_weights.py A.safetensors B.safetensors OUT.safetensors [--alpha 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def average_state(a: dict, b: dict, alpha: float) -> dict:
    """(1 − alpha)·a + alpha·b per tensor, in float32; refuses different parameter names or shapes."""
    if a.keys() != b.keys():
        missing = sorted(set(a) ^ set(b))[:5]
        raise ValueError(f"the two networks have different parameters (e.g. {missing}); expected the same network")
    for key in a:
        if a[key].shape != b[key].shape:
            raise ValueError(f"parameter {key}: shape {tuple(a[key].shape)} against {tuple(b[key].shape)}")
    return {k: (1 - alpha) * a[k].float() + alpha * b[k].float() for k in a}


def average_models(a_path: Path, b_path: Path, out_path: Path, alpha: float = 0.5):
    """Write the average of the model files ``a_path`` and ``b_path`` to ``out_path`` (with its card); returns the
    written paths."""
    from safetensors.torch import load_file

    from DCEDiffLib.diffusion.model_files import build_from_card, save_model

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha}; expected a number in [0, 1]")
    card = json.loads(Path(a_path).with_suffix(".json").read_text(encoding="utf-8"))
    card_b = json.loads(Path(b_path).with_suffix(".json").read_text(encoding="utf-8"))
    for key in ("architecture", "objective", "parameterization", "conditions", "targets"):
        if card.get(key) != card_b.get(key):
            raise ValueError(f"the two cards differ in {key!r}; expected the same network and task")
    network = build_from_card(card)
    network.load_state_dict(average_state(load_file(str(a_path)), load_file(str(b_path)), alpha))
    note = (f" Its weights are the element-wise average {1 - alpha:g} × {Path(a_path).name} (sha256 "
            f"{card.get('weights_sha256', '?')[:8]}…) + {alpha:g} × {Path(b_path).name} (sha256 "
            f"{card_b.get('weights_sha256', '?')[:8]}…) (scripts/average_weights.py).")
    card = dict(card, description=card.get("description", "") + note)
    return save_model(network, card, out_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of B (default 0.5)")
    args = parser.parse_args()
    from DCEDiffLib.errors import ModelFileError

    try:
        written = average_models(args.a, args.b, args.out, args.alpha)
    except (OSError, ValueError, ModelFileError) as error:
        print(f"average_weights: {error}", file=sys.stderr)
        return 2
    print(*written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
