"""input_role_check on DICOM folders of a phantom study (no reference data needed): a series given for a role is
warned about only when its header clearly says it is another kind — an ADC map as the T2W, a T2W as the ADC, a DWI
series as the ADC — and the right folders, or a stand-in (the PD reference as the T1-pre), give no warning."""
from pathlib import Path

import pytest

from DCEDiffLib.dicom_study import scan_study
from DCEDiffLib.input_role_check import role_mismatch_warnings
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.series_kinds import is_adc
from DCEDiffLib.study_roles import pick_roles


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The one-series folders of a phantom study in the TCIA layout: the picked T2W, ADC and PD, and a DWI."""
    root = tmp_path_factory.mktemp("roles") / "exam"
    write_phantom_study(generated_case(3), root, file_layout="tcia",
                        omit=("localizer", "t2_sag", "t2_cor", "calc_bval", "mddw", "adc_hb", "dce", "t1_post"))
    study = scan_study(root)
    picks = pick_roles(study, require=False).picks
    found = {role: Path(sorted(picks[role].series.folders)[0]) for role in ("t2w", "adc", "pd")}
    dwi = [s for s in study.series if s.diffusion and not is_adc(s)]  # the DWI and its TRACEW/FA maps
    found["dwi"] = Path(sorted(dwi[0].folders)[0]) if dwi else None
    for key, folder in found.items():
        if folder is not None:  # one series per folder, or the check stays silent by design
            assert len([s for s in study.series if str(folder) in s.folders]) == 1, key
    return found


def test_the_right_folders_and_a_stand_in_give_no_warning(folders):
    assert role_mismatch_warnings({"t2w": folders["t2w"], "adc": folders["adc"], "t1pre": folders["pd"]}) == []


def test_an_adc_map_and_a_t2w_given_for_each_other_are_named(folders):
    warnings = role_mismatch_warnings({"t2w": folders["adc"], "adc": folders["t2w"], "t1pre": folders["pd"]})
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"--t2w {folders['adc']}") and "looks like an ADC map" in warnings[0]
    assert "not like the T2W" in warnings[0]
    assert warnings[1].startswith(f"--adc {folders['t2w']}") and "looks like a T2W" in warnings[1]


def test_a_diffusion_series_given_as_the_adc_is_named_as_one(folders):
    if folders["dwi"] is None:
        pytest.skip("the phantom study has no DWI series in a folder of its own")
    warnings = role_mismatch_warnings({"t2w": folders["t2w"], "adc": folders["dwi"], "t1pre": folders["pd"]})
    assert len(warnings) == 1 and "looks like a diffusion series" in warnings[0] and "not like the ADC" in warnings[0]
