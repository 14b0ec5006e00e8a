"""A post-contrast image given as the T1-pre is warned about (never refused) where it can be caught reliably:

- its DICOM header says contrast had been given (ContrastBolusAgent set, a post-contrast description, or, in a
  study, a series acquired after the DCE started): a small DICOM series written with SimpleITK and the phantom
  study's own post-contrast VIBE, checked by ``input_role_check`` and by the study's picks;
- the acquired DCE is no brighter than the T1-pre in the gland: a full ``dcediff synthesize`` of the shipped sample
  case with a noisy copy of its late DCE as the T1-pre (a small random-weight model, two steps).

The right inputs give no warning (here, and in test_pipeline.py's synthesis of the sample case). Nor does an agent
some scanners write on every series of the exam (the T2W carries the same one): real ProstateX series copied with
the tag set (SimpleITK, as ``dicom_slice_io`` rewrites real slices; pydicom is no dependency).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.acquired_scale import MIN_GLAND_ENHANCEMENT, gland_enhancement, post_contrast_t1pre_note
from DCEDiffLib.cli import main
from DCEDiffLib.dicom_study import scan_study
from DCEDiffLib.input_role_check import t1pre_contrast_warning
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.study_roles import pick_roles
from dicom_slice_io import read_slice_with_tags
from random_model import save_random_model

CASE = SAMPLE_CASE_DIR
PROSTATEX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "prostatex" / "ProstateX-0000"
REAL = {"t2w": "4-t2tsetra", "adc": "7-ep2ddifftraDYNDISTADC", "pd": "9-tfl3d_PD_reftra1.5x1.5t3"}
needs_prostatex = pytest.mark.skipif(not (PROSTATEX / REAL["pd"]).is_dir(),
                                     reason=f"ProstateX data not found at {PROSTATEX} (../shared/data is absent)")


def write_series(folder: Path, description: str, agent: str = "") -> Path:
    """A 3-slice 8×8 MR series (a 20° 3D gradient echo) in ``folder``, with ContrastBolusAgent ``agent`` if set."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    tags = {"0020|000d": "1.2.826.0.1.3680043.2.1125.1.1", "0020|000e": "1.2.826.0.1.3680043.2.1125.1.2",
            "0008|0060": "MR", "0008|103e": description, "0018|1030": description, "0018|1314": "20",
            "0018|0023": "3D", "0018|0020": "GR", "0008|0008": "ORIGINAL\\PRIMARY\\M\\ND", "0020|0011": "7",
            "0020|0037": "1\\0\\0\\0\\1\\0", "0028|0030": "1\\1", "0010|0020": "P1"}
    if agent:
        tags["0018|0010"] = agent
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(3):
        image = sitk.GetImageFromArray(rng.integers(0, 1000, (8, 8)).astype(np.int16))
        for key, value in {**tags, "0020|0013": str(k + 1), "0020|0032": f"0\\0\\{3.0 * k}",
                           "0008|0018": f"1.2.826.0.1.3680043.2.1125.1.3.{k + 1}"}.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"IM{k + 1}.dcm"))
        writer.Execute(image)
    return folder


def test_a_t1pre_series_whose_header_names_a_contrast_agent_is_warned_about(tmp_path):
    folder = write_series(tmp_path / "vibe_gd", "t1_vibe_tra", agent="Gadovist")
    said = t1pre_contrast_warning(folder)
    assert said.startswith(f"--t1pre {folder}: its DICOM header says contrast had been given"), said
    assert "ContrastBolusAgent (0018,0010) 'Gadovist'" in said and "#7 't1_vibe_tra'" in said
    one_file = folder / "IM2.dcm"  # a single file of the series says the same
    assert "ContrastBolusAgent (0018,0010) 'Gadovist'" in t1pre_contrast_warning(one_file)


@pytest.mark.parametrize("placeholder", ["NONE", "None", "n/a", " no ", "Kein", "geen"])
def test_an_agent_tag_that_says_none_was_given_is_no_evidence(tmp_path, placeholder):
    """Some sites fill ContrastBolusAgent with a word for 'none' on pre-contrast series; it was taken as an agent."""
    folder = write_series(tmp_path / "vibe", "t1_vibe_tra", agent=placeholder)
    assert t1pre_contrast_warning(folder) == ""
    agent = write_series(tmp_path / "vibe_gd", "t1_vibe_tra", agent="Gadovist")  # a real agent still counts
    assert "ContrastBolusAgent (0018,0010) 'Gadovist'" in t1pre_contrast_warning(agent)


