"""benchmark.json (strict JSON) and benchmark.md (the same numbers as Markdown tables) from a result dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

from DCEDiffLib.atomic import write_text_atomic


def _f(value, digits: int = 3, suffix: str = "") -> str:
    """A number with ``digits`` significant digits (large numbers in full), "–" for None."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return ("yes" if value else "no") + suffix
    if isinstance(value, int):
        return f"{value}{suffix}"
    if isinstance(value, float):
        return (f"{value:.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}") + suffix
    return f"{value}{suffix}"


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _mark(row: dict) -> str:
    return " *(extrapolated)*" if row.get("extrapolated") else ""


def timing_note(row: Optional[dict]) -> str:
    """How a whole-volume timing row was measured, in words: on how many of the volume's slices (and evaluations),
    and whether its seconds are extrapolated from them. Empty without a row."""
    if not row:
        return ""
    text = f"timed on {row['measured_slices']} of {row['slices']} slices"
    if row["measured_nfe"] < row["nfe"]:
        text += f", {row['measured_nfe']} of {row['nfe']} NFE"
    return text + (", extrapolated" if row.get("extrapolated") else "")


def headline_timings(result: dict) -> List[Tuple[str, str]]:
    """(label, :func:`timing_note`) of the two whole-volume times reported side by side: the default sampler's
    and the learned baseline's (when measured)."""
    from DCEDiffLib.benchmark.sampler_sweep import SamplerRun, find_row

    label = SamplerRun(result["default_sampler"], result["default_steps"]).label
    out = [(label, timing_note(find_row(result["volume_timing"], label)))]
    baseline = result.get("regression_baseline")
    if baseline:
        out.append((baseline["label"], timing_note(baseline["volume_timing"])))
    return out


