"""The report PNG: one block per case, laid out the way a radiologist compares series.

Per case (three lines, one slice — the middle prostate slice when labels exist, else the middle slice):

1. inputs: T2W, PD, ADC, T1-pre, all at one size (each panel framed: black inside the frame is outside that
   series' field of view, not a smaller panel); a text panel with the case, the slice, its geometry, the
   orientation convention and, when the acquired DCE is given, PSNR/SSIM and the prostate enhancement correlation
   of each target (``evaluate_case``, the numbers of metrics.json);
2. early: acquired, SYNTHETIC, |synthetic − acquired|, acquired enhancement, synthetic enhancement (+ the expected
   |error| of the card's error model, else the sample spread of several samples);
3. late: the same.

Windows: each input by its own 1st–99.5th percentile; acquired and synthetic DCE share one window (the acquired
early and late volumes' 1st–99.5th percentile, as a viewer keeps one window across a DCE series); residuals in %
of that window (0–25 %), the spread in % of it up to its own 99.5th percentile; enhancement is relative to the T1-pre, 100 × (DCE − T1-pre) / T1-pre
in % (T1-pre on the DCE's scale, as the pipeline's outputs are; blank where the T1-pre is below 5 % of its 99.5th
percentile, i.e. air), both maps on one colour scale from 0 to the acquired enhancement's 99.5th percentile, over the
grid or inside the prostate, whichever is higher (:func:`enhancement_window_top`: the gland enhances above most of
the body, and a scale that saturates it hides its lesions).
The prostate (cyan) and lesion (yellow) outlines are drawn on the T2W and on every acquired, synthetic and
enhancement panel. The first image of each line carries orientation letters and a millimetre scale bar: the
letters come from the grid's direction (row ``grid``: LPS direction matrix and spacing, e.g.
``WorkingGrid.to_dict()``); without it an axial slice of an LPS-aligned grid is assumed (DICOM axial, shown in the
radiological convention: patient right on the viewer's left, anterior up) and the text panel says so. Every
synthetic panel and the figure's header say SYNTHETIC. Rendering uses matplotlib's Agg canvas (no display, no
global pyplot state).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import OPTIONAL_INPUTS

INPUT_TITLES = (("t2w", "T2W"), ("pd", "PD"), ("adc", "ADC"), ("t1pre", "T1 pre-contrast"))
TARGET_TITLES = {"early": "early", "late": "late"}
BACKGROUND = "black"
TEXT = "white"
SYNTHETIC_COLOUR = "#ff9f1c"
WARNING_COLOUR = "#d62828"
WARNING_INCHES = 0.55  # height of the red warning banner under the header (two lines)
WARNING_LINE_INCHES = 0.2  # each banner line beyond two
WARNING_LINES_EACH = 3  # lines one warning may take before it is cut (its full text is in synthesis.json)
HEADER_LINE_INCHES = 0.22  # each line the SYNTHETIC header needs beyond its first (a long provenance is wrapped)
HEADER_CHARS_PER_INCH = 8.5  # bold 11 pt: conservatively, so a wrapped line never runs past the figure's edges
PANEL_INCHES = 2.35
PNG_LEVEL = 1  # zlib level of report.png: level 6 (the default) saves ~10 % of its size for twice the time
FRAME_COLOUR = "#3a3a3a"
PROSTATE_COLOUR = "#00d0ff"
LESION_COLOUR = "#ffe600"
# LPS axes: the letter of the patient side each axis points to (+) and away from (−)
LPS_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))
PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}
SCALE_BAR_MM = (5, 10, 20, 50, 100)
T1_FLOOR = 0.05  # relative enhancement is blank where the T1-pre is below this fraction of its 99.5th percentile


def _window(volumes: Sequence[np.ndarray], low: float = 1.0, high: float = 99.5) -> tuple:
    values = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in volumes])
    lo, hi = np.percentile(values, [low, high])
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _prostate_slice(row: dict, depth: int) -> int:
    labels = row.get("labels")
    if labels is not None and row.get("legend"):
        from DCEDiffLib.evaluation.case_evaluation import region_masks

        masks, _ = region_masks(labels, row["legend"], np.shape(labels))
        prostate = masks["prostate"] if masks["prostate"] is not None else masks["lesion"]
        if prostate is not None and prostate.any():
            slices = np.flatnonzero(prostate.any(axis=(1, 2)))
            return int((slices[0] + slices[-1]) // 2)
    return depth // 2


def orientation(grid: Optional[dict]) -> dict:
    """Where the patient is on a displayed (j, i) slice of a grid: the letter at each panel edge (``left``,
    ``right``, ``top``, ``bottom``), the ``plane`` (from the slice normal), ``oblique_deg`` (the largest angle
    between an in-plane axis and its nearest patient axis) and whether it was ``assumed``.

    ``grid['direction']``: row-major 3×3 LPS direction (columns = i, j, k axes), as SimpleITK and
    ``WorkingGrid`` give it. A displayed slice has i to the right and j downwards, so the right edge shows the
    side column i points to. Without a direction the identity (LPS-aligned axial) is assumed.
    """
    direction = None if not grid else grid.get("direction")
    assumed = direction is None
    matrix = np.eye(3) if assumed else np.asarray(direction, dtype=float).reshape(3, 3)

    def letter(vector: np.ndarray) -> str:
        axis = int(np.argmax(np.abs(vector)))
        return LPS_LETTERS[axis][0 if vector[axis] > 0 else 1]

    i_axis, j_axis = matrix[:, 0], matrix[:, 1]
    normal = np.cross(i_axis, j_axis)
    oblique = max(float(np.degrees(np.arccos(min(1.0, np.abs(v).max() / max(np.linalg.norm(v), 1e-12)))))
                  for v in (i_axis, j_axis))
    return {"left": letter(-i_axis), "right": letter(i_axis), "top": letter(-j_axis), "bottom": letter(j_axis),
            "plane": PLANES[int(np.argmax(np.abs(normal)))], "oblique_deg": oblique, "assumed": assumed}


def _spacing(grid: Optional[dict], shape: tuple) -> tuple:
    """(spacing (i, j, k) in mm, assumed?): the grid's, else the working grid's when the shape is its shape."""
    if grid and grid.get("spacing") is not None:
        return tuple(float(v) for v in grid["spacing"]), False
    from DCEDiffLib.working_grid import GRID_SIZE, GRID_SPACING

    if tuple(shape) == tuple(reversed(GRID_SIZE)):
        return tuple(GRID_SPACING), True
    return None, True


def orientation_words(marks: dict) -> str:
    """One line for the text panel, e.g. 'axial, radiological (patient right on the left, anterior up)'."""
    words = f"{marks['plane']}: left {marks['left']}, right {marks['right']}, top {marks['top']}, " \
            f"bottom {marks['bottom']}"
    if (marks["left"], marks["top"]) == ("R", "A"):
        words = f"{marks['plane']}, radiological (patient right on the left, anterior up)"
    if marks["oblique_deg"] > 10:
        words += f", oblique by {marks['oblique_deg']:.0f}°"
    if marks["assumed"]:
        words += " — ASSUMED: no grid direction given (LPS-aligned axial grid)"
    else:
        words += ", from the grid's direction"
    return words


def _annotate(ax, marks: dict, spacing: Optional[tuple], shape: tuple) -> None:
    """Orientation letters at the panel's edges and a millimetre scale bar (bottom right)."""
    from matplotlib import patheffects

    halo = [patheffects.withStroke(linewidth=2, foreground=BACKGROUND)]  # legible on bright tissue too
    style = {"color": TEXT, "fontsize": 8, "fontweight": "bold", "transform": ax.transAxes, "path_effects": halo}
    ax.text(0.02, 0.5, marks["left"], ha="left", va="center", **style)
    ax.text(0.98, 0.5, marks["right"], ha="right", va="center", **style)
    ax.text(0.5, 0.98, marks["top"], ha="center", va="top", **style)
    ax.text(0.5, 0.10, marks["bottom"], ha="center", va="bottom", **style)
    if spacing is None:
        return
    height, width = shape[1], shape[2]
    mm_per_pixel = float(spacing[0])
    fitting = [mm for mm in SCALE_BAR_MM if mm / mm_per_pixel <= width / 4]
    if not fitting:
        return
    length = fitting[-1] / mm_per_pixel
    x1 = width - 1 - 0.04 * width
    y = height - 1 - 0.05 * height
    ax.plot([x1 - length, x1], [y, y], color=TEXT, linewidth=2, solid_capstyle="butt", path_effects=halo)
    ax.text(x1 - length / 2, y - 0.02 * height, f"{fitting[-1]} mm", color=TEXT, fontsize=7, ha="center",
            va="bottom", path_effects=halo)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)


