"""Import a repository script (``scripts/<name>.py``, or any file) as a module, for the tests that check it."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_file(path: Path, name: str = None):
    """The module defined by the Python file ``path`` (executed once per call)."""
    spec = importlib.util.spec_from_file_location(name or Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name: str):
    """``scripts/<name>.py`` as a module."""
    return load_file(ROOT / "scripts" / f"{name}.py", name)
