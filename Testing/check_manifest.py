#!/usr/bin/env python3
"""Check that the Slicer extension's CMake files list every file the installed module needs, and nothing else.

Run by ``make test``. Exits non-zero, listing each problem:
- a ``.py`` or resource file of ``DCEDiff/``, ``DCEDiffLib/`` or ``Resources/`` that no CMake list names (it would
  be left out of the extension package);
- a listed file that does not exist (the CMake configure would fail);
- a listed file whose install destination falls outside ``qt-scripted-modules/`` (e.g. ``../DCEDiffLib/x.py`` in
  the module folder's CMakeLists.txt), or two files landing on the same destination;
- an install that would not put the build tree's ``qt-scripted-modules/`` as it is into the package's (no
  ``NO_INSTALL_SUBDIR`` or another ``INSTALL_DIR`` in the top level, ``WITH_SUBDIR`` for the module);
- a missing anchor: ``DCEDiff.py``, ``DCEDiffLib/__init__.py``, ``Resources/UI/DCEDiff.ui``,
  ``Resources/Icons/DCEDiff.png`` and ``Resources/requirements.txt`` must land at those paths.

How files land (Slicer's ``ctkMacroCompilePythonScript``): a path listed in a CMakeLists.txt keeps its path
relative to that file's folder under ``qt-scripted-modules/``. The module folder ``DCEDiff/`` lists
``DCEDiff.py`` and ``DCEDiffSlicerLib/...``; the top level lists ``DCEDiffLib/...`` and ``Resources/...``.
Only stdlib; no CMake needed.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

# (CMakeLists.txt relative to the root, list variables that hold files, how the list must be used in that file)
LISTS = (
    ("CMakeLists.txt", ("DCEDIFF_ENGINE_SCRIPTS", "DCEDIFF_ENGINE_RESOURCES"),
     ('SCRIPTS "${DCEDIFF_ENGINE_SCRIPTS}"', 'RESOURCES "${DCEDIFF_ENGINE_RESOURCES}"',
      "DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}", "add_subdirectory(DCEDiff)")),
    ("DCEDiff/CMakeLists.txt", ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"),
     ("SCRIPTS ${MODULE_PYTHON_SCRIPTS}", "RESOURCES ${MODULE_PYTHON_RESOURCES}", "slicerMacroBuildScriptedModule(")),
)
# (CMakeLists.txt, macro, words its call must hold, words it must not hold): where the build tree's
# qt-scripted-modules/ is installed. CTK's ctkMacroCompilePythonScript installs the folder itself without
# NO_INSTALL_SUBDIR, i.e. into qt-scripted-modules/qt-scripted-modules/ (CTK CMake/ctkMacroCompilePythonScript.cmake
# lines 99-107, commontk/CTK 868d56c); slicerMacroBuildScriptedModule's WITH_SUBDIR puts the module one folder down,
# where Slicer's non-recursive module scan does not see it (Slicer CMake/SlicerMacroBuildScriptedModule.cmake lines
# 92-106). The build tree is right in both cases, so only the package would break.
INSTALL_LAYOUT = (
    ("CMakeLists.txt", "ctkMacroCompilePythonScript",
     ("NO_INSTALL_SUBDIR", "INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}"), ()),
    ("DCEDiff/CMakeLists.txt", "slicerMacroBuildScriptedModule", (), ("WITH_SUBDIR",)),
)
PACKAGED_DIRS = ("DCEDiff", "DCEDiffLib", "Resources")
NOT_PACKAGED = {"DCEDiff/CMakeLists.txt"}
ANCHORS = ("DCEDiff.py", "DCEDiffLib/__init__.py", "Resources/UI/DCEDiff.ui", "Resources/Icons/DCEDiff.png",
           "Resources/requirements.txt")


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def parse_set(text: str, variable: str) -> List[str]:
    """The items of ``set(<variable> item item ...)`` in a CMake file (comments removed)."""
    match = re.search(r"\bset\(\s*" + re.escape(variable) + r"\b(.*?)\)", _strip_comments(text), re.S)
    if match is None:
        raise KeyError(variable)
    return [item.strip('"') for item in match.group(1).split()]


def call_arguments(text: str, macro: str) -> List[str]:
    """The argument text of each ``macro(...)`` call in a CMake file (comments removed)."""
    return re.findall(r"\b" + re.escape(macro) + r"\((.*?)\)", _strip_comments(text), re.S)


def install_layout_problems(root: Path) -> List[str]:
    """Problems with where the CMake calls install qt-scripted-modules/ (see :data:`INSTALL_LAYOUT`)."""
    problems = []
    for cmake_rel, macro, required, forbidden in INSTALL_LAYOUT:
        cmake = root / cmake_rel
        if not cmake.is_file():
            continue  # reported by check()
        calls = call_arguments(cmake.read_text(encoding="utf-8"), macro)
        if not calls:
            problems.append(f"{cmake_rel}: no {macro}(...) call")
        for arguments in calls:
            words = " ".join(arguments.split())
            for word in required:
                if word not in words:
                    problems.append(f"{cmake_rel}: {macro}(...) lacks '{word}': the installed package would not "
                                    "hold DCEDiffLib/ and Resources/ next to DCEDiff.py in qt-scripted-modules/")
            for word in forbidden:
                if re.search(r"(^|\s)" + re.escape(word) + r"(\s|$)", words):
                    problems.append(f"{cmake_rel}: {macro}(...) has '{word}': the module would land in a subfolder "
                                    "of qt-scripted-modules/, where Slicer does not look for modules")
    return problems


def files_on_disk(root: Path) -> List[str]:
    """Every file under the packaged folders that must be listed (repository-relative, posix)."""
    found = []
    for top in PACKAGED_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / top):
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
            for name in filenames:
                if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                    continue
                rel = (Path(dirpath) / name).relative_to(root).as_posix()
                if rel not in NOT_PACKAGED:
                    found.append(rel)
    return sorted(found)


def check(root: Path) -> Tuple[List[str], Dict[str, str]]:
    """(problems, destination → source) for the repository at ``root``."""
    problems: List[str] = []
    destinations: Dict[str, str] = {}
    listed = set()
    for cmake_rel, variables, usages in LISTS:
        cmake = root / cmake_rel
        if not cmake.is_file():
            problems.append(f"{cmake_rel}: missing")
            continue
        text = cmake.read_text(encoding="utf-8")
        base = posixpath.dirname(cmake_rel)
        for usage in usages:
            if usage not in text:
                problems.append(f"{cmake_rel}: expected '{usage}' (the lists must be built into qt-scripted-modules)")
        for variable in variables:
            try:
                items = parse_set(text, variable)
            except KeyError:
                problems.append(f"{cmake_rel}: no set({variable} ...)")
                continue
            for item in items:
                if "${" in item or "*" in item:
                    problems.append(f"{cmake_rel}: {variable}: '{item}': list files by name (no variables, no globs)")
                    continue
                if posixpath.isabs(item):
                    problems.append(f"{cmake_rel}: {variable}: '{item}' is absolute; it would land outside "
                                    "qt-scripted-modules")
                    continue
                destination = posixpath.normpath(item)
                source = posixpath.normpath(posixpath.join(base, item))
                if destination.startswith("../") or destination == "..":
                    problems.append(f"{cmake_rel}: {variable}: '{item}' would be installed outside "
                                    f"qt-scripted-modules (as {destination})")
                if not (root / source).is_file():
                    problems.append(f"{cmake_rel}: {variable}: listed file {source} does not exist")
                if variable.endswith("SCRIPTS") != item.endswith(".py"):
                    problems.append(f"{cmake_rel}: {variable}: '{item}': .py files go in a SCRIPTS list, other "
                                    "files in a RESOURCES list")
                if destination in destinations and destinations[destination] != source:
                    problems.append(f"{source} and {destinations[destination]} both land on "
                                    f"qt-scripted-modules/{destination}")
                destinations[destination] = source
                listed.add(source)
    for rel in files_on_disk(root):
        if rel not in listed:
            where = "CMakeLists.txt" if not rel.startswith("DCEDiff/") else "DCEDiff/CMakeLists.txt"
            problems.append(f"{rel}: not listed in {where}; it would be missing from the extension package")
    problems.extend(install_layout_problems(root))
    for anchor in ANCHORS:
        if anchor not in destinations:
            problems.append(f"nothing lands on qt-scripted-modules/{anchor}")
    return problems, destinations


def main(argv: List[str]) -> int:
    root = Path(argv[1]).resolve() if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems, destinations = check(root)
    if problems:
        print(f"check_manifest: {len(problems)} problem(s) in the Slicer extension's CMake file lists:",
              file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"check_manifest: OK, {len(destinations)} files land in qt-scripted-modules/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
