"""Precision and step-count rules at their definition (DCEDiffLib/precision.py, DCEDiffLib/sampling_steps.py): the
CPU flags are those of the *first* flags line, ``auto`` takes bf16 only on a measurement that is inside the bound,
and a card without a usable ``sampling`` section keeps the engine's step count (found by a mutation audit)."""

import pytest

from DCEDiffLib import defaults
from DCEDiffLib.precision import choose_precision, cpu_flags
from DCEDiffLib.sampling_steps import resolve_steps

ZEN4 = ["fpu", "avx2", "avx512f", "avx512_bf16"]


def test_cpu_flags_are_those_of_the_first_flags_line(tmp_path):
    """cpu_flags: "The CPU feature flags of the first ``flags`` line of /proc/cpuinfo" - not the last one."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2\n", encoding="utf-8")
    assert cpu_flags(str(cpuinfo)) == ["fpu", "avx2", "avx512_bf16"]


def test_auto_stays_fp32_when_bf16_was_not_measured():
    """choose_precision: on a CPU, auto is bf16 only with native bf16 *and* the measured bf16-vs-fp32 difference
    inside the bound (module docstring). A check that carries no measurement (no ``within_bound``) is no such
    measurement, so auto keeps fp32 even with native bf16; the same check marked within the bound gives bf16."""
    unmeasured = {"model_weights_sha256": None, "mean_abs_diff_fraction": None, "psnr_diff_db": None}
    choice = choose_precision("auto", "cpu", flags=ZEN4, check=unmeasured)
    assert choice.used == "fp32" and "not measured" in choice.reason, choice.reason
    measured = {"model_weights_sha256": "ab" * 32, "mean_abs_diff_fraction": 0.001, "psnr_diff_db": 0.01,
                "within_bound": True}
    assert choose_precision("auto", "cpu", flags=ZEN4, check=measured).used == "bf16"


def test_a_residual_card_without_a_sampling_section_keeps_the_engine_default():
    """resolve_steps: the card's ``sampling.residual_steps`` when there is one, else ``defaults.DEFAULT_STEPS``; a
    residual card whose ``sampling`` is missing or not an object (null) carries no count."""
    for card in ({"objective": "residual"}, {"objective": "residual", "sampling": None},
                 {"objective": "residual", "sampling": [2]}):
        assert resolve_steps(card, defaults.DEFAULT_SAMPLER) == defaults.DEFAULT_STEPS, card


def test_a_step_count_that_is_not_a_whole_number_is_an_input_error():
    """resolve_steps: steps given must be '1 or more' whole steps; NaN, inf, text, a fraction and true are refused
    as InputError (the API's callers get the message, not a ValueError/OverflowError from int()); numpy ints pass."""
    import numpy as np

    from DCEDiffLib.errors import InputError

    for bad in (float("nan"), float("inf"), "5", 2.5, True, 0):
        with pytest.raises(InputError, match="expected 1 or more"):
            resolve_steps({}, defaults.DEFAULT_SAMPLER, bad)
    assert resolve_steps({}, defaults.DEFAULT_SAMPLER, np.int64(3)) == 3
