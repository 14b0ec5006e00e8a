"""Time and quality of each sampler and step count on the same inputs (the core of ``dcediff benchmark``).

Timing (:func:`time_volume`): one volume (all slices of a case, early + late) through
``synthesis.synthesize_volume`` — the code path users run (all slices in one batch, ``inference_mode``,
channels_last). Long runs can be cut short: only ``slices_measured`` slices and only ``max_evaluations`` network
evaluations are run, and the time is extrapolated linearly to the whole volume and the whole step count (every
step of a sampler costs one batched forward plus a few element-wise operations). Extrapolated rows say so.

Quality (:func:`quality_sweep`): on held-out cases, each sampler/step count and each K-sample average is scored
(PSNR, SSIM, MAE; ``evaluation.metrics``, intensities scaled to [0, 1] by the acquired volume's own percentile
bounds) against the acquired DCE and against the paper's 1000-step sampler run on the same slices with the same
seed, and its enhancement (target − T1-pre) is correlated with the acquired enhancement inside the body
(``enhancement_r``; ``evaluation.enhancement``, the body mask of ``evaluation.case_evaluation``, as ``dcediff
evaluate`` scores it). The reported numbers are means over cases and over early/late. A ``baseline`` model (the
shipped regression U-Net, the learned baseline: one network pass, no sampler) is scored in the same loop, on the
same slices, by the same function (:data:`REGRESSION_RUN`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from DCEDiffLib import defaults
from DCEDiffLib.benchmark.memory import PeakMemory
from DCEDiffLib.benchmark.timing import synchronize
from DCEDiffLib.modalities import TARGET_MODALITIES
from DCEDiffLib.normalization import NormParams
from DCEDiffLib.sampling_steps import resolve_steps

DEFAULT_SAMPLER = defaults.DEFAULT_SAMPLER
DEFAULT_STEPS = defaults.DEFAULT_STEPS
PAPER_SAMPLER = "ddpm"
PAPER_STEPS = 1000
FAST_STEPS = (5, 10, 20, 50)
K_VALUES = (1, 4, 8)
METRICS = ("psnr", "ssim", "mae")
ENHANCEMENT_METRIC = "enhancement_r"  # vs acquired only: Pearson r of the enhancement maps in the body
REGRESSION_LABEL = "regression (learned baseline)"


@dataclasses.dataclass(frozen=True)
class SamplerRun:
    """One sampler setting: ``sampler`` with ``steps`` (ddpm: steps of the 1000-step schedule; ``skip``: drop the
    levels below the smallest training noise level), averaged over ``samples`` samples."""

    sampler: str
    steps: int
    samples: int = 1
    skip: bool = False

    @property
    def label(self) -> str:
        if self.sampler == "regression":
            return REGRESSION_LABEL
        text = f"{self.sampler}-{self.steps}"
        if self.skip:
            text += "-skip"
        if self.samples > 1:
            text += f"-K{self.samples}"
        return text

    def nfe(self) -> int:
        """Network evaluations per sample (each evaluates all slices × samples in one batch)."""
        from DCEDiffLib.diffusion.samplers import sampler_levels

        if self.sampler == "regression":
            return 1
        return len(sampler_levels(self.sampler, self.steps, self.skip))


def default_run(card: Optional[dict] = None) -> SamplerRun:
    """The default setting for a model with this card: the default sampler with the card's own step count
    (``sampling_steps.resolve_steps``; ``DEFAULT_STEPS`` without a card)."""
    return SamplerRun(DEFAULT_SAMPLER, resolve_steps(card or {}, DEFAULT_SAMPLER))


def paper_run(steps: int = PAPER_STEPS) -> SamplerRun:
    return SamplerRun(PAPER_SAMPLER, steps)


# A regression model (objective "regression") through ``synthesize_volume``: one network pass, the sampler unused.
REGRESSION_RUN = SamplerRun("regression", 1)


def sweep_runs(fast_steps: Sequence[int] = FAST_STEPS, k_values: Sequence[int] = K_VALUES,
               include_skip: bool = True, include_ddim: bool = True, include_x0: bool = True,
               paper_steps: int = PAPER_STEPS, default: Optional[SamplerRun] = None) -> List[SamplerRun]:
    """The settings the benchmark compares (the 1000-step reference itself is not in the list); ``default``: the
    model's default setting (:func:`default_run`), which the K > 1 rows also use."""
    default = default or default_run()
    runs = [SamplerRun(DEFAULT_SAMPLER, s) for s in fast_steps]
    if default not in runs:
        runs.append(default)
    if include_ddim:
        runs += [SamplerRun("ddim", s) for s in fast_steps]
    if include_x0:
        runs.append(SamplerRun("x0", 1))
    if include_skip:
        runs.append(SamplerRun(PAPER_SAMPLER, paper_steps, skip=True))
    runs += [SamplerRun(DEFAULT_SAMPLER, default.steps, samples=k) for k in k_values if k > 1]
    return runs


