"""``dcediff synthesize --dicom``: the synthetic early/late DCE as DICOM MR series in the T2W's study.

A phantom study (real DICOM files, DCEDiffLib/phantom/study_export.py; its T2W's PatientName rewritten in Latin-1)
goes through ``dcediff synthesize --study ... --dicom --t2w-grid`` with a tiny random-weight model
(Testing/random_model.py); the series are read back with SimpleITK's own series reader:

- one file per T2W slice, read back onto the T2W's grid (corners within 1e-3 mm) with the values of the
  ``t2w_grid/`` NIfTI within half a RescaleSlope;
- the T2W's patient/study/frame-of-reference tags copied (the Latin-1 name decoded, written as UTF-8), new UIDs,
  MR Image Storage (not the Enhanced MR GDCM turns a rescaled MR into unless its reader ran first),
  DERIVED\\SECONDARY\\OTHER, SYNTHETIC description, DCEDiff manufacturer, provenance line, series numbers the study
  does not use;
- synthesis.json and the console summary say what was written;
- put back into the study, the series are skipped by the study reader and refused as inputs;
- ``--dicom`` with a NIfTI T2W is refused before any slow work (before the model or the study is read);
- a DICOM write failing half-way leaves no output folder and no temporary (the failing write is a stand-in: one
  call of ``dicom_results.write_slice`` raises ENOSPC, as a full disk would; root ignores a read-only folder).
"""

import contextlib
import errno
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.cli import main
from DCEDiffLib.data_source import dicom_result_mark
from DCEDiffLib.dicom_results import rescale, series_description, series_numbers
from DCEDiffLib.dicom_slices import MR_IMAGE_STORAGE
from DCEDiffLib.dicom_study import scan_study
from DCEDiffLib.errors import InputError
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.study_export import write_phantom_study
from DCEDiffLib.study_roles import pick_roles
from DCEDiffLib.volume_io import read_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_slice_io import header, read_series, read_slice_with_tags, tag  # noqa: E402
from phantom_frames import fewer_frames  # noqa: E402
from random_model import save_copy_allowing_missing_pd, save_random_model  # noqa: E402

FEW = ("localizer", "t2_sag", "t2_cor", "t2_tra_repeat", "dwi", "calc_bval", "mddw", "adc_hb", "vibe", "t1_post")
COPIED = ("0010|0010", "0010|0020", "0020|000d", "0008|0020", "0008|0030", "0008|1030", "0020|0052")
NAME = "PHANTOM^Müller"


def series_folder(root: Path, number: int) -> Path:
    (folder,) = [p for p in root.iterdir() if p.name.split(".", 1)[0] == str(number)]
    return folder


