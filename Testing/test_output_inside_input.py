"""One rule for "the output folder lies inside an input folder" (``atomic.refuse_output_inside_input``), used by
``dcediff train`` (--data), ``dcediff evaluate`` (--data, --baseline-data) and ``dcediff dataset`` (--root).

The rule is path containment after resolving links, not a string prefix: a sibling whose name starts with the
input folder's name is outside it, a link that points into the input folder is inside it."""
import pytest

from DCEDiffLib.atomic import refuse_output_inside_input
from DCEDiffLib.errors import InputError


def test_the_folder_itself_and_a_folder_below_it_are_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for out in (data, data / "run", data / "a" / "b"):
        with pytest.raises(InputError, match=r"--out .*: lies inside --data .* \(cases\); expected a folder outside"):
            refuse_output_inside_input(out, "--out", data, "--data", "cases")


def test_a_sibling_with_the_same_name_prefix_is_outside(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    refuse_output_inside_input(tmp_path / "data2", "--out", data, "--data", "cases")
    refuse_output_inside_input(tmp_path, "--out", data, "--data", "cases")  # above the input, not inside it


def test_a_link_into_the_input_folder_is_inside(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(data / "sub")
    with pytest.raises(InputError, match="lies inside --root"):
        refuse_output_inside_input(link / "out", "--out", data, "--root", "it would be read as a patient")