# An ADC normalisation for timing runs of a model that reads the ADC in absolute units (diffusion/absolute_adc.py):
# the time does not depend on the values (0..3000 × 10⁻⁶ mm²/s, the span of a prostate exam's ADC).
TIMING_ADC_NORM = NormParams(0.0, 3000.0)


class _StopTiming(Exception):
    """Raised from the progress callback to end a run after the evaluations to be timed."""


def run_synthesis(model, conditions: np.ndarray, run: SamplerRun, *, seed: int = 0, device: str = "cpu",
                  precision: str = "auto", max_evaluations: Optional[int] = None, adc_norm=None):
    """``synthesize_volume`` for ``run``; with ``max_evaluations`` it stops after that many evaluations.
    ``adc_norm``: the case's ADC normalisation, for a model that reads the ADC in absolute units (timing runs, which
    need only the shapes, get :data:`TIMING_ADC_NORM`).

    Returns (SynthesisResult or None when stopped early, evaluations done, evaluations in the whole run). The
    counts are the synthesis' progress units: a residual card's mean pass counts as one (its first).
    """
    from DCEDiffLib.diffusion.synthesis import synthesize_volume

    done, total = [0], [0]

    def progress(step: int, steps: int) -> None:
        done[0], total[0] = step, steps
        if max_evaluations is not None and step >= max_evaluations and step < steps:
            raise _StopTiming()

    try:
        result = synthesize_volume(model, conditions, sampler=run.sampler, steps=run.steps, samples=run.samples,
                                   seed=seed, device=device, precision=precision, progress=progress,
                                   skip_below_train_min=run.skip, adc_norm=adc_norm or TIMING_ADC_NORM)
    except _StopTiming:
        return None, done[0], total[0]
    return result, done[0], total[0]


def time_volume(model, conditions: np.ndarray, run: SamplerRun, *, slices_measured: Optional[int] = None,
                max_evaluations: Optional[int] = None, seed: int = 0, device: str = "cpu",
                precision: str = "auto") -> dict:
    """Wall time, NFE and peak memory of one volume (conditions (C, K, H, W)) with ``run``.

    Only the first ``slices_measured`` slices and ``max_evaluations`` evaluations run when given; the time is then
    extrapolated to K slices and the full NFE, and ``extrapolated`` is True. A run cut short in evaluations is
    extrapolated from two timed runs, one stopped after its first evaluation: what comes before the sampler's
    steps (a residual card's mean pass, the set-up) counts once, not once per extrapolated chunk. Peak memory is
    that of the measured batch (an underestimate when fewer slices ran; ``memory_slices`` says how many).
    """
    from DCEDiffLib.diffusion.synthesis import _precision, resolve_device

    precision = _precision(precision, resolve_device(device))
    total_slices = int(conditions.shape[1])
    slices = total_slices if not slices_measured else max(1, min(int(slices_measured), total_slices))
    part = np.ascontiguousarray(conditions[:, :slices])
    nfe = run.nfe()
    limit = None if not max_evaluations or max_evaluations >= nfe else int(max_evaluations)
    # Untimed warm-up: one evaluation at the measured batch (oneDNN/cuDNN pick kernels on the first call).
    run_synthesis(model, part, run, seed=seed, device=device, precision=precision, max_evaluations=1)
    with PeakMemory(device) as peak:
        start = time.perf_counter()
        result, done, units = run_synthesis(model, part, run, seed=seed, device=device, precision=precision,
                                            max_evaluations=limit)
        synchronize(device)
        measured = time.perf_counter() - start
    per_volume, first = measured, None
    if result is None and done > 1:  # cut short: the first evaluation (and what precedes it) timed apart
        start = time.perf_counter()
        run_synthesis(model, part, run, seed=seed, device=device, precision=precision, max_evaluations=1)
        synchronize(device)
        first = min(time.perf_counter() - start, measured)
        per_volume = first + (measured - first) * (units - 1) / (done - 1)
    elif result is None:
        per_volume = measured * units / max(done, 1)
    done = nfe if result is not None else max(done, 1)
    seconds = per_volume * (total_slices / slices)
    return {"label": run.label, "sampler": run.sampler, "steps": run.steps, "samples": run.samples,
            "skip_below_train_min": run.skip, "nfe": nfe, "slices": total_slices,
            "forwards": nfe * total_slices * run.samples,
            "measured_s": round(measured, 4), "measured_slices": slices, "measured_nfe": done,
            "measured_first_s": None if first is None else round(first, 4), "run_units": units,
            "seconds": round(seconds, 3), "seconds_per_nfe": round(seconds / nfe, 5),
            "extrapolated": bool(slices < total_slices or done < nfe),
            "precision": precision,
            "memory": peak.result(), "memory_slices": slices}


