"""`dcediff synthesize`'s own bookkeeping at its rules (found by a mutation audit): one console note per series
whose registration correction was not applied (two series, two notes), and the console's PSNR/SSIM/MAE headline."""

import SimpleITK as sitk

from DCEDiffLib.commands.common import registration_notes
from DCEDiffLib.commands.synthesize import _headline
from DCEDiffLib.registration import RegistrationResult, identity_result


def test_every_series_whose_correction_was_not_applied_gets_its_own_note():
    """registration_notes: 'one line per series whose correction was not applied (not skipped on request)':
    the PD and the ADC both kept their scanner alignment, each for its own reason; the applied T1-pre and the
    skipped DCE frame say nothing."""
    registration = {
        "pd": RegistrationResult("pd", sitk.Euler3DTransform(), False, -0.5, -0.6, 22.0, 3.0, "PD too far"),
        "t1pre": RegistrationResult("t1pre", sitk.Euler3DTransform(), True, -0.5, -0.6, 1.0, 0.5, "applied"),
        "adc": RegistrationResult("adc", sitk.Euler3DTransform(), False, -0.5, -0.6, 0.1, 0.1, "ADC worse"),
        "dce_early": identity_result("dce_early", "registration skipped (scanner alignment used)"),
    }
    notes = registration_notes(registration)
    assert notes == ["PD: registration correction not applied, scanner alignment used: PD too far",
                     "ADC: registration correction not applied, scanner alignment used: ADC worse"]


def test_the_console_headline_is_psnr_ssim_and_mae_of_the_whole_grid_per_target():
    """_headline: 'PSNR/SSIM/MAE on the whole grid, per target'; other regions and sections are left out."""
    metrics = {"early": {"whole": {"psnr": 30.5, "ssim": 0.88, "mae": 0.021, "n": 5}, "body": {"psnr": 1.0}},
               "late": {"whole": {"psnr": 29.5, "ssim": 0.86, "mae": 0.025}},
               "notes": ["a note"], "info": {"voxels": 10}}
    assert _headline(metrics) == {"early": {"psnr": 30.5, "ssim": 0.88, "mae": 0.021},
                                  "late": {"psnr": 29.5, "ssim": 0.86, "mae": 0.025}}
