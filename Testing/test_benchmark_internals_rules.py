"""The benchmark's measurements and summaries at their definition, without running the benchmark (session-56 mutation
audit, round 13). Each test names the mutation it kills:

- test_the_quality_and_nfe_bars_are_inclusive_and_one_sided: targets, the SSIM and NFE bars ``<=`` made ``<``; the
  PSNR gap compared as |gap|.
- test_the_flop_count_is_that_of_the_batch_asked_for: throughput.count_forward_flops counting batch 1 whatever the
  batch.
- test_peak_memory_is_the_largest_reading_in_mebibytes: memory, ``MB = 10**6`` instead of 2**20; the peak kept as
  the smallest reading.
- test_the_resident_set_is_the_second_statm_field_and_the_lifetime_peak_is_in_bytes: memory, statm's first field
  (the virtual size) taken for the resident set; ru_maxrss's kilobytes taken for bytes.
- test_machine_flags_memory_and_description: machine, ``any`` → ``all`` in has_fast_bf16; describe listing every
  present flag as a bf16 flag; physical memory in 10⁹ bytes instead of GiB.
- test_held_out_cases_stop_at_the_count_and_skip_cases_without_acquired_dce: holdout, the stop at ``count`` dropped.
- test_held_out_phantom_cases_are_generated_with_the_seed_given: holdout, the seed not passed to the generator.
- test_each_optimisation_is_timed_against_the_baseline_and_the_thread_row_repeats_the_fastest: variants, the
  speed-up inverted; the slowest variant repeated with one thread; the relative error measured for one bf16 row only.
- test_the_model_reads_its_conditions_in_its_cards_order: sampler_sweep.model_conditions in INPUT_MODALITIES order.
- test_slices_past_the_volume_are_left_out_of_the_quality_sweep: sampler_sweep.quality_sweep keeping slice k of K.
- test_an_undefined_enhancement_r_everywhere_stays_undefined: sampler_sweep._mean_scores giving 0.0 for no value.
- test_scores_use_the_whole_acquired_volumes_intensity_scale: score_prediction's bounds from the scored slices only.
- test_the_default_setting_is_listed_once: sweep_runs appending the default when it is already a fast setting.
- test_identical_images_score_a_finite_psnr: score without its 100 dB cap (inf in a strict-JSON report).
- test_headline_ratios_are_named_numerator_over_denominator_and_memory_is_the_largest_peak: runner.headline, the
  skip ratio inverted, the batched ratio against the default sampler, the peak memory of the default run only.
- test_quality_slices_are_the_central_ones: runner._quality, the central slices one slice off.
- test_the_default_setting_is_timed_in_full: runner._volume_timings cutting the default run short like the others.
- test_the_report_names_the_naive_loops_whole_volume_and_marks_extrapolated_rows_only: report.markdown giving the
  naive loop's measured slices as the whole volume's; the extrapolated mark on rows that lack the flag instead of
  those that have it.
"""

import time
from types import SimpleNamespace

import numpy as np
import pytest


# ---------------------------------------------------------------- targets.py
def _target_status(key, value):
    from DCEDiffLib.benchmark.targets import evaluate_targets

    return {t["key"]: t["status"] for t in evaluate_targets({key: value})}[key]


def test_the_quality_and_nfe_bars_are_inclusive_and_one_sided():
    """targets.py: "within 0.3 dB PSNR and 0.01 SSIM of the paper's 1000-step sampler at ≤ 20 network evaluations",
    the gaps being reference − default: the bound itself passes, and a default sampler *better* than the reference
    (a negative gap) is within any bound."""
    from DCEDiffLib.benchmark.targets import MAX_NFE, MAX_PSNR_GAP_DB, MAX_SSIM_GAP

    assert (MAX_PSNR_GAP_DB, MAX_SSIM_GAP, MAX_NFE) == (0.3, 0.01, 20)
    assert _target_status("ssim_gap_default_vs_ddpm1000", 0.01) == "PASS"
    assert _target_status("ssim_gap_default_vs_ddpm1000", -0.02) == "PASS"
    assert _target_status("ssim_gap_default_vs_ddpm1000", 0.0101) == "FAIL"
    assert _target_status("psnr_gap_db_default_vs_ddpm1000", 0.3) == "PASS"
    assert _target_status("psnr_gap_db_default_vs_ddpm1000", -1.5) == "PASS"
    assert _target_status("psnr_gap_db_default_vs_ddpm1000", 0.31) == "FAIL"
    assert _target_status("default_nfe", 20) == "PASS"
    assert _target_status("default_nfe", 21) == "FAIL"


