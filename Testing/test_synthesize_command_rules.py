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


def test_a_frame_left_on_its_t1pre_is_not_said_to_use_the_scanner_alignment(tmp_path):
    """A DCE frame registered through the T1-pre (a real registration of the sample case's early frame to its own
    T1-pre, whose step the guard refuses: the frame already sits on it) follows the T1-pre's registration. The
    console said "registration correction not applied, scanner alignment used" for it on 35 of 40 fresh phantom
    exams (docs/ood.md); it now says nothing, and the recorded reason says where the frame stays. A frame whose step
    was implausibly large is still said, naming the T1-pre."""
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
    from DCEDiffLib.registration import register_through

    t1pre = sitk.ReadImage(str(SAMPLE_CASE_DIR / "t1pre.nii.gz"), sitk.sitkFloat32)
    size = t1pre.GetSize()
    centre = t1pre.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in size])
    on_itself = register_through(t1pre, identity_result("t1pre", "applied"), t1pre, "dce_early", centre)
    assert not on_itself.applied and on_itself.registered_to == "t1pre"
    assert "scanner alignment" not in on_itself.reason and "kept on the T1 pre-contrast as acquired" in on_itself.reason
    large = RegistrationResult("dce_late", sitk.Euler3DTransform(), False, -0.5, -0.4, 30.0, 12.0,
                               "registered to the T1 pre-contrast (then its registration to the T2W): correction "
                               "implausibly large (30.0 mm, 12.0°); kept on the T1 pre-contrast as acquired",
                               registered_to="t1pre")
    notes = registration_notes({"dce_early": on_itself, "dce_late": large})
    assert notes == [f"DCE_LATE: its correction to the T1 pre-contrast not applied: {large.reason}"]


def test_the_console_headline_is_psnr_ssim_and_mae_of_the_whole_grid_per_target():
    """_headline: 'PSNR/SSIM/MAE on the whole grid, per target'; other regions and sections are left out."""
    metrics = {"early": {"whole": {"psnr": 30.5, "ssim": 0.88, "mae": 0.021, "n": 5}, "body": {"psnr": 1.0}},
               "late": {"whole": {"psnr": 29.5, "ssim": 0.86, "mae": 0.025}},
               "notes": ["a note"], "info": {"voxels": 10}}
    assert _headline(metrics) == {"early": {"psnr": 30.5, "ssim": 0.88, "mae": 0.021},
                                  "late": {"psnr": 29.5, "ssim": 0.86, "mae": 0.025}}
