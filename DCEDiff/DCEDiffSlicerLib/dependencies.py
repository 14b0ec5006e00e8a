"""Python packages the engine needs inside Slicer: torch (a recent enough version) and the packages of
``Resources/requirements.txt``.

Called on Apply only, never at import. Rules:
- torch is checked by its installed *version* (``importlib.metadata``), never by importing it here: the engine runs
  torch in a ``PythonSlicer`` child (crashes like Slicer#9275 end the child, not Slicer). A torch older than
  :data:`TORCH_REQUIREMENT` (left by another extension) does not pass.
- torch is installed through the PyTorch extension (``PyTorchUtilsLogic.installTorch``: light-the-torch picks the
  CUDA or CPU wheel), as TotalSegmentator and MONAIAuto3DSeg do; that installer imports torch into Slicer's process
  once it is installed. Without the extension (a bare Slicer in batch mode) the same light-the-torch install runs in
  a ``PythonSlicer`` child.
- SimpleITK, numpy, requests, vtk and torch are never installed or upgraded through pip by DCEDiff, not even as a
  dependency of a requirement: Slicer ≥ 5.12 gets them in ``skip_packages`` and a constraints file; Slicer 5.10 gets
  the constraints file, which pins the installed versions (``pip install -c``).
- Three modes: ``ask`` (the GUI: a confirmation first), ``install`` without asking (batch mode with
  ``--install-dependencies``), and ``never`` (batch mode by default: fail at once with the command to run; no dialog
  can block a headless Slicer).
- The prostate finder (TAPS: onnxruntime and the lavlab-taps wheel, about 160 MB) is optional and installed only on
  request (:func:`install_prostate_finder`: the module's button, after a confirmation naming its size, or batch
  ``--install-prostate-finder``), never on Apply; whether it is there is the engine's own check, which imports
  nothing into Slicer's process.

Slicer is imported inside the functions; everything above :func:`ensure_dependencies` is plain Python, tested in
``Testing/test_slicer_dependencies.py``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

PROTECTED = ("simpleitk", "numpy", "torch", "torchvision", "requests", "vtk")  # never installed by us through pip
TORCH_MINIMUM = (2, 1)
TORCH_REQUIREMENT = ">=2.1"
LIGHT_THE_TORCH = "light-the-torch>=0.5"
MODES = ("ask", "install", "never")


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


def installed_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _met(requirement: str, version: str) -> bool:
    """Whether an installed ``version`` meets ``requirement``'s bounds (``scipy>=1.9``); True where ``packaging``
    (shipped with Slicer) cannot read the requirement or the version: pip then decides."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.version import InvalidVersion
    except ImportError:
        return True
    try:
        return Requirement(requirement).specifier.contains(version, prereleases=True)
    except (InvalidRequirement, InvalidVersion):
        return True