# ---------------------------------------------------------------- throughput.py
def _conv_net(in_channels=3, out_channels=2):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)

        def forward(self, x, gamma):
            return self.conv(x)

    return Net()


def test_the_flop_count_is_that_of_the_batch_asked_for():
    """count_forward_flops: "FLOPs (2 × multiply-adds) of one forward pass at batch × size × size". A 3×3 convolution
    from 3 to 2 channels at 8 × 8 does 2·3·9 multiply-adds per output pixel of each of its 2 channels."""
    from DCEDiffLib.benchmark.throughput import count_forward_flops

    per_slice = 2 * (3 * 3 * 3) * 2 * 8 * 8
    assert count_forward_flops(_conv_net(), size=8) == per_slice
    assert count_forward_flops(_conv_net(), size=8, batch=4) == 4 * per_slice


# ---------------------------------------------------------------- memory.py
def test_peak_memory_is_the_largest_reading_in_mebibytes(monkeypatch):
    """PeakMemory: "the absolute peak" and "the growth above the level at entry", "in MiB". The RSS reader is
    replaced by one that reads 100 MiB at entry, 300 MiB during the block and 150 MiB at its end."""
    from DCEDiffLib.benchmark import memory

    level = {"bytes": 100 * 2 ** 20}
    monkeypatch.setattr(memory, "current_rss_bytes", lambda: level["bytes"])
    with memory.PeakMemory("cpu", interval_s=0.001) as peak:
        level["bytes"] = 300 * 2 ** 20
        wanted, deadline = peak._samples + 2, time.monotonic() + 5.0  # two readings taken after the rise
        while peak._samples < wanted and time.monotonic() < deadline:
            time.sleep(0.005)
        level["bytes"] = 150 * 2 ** 20
    result = peak.result()
    assert result["kind"] == "cpu_rss" and result["samples"] >= 3
    assert result["peak_mb"] == 300.0
    assert result["increase_mb"] == 200.0