def test_a_pre_contrast_series_a_nifti_file_and_an_image_get_no_warning(tmp_path):
    assert t1pre_contrast_warning(write_series(tmp_path / "vibe", "t1_vibe_tra")) == ""
    assert t1pre_contrast_warning(write_series(tmp_path / "vibe_pre", "t1_vibe_tra_pre_gd")) == ""  # "pre" wins
    assert t1pre_contrast_warning(CASE / "t1pre.nii.gz") == ""
    assert t1pre_contrast_warning(sitk.Image(4, 4, 4, sitk.sitkFloat32)) == ""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A phantom study with its post-contrast VIBEs (one named so, one only acquired after the DCE)."""
    root = tmp_path_factory.mktemp("contrast") / "exam"
    write_phantom_study(generated_case(3), root, file_layout="tcia",
                        omit=("localizer", "t2_sag", "t2_cor", "calc_bval", "mddw", "adc_hb"))
    return scan_study(root)


def test_a_study_series_named_post_contrast_is_warned_about_as_a_t1pre_folder(study):
    post = next(s for s in study.series if s.description == "t1_vibe_fs_tra_post")
    said = t1pre_contrast_warning(Path(post.folders[0]))
    assert "description 't1_vibe_fs_tra_post" in said and "(a post-contrast name)" in said, said
    picked = pick_roles(study, require=False).picks["t1pre"].series  # the reader's own pre-contrast VIBE
    assert t1pre_contrast_warning(Path(picked.folders[0])) == ""


def test_a_post_contrast_series_named_as_the_t1pre_of_a_study_is_warned_about(study):
    assert not [w for w in pick_roles(study, require=False).warnings if "contrast had been given" in w]
    after = next(s for s in study.series if s.description == "t1_vibe_fs_tra")  # neutral name, after the DCE
    warnings = pick_roles(study, {"t1pre": after.number}, require=False).warnings
    said = [w for w in warnings if "contrast had been given" in w]
    assert len(said) == 1 and said[0].startswith(f"T1-pre {after.label()}") and "after the DCE series" in said[0]


def test_the_gland_enhancement_rule_flags_only_an_acquired_dce_no_brighter_than_the_t1pre():
    t1pre = np.full((4, 20, 20), 100.0, np.float32)
    gland = np.ones(t1pre.shape, bool)
    real = gland_enhancement({"early": t1pre * 1.6, "late": t1pre * 2.2}, t1pre, gland)
    assert real == {"early": pytest.approx(0.6), "late": pytest.approx(1.2)}
    assert post_contrast_t1pre_note(real) is None
    weak = {"early": MIN_GLAND_ENHANCEMENT - 0.1, "late": MIN_GLAND_ENHANCEMENT + 0.01}  # one frame enhances enough
    assert post_contrast_t1pre_note(weak) is None
    said = post_contrast_t1pre_note({"early": -0.07, "late": 0.0})
    assert "relative enhancement early -0.07, late +0.00" in said and "T1-pre looks post-contrast" in said


@pytest.mark.skipif(not (CASE / "t2w.nii.gz").is_file(), reason="shipped sample case missing")
def test_a_late_dce_given_as_the_t1pre_is_warned_about_and_recorded(tmp_path, capsys):
    late = sitk.ReadImage(str(CASE / "dce_late.nii.gz"), sitk.sitkFloat32)
    noise = np.random.default_rng(1).normal(0.0, 2.0, sitk.GetArrayViewFromImage(late).shape)
    post = sitk.GetImageFromArray((sitk.GetArrayFromImage(late) + noise).astype(np.float32))
    post.CopyInformation(late)  # another acquisition, not a copy of the file (that has its own warning)
    sitk.WriteImage(post, str(tmp_path / "t1_post.nii.gz"))
    out = tmp_path / "out"
    code = main(["synthesize", "--t2w", str(CASE / "t2w.nii.gz"), "--pd", str(CASE / "pd.nii.gz"),
                 "--adc", str(CASE / "adc.nii.gz"), "--t1pre", str(tmp_path / "t1_post.nii.gz"),
                 "--dce-early", str(CASE / "dce_early.nii.gz"), "--dce-late", str(CASE / "dce_late.nii.gz"),
                 "--model", str(save_random_model(tmp_path / "model")), "--steps", "2", "--out", str(out)])
    assert code == 0  # a warning, not a refusal
    err = capsys.readouterr().err
    assert "DCEDiff warning: the acquired DCE is hardly brighter than the T1-pre in the gland" in err, err
    recorded = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))["provenance"]
    assert "T1-pre looks post-contrast" in recorded["t1pre_contrast_warning"]
    assert "late +0.0" in recorded["t1pre_contrast_warning"] or "late -0.0" in recorded["t1pre_contrast_warning"]


def copy_real_series(name: str, exam: Path, **tags) -> Path:
    """The real ProstateX-0000 series ``name`` copied into ``exam`` (UIDs kept: one study), with ``tags``
    ("gggg|eeee" → value) set on every file."""
    folder = exam / name
    folder.mkdir(parents=True)
    for path in sorted((PROSTATEX / name).iterdir()):
        image = read_slice_with_tags(path)
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / path.name))
        writer.Execute(image)
    return folder


AGENT = {"0018|0010": "Gadovist"}


@needs_prostatex
def test_an_agent_on_the_t2w_too_is_no_evidence_but_one_on_the_t1pre_alone_is(tmp_path, capsys):
    """The exam's PD reference scan (a pre-contrast 3D gradient echo, given as the T1-pre as users do) with the agent
    written study-wide, as some scanners do once it is entered at registration: it was warned of."""
    wide = {role: copy_real_series(REAL[role], tmp_path / "wide", **AGENT) for role in REAL}
    t1pre = wide["pd"]
    assert t1pre_contrast_warning(t1pre, t2w=wide["t2w"]) == ""
    said = t1pre_contrast_warning(t1pre, t2w=PROSTATEX / REAL["t2w"])  # the real T2W has no agent: kept
    assert "ContrastBolusAgent (0018,0010) 'Gadovist'" in said, said
    assert "ContrastBolusAgent" in t1pre_contrast_warning(t1pre)  # no T2W to compare with (a NIfTI T2W): kept
    named = copy_real_series(REAL["pd"], tmp_path / "named", **AGENT, **{"0008|103e": "t1_vibe_tra_post"})
    said = t1pre_contrast_warning(named, t2w=wide["t2w"])  # the other evidence still counts
    assert "(a post-contrast name)" in said and "ContrastBolusAgent" not in said, said
    # the synthesis says it (or not) before the model loads: here none, so it stops there
    for t2w, warned in ((wide["t2w"], False), (PROSTATEX / REAL["t2w"], True)):
        assert main(["synthesize", "--t2w", str(t2w), "--adc", str(wide["adc"]), "--t1pre", str(t1pre),
                     "--model", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert ("DCEDiff warning: --t1pre" in err and "contrast had been given" in err) is warned, err


@needs_prostatex
@pytest.mark.parametrize("t2w_agent, warned", [(True, False), (False, True)])
def test_a_study_t1pre_pick_is_warned_of_for_an_agent_only_where_the_t2w_lacks_it(tmp_path, t2w_agent, warned):
    exam = tmp_path / "exam"
    copy_real_series(REAL["t2w"], exam, **(AGENT if t2w_agent else {}))
    copy_real_series(REAL["adc"], exam, **AGENT)
    copy_real_series(REAL["pd"], exam, **AGENT)
    result = pick_roles(scan_study(exam), {"pd": "none", "t1pre": 9}, optional=["pd"], require=False)
    assert result.picks["t1pre"].series.number == 9 and result.picks["t2w"].series.number == 4
    said = [w for w in result.warnings if "contrast had been given" in w]
    assert bool(said) is warned, result.warnings
    if warned:
        assert "ContrastBolusAgent (0018,0010) 'Gadovist'" in said[0] and said[0].startswith("T1-pre #9"), said