def _applies(requirement: str) -> bool:
    """Whether ``requirement`` applies to this Python (its environment marker, e.g. ``; sys_platform == 'win32'``)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return True
    try:
        marker = Requirement(requirement).marker
    except InvalidRequirement:
        return True
    return marker is None or marker.evaluate()


def missing_requirements(requirements: List[str]) -> List[str]:
    """The requirements not met: the distribution is not installed, or its installed version is outside the bounds
    (``scikit-image>=0.21`` with 0.19 left by another extension). Only a requirement found here is installed, so a
    too old version left in place would reach the engine; pip upgrades it when asked (``pip install 'x>=v'``)."""
    missing = []
    for requirement in requirements:
        if not _applies(requirement):
            continue
        version = installed_version(_name(requirement))
        if version is None or not _met(requirement, version):
            missing.append(requirement)
    return missing


def version_tuple(version: str) -> Tuple[int, ...]:
    """'2.1.0+cu121' → (2, 1, 0); '2.4.0a0' → (2, 4, 0); the leading numeric release only."""
    parts = []
    for piece in version.split("+", 1)[0].split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() < len(piece):  # '0a0', '1rc1': a pre-release ends the release part
            break
    return tuple(parts)


def torch_status(version: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """``("missing", None)``, ``("too_old", "1.13.1")`` or ``("ok", "2.4.0")``, from the installed metadata only
    (``version`` overrides it, for tests). Never imports torch."""
    version = installed_version("torch") if version is None else version
    if version is None:
        return "missing", None
    return ("ok" if version_tuple(version) >= TORCH_MINIMUM else "too_old"), version


def protected_constraints(versions: Optional[Dict[str, Optional[str]]] = None) -> List[str]:
    """pip constraint lines pinning every installed protected package to its installed version
    (``numpy==2.0.2``, ...), so that no requirement can upgrade or downgrade them as a dependency. Protected
    packages that are not installed are left out (Slicer ships all of them but torch, which is installed apart)."""
    versions = versions if versions is not None else {n: installed_version(n) for n in PROTECTED}
    return [f"{name}=={version}" for name, version in sorted(versions.items()) if version]


def install_command_hint(requirements: List[str], torch: str) -> str:
    """What to run by hand (batch mode without --install-dependencies)."""
    steps = []
    if torch != "ok":
        steps.append(f"PythonSlicer -m pip install {LIGHT_THE_TORCH} && PythonSlicer -m light_the_torch install "
                     f"'torch{TORCH_REQUIREMENT}'")
    if requirements:
        steps.append("PythonSlicer -m pip install " + " ".join(f"'{r}'" for r in requirements))
    return " ; ".join(steps)


def plan(requirements_path) -> dict:
    """What is missing: ``{"torch": status, "torch_version": v, "missing": [...], "requirements": [...]}``."""
    requirements = read_requirements(requirements_path)
    status, version = torch_status()
    return {"torch": status, "torch_version": version, "missing": missing_requirements(requirements),
            "requirements": requirements}


def missing_text(state: dict) -> str:
    """What :func:`plan` found missing, in words ("" when nothing is)."""
    what = []
    if state["torch"] == "missing":
        what.append(f"PyTorch ({TORCH_REQUIREMENT})")
    elif state["torch"] == "too_old":
        what.append(f"PyTorch {TORCH_REQUIREMENT} (installed: {state['torch_version']})")
    for requirement in state["missing"]:
        version = installed_version(_name(requirement))
        what.append(requirement if version is None else f"{requirement} (installed: {version})")
    return ", ".join(what)


def ensure_dependencies(requirements_path, parent=None, mode: str = "ask",
                        log: Optional[Callable[[str], None]] = None) -> bool:
    """Make a recent torch and the packages of ``requirements_path`` available to the engine; True when something
    was installed (the caller times the install apart from the synthesis), False when all was there.

    ``mode``: "ask" (confirm in a dialog first), "install" (no dialog), "never" (raise with the command to run).
    Raises :class:`DependencyError` with a message that says what to do."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {MODES}")
    state = plan(requirements_path)
    if state["torch"] == "ok" and not state["missing"]:
        return False
    if mode == "never":
        raise DependencyError(
            f"missing Python packages: {missing_text(state)}. Run the batch script again with "
            f"--install-dependencies, or install them first: {install_command_hint(state['missing'], state['torch'])}")
    import slicer
    import slicer.util

    if state["torch"] != "ok":
        _ensure_torch(slicer, state, ask=(mode == "ask"), parent=parent)
    if state["missing"]:
        _install_requirements(slicer, state["requirements"], state["missing"], ask=(mode == "ask"), parent=parent)
    return True


def _takes(function, name: str) -> bool:
    """Whether ``function`` has a parameter ``name`` that can be passed by keyword."""
    try:
        parameter = inspect.signature(function).parameters.get(name)
    except (TypeError, ValueError):  # no signature to read: pass nothing it might refuse
        return False
    return parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)


def pip_install_takes(slicer, name: str) -> bool:
    """Whether the running Slicer's ``slicer.util.pip_install`` accepts the keyword ``name``: Slicer 5.10's is
    ``pip_install(requirements)``; from 5.12 it is ``pip_install(requirements, **kwargs)``, which hands the keywords
    to ``slicer.packaging.pip_install`` (``show_progress``, ``requester``, ...), so that one's signature decides."""
    function = getattr(slicer.util, "pip_install", None)
    if function is None:
        return False
    if _takes(function, name):
        return True
    try:
        forwards = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if not forwards:
        return False
    try:
        import slicer.packaging as slicer_packaging
    except ImportError:
        return False
    return _takes(getattr(slicer_packaging, "pip_install", None), name)