def test_the_resident_set_is_the_second_statm_field_and_the_lifetime_peak_is_in_bytes():
    """current_rss_bytes: the resident set (VmRSS of /proc/self/status, the second field of statm), not the virtual
    size; lifetime_max_rss_bytes: ru_maxrss is in kilobytes on Linux, and a lifetime peak is never below now."""
    import os

    from DCEDiffLib.benchmark.memory import current_rss_bytes, lifetime_max_rss_bytes

    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc")
    ballast = np.ones(64 * 2 ** 20 // 8)  # 64 MiB touched, so that the resident set is well above the start
    with open("/proc/self/status") as handle:
        vm_rss = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:"))
    rss = current_rss_bytes()
    assert abs(rss - vm_rss) < 0.1 * vm_rss
    assert lifetime_max_rss_bytes() >= current_rss_bytes() * 0.99
    del ballast


# ---------------------------------------------------------------- machine.py
def test_machine_flags_memory_and_description(tmp_path, monkeypatch):
    """has_fast_bf16: avx512_bf16 *or* AMX; describe: only the bf16/AMX flags in the parenthesis (its docstring's
    example 'AMD EPYC, …, torch 2.13.0+cpu (AVX512, avx512_bf16), 2 threads'); total_memory_gb in GiB."""
    from DCEDiffLib.benchmark import machine

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu\n")
    flags = machine.cpu_flags(str(cpuinfo))
    assert flags == ["fpu", "avx2", "avx512f", "avx512_bf16"]
    assert machine.cpu_model_name(str(cpuinfo)) == "Test CPU 9000"
    assert machine.has_fast_bf16(flags)
    assert machine.has_fast_bf16(["amx_tile"])
    assert not machine.has_fast_bf16(["avx2", "avx512f"])

    info = {"cpu": "AMD EPYC", "usable_cpus": 2, "memory_gb": 23.4, "torch": "2.13.0+cpu",
            "torch_cpu_capability": "AVX512", "torch_threads": 2,
            "cpu_flags": {"avx2": True, "avx512f": True, "avx512_vnni": False, "avx512_bf16": True}}
    text = machine.describe(info)
    assert "(AVX512, avx512_bf16)" in text and "avx2" not in text
    info["cpu_flags"] = {"avx2": True, "avx512_bf16": False}
    assert "(AVX512, no bf16/AMX flags)" in machine.describe(info)

    values = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 3 * 2 ** 30 // 4096}
    monkeypatch.setattr(machine.os, "sysconf", lambda name: values[name])
    assert machine.total_memory_gb() == 3.0


# ---------------------------------------------------------------- holdout.py
def _fake_case_data(monkeypatch, targets_by_dir):
    from DCEDiffLib.training import case_data

    monkeypatch.setattr(case_data, "list_case_dirs", lambda folder: sorted(targets_by_dir))
    monkeypatch.setattr(case_data, "load_case", lambda case_dir, cache, register=True: SimpleNamespace(
        name=case_dir.name, targets=targets_by_dir[case_dir]))


def test_held_out_cases_stop_at_the_count_and_skip_cases_without_acquired_dce(tmp_path, monkeypatch):
    """holdout_cases: "its first count cases with acquired DCE": a case without early/late DCE is passed over and no
    more than ``count`` come back."""
    from DCEDiffLib.benchmark.holdout import holdout_cases

    dirs = {tmp_path / name: (None if name == "a" else np.zeros(1)) for name in ("a", "b", "c", "d")}
    _fake_case_data(monkeypatch, dirs)
    cases = holdout_cases(tmp_path / "work", 2, data_dir=tmp_path, register=False)
    assert [case_dir.name for case_dir, _ in cases] == ["b", "c"]


def test_held_out_phantom_cases_are_generated_with_the_seed_given(tmp_path, monkeypatch):
    """holdout_cases(seed=…) generates its phantom cases from that dataset seed (the default, 9000, keeps them apart
    from the training seeds; another seed must reach the generator, not fall back to it)."""
    from DCEDiffLib.benchmark import holdout

    calls = []

    def generate(out_dir, count, seed=None, domain=holdout.HOLDOUT_DOMAIN):
        calls.append(seed)
        return [out_dir / f"case{i}" for i in range(count)]

    monkeypatch.setattr(holdout, "generate_holdout_cases", generate)
    from DCEDiffLib.training import case_data

    monkeypatch.setattr(case_data, "load_case", lambda case_dir, cache, register=True: SimpleNamespace(
        name=case_dir.name, targets=np.zeros(1)))
    holdout.holdout_cases(tmp_path, 2, seed=1234, register=False)
    holdout.holdout_cases(tmp_path / "other", 1, register=False)
    assert calls == [1234, holdout.HOLDOUT_DATASET_SEED]


# ---------------------------------------------------------------- variants.py
def test_each_optimisation_is_timed_against_the_baseline_and_the_thread_row_repeats_the_fastest(monkeypatch):
    """variants: "its speed-up over the baseline" (baseline time / variant time), "for reduced precision, the
    relative error of its output", and "the thread row repeats the fastest variant with one thread". Times are
    fixed per mode so the arithmetic is exact."""
    import torch

    from DCEDiffLib.benchmark import variants

    seconds = {variants.BASELINE: 2.0}
    for index, (_, mode) in enumerate(variants.VARIANTS):
        seconds[mode] = 1.0 + 0.25 * index  # the first variant (autograd on) is the fastest here
    threads = {"now": 2}

    def measure(network, batch, size, mode, device="cpu", repeats=3, warmup=1, *rest):
        value = seconds[mode] * (3.0 if threads["now"] == 1 else 1.0)
        return {"batch": batch, "seconds_per_forward": value, "precision": mode.precision,
                "channels_last": mode.channels_last, "grad": mode.grad}

    monkeypatch.setattr(variants, "measure_forward", measure)
    monkeypatch.setattr(variants, "relative_error", lambda network, mode, *args: 0.004)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads["now"])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: threads.update(now=n))
    rows = variants.measure_variants(None, batch=2, size=8)

    assert rows[0]["speedup"] == 1.0
    for row, (name, mode) in zip(rows[1:], variants.VARIANTS):
        assert row["variant"] == name
        assert row["speedup"] == pytest.approx(2.0 / seconds[mode], abs=1e-3)
        assert row["relative_error"] == (0.004 if mode.precision == "bf16" else 0.0)
    single = rows[-1]
    assert len(rows) == len(variants.VARIANTS) + 2
    assert single["variant"].startswith(variants.VARIANTS[0][0] + ", 1 thread")
    assert single["thread_scaling"] == pytest.approx(3.0)
    assert single["speedup"] == pytest.approx(2.0 / 3.0, abs=1e-3)
    assert threads["now"] == 2


