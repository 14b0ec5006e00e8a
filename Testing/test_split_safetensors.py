"""scripts/split_safetensors.py: a model file split under a size limit (what the lent GPU machine may return) and
joined back bit for bit, on the shipped regression network (real files on disk); a missing or doubled part is
refused."""

import shutil

import pytest
import torch
from safetensors import safe_open

from DCEDiffLib.diffusion.model_files import load_model, sha256_of
from script_module import ROOT, load_script

SHIPPED = ROOT / "Resources" / "Models" / "dcediff_cpu_phantom_regression.safetensors"


@pytest.fixture(scope="module")
def script():
    return load_script("split_safetensors")


def test_split_parts_stay_under_the_limit_and_join_to_the_same_loadable_file(script, tmp_path):
    parts = script.split(SHIPPED, str(tmp_path / "mean"), max_bytes=8_000_000)
    assert len(parts) >= 3
    assert all(p.stat().st_size < 8_000_000 + 200_000 for p in parts)  # the limit plus the part's header
    joined = tmp_path / "dcediff_cpu_phantom_regression.safetensors"
    script.join(joined, parts)
    with safe_open(str(SHIPPED), framework="pt") as a, safe_open(str(joined), framework="pt") as b:
        assert set(a.keys()) == set(b.keys()) and a.metadata() == b.metadata()
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    # the shipped card's hash accepts the joined file: it is the same file byte for byte
    assert sha256_of(joined) == sha256_of(SHIPPED)
    shutil.copy(SHIPPED.with_suffix(".json"), joined.with_suffix(".json"))
    load_model(joined)


def test_join_refuses_a_missing_or_doubled_part(script, tmp_path):
    parts = script.split(SHIPPED, str(tmp_path / "mean"), max_bytes=8_000_000)
    with pytest.raises(SystemExit, match=f"there are {len(parts)} of them; {len(parts) - 1} were given"):
        script.join(tmp_path / "out.safetensors", parts[:-1])
    with pytest.raises(SystemExit, match="is in two parts"):
        script.join(tmp_path / "out.safetensors", [parts[0], parts[0], parts[1]])
