"""DCEDiff/DCEDiffSlicerLib/dependencies.py: the torch version check (metadata only, torch never imported in Slicer's
GUI process), the protected packages (numpy, SimpleITK, ... pinned for pip), the three modes (ask / install /
never) and the Slicer >= 5.12 (``import slicer.packaging``) and 5.10 (``slicer.util.pip_install``) install paths.

Slicer's pip helpers and dialogs cannot run here; the tests replace them with recording stand-ins (named below) and
use the real ``slicer`` package of the slicer-core wheel for the rest."""

import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
from DCEDiffSlicerLib import dependencies as dep  # noqa: E402

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

MISSING = "dcediff-no-such-package>=1.0"


@pytest.fixture
def requirements(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text(f"# comment\nnumpy>=2\n{MISSING}\nSimpleITK\n", encoding="utf-8")
    return path


def test_versions_and_torch_status_never_import_torch():
    assert dep.version_tuple("2.1.0+cu121") == (2, 1, 0)
    assert dep.version_tuple("2.4.0a0") == (2, 4, 0)
    assert dep.version_tuple("1.13.1") == (1, 13, 1)
    assert dep.torch_status("1.13.1") == ("too_old", "1.13.1")
    assert dep.torch_status("2.0.1") == ("too_old", "2.0.1")
    assert dep.torch_status("2.5.1+cpu") == ("ok", "2.5.1+cpu")
    assert dep.torch_status("10.0") == ("ok", "10.0")
    source = (ROOT / "DCEDiff" / "DCEDiffSlicerLib" / "dependencies.py").read_text(encoding="utf-8")
    import re

    assert not re.search(r"^\s*(import torch|from torch)", source, re.M)


def test_protected_packages_are_dropped_from_requirements_and_pinned_for_pip(requirements):
    assert dep.read_requirements(requirements) == [MISSING]
    assert dep.protected_constraints({"numpy": "2.0.2", "simpleitk": "2.4.0", "torch": None}) == \
        ["numpy==2.0.2", "simpleitk==2.4.0"]
    pins = dep.protected_constraints()
    import numpy

    assert f"numpy=={numpy.__version__}" in pins


def test_never_mode_fails_at_once_with_the_command_to_run(requirements, monkeypatch):
    monkeypatch.setattr(dep, "installed_version", lambda name: "1.13.1" if name == "torch" else None)
    with pytest.raises(dep.DependencyError) as info:
        dep.ensure_dependencies(requirements, mode="never")
    message = str(info.value)
    assert "--install-dependencies" in message and MISSING in message
    assert "PyTorch >=2.1 (installed: 1.13.1)" in message
    assert "light_the_torch install 'torch>=2.1'" in message


def test_a_package_older_than_the_requirement_counts_as_missing(tmp_path, monkeypatch):
    """requirements.txt's bounds (scikit-image>=0.21, scipy>=1.9) are met, not only the names installed: a scipy
    1.5 left in Slicer's Python by another extension used to pass the check, so pip never ran (pip_ensure's own
    version check and ``pip install 'scipy>=1.9'`` only run on what the check found) and the engine got the old one.
    The real ``packaging`` (which Slicer ships) reads the bounds; installed versions are replaced (a stand-in)."""
    path = tmp_path / "requirements.txt"
    path.write_text("scipy>=1.9\ntqdm>=4.60\nnot-here>=1\nwinonly>=1 ; sys_platform == 'no-such-os'\n",
                    encoding="utf-8")
    versions = {"scipy": "1.5.4", "tqdm": "4.66.1", "torch": "2.5.1"}
    monkeypatch.setattr(dep, "installed_version", lambda name: versions.get(name))
    state = dep.plan(path)
    assert state["missing"] == ["scipy>=1.9", "not-here>=1"]
    assert "scipy>=1.9 (installed: 1.5.4)" in dep.missing_text(state)
    with pytest.raises(dep.DependencyError, match=r"scipy>=1\.9 \(installed: 1\.5\.4\)"):
        dep.ensure_dependencies(path, mode="never")
    versions["scipy"], versions["not-here"] = "1.11.4", "1.0"
    assert dep.plan(path)["missing"] == []
    dep.ensure_dependencies(path, mode="never")  # all met: nothing to do, no error


class PackagingStandIn(types.ModuleType):
    """Test double of Slicer >= 5.12's ``slicer.packaging`` (pip_ensure records its arguments, installs nothing)."""

    def __init__(self):
        super().__init__("slicer.packaging")
        self.calls = []

    def pip_ensure(self, requirements, constraints=None, skip_packages=None, prompt_install=True, requester=None,
                   skip_in_testing=True, prompt_restart=True, show_progress=True):
        # the real one returns at once, installing nothing, when skip_in_testing and Slicer runs with --testing;
        # its defaults (Slicer 5.12 packaging.py): a progress dialog, and after an install that updated a package
        # already imported, a modal confirmYesNoDisplay "restart now?" (not under --testing)
        self.calls.append({"requirements": [str(r) for r in requirements],
                           "types": {type(r).__name__ for r in requirements},
                           "constraints": Path(constraints).read_text(encoding="utf-8"),
                           "skip": list(skip_packages or []), "prompt": prompt_install, "requester": requester,
                           "skip_in_testing": skip_in_testing, "prompt_restart": prompt_restart,
                           "show_progress": show_progress})


def test_slicer_5_12_installs_through_import_slicer_packaging_with_protection(requirements, monkeypatch):
    stand_in = PackagingStandIn()
    monkeypatch.setitem(sys.modules, "slicer.packaging", stand_in)  # importable, yet not an attribute of slicer
    monkeypatch.delattr(slicer, "packaging", raising=False)
    monkeypatch.setattr(dep, "torch_status", lambda version=None: ("ok", "2.5.1"))
    with pytest.raises(dep.DependencyError, match="installing dcediff-no-such-package>=1.0 failed"):
        dep.ensure_dependencies(requirements, mode="install")  # the stand-in installs nothing, so it is still missing
    assert len(stand_in.calls) == 1
    call = stand_in.calls[0]
    assert call["requirements"] == [MISSING] and call["types"] == {"Requirement"}
    assert {"numpy", "simpleitk", "torch"} <= set(call["skip"])
    assert "numpy==" in call["constraints"]
    assert call["prompt"] is False and call["requester"] == "DCEDiff"
    # asked to install (Apply, --install-dependencies): installed under --testing too, not silently skipped and then
    # reported as a failed install
    assert call["skip_in_testing"] is False


@pytest.mark.parametrize("mode", ["install", "ask"])
def test_slicer_5_12_install_mode_opens_no_dialog_of_pip_ensure(requirements, monkeypatch, mode):
    """Batch --install-dependencies ("install") promises no dialog: Slicer's pip_ensure would otherwise show its
    progress dialog and, when pip updated a package that is already imported, a modal restart question that a headless
    batch Slicer waits on for ever (pip_ensure skips it only under --testing). The GUI ("ask") keeps both."""
    stand_in = PackagingStandIn()
    monkeypatch.setitem(sys.modules, "slicer.packaging", stand_in)
    monkeypatch.delattr(slicer, "packaging", raising=False)
    monkeypatch.setattr(dep, "torch_status", lambda version=None: ("ok", "2.5.1"))
    with pytest.raises(dep.DependencyError):
        dep.ensure_dependencies(requirements, mode=mode)  # the stand-in installs nothing
    call = stand_in.calls[0]
    assert call["prompt_restart"] is (mode == "ask") and call["show_progress"] is (mode == "ask")


def test_slicer_5_10_installs_each_package_with_the_constraints_file(requirements, monkeypatch):
    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    monkeypatch.setattr(dep, "torch_status", lambda version=None: ("ok", "2.5.1"))
    seen = []

    def pip_install_stand_in(args):  # test double of slicer.util.pip_install (Slicer 5.10)
        seen.append((list(args), Path(args[2]).read_text(encoding="utf-8")))

    monkeypatch.setattr(slicer.util, "pip_install", pip_install_stand_in)
    asked = []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: asked.append(a) or False)
    with pytest.raises(dep.DependencyError, match="were not installed"):
        dep.ensure_dependencies(requirements, mode="ask")  # declined in the (stand-in) dialog
    assert asked and not seen
    with pytest.raises(dep.DependencyError, match="failed"):
        dep.ensure_dependencies(requirements, mode="install")
    assert len(asked) == 1  # no dialog in "install" mode
    (args, constraints), = seen
    assert args[:2] == [MISSING, "-c"] and "numpy==" in constraints
    assert not Path(args[2]).exists()  # the temporary constraints file is removed