def _pip_install(slicer, args: List[str], ask: bool) -> None:
    """``slicer.util.pip_install(args)``; without ``ask`` (batch --install-dependencies) with
    ``show_progress=False`` where this Slicer's pip_install takes it: from 5.12 it shows a modal progress dialog by
    default, which a headless Slicer (--no-main-window) may wait on; 5.10's takes no keyword and shows none."""
    if not ask and pip_install_takes(slicer, "show_progress"):
        slicer.util.pip_install(args, show_progress=False)
    else:
        slicer.util.pip_install(args)


def _python_slicer(slicer) -> str:
    from DCEDiffSlicerLib.process_runner import python_slicer_executable

    return python_slicer_executable(getattr(slicer.app, "slicerHome", None))


def _run_python_module(slicer, args: List[str]) -> None:
    """``PythonSlicer -m <args>`` with Slicer's environment, its output in the log; raises on failure."""
    import subprocess

    proc = slicer.util.launchConsoleProcess([_python_slicer(slicer), "-m", *args],
                                            updateEnvironment={"PYTHONIOENCODING": "utf-8", "PYTHONUTF8": "1"})
    try:
        slicer.util.logProcessOutput(proc)
    except subprocess.CalledProcessError as exc:
        raise DependencyError(f"'{' '.join(args)}' failed (exit code {exc.returncode}); see the Python console") \
            from exc


def _ensure_torch(slicer, state: dict, ask: bool, parent=None) -> None:
    status, version = state["torch"], state["torch_version"]
    if status == "too_old" and "torch" in sys.modules:
        # not "uninstall it first": pip cannot remove a loaded torch's libraries on Windows, and a half-removed torch
        # is broken for every module (the PyTorch extension's uninstall says "Probably PyTorch is already in use")
        raise DependencyError(
            f"PyTorch {version} is loaded in this Slicer session (by another module) and is older than DCEDiff needs "
            f"({TORCH_REQUIREMENT}); a loaded PyTorch cannot be replaced. Please restart Slicer, then press Apply in "
            f"DCEDiff before opening the module that loads PyTorch: DCEDiff then installs PyTorch {TORCH_REQUIREMENT} "
            "in its place, after asking.")
    extension = _pytorch_extension()
    if extension is not None:
        # The PyTorch extension's own installer (light-the-torch in a child, the prompt skipped under --testing), as
        # TotalSegmentator and MONAIAuto3DSeg use it; it imports torch into this process once installed.
        if extension.installTorch(askConfirmation=ask, torchVersionRequirement=TORCH_REQUIREMENT) is None:
            raise DependencyError("PyTorch was not installed (declined). DCEDiff cannot run without it; press Apply "
                                  "again, or install it from the 'PyTorch Utils' module.")
    else:
        _install_torch_without_the_extension(slicer, status, version, ask, parent)
    importlib.invalidate_caches()
    after, new_version = torch_status()
    if after != "ok":
        raise DependencyError(f"installing PyTorch {TORCH_REQUIREMENT} failed (found: {new_version or 'none'}); "
                              "see the Python console, or use the 'PyTorch Utils' module of the PyTorch extension")


def _pytorch_extension():
    """``PyTorchUtilsLogic`` of the PyTorch extension (SlicerPyTorch, a declared dependency), or None where it is
    not installed (a Slicer without it: batch mode on a bare install). Imported here, on Apply, never at import."""
    try:
        import PyTorchUtils
    except ImportError:
        return None
    return PyTorchUtils.PyTorchUtilsLogic()


