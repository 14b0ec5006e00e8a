"""Benchmark rules at their definition, without running the benchmark: the reported time is the median of the
repeats, the memory bar is 4 GB = 4096 MB, a boolean is no number, stages are ordered by time, slices per second is
batch / seconds and large numbers are written in full (found by a mutation audit)."""

import pytest


# ---------------------------------------------------------------- timing.py
def test_the_reported_time_is_the_median_of_the_repeats_and_best_is_the_fastest():
    """timing.py: "the median is the number reported". One slow outlier among three repeats does not move it (the
    mean would); ``best`` is the shortest repeat."""
    from DCEDiffLib.benchmark.timing import Timing

    timing = Timing([1.0, 2.0, 9.0])
    assert timing.median == 2.0
    assert timing.best == 1.0
    assert timing.to_dict() == {"median_s": 2.0, "best_s": 1.0, "repeats": 3}
    assert Timing([4.0, 1.0, 3.0, 2.0]).median == 2.5  # even count: mean of the two middle values


def test_time_call_runs_the_warmup_untimed_then_each_repeat_once():
    from DCEDiffLib.benchmark.timing import time_call

    calls = []
    timing = time_call(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 2 + 4
    assert len(timing.seconds) == 4
    with pytest.raises(ValueError):
        time_call(lambda: None, repeats=0)


# ---------------------------------------------------------------- targets.py
def _status(result: dict, key: str) -> str:
    from DCEDiffLib.benchmark.targets import evaluate_targets

    return {t["key"]: t["status"] for t in evaluate_targets(result)}[key]


def test_the_memory_bar_is_four_gibibytes_inclusive():
    """"peak inference memory ≤ 4 GB", the memory in MB (1 GB = 1024 MB, as the description prints it): 4 × 1024 MB
    passes, one MB more fails."""
    from DCEDiffLib.benchmark.targets import MAX_MEMORY_MB

    assert MAX_MEMORY_MB == 4 * 1024
    assert _status({"peak_inference_memory_mb": 4 * 1024.0}, "peak_inference_memory_mb") == "PASS"
    assert _status({"peak_inference_memory_mb": 4050.0}, "peak_inference_memory_mb") == "PASS"
    assert _status({"peak_inference_memory_mb": 4 * 1024.0 + 1}, "peak_inference_memory_mb") == "FAIL"


def test_a_target_given_a_boolean_or_a_non_finite_value_is_not_applicable_never_pass():
    """"A target whose number is missing is 'n/a', never PASS": True is not the number 1 NFE."""
    assert _status({"default_nfe": True}, "default_nfe") == "n/a"
    assert _status({"default_nfe": float("nan")}, "default_nfe") == "n/a"
    assert _status({"default_nfe": "12"}, "default_nfe") == "n/a"
    assert _status({"default_nfe": 12}, "default_nfe") == "PASS"


def test_the_speedup_bar_is_at_least_fifty_inclusive():
    assert _status({"speedup_vs_naive_ddpm1000": 50.0}, "speedup_vs_naive_ddpm1000") == "PASS"
    assert _status({"speedup_vs_naive_ddpm1000": 49.9}, "speedup_vs_naive_ddpm1000") == "FAIL"


# ---------------------------------------------------------------- end_to_end.stage_seconds
def test_stages_are_ordered_by_the_time_they_started_not_by_name():
    """stage_seconds: each stage runs "from the time each was first reported to the next stage's start". Names whose
    alphabetical order is not their time order: 'write' started first, 'load' last (runs to the total)."""
    from DCEDiffLib.benchmark.end_to_end import stage_seconds

    starts = {"load": 7.0, "write": 0.0, "sample": 2.0}
    assert stage_seconds(starts, 10.0) == {"write": 2.0, "sample": 5.0, "load": 3.0}
    assert sum(stage_seconds(starts, 10.0).values()) == pytest.approx(10.0 - min(starts.values()))


# ---------------------------------------------------------------- throughput.measure_forward
def _tiny_net():
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

        def forward(self, x, gamma):
            return self.conv(x)

    return Net()


def test_slices_per_second_is_the_batch_over_the_median_forward_time(monkeypatch):
    """measure_forward: "slices/s" = batch / seconds per forward; GFLOP/s = FLOPs per slice × batch / seconds / 1e9.
    The timer is replaced by a fixed 0.25 s so the arithmetic is exact."""
    from DCEDiffLib.benchmark import throughput
    from DCEDiffLib.benchmark.forward import ForwardMode
    from DCEDiffLib.benchmark.timing import Timing

    monkeypatch.setattr(throughput, "time_call", lambda *args, **kwargs: Timing([0.25, 0.5, 0.1]))
    row = throughput.measure_forward(_tiny_net(), batch=4, size=8, mode=ForwardMode(), flops_per_slice=10 ** 9)
    assert row["seconds_per_forward"] == 0.25
    assert row["slices_per_s"] == pytest.approx(4 / 0.25)
    assert row["gflops_per_s"] == pytest.approx(1.0 * 4 / 0.25)
    assert row["batch"] == 4 and row["size"] == 8


# ---------------------------------------------------------------- report._f
def test_report_numbers_have_significant_digits_and_large_numbers_in_full():
    """report._f: "digits significant digits (large numbers in full)": a number with at least ``digits`` integer
    digits is never written in exponent notation."""
    from DCEDiffLib.benchmark.report import _f

    assert _f(1000.0, 3) == "1000"
    assert _f(123456.7, 3, " s") == "123457 s"
    assert _f(999.4, 3) == "999"
    assert _f(0.012345, 3) == "0.0123"
    assert _f(None) == "–" and _f(True) == "yes" and _f(7, 3, "×") == "7×"


# ---------------------------------------------------------------- runner.py: which exam is timed end to end
def test_the_end_to_end_times_the_shipped_sample_case_unless_the_user_names_cases(tmp_path, monkeypatch):
    """The end to end is the first look a user gets: on the shipped sample case (a real-anatomy phantom whose gland
    the prostate model finds), not on the procedural held-out case generated for the quality rows; the user's own
    ``--data`` case or ``--end-to-end-case`` wins; without an installed sample case, the held-out case."""
    from DCEDiffLib import model_registry
    from DCEDiffLib.benchmark.runner import end_to_end_case, quick_settings

    held_out = tmp_path / "holdout" / "case_000"
    timed, source = end_to_end_case(quick_settings(), held_out)
    assert timed == model_registry.SAMPLE_CASE_DIR and "sample case" in source
    assert (timed / "case.json").is_file()
    assert end_to_end_case(quick_settings(data=tmp_path / "mine"), held_out) == (held_out, "the first case of --data")
    named = tmp_path / "named"
    assert end_to_end_case(quick_settings(data=tmp_path / "mine", end_to_end_case=named), held_out)[0] == named
    monkeypatch.setattr(model_registry, "SAMPLE_CASE_DIR", tmp_path / "not_installed")
    timed, source = end_to_end_case(quick_settings(), held_out)
    assert timed == held_out and "not installed" in source


def test_the_end_to_end_case_option_reaches_the_settings_and_the_report_names_the_source():
    import argparse

    from DCEDiffLib.benchmark.report import _end_to_end_line
    from DCEDiffLib.commands import benchmark as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["benchmark", "--out", "o", "--quick", "--end-to-end-case", "some/case"])
    assert str(command.settings_from_args(args).end_to_end_case) == "some/case"
    args = parser.parse_args(["benchmark", "--out", "o", "--quick"])
    assert command.settings_from_args(args).end_to_end_case is None
    run = {"case": "phantom_case", "case_source": "the shipped sample case", "seconds": 18.0,
           "sampling_seconds": 3.6, "other_seconds": 14.4, "nfe": 1, "device": "cpu", "precision": "bf16",
           "memory": {"peak_mb": 2500.0}}
    assert _end_to_end_line(run).startswith("phantom_case (the shipped sample case): 18")
    assert _end_to_end_line(dict(run, case_source=None)).startswith("phantom_case: 18")


def test_a_case_given_by_end_to_end_case_is_named_as_that_even_with_data(tmp_path):
    """The report names where the timed case comes from: the folder of ``--end-to-end-case`` is named by that
    option, with or without ``--data`` (found by a mutation audit: naming it 'the first case of --data' passed)."""
    from DCEDiffLib.benchmark.runner import end_to_end_case, quick_settings

    named, held_out = tmp_path / "named", tmp_path / "holdout" / "case_000"
    for settings in (quick_settings(end_to_end_case=named),
                     quick_settings(data=tmp_path / "mine", end_to_end_case=named)):
        timed, source = end_to_end_case(settings, held_out)
        assert timed == named and "--end-to-end-case" in source and "--data" not in source
