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


# ``init_weights`` only starts a run (a resumed run takes its weights from the checkpoint); ``mean_model`` is compared
# by the weights it names, not by how its path is spelled (a run folder moved to another machine keeps its mean).
_NOT_COMPARED = frozenset({"init_weights"})


def _weights_sha(path: object) -> object:
    """The ``weights_sha256`` of the card beside a model path, or the path itself when there is no readable card."""
    try:
        card = json.loads(Path(str(path)).with_suffix(".json").read_text(encoding="utf-8"))
        return card.get("weights_sha256") or path
    except (OSError, ValueError, AttributeError):
        return path


def recipe_changes(saved: dict, config: dict) -> List[Tuple[str, object, object]]:
    """(key, saved value, new value) for every recipe key that differs between ``saved`` and ``config``."""
    changes = []
    for key in sorted(set(saved) | set(config)):
        if key in RUN_CONTROL_KEYS or key in _NOT_COMPARED or key not in saved or key not in config:
            continue  # a key an older version did not save cannot be compared
        if saved[key] == config[key]:
            continue
        if key == "mean_model" and _weights_sha(saved[key]) == _weights_sha(config[key]):
            continue
        changes.append((key, saved[key], config[key]))
    return changes


def saved_recipe_changes(checkpoint_meta: Path, config: dict) -> List[Tuple[str, object, object]]:
    """:func:`recipe_changes` against the configuration a checkpoint saved ([] without a checkpoint or one): the
    copy inside its tensors file where there is one, as the resume itself reads it (the JSON beside it may be stale
    or missing), else the JSON."""
    from DCEDiffLib.training.checkpoint import embedded_meta_or_none

    saved = embedded_meta_or_none(Path(checkpoint_meta).with_suffix(".safetensors"))
    if saved is None and Path(checkpoint_meta).is_file():
        try:
            saved = json.loads(Path(checkpoint_meta).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # load_checkpoint reports an unreadable checkpoint
    config_saved = saved.get("config") if isinstance(saved, dict) else None
    return recipe_changes(config_saved, config) if isinstance(config_saved, dict) else []


def describe_changes(changes: List[Tuple[str, object, object]]) -> str:
    listed = "; ".join(f"{key}: {old!r} there, {new!r} now" for key, old, new in changes[:4])
    return listed + (f" (and {len(changes) - 4} more)" if len(changes) > 4 else "")


def check_resumable(checkpoint_meta: Path, config: dict, out_dir: Path, change_recipe: bool = False
                    ) -> List[Tuple[str, object, object]]:
    """The recipe changes against the checkpoint at ``checkpoint_meta`` (its JSON). Raise :class:`InputError` when
    there are some and ``change_recipe`` (``dcediff train --change-recipe``: a curriculum's next stage, on purpose)
    is false; nothing to check when there is no checkpoint or it saved no configuration."""
    changes = saved_recipe_changes(checkpoint_meta, config)
    if changes and not change_recipe:
        raise InputError(
            f"--out {out_dir}: its checkpoint was trained with another recipe ({describe_changes(changes)}); resuming "
            "would train one model with two recipes. Resume with the run's own configuration "
            f"({out_dir / 'config.json'}), start over with --fresh, start a new --out (\"init_weights\" starts it "
            "from this run's model), or pass --change-recipe for a curriculum's next stage (the card records it)")
    return changes
