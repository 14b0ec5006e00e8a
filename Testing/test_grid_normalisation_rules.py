"""The working grid and the normalisation at their definitions (found by a mutation audit): the anti-aliasing blur
is the Gaussian that brings a fine voxel to the grid's resolution (FWHM² = target² − own², σ = FWHM / 2.3548),
nearest-neighbour keeps a label map's integer type, a centre may lie half a voxel beyond the outer voxel centres,
the robust range is measured over finite voxels, an empty range is refused, and clip_for_model bounds to [-1, 1]."""

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError

from DCEDiffLib.working_grid import WorkingGrid, resample_to_grid


def _cosine_volume(wavelength_mm: float) -> sitk.Image:
    """0.5 mm voxels along i (120 of them), 1.5 mm along j and 3 mm along k (as the grid): cos(2π x / λ)."""
    x = np.arange(120) * 0.5
    values = np.broadcast_to(np.cos(2 * np.pi * x / wavelength_mm), (4, 8, 120)).astype(np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(values))
    image.SetSpacing((0.5, 1.5, 3.0))
    return image


def _on_grid(image: sitk.Image, antialias: bool = True) -> np.ndarray:
    """Resampled onto 1.5 mm voxels whose centres fall on source voxel centres (x = 15, 16.5, …, 58.5 mm), so
    linear interpolation adds nothing and only the anti-aliasing filter changes the values. Centre row, 30 values."""
    grid = WorkingGrid((30, 8, 4), (1.5, 1.5, 3.0), (15.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return sitk.GetArrayFromImage(resample_to_grid(image, grid, antialias=antialias))[2, 4].astype(np.float64)


def _amplitude(samples: np.ndarray, cycles_per_sample: float) -> float:
    n = np.arange(samples.size)
    design = np.stack([np.cos(2 * np.pi * cycles_per_sample * n), np.sin(2 * np.pi * cycles_per_sample * n),
                       np.ones(samples.size)], 1)
    (a, b, _), *_ = np.linalg.lstsq(design, samples, rcond=None)
    return float(np.hypot(a, b))


def test_downsampling_blurs_away_what_would_alias_and_keeps_what_the_grid_resolves():
    """A Gaussian of σ attenuates cos(2πx/λ) by exp(−2π²σ²/λ²). With σ = √(1.5² − 0.5²)/2.3548 ≈ 0.60 mm:
    λ = 12 mm (well resolved by 1.5 mm voxels) keeps ≈ 95 % of its amplitude (> 90 %); λ = 1.25 mm, finer than the
    grid's 3 mm Nyquist wavelength, would alias to a full-amplitude 7.5 mm wave and is damped to ≈ 1 % (< 5 %)."""
    resolved = _on_grid(_cosine_volume(12.0))
    assert 0.9 < _amplitude(resolved, 1.5 / 12.0) < 0.99
    aliased = _on_grid(_cosine_volume(1.25))
    assert _amplitude(_on_grid(_cosine_volume(1.25), antialias=False), 0.2) > 0.95  # the alias it would make
    assert _amplitude(aliased, 0.2) < 0.05
    assert np.max(np.abs(aliased - aliased.mean())) < 0.1


def test_nearest_neighbour_keeps_a_label_maps_integer_type_and_values():
    """resample_to_grid: 'nearest on an integer image keeps its pixel type (label maps keep their values)'; linear
    gives float32."""
    labels = np.zeros((6, 20, 20), np.uint8)
    labels[:, 5:15, 5:15] = 7
    labels[:, 8:12, 8:12] = 9
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((0.7, 0.7, 2.5))
    grid = WorkingGrid((8, 8, 4), (1.5, 1.5, 3.0), (1.0, 1.0, 1.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    nearest = resample_to_grid(image, grid, interpolator="nearest")
    assert nearest.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayViewFromImage(nearest))) <= {0, 7, 9}
    assert resample_to_grid(image, grid, interpolator="linear").GetPixelID() == sitk.sitkFloat32


def test_clip_for_model_bounds_to_the_normalised_range():
    """The normalised range is [-1, 1] (normalization module docstring): clip_for_model clips to it, nothing else."""
    from DCEDiffLib.normalization import clip_for_model

    values = np.array([-3.0, -1.0, -0.25, 0.5, 1.0, 7.0])
    out = clip_for_model(values)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [-1.0, -1.0, -0.25, 0.5, 1.0, 1.0])
    assert values[0] == -3.0  # the input is not modified


def test_a_centre_within_half_a_voxel_beyond_the_outer_voxel_centres_is_inside_the_t2w():
    """make_working_grid refuses a centre outside the T2W field of view, the voxel box that reaches half a voxel
    beyond the outer voxel centres: 0.4 voxel beyond the last centre is inside, 0.6 voxel is outside."""
    from DCEDiffLib.working_grid import make_working_grid

    t2w = sitk.Image([20, 20, 10], sitk.sitkFloat32)
    t2w.SetSpacing((0.5, 0.5, 3.0))
    last_x = 19 * 0.5
    grid = make_working_grid(t2w, (last_x + 0.4 * 0.5, 5.0, 13.5), size=(8, 8, 4))
    assert np.allclose(grid.center_lps, (last_x + 0.2, 5.0, 13.5))
    make_working_grid(t2w, (5.0, 5.0, -0.4 * 3.0), size=(8, 8, 4))
    for centre in ((last_x + 0.6 * 0.5, 5.0, 13.5), (5.0, 5.0, -0.6 * 3.0)):
        with pytest.raises(InputError, match="outside the T2W field of view"):
            make_working_grid(t2w, centre, size=(8, 8, 4))


def test_normalisation_range_is_measured_over_the_finite_voxels_only():
    """fit_normalization: a few NaN/inf voxels (e.g. a scanner's blanked pixels) do not make the range undefined:
    the percentiles are those of the finite voxels."""
    from DCEDiffLib.normalization import fit_normalization

    values = np.random.default_rng(2).gamma(2.0, 100.0, size=(4, 16, 16))
    spoiled = values.copy()
    spoiled[0, 0, :3] = [np.nan, np.inf, -np.inf]
    finite = spoiled[np.isfinite(spoiled)]
    params = fit_normalization(spoiled)
    low, high = np.percentile(finite, [0.5, 99.5])
    assert params.low == low and params.high == high


def test_normalisation_parameters_with_no_range_are_refused():
    """NormParams: 'low maps to -1 and high to +1', which needs high > low; high == low would divide by zero (inf
    values instead of an error naming the problem)."""
    from DCEDiffLib.normalization import NormParams, denormalize, normalize

    with pytest.raises(InputError, match="empty or invalid"):
        NormParams.from_dict({"low": 5.0, "high": 5.0})
    with pytest.raises(InputError, match="empty or invalid"):
        normalize(np.arange(4.0), NormParams(5.0, 5.0))
    with pytest.raises(InputError, match="empty or invalid"):
        denormalize(np.arange(4.0), NormParams(7.0, 5.0))