class PyTorchUtilsStandIn(types.ModuleType):
    """Test double of the PyTorch extension's ``PyTorchUtils`` module (not installable outside Slicer): its
    ``PyTorchUtilsLogic.installTorch`` records the call and "installs" by setting the version the check reads."""

    def __init__(self, versions, accept=True):
        super().__init__("PyTorchUtils")
        calls = self.calls = []

        class PyTorchUtilsLogic:
            def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,
                             torchvisionVersionRequirement=None):
                calls.append({"ask": askConfirmation, "requirement": torchVersionRequirement})
                if not accept:
                    return None  # the user declined
                versions["torch"] = "2.5.1"
                return types.ModuleType("torch")

        self.PyTorchUtilsLogic = PyTorchUtilsLogic


@pytest.mark.parametrize("mode", ["ask", "install"])
def test_torch_is_installed_through_the_pytorch_extension_when_it_is_there(requirements, monkeypatch, mode):
    versions = {"torch": None, MISSING.split(">")[0]: "1.0"}
    monkeypatch.setattr(dep, "installed_version", lambda name: versions.get(name))
    extension = PyTorchUtilsStandIn(versions)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", extension)
    monkeypatch.setattr(dep, "_run_python_module", lambda *a: pytest.fail("light-the-torch run beside the extension"))
    dep.ensure_dependencies(requirements, mode=mode)
    assert extension.calls == [{"ask": mode == "ask", "requirement": ">=2.1"}]  # its own prompt, our requirement
    declined = PyTorchUtilsStandIn({"torch": None}, accept=False)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", declined)
    versions["torch"] = None
    with pytest.raises(dep.DependencyError, match="declined"):
        dep.ensure_dependencies(requirements, mode="ask")


