"""The out-of-distribution check measures the resolution and field of view of every input, whatever form it came in.

Found by the real-exam audit (session 65): the geometry of PD, ADC and T1-pre was read from their files' headers, so
a DICOM series folder (and every series of a ``--study``) was skipped: on a real exam only the T2W's geometry was
compared with the training data. Preprocessing now keeps what it read (``PreprocessedCase.input_geometry``)."""

import pytest
import SimpleITK as sitk

from DCEDiffLib import ood
from DCEDiffLib.modalities import INPUT_MODALITIES
from DCEDiffLib.phantom.dicom_export import write_dicom_modality
from DCEDiffLib.pipeline import condition_array
from DCEDiffLib.preprocess import preprocess_case
from shared_phantom_case import generated_case


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    """A phantom exam: T2W as NIfTI, PD, ADC and T1-pre as DICOM series folders (as a study's series arrive)."""
    case = generated_case(3)
    root = tmp_path_factory.mktemp("exam")
    inputs = {"t2w": root / "t2w.nii.gz"}
    sitk.WriteImage(case.images["t2w"], str(inputs["t2w"]))
    for key in ("pd", "adc", "t1pre"):
        inputs[key] = write_dicom_modality(case.images[key], root / key, key, case)
    return case, inputs


def test_dicom_series_inputs_have_their_geometry_checked(exam):
    case, inputs = exam
    pre = preprocess_case(inputs, register=False, find_prostate=False)
    statistics = ood.case_statistics(pre, condition_array(pre, INPUT_MODALITIES), INPUT_MODALITIES, inputs)
    geometry = statistics["geometry"]
    assert set(geometry) == set(INPUT_MODALITIES)  # the DICOM folders used to be skipped here
    for key in ("pd", "adc", "t1pre"):
        expected = ood.series_geometry(case.images[key])  # the series as generated, before its DICOM export
        for name, value in expected.items():
            assert geometry[key][name] == pytest.approx(value, rel=1e-4), (key, name)
    # and the features the score compares with the card's carry them
    features = ood._features(statistics)
    assert all(f"geometry.{k}.{name}" in features for k in ("pd", "adc", "t1pre")
               for name in ("inplane_mm", "slice_mm", "fov_mm"))