def markdown(result: dict) -> str:
    """benchmark.md: headline, targets, then one table per measurement."""
    from DCEDiffLib.benchmark.machine import describe

    lines = [f"# DCEDiff benchmark ({result['mode']})", "",
             f"Machine: {describe(result['machine'])}; 1-min load average at start "
             f"{result['machine'].get('load_average_1min')}.",
             f"Model: `{result['model']['name']}` ({result['model']['preset']} preset, "
             f"{result['model']['parameters']:,} parameters{', RANDOM WEIGHTS' if result['model']['random_weights'] else ''}).",
             f"Volume: case {result['volume']['case']}, {' × '.join(map(str, result['volume']['shape_kji']))} "
             "(k, j, i), early + late. Total run time "
             f"{_f(result.get('total_seconds'), 1)} s.", ""]
    ext = result.get("extrapolated", {})
    timed = [how for _, how in headline_timings(result)]  # default sampler, then the learned baseline if measured
    lines += ["## Headline", ""]
    lines += _table(["key", "value", "note"], [
        ["speedup_vs_naive_ddpm1000", _f(result.get("speedup_vs_naive_ddpm1000"), 3, "×"),
         "naive 1000-step loop time / default sampler time, same volume"
         + (" (naive extrapolated)" if ext.get("naive_ddpm1000") else "")
         + (" (default extrapolated)" if ext.get("default_volume") else "")],
        ["psnr_gap_db_default_vs_ddpm1000", _f(result.get("psnr_gap_db_default_vs_ddpm1000"), 3, " dB"),
         f"PSNR(1000 steps) − PSNR(default) vs acquired; {ext.get('quality_cases')} case(s) × "
         f"{ext.get('quality_slices_per_case')} slice(s), reference {ext.get('quality_reference_steps')} steps"],
        ["ssim_gap_default_vs_ddpm1000", _f(result.get("ssim_gap_default_vs_ddpm1000"), 4), "same, SSIM"],
        ["default_nfe", _f(result.get("default_nfe")), f"{result.get('default_sampler')}, "
                                                       f"{result.get('default_steps')} steps"],
        ["default_volume_seconds", _f(result.get("default_volume_seconds"), 3, " s"),
         f"sampling only; {timed[0]}"],
        ["end_to_end_seconds", _f(result.get("end_to_end_seconds"), 3, " s"),
         "load, registration, sampling, writing; with the acquired DCE and labels (residuals, metrics)"],
        ["end_to_end_inputs_only_seconds", _f(result.get("end_to_end_inputs_only_seconds"), 3, " s"),
         "the same with the four non-contrast inputs only, as a user without gadolinium runs it"],
        ["regression_volume_seconds", _f(result.get("regression_volume_seconds"), 3, " s"),
         "learned baseline (shipped regression U-Net), one network pass, same volume, sampling only; "
         f"{timed[1]}" if len(timed) > 1 else "learned baseline not measured (see Notes)"],
        ["peak_inference_memory_mb", _f(result.get("peak_inference_memory_mb"), 4, " MB"), "process RSS peak"],
    ])
    lines += ["", "Ratios: " + ", ".join(f"{k} = {_f(v, 3)}" for k, v in result.get("ratios", {}).items()), ""]
    lines += ["## Targets", ""] + [f"- {t['line']}" for t in result.get("targets", [])] + [""]

    if result.get("throughput"):
        lines += ["## Forward-pass throughput", "",
                  "GFLOP/s from `torch.utils.flop_counter` (convolutions, matmuls, attention) × batch / time.", ""]
        rows = []
        for entry in result["throughput"]:
            for row in entry["rows"]:
                rows.append([entry["preset"], f"{entry['parameters']:,}", _f(entry["gflops_per_forward"]),
                             row["batch"], row["mode"], _f(row["seconds_per_forward"], 4),
                             _f(row["slices_per_s"]), _f(row.get("gflops_per_s")),
                             _f(row["memory"]["peak_mb"], 4)])
        lines += _table(["preset", "params", "GFLOP/slice", "batch", "mode", "s/forward", "slices/s", "GFLOP/s",
                         "peak MB"], rows) + [""]
    if result.get("optimisations"):
        lines += ["## Forward-pass optimisations (same network, same batch)", ""]
        rows = [[r["variant"], r["batch"], _f(r["seconds_per_forward"], 4), _f(r["speedup"], 3, "×"),
                 f"{r.get('relative_error', 0.0):.2e}"] for r in result["optimisations"]]
        lines += _table(["variant", "batch", "s/forward", "speed-up", "rel. error"], rows) + [""]

    naive = result["naive_reference"]
    lines += ["## Whole-volume synthesis (sampling only)", "",
              f"Naive reference: {naive['description']}: {_f(naive['seconds'], 4)} s for "
              f"{naive['total_slices']} slices × {naive['total_steps']} steps ({_f(naive['seconds_per_slice_step'], 4)}"
              f" s per slice-step; measured {naive['measured_slices']} slice(s) × {naive['measured_steps']} steps)"
              f"{_mark(naive)}.", ""]
    baseline = result.get("regression_baseline")
    timing_rows = result["volume_timing"] + ([baseline["volume_timing"]] if baseline else [])
    rows = [[r["label"], r["nfe"], r["forwards"], _f(r["seconds"], 4) + _mark(r),
             _f(r.get("speedup_vs_naive"), 3, "×"), _f(r["memory"]["peak_mb"], 4),
             f"{r['measured_slices']} sl × {r['measured_nfe']} NFE in {_f(r['measured_s'], 3)} s", r["precision"]]
            for r in timing_rows]
    lines += _table(["sampler", "NFE", "slice forwards", "seconds", "× naive", "peak MB", "measured", "precision"],
                    rows) + [""]

    quality = result["quality"]
    ref = quality["reference"]
    lines += ["## Quality against steps", "",
              f"Cases {', '.join(quality['cases'])}; slices {quality['slices']}"
              f"{'; central crop ' + str(quality['crop']) if quality.get('crop') else ''}; seed {quality['seed']}. "
              "Mean over cases and early/late, intensities scaled to [0, 1] by the acquired volume's 0.5/99.5 "
              "percentiles; enh. r = Pearson r of synthetic and acquired enhancement (target − T1-pre) in the body. "
              f"Reference = {ref['label']}. s/volume: sampling seconds for the whole volume (Whole-volume synthesis "
              "table).", ""]
    seconds = {r["label"]: r["seconds"] for r in timing_rows}
    rows = []
    for r in [ref] + quality["runs"] + ([dict(baseline["quality"], label=baseline["label"])] if baseline else []):
        a, b = r["vs_acquired"], r["vs_reference"]
        rows.append([r["label"], r["nfe_total"], _f(a["psnr"], 4), _f(a["ssim"], 4), _f(a["mae"], 4),
                     _f(a.get("enhancement_r"), 3), _f(b["psnr"], 4), _f(b["ssim"], 4), _f(b["mae"], 4),
                     _f(seconds.get(r["label"]), 4)])
    lines += _table(["sampler", "NFE × K", "PSNR acq", "SSIM acq", "MAE acq", "enh. r acq",
                     f"PSNR vs {ref['label']}", "SSIM vs ref", "MAE vs ref", "s/volume"], rows) + [""]
    end = result.get("end_to_end")
    if end:
        lines += ["## End to end", "", "With the acquired DCE and labels: " + _end_to_end_line(end)
                  + (f" Learned baseline (shipped regression U-Net): {_f(baseline['seconds_per_volume'], 4)} s "
                     "sampling per volume (one network pass; not run end to end)." if baseline else ""), ""]
        if result.get("end_to_end_inputs_only"):
            lines += ["The four non-contrast inputs only (no gadolinium, no labels): "
                      + _end_to_end_line(result["end_to_end_inputs_only"]), ""]
    if result.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)


def _end_to_end_line(end: dict) -> str:
    """One end-to-end run in words: seconds, sampling, the rest, NFE, device, peak memory, stages."""
    source = f" ({end['case_source']})" if end.get("case_source") else ""
    return (f"{end['case']}{source}: {_f(end['seconds'], 4)} s in all ({_f(end['sampling_seconds'], 4)} s sampling, "
            f"{_f(end['other_seconds'], 4)} s loading/registration/writing), {end['nfe']} NFE, "
            f"{end['device']}/{end['precision']}, peak {_f(end['memory']['peak_mb'], 4)} MB."
            + (" Stages: " + ", ".join(f"{name} {_f(value, 3)} s" for name, value in end["stage_seconds"].items())
               + "." if end.get("stage_seconds") else "")
            + (f" The prostate model's mask, computed afresh: {_f(end['prostate_seconds'], 3)} s of the register stage."
               if end.get("prostate_seconds") is not None else ""))


def write_report(result: dict, out_dir: Path) -> Optional[Path]:
    """Write ``benchmark.json`` and ``benchmark.md`` atomically into ``out_dir``; returns the JSON path."""
    from DCEDiffLib.evaluation.metrics import json_safe

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "benchmark.json"
    write_text_atomic(path, json.dumps(json_safe(result), indent=1, allow_nan=False))
    write_text_atomic(out_dir / "benchmark.md", markdown(result))
    return path
