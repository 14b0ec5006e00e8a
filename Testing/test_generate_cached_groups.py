"""scripts/generate_cached_groups.py: phantom groups generated and cached by one process each, laid out as the training
scripts expect (case_<group><two digits>), with a split that validates on the last case of each group; real phantom
generation and preprocessing (registration included)."""

import json
import subprocess
import sys

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
