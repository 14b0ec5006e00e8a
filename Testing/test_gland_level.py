"""The candidate "gland as the T1-pre's reference tissue" rule (scripts/gland_level_statistics.py; measured by
scripts/bright_fat_check.py, not in the engine): exams whose gland sits where the training exams' does are left
alone; a T1-pre whose gland sits below every training case (a real non-fat-suppressed VIBE, fat far brighter than on
the phantom) gets the range that puts its gland at the typical level, and says so."""

import numpy as np
import pytest

from DCEDiffLib.normalization import fit_normalization
from DCEDiffLib.ood import gland_region
from DCEDiffLib.working_grid import GRID_SIZE, GRID_SPACING

from script_module import load_script

rule = load_script("gland_level_statistics")
GLAND_LEVEL_LIMIT, GLAND_LEVEL_TYPICAL = rule.GLAND_LEVEL_LIMIT, rule.GLAND_LEVEL_TYPICAL
gland_level, place_gland = rule.gland_level, rule.place_gland
SHAPE = tuple(reversed(GRID_SIZE))  # (K, H, W)


def _t1pre(gland_value: float, fat_value: float = 1000.0, seed: int = 0) -> np.ndarray:
    """A working-grid T1-pre: air in the outer rows, the central ellipsoid at ``gland_value``, the rest fat, a little
    noise."""
    rng = np.random.default_rng(seed)
    volume = np.full(SHAPE, fat_value, np.float32)
    volume[:, :16] = 0.0
    volume[gland_region(SHAPE, GRID_SPACING)] = gland_value
    return volume + rng.normal(0, 5, SHAPE).astype(np.float32)


def test_a_gland_where_training_had_it_is_left_alone():
    volume = _t1pre(gland_value=300.0)
    params = fit_normalization(volume)
    level = gland_level(volume, params, GRID_SPACING)
    assert GLAND_LEVEL_LIMIT < level < 0.5
    assert place_gland(volume, params, GRID_SPACING) == (params, None)


def test_a_gland_below_every_training_case_is_placed_at_the_typical_level():
    volume = _t1pre(gland_value=80.0)
    before = volume.copy()
    params = fit_normalization(volume)
    assert gland_level(volume, params, GRID_SPACING) < GLAND_LEVEL_LIMIT
    placed, note = place_gland(volume, params, GRID_SPACING)
    np.testing.assert_array_equal(volume, before)                 # the input is not modified
    assert placed.low == params.low and placed.high < params.high
    assert gland_level(volume, placed, GRID_SPACING) == pytest.approx(GLAND_LEVEL_TYPICAL, abs=1e-6)
    assert note.startswith("t1pre:") and "gland" in note and f"{GLAND_LEVEL_TYPICAL:g}" in note
    # applying it again changes nothing: the gland now sits at the typical level
    assert place_gland(volume, placed, GRID_SPACING) == (placed, None)


def test_no_measurable_gland_means_no_change():
    volume = _t1pre(gland_value=80.0)
    params = fit_normalization(volume)
    outside = ~gland_region(SHAPE, GRID_SPACING)                 # a coverage that misses the centre
    assert gland_level(volume, params, GRID_SPACING, mask=outside) is None
    assert place_gland(volume, params, GRID_SPACING, mask=outside) == (params, None)

