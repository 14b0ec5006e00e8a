"""DICOM studies as PACS exports and other sites deliver them, through ``--study`` (DCEDiffLib/dicom_study.py,
study_roles.py): found by a user-perspective hunt on the real ProstateX studies, rebuilt here on a phantom study
written as real DICOM files (no ../shared data needed).

- a series exported twice (the same instances in two folders) is read once, not taken for a broken series;
- an axial T2W that is no single stack (a slice stored twice, a slice of another plane, an enhanced multi-frame
  file) is refused with its reason, not silently replaced by the coronal T2W as if the study had no axial one;
- a description in Latin-1 (SpecificCharacterSet ISO_IR 100, usual at European sites) is decoded, so the study
  listing prints on a strict UTF-8 console and synthesis.json holds valid Unicode;
- slices of different sizes in one series are refused with the file named (not ITK's bare "Size: [...]");
- a series named with --series for a role its header contradicts (a T2W as the ADC) gets a note.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from DCEDiffLib.dicom_study import DicomFile, SeriesInfo, read_study_volume, scan_study
from DCEDiffLib.errors import InputError
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.study_roles import pick_roles
from DCEDiffLib.volume_io import read_volume
from dicom_slice_io import read_slice_with_tags

# one axial T2W (no repeat), a sagittal and a coronal one, ADC, PD, VIBEs: every required role, nothing slow
OMIT = ("localizer", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb", "dce", "t1_post")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "exam"
    expected = write_phantom_study(generated_case(3), root, omit=OMIT)
    return root, expected


def copy_study(study, tmp_path) -> Path:
    root, _ = study
    shutil.copytree(root, tmp_path / "exam")
    return tmp_path / "exam"


def series_folder(root: Path, number: int) -> Path:
    (folder,) = [p for p in root.iterdir() if p.name.split(".", 1)[0] == str(number)]
    return folder


def rewrite(path: Path, target: Path, **tags) -> None:
    """Write the slice ``path`` to ``target`` with its own UIDs and ``tags`` ("gggg|eeee" → value) changed; a
    ``direction`` keyword sets the slice's orientation (the writer takes it from the image, not the tags)."""
    image = read_slice_with_tags(path)
    direction = tags.pop("direction", None)
    if direction is not None:
        image.SetDirection(direction)
        image.EraseMetaData("0020|0037")
    for key, value in tags.items():
        image.SetMetaData(key.replace("_", "|"), value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(target))
    writer.Execute(image)


def test_a_series_exported_twice_is_read_once(study, tmp_path):
    """The same T2W instances (same SOPInstanceUIDs) in a second export folder: one warning naming the repeats, the
    axial T2W picked and read with its own number of slices (before: 2 images per position, so no single volume,
    and the coronal T2W was taken 'as the study has no axial T2W')."""
    root = copy_study(study, tmp_path)
    t2w = study[1]["t2w"]
    shutil.copytree(series_folder(root, t2w), root / "second export" / "T2")
    said = []
    picks = pick_roles(scan_study(root, warn=said.append))
    assert picks.picks["t2w"].series.number == t2w and picks.picks["t2w"].series.orientation == "axial"
    assert len(said) == 1 and "same SOPInstanceUID" in said[0] and "second export" in said[0]
    slices = len(list(series_folder(root, t2w).iterdir()))
    assert read_study_volume(picks.picks["t2w"].volume, "T2W").GetSize()[2] == slices


def test_slices_that_share_one_instance_uid_are_not_taken_for_repeats(study, tmp_path):
    """A tool that writes one SOPInstanceUID into every slice of the T2W: the slices differ in position, so none is a
    repeat: all are kept, no warning, the whole stack read (a slice short would be a silently wrong scan)."""
    root = copy_study(study, tmp_path)
    folder = series_folder(root, study[1]["t2w"])
    for path in sorted(folder.iterdir()):
        rewrite(path, path, **{"0008_0018": "2.25.424242"})
    said = []
    picks = pick_roles(scan_study(root, warn=said.append))
    assert said == [] and picks.picks["t2w"].series.number == study[1]["t2w"]
    assert read_study_volume(picks.picks["t2w"].volume, "T2W").GetSize()[2] == len(list(folder.iterdir()))