def latin1_name(folder: Path) -> None:
    """Rewrite the T2W's PatientName as Latin-1 "Müller" (SpecificCharacterSet ISO_IR 100), UIDs kept."""
    for path in sorted(folder.iterdir()):
        image = read_slice_with_tags(path)
        image.SetMetaData("0008|0005", "ISO_IR 100")
        image.SetMetaData("0010|0010", "PHANTOM^MXller")
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(path))
        writer.Execute(image)
        path.write_bytes(path.read_bytes().replace(b"MXller", "Müller".encode("latin-1")))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A phantom study (T2W, ADC, PD, one DCE series with 5 frames) and the series numbers it holds."""
    root = tmp_path_factory.mktemp("exam") / "PHANTOM-3"
    expected = write_phantom_study(fewer_frames(generated_case(3)), root, dce_layout="temporal", omit=FEW)
    latin1_name(series_folder(root, expected["t2w"]))
    return root, expected


@pytest.fixture(scope="module")
def run(study, model, tmp_path_factory):
    """``dcediff synthesize --study ... --dicom --t2w-grid``: (output folder, console stdout)."""
    root, _ = study
    out = tmp_path_factory.mktemp("run") / "R"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["synthesize", "--study", str(root), "--model", str(model), "--steps", "1", "--no-register",
                     "--dicom", "--t2w-grid", "--out", str(out)])
    assert code == 0
    return out, printed.getvalue()


def test_each_series_reads_back_onto_the_t2w_grid_with_the_t2w_grid_values(study, run):
    root, expected = study
    out, _ = run
    t2w = read_series(series_folder(root, expected["t2w"]))
    for short in ("early", "late"):
        folder = out / "dicom" / f"synthetic_{short}"
        assert len(list(folder.iterdir())) == t2w.GetSize()[2]  # one file per slice
        back = read_series(folder)
        assert back.GetSize() == t2w.GetSize()
        corners = [(i, j, k) for i in (0, t2w.GetSize()[0] - 1) for j in (0, t2w.GetSize()[1] - 1)
                   for k in (0, t2w.GetSize()[2] - 1)]
        for corner in corners:
            assert np.allclose(back.TransformIndexToPhysicalPoint(corner), t2w.TransformIndexToPhysicalPoint(corner),
                               atol=1e-3)
        nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "t2w_grid" / f"synthetic_{short}.nii.gz")))
        first = header(sorted(folder.iterdir())[0])
        slope = float(tag(first, "0028|1053"))
        for key in ("0018|0088", "0018|0050"):  # SpacingBetweenSlices; SliceThickness: the T2W's, here its spacing
            assert abs(float(tag(first, key)) - t2w.GetSpacing()[2]) < 1e-3
        assert nifti.max() > 100 * slope  # values that the slope resolves, not a blank image
        assert np.max(np.abs(sitk.GetArrayFromImage(back) - nifti)) <= slope / 2 + 1e-6 * nifti.max()


def test_each_file_joins_the_t2w_study_and_says_it_is_synthetic(study, run):
    root, expected = study
    out, printed = run
    t2w = header(sorted(series_folder(root, expected["t2w"]).iterdir())[0])
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    used = {s.number for s in scan_study(root).series}
    sop_uids = set()
    for name, number in (("synthetic_early", 9001), ("synthetic_late", 9002)):
        record = side["dicom"]["series"][name]
        assert record["folder"] == f"dicom/{name}" and record["series_number"] == number and number not in used
        for path in sorted((out / "dicom" / name).iterdir()):
            reader = header(path)
            for key in COPIED:
                assert tag(reader, key) == tag(t2w, key) if key != "0010|0010" else tag(reader, key) == NAME
            assert tag(reader, "0008|0005") == "ISO_IR 192"
            assert tag(reader, "0008|0016") == MR_IMAGE_STORAGE and tag(reader, "0008|0060") == "MR"
            assert tag(reader, "0008|0008") == "DERIVED\\SECONDARY\\OTHER" and tag(reader, "0028|0301") == "NO"
            description, manufacturer = tag(reader, "0008|103e"), tag(reader, "0008|0070")
            assert description == f"SYNTHETIC {name.split('_')[1]} DCE (DCEDiff)"
            assert manufacturer.startswith("DCEDiff") and dicom_result_mark(description, manufacturer)
            assert tag(reader, "0008|2111") == tag(reader, "0020|4000") == side["label"]
            assert tag(reader, "0020|000e") == record["series_instance_uid"] != tag(t2w, "0020|000e")
            assert tag(reader, "0020|0011") == str(number)
            assert tag(reader, "0008|0023") and tag(reader, "0008|0033")  # ContentDate/Time: now
            sop_uids.add(tag(reader, "0008|0018"))
    assert len(sop_uids) == 2 * read_series(series_folder(root, expected["t2w"])).GetSize()[2]
    assert all(uid.startswith("2.25.") for uid in sop_uids)
    assert side["dicom"]["study_instance_uid"] == tag(t2w, "0020|000d")
    summary = json.loads(printed[printed.index("{"):])
    assert summary["dicom"]["series"] == {"synthetic_early": 9001, "synthetic_late": 9002}
    assert summary["dicom"]["folder"] == str(out / "dicom")


def test_the_series_put_back_into_the_study_are_skipped_and_refused_as_inputs(study, run, model, tmp_path,
                                                                               capsys):
    root, _ = study
    out, _ = run
    before = {role: pick.series.uid for role, pick in pick_roles(scan_study(root)).picks.items()}
    exam = tmp_path / "exam"
    shutil.copytree(root, exam)
    shutil.copytree(out / "dicom", exam / "from_pacs")
    picks = pick_roles(scan_study(exam))
    assert {role: pick.series.uid for role, pick in picks.picks.items()} == before
    written = {info["series_instance_uid"] for info in json.loads(
        (out / "synthesis.json").read_text(encoding="utf-8"))["dicom"]["series"].values()}
    assert {s.uid for s, _ in picks.skipped_series} == written
    with pytest.raises(InputError, match="is a DCEDiff result"):
        read_volume(out / "dicom" / "synthetic_early", name="acquired early DCE")
    refused = tmp_path / "refused"
    assert main(["synthesize", "--study", str(root), "--model", str(model), "--steps", "1", "--no-register",
                 "--dce-early", str(out / "dicom" / "synthetic_early"),
                 "--dce-late", str(out / "dicom" / "synthetic_late"), "--out", str(refused)]) == 2
    assert "is a DCEDiff result" in capsys.readouterr().err and not refused.exists()


def test_dicom_with_a_nifti_t2w_is_refused_before_any_slow_work(tmp_path, capsys):
    """No model is read (a missing --model would be said otherwise), nor the study (a missing --study folder)."""
    files = {}
    for role in ("t2w", "pd", "adc", "t1pre"):
        files[role] = tmp_path / f"{role}.nii.gz"
        sitk.WriteImage(sitk.Image(8, 8, 4, sitk.sitkFloat32) + len(files), str(files[role]))
    t2w = files["t2w"]
    missing_model = str(tmp_path / "no_model.safetensors")
    for extra in ([], ["--study", str(tmp_path / "no_study")]):
        out = tmp_path / "out"
        assert main(["synthesize", *[a for role, path in files.items() for a in (f"--{role}", str(path))],
                     "--model", missing_model, "--dicom", "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert f"--t2w {t2w} is not a DICOM series" in err and "--study EXAM_DIR" in err
        assert "no_model" not in err and "no_study" not in err and not out.exists()


def test_a_dicom_write_failing_half_way_leaves_nothing(study, model, tmp_path, monkeypatch, capsys):
    import DCEDiffLib.dicom_results as dicom_results

    real, calls = dicom_results.write_slice, []

    def full_disk_after_a_while(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 20:  # the late series' files, after the early series was written whole
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(dicom_results, "write_slice", full_disk_after_a_while)
    root, _ = study
    out = tmp_path / "R"
    assert main(["synthesize", "--study", str(root), "--model", str(model), "--steps", "1", "--no-register",
                 "--dicom", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and f"{out}/dicom/synthetic_late/" in err
    assert "synthetic_late" in str(calls[-1]) and any("synthetic_early" in str(p) for p in calls)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no folder, no temporary beside it


def test_mr_image_storage_in_a_process_that_read_no_dicom_before(study, tmp_path):
    """GDCM writes a rescaled MR image as Enhanced MR Image Storage unless its reader has run in the process
    (a process-wide flag): the writer reads the T2W's header first. A fresh process that read no DICOM writes one
    series from a target made by hand."""
    root, expected = study
    t2w_file = sorted(series_folder(root, expected["t2w"]).iterdir())[0]
    script = (
        "import sys, numpy as np, SimpleITK as sitk\n"
        "from pathlib import Path\n"
        "from DCEDiffLib.dicom_results import DicomTarget, write_dicom_results\n"
        "target = DicomTarget(sys.argv[1], {'0020|000d': '1.2.3', '0020|0052': '1.2.4'}, {'early': {\n"
        "    'folder': 'dicom/synthetic_early', 'series_instance_uid': '1.2.5', 'series_number': 9001}})\n"
        "image = sitk.GetImageFromArray(np.linspace(0, 7.5, 4 * 5 * 6).reshape(4, 5, 6).astype(np.float32))\n"
        "write_dicom_results({'early': image}, Path(sys.argv[2]), target, 'SYNTHETIC test')\n")
    done = subprocess.run([sys.executable, "-c", script, str(t2w_file), str(tmp_path)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-800:]
    files = sorted((tmp_path / "dicom" / "synthetic_early").iterdir())
    assert len(files) == 4 and all(tag(header(p), "0008|0016") == MR_IMAGE_STORAGE for p in files)
    back = sitk.GetArrayFromImage(read_series(tmp_path / "dicom" / "synthetic_early"))
    expected_values = np.linspace(0, 7.5, 4 * 5 * 6).reshape(4, 5, 6)
    assert np.max(np.abs(back - expected_values)) <= float(tag(header(files[0]), "0028|1053")) / 2 + 1e-9


def test_series_numbers_and_rescale():
    assert series_numbers([1, 2, 7]) == (9001, 9002)
    assert series_numbers([1, 9001, 12000]) == (12001, 12002)
    stored, slope, signed = rescale(np.array([-2.0, 0.0, 1.0]))
    assert signed and stored.min() >= -32768 and stored.max() <= 32767 and stored[1] == 0  # zero stays zero
    assert abs(stored[0] * float(slope) + 2.0) <= float(slope) / 2 and len(slope) <= 16  # DS: 16 characters
    stored, slope, signed = rescale(np.array([0.0, 3000.0]))
    assert not signed and stored.max() <= 65535 and abs(stored[1] * float(slope) - 3000.0) <= float(slope) / 2
    assert rescale(np.zeros(3))[1] == "1"


def test_the_description_carries_the_warnings_of_the_nifti_descrip(study, model, tmp_path):
    """Without PD (a model that allows it): "SYNTHETIC NO-PD early DCE (DCEDiff)", as the NIfTI descrip's flag; the
    out-of-distribution flag goes first, as in the Slicer module's export."""
    root, _ = study
    out = tmp_path / "R"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["synthesize", "--study", str(root), "--model", str(save_copy_allowing_missing_pd(model)),
                     "--series", "pd=none", "--steps", "1", "--no-register", "--dicom", "--out", str(out)]) == 0
    for short in ("early", "late"):
        first = header(sorted((out / "dicom" / f"synthetic_{short}").iterdir())[0])
        assert tag(first, "0008|103e") == f"SYNTHETIC NO-PD {short} DCE (DCEDiff)"
        assert "made WITHOUT" in tag(first, "0020|4000")
    assert series_description("late", ["OOD-WARNING", "NO-PD"]) == "SYNTHETIC OOD-WARNING NO-PD late DCE (DCEDiff)"


def test_a_t2w_given_as_a_dicom_folder_is_joined_too(study, model, tmp_path):
    """``--t2w FOLDER`` (here beside a --study that supplies the other roles): its own header is copied."""
    root, expected = study
    folder = series_folder(root, expected["t2w"])
    out = tmp_path / "R"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["synthesize", "--study", str(root), "--t2w", str(folder), "--model", str(model), "--steps", "1",
                     "--no-register", "--dicom", "--out", str(out)]) == 0
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert Path(side["dicom"]["t2w_header_from"]).parent == folder
    t2w = header(sorted(folder.iterdir())[0])
    back = header(sorted((out / "dicom" / "synthetic_late").iterdir())[0])
    assert tag(back, "0020|000d") == tag(t2w, "0020|000d") and tag(back, "0020|0011") == "9002"
