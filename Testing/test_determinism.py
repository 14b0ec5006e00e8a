"""Determinism across processes (issue 7): the same inputs, model and seed give bit-identical outputs in two
separate `python -m DCEDiffLib.cli synthesize` processes."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
from random_model import save_random_model

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (SAMPLE_CASE_DIR / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A smaller random-weight model (8 channels, four levels of equal width): quick enough for many runs."""
    return save_random_model(tmp_path_factory.mktemp("model"), inner_channels=8, channel_mults=[1, 1, 1, 1])


def run_synthesize(model: Path, out: Path, seed: int = 5) -> None:
    args = [sys.executable, "-m", "DCEDiffLib.cli", "synthesize", "--model", str(model), "--steps", "2",
            "--samples", "2", "--seed", str(seed), "--no-register", "--device", "cpu", "--progress-lines",
            "--out", str(out)]
    for key in ("t2w", "pd", "adc", "t1pre"):
        args += [f"--{key}", str(SAMPLE_CASE_DIR / f"{key}.nii.gz")]
    env = dict(os.environ, PYTHONHASHSEED="random", OMP_NUM_THREADS="1")
    # the engine writes UTF-8 (°, –) whatever the locale: decode as such, not with an ASCII locale
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, encoding="utf-8", errors="replace",
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_same_inputs_model_and_seed_give_identical_bits_in_separate_processes(tiny_model, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    run_synthesize(tiny_model, first)
    run_synthesize(tiny_model, second)
    images = sorted(p.name for p in first.glob("*.nii.gz"))
    assert images == sorted(p.name for p in second.glob("*.nii.gz"))
    assert {"synthetic_early.nii.gz", "synthetic_late.nii.gz", "uncertainty_early.nii.gz"} <= set(images)
    for name in images:
        a = sitk.ReadImage(str(first / name))
        b = sitk.ReadImage(str(second / name))
        assert np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)), name
        assert a.GetOrigin() == b.GetOrigin() and a.GetDirection() == b.GetDirection()
        assert hashlib.sha256(sitk.GetArrayViewFromImage(a).tobytes()).hexdigest() == \
            hashlib.sha256(sitk.GetArrayViewFromImage(b).tobytes()).hexdigest()
    side_a = json.loads((first / "synthesis.json").read_text(encoding="utf-8"))
    side_b = json.loads((second / "synthesis.json").read_text(encoding="utf-8"))
    for side in (side_a, side_b):
        side["provenance"].pop("sampling_seconds", None)
        side["provenance"].pop("total_seconds", None)
    assert side_a == side_b


def test_registration_gives_identical_corrections_run_after_run_whatever_the_thread_count():
    """Issue 16: ITK's multi-threaded registration summed in a varying order, so two identical demo runs differed
    (T1-pre parameters by 0.002). Registered twice, with ITK's default thread count changed in between, the
    corrections are bit-identical, and the caller's thread setting is left as it was."""
    from DCEDiffLib.registration import register_rigid
    from DCEDiffLib.volume_io import read_volume
    from DCEDiffLib.working_grid import field_of_view_center

    t2w = read_volume(SAMPLE_CASE_DIR / "t2w.nii.gz", name="t2w")
    t1pre = read_volume(SAMPLE_CASE_DIR / "t1pre.nii.gz", name="t1pre")
    center = field_of_view_center(t2w)
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    results = []
    try:
        for threads in (4, 3):
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
            results.append(register_rigid(t2w, t1pre, "t1pre", center))
            assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
    assert results[0].applied and results[1].applied, (results[0].reason, results[1].reason)
    assert results[0].transform.GetParameters() == results[1].transform.GetParameters()
    assert results[0].metric_after == results[1].metric_after
