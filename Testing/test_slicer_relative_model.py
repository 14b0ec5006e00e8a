"""A relative model path (DCEDiffBatch.py --model models/mine.safetensors, as typed in the folder Slicer was started
from) is the file the engine opens. The engine child runs with the engine's folder as its working directory, so the
relative path used to be looked up there: "model weights models/mine.safetensors are missing" for a file that
exists, while the module had read that very file's card (PD optional or not) from Slicer's working directory.
Qt stand-ins of Testing/test_slicer_module.py; real MRML nodes; the engine's command is captured, not run."""

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_slicer_module import modules, scene  # noqa: E402,F401  (fixtures)


def volume(name, value):
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, np.full((4, 5, 6), value, dtype=np.float32))
    return node


def test_a_relative_model_path_reaches_the_engine_as_the_users_file(modules, monkeypatch, tmp_path):
    DCEDiff, _ = modules
    from DCEDiffLib.model_registry import shipped_model_path

    user = tmp_path / "user"
    (user / "models").mkdir(parents=True)
    shipped = shipped_model_path()
    shutil.copy(shipped.with_suffix(".json"), user / "models" / "mine.json")
    (user / "models" / "mine.safetensors").write_bytes(b"")  # only its path matters here
    monkeypatch.chdir(user)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(temporaryPath=str(tmp_path), slicerHome=""),
                        raising=False)
    launched = []

    def launch(cmd, cwd=None, env_update=None):
        launched.append((list(cmd), cwd))
        engine = "import sys; print('dcediff synthesize: error: stand-in'); sys.exit(2)"
        return subprocess.Popen([sys.executable, "-c", engine], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    monkeypatch.setattr(DCEDiff, "_launchInSlicer", launch)
    with pytest.raises(RuntimeError, match="stand-in"):
        DCEDiff.DCEDiffLogic().process(volume("t2w", 1), volume("pd", 2), volume("adc", 3), volume("t1pre", 4),
                                       model="models/mine.safetensors", device="cpu")
    (cmd, cwd), = launched
    opened = Path(cwd or os.getcwd()) / cmd[cmd.index("--model") + 1]  # what the engine opens, from its folder
    assert opened.resolve() == (user / "models" / "mine.safetensors").resolve()