def _outline(ax, masks: Optional[dict], k: int) -> None:
    if not masks:
        return
    for name, colour in (("prostate", PROSTATE_COLOUR), ("lesion", LESION_COLOUR)):
        if masks.get(name) is not None and masks[name][k].any():
            ax.contour(masks[name][k].astype(float), levels=[0.5], colors=colour, linewidths=0.8)


def outline_words(masks: Optional[dict], source: Optional[str] = None) -> Optional[str]:
    """The legend of the outlines drawn: only the regions the label map has (a real exam's automatic prostate
    mask has no lesion), with where the labels come from when that is not the case's own label map."""
    drawn = [f"{name} ({colour})" for name, colour in (("prostate", "cyan"), ("lesion", "yellow"))
             if masks and masks.get(name) is not None and masks[name].any()]
    if not drawn:
        return None
    return "outlines: " + ", ".join(drawn) + (f" — {source}" if source else "")


def _relative_enhancement(dce: np.ndarray, t1pre: np.ndarray, floor: float) -> np.ndarray:
    """100 × (DCE − T1-pre) / T1-pre, NaN where the T1-pre is below ``floor`` (air: no meaningful ratio)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (dce - t1pre) / t1pre
    out[~(t1pre > floor)] = np.nan
    return out


def enhancement_window_top(enhancement: np.ndarray, gland: Optional[np.ndarray] = None) -> float:
    """Top of the enhancement maps' colour scale: the 99.5th percentile of the finite ``enhancement`` values (%), or
    of those inside ``gland`` (a boolean mask of the same shape) where that is higher, so that the prostate, which
    enhances more than most of the body (realism targets: relative enhancement about 100 % late), is not drawn at the
    scale's saturated top with its lesions invisible in it. 100 where there is no finite value."""
    values = np.asarray(enhancement, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return 100.0
    top = float(np.percentile(values[finite], 99.5))
    if gland is not None:
        inside = finite & np.asarray(gland, dtype=bool)
        if inside.any():
            top = max(top, float(np.percentile(values[inside], 99.5)))
    return max(top, 1e-6)


def case_metrics(row: dict) -> Optional[dict]:
    """The row's ``metrics`` (an ``evaluate_case`` result), else computed from its acquired DCE; None without it
    (or when it cannot be scored)."""
    if row.get("metrics"):
        return row["metrics"]
    acquired = row.get("acquired") or {}
    if not acquired or set(acquired) != set(row["synthetic"]):
        return None
    from DCEDiffLib.evaluation.case_evaluation import evaluate_case

    try:
        return evaluate_case({t: np.asarray(v, np.float32) for t, v in row["synthetic"].items()},
                             {t: np.asarray(v, np.float32) for t, v in acquired.items()},
                             np.asarray(row["inputs"]["t1pre"], np.float32), labels=row.get("labels"),
                             legend=row.get("legend"))
    except (InputError, ImportError):
        return None


def metric_words(metrics: Optional[dict], target: str) -> Optional[str]:
    """'PSNR 22.67 dB · SSIM 0.712 · prostate enh. r 0.812' for one target of an evaluate_case result: each value as
    metrics.md and the Slicer metrics table write it (``tables.format_value``: '∞', 'undefined'); the r is left out
    where it is undefined (no prostate label, or a constant enhancement)."""
    from DCEDiffLib.evaluation.tables import UNDEFINED, format_value, format_with_unit

    values = (metrics or {}).get(target)
    if not isinstance(values, dict):
        return None
    whole = values.get("whole", {})
    r = format_value(values.get("enhancement", {}).get("prostate", {}).get("pearson"), "pearson")
    parts = [f"PSNR {format_with_unit(whole.get('psnr'), 'psnr')}", f"SSIM {format_value(whole.get('ssim'), 'ssim')}"]
    if r != UNDEFINED:
        parts.append(f"prostate enh. r {r}")
    return " · ".join(parts)


def case_title(sources: Optional[dict], fallback: str = "your exam") -> str:
    """'case phantom_case (T2W: t2w.nii.gz)' from the input paths (``PreprocessedCase.sources``)."""
    t2w = (sources or {}).get("t2w")
    if not t2w:
        return fallback
    path = Path(str(t2w))
    return f"case {path.parent.name or path.name} (T2W: {path.name})"


def _check_row(row: dict, index: int) -> tuple:
    if not isinstance(row, dict) or not isinstance(row.get("inputs"), dict) or not isinstance(row.get("synthetic"),
                                                                                                 dict):
        raise InputError(f"report row {index}: expected a dict with 'inputs' and 'synthetic' dicts")
    absent = set(row.get("missing_inputs") or ())
    unknown = sorted(absent - set(OPTIONAL_INPUTS))
    if unknown:
        raise InputError(f"report row {index}: missing_inputs {unknown}; only {', '.join(OPTIONAL_INPUTS)} can be "
                         "missing")
    missing = [m for m, _ in INPUT_TITLES if m not in row["inputs"] and m not in absent]
    if missing:
        raise InputError(f"report row {index}: inputs lack {', '.join(missing)}")
    shape = np.shape(row["synthetic"][next(iter(row["synthetic"]))]) if row["synthetic"] else None
    if shape is None or len(shape) != 3:
        raise InputError(f"report row {index}: expected (K, H, W) synthetic volumes")
    groups = [("inputs", row["inputs"]), ("synthetic", row["synthetic"]), ("acquired", row.get("acquired") or {}),
              ("uncertainty", row.get("uncertainty") or {}), ("expected_error", row.get("expected_error") or {})]
    for group, volumes in groups:
        for name, volume in volumes.items():
            if np.shape(volume) != shape:
                raise InputError(f"report row {index}: {group} {name} has shape {np.shape(volume)}, expected {shape}")
    return shape


def _panel(fig, spec, image, title, cmap="gray", vmin=None, vmax=None, synthetic=False):
    ax = fig.add_subplot(spec)
    ax.set_facecolor(BACKGROUND)
    artist = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="antialiased")
    ax.set_title(title, color=SYNTHETIC_COLOUR if synthetic else TEXT, fontsize=9, pad=3,
                 fontweight="bold" if synthetic else "normal")
    if synthetic:
        ax.text(0.02, 0.03, "SYNTHETIC", transform=ax.transAxes, color=SYNTHETIC_COLOUR, fontsize=7,
                fontweight="bold", va="bottom", ha="left")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():  # a thin frame: the panel's extent shows where a series' coverage ends
        side.set_color(FRAME_COLOUR)
        side.set_linewidth(0.6)
    return ax, artist


