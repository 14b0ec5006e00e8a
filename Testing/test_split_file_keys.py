"""A --split file that is a JSON object but not a split (a model card, config.json, or one without a test list) is
one error naming it: `dcediff evaluate --split RUN/model.json` ended in a KeyError traceback (found by a bug hunt)."""

import json

import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.evaluation_runner import _case_dirs
from DCEDiffLib.training.split import read_split


@pytest.mark.parametrize("content, absent", [
    ({"format": "dcediff-model", "objective": "diffusion"}, "no train, no validation, no test"),
    ({"train": ["a"], "validation": ["b"]}, "no test"),
])
def test_an_object_without_the_split_lists_is_refused_naming_what_it_lacks(tmp_path, content, absent):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(InputError, match=rf"split .*model\.json: expected a JSON object with train/validation/test "
                                         rf"lists of case names \(it has {absent}"):
        read_split(path)


def test_evaluate_gets_the_error_not_a_key_error(tmp_path):
    data = tmp_path / "data"
    (data / "case_a").mkdir(parents=True)
    (data / "case_a" / "t2w.nii.gz").write_bytes(b"")
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"format": "dcediff-model"}), encoding="utf-8")
    with pytest.raises(InputError, match="expected a JSON object with train/validation/test lists"):
        _case_dirs(data, path, "test")
