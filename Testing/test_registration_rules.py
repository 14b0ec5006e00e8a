"""Registration rules at their definition (DCEDiffLib/registration.py), on small synthetic SimpleITK volumes: the
region mask is a sphere in millimetres in physical space kept a margin in millimetres inside the moving series'
field of view; bias flattening has a floor; the T2W is brought to the series' resolution in the same physical box
and cropped to the sphere's bounding box; the guard bounds the correction over the series' own sphere, by size and
by angle, "at most" meaning the bound itself passes; a multi-start start is rotated right-handedly and shifted; the
optimiser's smallest step is the series'; a frame is registered around the image of the gland centre in its
reference; the self-check's moved copy is allowed the perturbation on top of the series' limits (found by a
mutation audit)."""

import math

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib import registration as reg
from DCEDiffLib.registration_check import CHECK_ANGLE_DEG, perturbed_copy, rotation_matrix


def _image(size, spacing, origin=(0.0, 0.0, 0.0), direction=None, values=None):
    image = sitk.GetImageFromArray(np.zeros(tuple(reversed(size)), np.float32) if values is None else values)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(float(v) for v in np.asarray(direction).ravel()))
    return image


def _blobs(seed=0):
    """Smooth random structure (48 x 48 x 24 voxels of 2 x 2 x 3 mm around the origin): something to register."""
    values = np.random.default_rng(seed).random((24, 48, 48)).astype(np.float32)
    image = sitk.SmoothingRecursiveGaussian(_image((48, 48, 24), (2.0, 2.0, 3.0), values=values), 4.0)
    image = sitk.Cast(sitk.RescaleIntensity(image, 0.0, 100.0), sitk.sitkFloat32)
    image.SetOrigin((-47.0, -47.0, -34.5))
    return image


def _physical_points(image):
    size = image.GetSize()
    return np.array([image.TransformIndexToPhysicalPoint((i, j, k))
                     for k in range(size[2]) for j in range(size[1]) for i in range(size[0])])


# an oblique grid: rotated 30 degrees about S, then 20 about L
OBLIQUE = rotation_matrix((1.0, 0.0, 0.0), 20.0) @ rotation_matrix((0.0, 0.0, 1.0), 30.0)


def test_the_region_is_a_sphere_in_mm_around_the_centre_in_physical_space():
    """region_mask: "1 inside the sphere of radius_mm around center_lps" on the fixed grid - the distance of each
    voxel's physical point (ITK's index-to-point, direction and anisotropic spacing included), not of its index."""
    fixed = _image((20, 16, 10), (1.5, 2.0, 4.0), origin=(-12.0, 5.0, -20.0), direction=OBLIQUE)
    centre = np.array(fixed.TransformContinuousIndexToPhysicalPoint((9.3, 6.1, 4.4)))
    mask = sitk.GetArrayFromImage(reg.region_mask(fixed, centre, 11.0)).ravel()
    expected = np.linalg.norm(_physical_points(fixed) - centre, axis=1) <= 11.0
    assert 20 < expected.sum() < expected.size / 2  # the test sphere is neither empty nor the whole grid
    assert np.array_equal(mask.astype(bool), expected)


def test_the_region_keeps_a_margin_in_mm_inside_the_moving_field_of_view():
    """region_mask with ``moving``: a voxel counts only if its point is at least ``margin_mm`` inside the moving
    series' field of view (voxel centres 0..size-1), along each of the moving grid's axes, in millimetres: with
    5 mm slices a 6 mm margin is 1.2 slices, with 1.5 mm pixels 4 pixels."""
    fixed = _image((40, 40, 24), (1.0, 1.0, 1.0), origin=(-20.0, -20.0, -12.0))
    moving = _image((16, 12, 4), (1.5, 1.5, 5.0), origin=(-11.0, -9.0, -8.0), direction=OBLIQUE)
    mask = sitk.GetArrayFromImage(reg.region_mask(fixed, (0.0, 0.0, 0.0), 100.0, moving, margin_mm=6.0)).ravel()
    points = _physical_points(fixed)
    index = np.array([moving.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in points])
    spacing, size = np.array(moving.GetSpacing()), np.array(moving.GetSize())
    from_edge_mm = np.minimum(index, size - 1 - index) * spacing   # distance to the nearest face, per axis
    expected = np.all(from_edge_mm >= 6.0 - 1e-9, axis=1)
    assert expected.sum() > 50 and not expected.all()
    assert np.array_equal(mask.astype(bool), expected)