def score(pred_unit: np.ndarray, ref_unit: np.ndarray) -> Dict[str, float]:
    """PSNR (dB), SSIM and MAE of two (K, H, W) volumes on [0, 1]."""
    from DCEDiffLib.evaluation.metrics import mae, psnr, ssim

    value = psnr(pred_unit, ref_unit, data_range=1.0)
    return {"psnr": float(min(value, 100.0)), "ssim": float(ssim(pred_unit, ref_unit, data_range=1.0)),
            "mae": float(mae(pred_unit, ref_unit))}


def _mean_scores(rows: List[Dict[str, Optional[float]]]) -> Dict[str, Optional[float]]:
    out: Dict[str, Optional[float]] = {m: round(float(np.mean([r[m] for r in rows])), 5) for m in METRICS}
    if rows and ENHANCEMENT_METRIC in rows[0]:  # None (constant map) is left out of the mean
        values = [r[ENHANCEMENT_METRIC] for r in rows if r[ENHANCEMENT_METRIC] is not None]
        out[ENHANCEMENT_METRIC] = round(float(np.mean(values)), 5) if values else None
    return out


def score_prediction(case, prediction: np.ndarray, slices: Sequence[int], window: slice,
                     reference_unit: Optional[Dict[str, np.ndarray]] = None, card: Optional[dict] = None):
    """Scores of one prediction (2, len(slices), h, w; normalised) of ``case``'s ``slices`` (cropped to
    ``window``) by the model with ``card``: per target vs the acquired DCE (PSNR/SSIM/MAE on [0, 1], and
    ``enhancement_r``) and vs ``reference_unit`` (default: itself). Every row of the quality table, the learned
    baseline's included, is scored here, on the image synthesis writes: the clipped T1-pre's excess added back as
    ``dcediff synthesize``/``evaluate`` add it (``intensity_tail.synthetic_intensity``; by the rule of ``card``).

    ``enhancement_r``: Pearson r of synthetic and acquired enhancement (target − T1-pre, on the DCE's intensity
    scale, T1-pre mapped as ``dcediff evaluate``'s default ``identity``) inside the body mask derived from the
    acquired early frame's scored slices — ``evaluation.enhancement`` and ``evaluation.case_evaluation``, the
    code behind ``dcediff evaluate``'s body enhancement r; None where undefined (a constant map).

    Returns (vs-acquired rows, vs-reference rows, this prediction on [0, 1] per target).
    """
    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask
    from DCEDiffLib.evaluation.enhancement import compare_enhancement, enhancement_map
    from DCEDiffLib.evaluation.metrics import apply_scale, robust_bounds
    from DCEDiffLib.intensity_tail import synthetic_intensity, t1pre_excess_to_add

    chosen = list(slices)
    t1pre = case.raw("t1pre")[chosen][..., window, window]
    # the excess is voxel-wise: that of the scored voxels is the scored voxels' T1-pre over the clip
    excess = t1pre_excess_to_add(card or {}, case.intensity_notes, case.norm["t1pre"], lambda: t1pre)
    body = None
    acq, ref, units = [], [], {}
    for index, target in enumerate(TARGET_MODALITIES):
        acquired_volume = case.raw(target)
        bounds = robust_bounds(acquired_volume)  # the whole acquired volume's scale, not the scored slices'
        acquired = acquired_volume[chosen][..., window, window]
        synthetic = synthetic_intensity(prediction[index], case.norm[target], excess)
        if body is None:
            body = derive_body_mask(acquired)
        units[target] = apply_scale(synthetic, bounds)
        row = score(units[target], apply_scale(acquired, bounds))
        row[ENHANCEMENT_METRIC] = compare_enhancement(enhancement_map(synthetic, t1pre),
                                                      enhancement_map(acquired, t1pre), None, body)["pearson"]
        acq.append(row)
        ref.append(score(units[target], (reference_unit or units)[target]))
    return acq, ref, units