@pytest.mark.parametrize("damage", ["slice stored twice", "slice of another plane"])
def test_an_axial_t2w_that_is_no_stack_is_refused_not_replaced_by_another_plane(study, tmp_path, damage):
    """An axial T2W with one slice stored again under a new instance UID, or with one slice turned sagittal: the
    error names the series and what is wrong with it and says the coronal T2W was not taken instead (before: the
    coronal T2W was picked without a word, its rule saying the study had no axial T2W)."""
    root = copy_study(study, tmp_path)
    folder = series_folder(root, study[1]["t2w"])
    files = sorted(folder.iterdir())
    if damage == "slice stored twice":
        rewrite(files[3], folder / "again.dcm", **{"0008_0018": "2.25.1234567890123", "0020_0013": "99"})
    else:
        rewrite(files[3], files[3], direction=(0, 0, 1, 1, 0, 0, 0, 1, 0))
    with pytest.raises(InputError) as raised:
        pick_roles(scan_study(root, warn=lambda message: None))
    message = str(raised.value)
    assert f"the axial T2W #{study[1]['t2w']}" in message and "cannot be read as one volume" in message
    assert ("slice positions" if damage == "slice stored twice" else "mixes slice planes") in message
    assert "not replaced by the coronal T2W" in message and "--series t2w=" in message
    # the user's way out still works: the coronal T2W named on purpose
    coronal = [s for s in scan_study(root, warn=lambda m: None).series if s.orientation == "coronal"][0]
    assert pick_roles(scan_study(root, warn=lambda m: None), {"t2w": coronal.number}).picks["t2w"].series is not None


def test_an_enhanced_multi_frame_t2w_is_named_as_such():
    """A T2W stored as one enhanced (multi-frame) MR file: one position in one file, which the rules take for a
    localizer; the reason says multi-frame and how to give it instead (as a file)."""
    from DCEDiffLib.series_kinds import unusable_axial_t2w

    files = [DicomFile("/none/enhanced.dcm", None, (1, 0, 0, 0, 1, 0), None, None, None, None, None, 1, frames=19)]
    series = SeriesInfo("2.25.4", 4, "t2_tse_tra", "t2_tse_tra", "*tse2d1_25", ("ORIGINAL", "PRIMARY"), "MR", "1.2",
                        "P", "20000101", 160.0, 5660.0, 104.0, "2D", 384, 384, (0.5, 0.5), files, orientation="axial")
    why = unusable_axial_t2w(series)
    assert "enhanced (multi-frame)" in why and "19 frames" in why and "--t2w FILE" in why
    assert "multi-frame (19 frames in a file)" in series.summary()


def test_a_latin1_description_is_decoded_and_prints_on_a_utf8_console(study, tmp_path):
    """A T2W description 't2_tse_tra_Prüfung' stored in Latin-1 (SpecificCharacterSet ISO_IR 100): read as
    'Prüfung' (before: a lone surrogate '\\udcfc', which a strict UTF-8 stdout refused with a traceback while the
    study was listed, and which synthesis.json carried as invalid Unicode)."""
    root = copy_study(study, tmp_path)
    for path in sorted(series_folder(root, study[1]["t2w"]).iterdir()):
        rewrite(path, path, **{"0008_0005": "ISO_IR 100", "0008_103e": "t2_tse_tra_PrXfung"})
        path.write_bytes(path.read_bytes().replace(b"PrXfung", "Prüfung".encode("latin-1")))
    picks = pick_roles(scan_study(root, warn=lambda message: None))
    assert picks.picks["t2w"].series.description == "t2_tse_tra_Prüfung"
    json.dumps(picks.to_dict(), ensure_ascii=False).encode("utf-8")  # valid Unicode throughout
    script = ("import sys; from DCEDiffLib.dicom_study import scan_study; from DCEDiffLib.study_roles import "
              "pick_roles; print(*pick_roles(scan_study(sys.argv[1], warn=print)).lines(), sep='\\n')")
    env = {"PYTHONIOENCODING": "utf-8", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-800:]
    assert "t2_tse_tra_Prüfung" in done.stdout.decode("utf-8")


def test_slices_of_different_sizes_are_refused_naming_the_file(study, tmp_path):
    """One T2W slice cropped to another matrix size: the error says the series mixes slice sizes and names the file
    (before: ITK's bare 'could not be read (Size: [..])')."""
    root = copy_study(study, tmp_path)
    folder = series_folder(root, study[1]["t2w"])
    path = sorted(folder.iterdir())[2]
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    image = reader.Execute()
    cropped = image[: image.GetSize()[0] - 8, :, :]
    for key in reader.GetMetaDataKeys():
        if key not in ("0028|0010", "0028|0011"):
            cropped.SetMetaData(key, reader.GetMetaData(key))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    writer.Execute(cropped)
    with pytest.raises(InputError, match=r"mixes slice sizes: .*" + path.name):
        read_volume(folder, name="T2W")


def test_a_series_named_for_a_role_its_header_contradicts_gets_a_note(study):
    """``--series adc=N`` with N the sagittal T2W (a mistyped number): a note says the header looks like a T2W, as
    ``--adc DIR`` with that folder warns (before: nothing but the out-of-distribution score). The usual picks and a
    fitting override get no such note."""
    root, expected = study
    scanned = scan_study(root, warn=lambda message: None)
    sagittal = [s for s in scanned.series if s.orientation == "sagittal"][0]
    notes = pick_roles(scanned, {"adc": sagittal.number}).notes
    assert any(f"--series adc={sagittal.number}: #{sagittal.number}" in n and "looks like a T2W" in n for n in notes)
    assert not any("looks like" in n for n in pick_roles(scanned).notes)
    assert not any("looks like" in n for n in pick_roles(scanned, {"adc": expected["adc"]}).notes)
