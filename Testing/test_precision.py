"""--precision auto|fp32|bf16: which arithmetic is chosen, and why (DCEDiffLib/precision.py). Fast, no model."""

import subprocess
import sys

import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.precision import BF16_BOUND, BF16_CHECK, choose_precision, cpu_flags, native_bf16_flags

AVX2 = ["fpu", "sse2", "avx", "avx2", "fma"]
ZEN4 = AVX2 + ["avx512f", "avx512_vnni", "avx512_bf16"]
SAPPHIRE = AVX2 + ["avx512f", "amx_tile", "amx_bf16", "amx_int8"]
PASSED = {"model_weights_sha256": "ab" * 32, "mean_abs_diff_fraction": 0.001, "psnr_diff_db": 0.01,
          "within_bound": True}
FAILED = dict(PASSED, mean_abs_diff_fraction=0.02, within_bound=False)


def test_native_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_flags(str(cpuinfo)) == ["fpu", "avx2", "avx512_bf16"]
    assert cpu_flags(str(tmp_path / "missing")) == []
    assert native_bf16_flags(ZEN4) == ["avx512_bf16"] and native_bf16_flags(SAPPHIRE) == ["amx_bf16"]
    assert native_bf16_flags(AVX2) == [] and native_bf16_flags([]) == []
    assert native_bf16_flags(["amx_tile"]) == []  # AMX tiles alone (int8 only) are no bf16


@pytest.mark.parametrize("flags", [ZEN4, SAPPHIRE])
def test_auto_is_bf16_with_native_bf16_and_a_passed_check(flags):
    choice = choose_precision("auto", "cpu", flags=flags, check=PASSED)
    assert (choice.used, choice.requested, choice.warning) == ("bf16", "auto", None)
    assert "native" in choice.reason and native_bf16_flags(flags)[0] in choice.reason
    assert "0.10 %" in choice.reason and "abababababab" in choice.reason  # the measurement it rests on


def test_auto_is_fp32_without_native_bf16_or_without_a_passed_check():
    choice = choose_precision("auto", "cpu", flags=AVX2, check=PASSED)
    assert choice.used == "fp32" and "no native bf16" in choice.reason and choice.warning is None
    assert choose_precision("auto", "cpu", flags=[], check=PASSED).used == "fp32"  # no /proc/cpuinfo
    choice = choose_precision("auto", "cpu", flags=ZEN4, check=FAILED)
    assert choice.used == "fp32" and "not within the bound" in choice.reason
    unmeasured = {"mean_abs_diff_fraction": None, "within_bound": False}
    assert choose_precision("auto", "cpu", flags=ZEN4, check=unmeasured).used == "fp32"


@pytest.mark.parametrize("flags", [AVX2, ZEN4])
def test_explicit_fp32_is_always_fp32(flags):
    choice = choose_precision("fp32", "cpu", flags=flags, check=PASSED)
    assert (choice.used, choice.requested, choice.warning) == ("fp32", "fp32", None)
    assert choice.reason.startswith("requested fp32")


def test_explicit_bf16_runs_everywhere_but_says_when_it_is_emulated():
    native = choose_precision("bf16", "cpu", flags=ZEN4, check=FAILED)
    assert (native.used, native.warning) == ("bf16", None)
    emulated = choose_precision("BF16", "cpu", flags=AVX2, check=PASSED)
    assert emulated.used == "bf16" and "emulated" in emulated.reason
    assert "emulated" in emulated.warning and "slower" in emulated.warning
    assert emulated.to_dict() == {"used": "bf16", "requested": "bf16", "reason": emulated.reason,
                                  "warning": emulated.warning}


def test_cuda_is_bf16_unless_fp32_is_asked_for():
    assert choose_precision("auto", "cuda", flags=AVX2).used == "bf16"
    assert choose_precision("bf16", "cuda", flags=AVX2).used == "bf16"
    assert choose_precision("fp32", "cuda", flags=ZEN4).used == "fp32"


def test_unknown_precision_is_refused():
    with pytest.raises(InputError, match="expected auto, fp32 or bf16"):
        choose_precision("fp16", "cpu", flags=ZEN4)


def test_the_shipped_check_agrees_with_the_bound():
    if BF16_CHECK.get("mean_abs_diff_fraction") is None:
        assert not BF16_CHECK["within_bound"]
        return
    inside = (BF16_CHECK["mean_abs_diff_fraction"] < BF16_BOUND["mean_abs_diff_fraction"]
              and abs(BF16_CHECK["psnr_diff_db"]) < BF16_BOUND["psnr_db"])
    assert BF16_CHECK["within_bound"] == inside


def test_synthesize_volume_resolves_auto_with_the_same_rule(monkeypatch):
    from DCEDiffLib import precision
    from DCEDiffLib.diffusion.synthesis import _precision
    import torch

    monkeypatch.setattr(precision, "cpu_flags", lambda *a, **k: list(AVX2))
    assert _precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(precision, "cpu_flags", lambda *a, **k: list(ZEN4))
    monkeypatch.setattr(precision, "BF16_CHECK", PASSED)
    assert _precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(precision, "BF16_CHECK", FAILED)
    assert _precision("auto", torch.device("cpu")) == "fp32"
    assert _precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(InputError):
        _precision("half", torch.device("cpu"))


def test_the_module_does_not_import_torch():
    code = "import sys, DCEDiffLib.precision as p; p.choose_precision('auto', 'cpu'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("command", ["synthesize", "demo"])
def test_commands_offer_precision(command):
    from DCEDiffLib.cli import build_parser

    parser = build_parser()
    args = parser.parse_args([command, "--out", "x", "--precision", "bf16"] +
                             (["--t2w", "a", "--pd", "b", "--adc", "c", "--t1pre", "d"] if command == "synthesize"
                              else []))
    assert args.precision == "bf16"
    assert parser.parse_args([command, "--out", "x"]).precision == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--out", "x", "--precision", "fp16"])