def test_flattening_divides_out_a_slow_shading_and_keeps_faint_air_dark():
    """flatten_bias: the image divided by a Gaussian-smoothed copy of itself, with "a floor [that] keeps the air from
    blowing up". Tissue under a linear coil shading comes out nearly uniform (near 1), while faint air noise far from
    it (1e-3 of the tissue) must stay near 0 - without the floor it would be divided by its own tiny smooth and look
    like tissue. The input is not modified."""
    values = np.full((24, 48, 48), 1e-3, np.float32)
    shading = np.linspace(50.0, 150.0, 24, dtype=np.float32)[None, None, :]
    values[:, :, :24] = np.broadcast_to(shading, (24, 48, 24))
    image = _image((48, 48, 24), (2.0, 2.0, 2.0), values=values)
    flat = sitk.GetArrayFromImage(reg.flatten_bias(image))
    assert np.array_equal(sitk.GetArrayFromImage(image), values)
    tissue = flat[8:16, 8:40, 4:16]                        # inside the tissue, away from its edges
    assert tissue.max() / tissue.min() < 1.5 < 150.0 / 50.0, (tissue.min(), tissue.max())   # 3:1 shading, flattened
    assert np.all(np.abs(tissue - 1.0) < 0.3)
    air = flat[:, :, 44:]                                  # 40+ mm from the tissue
    assert air.max() < 0.01, air.max()


def test_the_t2w_is_brought_to_the_series_resolution_in_the_same_physical_box():
    """_match_resolution: voxels "no finer than the moving series'" - a 0.5 mm T2W against a 1.5 mm series comes
    out at 1.5 mm in plane (not coarser: a series whose slices are 4 mm still shows 1.5 mm detail in plane, and the
    grids need not share axes), a 3 mm T2W axis stays 3 mm (never made finer); the physical box (outer voxel faces)
    is kept, so structure stays where it was: a bright cube's centre of mass does not move."""
    values = np.zeros((10, 60, 60), np.float32)
    values[3:7, 20:36, 30:46] = 100.0
    fixed = _image((60, 60, 10), (0.5, 0.5, 3.0), origin=(10.0, -5.0, 2.0), direction=OBLIQUE, values=values)
    moving = _image((8, 8, 8), (1.5, 1.5, 4.0))
    out = reg._match_resolution(fixed, moving)
    assert out.GetSpacing() == pytest.approx((1.5, 1.5, 3.0))
    assert out.GetSize() == (20, 20, 10)

    def box_corner(image):
        return np.array(image.TransformContinuousIndexToPhysicalPoint((-0.5, -0.5, -0.5)))

    assert box_corner(out) == pytest.approx(box_corner(fixed), abs=1e-6)

    def centre_of_mass(image):
        array = sitk.GetArrayFromImage(image).ravel()
        return (_physical_points(image) * array[:, None]).sum(axis=0) / array.sum()

    assert np.linalg.norm(centre_of_mass(out) - centre_of_mass(fixed)) < 0.1


def test_the_crop_holds_the_whole_sphere_with_the_same_voxels():
    """_crop_to_region: "the part of image inside the bounding box of the region sphere" - with 0.5 mm pixels and
    4 mm slices, a 10 mm sphere spans 20 pixels and 2.5 slices each side of the centre; every voxel of the image
    whose centre is in the sphere is in the crop, with its value and position."""
    values = np.random.default_rng(1).random((12, 60, 60)).astype(np.float32)
    image = _image((60, 60, 12), (0.5, 0.5, 4.0), origin=(-15.0, -15.0, -24.0), values=values)
    centre = np.array([1.3, -2.1, 3.0])
    crop = reg._crop_to_region(image, centre, 10.0)
    inside = np.linalg.norm(_physical_points(image) - centre, axis=1) <= 10.0
    for point, value in zip(_physical_points(image)[inside], values.ravel()[inside]):
        index = crop.TransformPhysicalPointToIndex(tuple(point))
        assert all(0 <= i < n for i, n in zip(index, crop.GetSize())), point
        assert crop[index] == value
    assert crop.GetSize()[0] < 60  # it is a crop


def test_correction_size_of_a_rotation_about_the_centre():
    """correction_size: (displacement at the centre, rotation angle, largest displacement over the centre and six
    points of the sphere's surface). A 6 degree rotation about the S axis through the centre: 0 at the centre, an
    angle of 6 degrees, and 2 r sin(3 degrees) at the surface points in the L-P plane."""
    centre = (3.0, -4.0, 5.0)
    euler = sitk.Euler3DTransform(centre, 0.0, 0.0, math.radians(6.0), (0.0, 0.0, 0.0))
    at_centre, angle, worst = reg.correction_size(euler, centre, 80.0)
    assert at_centre == pytest.approx(0.0, abs=1e-9)
    assert angle == pytest.approx(6.0, abs=1e-6)
    assert worst == pytest.approx(2 * 80.0 * math.sin(math.radians(3.0)), rel=1e-9)


