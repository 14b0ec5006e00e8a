"""Property tests of geometry (issue 2): random origins, spacings and oblique directions survive
write + read (NIfTI / NRRD / MHA) → resample onto a working grid → paste back, and the round trips that must be
exact are exact (crop → paste back on coinciding lattices; normalise → inverse).

The test volumes hold a linear function of the physical position, which linear interpolation reproduces exactly
inside the volume, so values at matching physical points can be compared tightly.
"""

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from DCEDiffLib.normalization import denormalize, fit_normalization, normalize
from DCEDiffLib.volume_io import read_volume
from DCEDiffLib.working_grid import WorkingGrid, coverage_mask, make_working_grid, paste_back, resample_to_grid

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
GRADIENT = np.array([0.7, -0.4, 1.3])  # intensity = 1000 + GRADIENT · x (LPS mm)


def rotation_from_quaternion(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


quaternions = st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(lambda q: np.linalg.norm(q) > 0.3)
geometries = st.fixed_dictionaries({
    "origin": st.tuples(*[st.floats(-300, 300) for _ in range(3)]),
    "spacing": st.tuples(st.floats(0.3, 4.0), st.floats(0.3, 4.0), st.floats(0.5, 6.0)),
    "rotation": quaternions,
    "size": st.tuples(st.integers(8, 20), st.integers(8, 20), st.integers(4, 10)),
    "suffix": st.sampled_from([".nii.gz", ".nrrd", ".mha"]),
    "grid_spacing": st.tuples(st.floats(0.5, 3.0), st.floats(0.5, 3.0), st.floats(0.8, 5.0)),
})


def linear_volume(geometry) -> sitk.Image:
    size = geometry["size"]
    image = sitk.Image(list(size), sitk.sitkFloat32)
    image.SetSpacing(geometry["spacing"])
    image.SetOrigin(geometry["origin"])
    image.SetDirection(tuple(rotation_from_quaternion(geometry["rotation"]).ravel()))
    return fill_linear(image)


def physical_points(image) -> np.ndarray:
    """(k, j, i, 3) physical coordinates of every voxel centre."""
    size = image.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in reversed(size)), indexing="ij")
    index = np.stack([i, j, k], -1)
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    return index @ matrix.T + np.asarray(image.GetOrigin())


def fill_linear(image) -> sitk.Image:
    values = (1000.0 + physical_points(image) @ GRADIENT).astype(np.float32)
    out = sitk.GetImageFromArray(values)
    out.CopyInformation(image)
    return out


def interior(image_like, reference) -> np.ndarray:
    """Voxels of ``reference`` at least one voxel inside ``image_like`` (linear interpolation is exact there)."""
    inner = sitk.Image([max(s - 2, 1) for s in image_like.GetSize()], sitk.sitkUInt8)
    inner.SetSpacing(image_like.GetSpacing())
    inner.SetDirection(image_like.GetDirection())
    inner.SetOrigin(image_like.TransformIndexToPhysicalPoint((1, 1, 1)))
    return coverage_mask(WorkingGrid.from_image(reference), inner) & coverage_mask(
        WorkingGrid.from_image(reference), image_like)


