"""The TAPS window's input does not depend on how the T2W's rows are stored (prostate_localization).

Found by a helper session converting ProstateX-0000 with dcm2niix (which stores the rows reversed): the window's 3 mm
slices lay exactly on the faces of the T2W's 19 slices, ITK's inside test turned on 1e-9 mm of rounding, and the
DICOM series and its NIfTI copy gave the gland centres 0.4 mm apart, hence other working grids and syntheses.
"""

import numpy as np
import SimpleITK as sitk

from DCEDiffLib import prostate_localization as pl

# the direction and origin of the ProstateX-0000 T2W (oblique, 384 × 384 × 19 of 0.5 × 0.5 × 3 mm)
DIRECTION = (0.999999210146702, -0.0003986104797413161, -0.0011919797219437308, -2.0033508988982908e-10,
             -0.9483764490953768, 0.31714682845843534, 0.0012568635061607604, 0.31714657870952784,
             0.9483756997661678)
DIRECTION_LPS = tuple(np.asarray(DIRECTION).reshape(3, 3).T.ravel())  # MetaImage's TransformMatrix is transposed


def _t2w() -> sitk.Image:
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.uniform(100.0, 400.0, (19, 120, 120)).astype(np.float32))
    image.SetSpacing((0.5, 0.5, 3.0))
    image.SetDirection(DIRECTION_LPS)
    image.SetOrigin((-57.685436248779297, 99.251029968261719, -87.814376831054688))
    return image


def _rows_reversed(image: sitk.Image) -> sitk.Image:
    """The same voxels in physical space, stored with the j axis reversed (as dcm2niix writes a DICOM series)."""
    flipped = sitk.Flip(image, [False, True, False])
    last_row = image.TransformIndexToPhysicalPoint((0, image.GetSize()[1] - 1, 0))
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag([1.0, -1.0, 1.0])
    flipped.SetDirection(tuple(matrix.ravel()))
    flipped.SetOrigin(last_row)
    return flipped


def _window_input(image: sitk.Image) -> np.ndarray:
    centre = np.asarray(pl._fov_centre(image))
    reference = pl._grid(pl._ras_direction(image), pl.NATIVE_SPACING, pl.ROI_SIZE, centre)
    mean, std = pl._zscore_params(image)
    return pl._resample_normalized(image, reference, mean, std)


def test_the_window_input_is_the_same_whichever_way_the_t2w_rows_are_stored():
    original = _t2w()
    reversed_rows = _rows_reversed(original)
    assert np.allclose(reversed_rows.TransformIndexToPhysicalPoint((5, 119 - 7, 3)),
                       original.TransformIndexToPhysicalPoint((5, 7, 3)), atol=1e-6)
    first, second = _window_input(original), _window_input(reversed_rows)
    assert np.abs(first - second).max() < 1e-4
    # the window slices on the T2W's outer faces are whole: filled (the edge slice) wherever the plane lies in-plane
    # inside the T2W, never partly filled by rounding
    filled = [np.count_nonzero(first[:, :, k]) for k in range(first.shape[2])]
    assert filled[6] == filled[7] and filled[25] == filled[24]