def test_torch_is_installed_in_a_child_process_and_an_old_loaded_torch_asks_for_a_restart(requirements, monkeypatch):
    versions = {"torch": "1.13.1", "light-the-torch": "0.7.5"}
    monkeypatch.setattr(dep, "installed_version", lambda name: versions.get(name) or
                        ("1.0" if name == MISSING.split(">")[0] else None))
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # loaded by another module
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # a Slicer without the PyTorch extension
    with pytest.raises(dep.DependencyError, match="restart Slicer"):
        dep.ensure_dependencies(requirements, mode="install")
    monkeypatch.delitem(sys.modules, "torch")
    ran = []

    def run_stand_in(slicer_module, args):  # test double of the PythonSlicer child (launchConsoleProcess)
        ran.append(args)
        versions["torch"] = "2.5.1"

    monkeypatch.setattr(dep, "_run_python_module", run_stand_in)
    dep.ensure_dependencies(requirements, mode="install")
    assert ran == [["light_the_torch", "install", "torch>=2.1"]]
    assert "torch" not in sys.modules


SHIPPED_BY_SLICER = ("SimpleITK", "numpy", "requests", "vtk", "torch")  # docs/slicer.md, "Dependencies"


def test_every_package_slicer_ships_is_kept_away_from_pip(tmp_path, monkeypatch):
    """docs/slicer.md and the module docstring: 'SimpleITK, numpy, requests, vtk and torch are never
    installed or upgraded through pip by DCEDiff'. A requirement naming any of them is dropped, and pip_ensure gets
    every one of them in skip_packages."""
    path = tmp_path / "requirements.txt"
    path.write_text("vtk>=9.2\nrequests>=2\nnumpy\nSimpleITK>=2\ntorch>=2.1\n" + MISSING + "\n", encoding="utf-8")
    assert dep.read_requirements(path) == [MISSING]
    stand_in = PackagingStandIn()
    monkeypatch.setitem(sys.modules, "slicer.packaging", stand_in)
    monkeypatch.setattr(dep, "torch_status", lambda version=None: ("ok", "2.5.1"))
    with pytest.raises(dep.DependencyError):
        dep.ensure_dependencies(path, mode="install")  # the stand-in installs nothing
    skipped = {name.lower() for name in stand_in.calls[0]["skip"]}
    assert {name.lower() for name in SHIPPED_BY_SLICER} <= skipped


