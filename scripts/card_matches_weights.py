#!/usr/bin/env python3
"""Exit 0 when a model card's ``weights_sha256`` is the SHA-256 of the weights file, else 1 (with a line saying so).

    python scripts/card_matches_weights.py CARD.json WEIGHTS.safetensors

Used by scripts/gpu_soup.sh's packer, which copies a run's best.json and best.safetensors while training may write
a new pair: a card paired with another validation's weights is copied again rather than sent back.
"""

from __future__ import annotations

import hashlib
import json
import sys


def matches(card_path: str, weights_path: str) -> bool:
    """Whether the card at ``card_path`` names the SHA-256 of the file at ``weights_path``."""
    try:
        with open(card_path, encoding="utf-8") as handle:
            card = json.load(handle)
    except (OSError, ValueError):
        return False
    digest = hashlib.sha256()
    with open(weights_path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return isinstance(card, dict) and card.get("weights_sha256") == digest.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if not matches(sys.argv[1], sys.argv[2]):
        print(f"{sys.argv[1]} does not name the SHA-256 of {sys.argv[2]}", file=sys.stderr)
        sys.exit(1)
