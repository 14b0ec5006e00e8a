"""DCEDiffLib/model_store.py, the engine side of the Slicer module's *Import model…*: a copy that fails half way
leaves nothing in the cache, a damaged cache entry is replaced whole, and a card may only name files in its own
folder. Real shipped model files copied to a temporary folder; the copy failure is a real OSError raised from the
second ``shutil.copyfile`` call (a stand-in for a full disk, named so)."""

import shutil
from pathlib import Path

import pytest

from DCEDiffLib import model_store
from DCEDiffLib.errors import ModelFileError

MODELS = Path(__file__).resolve().parent.parent / "Resources" / "Models"
NAMES = ("dcediff_cpu_phantom.safetensors", "dcediff_cpu_phantom.json", "dcediff_cpu_phantom.error_trees.safetensors")


def user_copy(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in NAMES:
        shutil.copyfile(MODELS / name, folder / name)
    return folder / NAMES[0]


def test_a_copy_that_fails_half_way_leaves_no_folder_in_the_cache(tmp_path, monkeypatch):
    weights = user_copy(tmp_path / "user")
    real_copy, calls = shutil.copyfile, []

    def disk_full_on_second_file(source, target):  # stand-in for a disk that fills up during the copy
        calls.append(source)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_copy(source, target)

    monkeypatch.setattr(model_store.shutil, "copyfile", disk_full_on_second_file)
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match=r"cannot keep a copy of model .*dcediff_cpu_phantom\.safetensors in .*"
                                             r"No space left on device"):
        model_store.store_model(weights, cache)
    assert len(calls) == 2 and sorted(p.name for p in cache.iterdir()) == []  # no entry, no partial folder


def test_a_damaged_cache_entry_is_replaced_by_a_good_copy(tmp_path):
    weights = user_copy(tmp_path / "user")
    first = model_store.store_model(weights, tmp_path / "cache")
    entry = Path(first["path"]).parent
    (entry / NAMES[2]).unlink()  # e.g. a user deleted a file by hand
    second = model_store.store_model(weights, tmp_path / "cache")
    assert second == dict(first, reused=False)
    assert (entry / NAMES[2]).read_bytes() == (MODELS / NAMES[2]).read_bytes()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [entry.name]  # nothing left beside it
    assert model_store.store_model(weights, tmp_path / "cache") == dict(first, reused=True)


@pytest.mark.parametrize("name", ["../elsewhere.safetensors", "/abs/trees.safetensors", "C:\\trees.safetensors"])
def test_a_card_naming_a_file_outside_its_folder_is_refused(name):
    card = {"error_model": {"learned": {"file": name}}}
    with pytest.raises(ModelFileError, match="is not inside the card's folder"):
        model_store.sidecar_files(card, Path("/models/m.json"))
    assert model_store.sidecar_files({"voxel_corrector": {"file": "m.trees.safetensors"}}, Path("/models/m.json")) \
        == ["m.trees.safetensors"]
