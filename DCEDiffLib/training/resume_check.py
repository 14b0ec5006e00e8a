"""May a run folder's checkpoint be resumed with this configuration? Only if the recipe is the same.

A resumed run continues the same model: if the objective, the network, the inputs, the crops or any other part of
the recipe changed, the weights would be trained with two recipes while the model card (written from the current
configuration) describes only the second. Keys that steer the run but not what it learns (how long, how often it
logs, validates and checkpoints, how many threads) may change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple

from DCEDiffLib.errors import InputError

RUN_CONTROL_KEYS = frozenset({
    "iterations", "checkpoint_every", "validate_every", "validation_slices", "lesion_validation",
    "sample_image_every", "sample_steps", "log_every", "tensorboard", "threads", "loader_workers",
    # bf16 or fp32 arithmetic: "auto" means one on a GPU and the other on most CPUs, and a run may move
    "mixed_precision",
})


def recipe_changes(saved: dict, config: dict) -> List[Tuple[str, object, object]]:
    """(key, saved value, new value) for every recipe key that differs between ``saved`` and ``config``."""
    changes = []
    for key in sorted(set(saved) | set(config)):
        if key in RUN_CONTROL_KEYS or key not in saved or key not in config:
            continue  # a key an older version did not save cannot be compared
        if saved[key] != config[key]:
            changes.append((key, saved[key], config[key]))
    return changes


def check_resumable(checkpoint_meta: Path, config: dict, out_dir: Path) -> None:
    """Raise :class:`InputError` when the checkpoint at ``checkpoint_meta`` (its JSON) was trained with another
    recipe than ``config``; nothing to check when there is no checkpoint or it saved no configuration."""
    if not checkpoint_meta.is_file():
        return
    try:
        saved = json.loads(checkpoint_meta.read_text(encoding="utf-8")).get("config")
    except (OSError, ValueError, AttributeError):
        return  # load_checkpoint reports an unreadable checkpoint
    if not isinstance(saved, dict):
        return
    changes = recipe_changes(saved, config)
    if changes:
        listed = "; ".join(f"{key}: {old!r} there, {new!r} now" for key, old, new in changes[:4])
        more = f" (and {len(changes) - 4} more)" if len(changes) > 4 else ""
        raise InputError(
            f"--out {out_dir}: its checkpoint was trained with another recipe ({listed}{more}); resuming would train "
            "one model with two recipes. Resume with the run's own configuration "
            f"({out_dir / 'config.json'}), start over with --fresh, or start a new --out (\"init_weights\" starts it "
            "from this run's model)")
