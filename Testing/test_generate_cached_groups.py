"""scripts/generate_cached_groups.py: phantom groups generated and cached by one process each, laid out as the training
scripts expect (case_<group><two digits>), with a split that validates on the last case of each group; real phantom
generation and preprocessing (registration included)."""

import json
import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.training.case_data import list_case_dirs, load_case
from script_module import ROOT


def _run(*args) -> None:
    # as a command, the way it is used: its process pool imports the script by path
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_cached_groups.py"), *map(str, args)], check=True,
                   cwd=ROOT, capture_output=True)


def test_two_groups_are_generated_cached_and_split(tmp_path):
    work, data, cache, split = tmp_path / "w", tmp_path / "data", tmp_path / "cache", tmp_path / "split.json"
    _run(work, data, cache, split, 3, "a 9101 2 procedural A", "b 9102 2 procedural B")
    assert [d.name for d in list_case_dirs(data)] == ["case_300", "case_301", "case_400", "case_401"]
    assert json.loads(split.read_text()) == {"train": ["case_300", "case_400"],
                                             "validation": ["case_301", "case_401"], "test": []}
    assert len(list(cache.glob("*.npz"))) == 4
    cached = load_case(data / "case_401", cache)  # read from the cache, not preprocessed again
    assert cached.conditions.shape[0] == 4 and cached.targets is not None
    domain = json.loads((data / "case_401" / "case.json").read_text())["domain"]
    assert domain == "B"
    # run again: nothing is generated twice (the groups' dataset.json exist) and the split is the same
    _run(work, data, cache, split, 3, "a 9101 2 procedural A", "b 9102 2 procedural B")
    assert len(list(cache.glob("*.npz"))) == 4


def test_a_cached_case_whose_input_was_rewritten_at_the_same_size_is_made_again(tmp_path):
    """load_case's cache must not return arrays of inputs that have since changed. An uncompressed NIfTI (or a DICOM
    file) rewritten with other values keeps its byte size, so only its content/modification time tells: the second
    load must give what a fresh, uncached preprocessing of the new files gives, not the first load's arrays."""
    import os
    import shutil
    from pathlib import Path

    from DCEDiffLib.training.case_data import load_case

    import DCEDiffLib

    sample = Path(DCEDiffLib.__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"
    case, cache = tmp_path / "case_000", tmp_path / "cache"
    shutil.copytree(sample, case)
    t1 = sitk.ReadImage(str(case / "t1pre.nii.gz"))
    (case / "t1pre.nii.gz").unlink()
    path = case / "t1pre.nii"
    sitk.WriteImage(t1, str(path))
    first = load_case(case, cache, register=False)

    changed = sitk.GetImageFromArray(sitk.GetArrayFromImage(t1)[:, :, ::-1].copy())
    changed.CopyInformation(t1)
    size, stat = path.stat().st_size, path.stat()
    sitk.WriteImage(changed, str(path))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # a later write, whatever the clock
    assert path.stat().st_size == size
    second = load_case(case, cache, register=False)
    fresh = load_case(case, None, register=False)
    assert not np.array_equal(fresh.conditions, first.conditions)
    assert np.array_equal(second.conditions, fresh.conditions)