def _cmap(name: str):
    """A copy of a matplotlib colour map that shows NaN (no meaningful value) as the background."""
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=BACKGROUND)


def _empty(fig, spec, text=""):
    ax = fig.add_subplot(spec)
    ax.set_facecolor(BACKGROUND)
    ax.axis("off")
    if text:
        ax.text(0.5, 0.5, text, color="#888888", fontsize=8, ha="center", va="center", transform=ax.transAxes,
                wrap=True)
    return ax


def _colourbar(fig, spec, artist, label):
    cax = fig.add_subplot(spec)
    bar = fig.colorbar(artist, cax=cax)
    bar.set_label(label, color=TEXT, fontsize=7)
    bar.ax.tick_params(colors=TEXT, labelsize=7)
    bar.outline.set_edgecolor("#666666")
    return bar


def write_report_png(path, rows: List[dict], slice_index: Optional[int] = None,
                     provenance: str = "generated by DCEDiff", dpi: int = 110,
                     warning: Union[None, str, Sequence[str]] = None) -> Path:
    """Write the report figure (:func:`report_figure`) to ``path`` (PNG, atomically) and return the path."""
    from DCEDiffLib.atomic import atomic_path

    fig = report_figure(rows, slice_index=slice_index, provenance=provenance, warning=warning)
    path = Path(path)
    with atomic_path(path) as tmp:
        # zlib level 1 instead of 6: 0.4 s less a report on a Zen 1 core (docs/performance.md, "report.png")
        fig.savefig(tmp, format="png", dpi=dpi, facecolor=BACKGROUND, pil_kwargs={"compress_level": PNG_LEVEL})
    return path