@pytest.fixture(scope="module")
def guard_inputs():
    fixed = _blobs()
    return fixed, perturbed_copy(fixed, np.eye(3), (1.0, 0.0, 0.0), (0.0, 0.0, 0.0)), (0.0, 0.0, 0.0)


def _guard(guard_inputs, euler, radius_mm, max_translation_mm, max_rotation_deg):
    fixed, moving, centre = guard_inputs
    mask = reg.region_mask(fixed, centre, 40.0, moving)
    return reg._guard(fixed, moving, mask, "pd", centre, euler, 0.0, radius_mm, max_translation_mm, max_rotation_deg)


def test_the_guard_bounds_the_displacement_over_the_series_own_sphere(guard_inputs):
    """_guard: at most ``max_translation_mm`` anywhere in the series' sphere (``radius_mm``; 80 mm for the ADC and
    T1-pre). A 4 degree rotation about the centre moves points 40 mm out by 2.8 mm and 80 mm out by 5.6 mm: with a
    4 mm bound it passes in a 40 mm sphere and must be refused in an 80 mm one."""
    euler = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.0, 0.0, math.radians(4.0), (0.0, 0.0, 0.0))
    assert 2 * 40 * math.sin(math.radians(2.0)) < 4.0 < 2 * 80 * math.sin(math.radians(2.0))
    assert "implausibly large" not in _guard(guard_inputs, euler, 40.0, 4.0, 10.0).reason
    refused = _guard(guard_inputs, euler, 80.0, 4.0, 10.0)
    assert not refused.applied and "implausibly large" in refused.reason, refused.reason


def test_the_guard_bounds_the_angle_and_a_correction_at_the_bound_is_not_too_large(guard_inputs):
    """_guard: "applied only when it is small enough" - at most ``max_rotation_deg`` (a 12 degree rotation is refused
    under a 10 degree bound whatever the displacement bound), and "at most" ``max_translation_mm``: a shift of
    exactly (3, 4, 0) mm, 5 mm everywhere, is not too large for a 5 mm bound (it is for 4.99 mm)."""
    turned = sitk.Euler3DTransform((0.0, 0.0, 0.0), math.radians(12.0), 0.0, 0.0, (0.0, 0.0, 0.0))
    refused = _guard(guard_inputs, turned, 40.0, 1000.0, 10.0)
    assert not refused.applied and "implausibly large" in refused.reason, refused.reason
    shifted = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.0, 0.0, 0.0, (3.0, 4.0, 0.0))
    assert reg.correction_size(shifted, (0.0, 0.0, 0.0), 40.0)[2] == 5.0
    assert "implausibly large" not in _guard(guard_inputs, shifted, 40.0, 5.0, 10.0).reason
    assert "implausibly large" in _guard(guard_inputs, shifted, 40.0, 4.99, 10.0).reason


def test_a_multi_start_start_is_a_right_handed_rotation_about_the_centre_and_a_shift():
    """_start_transform: (rotation axis index in LPS, degrees, shift mm) about the gland centre, described as "start
    rotated +3 degrees about the S axis": a right-handed +3 degrees about S takes a point 10 mm along L to
    10 (cos 3, sin 3, 0) mm from the centre; a start shifted by (0, 5, 0) mm moves the centre by exactly that."""
    centre = np.array([4.0, -7.0, 12.0])
    rotated = reg._start_transform(centre, (2, 3.0, (0.0, 0.0, 0.0)))
    assert reg._describe_start((2, 3.0, (0.0, 0.0, 0.0))) == "start rotated +3° about the S axis"
    a = math.radians(3.0)
    moved = np.array(rotated.TransformPoint(tuple(centre + (10.0, 0.0, 0.0))))
    assert moved - centre == pytest.approx(10.0 * np.array([math.cos(a), math.sin(a), 0.0]), abs=1e-9)
    assert rotated.TransformPoint(tuple(centre)) == pytest.approx(tuple(centre), abs=1e-9)
    shifted = reg._start_transform(centre, (None, 0.0, (0.0, 5.0, 0.0)))
    assert np.array(shifted.TransformPoint(tuple(centre))) - centre == pytest.approx([0.0, 5.0, 0.0], abs=1e-9)


