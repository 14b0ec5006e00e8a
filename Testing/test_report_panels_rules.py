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