def report_figure(rows: List[dict], slice_index: Optional[int] = None, provenance: str = "generated by DCEDiff",
                  warning: Union[None, str, Sequence[str]] = None):
    """The report as a matplotlib ``Figure`` (Agg canvas).

    Each row: ``title`` (the case line); ``inputs`` {t2w, pd, adc, t1pre} (an input named in the row's
    ``missing_inputs``, e.g. ["pd"], may be absent: its panel says it was not given); ``synthetic`` {early, late};
    ``acquired`` {early, late} or None; optional ``expected_error`` {early, late} (the card's expected |error|) and
    ``uncertainty`` {early, late} (the sample std; shown only without an expected error: measured at a tenth of the
    error's size, docs/model_quality.md, "The curve over K"), ``labels`` + ``legend`` (for the
    slice choice and outlines; ``labels_source`` says where they come from when not the case's own label map),
    ``notes`` (lines added to the case's text panel, e.g. where the T1-pre does not reach),
    ``slice_index``, ``grid`` (``direction`` and ``spacing`` of the volumes' grid, e.g.
    ``WorkingGrid.to_dict()``: orientation letters and scale bar) and ``metrics`` (an ``evaluate_case`` result;
    computed here when absent and the acquired DCE is given). All volumes (K, H, W) on one grid.
    ``slice_index`` (argument) overrides every row's choice.
    ``provenance`` (model, sampler, steps, seed) is printed in the SYNTHETIC header. ``warning`` (e.g. the
    out-of-distribution check's verdict), or several, is shown as a red banner under it, each wrapped to the
    figure's width and cut after :data:`WARNING_LINES_EACH` lines.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

    if not rows:
        raise InputError("report: no case to show")
    shapes = [_check_row(row, i) for i, row in enumerate(rows)]
    with_spread = any(row.get("expected_error") or row.get("uncertainty") for row in rows)
    # columns: acquired | synthetic | residual | bar | gap | enh. acquired | enh. synthetic | bar | gap
    #          [| spread | bar]; the gaps keep colour-bar labels off the next image.
    widths = [1, 1, 1, 0.06, 0.28, 1, 1, 0.06, 0.28] + ([1, 0.06] if with_spread else [])
    col = {"acq": 0, "syn": 1, "res": 2, "res_bar": 3, "enh_acq": 5, "enh_syn": 6, "enh_bar": 7, "unc": 9,
           "unc_bar": 10}
    lines_per_case = 3
    fig_width = PANEL_INCHES * sum(widths) + 0.6
    header = provenance if provenance.upper().startswith("SYNTHETIC") else f"SYNTHETIC — {provenance}"
    # wrapped to the figure's width (a note on a missing input makes it longer than one line); the rest moves down
    header_lines = textwrap.wrap(header, width=int(fig_width * HEADER_CHARS_PER_INCH)) or [header]
    below_header = HEADER_LINE_INCHES * (len(header_lines) - 1)
    warnings = [warning] if isinstance(warning, str) else [w for w in (warning or ()) if w]
    banner_lines = []
    for text in warnings:
        lines = textwrap.wrap(f"WARNING: {text}", width=int(fig_width * 11))
        banner_lines += lines[:WARNING_LINES_EACH]
        if len(lines) > WARNING_LINES_EACH:
            banner_lines[-1] += " …"
    banner = WARNING_INCHES + WARNING_LINE_INCHES * max(0, len(banner_lines) - 2) if banner_lines else 0.0
    fig_height = PANEL_INCHES * 1.08 * lines_per_case * len(rows) + 0.9 + banner + below_header
    fig = Figure(figsize=(fig_width, fig_height), facecolor=BACKGROUND)
    FigureCanvasAgg(fig)
    fig.text(0.5, 1 - 0.22 / fig_height, "\n".join(header_lines), ha="center", va="top", fontsize=11,
             fontweight="bold", color="black", bbox={"facecolor": SYNTHETIC_COLOUR, "edgecolor": "none", "pad": 4})
    if banner_lines:
        fig.text(0.5, 1 - (0.62 + below_header) / fig_height, "\n".join(banner_lines), ha="center", va="top",
                 fontsize=9, fontweight="bold", color="white",
                 bbox={"facecolor": WARNING_COLOUR, "edgecolor": "none", "pad": 4})
    grid = GridSpec(lines_per_case * len(rows), len(widths), figure=fig, width_ratios=widths, left=0.02, right=0.97,
                    top=1 - (0.75 + banner + below_header) / fig_height, bottom=0.15 / fig_height,
                    wspace=0.08, hspace=0.22)

    for index, (row, shape) in enumerate(zip(rows, shapes)):
        base = index * lines_per_case
        k = slice_index if slice_index is not None else row.get("slice_index")
        k = _prostate_slice(row, shape[0]) if k is None else int(k)
        if not 0 <= k < shape[0]:
            raise InputError(f"report row {index}: slice {k} outside 0..{shape[0] - 1}")
        inputs = {m: np.asarray(v, dtype=np.float64) for m, v in row["inputs"].items()}
        synthetic = {t: np.asarray(v, dtype=np.float64) for t, v in row["synthetic"].items()}
        acquired = {t: np.asarray(v, dtype=np.float64) for t, v in (row.get("acquired") or {}).items()}
        # the spread column: the card's expected |error| (its size holds), else the sample std of several samples
        spread_kind = "expected_error" if row.get("expected_error") else "uncertainty"
        spread = {t: np.asarray(v, dtype=np.float64) for t, v in (row.get(spread_kind) or {}).items()}
        masks = None
        if row.get("labels") is not None and row.get("legend"):
            from DCEDiffLib.evaluation.case_evaluation import region_masks

            masks, _ = region_masks(row["labels"], row["legend"], shape)
        marks = orientation(row.get("grid"))
        spacing, spacing_assumed = _spacing(row.get("grid"), shape)
        metrics = case_metrics(row)

        if index:  # a rule between cases
            from matplotlib.lines import Line2D

            top = grid[base, 0].get_position(fig).y1 + 0.3 / fig_height
            fig.add_artist(Line2D([0.02, 0.98], [top, top], color="#555555", linewidth=1.0))

        # Line 1: the inputs (the same columns, hence the same size, as the images below), and a text panel.
        input_columns = (col["acq"], col["syn"], col["res"], col["enh_acq"])
        for column, (modality, label) in zip(input_columns, INPUT_TITLES):
            if modality not in inputs:  # an optional input not given (row "missing_inputs")
                _empty(fig, grid[base, column], f"{label}: not given\n(synthesized without {label})")
                continue
            lo, hi = _window([inputs[modality]])
            ax, _ = _panel(fig, grid[base, column], inputs[modality][k], label, vmin=lo, vmax=hi)
            if modality == "t2w":
                _outline(ax, masks, k)
                _annotate(ax, marks, spacing, shape)
        info = _empty(fig, grid[base, col["enh_syn"]:])
        geometry = (f"{spacing[0]:g} × {spacing[1]:g} mm pixels, {spacing[2]:g} mm slices"
                    + (" (working grid, assumed)" if spacing_assumed else "")) if spacing else "pixel size unknown"
        lines = [str(row.get("title") or f"case {index + 1}"),
                 f"{marks['plane']} slice {k + 1} of {shape[0]}; {geometry}",
                 "orientation: " + orientation_words(marks)]
        if row.get("missing_inputs"):
            given = dict(INPUT_TITLES)
            lines.append("made WITHOUT " + " and ".join(given.get(m, m) for m in row["missing_inputs"])
                         + " (the model was trained to do without it)")
        lines += list(row.get("notes") or ())  # e.g. where the T1-pre does not reach (pipeline.write_case_report)
        for target in synthetic:
            words = metric_words(metrics, target)
            if words:
                lines.append(f"{TARGET_TITLES.get(target, target)}: {words}")
        if metrics is not None:
            lines.append("(whole grid, scaled by the acquired DCE's 0.5–99.5th percentiles, as metrics.json)")
        elif not acquired:
            lines.append("no acquired DCE: synthetic only, no metrics")
        lines.append("enhancement = (DCE − T1-pre) / T1-pre, in %")
        outlines = outline_words(masks, row.get("labels_source"))
        if outlines:
            lines.append(outlines)
        info.text(0.0, 0.98, "\n".join(lines), color=TEXT, fontsize=8, va="top", ha="left",
                  transform=info.transAxes, linespacing=1.45, wrap=True)

        # Shared windows of this case.
        reference = list(acquired.values()) or list(synthetic.values())
        lo, hi = _window(reference)
        window = hi - lo
        t1pre = inputs["t1pre"]
        floor = T1_FLOOR * max(float(np.percentile(t1pre, 99.5)), 1e-6)
        enh_source = acquired or synthetic
        gland = masks.get("prostate") if masks else None
        enh_max = enhancement_window_top(
            np.stack([_relative_enhancement(v, t1pre, floor) for v in enh_source.values()]),
            None if gland is None else np.broadcast_to(gland, (len(enh_source),) + np.shape(gland)))
        spread_max = max(float(np.percentile(np.concatenate([u.ravel() for u in spread.values()]), 99.5))
                         * 100.0 / window, 1e-6) if spread else None

        targets = [t for t in ("early", "late") if t in synthetic] + \
                  [t for t in synthetic if t not in ("early", "late")]
        for line, target in enumerate(targets[:lines_per_case - 1]):
            r = base + 1 + line

            def cell(name: str):
                return grid[r, col[name]]

            name = TARGET_TITLES.get(target, target)
            syn = synthetic[target][k]
            acq = acquired[target][k] if target in acquired else None
            enhancement_cmap = _cmap("inferno")
            if acq is not None:
                ax, _ = _panel(fig, cell("acq"), acq, f"acquired {name}", vmin=lo, vmax=hi)
                _outline(ax, masks, k)
                _annotate(ax, marks, spacing, shape)
                _, art = _panel(fig, cell("res"), 100.0 * np.abs(syn - acq) / window,
                                f"|synthetic − acquired| {name}", cmap="magma", vmin=0, vmax=25)
                _colourbar(fig, cell("res_bar"), art, "% of the DCE window")
                ax, _ = _panel(fig, cell("enh_acq"), _relative_enhancement(acq, t1pre[k], floor),
                               f"acquired enhancement {name}", cmap=enhancement_cmap, vmin=0, vmax=enh_max)
                _outline(ax, masks, k)
            else:
                _empty(fig, cell("acq"), f"acquired {name}:\nnot available")
                _empty(fig, cell("res"), "no residual\n(no acquired DCE)")
                _empty(fig, cell("res_bar"))
                _empty(fig, cell("enh_acq"), "acquired enhancement:\nnot available")
            ax, _ = _panel(fig, cell("syn"), syn, f"SYNTHETIC {name}", vmin=lo, vmax=hi, synthetic=True)
            _outline(ax, masks, k)
            if acq is None:
                _annotate(ax, marks, spacing, shape)
            words = metric_words(metrics, target)
            if words:
                ax.text(0.98, 0.03, words.split(" · prostate")[0], transform=ax.transAxes, color=SYNTHETIC_COLOUR,
                        fontsize=6.5, ha="right", va="bottom")
            ax, art = _panel(fig, cell("enh_syn"), _relative_enhancement(syn, t1pre[k], floor),
                             f"SYNTHETIC enhancement {name}", cmap=enhancement_cmap, vmin=0, vmax=enh_max,
                             synthetic=True)
            _outline(ax, masks, k)
            _colourbar(fig, cell("enh_bar"), art, "enhancement, % of T1-pre")
            if with_spread and target in spread:
                title = (f"expected |error| {name}" if spread_kind == "expected_error"
                         else f"uncertainty {name} (sample std)")
                _, art = _panel(fig, cell("unc"), 100.0 * spread[target][k] / window, title, cmap="viridis",
                                vmin=0, vmax=spread_max, synthetic=True)
                _colourbar(fig, cell("unc_bar"), art, "% of the DCE window")
            elif with_spread:
                _empty(fig, cell("unc"), "no error map\n(one sample, no error model)")
                _empty(fig, cell("unc_bar"))

    return fig