# ---------------------------------------------------------------- sampler_sweep.py
def test_the_model_reads_its_conditions_in_its_cards_order():
    """model_conditions: the channels "that model's card asks for", in the card's order (the order its network was
    trained on), from conditions in INPUT_MODALITIES order."""
    from DCEDiffLib.benchmark.sampler_sweep import model_conditions
    from DCEDiffLib.modalities import INPUT_MODALITIES

    conditions = np.stack([np.full((2, 3, 3), i, np.float32) for i in range(len(INPUT_MODALITIES))])
    model = SimpleNamespace(card={"conditions": ["adc", "t2w"]})
    picked = model_conditions(model, conditions)
    assert [float(picked[c, 0, 0, 0]) for c in range(2)] == [INPUT_MODALITIES.index("adc"),
                                                             INPUT_MODALITIES.index("t2w")]
    assert model_conditions(SimpleNamespace(card={"conditions": list(INPUT_MODALITIES)}), conditions) is conditions


def _quality_fakes(monkeypatch):
    from DCEDiffLib.benchmark import sampler_sweep as sweep

    seen = []

    def synthesis(model, conditions, run, **kwargs):
        seen.append(conditions.shape[1])
        return SimpleNamespace(mean=np.zeros((2,) + conditions.shape[1:], np.float32)), 1, 1

    row = {"psnr": 30.0, "ssim": 0.9, "mae": 0.05, "enhancement_r": None}
    monkeypatch.setattr(sweep, "run_synthesis", synthesis)
    monkeypatch.setattr(sweep, "score_prediction", lambda case, prediction, chosen, window, reference=None, card=None: (
        [dict(row)], [dict(row)], {}))
    return seen


def test_slices_past_the_volume_are_left_out_of_the_quality_sweep(monkeypatch):
    """quality_sweep scores each case's ``slices`` that exist: a case of K slices has slices 0 … K − 1."""
    from DCEDiffLib.benchmark import sampler_sweep as sweep
    from DCEDiffLib.modalities import INPUT_MODALITIES

    seen = _quality_fakes(monkeypatch)
    case = SimpleNamespace(name="c", num_slices=3, conditions=np.zeros((4, 3, 6, 6), np.float32), norm={})
    model = SimpleNamespace(card={"conditions": list(INPUT_MODALITIES)})
    out = sweep.quality_sweep(model, [(None, case)], [], sweep.SamplerRun("x0", 1), slices=[2, 3, -1])
    assert out["slices"] == [2]
    assert seen == [1]


def test_an_undefined_enhancement_r_everywhere_stays_undefined():
    """_mean_scores: "None (constant map) is left out of the mean"; with no value left the mean is None, not 0."""
    from DCEDiffLib.benchmark.sampler_sweep import _mean_scores

    rows = [{"psnr": 30.0, "ssim": 0.5, "mae": 0.1, "enhancement_r": None},
            {"psnr": 20.0, "ssim": 0.7, "mae": 0.3, "enhancement_r": None}]
    assert _mean_scores(rows) == {"psnr": 25.0, "ssim": 0.6, "mae": 0.2, "enhancement_r": None}
    rows[1]["enhancement_r"] = 0.4
    assert _mean_scores(rows)["enhancement_r"] == 0.4


