"""A plain (non-editable) install ships what the commands need (issue 14): the shipped model(s) and the sample case
travel inside the wheel and are found from the installed copy, not from the repository."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def listed_packages() -> list:
    """The package names in pyproject.toml's [tool.setuptools] packages list."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r"^packages\s*=\s*\[(.*?)\]", text, re.S | re.M)
    assert match, "pyproject.toml: no [tool.setuptools] packages = [...] list"
    return re.findall(r'"([^"]+)"', match.group(1))


def test_every_engine_subpackage_is_listed_in_pyproject():
    on_disk = sorted(".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "DCEDiffLib").rglob("__init__.py")
                     if "__pycache__" not in p.parts)
    missing = [name for name in on_disk if name not in listed_packages()]
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}: a wheel would leave them out"


def shipped_resources() -> list:
    """Resources/ files a wheel must carry, relative to Resources/."""
    res = ROOT / "Resources"
    files = [p for pattern in ("Models/*.json", "Models/*.safetensors", "SampleData/phantom_case/*", "Anatomy/*")
             for p in res.glob(pattern) if p.is_file()]
    return sorted(p.relative_to(res).as_posix() for p in files)


@pytest.mark.skipif(not (ROOT / "Resources" / "Models").is_dir(), reason="no Resources/Models in this checkout")
def test_wheel_ships_the_model_and_sample_case_and_an_installed_copy_finds_them(tmp_path):
    pytest.importorskip("setuptools", reason="building a wheel without isolation needs setuptools (dev extra)")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("DCEDiffLib", "Resources"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(wheels.glob("dcediff-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = shipped_resources()
    assert any(n.endswith(".safetensors") for n in expected) and any(n.endswith("t2w.nii.gz") for n in expected)
    missing = [n for n in expected if f"DCEDiffLib/_resources/{n}" not in names]
    assert not missing, f"the wheel lacks {missing}"

    target = tmp_path / "site"
    installed = subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    probe = ("import json, DCEDiffLib\n"
             "from DCEDiffLib.model_registry import resolve_model, SAMPLE_CASE_DIR\n"
             "from DCEDiffLib.training.case_data import find_case_inputs\n"
             "from DCEDiffLib.phantom.templates import TEMPLATE_NAMES, template_path\n"
             "weights = resolve_model(None)\n"
             "print(json.dumps({'package': DCEDiffLib.__file__, 'weights': str(weights),\n"
             "                  'templates': [str(template_path(n)) for n in TEMPLATE_NAMES],\n"
             "                  'card': json.loads(weights.with_suffix('.json').read_text())['architecture']['preset'],\n"
             "                  'case': sorted(find_case_inputs(SAMPLE_CASE_DIR))}))\n")
    env = dict(os.environ, PYTHONPATH=str(target))
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).resolve().is_relative_to(target.resolve()), found  # the installed copy, not ROOT
    assert Path(found["weights"]).resolve().is_relative_to(target.resolve()) and Path(found["weights"]).is_file()
    assert found["card"]
    assert all(Path(t).resolve().is_relative_to(target.resolve()) for t in found["templates"]), found["templates"]
    assert {"t2w", "pd", "adc", "t1pre", "dce_early", "dce_late"} <= set(found["case"]), found["case"]


BLOCK_EXTRAS = r'''
import importlib.machinery
import sys


class Block(importlib.machinery.PathFinder):
    """What the core install lacks (3D Slicer's install: no scipy, scikit-image, matplotlib, onnxruntime or the
    TAPS prostate model): the path finder finds none of them, so importlib.util.find_spec gives None and an import
    raises ModuleNotFoundError, as where they are not installed."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in ("scipy", "skimage", "matplotlib", "onnxruntime", "taps"):
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [Block if finder is importlib.machinery.PathFinder else finder for finder in sys.meta_path]
'''
CORE_PROBE = BLOCK_EXTRAS + r'''
from DCEDiffLib.cli import main

sys.exit(main(sys.argv[1:]))
'''


def test_core_install_synthesizes_with_acquired_dce_and_names_the_extra_for_what_it_skips(tmp_path):
    from random_model import save_random_model
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

    if not (SAMPLE_CASE_DIR / "t2w.nii.gz").is_file():
        pytest.skip("shipped phantom case missing")
    model = save_random_model(tmp_path, inner_channels=8, channel_mults=[1, 1, 1, 1])
    out = tmp_path / "out"
    args = ["synthesize", "--model", str(model), "--steps", "1", "--no-register", "--progress-lines",
            "--out", str(out)]
    for key in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late"):
        args += [f"--{key.replace('_', '-')}", str(SAMPLE_CASE_DIR / f"{key}.nii.gz")]
    done = subprocess.run([sys.executable, "-c", CORE_PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    names = {p.name for p in out.iterdir()}
    assert {"synthetic_early.nii.gz", "synthetic_late.nii.gz", "residual_early.nii.gz", "synthesis.json"} <= names
    assert not {"metrics.json", "report.png"} & names
    skipped = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2, done.stderr
    assert any("metrics.json" in s and "scikit-image" in s and "dcediff[eval]" in s for s in skipped), skipped
    assert any("report.png" in s and "matplotlib" in s and "dcediff[eval]" in s for s in skipped), skipped
    # no prostate model: the crop is centred on the field-of-view centre, said once, naming the extra
    assert any("field-of-view centre" in line and "dcediff[prostate]" in line for line in done.stderr.splitlines())
    assert json.loads((out / "synthesis.json").read_text())["crop_centre_source"] == "field-of-view centre"


def run_core(args: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``dcediff ARGS`` in a fresh process whose imports of the extras' packages fail, as on a core install (the
    BLOCK_EXTRAS finder is a named stand-in: this venv has the extras, uninstalling them would break other tests)."""
    return subprocess.run([sys.executable, "-c", CORE_PROBE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("command", ["evaluate", "benchmark"])
def test_core_install_refuses_evaluate_and_benchmark_up_front_naming_the_extra(tmp_path, command):
    """Found installing the wheel without extras: dcediff evaluate synthesized a case, then died with a scipy
    ModuleNotFoundError traceback (benchmark the same after minutes of timing). Both need [eval]: refused before
    any work, one line naming the packages and the extra, nothing written. (Stand-in: BLOCK_EXTRAS, see run_core.)"""
    from random_model import save_random_model
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

    if not (SAMPLE_CASE_DIR / "t2w.nii.gz").is_file():
        pytest.skip("shipped phantom case missing")
    out = tmp_path / "out"
    if command == "evaluate":
        model = save_random_model(tmp_path, inner_channels=8, channel_mults=[1, 1, 1, 1])
        args = ["evaluate", "--model", str(model), "--data", str(SAMPLE_CASE_DIR.parent), "--steps", "1",
                "--no-regression", "--no-fid", "--cache", str(tmp_path / "cache"), "--out", str(out)]
    else:  # the tiny settings of test_benchmark.py's fixture: without the refusal it reaches its quality part fast
        args = ["benchmark", "--quick", "--random-preset", "tiny", "--data", str(SAMPLE_CASE_DIR.parent),
                "--no-register", "--crop", "16", "--throughput-size", "16", "--throughput-presets", "shipped",
                "--reference-steps", "4", "--fast-steps", "2", "--k-values", "1", "--no-end-to-end",
                "--no-regression", "--ddpm-slices", "1", "--fast-slices", "1", "--naive-steps", "2", "--out", str(out)]
    started = time.monotonic()
    done = run_core(args, tmp_path)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"dcediff {command}: error: dcediff {command} ("), lines
    assert "needs scipy, scikit-image" in lines[0] and 'pip install "dcediff[eval]"' in lines[0], lines
    assert not out.exists() and not (tmp_path / "cache").exists()
    assert time.monotonic() - started < 60  # before any case is read (a process start and the imports)


TRAIN_PROBE = BLOCK_EXTRAS + r'''
import json
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from test_training import make_trainer, tiny_config
from DCEDiffLib.errors import DCEDiffError

tmp = Path(sys.argv[2])
trainer = make_trainer(tmp, tiny_config(iterations=4, sample_image_every=2, checkpoint_every=4, validate_every=4))
trainer.run()
try:
    make_trainer(tmp, tiny_config(objective="regression", lesion_contrast_weight=1.0), name="contrast")
    refused = None
except DCEDiffError as exc:
    refused = str(exc)
print(json.dumps({"step": trainer.step, "refused": refused}))
'''


def test_core_install_trains_without_sample_images_and_refuses_the_mask_losses_naming_the_extra(tmp_path):
    """Found the same way: the default recipe's sample image (every 5000 steps) imported matplotlib and killed the
    run with a traceback. Without matplotlib it is skipped, said once naming [eval]; a loss whose masks need scipy
    is refused when the trainer is built, naming it. (Stand-in: BLOCK_EXTRAS, see run_core.)"""
    done = subprocess.run([sys.executable, "-c", TRAIN_PROBE, str(ROOT / "Testing"), str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["step"] == 4
    skipped = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert skipped == ['dcediff: the training sample image (samples/step_*.png) skipped: needs matplotlib '
                       '(pip install "dcediff[eval]")'], done.stderr
    assert not (tmp_path / "run" / "samples").exists()
    assert result["refused"] and "lesion contrast/correlation loss" in result["refused"], result
    assert "needs scipy" in result["refused"] and 'pip install "dcediff[eval]"' in result["refused"], result


def test_evaluate_is_refused_without_matplotlib_alone(tmp_path):
    """Round-18 mutation audit. extras.REQUIRED: dcediff evaluate (its report.png among what it writes) needs scipy,
    scikit-image AND matplotlib: with only matplotlib missing it is refused up front naming matplotlib, not after a
    case's synthesis. (Stand-in: BLOCK_EXTRAS restricted to matplotlib, see run_core.)"""
    probe = CORE_PROBE.replace('("scipy", "skimage", "matplotlib", "onnxruntime", "taps")', '("matplotlib",)')
    assert probe != CORE_PROBE
    out = tmp_path / "out"
    args = ["evaluate", "--model", "no-such-model.safetensors", "--data", str(tmp_path), "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "dcediff evaluate (" in done.stderr and "needs matplotlib, not installed here" in done.stderr, done.stderr
    assert not out.exists()


URINE_PROBE = BLOCK_EXTRAS + r'''
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from test_training import make_trainer, tiny_config
from DCEDiffLib.errors import DCEDiffError

try:
    make_trainer(Path(sys.argv[2]), tiny_config(region_weights={"urine": 2.0}))
    print("built")
except DCEDiffError as exc:
    print("refused:", exc)
'''


def test_core_install_refuses_the_urine_region_weight_naming_the_extra(tmp_path):
    """Round-18 mutation audit. extras.REQUIRED["lesion_masks"]: 'training with the urine region weight or a lesion
    contrast/correlation loss' needs scipy: the urine weight alone (no lesion loss) is refused when the trainer is
    built, naming scipy and the extra. (Stand-in: BLOCK_EXTRAS, see run_core.)"""
    done = subprocess.run([sys.executable, "-c", URINE_PROBE, str(ROOT / "Testing"), str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("refused:") and "urine region weight" in line and "needs scipy" in line, line
    assert 'pip install "dcediff[eval]"' in line, line