@SETTINGS
@given(geometry=geometries)
def test_geometry_survives_file_round_trip_resampling_and_paste_back(geometry, tmp_path):
    original = linear_volume(geometry)
    path = tmp_path / f"volume{geometry['suffix']}"
    sitk.WriteImage(original, str(path))
    loaded = read_volume(path, name="volume")
    assert loaded.GetSize() == original.GetSize()
    assert np.allclose(loaded.GetSpacing(), original.GetSpacing(), rtol=1e-6, atol=1e-6)
    assert np.allclose(loaded.GetOrigin(), original.GetOrigin(), atol=1e-4)
    assert np.allclose(loaded.GetDirection(), original.GetDirection(), atol=1e-5)
    assert np.array_equal(sitk.GetArrayViewFromImage(loaded), sitk.GetArrayViewFromImage(original))

    grid = make_working_grid(loaded, size=(12, 12, 6), spacing=geometry["grid_spacing"])
    on_grid = resample_to_grid(loaded, grid, antialias=False)
    reference = grid.reference_image()
    for getter in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(on_grid, getter)() == getattr(reference, getter)()  # grid geometry exactly
    expected = 1000.0 + physical_points(on_grid) @ GRADIENT
    inside = interior(loaded, on_grid)
    assert inside.any()
    got = sitk.GetArrayViewFromImage(on_grid)
    assert np.allclose(got[inside], expected[inside], atol=0.05), np.abs(got - expected)[inside].max()

    back = paste_back(on_grid, loaded, antialias=False)
    for getter in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(back, getter)() == getattr(loaded, getter)()  # the original grid exactly
    expected_back = 1000.0 + physical_points(back) @ GRADIENT
    inside_back = interior(on_grid, back)
    if inside_back.any():
        got_back = sitk.GetArrayViewFromImage(back)
        assert np.allclose(got_back[inside_back], expected_back[inside_back], atol=0.05)


@SETTINGS
@given(rotation=quaternions, origin=st.tuples(*[st.floats(-200, 200) for _ in range(3)]),
       offset=st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 4)), seed=st.integers(0, 2 ** 16))
def test_crop_then_paste_back_is_exact_on_the_working_grid(rotation, origin, offset, seed):
    """A sub-grid on the same lattice is copied, not interpolated: crop → paste back returns the same bits."""
    big = WorkingGrid((30, 28, 10), (1.5, 1.5, 3.0), origin, tuple(rotation_from_quaternion(rotation).ravel()))
    values = np.random.default_rng(seed).normal(size=big.array_shape).astype(np.float32)
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(big.reference_image())
    matrix = np.asarray(big.direction).reshape(3, 3) @ np.diag(big.spacing)
    small = WorkingGrid((16, 14, 5), big.spacing, tuple(np.asarray(origin) + matrix @ np.asarray(offset, float)),
                        big.direction)
    crop = resample_to_grid(image, small)
    i, j, k = offset
    assert np.array_equal(sitk.GetArrayViewFromImage(crop), values[k:k + 5, j:j + 14, i:i + 16])
    back = paste_back(crop, image)
    got = sitk.GetArrayFromImage(back)
    assert np.array_equal(got[k:k + 5, j:j + 14, i:i + 16], values[k:k + 5, j:j + 14, i:i + 16])
    outside = np.ones_like(got, dtype=bool)
    outside[k:k + 5, j:j + 14, i:i + 16] = False
    assert np.all(got[outside] == 0.0)
    assert back.GetOrigin() == image.GetOrigin() and back.GetDirection() == image.GetDirection()


@SETTINGS
@given(scale=st.floats(1e-3, 1e5), shift=st.floats(-1e4, 1e4), seed=st.integers(0, 2 ** 16),
       percentiles=st.sampled_from([(0.5, 99.5), (0.0, 100.0), (2.0, 98.0)]))
def test_normalisation_inverse_is_exact(scale, shift, seed, percentiles):
    array = (np.random.default_rng(seed).gamma(2.0, 1.0, size=(4, 16, 16)) * scale + shift).astype(np.float32)
    before = array.copy()
    params = fit_normalization(array, low_percentile=percentiles[0], high_percentile=percentiles[1])
    normalised = normalize(array, params)
    assert np.array_equal(array, before)  # input untouched
    assert normalised.dtype == np.float32
    restored = denormalize(normalised, params)
    # exact up to float32 rounding of the values and of the normalised intermediate
    tolerance = 4 * np.finfo(np.float32).eps * (np.abs(array).max() + (params.high - params.low))
    assert np.max(np.abs(restored.astype(np.float64) - array)) <= tolerance
    if percentiles == (0.0, 100.0):
        assert normalised.min() == pytest.approx(-1.0, abs=1e-6) and normalised.max() == pytest.approx(1.0, abs=1e-6)