def test_each_series_optimiser_stops_at_its_own_smallest_step(guard_inputs):
    """_method: the optimiser stops when its step falls below the series' smallest step - 0.01 mm for the T1-pre
    and the DCE frames (MIN_STEP_BY_SERIES_MM), 0.001 mm for the PD and the ADC (MIN_STEP_MM); ITK names the
    minimum step it stopped at."""
    fixed, moving, centre = guard_inputs
    mask = reg.region_mask(fixed, centre, 40.0, moving)
    for modality, step in (("t1pre", 0.01), ("dce_early", 0.01), ("pd", 0.001), ("adc", 0.001)):
        method = reg._method(mask, modality, 100, reg.LEARNING_RATE_MM)
        euler = sitk.Euler3DTransform()
        euler.SetCenter(centre)
        method.SetInitialTransform(euler, inPlace=True)
        method.Execute(fixed, moving)
        said = method.GetOptimizerStopConditionDescription()
        assert f"minimum step ({step:g})" in said, (modality, said)


def test_a_frame_is_registered_around_the_image_of_the_gland_centre_in_its_reference():
    """start_through: "center_lps is in T2W space; the similarity is measured around its image in the reference"
    (reference_result maps T2W points to the reference). A reference 20 mm away from the T2W and a frame rotated by
    5 degrees about that image of the centre: the step's reported displacement at the gland centre is ~0 (about the
    wrong point, the inverse image 40 mm away, it would be 2 * 40 * sin(2.5 degrees) = 3.5 mm)."""
    reference_image = _blobs(seed=2)
    shift = np.array([12.0, -16.0, 0.0])
    centre_t2w = -shift / 2
    reference = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.0, 0.0, 0.0, tuple(shift))
    given = reg.RegistrationResult("t1pre", reference, True, None, None, 20.0, 0.0, "given for the test")
    image_of_centre = centre_t2w + shift
    frame = perturbed_copy(reference_image, rotation_matrix((0.0, 0.0, 1.0), 5.0), (0.0, 0.0, 0.0), image_of_centre)
    result = reg.register_through(reference_image, given, frame, "dce_late", tuple(centre_t2w))
    assert result.applied, result.reason
    assert result.rotation_deg == pytest.approx(5.0, abs=0.5)
    assert result.translation_mm < 0.5, result.translation_mm


def test_the_checks_moved_copy_is_allowed_the_perturbations_rotation_on_top_of_the_series_limit():
    """start_rigid with ``check``: "The copy was moved by the known perturbation on top of the series' own motion:
    its guard allows that much more" - CHECK_ANGLE_DEG more rotation. A series that needs no correction, under a
    1 degree rotation bound: its copy, moved by the 3 degree perturbation, must still be registered (not refused as
    too large) and agree."""
    fixed = _blobs(seed=3)
    assert CHECK_ANGLE_DEG > 1.0
    result = reg.register_rigid(fixed, sitk.Image(fixed), "pd", (0.0, 0.0, 0.0), max_rotation_deg=1.0, check=True,
                                multi_start=False)
    check = result.self_check
    assert check["perturbed_copy_applied"] is True and check["agrees"] is True, check["summary"]


def test_the_multi_start_refines_the_best_starts_and_returns_them_best_metric_first():
    """_multi_start: every start is screened at the coarse level, "the MULTI_START_REFINED best by the
    full-resolution metric" are refined, and those passing the guard come back "best metric first". With a
    learning rate of 0.01 mm no start moves more than ~3 mm, so the starts nearest the true shift (4, 3, 0) mm win:
    +5 mm along L (3.2 mm away), then +5 mm along P (4.5 mm away); every other start is farther than the scanner
    alignment (5 mm away) and cannot pass the guard."""
    size, spacing = (32, 32, 16), (2.5, 2.5, 4.0)
    values = np.random.default_rng(4).random(tuple(reversed(size))).astype(np.float32)
    fixed = sitk.SmoothingRecursiveGaussian(_image(size, spacing, values=values), 4.0)
    fixed = sitk.Cast(sitk.RescaleIntensity(fixed, 0.0, 100.0), sitk.sitkFloat32)
    fixed.SetOrigin(tuple(-(n - 1) * s / 2 for n, s in zip(size, spacing)))
    centre = (0.0, 0.0, 0.0)
    moving = perturbed_copy(fixed, np.eye(3), (4.0, 3.0, 0.0), centre)
    mask = reg.region_mask(fixed, centre, 40.0, moving)
    assert reg.MULTI_START_REFINED == 2
    found = reg._multi_start(fixed, moving, mask, "pd", centre, 40.0, 30, 0.01, 15.0, 10.0)
    assert [r.start for r in found] == ["start shifted by (+5, +0, +0) mm (LPS)",
                                        "start shifted by (+0, +5, +0) mm (LPS)"]
    assert found[0].metric_after < found[1].metric_after < found[0].metric_before
    assert all(r.applied for r in found)
