"""Apply (and the batch script) with a Slicer temporary folder that cannot be used: DCEDiffLogic.process makes its
working folder there (the inputs' copies, the engine's output). A folder that cannot be created gave mkdtemp's bare
"[Errno 20] Not a directory" (or FileNotFoundError), naming neither Slicer's temporary folder nor the setting to
change. Real MRML nodes; Qt stand-ins of Testing/test_slicer_module.py; ``slicer.app`` is a stand-in holding only
``temporaryPath`` (slicer-core has no application object). The failure is real: the folder lies under a file."""

import sys
import types
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_module import modules, scene  # noqa: E402,F401  (fixtures)
from test_slicer_relative_model import volume  # noqa: E402  (a small constant volume node)


def test_an_unusable_temporary_folder_is_named_with_the_setting_to_change(modules, monkeypatch, tmp_path):
    DCEDiff, _ = modules
    a_file = tmp_path / "afile"
    a_file.write_text("not a folder")
    temporary = a_file / "sub"  # root may write anywhere, but no folder can be made under a file
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(temporary), slicerHome=""),
                        raising=False)
    inputs = [volume("t2w", 1), volume("pd", 2), volume("adc", 3), volume("t1pre", 4)]
    before = slicer.mrmlScene.GetNumberOfNodes()
    logic = DCEDiff.DCEDiffLogic()
    with pytest.raises(RuntimeError) as failure:
        logic.process(*inputs, device="cpu")
    message = str(failure.value)
    assert f"Slicer's temporary folder {temporary}:" in message
    assert "Application Settings → Modules → Temporary directory" in message
    assert not logic.isRunning
    assert slicer.mrmlScene.GetNumberOfNodes() == before, "a node was added"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and a_file.read_text() == "not a folder"
