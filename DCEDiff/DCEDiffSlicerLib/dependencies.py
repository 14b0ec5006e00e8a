"""Python packages the engine needs inside Slicer: torch through the PyTorch extension (PyTorchUtils), the rest
from ``Resources/requirements.txt`` through Slicer's pip helpers.

Called on Apply only, never at import; asks the user first; never installs or upgrades SimpleITK or numpy (Slicer
ships its own, and replacing them breaks Slicer). Slicer is imported inside the functions, so
:func:`read_requirements` and :func:`missing_requirements` are usable (and tested) outside Slicer.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import List, Optional

PROTECTED = ("simpleitk", "numpy", "torch", "torchvision", "requests", "vtk")  # never installed by us through pip
TORCH_REQUIREMENT = ">=2.1"


class DependencyError(RuntimeError):
    """A package is missing and could not be (or was not allowed to be) installed; the message says what to do."""


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].strip().lower().replace("_", "-")


def read_requirements(path) -> List[str]:
    """The requirement lines of a requirements.txt (comments and blanks dropped), protected packages removed."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and _name(line) not in PROTECTED:
            lines.append(line)
    return lines


def missing_requirements(requirements: List[str]) -> List[str]:
    """The requirements whose distribution is not installed at all (version bounds are left to pip)."""
    missing = []
    for requirement in requirements:
        try:
            importlib.metadata.version(_name(requirement))
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


def torch_installed() -> bool:
    try:
        importlib.metadata.version("torch")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def ensure_dependencies(requirements_path, parent=None) -> None:
    """Make torch and the packages of ``requirements_path`` available in Slicer's Python, asking first.

    Raises :class:`DependencyError` if the PyTorch extension is absent or the user declines."""
    import slicer
    import slicer.util

    requirements = read_requirements(requirements_path)
    missing = missing_requirements(requirements)
    if not torch_installed():
        try:
            import PyTorchUtils  # the PyTorch extension (EXTENSION_DEPENDS PyTorch); imported only here
        except ModuleNotFoundError as exc:
            raise DependencyError("DCEDiff needs the 'PyTorch' extension: install it from the Extensions Manager, "
                                  "restart Slicer, then press Apply again.") from exc
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True,
                                                               torchVersionRequirement=TORCH_REQUIREMENT)
        if torch is None:
            raise DependencyError("PyTorch was not installed (declined). DCEDiff cannot run without it; "
                                  "install it from the 'PyTorch Util' module.")
    if not missing:
        return
    packaging = getattr(slicer, "packaging", None)
    if packaging is not None and hasattr(packaging, "pip_ensure"):  # Slicer >= 5.12
        try:
            packaging.pip_ensure(requirements, skip_packages=list(PROTECTED), requester="DCEDiff")
        except RuntimeError as exc:
            raise DependencyError(f"DCEDiff needs these Python packages: {', '.join(missing)} ({exc})") from exc
        return
    if not slicer.util.confirmOkCancelDisplay(
            "DCEDiff needs a few Python packages that are not installed yet. Install them now "
            "(download from the Python Package Index)?", "DCEDiff: install Python packages",
            detailedText="Packages that will be installed:\n" + "\n".join(missing), parent=parent):
        raise DependencyError(f"DCEDiff needs these Python packages, which were not installed: {', '.join(missing)}")
    for requirement in missing:  # one by one, so that the log shows which one failed
        slicer.util.pip_install(requirement)
    still = missing_requirements(requirements)
    if still:
        raise DependencyError(f"installing {', '.join(still)} failed; see the Python console for pip's output")
