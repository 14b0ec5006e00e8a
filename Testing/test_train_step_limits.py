"""`dcediff train --max-steps 0` (or a negative count) trained nothing and exported the untrained network as
RUN/model.safetensors with its card, as if it were a model (found by a bug hunt); --workers 0 or less was taken
silently. Each is refused before any case is loaded or any folder is made, naming the option."""

import pytest

from DCEDiffLib.cli import main


@pytest.mark.parametrize("option, value, expected", [
    ("--max-steps", "0", "--max-steps 0: expected a positive number of steps"),
    ("--max-steps", "-3", "--max-steps -3: expected a positive number of steps"),
    ("--workers", "0", "--workers 0: expected a positive number of processes"),
    ("--workers", "-1", "--workers -1: expected a positive number of processes"),
])
def test_a_non_positive_count_is_refused_naming_the_option(tmp_path, capsys, option, value, expected):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), option, value]) != 0
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
