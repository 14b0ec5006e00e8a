"""Where the shipped model lives, and how a model argument resolves to files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from DCEDiffLib.errors import ModelFileError


def _resources_dir() -> Path:
    """Where the shipped model and sample case are: inside the package (``DCEDiffLib/_resources``) when installed
    from a wheel (``pip install .``, see pyproject.toml), else ``Resources/`` next to ``DCEDiffLib/`` (the
    repository, an editable install, the installed Slicer extension)."""
    packaged = Path(__file__).resolve().parent / "_resources"
    if (packaged / "Models").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "Resources"


RESOURCES_DIR = _resources_dir()
SHIPPED_MODEL_NAME = "dcediff_cpu_phantom"
SAMPLE_CASE_DIR = RESOURCES_DIR / "SampleData" / "phantom_case"


REGRESSION_MODEL_NAME = "dcediff_cpu_phantom_regression"


def shipped_regression_path() -> Path:
    """The shipped regression U-Net (the learned baseline; also the mean network inside the shipped model)."""
    return RESOURCES_DIR / "Models" / f"{REGRESSION_MODEL_NAME}.safetensors"


def shipped_model_path() -> Path:
    """The shipped model's weights file (the card is the same stem with .json)."""
    return RESOURCES_DIR / "Models" / f"{SHIPPED_MODEL_NAME}.safetensors"


GENERIC_STEMS = ("model", "best")  # what dcediff train names every run's exports


def model_name(weights: Path) -> str:
    """How results name a model: its file stem, with the run folder for the generic names training exports
    (``run3/model`` rather than ``model``, which every trained model is called)."""
    weights = Path(weights)
    return f"{weights.parent.name}/{weights.stem}" if weights.stem in GENERIC_STEMS and weights.parent.name \
        else weights.stem


def resolve_model(model: Optional[str]) -> Path:
    """A model argument (None = the shipped model; a .safetensors/.json path or stem) → weights path."""
    if model is None:
        path = shipped_model_path()
        if not path.is_file():
            raise ModelFileError(f"the shipped model {path} is missing; reinstall DCEDiff or pass --model")
        return path
    from DCEDiffLib.diffusion.model_files import refuse_folder  # here: model_files imports torch

    path = Path(model)
    refuse_folder(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    elif path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    return path