def test_scores_use_the_whole_acquired_volumes_intensity_scale():
    """score_prediction: "the whole acquired volume's scale, not the scored slices'": a dim scored slice of a volume
    whose other slices are 10× brighter stays near 0.1 on [0, 1], it is not stretched to 1."""
    from DCEDiffLib.benchmark.sampler_sweep import score_prediction
    from DCEDiffLib.normalization import NormParams, normalize

    rng = np.random.default_rng(0)
    shape = (3, 16, 16)
    body = np.zeros(shape[1:], bool)
    body[3:13, 3:13] = True
    volumes = {}
    for target, gain in (("dce_early", 1.0), ("dce_late", 1.2)):
        volume = np.zeros(shape, np.float32)
        volume[0][body] = 50 + 50 * rng.random(body.sum())
        volume[1:, body] = 1000 * gain
        volumes[target] = volume
    volumes["t1pre"] = volumes["dce_early"] * 0.8
    norm = {t: NormParams(0.0, 1000.0) for t in ("dce_early", "dce_late")}
    norm["t1pre"] = NormParams(0.0, 1000.0)
    case = SimpleNamespace(raw=lambda name: volumes[name], norm=norm, intensity_notes={})  # no T1-pre excess
    prediction = np.stack([normalize(volumes[t][[0]], norm[t]) for t in ("dce_early", "dce_late")])
    acq, ref, units = score_prediction(case, prediction, [0], slice(None))
    for target in ("dce_early", "dce_late"):
        assert units[target].max() < 0.11
    assert acq[0]["psnr"] == 100.0 and ref[0]["mae"] == 0.0


def test_the_default_setting_is_listed_once():
    """sweep_runs: the default setting joins the list only when it is not already one of the fast settings."""
    from DCEDiffLib.benchmark.sampler_sweep import DEFAULT_SAMPLER, SamplerRun, sweep_runs

    runs = sweep_runs(fast_steps=(5, 10), k_values=(1, 4), default=SamplerRun(DEFAULT_SAMPLER, 10))
    labels = [run.label for run in runs]
    assert len(labels) == len(set(labels))
    assert labels.count(f"{DEFAULT_SAMPLER}-10") == 1
    runs = sweep_runs(fast_steps=(5, 10), k_values=(1,), default=SamplerRun(DEFAULT_SAMPLER, 3))
    assert [run.label for run in runs].count(f"{DEFAULT_SAMPLER}-3") == 1


def test_identical_images_score_a_finite_psnr():
    """benchmark.json is strict JSON (no Infinity): a prediction equal to its reference scores the 100 dB ceiling,
    not an infinite PSNR; SSIM 1 and MAE 0."""
    from DCEDiffLib.benchmark.sampler_sweep import score

    volume = np.random.default_rng(1).random((2, 16, 16))
    result = score(volume, volume)
    assert result == {"psnr": 100.0, "ssim": pytest.approx(1.0), "mae": 0.0}


# ---------------------------------------------------------------- runner.py
def _headline_input():
    from DCEDiffLib.benchmark import sampler_sweep as sweep

    default = sweep.SamplerRun(sweep.DEFAULT_SAMPLER, 10)

    def row(run, seconds, peak):
        return {"label": run.label, "seconds": seconds, "nfe": run.steps, "memory": {"peak_mb": peak},
                "extrapolated": False}

    quality_row = {"label": default.label, "vs_acquired": {"psnr": 30.0, "ssim": 0.8},
                   "vs_reference": {"psnr": 35.0}}
    result = {
        "volume_timing": [row(default, 2.0, 500.0), row(sweep.paper_run(), 40.0, 600.0),
                          row(sweep.SamplerRun("ddpm", sweep.PAPER_STEPS, skip=True), 32.0, 600.0)],
        "naive_reference": {"seconds": 800.0, "extrapolated": True},
        "quality": {"runs": [quality_row], "reference": {"vs_acquired": {"psnr": 30.5, "ssim": 0.82}},
                    "slices": [7, 8], "cases": ["a"]},
        "end_to_end": {"seconds": 10.0, "memory": {"peak_mb": 900.0}},
        "end_to_end_inputs_only": {"seconds": 8.0, "memory": {"peak_mb": 1200.0}},
        "regression_baseline": None,
    }
    return result, default


