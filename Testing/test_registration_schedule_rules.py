"""The registration schedule's task order at its definition (registration_schedule._priority): corrections before
checks; the T1-pre's correction first and the frames' next; among the checks the T1-pre's first, then the frames'
(found by a mutation audit: the schedule's tests compare results, which do not depend on the order)."""

from DCEDiffLib.registration_schedule import _priority


def test_corrections_go_first_the_t1pre_then_the_frames_and_the_checks_in_the_same_order():
    """_priority: "corrections before checks; the T1-pre's correction first and the frames' next ... Among the
    checks the T1-pre's goes first, then the frames' (the longest), so that the last tasks are short ones"."""
    through = ["dce_early", "dce_late"]
    tasks = [(m, kind) for kind in ("check", "correction") for m in ("pd", "dce_late", "adc", "t1pre", "dce_early")]
    ordered = sorted(tasks, key=lambda task: _priority(task[0], task[1], through))
    rank = {task: ordered.index(task) for task in tasks}
    corrections = [t for t in ordered if t[1] == "correction"]
    checks = [t for t in ordered if t[1] == "check"]
    assert ordered == corrections + checks
    for series in (corrections, checks):
        assert series[0][0] == "t1pre"
        assert {m for m, _ in series[1:3]} == {"dce_early", "dce_late"}
        assert {m for m, _ in series[3:]} == {"pd", "adc"}
    assert rank[("dce_late", "correction")] < rank[("pd", "correction")]


def test_without_the_t1pre_the_frames_are_ordinary_series():
    """The frames go through the T1-pre only when it is registered too (``through_t1pre``): otherwise they have no
    precedence over the PD and the ADC."""
    assert _priority("dce_early", "correction", []) == _priority("pd", "correction", [])
    assert _priority("dce_early", "correction", []) > _priority("t1pre", "correction", [])
