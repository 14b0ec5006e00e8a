"""A double-precision input file holding values beyond float32's range (1e39) was read without a word: it passed
validate_volume (the value is finite as a double) and as_float32 then made it infinite, which the engine went on
with. It is refused, naming the input and the largest value. Real files, no stand-in."""

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError
from DCEDiffLib.volume_io import read_volume


def double_file(tmp_path, value):
    array = np.random.default_rng(0).uniform(10, 100, (6, 7, 8))  # float64
    array[2, 3, 4] = value
    path = tmp_path / "adc.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


@pytest.mark.parametrize("value", [1e39, -2.5e40])
def test_a_double_file_beyond_the_float32_range_is_refused_by_name(tmp_path, value):
    path = double_file(tmp_path, value)
    with pytest.raises(InputError) as failure:
        read_volume(path, name="ADC")
    assert str(failure.value).startswith(f"ADC ({path}): has values beyond the float32 range (largest {value:.4g};")


def test_a_double_file_within_the_float32_range_is_read_as_float32(tmp_path):
    image = read_volume(double_file(tmp_path, 3.0e38), name="ADC")
    values = sitk.GetArrayViewFromImage(image)
    assert values.dtype == np.float32 and np.isfinite(values).all() and values[2, 3, 4] == np.float32(3.0e38)