def test_headline_ratios_are_named_numerator_over_denominator_and_memory_is_the_largest_peak():
    """runner.headline: each ratio "a_over_b" is a's time over b's; the peak inference memory is the largest of the
    default sampler's and both end-to-end runs' peaks; the gaps are reference − default."""
    from DCEDiffLib.benchmark.runner import BenchmarkSettings, headline

    result, default = _headline_input()
    out = headline(result, BenchmarkSettings(), default)
    assert out["ratios"] == {"naive_ddpm1000_over_default": 400.0, "naive_ddpm1000_over_end_to_end": 80.0,
                             "naive_ddpm1000_over_batched_ddpm1000": 20.0, "batched_ddpm1000_over_default": 20.0,
                             "ddpm1000_over_ddpm1000_skip": 1.25}
    assert out["speedup_vs_naive_ddpm1000"] == 400.0
    assert out["peak_inference_memory_mb"] == 1200.0
    assert out["psnr_gap_db_default_vs_ddpm1000"] == pytest.approx(0.5)
    assert out["ssim_gap_default_vs_ddpm1000"] == pytest.approx(0.02)
    assert out["default_nfe"] == 10 and out["end_to_end_seconds"] == 10.0
    assert out["extrapolated"]["quality_slices_per_case"] == 2


def test_quality_slices_are_the_central_ones(monkeypatch):
    """runner._quality: ``quality_slices`` "central slices per case" (docs/performance.md): n consecutive slices
    whose middle is the volume's middle, (K − 1) / 2, to the nearest whole or half slice."""
    from DCEDiffLib.benchmark import runner

    chosen = {}
    monkeypatch.setattr(runner.sweep, "quality_sweep", lambda *args, slices=None, **kwargs: chosen.update(s=slices))
    for k, n in ((16, 2), (5, 3), (5, 1), (16, 4), (3, 5)):
        case = SimpleNamespace(num_slices=k)
        runner._quality(runner.full_settings(quality_slices=n), None, [(None, case)], "cpu", print,
                        runner.sweep.default_run())
        slices = chosen["s"]
        assert len(slices) == min(n, k) and slices == list(range(slices[0], slices[0] + len(slices)))
        assert abs((slices[0] + slices[-1]) / 2 - (k - 1) / 2) <= 0.5
        assert 0 <= slices[0] and slices[-1] <= k - 1


def test_the_default_setting_is_timed_in_full(monkeypatch):
    """BenchmarkSettings: ``fast_steps_measured`` are the "evaluations timed for non-default fast runs": the default
    setting, whose time is the headline, runs all its evaluations; the other fast runs are cut at the limit."""
    from DCEDiffLib.benchmark import runner

    calls = {}

    def time_volume(model, conditions, run, slices_measured=None, max_evaluations=None, **kwargs):
        calls[run.label] = max_evaluations
        return {"label": run.label}

    monkeypatch.setattr(runner.sweep, "time_volume", time_volume)
    settings = runner.quick_settings(fast_steps=(5, 20), k_values=(1,))
    default = runner.sweep.SamplerRun(runner.sweep.DEFAULT_SAMPLER, 12)
    runner._volume_timings(settings, None, None, "cpu", lambda message: None, default)
    assert calls[default.label] is None
    assert calls[f"{runner.sweep.DEFAULT_SAMPLER}-20"] == settings.fast_steps_measured
    assert calls["ddpm-1000"] == settings.ddpm_steps_measured


