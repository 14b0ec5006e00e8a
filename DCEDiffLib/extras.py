"""Optional features and the pip extra that brings each one.

The core install (what 3D Slicer installs: torch, numpy, SimpleITK, safetensors, tqdm) synthesizes; the metrics
against an acquired DCE need scipy and scikit-image, the report figure needs matplotlib (``dcediff[eval]``).
Without them, those outputs are skipped with one line on stderr naming the extra, never a traceback; a command
that cannot do its job without them (``dcediff evaluate``, ``dcediff benchmark``) is refused before any work.
No torch import here (the Slicer GUI process may import it).
"""

from __future__ import annotations

import importlib.util
from typing import Callable, Dict, List, Optional, Tuple

# feature → (what is skipped without it, import names it needs, the extra that brings them)
FEATURES: Dict[str, Tuple[str, Tuple[str, ...], str]] = {
    "metrics": ("metrics.json (PSNR/SSIM/MAE against the acquired DCE)", ("scipy", "skimage"), "eval"),
    "report": ("report.png", ("matplotlib",), "eval"),
    "sample_image": ("the training sample image (samples/step_*.png)", ("matplotlib",), "eval"),
}
# job → (what it is, import names it needs, the extra that brings them): refused up front without them
REQUIRED: Dict[str, Tuple[str, Tuple[str, ...], str]] = {
    "evaluate": ("dcediff evaluate (metrics, body and lesion masks, FID and report.png)",
                 ("scipy", "skimage", "matplotlib"), "eval"),
    "benchmark": ("dcediff benchmark (quality against the acquired DCE)", ("scipy", "skimage"), "eval"),
    "lesion_masks": ("training with the urine region weight or a lesion contrast/correlation loss (its masks)",
                     ("scipy",), "eval"),
}
DISTRIBUTIONS = {"skimage": "scikit-image"}
_said: set = set()


def missing_modules(feature: str) -> List[str]:
    """Distribution names of the modules ``feature`` (of FEATURES or REQUIRED) needs that cannot be imported."""
    missing = []
    for module in (FEATURES.get(feature) or REQUIRED[feature])[1]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(DISTRIBUTIONS.get(module, module))
    return missing


def skip_message(feature: str) -> Optional[str]:
    """The one line saying what is skipped and which extra brings it, or None when ``feature`` is available."""
    missing = missing_modules(feature)
    if not missing:
        return None
    what, _, extra = FEATURES[feature]
    return (f"dcediff: {what} skipped: needs {', '.join(missing)} (pip install \"dcediff[{extra}]\")")


def extra_available(feature: str, say: Optional[Callable[[str], None]] = None) -> bool:
    """True when ``feature`` can run; otherwise says so once per process (stderr by default) and returns False."""
    message = skip_message(feature)
    if message is None:
        return True
    if feature not in _said:
        _said.add(feature)
        if say is None:
            from DCEDiffLib.progress import say  # on a line of its own, above a running progress bar
        say(message)
    return False


def require_extra(job: str) -> None:
    """Raise :class:`MissingExtraError` naming the packages and the extra when ``job`` (a REQUIRED key) cannot run:
    said before any work, not as a traceback part-way through."""
    missing = missing_modules(job)
    if missing:
        from DCEDiffLib.errors import MissingExtraError

        what, _, extra = REQUIRED[job]
        raise MissingExtraError(f"{what} needs {', '.join(missing)}, not installed here: "
                                f"pip install \"dcediff[{extra}]\"")
