"""Preprocessing rules of preprocess.py at their definitions (found by a mutation audit): the robust range is measured
over the grid voxels inside the series' field of view, a label map is rounded to the nearest integer, the T2W
geometry of a written case is read back whole, the crop centre may lie half a voxel beyond a series' outer voxel
centres, an empty path is a missing input, and a voxel size out of range along any one axis is refused."""

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError

MODALITIES = ("t2w", "pd", "adc", "t1pre")


def volume(key: str, size=(40, 40, 12), spacing=(6.0, 6.0, 4.0), direction=None) -> sitk.Image:
    """A positive volume with contrast (the field-of-view centre at (0, 0, 0) for the identity direction)."""
    rng = np.random.default_rng(MODALITIES.index(key) if key in MODALITIES else 9)
    base = {"t2w": 400.0, "pd": 900.0, "adc": 1500.0, "t1pre": 300.0}.get(key, 500.0)
    array = rng.uniform(0.5 * base, 1.5 * base, tuple(reversed(size))).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    half = [(n - 1) / 2.0 for n in size]
    centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint(half))
    image.SetOrigin(tuple(float(v) for v in np.asarray(image.GetOrigin()) - centre))
    return image


def test_the_robust_range_is_measured_inside_the_series_field_of_view():
    """A series that covers half the working grid: the grid voxels outside its field of view are the resampler's
    fill (0), not intensities of the series, so the 0.5th percentile of the fitted range is one of the PD's own
    values (all between 450 and 1350), not the fill. The coverage is the fraction of the grid inside that field
    of view (about one half here)."""
    from DCEDiffLib.preprocess import preprocess_case

    images = {m: volume(m) for m in MODALITIES}
    pd = volume("pd")
    half = pd[:, 19:, :]  # the posterior half (j ≥ 19 of 40): its box from y = -3 mm, the centre (y = 0) in it
    images["pd"] = half
    case = preprocess_case(images, register=False)
    assert 0.4 < case.coverage["pd"] < 0.6
    assert case.norm["pd"].low >= 450.0
    assert case.norm["pd"].high <= 1350.0


def test_a_label_map_stored_as_floats_is_rounded_to_the_nearest_label():
    """read_inputs reads label maps 'as integers': a label map stored as float (values a resampler or a converter
    left a hair below or above the label, 0.9999 and 2.0001, or 1.6) becomes the nearest integer label, not the
    label below it."""
    from DCEDiffLib.preprocess import read_inputs

    images = {m: volume(m) for m in MODALITIES}
    labels = np.zeros((12, 40, 40), np.float32)
    labels[4, 10:20, 10:20] = 0.9999
    labels[5, 10:20, 10:20] = 2.0001
    labels[6, 10:20, 10:20] = 1.6
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(images["t2w"])
    read = read_inputs(dict(images, labels=label_image))
    values = sitk.GetArrayViewFromImage(read["labels"])
    assert read["labels"].GetPixelID() == sitk.sitkInt16
    assert values[4, 15, 15] == 1 and values[5, 15, 15] == 2 and values[6, 15, 15] == 2 and values[0, 0, 0] == 0


def test_a_written_case_reads_back_the_oblique_t2w_geometry_it_was_made_from(tmp_path):
    """load_preprocessed gives 'an empty image with its geometry' for pasting back: the T2W's size, spacing, origin
    and direction, an oblique direction included (30° about the feet-head axis)."""
    from DCEDiffLib.preprocess import load_preprocessed, preprocess_case, write_preprocessed

    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    oblique = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    images = {m: volume(m, direction=oblique) for m in MODALITIES}
    case = preprocess_case(images, register=False, grid_size=(32, 32, 8))
    back = load_preprocessed(write_preprocessed(case, tmp_path / "case"))
    t2w = images["t2w"]
    assert back.t2w.GetSize() == t2w.GetSize()
    np.testing.assert_allclose(back.t2w.GetSpacing(), t2w.GetSpacing())
    np.testing.assert_allclose(back.t2w.GetOrigin(), t2w.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.t2w.GetDirection(), oblique, atol=1e-12)


@pytest.mark.parametrize("beyond, refused", [(0.4, False), (0.6, True)])
def test_the_crop_centre_may_lie_half_a_voxel_beyond_a_series_outer_voxel_centres(beyond, refused):
    """refuse_series_off_the_centre: a series' field of view is its voxel box, half a voxel beyond its outer voxel
    centres. A centre 0.4 slice beyond the last slice centre (along k, slices of 4 mm) is in it; 0.6 is not."""
    from DCEDiffLib.preprocess import refuse_series_off_the_centre

    pd = volume("pd")
    centre = pd.TransformContinuousIndexToPhysicalPoint((19.5, 19.5, 11 + beyond))
    if refused:
        with pytest.raises(InputError, match=r"\(pd\): the field of view does not contain the crop centre"):
            refuse_series_off_the_centre({"pd": pd}, centre, "user")
    else:
        refuse_series_off_the_centre({"pd": pd}, centre, "user")


