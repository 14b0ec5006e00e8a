"""The report's residual and DCE panels at their documented windows (found by a mutation audit): acquired and
synthetic DCE share one window, the acquired early and late volumes' 1st-99.5th percentile; the residual panel is
|synthetic − acquired| in % of that window, on 0-25 %. A synthetic volume on another scale than the acquired one,
so a window taken from the wrong volume, a signed residual or a residual over the wrong width shows."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

SLICE = 2


def _row():
    rng = np.random.default_rng(7)
    shape = (4, 24, 24)
    acquired = {t: rng.uniform(100.0, 400.0, shape).astype(np.float32) for t in ("early", "late")}
    # the synthetic volume brighter and wider than the acquired: below it in some voxels, above it in others
    synthetic = {t: (1.5 * v - 120.0 + rng.normal(0, 30, shape)).astype(np.float32) for t, v in acquired.items()}
    inputs = {m: rng.uniform(50.0, 500.0, shape).astype(np.float32) for m in ("t2w", "pd", "adc", "t1pre")}
    return {"title": "rules", "inputs": inputs, "synthetic": synthetic, "acquired": acquired}


def _axes(fig, title):
    (ax,) = [a for a in fig.axes if a.get_title() == title]
    return ax


def test_the_residual_panel_is_the_absolute_difference_in_percent_of_the_acquired_window():
    from DCEDiffLib.evaluation.report_figure import report_figure

    row = _row()
    fig = report_figure([row], slice_index=SLICE)
    lo, hi = np.percentile(np.concatenate([v.ravel() for v in row["acquired"].values()]).astype(np.float64),
                           [1.0, 99.5])
    for target in ("early", "late"):
        syn = row["synthetic"][target][SLICE].astype(np.float64)
        acq = row["acquired"][target][SLICE].astype(np.float64)
        assert (syn < acq).any() and (syn > acq).any()  # both signs occur: a signed map would differ
        ax = _axes(fig, f"|synthetic − acquired| {target}")
        shown = np.asarray(ax.images[0].get_array(), dtype=np.float64)
        assert np.allclose(shown, 100.0 * np.abs(syn - acq) / (hi - lo), rtol=1e-5, atol=1e-6)
        assert ax.images[0].get_clim() == (0, 25)


def test_acquired_and_synthetic_panels_share_the_acquired_dces_window():
    """'acquired and synthetic DCE share one window (the acquired early and late volumes' 1st-99.5th percentile)'
    — not the synthetic's own, which is wider here."""
    from DCEDiffLib.evaluation.report_figure import report_figure

    row = _row()
    fig = report_figure([row], slice_index=SLICE)
    lo, hi = np.percentile(np.concatenate([v.ravel() for v in row["acquired"].values()]).astype(np.float64),
                           [1.0, 99.5])
    for target in ("early", "late"):
        for title in (f"acquired {target}", f"SYNTHETIC {target}"):
            assert np.allclose(_axes(fig, title).images[0].get_clim(), (lo, hi)), title


def test_the_enhancement_scale_reaches_the_glands_enhancement_so_its_lesions_are_not_saturated():
    """The enhancement maps' scale tops at the 99.5th percentile over the grid or inside the prostate, whichever is
    higher: a gland enhancing far above the body (as a real gland does on a T1-pre without fat suppression) is not
    drawn at the saturated top, where a lesion brighter still would vanish (the shipped sample case's report)."""
    from DCEDiffLib.evaluation.report_figure import enhancement_window_top, report_figure

    row = _row()
    shape = row["inputs"]["t1pre"].shape
    row["inputs"]["t1pre"] = np.full(shape, 200.0, np.float32)
    labels = np.zeros(shape, np.int16)
    labels[:, 8:16, 8:16] = 1  # the gland: 11 % of the grid, enhancing 150 %, a lesion in it 250 %
    labels[:, 10, 10] = 2  # 0.17 % of the grid, 1.6 % of the gland
    for target in ("early", "late"):
        body = np.full(shape, 240.0, np.float32)  # the body enhances 20 %
        body[labels == 1] = 500.0
        body[labels == 2] = 700.0
        row["acquired"][target] = body
    row["labels"], row["legend"] = labels, {"transition_zone": 1, "lesion": 2}
    fig = report_figure([row], slice_index=SLICE)
    top = _axes(fig, "acquired enhancement early").images[0].get_clim()[1]
    assert top == pytest.approx(250.0, abs=1.0)  # the lesion's 250 % reaches the top; the grid's 99.5th is 150 %
    assert _axes(fig, "SYNTHETIC enhancement late").images[0].get_clim()[1] == top
    # the rule itself: the higher of the two percentiles; the grid's alone without a gland or a finite value in it
    values = np.arange(1000, dtype=np.float64).reshape(10, 100)
    gland = np.zeros_like(values, bool)
    assert enhancement_window_top(values) == pytest.approx(np.percentile(values, 99.5))
    assert enhancement_window_top(values, gland) == pytest.approx(np.percentile(values, 99.5))
    gland[0, :5] = True  # the lowest values: the grid's percentile stays the higher
    assert enhancement_window_top(values, gland) == pytest.approx(np.percentile(values, 99.5))
    values[gland] = 5000.0
    assert enhancement_window_top(values, gland) == pytest.approx(5000.0)
    assert enhancement_window_top(np.full((3, 3), np.nan)) == 100.0


def test_the_enhancement_scale_is_the_glands_995th_percentile_of_finite_values_not_its_brightest_voxel():
    """The scale's top is the 99.5th percentile of the finite values inside the prostate (found by a mutation audit:
    the 99th percentile, a blank voxel in the gland making its percentile NaN and so dropped, or the lesion's mask
    taken for the gland's, all passed the tests before)."""
    from DCEDiffLib.evaluation.report_figure import enhancement_window_top, report_figure

    values = np.zeros((10, 100))
    gland = np.zeros_like(values, bool)
    gland[:2] = True  # 20 % of the grid, so the grid's 99.5th falls among the gland's values, below the gland's own
    values[gland] = np.arange(1000.0, 1200.0)
    values[0, 0] = np.nan  # a blank voxel (T1-pre below its floor) inside the gland
    inside = values[gland & np.isfinite(values)]
    assert np.nanpercentile(values, 99.5) < np.percentile(inside, 99.5) != np.percentile(inside, 99.0)
    assert enhancement_window_top(values, gland) == pytest.approx(np.percentile(inside, 99.5))

    # in the report: one lesion voxel, 1/256 of the gland, brighter than the gland's 99.5th: the gland sets the scale
    row = _row()
    shape = row["inputs"]["t1pre"].shape
    row["inputs"]["t1pre"] = np.full(shape, 200.0, np.float32)
    labels = np.zeros(shape, np.int16)
    labels[:, 8:16, 8:16] = 1  # 256 voxels enhancing 150 %
    labels[SLICE, 10, 10] = 2  # the lesion, 250 %
    for target in ("early", "late"):
        body = np.full(shape, 240.0, np.float32)
        body[labels == 1] = 500.0
        body[labels == 2] = 700.0
        row["acquired"][target] = body
    row["labels"], row["legend"] = labels, {"transition_zone": 1, "lesion": 2}
    enhancement = 100.0 * (row["acquired"]["early"].astype(np.float64) - 200.0) / 200.0
    gland_top = np.percentile(enhancement[labels > 0], 99.5)
    assert gland_top < 250.0  # the lesion's value is not the gland's 99.5th
    fig = report_figure([row], slice_index=SLICE)
    assert _axes(fig, "acquired enhancement late").images[0].get_clim()[1] == pytest.approx(gland_top, abs=1.0)