def _install_torch_without_the_extension(slicer, status: str, version: Optional[str], ask: bool,
                                         parent=None) -> None:
    """What the PyTorch extension does (light-the-torch picks the CUDA build for the driver, else CPU), for a Slicer
    without it, in a ``PythonSlicer`` child."""
    if ask:
        text = ("DCEDiff needs PyTorch, which is not installed yet." if status == "missing" else
                f"DCEDiff needs PyTorch {TORCH_REQUIREMENT}; the installed version is {version}.")
        if not slicer.util.confirmOkCancelDisplay(
                text + " Install it now? This downloads about 1-3 GB and takes a few minutes (light-the-torch picks "
                "the CUDA build that fits your GPU driver, else the CPU build).", "DCEDiff: install PyTorch",
                parent=parent):
            # no 'PyTorch Utils' module to point to here: this Slicer has no PyTorch extension
            raise DependencyError("PyTorch was not installed (declined). DCEDiff cannot run without it; press Apply "
                                  "again, or install the PyTorch extension (Extensions Manager), restart Slicer and "
                                  "press Apply.")
    if installed_version("light-the-torch") is None:
        _pip_install(slicer, [LIGHT_THE_TORCH], ask)
    _run_python_module(slicer, ["light_the_torch", "install", f"torch{TORCH_REQUIREMENT}"])


def _constraints_file() -> str:
    handle = tempfile.NamedTemporaryFile("w", suffix="-dcediff-constraints.txt", delete=False, encoding="utf-8")
    with handle:
        handle.write("\n".join(protected_constraints()) + "\n")
    return handle.name


def _install_requirements(slicer, requirements: List[str], missing: List[str], ask: bool, parent=None) -> None:
    constraints = _constraints_file()
    try:
        try:
            import slicer.packaging as slicer_packaging  # Slicer >= 5.12 (a submodule: getattr(slicer, ...) misses it)
        except ImportError:
            slicer_packaging = None
        if slicer_packaging is not None and hasattr(slicer_packaging, "pip_ensure"):
            from packaging.requirements import Requirement

            try:
                # skip_in_testing=False: pip_ensure installs nothing under --testing by default, and the check
                # below would then report a failed install; asking to install (Apply, --install-dependencies) is
                # consent enough, whatever the mode Slicer runs in. prompt_restart and show_progress follow ``ask``:
                # by default pip_ensure opens a progress dialog and, when pip updated a package already imported,
                # a modal "restart now?" question (skipped only under --testing), which nobody answers in batch mode
                # (--install-dependencies); the engine runs in a new PythonSlicer process, so no restart is needed
                slicer_packaging.pip_ensure([Requirement(r) for r in requirements], constraints=constraints,
                                            skip_packages=list(PROTECTED), prompt_install=ask, requester="DCEDiff",
                                            skip_in_testing=False, prompt_restart=ask, show_progress=ask)
            except Exception as exc:  # noqa: BLE001  pip or the dialog: one message that says what to do
                raise DependencyError(f"DCEDiff needs these Python packages: {', '.join(missing)} ({exc})") from exc
        else:  # Slicer 5.10 / 5.11
            if ask and not slicer.util.confirmOkCancelDisplay(
                    "DCEDiff needs a few Python packages that are not installed yet. Install them now "
                    "(download from the Python Package Index)?", "DCEDiff: install Python packages",
                    detailedText="Packages that will be installed:\n" + "\n".join(missing), parent=parent):
                raise DependencyError(
                    f"DCEDiff needs these Python packages, which were not installed: {', '.join(missing)}")
            for requirement in missing:  # one by one, so that the log shows which one failed
                try:
                    _pip_install(slicer, [requirement, "-c", constraints], ask)
                except Exception as exc:  # noqa: BLE001
                    raise DependencyError(f"installing {requirement} failed ({exc}); see the Python console for "
                                          "pip's output") from exc
    finally:
        Path(constraints).unlink(missing_ok=True)
    importlib.invalidate_caches()
    still = missing_requirements(requirements)
    if still:
        raise DependencyError(f"installing {', '.join(still)} failed; see the Python console for pip's output")


