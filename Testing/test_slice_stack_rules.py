"""DICOM slice-stack rules of volume_io at their definitions (found by a mutation audit): slices whose
ImageOrientationPatient differs in any of its six values are not one stack."""

import numpy as np
import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.volume_io import read_volume

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def dicom_slices(folder, orientations, z_step=3.0, uid="1.2.826.0.1.3680043.2.1.911"):
    """One DICOM file per slice at (0, 0, k × z_step) with the given ImageOrientationPatient each
    (Testing/test_reliability.py's writer)."""
    from test_reliability import _dicom_slices

    return _dicom_slices(folder, [k * z_step for k in range(len(orientations))], uid=uid, orientations=orientations)


def test_slices_whose_column_direction_differs_are_not_one_stack(tmp_path):
    """_sorted_slice_files refuses a series that 'mixes slices of different orientations' (ImageOrientationPatient:
    row and column direction, six values). Five slices 3 mm apart along z, the row direction the same in all, the
    middle one's column direction tilted 6° about the row: not one stack of parallel slices, though the rows agree
    and the positions are regular."""
    angle = np.deg2rad(6.0)
    tilted = (1.0, 0.0, 0.0, 0.0, float(np.cos(angle)), float(np.sin(angle)))
    folder = dicom_slices(tmp_path / "tilted", [AXIAL, AXIAL, tilted, AXIAL, AXIAL])
    with pytest.raises(InputError, match="mixes slices of different orientations"):
        read_volume(folder, name="ADC")
    straight = read_volume(dicom_slices(tmp_path / "straight", [AXIAL] * 5), name="ADC")
    assert straight.GetSize() == (12, 10, 5) and straight.GetSpacing()[2] == pytest.approx(3.0)
