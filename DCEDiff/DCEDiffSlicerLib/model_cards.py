"""A one-line description of a DCEDiff model from its ``.json`` card (plain Python, no Slicer): what the module
shows under the model field, so that the user sees which model will run, what it was trained on and how it scored
before looking at a result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Tuple


def _first_test_metrics(metrics: dict) -> Optional[str]:
    # the engine's digits (metrics.md, the metrics table, report.png): a card's 27.9 dB reads as evaluate wrote it
    from DCEDiffLib.evaluation.tables import format_value, format_with_unit

    for key, block in metrics.items():
        if not (isinstance(block, dict) and key.startswith("test")):
            continue
        scores = block.get("samples_4") or block.get("samples_1") or block
        parts = []
        for target in ("early", "late"):
            values = scores.get(target) if isinstance(scores, dict) else None
            if isinstance(values, dict) and values.get("psnr_db") is not None:
                part = f"{target} PSNR {format_with_unit(values['psnr_db'], 'psnr')}"
                if values.get("ssim") is not None:
                    part += f", SSIM {format_value(values['ssim'], 'ssim')}"
                parts.append(part)
        if parts:
            return f"{key.replace('_', ' ')}: " + "; ".join(parts)
    return None


def summary(weights_path) -> str:
    """'<name>: trained on <data>; <test metrics>' from the card next to ``weights_path`` (same stem, .json)."""
    path = Path(weights_path)
    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        return f"{path.name} (model card {card_path.name} missing)"
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{path.name} (unreadable model card: {exc})"
    parts = [path.stem]
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    if training.get("data"):
        parts.append(f"trained on {training['data']}")
    metrics = _first_test_metrics(card.get("metrics") or {})
    if metrics:
        parts.append(metrics)
    if card.get("created_by"):
        parts.append(f"made by {card['created_by']}")
    return "; ".join(parts)


def optional_inputs(weights_path) -> Tuple[str, ...]:
    """The inputs the model can do without (``pd`` for a model trained with ``augment.drop_pd``), read from its
    card with the engine's rule (``DCEDiffLib.modalities.missing_inputs_allowed``); () when the card is missing or
    unreadable (the engine then refuses with the reason)."""
    from DCEDiffLib.modalities import missing_inputs_allowed

    card_path = Path(weights_path).with_suffix(".json")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    return missing_inputs_allowed(card) if isinstance(card, dict) else ()


def default_steps(weights_path, sampler: str) -> int:
    """The steps the model runs with ``sampler`` when the user does not choose (the engine's rule,
    ``DCEDiffLib.sampling_steps.resolve_steps``); the engine default when the card is missing or unreadable."""
    from DCEDiffLib import defaults
    from DCEDiffLib.sampling_steps import resolve_steps

    try:
        card = json.loads(Path(weights_path).with_suffix(".json").read_text(encoding="utf-8"))
        return resolve_steps(card if isinstance(card, dict) else {}, sampler)
    except (OSError, ValueError, TypeError):
        return defaults.DEFAULT_STEPS
