"""All benchmark measurements in one process, on the same inputs: the result dict behind benchmark.json.

Order: machine → model → held-out cases → forward throughput (shipped preset, paper preset) → forward-pass
optimisations → naive reference loop → whole-volume timing per sampler → quality per sampler → end to end →
ratios, headline keys and targets. Beside the model, the shipped regression U-Net (the learned baseline, as in
``dcediff evaluate``) is timed on the same volume and scored in the same quality loop (``regression_baseline``)
unless ``regression`` is False (``--no-regression``). Every measurement that ran on fewer slices or fewer steps than it reports says
``"extrapolated": true``; the top-level ``extrapolated`` dict collects those flags for the headline numbers.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from DCEDiffLib.benchmark import sampler_sweep as sweep
from DCEDiffLib.errors import InputError

SCHEMA = "dcediff-benchmark/1"
SHIPPED = "shipped"
SAMPLED_OBJECTIVES = ("diffusion", "residual")  # residual: a regression mean plus a sampled residual


@dataclasses.dataclass
class BenchmarkSettings:
    """What to measure and how much of it (see :func:`full_settings` and :func:`quick_settings`)."""

    mode: str = "full"
    model: Optional[str] = None            # None: the shipped model
    random_preset: Optional[str] = None    # random weights of this preset instead of a model file (timing, tests)
    device: str = "auto"
    precision: str = "auto"                # synthesis precision (auto: as the product, DCEDiffLib/precision.py)
    data: Optional[Path] = None            # folder of held-out cases (default: generated phantom cases)
    cases: int = 3
    quality_slices: int = 2                # central slices per case scored (every sampler runs on the same ones)
    ddpm_slices: int = 16                  # slices timed for the 1000-step sampler
    ddpm_steps_measured: int = 20          # evaluations timed for the 1000-step sampler (then extrapolated)
    fast_slices: Optional[int] = None      # slices timed for the fast samplers (None: all)
    fast_steps_measured: Optional[int] = None  # evaluations timed for non-default fast runs (None: all)
    k_steps_measured: int = 5              # evaluations timed for K > 1 runs
    naive_slices: int = 2
    naive_steps: int = 20
    throughput_presets: Tuple[str, ...] = (SHIPPED, "paper")
    batch_sizes: Tuple[int, ...] = (1, 4, 16)
    paper_batch_sizes: Optional[Tuple[int, ...]] = None  # None: batch_sizes
    repeats: int = 3
    variants_batch: int = 4
    variants: bool = True
    end_to_end: bool = True
    end_to_end_case: Optional[Path] = None  # None: the shipped sample case (the first case of ``data`` if given)
    fast_steps: Tuple[int, ...] = sweep.FAST_STEPS
    k_values: Tuple[int, ...] = sweep.K_VALUES
    quality_ddim: bool = True
    quality_skip: bool = True
    regression: bool = True                # the shipped regression U-Net beside the model (--no-regression: off)
    seed: int = 0
    # Tests only: a shorter reference than the paper's 1000 steps, a central crop, no registration, smaller
    # throughput images.
    reference_steps: int = sweep.PAPER_STEPS
    crop: Optional[int] = None
    register: bool = True
    throughput_size: int = 160

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


def full_settings(**overrides) -> BenchmarkSettings:
    return dataclasses.replace(BenchmarkSettings(), **overrides)


def quick_settings(**overrides) -> BenchmarkSettings:
    """A few minutes on 2 cores: 1 case, 1 slice, few repeats, heavy runs extrapolated."""
    quick = BenchmarkSettings(mode="quick", cases=1, quality_slices=1, ddpm_slices=4, ddpm_steps_measured=3,
                              fast_slices=4, fast_steps_measured=5, k_steps_measured=2, naive_slices=1,
                              naive_steps=3, batch_sizes=(1, 4), paper_batch_sizes=(1,), repeats=1,
                              variants_batch=1, quality_ddim=False, quality_skip=False)
    return dataclasses.replace(quick, **overrides)


def _log_default(message: str) -> None:
    print(message, flush=True)


def prepare_model(settings: BenchmarkSettings, work_dir: Path):
    """(weights path, LoadedModel, description); a random-weight model is written into ``work_dir`` first."""
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.model_registry import resolve_model

    if settings.random_preset:
        from DCEDiffLib.diffusion.model_files import save_model
        from DCEDiffLib.diffusion.presets import build_network, network_config
        from DCEDiffLib.modalities import INPUT_MODALITIES
        from DCEDiffLib.training.model_card import make_model_card

        config = network_config(settings.random_preset)
        torch.manual_seed(settings.seed)
        network = build_network(config)
        with torch.no_grad():  # zero-initialised output layers would predict the same thing everywhere
            for parameter in network.parameters():
                parameter.add_(0.01 * torch.randn_like(parameter))
        card = make_model_card(config, "diffusion", list(INPUT_MODALITIES), settings.random_preset,
                               {"data": "none: random weights (benchmark timing only)"})
        path = work_dir / f"random_{settings.random_preset}.safetensors"
        save_model(network, card, path)
    else:
        path = resolve_model(settings.model)
    model = load_model(path)
    objective = model.card.get("objective", "diffusion")
    if objective not in SAMPLED_OBJECTIVES:
        hint = (" (a regression model is the benchmark's learned-baseline row, measured beside every model; "
                "unless --no-regression)" if objective == "regression" else "")
        raise InputError(f"model {path}: objective {objective!r}; the benchmark compares diffusion samplers and "
                         f"needs a model sampled by them (objective {' or '.join(SAMPLED_OBJECTIVES)}){hint}")
    info = _model_info(path, model)
    info.update({"random_weights": bool(settings.random_preset), "quality_meaningful": not settings.random_preset})
    return path, model, info


def _model_info(path: Path, model) -> dict:
    from DCEDiffLib.benchmark.throughput import parameter_count
    from DCEDiffLib.model_registry import model_name

    return {"path": str(path), "name": model_name(path), "preset": model.card["architecture"].get("preset"),
            "objective": model.card.get("objective", "diffusion"), "parameters": parameter_count(model.network),
            "sha256": model.card.get("weights_sha256")}


def prepare_regression(settings: BenchmarkSettings, model_info: dict):
    """(LoadedModel, info) of the learned baseline, or (None, why not): the shipped regression U-Net, as
    ``dcediff evaluate`` adds it. Skipped with ``--no-regression``, when the file is missing, and when the
    benchmarked model is that very model (never measured twice)."""
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.model_registry import shipped_regression_path

    if not settings.regression:
        return None, "skipped (--no-regression)"
    path = shipped_regression_path()
    if not path.is_file():
        return None, f"skipped: the shipped regression model {path} is missing"
    model = load_model(path)
    if model_info.get("sha256") == model.card.get("weights_sha256"):
        return None, "skipped: the benchmarked model is the shipped regression model itself"
    return model, _model_info(path, model)


def _throughput(settings: BenchmarkSettings, model, device: str, log) -> list:
    from DCEDiffLib.benchmark.forward import ForwardMode
    from DCEDiffLib.benchmark.throughput import preset_throughput
    from DCEDiffLib.diffusion.presets import build_network, network_config

    modes = [ForwardMode("fp32", True, "inference")]
    if device.startswith("cuda") or _fast_bf16():
        modes.append(ForwardMode("bf16", True, "inference"))
    out = []
    for preset in settings.throughput_presets:
        if preset == SHIPPED:
            name = f"{model.card['architecture'].get('preset', 'model')} (benchmarked model)"
            network = copy.deepcopy(model.network).to(memory_format=torch.contiguous_format)
            batches = settings.batch_sizes
        else:
            name = preset
            torch.manual_seed(settings.seed)
            network = build_network(network_config(preset)).eval()
            batches = settings.paper_batch_sizes or settings.batch_sizes
        log(f"throughput: {name}, batch {', '.join(map(str, batches))}")
        out.append(preset_throughput(name, network, batches, modes, settings.throughput_size, device,
                                     settings.repeats, 1))
        del network
    return out


def _fast_bf16() -> bool:
    from DCEDiffLib.benchmark.machine import has_fast_bf16

    return has_fast_bf16()


def _naive(settings: BenchmarkSettings, model, conditions, device: str) -> dict:
    from DCEDiffLib.benchmark.naive_reference import time_naive_loop
    from DCEDiffLib.diffusion.slice_context import volume_with_context

    network = copy.deepcopy(model.network).to(device).to(memory_format=torch.contiguous_format).float().eval()
    slices = list(range(min(settings.naive_slices, conditions.shape[1])))
    if model.card.get("objective") == "residual":  # the loop samples the residual: its condition is [cond, μ]
        with torch.no_grad():
            cond = torch.from_numpy(np.ascontiguousarray(conditions.transpose(1, 0, 2, 3))).to(device)
            mean = network.mean(volume_with_context(cond, network.mean_context_slices)).cpu().numpy()
            mean = mean.transpose(1, 0, 2, 3)
        conditions = np.concatenate([conditions, mean]).astype(np.float32)
    result = time_naive_loop(network, conditions, slices, settings.naive_steps, total_slices=conditions.shape[1],
                             total_steps=sweep.PAPER_STEPS, seed=settings.seed, device=device)
    result["description"] = ("paper's loop written plainly: one slice at a time, batch 1, float32, NCHW, "
                             "torch.no_grad (no inference_mode), all 1000 steps")
    return result


def timing_limits(settings: BenchmarkSettings, run: sweep.SamplerRun,
                  default: sweep.SamplerRun) -> Tuple[Optional[int], Optional[int]]:
    """(slices timed, evaluations timed) of ``run``'s whole-volume timing (None: all); ``default``: the model's
    default setting. The learned baseline (``sweep.REGRESSION_RUN``) is timed on the default sampler's slices: the
    two rows stand side by side, so both are measured (or both extrapolated) from the same slices."""
    if run.sampler == "ddpm":
        return settings.ddpm_slices, settings.ddpm_steps_measured
    if run.samples > 1:
        return settings.fast_slices, settings.k_steps_measured
    if run == default or run == sweep.REGRESSION_RUN:
        return settings.fast_slices, None
    return settings.fast_slices, settings.fast_steps_measured


def _volume_timings(settings: BenchmarkSettings, model, conditions, device: str, log,
                    default: sweep.SamplerRun) -> list:
    runs = [sweep.SamplerRun(sweep.DEFAULT_SAMPLER, s) for s in settings.fast_steps]
    if default not in runs:
        runs.append(default)
    runs += [sweep.SamplerRun("x0", 1), sweep.paper_run(), sweep.SamplerRun("ddpm", sweep.PAPER_STEPS, skip=True)]
    runs += [sweep.SamplerRun(sweep.DEFAULT_SAMPLER, default.steps, samples=k)
             for k in settings.k_values if k > 1]
    rows = []
    for run in runs:
        slices, limit = timing_limits(settings, run, default)
        log(f"volume timing: {run.label} ({run.nfe()} NFE)")
        rows.append(sweep.time_volume(model, conditions, run, slices_measured=slices, max_evaluations=limit,
                                      seed=settings.seed, device=device, precision=settings.precision))
    return rows


def _quality(settings: BenchmarkSettings, model, cases, device: str, log, default: sweep.SamplerRun,
             baseline=None) -> dict:
    runs = sweep.sweep_runs(settings.fast_steps, settings.k_values, include_skip=settings.quality_skip,
                            include_ddim=settings.quality_ddim, paper_steps=settings.reference_steps,
                            default=default)
    k = cases[0][1].num_slices
    n = max(1, min(settings.quality_slices, k))
    slices = list(range(k // 2 - n // 2, k // 2 - n // 2 + n))
    return sweep.quality_sweep(model, cases, runs, sweep.paper_run(settings.reference_steps), slices=slices,
                               seed=settings.seed, device=device, precision=settings.precision,
                               crop=settings.crop, log=log, baseline=baseline)


def run_benchmark(settings: BenchmarkSettings, work_dir: Path, log: Optional[Callable[[str], None]] = None) -> dict:
    """Every measurement (module docstring); returns the benchmark.json dict (targets included)."""
    from DCEDiffLib.benchmark.holdout import holdout_cases
    from DCEDiffLib.benchmark.machine import machine_info
    from DCEDiffLib.benchmark.targets import evaluate_targets
    from DCEDiffLib.diffusion.synthesis import resolve_device

    log = log or _log_default
    started = time.perf_counter()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(settings.device).type
    result: dict = {"schema": SCHEMA, "mode": settings.mode, "settings": settings.to_dict(),
                    "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": machine_info(device), "notes": []}
    model_path, model, result["model"] = prepare_model(settings, work_dir)
    regression, regression_info = prepare_regression(settings, result["model"])
    if regression is None:
        result["notes"].append(f"learned baseline (shipped regression U-Net): {regression_info}")
    if settings.random_preset:
        result["notes"].append(f"random weights ({settings.random_preset} preset): timings are real, quality "
                               "numbers only test the machinery")
    log(f"held-out cases: {settings.cases}")
    cases = holdout_cases(work_dir, settings.cases, settings.data, register=settings.register)
    case_dir, case = cases[0]
    conditions = case.conditions
    if settings.crop:
        window = sweep._crop_window(conditions.shape[-1], settings.crop)
        conditions = conditions[..., window, window]
    conditions = conditions.copy()
    result["volume"] = {"case": case.name, "shape_kji": list(conditions.shape[1:]), "targets": ["early", "late"]}

    result["throughput"] = _throughput(settings, model, device, log) if settings.throughput_presets else []
    if settings.variants:
        from DCEDiffLib.benchmark.variants import measure_variants

        log("forward-pass optimisations")
        network = copy.deepcopy(model.network).to(memory_format=torch.contiguous_format)
        result["optimisations"] = measure_variants(network, settings.variants_batch, settings.throughput_size,
                                                   device, settings.repeats, 1)
    else:
        result["optimisations"] = []
    log("naive reference loop")
    naive = _naive(settings, model, conditions, device)
    result["naive_reference"] = naive
    default = sweep.default_run(model.card)  # the model's own step count (its card's, or the engine default)
    rows = _volume_timings(settings, model, conditions, device, log, default)
    for row in rows:
        row["speedup_vs_naive"] = round(naive["seconds"] / row["seconds"], 2) if row["seconds"] > 0 else None
    result["volume_timing"] = rows
    if regression is not None:
        log(f"volume timing: {sweep.REGRESSION_LABEL} (1 network pass)")
        slices, _ = timing_limits(settings, sweep.REGRESSION_RUN, default)
        regression_timing = sweep.time_volume(regression, sweep.model_conditions(regression, conditions),
                                              sweep.REGRESSION_RUN, slices_measured=slices, seed=settings.seed,
                                              device=device, precision=settings.precision)
        regression_timing["speedup_vs_naive"] = (round(naive["seconds"] / regression_timing["seconds"], 2)
                                                 if regression_timing["seconds"] > 0 else None)
    quality = _quality(settings, model, cases, device, log, default, baseline=regression)
    baseline_quality = quality.pop("baseline")
    result["quality"] = quality
    result["regression_baseline"] = None if regression is None else {
        "label": sweep.REGRESSION_LABEL, "model": regression_info, "nfe": 1,
        "seconds_per_volume": regression_timing["seconds"], "volume_timing": regression_timing,
        "quality": baseline_quality,
        "description": "the shipped regression U-Net (objective regression): one network pass per slice batch, no "
                       "sampler; the same volume, precision, held-out slices and scoring as the model's rows"}
    result.update(end_to_end_runs(settings, case_dir, work_dir, model_path, log))
    result.update(headline(result, settings, default))
    result["targets"] = evaluate_targets(result)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return result


def end_to_end_runs(settings: BenchmarkSettings, held_out_dir: Path, work_dir: Path, model_path,
                    log: Callable[[str], None] = _log_default) -> dict:
    """The two end-to-end runs of :func:`end_to_end_case`'s case, each in a fresh process: ``end_to_end`` with the
    acquired DCE and labels, ``end_to_end_inputs_only`` with the four non-contrast inputs alone (both None when
    ``settings.end_to_end`` is off); outputs under ``work_dir``."""
    from DCEDiffLib.benchmark.end_to_end import time_end_to_end_in_fresh_process

    if not settings.end_to_end:
        return {"end_to_end": None, "end_to_end_inputs_only": None}
    timed_dir, source = end_to_end_case(settings, held_out_dir)
    runs = {}
    log(f"end to end (load, registration, sampling, writing) on {source}")
    runs["end_to_end"] = time_end_to_end_in_fresh_process(
        timed_dir, Path(work_dir) / "end_to_end", str(model_path), sampler=sweep.DEFAULT_SAMPLER, steps=None,
        seed=settings.seed, device=settings.device, case_source=source)
    log("end to end, the four non-contrast inputs only (no acquired DCE, no labels)")
    runs["end_to_end_inputs_only"] = time_end_to_end_in_fresh_process(
        timed_dir, Path(work_dir) / "end_to_end_inputs_only", str(model_path), sampler=sweep.DEFAULT_SAMPLER,
        steps=None, seed=settings.seed, device=settings.device, with_acquired=False, case_source=source)
    return runs


def end_to_end_case(settings: BenchmarkSettings, held_out_dir: Path) -> Tuple[Path, str]:
    """The case folder timed end to end, and where it comes from in words.

    ``settings.end_to_end_case`` if given; else the first case of the user's ``--data`` (``held_out_dir``); else the
    shipped sample case, the exam a user runs first (``make demo``, Slicer's Sample Data): a real-anatomy phantom on
    which the prostate model finds a gland, where the generated held-out case is procedural and has none for it to
    find; the generated case only where the sample case is not installed.
    """
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

    if settings.end_to_end_case is not None:
        return Path(settings.end_to_end_case), "the case given by --end-to-end-case"
    if settings.data is not None:
        return Path(held_out_dir), "the first case of --data"
    if (SAMPLE_CASE_DIR / "case.json").is_file():
        return SAMPLE_CASE_DIR, "the shipped sample case"
    return Path(held_out_dir), "the generated held-out case (the shipped sample case is not installed)"


def headline(result: dict, settings: BenchmarkSettings, default_run: sweep.SamplerRun) -> dict:
    """The top-level keys: speed-up, PSNR/SSIM gaps, default NFE, end to end, memory, ratios, extrapolation;
    ``default_run``: the model's default setting (``sampler_sweep.default_run``)."""
    rows = result["volume_timing"]
    default = sweep.find_row(rows, default_run.label)
    paper = sweep.find_row(rows, sweep.paper_run().label)
    skip = sweep.find_row(rows, sweep.SamplerRun("ddpm", sweep.PAPER_STEPS, skip=True).label)
    naive = result["naive_reference"]
    quality = result["quality"]
    q_default = sweep.find_row(quality["runs"], default_run.label)
    q_reference = quality["reference"]
    end, inputs_only = result.get("end_to_end"), result.get("end_to_end_inputs_only")
    memories = [default["memory"]["peak_mb"]] + [run["memory"]["peak_mb"] for run in (end, inputs_only) if run]

    def ratio(a, b):
        return round(a / b, 3) if a and b else None

    out = {
        "speedup_vs_naive_ddpm1000": ratio(naive["seconds"], default["seconds"]),
        "psnr_gap_db_default_vs_ddpm1000": round(q_reference["vs_acquired"]["psnr"]
                                                 - q_default["vs_acquired"]["psnr"], 4),
        "ssim_gap_default_vs_ddpm1000": round(q_reference["vs_acquired"]["ssim"]
                                              - q_default["vs_acquired"]["ssim"], 5),
        "default_psnr_vs_ddpm1000_db": q_default["vs_reference"]["psnr"],
        "default_sampler": sweep.DEFAULT_SAMPLER, "default_steps": default_run.steps,
        "default_nfe": default["nfe"],
        "default_volume_seconds": default["seconds"],
        "ddpm1000_volume_seconds": paper["seconds"],
        "naive_ddpm1000_volume_seconds": naive["seconds"],
        "end_to_end_seconds": end["seconds"] if end else None,
        "end_to_end_inputs_only_seconds": inputs_only["seconds"] if inputs_only else None,
        "regression_volume_seconds": (result["regression_baseline"]["seconds_per_volume"]
                                      if result.get("regression_baseline") else None),
        "peak_inference_memory_mb": max(memories),
        "ratios": {
            "naive_ddpm1000_over_default": ratio(naive["seconds"], default["seconds"]),
            "naive_ddpm1000_over_end_to_end": ratio(naive["seconds"], end["seconds"]) if end else None,
            "naive_ddpm1000_over_batched_ddpm1000": ratio(naive["seconds"], paper["seconds"]),
            "batched_ddpm1000_over_default": ratio(paper["seconds"], default["seconds"]),
            "ddpm1000_over_ddpm1000_skip": ratio(paper["seconds"], skip["seconds"]) if skip else None,
        },
        "extrapolated": {
            "naive_ddpm1000": bool(naive["extrapolated"]),
            "ddpm1000_volume": bool(paper["extrapolated"]),
            "default_volume": bool(default["extrapolated"]),
            "regression_volume": (bool(result["regression_baseline"]["volume_timing"]["extrapolated"])
                                  if result.get("regression_baseline") else None),
            "quality_reference_steps": settings.reference_steps,
            "quality_slices_per_case": len(quality["slices"] or []),
            "quality_cases": len(quality["cases"]),
        },
    }
    return out
