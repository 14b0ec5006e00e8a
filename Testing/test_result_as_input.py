"""A volume DCEDiff wrote as a result, given back as an input, is refused by name before any work: as the acquired
DCE, a synthesis is scored against itself (zero residual, perfect metrics); as T2W/PD/ADC/T1-pre it is no acquired
image at all. Found by an audit of saved Slicer results (the module refuses its result nodes; the files the engine
writes carry their own mark: the key DCEDiff_synthetic in NRRD/MHA, a NIfTI descrip "SYNTHETIC ... seed=N")."""

from pathlib import Path

import pytest
import SimpleITK as sitk

from DCEDiffLib.data_source import PHANTOM_MARK, SYNTHETIC_KEY, is_dcediff_result, mark_phantom
from DCEDiffLib.errors import InputError
from DCEDiffLib.pipeline import provenance_descrip
from DCEDiffLib.preprocess import read_inputs
from DCEDiffLib.volume_io import write_volume

CASE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"
PROVENANCE = {"model": "dcediff_cpu_phantom", "sampler": "dpmpp", "steps": 1, "seed": 0}


def _inputs(**replace):
    inputs = {key: str(CASE / f"{key}.nii.gz") for key in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    inputs.update(replace)
    return inputs


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_a_result_file_given_as_the_acquired_dce_is_refused_naming_it(tmp_path, suffix):
    result = tmp_path / f"synthetic_early{suffix}"
    keys = {"description": provenance_descrip(PROVENANCE), SYNTHETIC_KEY: "true"}
    write_volume(sitk.ReadImage(str(CASE / "dce_early.nii.gz"), sitk.sitkFloat32), result, keys)
    with pytest.raises(InputError, match=rf"\(dce_early\): .*synthetic_early{suffix} is a DCEDiff result"):
        read_inputs(_inputs(dce_early=str(result)))


def test_the_nifti_descrip_alone_marks_a_result_and_a_phantom_or_plain_file_is_not_one():
    image = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    assert not is_dcediff_result(image)
    image.SetMetaData("descrip", provenance_descrip(PROVENANCE, warning="OOD-WARNING NO-PD"))
    assert is_dcediff_result(image)
    phantom = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    mark_phantom(phantom)
    phantom.SetMetaData("descrip", PHANTOM_MARK)  # the phantom says "synthetic" too, but is an input by design
    assert not is_dcediff_result(phantom)
    other = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    other.SetMetaData("descrip", "SYNTHETIC MR (vendor map)")  # another tool's word, no DCEDiff provenance
    assert not is_dcediff_result(other)


def test_the_shipped_case_reads_as_before():
    images = read_inputs(_inputs())
    assert sorted(images) == ["adc", "dce_early", "dce_late", "pd", "t1pre", "t2w"]