# ---------------------------------------------------------------- report.markdown
def _minimal_result():
    memory = {"peak_mb": 512.0}
    quality_row = {"label": "ddpm-1000", "nfe_total": 1000, "vs_acquired": {"psnr": 30.0, "ssim": 0.9, "mae": 0.02},
                   "vs_reference": {"psnr": 100.0, "ssim": 1.0, "mae": 0.0}}
    timing = {"nfe": 10, "forwards": 160, "memory": memory, "measured_nfe": 10, "measured_s": 1.0,
              "precision": "fp32", "speedup_vs_naive": 100.0}
    return {
        "mode": "quick", "model": {"name": "m", "preset": "cpu", "parameters": 1234, "random_weights": False},
        "machine": {"cpu": "CPU", "usable_cpus": 2, "memory_gb": 8.0, "torch": "2", "torch_cpu_capability": "AVX2",
                    "torch_threads": 2, "cpu_flags": {}, "load_average_1min": 0.1},
        "volume": {"case": "case_000", "shape_kji": [16, 160, 160]},
        "naive_reference": {"description": "plain loop", "seconds": 8000.0, "total_slices": 16, "total_steps": 1000,
                            "seconds_per_slice_step": 0.5, "measured_slices": 2, "measured_steps": 20,
                            "extrapolated": True},
        "volume_timing": [dict(timing, label="dpm-10", seconds=80.0, slices=16, measured_slices=16,
                               extrapolated=False),
                          dict(timing, label="ddpm-1000", nfe=1000, seconds=900.0, slices=16, measured_slices=4,
                               extrapolated=True)],
        "default_sampler": "dpm", "default_steps": 10,
        "quality": {"reference": quality_row, "runs": [], "cases": ["case_000"], "slices": [7, 8], "seed": 0},
        "regression_baseline": None,
    }


def test_the_report_names_the_naive_loops_whole_volume_and_marks_extrapolated_rows_only():
    """benchmark.md: the naive reference's seconds are for the whole volume ("{total} slices × {total} steps"), the
    slices and steps actually timed are said apart ("measured … slice(s) × … steps"); every row that "says
    extrapolated: true" (runner docstring) carries the mark, and only those."""
    from DCEDiffLib.benchmark.report import markdown

    text = markdown(_minimal_result())
    naive_line = next(line for line in text.splitlines() if line.startswith("Naive reference:"))
    assert "8000 s for 16 slices × 1000 steps" in naive_line
    assert "measured 2 slice(s) × 20 steps" in naive_line
    assert naive_line.endswith("*(extrapolated)*.")
    section = text.split("## Whole-volume synthesis")[1].split("## Quality")[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| d")}
    assert "*(extrapolated)*" in rows["ddpm-1000"]
    assert "*(extrapolated)*" not in rows["dpm-10"]


def test_the_end_to_end_lines_give_the_prostate_models_seconds_where_it_ran():
    """benchmark.md's end-to-end lines: each run 'reports the model's seconds (prostate_seconds ...), and
    benchmark.md says it' (docs/performance.md), as part of the register stage; a run where the model did not run
    (``prostate_seconds`` None) says nothing of it."""
    from DCEDiffLib.benchmark.report import markdown

    run = {"case": "case_000", "seconds": 11.9, "sampling_seconds": 3.2, "other_seconds": 8.7, "nfe": 10,
           "device": "cpu", "precision": "fp32", "memory": {"peak_mb": 2100.0},
           "stage_seconds": {"load": 0.9, "register": 6.38, "sample": 3.2, "write": 1.42}}
    result = dict(_minimal_result(), end_to_end=dict(run, prostate_seconds=2.71),
                  end_to_end_inputs_only=dict(run, prostate_seconds=None))
    lines = [line for line in markdown(result).splitlines() if "case_000: 11.9 s in all" in line]
    assert len(lines) == 2   # the control: both runs are reported
    with_dce, inputs_only = lines
    assert "The prostate model's mask, computed afresh: 2.71 s of the register stage." in with_dce
    assert "register 6.38 s" in with_dce   # the stage it is part of, given apart
    assert "prostate" not in inputs_only
