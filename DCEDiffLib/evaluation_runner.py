"""Evaluate models and the trivial baselines on held-out cases, the same way for every method.

Methods: the model; ``identity`` (T1-pre as the prediction: zero enhancement); ``t1pre_gain`` (T1-pre times the
best global gain, an oracle); ``mean_enhancement`` (T1-pre plus the training set's average enhancement per T1-pre
intensity bin); any ``--compare`` models (e.g. the regression U-Net, the model trained without ADC).

Beside the tables, metrics.json gets ``protocol`` (see ``evaluation.protocol``): the single-input linear predictors'
|r| with the acquired enhancement, the model's uncertainty calibration (with ``samples`` > 1), and paired bootstrap
differences of the model against every other method over the same patients.

``missing`` (``dcediff evaluate --missing pd``): every method runs with that input missing, its normalised channel
set to ``modalities.MISSING_INPUT_VALUE`` exactly as training's modality dropout and the pipeline do, so that the
cost of a missing PD is measured with the same metrics. A model whose card does not list the input in
``optional_inputs`` runs too (a warning; meta ``missing_inputs.models_trained_without`` says which did), and the
linear predictors and the report leave the input out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from DCEDiffLib import defaults
from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import INPUT_MODALITIES, MISSING_INPUT_VALUE, OPTIONAL_INPUTS, TARGET_MODALITIES
from DCEDiffLib.progress import TqdmProgress

SHORT = {"dce_early": "early", "dce_late": "late"}


def _spacing_kji(grid: dict):
    """Voxel spacing in (k, j, i) order from a working-grid dict (None if unknown)."""
    spacing = grid.get("spacing") if isinstance(grid, dict) else None
    return tuple(reversed(spacing)) if spacing else None


def _case_dirs(data_dir: Path, split_path: Optional[Path], key: str) -> List[Path]:
    from DCEDiffLib.training.case_data import list_case_dirs
    from DCEDiffLib.training.case_identity import check_same_patients
    from DCEDiffLib.training.split import read_split

    dirs = list_case_dirs(data_dir)
    if split_path is None:
        return dirs
    split = read_split(split_path)
    names = set(split[key])
    if not names:
        counts = ", ".join(f"{len(split.get(k, []))} {k}" for k in ("train", "validation", "test"))
        raise InputError(f"{split_path}: the split has no {key} case ({counts}); "
                         + ("score its validation cases with --subset validation" if key == "test" else
                            "use a split with one"))
    chosen = [d for d in dirs if d.name in names]
    if not chosen:
        raise InputError(f"{split_path}: none of its {key} cases is in {data_dir}")
    absent = sorted(names - {d.name for d in chosen})
    if absent:  # scored or fitted on fewer cases than the split names: say so, the numbers are of these cases only
        print(f"dcediff evaluate: warning: {len(absent)} of the split's {len(names)} {key} cases are not in "
              f"{data_dir} ({', '.join(absent[:5])}{', …' if len(absent) > 5 else ''}): "
              f"{'scoring' if key != 'train' else 'fitting the mean-enhancement baseline on'} the other "
              f"{len(chosen)}", file=sys.stderr, flush=True)
    check_same_patients(split, {d.name: d for d in chosen}, names, f"--split {split_path} on --data {data_dir}")
    return chosen


def training_cases_scored(model_path: Path, eval_dirs: Sequence[Path]) -> List[str]:
    """The scored cases that trained or validated the model, by patient, when its run folder's split.json says
    (``dcediff evaluate`` without ``--split`` on the run's own data folder); [] when it cannot tell."""
    from DCEDiffLib.training.case_identity import case_identity, patient_of
    from DCEDiffLib.training.split import read_split

    split_path = Path(model_path).parent / "split.json"
    try:
        split = read_split(split_path)
    except (OSError, ValueError):
        return []
    trained = [n for key in ("train", "validation") for n in split.get(key, [])]
    recorded = split.get("identities") or {}
    seen = {recorded[n] for n in trained if n in recorded}
    patients = split.get("patients") or {}  # another study of a training patient is that patient too
    seen_patients = {patients[n] for n in trained if n in patients}
    return [d.name for d in eval_dirs
            if case_identity(d) in seen or (seen_patients and patient_of(d) in seen_patients)]


def refuse_baseline_fit_on_scored_cases(fit_dirs: Sequence[Path], eval_dirs: Sequence[Path]) -> None:
    """The mean-enhancement baseline must not be fitted on a patient it is scored on: that flatters it (+0.5 dB
    on one phantom patient). Refuses a fit case that is a scored case's folder or the same patient (case.json's
    phantom seed and anatomy, or its study UID)."""
    from DCEDiffLib.training.case_identity import case_identity

    scored_paths = {Path(d).resolve(): Path(d).name for d in eval_dirs}
    scored_patients = {case_identity(d): Path(d).name for d in eval_dirs}
    scored_patients.pop(None, None)
    overlap = []
    for folder in fit_dirs:
        name = scored_paths.get(Path(folder).resolve())
        if name is None:
            name = scored_patients.get(case_identity(folder))
        if name is not None:
            overlap.append(f"{Path(folder).name} (= scored {name})")
    if overlap:
        raise InputError(f"the mean-enhancement baseline would be fitted on {len(overlap)} of the scored patients "
                         f"({', '.join(overlap[:5])}{', …' if len(overlap) > 5 else ''}): expected --baseline-data "
                         "to be a folder of other patients (e.g. the model's training data), or a --split whose "
                         "train cases are not its scored cases")


def check_missing(missing: Sequence[str]) -> List[str]:
    """The inputs of ``--missing``, checked: only optional inputs (``modalities.OPTIONAL_INPUTS``) can be left out."""
    out = []
    for name in missing or ():
        if name not in OPTIONAL_INPUTS:
            raise InputError(f"--missing {name}: only {', '.join(OPTIONAL_INPUTS)} can be evaluated as missing (the "
                             f"inputs a model can be trained to do without); expected one of "
                             f"{', '.join(OPTIONAL_INPUTS)}")
        if name not in out:
            out.append(name)
    return out


# The rows every evaluation writes itself: a --compare model of one of these names would replace that row's results
# (or the model's, while meta still names --model), silently.
RESERVED_METHODS = ("model", "identity", "t1pre_gain", "mean_enhancement")


def check_compare_names(compare: Optional[Dict[str, str]]) -> None:
    """Refuse a ``--compare`` name that is one of the evaluation's own rows (:data:`RESERVED_METHODS`)."""
    taken = [name for name in (compare or {}) if name in RESERVED_METHODS]
    if taken:
        raise InputError(f"--compare {taken[0]}=...: {taken[0]!r} is the name of a row every evaluation writes "
                         f"({', '.join(RESERVED_METHODS)}); expected another name, e.g. other_{taken[0]}")


def model_conditions(model, case, missing: Sequence[str] = ()) -> np.ndarray:
    """The case's normalised conditions in the model's channel order; ``missing`` inputs are the constant
    ``MISSING_INPUT_VALUE`` (a copy: the case is not modified)."""
    names = model.card["conditions"]
    cond = np.array(case.conditions[[INPUT_MODALITIES.index(m) for m in names]], dtype=np.float32, copy=True)
    for i, name in enumerate(names):
        if name in missing:
            cond[i] = MISSING_INPUT_VALUE
    return cond


def synthesize_arrays(model, case, sampler: str, steps: Optional[int], samples: int, seed: int, device: str,
                      std_out: Optional[dict] = None, missing: Sequence[str] = (),
                      expected_error_out: Optional[dict] = None) -> Dict[str, np.ndarray]:
    """A model's early/late prediction for one case, on the acquired DCE's intensity scale; the sample std on the
    same scale goes into ``std_out`` (when given and ``samples`` > 1), the card's expected-error map into
    ``expected_error_out`` (when given and the card has one). ``missing``: inputs left out (their channel is
    ``MISSING_INPUT_VALUE``)."""
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.intensity_tail import synthetic_intensity, t1pre_excess_to_add
    from DCEDiffLib.normalization import spread_to_intensity
    from DCEDiffLib.t1pre_level import rescale_low_t1pre

    conditions = model_conditions(model, case, missing)
    result = synthesize_volume(model, conditions, sampler=sampler, steps=steps, samples=samples, seed=seed,
                               device=device, adc_norm=case.norm.get("adc"))
    # as synthesis does: a T1-pre lower on its scale than any training exam gets its enhancement scaled down
    rescale_low_t1pre(result, conditions, model.card["conditions"], model.card)
    for out, spread in ((std_out, result.std), (expected_error_out, result.expected_error)):
        if out is not None and spread is not None:
            for i, t in enumerate(TARGET_MODALITIES):
                out[SHORT[t]] = spread_to_intensity(spread[i], case.norm[t])
    # as synthesis does (pipeline.synthesize_case, the same function): the clipped T1-pre's excess added back
    excess = t1pre_excess_to_add(model.card, case.intensity_notes, case.norm["t1pre"], lambda: case.raw("t1pre"))
    return {SHORT[t]: synthetic_intensity(result.mean[i], case.norm[t], excess)
            for i, t in enumerate(TARGET_MODALITIES)}


def evaluate_models(model_path: str, data_dir: Path, out_dir: Path, split_path: Optional[Path] = None,
                    baseline_data: Optional[Path] = None, compare: Optional[Dict[str, str]] = None,
                    sampler: str = defaults.DEFAULT_SAMPLER, steps: Optional[int] = None,
                    samples: int = defaults.DEFAULT_SAMPLES, seed: int = 0,
                    device: str = "auto", max_cases: Optional[int] = None, fid: bool = True,
                    overwrite: bool = False, cache_dir: Optional[Path] = None, subset: str = "test",
                    missing: Sequence[str] = ()) -> dict:
    """Run the evaluation and write metrics.json/csv/md and report.png into ``out_dir``; returns the summary.

    ``subset``: which cases of ``split_path`` to score — "test" (final numbers, once) or "validation" (tuning).
    ``missing``: inputs every method runs without (only ``pd``; see the module docstring).
    ``steps`` None: each model samples with its own count (``sampling_steps.resolve_steps``; meta records them).
    """
    from DCEDiffLib.diffusion.model_files import missing_inputs_allowed

    from DCEDiffLib.atomic import (EVALUATION_RECORD, atomic_directory, check_output_folder, check_writable_location,
                                   refuse_output_inside_input)
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.sampling_steps import resolve_steps
    from DCEDiffLib.evaluation.baselines import MeanEnhancementBaseline, identity_baseline
    from DCEDiffLib.evaluation.protocol import best_gain_baseline
    from DCEDiffLib.evaluation.case_evaluation import evaluate_case
    from DCEDiffLib.evaluation.tables import aggregate, write_metrics
    from DCEDiffLib.model_registry import resolve_model
    from DCEDiffLib.training.case_data import load_case

    missing = check_missing(missing)
    check_compare_names(compare)
    out_dir = Path(out_dir)
    for option, folder in (("--data", data_dir), ("--baseline-data", baseline_data)):
        # the results and the default case cache (.OUT.cache beside --out) would be written among the cases
        if folder is not None:
            refuse_output_inside_input(out_dir, "--out", folder, option, "evaluation never writes into its inputs")
    # before any case is read or sampled (what atomic_directory checks again at the end)
    check_output_folder(out_dir, overwrite=overwrite, records=(EVALUATION_RECORD,),
                        inputs=[p for p in (data_dir, split_path, baseline_data, model_path, *(compare or {}).values())
                                if p])
    cache = Path(cache_dir) if cache_dir else out_dir.parent / f".{out_dir.name}.cache"
    if not cache.is_dir():  # an existing cache may be read-only (a shared, filled one): entries are only read
        check_writable_location(cache, f"case cache {cache}")
    models = {"model": load_model(resolve_model(model_path))}
    for name, path in (compare or {}).items():
        models[name] = load_model(resolve_model(path))
    trained_without = {name: all(m in missing_inputs_allowed(loaded.card) for m in missing)
                       for name, loaded in models.items()} if missing else {}
    for name, ok in trained_without.items():
        if not ok:
            print(f"dcediff evaluate: warning: {name} ({Path(str(models[name].path)).stem}) was not trained to do "
                  f"without {', '.join(missing)} (its card has no optional_inputs {missing}); it runs with the "
                  f"channel set to {MISSING_INPUT_VALUE:g} all the same, to measure what that costs",
                  file=sys.stderr, flush=True)
    if subset not in ("test", "validation"):
        raise InputError(f"evaluation subset {subset!r}: expected 'test' or 'validation'")
    eval_dirs = _case_dirs(Path(data_dir), split_path, subset)[:max_cases]
    fit_dirs = None
    if baseline_data is not None:
        fit_dirs = _case_dirs(Path(baseline_data), None, "train")
    elif split_path is not None:
        fit_dirs = _case_dirs(Path(data_dir), split_path, "train")
    refuse_baseline_fit_on_scored_cases(fit_dirs or [], eval_dirs)
    seen = training_cases_scored(resolve_model(model_path), eval_dirs)
    if seen:
        advice = ("--split RUN/split.json scores its test cases only" if split_path is None else
                  "the split has them (or another study of their patient) in training: a split made before patients "
                  "were grouped; a new training run splits by patient")
        print(f"dcediff evaluate: warning: {len(seen)} of the {len(eval_dirs)} scored cases trained or validated "
              f"this model ({', '.join(seen[:5])}{', …' if len(seen) > 5 else ''}; its run's split.json), by "
              f"patient: these are not test numbers. {advice}", file=sys.stderr, flush=True)
    loaded = [load_case(d, cache) for d in eval_dirs]
    cases = [c for c in loaded if c.targets is not None]
    if not cases:
        raise InputError(f"no evaluation case in {data_dir} has acquired early/late DCE")
    # a case without acquired DCE cannot be scored: said and recorded, so that n is not silently smaller than --data
    unscored = [c.name for c in loaded if c.targets is None]
    if unscored:
        print(f"dcediff evaluate: warning: {len(unscored)} of the {len(loaded)} cases have no acquired early/late DCE "
              f"and are not scored ({', '.join(unscored[:5])}{', …' if len(unscored) > 5 else ''}): the numbers are "
              f"of the other {len(cases)}", file=sys.stderr, flush=True)

    baseline = None
    fit_cases: list = []
    if fit_dirs:
        fit_cases = [c for c in (load_case(d, cache) for d in fit_dirs) if c.targets is not None]
        baseline = MeanEnhancementBaseline().fit(
            [(c.raw("t1pre"), c.raw("dce_early"), c.raw("dce_late")) for c in fit_cases])

    results: Dict[str, list] = {name: [] for name in models}
    results["identity"] = []
    results["t1pre_gain"] = []
    if baseline is not None:
        results["mean_enhancement"] = []
    predictions: Dict[str, list] = {name: [] for name in results}
    protocol_rows: list = []
    spreads: list = []  # per case, the model's expected |error| (its card's) or else its sample std: report.png
    bar = TqdmProgress("evaluate")
    started = time.perf_counter()
    for index, case in enumerate(cases):
        acquired = {SHORT[t]: case.raw(t) for t in TARGET_MODALITIES}
        t1pre = case.raw("t1pre")
        std: dict = {}
        expected: dict = {}
        per_method = {name: synthesize_arrays(m, case, sampler, steps, samples, seed, device,
                                              std if name == "model" else None, missing,
                                              expected if name == "model" else None)
                      for name, m in models.items()}
        identity = identity_baseline(t1pre, acquired["early"])
        per_method["identity"] = {"early": identity, "late": identity}
        per_method["t1pre_gain"] = {k: best_gain_baseline(t1pre, acquired[k]) for k in ("early", "late")}
        protocol_rows.append(_protocol_row(case, acquired, t1pre, per_method["model"], std, missing, expected))
        spreads.append({"expected_error": expected} if expected else {"uncertainty": std} if std else {})
        if baseline is not None:
            early, late = baseline.predict(t1pre)
            per_method["mean_enhancement"] = {"early": early, "late": late}
        for name, prediction in per_method.items():
            metrics = evaluate_case(prediction, acquired, t1pre, labels=case.labels, legend=case.legend,
                                    spacing=_spacing_kji(case.grid))
            metrics["case"] = case.name
            results[name].append(metrics)
            predictions[name].append(prediction)
        from DCEDiffLib.progress import ProgressEvent

        bar(ProgressEvent("evaluate", index + 1, len(cases), (index + 1) / len(cases),
                          time.perf_counter() - started))
    bar.close()

    steps_by_method = {name: resolve_steps(m.card, sampler, steps) for name, m in models.items()
                       if m.card.get("objective") != "regression"}
    meta = {"model": str(resolve_model(model_path)), "compare": compare or {}, "sampler": sampler,
            "steps": resolve_steps(models["model"].card, sampler, steps), "steps_by_method": steps_by_method,
            "samples": samples, "seed": seed, "cases": [c.name for c in cases],
            "data": str(data_dir), "split": str(split_path) if split_path else None,
            "subset": subset if split_path else "all cases",
            "scored_cases_that_trained_the_model": seen,
            "cases_without_acquired_dce": unscored,  # in --data (or the split's subset), not scored
            # what the mean-enhancement baseline was fitted on (never the scored patients: checked above)
            "mean_enhancement_fit": ({"data": str(baseline_data if baseline_data is not None else data_dir),
                                      "source": "--baseline-data" if baseline_data is not None else
                                      "the split's train cases", "cases": len(fit_cases)}
                                     if baseline is not None else None),
            "seconds": round(time.perf_counter() - started, 1),
            "missing_inputs": ({"inputs": missing, "value": MISSING_INPUT_VALUE,
                                "applies_to": "every method (the baselines use only the T1-pre)",
                                "models_trained_without": trained_without} if missing else None)}
    fid_results = fid_of_predictions(predictions, cases) if fid else {"skipped": "disabled with --no-fid"}
    meta["fid"] = fid_results
    meta["protocol"] = _protocol_summary(protocol_rows, results)
    with atomic_directory(out_dir, overwrite=overwrite, records=(EVALUATION_RECORD,)) as tmp:
        write_metrics(tmp, results, meta)
        _report(tmp / "report.png", results["model"], predictions["model"], cases, meta, spreads)
    summary = {name: aggregate(rows) for name, rows in results.items()}
    return {"out": str(out_dir), "cases": len(cases), "fid": fid_results,
            "headline": _headline(summary)}


def _protocol_row(case, acquired: dict, t1pre: np.ndarray, prediction: dict, std: dict,
                  missing: Sequence[str] = (), expected: Optional[dict] = None) -> dict:
    """Linear-predictor |r| (of the inputs given), (with several samples) calibration of the sample std and (when
    the card has an error model) of the expected-error map, for one case."""
    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask, region_masks
    from DCEDiffLib.evaluation.protocol import calibration, expected_error_calibration, linear_predictor_r

    masks, _ = region_masks(case.labels, case.legend, t1pre.shape)
    regions = {"body": derive_body_mask(acquired["early"]), "prostate": masks["prostate"],
               "lesion": masks["lesion"]}
    inputs = {m: case.raw(m) for m in INPUT_MODALITIES if m not in missing}
    row: dict = {"case": case.name, "linear_predictors": {}, "calibration": {}, "expected_error_calibration": {}}
    for target in ("early", "late"):
        row["linear_predictors"][target] = linear_predictor_r(inputs, acquired[target] - t1pre, regions)
        if target in std:
            row["calibration"][target] = {
                region: calibration(std[target], prediction[target] - acquired[target], regions[region])
                if regions[region] is not None else _no_region(region, ("spearman",))
                for region in ("body", "prostate")}
        if expected and target in expected:
            row["expected_error_calibration"][target] = {
                region: expected_error_calibration(expected[target], prediction[target] - acquired[target],
                                                   regions[region])
                if regions[region] is not None else _no_region(region, ("spearman", "ratio"))
                for region in ("body", "prostate")}
    return row


def _no_region(region: str, keys: Sequence[str]) -> dict:
    """A calibration result for a region the case has no label for: undefined. (The calibration functions read a
    mask of None as the whole grid, which would then be reported under the region's name.)"""
    return {**{key: None for key in keys}, "curve": [], "reason": f"no {region} label in this case"}


# The per-case numbers compared pairwise between methods: name → path below a case row's target.
PAIRED_METRICS = {"psnr_whole": ("whole", "psnr"), "ssim_whole": ("whole", "ssim"),
                  "r_body": ("enhancement", "body", "pearson"), "r_prostate": ("enhancement", "prostate", "pearson"),
                  "r_lesion": ("enhancement", "lesion", "pearson")}


def case_metric(row: dict, target: str, path: Tuple[str, ...]) -> Optional[float]:
    """One number of a case's metrics row (``row[target][path...]``), decoded; None where the row lacks it."""
    from DCEDiffLib.evaluation.metrics import decode_value

    node = row.get(target, {})
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return decode_value(node) if not isinstance(node, dict) else None


def _protocol_summary(rows: list, results: Dict[str, list]) -> dict:
    """Medians of the per-case protocol values and paired bootstrap differences (model − other method)."""
    from DCEDiffLib.evaluation.protocol import paired_bootstrap

    def median(values):
        values = [v for v in values if v is not None]
        return float(np.median(values)) if values else None

    summary: dict = {"per_case": rows, "linear_predictors_median": {}, "calibration_median": {},
                     "paired_differences": {}}
    for target in ("early", "late"):
        lp = {}
        for region in ("body", "prostate", "lesion"):
            lp[region] = {m: median([r["linear_predictors"][target][region][m] for r in rows])
                          for m in rows[0]["linear_predictors"][target][region]} if rows else {}
        summary["linear_predictors_median"][target] = lp
        if rows and rows[0]["calibration"].get(target):
            summary["calibration_median"][target] = {
                region: median([r["calibration"][target][region]["spearman"] for r in rows])
                for region in ("body", "prostate")}
        if rows and rows[0].get("expected_error_calibration", {}).get(target):
            summary.setdefault("expected_error_calibration_median", {})[target] = {
                region: {key: median([r["expected_error_calibration"][target][region][key] for r in rows])
                         for key in ("spearman", "ratio")}
                for region in ("body", "prostate")}
    for other in results:
        if other == "model":
            continue
        summary["paired_differences"][other] = {
            target: {name: paired_bootstrap([case_metric(r, target, p) for r in results["model"]],
                                            [case_metric(r, target, p) for r in results[other]])
                     for name, p in PAIRED_METRICS.items()}
            for target in ("early", "late")}
    return summary


def _headline(summary: dict) -> dict:
    from DCEDiffLib.evaluation.tables import DIGITS, format_stat

    out = {}  # metrics.md's digits per metric (PSNR 2, SSIM 3, MAE 4)
    for name, agg in summary.items():
        out[name] = {f"{target}_{metric}": format_stat(agg.get(target, {}).get("whole", {}).get(metric),
                                                       DIGITS[metric])
                     for target in ("early", "late") for metric in ("psnr", "ssim", "mae")}
    return out


def fid_of_predictions(predictions: Dict[str, list], cases) -> dict:
    """FID/KID of each method's slices against the acquired slices (None with a reason when unavailable).

    Each case's acquired and predicted volumes are scaled with the acquired volume's bounds, so brightness errors
    count, then all slices are pooled.
    """
    from DCEDiffLib.evaluation import fid as fid_module
    from DCEDiffLib.evaluation.metrics import apply_scale, scale_to_unit

    extractor = fid_module.load_inception()
    if extractor is None:
        return {"skipped": fid_module.unavailable_reason()}
    out = {}
    for target in ("early", "late"):
        scaled_real, bounds = [], []
        for case in cases:
            unit, bound = scale_to_unit(case.raw(f"dce_{target}"))
            scaled_real.append(unit)
            bounds.append(bound)
        real_features = fid_module.features(extractor, np.concatenate(scaled_real), value_range=(0.0, 1.0))
        for name, preds in predictions.items():
            fake = np.concatenate([apply_scale(p[target], b) for p, b in zip(preds, bounds)])
            fake_features = fid_module.features(extractor, fake, value_range=(0.0, 1.0))
            out.setdefault(name, {})[target] = {
                "fid": fid_module.frechet_distance(real_features, fake_features),
                "kid": fid_module.kernel_inception_distance(real_features, fake_features),
                "slices": int(len(real_features))}
    return out


def _report(path: Path, rows: list, predictions: list, cases, meta: dict, spreads: Optional[list] = None) -> None:
    """Best, median and worst case by early PSNR (whole grid); inputs left out (``--missing``) shown as such;
    ``spreads`` per case: the model's expected |error| (or sample std) for the spread column."""
    missing = list((meta.get("missing_inputs") or {}).get("inputs") or [])
    from DCEDiffLib.evaluation.report_figure import write_report_png

    from DCEDiffLib.evaluation.metrics import decode_value
    from DCEDiffLib.evaluation.tables import format_with_unit

    scores = []
    for row in rows:
        value = decode_value(row.get("early", {}).get("whole", {}).get("psnr"))
        scores.append(-np.inf if value is None else float(value))
    order = np.argsort(scores)
    picks = [("best", order[-1]), ("median", order[len(order) // 2]), ("worst", order[0])]
    figure_rows = []
    for label, index in picks:
        case = cases[index]
        figure_rows.append({
            "title": f"{label}: {case.name} (early PSNR "
                     f"{format_with_unit(rows[index].get('early', {}).get('whole', {}).get('psnr'), 'psnr')})",
            "inputs": {m: case.raw(m) for m in INPUT_MODALITIES if m not in missing},
            "missing_inputs": missing,
            "synthetic": predictions[index],
            "acquired": {SHORT[t]: case.raw(t) for t in TARGET_MODALITIES},
            "labels": case.labels, "legend": case.legend, **(spreads[index] if spreads else {})})
    from DCEDiffLib.model_registry import model_name

    provenance = (f"SYNTHETIC — DCEDiff evaluation, model {model_name(Path(meta['model']))}, sampler "
                  f"{meta['sampler']}, {meta['steps']} step{'' if meta['steps'] == 1 else 's'}, seed {meta['seed']}"
                  + (f", WITHOUT {', '.join(m.upper() for m in missing)}" if missing else ""))
    write_report_png(path, figure_rows, provenance=provenance)
