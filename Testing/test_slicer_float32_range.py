"""A double-precision input volume holding values beyond float32's range (1e39: a wrongly scaled map, a unit
conversion gone astray). scene_io.volume_node_to_image copies every input to float32, the precision the engine
computes in; the cast made those values infinite and the input was refused as "contains NaN or infinite values",
which it does not. Real MRML volume nodes of the slicer-core wheel; no stand-in."""

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core (pip install slicer-core) is not installed")
import slicer.util  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DCEDiff"))
sys.path.insert(0, str(ROOT / "Testing"))
from DCEDiffSlicerLib import scene_io  # noqa: E402
from test_slicer_scene import scene  # noqa: E402,F401  (a fresh scene per test, autouse)


def double_volume(name, value):
    array = np.random.default_rng(0).uniform(10, 100, (4, 5, 6))  # float64, as a double NRRD loads
    array[1, 2, 3] = value
    return slicer.util.addVolumeFromArray(array, name=name), array


@pytest.mark.parametrize("value", [1e39, -2.5e40])
def test_doubles_beyond_the_float32_range_are_named_as_such(value):
    node, array = double_volume("adc_scaled", value)
    with pytest.raises(ValueError) as failure:
        scene_io.volume_node_to_image(node, "ADC")
    message = str(failure.value)
    assert message.startswith("ADC: adc_scaled has values beyond the float32 range"), message
    assert f"largest {value:.4g}" in message and "NaN" not in message, message
    assert np.array_equal(slicer.util.arrayFromVolume(node), array), "the input volume was modified"


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_and_infinite_doubles_are_still_named_as_such(value):
    node, _ = double_volume("adc_nan", value)
    with pytest.raises(ValueError, match=r"^ADC: adc_nan contains NaN or infinite values \(1 of 120 voxels\)"):
        scene_io.volume_node_to_image(node, "ADC")


def test_doubles_within_the_float32_range_are_copied():
    node, array = double_volume("adc_large", 3.0e38)  # just below float32's largest, 3.4028e38
    image = scene_io.volume_node_to_image(node, "ADC")
    import SimpleITK as sitk

    copied = sitk.GetArrayViewFromImage(image)
    assert copied.dtype == np.float32 and np.isfinite(copied).all() and copied[1, 2, 3] == np.float32(3.0e38)
