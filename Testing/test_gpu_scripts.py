"""The GPU step's second half, scripts/finish_soup.sh, run end to end on tiny stand-ins for what the lent GPU machine
returns (docs/training.md, "GPU session checklist"): the shipped regression mean split into parts as
scripts/gpu_soup.sh splits a run's model, with its card in runs55.tar.gz (a stand-in for a GPU run's weights: no GPU
here), and the shipped sample case linked twice as the residual fine-tune's data, 2 steps of a tiny-run copy of the
residual config. The residual config starts from runs/ship44/init/, which finish_soup.sh must fetch itself: a work dir
without it failed after the soup (found in session 64's audit)."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "Resources" / "Models"


def _device_files(folder: Path) -> None:
    """What gpu_soup.sh leaves in $OUT for one run (seed 55): the model in parts and runs55.tar.gz."""
    folder.mkdir()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "split_safetensors.py"), "split",
                    str(MODELS / "dcediff_cpu_phantom_regression.safetensors"), str(folder / "mean55.model"),
                    "--max-mb", "15"], check=True)
    card = MODELS / "dcediff_cpu_phantom_regression.json"
    split = folder / "split.json"
    split.write_text(json.dumps({"train": ["case_a"], "validation": ["case_b"], "test": []}))
    with tarfile.open(folder / "runs55.tar.gz", "w:gz") as tar:
        tar.add(card, arcname="mean55/model.json")
        tar.add(split, arcname="split.json")
    split.unlink()


@pytest.mark.slow
def test_finish_soup_turns_the_returned_files_into_a_model_that_loads(tmp_path):
    from DCEDiffLib.diffusion.model_files import load_model

    work, files = tmp_path / "runs", tmp_path / "files"
    _device_files(files)
    data = work / "data"
    data.mkdir(parents=True)
    for name in ("case_a", "case_b"):
        (data / name).symlink_to(ROOT / "Resources" / "SampleData" / "phantom_case")
    (work / "split.json").write_text(json.dumps({"train": ["case_a"], "validation": ["case_b"], "test": []}))
    config = json.loads((ROOT / "configs" / "cpu_residual_deep480.json").read_text())
    config.update(iterations=2, batch_size=1, validation_slices=2, checkpoint_every=2, validate_every=2, log_every=1,
                  warmup_steps=1, mixed_precision="fp32")
    (tmp_path / "residual.json").write_text(json.dumps(config))
    env = dict(os.environ, STEP="55", RUN_SEEDS="55", SHIPPED="HEAD", RESIDUAL_INIT_COMMIT="HEAD",
               RESIDUAL_CONFIG=str(tmp_path / "residual.json"), DATA="data", SPLIT="split.json", WORKERS="1",
               OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "finish_soup.sh"), str(work), str(files)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (work / "ship44" / "init" / "dcediff_cpu_phantom.safetensors").is_file()
    loaded = load_model(work / "residual55" / "model.safetensors")
    assert loaded.card["objective"] == "residual"
    assert json.loads((work / "residual55" / "summary.json").read_text())["steps"] == 2


def test_the_packer_pairs_a_card_only_with_its_own_weights(tmp_path):
    """scripts/card_matches_weights.py, which gpu_soup.sh's packer runs on the copied best.json/best.safetensors: the
    shipped regression card matches its weights; paired with the shipped diffusion model's weights (as a new best.*
    written between the two copies would pair them), or with a damaged card, it does not."""
    script = [sys.executable, str(ROOT / "scripts" / "card_matches_weights.py")]
    card = MODELS / "dcediff_cpu_phantom_regression.json"
    damaged = tmp_path / "card.json"
    damaged.write_text("{")
    for weights, card_path, code in ((MODELS / "dcediff_cpu_phantom_regression.safetensors", card, 0),
                                     (MODELS / "dcediff_cpu_phantom.safetensors", card, 1),
                                     (MODELS / "dcediff_cpu_phantom_regression.safetensors", damaged, 1)):
        done = subprocess.run(script + [str(card_path), str(weights)], capture_output=True, text=True)
        assert done.returncode == code, (weights, card_path, done.stderr)
        assert ("does not name the SHA-256" in done.stderr) is bool(code)