def test_without_the_pytorch_extension_a_declined_prompt_installs_nothing(tmp_path, monkeypatch):
    """mode "ask" on a Slicer without the PyTorch extension: DCEDiff's own confirmation decides. Declined →
    DependencyError saying so and no light-the-torch child; accepted → the child runs once."""
    path = tmp_path / "requirements.txt"
    path.write_text("# nothing else\n", encoding="utf-8")
    versions = {"torch": None, "light-the-torch": "0.7.5"}
    monkeypatch.setattr(dep, "installed_version", lambda name: versions.get(name))
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # a Slicer without the PyTorch extension
    ran = []

    def run_stand_in(slicer_module, args):  # test double of the PythonSlicer child (launchConsoleProcess)
        ran.append(args)
        versions["torch"] = "2.5.1"

    monkeypatch.setattr(dep, "_run_python_module", run_stand_in)
    answers = []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay",  # stand-in for the Qt dialog: the user declines
                        lambda *a, **k: answers.append(a) or False)
    with pytest.raises(dep.DependencyError, match="declined"):
        dep.ensure_dependencies(path, mode="ask")
    assert len(answers) == 1 and ran == []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: True)  # the user accepts
    dep.ensure_dependencies(path, mode="ask")
    assert ran == [["light_the_torch", "install", "torch>=2.1"]]


def test_torch_messages_name_only_what_this_slicer_has_and_never_ask_to_uninstall_a_loaded_torch(tmp_path,
                                                                                                  monkeypatch):
    """Rules read from the PyTorch extension (fepegar/SlicerPyTorch, PyTorchUtils/PyTorchUtils.py): its module is
    titled "PyTorch Utils" (line 16), and its Uninstall of a torch that is loaded fails, "Probably PyTorch is already
    in use. Please restart the application and try again." (line 84; on Windows pip cannot delete loaded libraries
    and may leave torch half removed). The old-torch message asked for exactly that (uninstall, then restart), and a
    Slicer without the extension was told to decline-then-use a 'PyTorch Util' module it does not have."""
    path = tmp_path / "requirements.txt"
    path.write_text("# nothing else\n", encoding="utf-8")
    versions = {"torch": "1.13.1", "light-the-torch": "0.7.5"}
    monkeypatch.setattr(dep, "installed_version", lambda name: versions.get(name))
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # loaded by another module
    with pytest.raises(dep.DependencyError) as loaded:
        dep.ensure_dependencies(path, mode="ask")
    message = str(loaded.value)
    assert "restart Slicer" in message and "uninstall" not in message.lower()
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # a Slicer without the PyTorch extension
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: False)  # the user declines
    with pytest.raises(dep.DependencyError, match="declined") as declined:
        dep.ensure_dependencies(path, mode="ask")
    assert "PyTorch Util" not in str(declined.value) and "PyTorch extension" in str(declined.value)
    source = (ROOT / "DCEDiff" / "DCEDiffSlicerLib" / "dependencies.py").read_text(encoding="utf-8")
    assert "'PyTorch Util'" not in source  # the module's title is "PyTorch Utils"