def test_an_empty_path_is_a_missing_input():
    """missing_inputs: an input 'absent, None or empty' is not given; an empty string is as missing as None."""
    from DCEDiffLib.preprocess import check_required_inputs, missing_inputs

    assert missing_inputs({"t2w": "t2w.nii.gz", "pd": "", "adc": None, "t1pre": "t1.nii.gz"}) == ["pd", "adc"]
    with pytest.raises(InputError, match=r"missing input\(s\): .*\(pd\)"):
        check_required_inputs({"t2w": "t2w.nii.gz", "pd": "", "adc": "adc.nii.gz", "t1pre": "t1.nii.gz"})
    check_required_inputs({"t2w": "t2w.nii.gz", "pd": "", "adc": "adc.nii.gz", "t1pre": "t1.nii.gz"}, optional=["pd"])


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 25.0), (0.01, 0.5, 3.0)])
def test_a_voxel_size_out_of_range_along_one_axis_is_refused(spacing):
    """SPACING_RANGE_MM (0.05–20 mm): each voxel size must be plausible; one axis out of the range (25 mm slices,
    a 0.01 mm row spacing: a header in the wrong unit) is enough to refuse the series, naming it."""
    from DCEDiffLib.preprocess import read_inputs

    images = {m: volume(m) for m in MODALITIES}
    odd = volume("adc")
    odd.SetSpacing(spacing)
    with pytest.raises(InputError, match=r"\(adc\): voxel spacing .* is outside 0.05–20 mm") as refused:
        read_inputs(dict(images, adc=odd))
    assert f"voxel spacing {tuple(float(s) for s in spacing)} mm" in str(refused.value)  # plain numbers, no np.float64


def test_the_default_crop_is_centred_on_the_middle_of_the_t2w_voxel_box():
    """field_of_view_center: the physical centre of the voxel box, halfway between the first and the last voxel
    centres (index (size - 1) / 2), an oblique T2W included. A 40 x 40 x 12 T2W of the grid's own voxel size cropped
    to 20 x 20 x 6 around it: the grid's voxels are T2W voxels 10-29, 10-29, 3-8, copied exactly."""
    from DCEDiffLib.working_grid import field_of_view_center, make_working_grid, resample_to_grid

    c, s = np.cos(np.pi / 9), np.sin(np.pi / 9)
    t2w = volume("t2w", size=(40, 40, 12), spacing=(1.5, 1.5, 3.0), direction=(c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    first = np.asarray(t2w.TransformIndexToPhysicalPoint((0, 0, 0)))
    last = np.asarray(t2w.TransformIndexToPhysicalPoint((39, 39, 11)))
    np.testing.assert_allclose(field_of_view_center(t2w), (first + last) / 2, atol=1e-9)
    grid = make_working_grid(t2w, size=(20, 20, 6), spacing=(1.5, 1.5, 3.0))
    np.testing.assert_allclose(grid.center_lps, (first + last) / 2, atol=1e-9)
    crop = sitk.GetArrayFromImage(resample_to_grid(t2w, grid))
    np.testing.assert_array_equal(crop, sitk.GetArrayViewFromImage(t2w)[3:9, 10:30, 10:30])


def test_an_image_given_as_the_label_map_is_refused():
    """read_inputs: a label map has labels, few and integer-valued; an MR image given for --labels (thousands of
    distinct values) or values that int16 would wrap around are refused by name, not rounded into 'labels'."""
    from DCEDiffLib.preprocess import MAX_LABEL_VALUES, read_inputs

    images = {m: volume(m) for m in MODALITIES}
    as_labels = sitk.Cast(images["t2w"], sitk.sitkFloat32)  # 200-600: an MR image within the int16 range
    assert len(np.unique(np.round(sitk.GetArrayViewFromImage(as_labels)))) > MAX_LABEL_VALUES
    with pytest.raises(InputError, match=r"label map.*distinct values; expected a label map"):
        read_inputs(dict(images, labels=as_labels))
    huge = np.zeros((12, 40, 40), np.float32)
    huge[5, 10:20, 10:20] = 40000.0
    wraps = sitk.GetImageFromArray(huge)
    wraps.CopyInformation(images["t2w"])
    with pytest.raises(InputError, match=r"label map.*values 0 to 40000; expected integer labels"):
        read_inputs(dict(images, labels=wraps))
