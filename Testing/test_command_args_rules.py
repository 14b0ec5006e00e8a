"""What the commands check and pass on: ``dcediff phantom``'s options, ``--center``, one series in two roles, the
dataset's too-deep hint.

From the session-56 mutation audit, round 14. Each test asserts the documented behaviour (the options' help, the
functions' docstrings), not a value copied from the current output. Per test, the mutation it kills:

- ``test_phantom_passes_its_options_on_to_the_generator``: ``--no-dce-series`` inverted, ``--seed`` not passed on.
- ``test_a_centre_of_four_numbers_is_refused``: ``parse_center`` accepting more than three numbers.
- ``test_the_dce_baseline_may_be_the_t1pre_but_no_other_input``: the baseline-is-the-T1-pre exemption dropped.
- ``test_two_copies_of_one_study_do_not_say_root_is_too_deep``: the hint given for two folders of one study (a copy),
  not only from three.
"""

from __future__ import annotations

import pytest

from DCEDiffLib.cli import main
from DCEDiffLib.errors import InputError


@pytest.mark.parametrize("extra, series", [([], True), (["--no-dce-series"], False)])
def test_phantom_passes_its_options_on_to_the_generator(tmp_path, monkeypatch, extra, series):
    import DCEDiffLib.phantom as phantom

    calls = []

    def fake(out, cases, **kwargs):
        calls.append(dict(kwargs, out=out, cases=cases))
        return [out / "case_000"]

    monkeypatch.setattr(phantom, "generate_dataset", fake)
    out = tmp_path / "data"
    assert main(["phantom", "--cases", "2", "--seed", "17", "--domain", "B", "--anatomy", "mixed",
                 "--format", "dicom", "--out", str(out)] + extra) == 0
    (call,) = calls
    assert call["cases"] == 2 and call["seed"] == 17 and call["domain"] == "B" and call["anatomy"] == "mixed"
    assert call["fmt"] == "dicom" and call["include_series"] is series


def test_a_centre_of_four_numbers_is_refused():
    from DCEDiffLib.commands.common import parse_center

    assert parse_center("1,-2.5,3") == (1.0, -2.5, 3.0)
    for text in ("1,2,3,4", "1,2"):
        with pytest.raises(InputError, match="three numbers"):
            parse_center(text)


def test_the_dce_baseline_may_be_the_t1pre_but_no_other_input(tmp_path):
    from DCEDiffLib.commands.common import check_distinct_inputs

    t1pre, pd = tmp_path / "t1pre.nii.gz", tmp_path / "pd.nii.gz"
    t1pre.write_bytes(b"x")
    pd.write_bytes(b"y")
    check_distinct_inputs({"pd": str(pd), "t1pre": str(t1pre), "dce_baseline": str(t1pre)})  # one series: fine
    with pytest.raises(InputError, match="--pd and --dce-baseline"):
        check_distinct_inputs({"pd": str(pd), "t1pre": str(t1pre), "dce_baseline": str(pd)})


def test_two_copies_of_one_study_do_not_say_root_is_too_deep():
    from DCEDiffLib.commands.dataset import root_too_deep_hint

    def records(n):
        return [{"patient": f"P{i}", "study_instance_uid": "1.2.3", "status": "ok"} for i in range(n)] + \
            [{"patient": "Q", "study_instance_uid": "4.5.6", "status": "ok"}]

    assert root_too_deep_hint(records(2)) == ""           # "two can be a copy (kept once)"
    assert "one level too deep" in root_too_deep_hint(records(3))