# ------------------------------------------------------------------ the prostate finder (optional, on request only)
# TAPS (DCEDiffLib/prostate_localization.py) centres the crop on the gland; without it the crop is centred on the
# T2W's field of view unless a point is placed. onnxruntime first (its numpy pinned by the constraints file), then the
# TAPS wheel with --no-deps: its declared dependencies would pull onnxruntime-gpu (which clashes with onnxruntime) and
# MONAI. Sizes measured installed (site-packages folders of onnxruntime 1.32.0 and lavlab-taps 1.1.2, docs/slicer.md).
PROSTATE_RUNTIME = "onnxruntime>=1.16"     # pyproject.toml's "prostate" extra
PROSTATE_MODEL = "lavlab-taps==1.1.2"      # prostate_localization.MODEL_DISTRIBUTION == MODEL_VERSION
PROSTATE_FINDER_SIZE = "about 160 MB"      # onnxruntime 80 MB + the TAPS model 80 MB
PROSTATE_INSTALLED, PROSTATE_PRESENT, PROSTATE_DECLINED = "installed", "already installed", "declined"
PROSTATE_DECLINED_TEXT = ("The prostate finder was not installed (declined); nothing was changed. The crop is centred "
                          "on the T2W's field-of-view centre unless you place a point at the prostate with the centre "
                          "selector.")


def prostate_finder_missing() -> List[str]:
    """What the prostate finder lacks in this Python (``["onnxruntime", "lavlab-taps"]``, [] when installed), by the
    engine's own check (``prostate_localization.missing_parts``: ``importlib.util.find_spec``, which imports neither
    onnxruntime nor taps into Slicer's process)."""
    importlib.invalidate_caches()  # a package pip just installed is found
    from DCEDiffLib import prostate_localization

    return prostate_localization.missing_parts()


def prostate_finder_question() -> str:
    """The confirmation dialog's text: what the finder does, what is installed and its size."""
    return (f"Install the prostate finder ({PROSTATE_FINDER_SIZE})? DCEDiff then centres its crop on the prostate "
            "that the TAPS segmentation model finds on the T2W, instead of the T2W's field-of-view centre, which can "
            "be centimetres off the gland. This downloads and installs into Slicer's Python onnxruntime (about 80 MB) "
            f"and the TAPS model {PROSTATE_MODEL} (about 80 MB, without its dependencies); the model adds a few "
            "seconds to each run (about 2.5 s on a 2-core CPU).")


def install_prostate_finder(parent=None, mode: str = "ask") -> str:
    """Install the prostate finder where it is missing: :data:`PROSTATE_PRESENT` (nothing done, no dialog),
    :data:`PROSTATE_DECLINED` (the user said no in the dialog; nothing installed) or :data:`PROSTATE_INSTALLED`.
    ``mode``: "ask" (the GUI button: a confirmation naming the size first) or "install" (batch
    --install-prostate-finder: no dialog, no progress dialog). Raises :class:`DependencyError` when pip fails."""
    if mode not in ("ask", "install"):
        raise ValueError(f"mode {mode!r}: expected 'ask' or 'install'")
    missing = prostate_finder_missing()
    if not missing:
        return PROSTATE_PRESENT
    import slicer
    import slicer.util

    ask = mode == "ask"
    if ask and not slicer.util.confirmOkCancelDisplay(
            prostate_finder_question(), "DCEDiff: install the prostate finder", parent=parent,
            detailedText="pip install " + PROSTATE_RUNTIME + "\npip install --no-deps " + PROSTATE_MODEL):
        return PROSTATE_DECLINED
    constraints = _constraints_file()  # pins numpy & co.: onnxruntime's dependencies cannot move them
    steps = ([[PROSTATE_RUNTIME, "-c", constraints]] if "onnxruntime" in missing else []) + (
        [["--no-deps", PROSTATE_MODEL]] if "lavlab-taps" in missing else [])
    try:
        for args in steps:
            try:
                _pip_install(slicer, args, ask)
            except Exception as exc:  # noqa: BLE001  pip's failure: one message that says what to do
                raise DependencyError(f"installing the prostate finder failed at 'pip install {' '.join(args)}' "
                                      f"({exc}); see the Python console for pip's output") from exc
    finally:
        Path(constraints).unlink(missing_ok=True)
    still = prostate_finder_missing()
    if still:
        raise DependencyError(f"installing the prostate finder failed: {', '.join(still)} still not found; see the "
                              "Python console for pip's output")
    return PROSTATE_INSTALLED