def quality_sweep(model, cases: Sequence, runs: Sequence[SamplerRun], reference: SamplerRun, *,
                  slices: Optional[Sequence[int]] = None, seed: int = 0, device: str = "cpu",
                  precision: str = "auto", crop: Optional[int] = None, log=None, baseline=None) -> dict:
    """Score ``reference`` and every run on each case's ``slices`` (default: the middle slice).

    ``cases``: (case folder, ``CaseArrays``) pairs. ``crop`` (tests only) keeps the central crop × crop pixels.
    ``baseline``: a regression model (the learned baseline) scored the same way as :data:`REGRESSION_RUN`.
    Returns ``{"reference": {...}, "runs": [...], "baseline": {...} or None, "slices": [...], "cases": [...]}``;
    each row has ``vs_acquired`` (with ``enhancement_r``) and ``vs_reference`` (means over cases and early/late),
    ``per_case`` and ``seconds``.
    """
    from DCEDiffLib.modalities import INPUT_MODALITIES
    from DCEDiffLib.t1pre_level import conditions_gland_level, rescale_low_t1pre

    all_runs = [reference] + [r for r in runs if r != reference]
    jobs = [(model, r) for r in all_runs] + ([(baseline, REGRESSION_RUN)] if baseline is not None else [])
    per_run: Dict[str, dict] = {r.label: {"acq": [], "ref": [], "seconds": 0.0, "per_case": []} for _, r in jobs}
    used_slices = None
    for case_dir, case in cases:
        k = case.num_slices
        chosen = [k // 2] if not slices else [s for s in slices if 0 <= s < k]
        used_slices = chosen
        conditions = np.ascontiguousarray(case.conditions[:, chosen])
        window = _crop_window(conditions.shape[-1], crop)
        conditions = conditions[..., window, window]
        reference_unit = None
        whole_level = conditions_gland_level(case.conditions, INPUT_MODALITIES)  # the volume's, not the slices'
        for job_model, run in jobs:
            if log:
                log(f"  quality: {case.name} {run.label} ({run.nfe()} NFE × {len(chosen)} slice(s))")
            start = time.perf_counter()
            scored = model_conditions(job_model, conditions)
            result, _, _ = run_synthesis(job_model, scored, run, seed=seed,
                                         device=device, precision=precision, adc_norm=case.norm.get("adc"))
            per_run[run.label]["seconds"] += time.perf_counter() - start
            # as synthesis and evaluation do: a low T1-pre's enhancement scaled down, by the whole volume's level
            names = job_model.card["conditions"]
            rescale_low_t1pre(result, scored, names, job_model.card, level=whole_level if "t1pre" in names else None)
            acq, ref, unit = score_prediction(case, result.mean, chosen, window, reference_unit, job_model.card)
            if reference_unit is None:
                reference_unit = unit
            per_run[run.label]["acq"] += acq
            per_run[run.label]["ref"] += ref
            per_run[run.label]["per_case"].append({"case": case.name, "vs_acquired": _mean_scores(acq),
                                                   "vs_reference": _mean_scores(ref)})
    rows = []
    for _, run in jobs:
        data = per_run[run.label]
        rows.append({"label": run.label, "sampler": run.sampler, "steps": run.steps, "samples": run.samples,
                     "skip_below_train_min": run.skip, "nfe": run.nfe(), "nfe_total": run.nfe() * run.samples,
                     "vs_acquired": _mean_scores(data["acq"]), "vs_reference": _mean_scores(data["ref"]),
                     "per_case": data["per_case"], "seconds": round(data["seconds"], 3)})
    return {"reference": rows[0], "runs": rows[1:len(all_runs)],
            "baseline": rows[len(all_runs)] if baseline is not None else None, "slices": used_slices, "crop": crop,
            "cases": [c.name for _, c in cases], "seed": seed}


def model_conditions(model, conditions: np.ndarray) -> np.ndarray:
    """The condition channels (all of ``INPUT_MODALITIES``, in that order) that ``model``'s card asks for."""
    from DCEDiffLib.modalities import INPUT_MODALITIES

    wanted = list(model.card["conditions"])
    if wanted == list(INPUT_MODALITIES):
        return conditions
    return np.ascontiguousarray(conditions[[INPUT_MODALITIES.index(m) for m in wanted]])


def _crop_window(size: int, crop: Optional[int]) -> slice:
    if not crop or crop >= size:
        return slice(None)
    start = (size - crop) // 2
    return slice(start, start + crop)


def find_row(rows: Sequence[dict], label: str) -> Optional[dict]:
    for row in rows:
        if row.get("label") == label:
            return row
    return None
