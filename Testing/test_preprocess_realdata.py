"""Engine foundation on real DICOM (issue 2): the ProstateX exams in ../shared/data/prostatex and the phantom.

- every series loads with the geometry its DICOM headers state (the stacked DWI series is refused);
- folders with several series, a missing slice or a duplicated slice are refused with a message naming the folder;
- rigid registration of the real ADC and PD to the real T2W recovers known perturbations (≤ 3°, ≤ 5 mm) with a
  mean error under 1.5 mm in a 40 mm sphere around the gland centre, and keeps the unperturbed series near the
  scanner alignment;
- on the shipped phantom case, registration errors against the true motion recorded in case.json.

The real data are read-only reference files outside the repository; the tests skip when they are absent.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError
from DCEDiffLib.phantom.acquisition import true_series_points
from DCEDiffLib.registration import REGION_RADIUS_MM, register_rigid
from DCEDiffLib.volume_io import read_volume
from DCEDiffLib.working_grid import field_of_view_center
from fixture_cases import VERSION1_PROCEDURAL_CASE as PHANTOM_CASE  # its true motions and bounds below
from prostatex_reference import TAPS_REFERENCE

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "prostatex"
HAVE_DATA = (DATA / "ProstateX-0000").is_dir()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason=f"real ProstateX data not found at {DATA} "
                                                      "(read-only reference data outside the repository)")
SERIES = sorted(str(p.relative_to(DATA)) for p in DATA.glob("ProstateX-*/*") if p.is_dir()) if HAVE_DATA else []
STACKED_DWI = ("ep2ddifftraDYNDIST", "ep2ddifftraDYNDISTMIX")   # several b-values in one series
EXAMS = {  # T2W, ADC, PD of each patient (0001 has two T2W acquisitions; the later one is used)
    "ProstateX-0000": ("4-t2tsetra", "7-ep2ddifftraDYNDISTADC", "9-tfl3d_PD_reftra1.5x1.5t3"),
    "ProstateX-0001": ("10-t2tsetra", "8-ep2ddifftraDYNDISTMIXADC", "11-tfl3d_PD_reftra1.5x1.5t3"),
}
# Fixed rigid perturbations (axis, angle in degrees, translation in mm): within 3° and 5 mm.
PERTURBATIONS = {
    "rot3_shift4": ((0.3, -0.5, 0.8), 3.0, (2.0, -3.0, 1.5)),
    "rot2_shift5": ((1.0, 0.4, -0.2), 2.0, (-3.0, 2.5, -3.0)),
}
RESULTS = {}  # measured errors, printed at the end of the module (pytest -s) for the report


def _header(path: Path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def _floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split("\\")])


# ------------------------------------------------------------------------------------------------ loading

@needs_data
@pytest.mark.parametrize("series", SERIES)
def test_every_series_loads_with_the_geometry_of_its_dicom_headers(series):
    folder = DATA / series
    files = sorted(folder.glob("*.dcm"))
    if Path(series).name.endswith(STACKED_DWI):
        with pytest.raises(InputError, match="duplicate slice positions") as info:
            read_volume(folder, name="DWI")
        assert str(folder) in str(info.value) and f"{len(files)} images" in str(info.value)
        return
    image = read_volume(folder, name=series)
    first = _header(files[0])
    orientation = _floats(first.GetMetaData("0020|0037"))
    pixel_spacing = _floats(first.GetMetaData("0028|0030"))  # row spacing \ column spacing
    rows, columns = int(first.GetMetaData("0028|0010")), int(first.GetMetaData("0028|0011"))
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    normal = np.cross(orientation[:3], orientation[3:])
    assert image.GetSize() == (columns, rows, len(files))
    assert np.allclose(direction[:, 0], orientation[:3], atol=1e-6)
    assert np.allclose(direction[:, 1], orientation[3:], atol=1e-6)
    assert np.allclose(direction[:, 2], normal / np.linalg.norm(normal), atol=1e-6)  # k runs along the normal
    assert np.allclose(image.GetSpacing()[:2], pixel_spacing[::-1], atol=1e-6)
    positions = np.array([_floats(_header(f).GetMetaData("0020|0032")) for f in files])
    along = positions @ direction[:, 2]
    assert np.allclose(image.GetOrigin(), positions[np.argmin(along)], atol=1e-4)  # voxel 0 = lowest slice
    assert image.GetSpacing()[2] == pytest.approx(np.median(np.diff(np.sort(along))), abs=1e-3)
    # the first file's own position is exactly where the image puts its slice
    index = image.TransformPhysicalPointToContinuousIndex(tuple(_floats(first.GetMetaData("0020|0032"))))
    assert np.allclose(index[:2], 0.0, atol=1e-4) and abs(index[2] - round(index[2])) < 1e-3
    assert image.GetPixelID() == sitk.sitkFloat32


@needs_data
def test_a_truncated_slice_file_is_named_where_the_series_misses_a_slice(tmp_path):
    """GDCM drops a truncated slice file without a word: the missing-slice error names it."""
    folder = tmp_path / "t2w"
    shutil.copytree(DATA / "ProstateX-0000" / EXAMS["ProstateX-0000"][0], folder)
    broken = sorted(folder.glob("*.dcm"))[9]
    broken.write_bytes(broken.read_bytes()[:2000])
    with pytest.raises(InputError, match=rf"missing slices .*cannot be read as DICOM.*{broken.name}"):
        read_volume(folder, name="T2W")


@needs_data
def test_a_truncated_slice_file_at_the_end_of_the_stack_is_refused(tmp_path):
    """A truncated first or last slice leaves no gap: the folder's damaged DICOM file is named, not read around."""
    folder = tmp_path / "t2w"
    shutil.copytree(DATA / "ProstateX-0000" / EXAMS["ProstateX-0000"][0], folder)
    files = sorted(folder.glob("*.dcm"), key=lambda f: _floats(_header(f).GetMetaData("0020|0032")) @
                   np.cross(*_floats(_header(f).GetMetaData("0020|0037")).reshape(2, 3)))
    broken = files[-1]
    broken.write_bytes(broken.read_bytes()[:150000])
    with pytest.raises(InputError, match=rf"cannot be read \(truncated or corrupt\): {broken.name}"):
        read_volume(folder, name="T2W")
    (folder / "notes.txt").write_text("not DICOM")  # a file that is not DICOM at all is no slice: left alone
    broken.unlink()
    assert read_volume(folder, name="T2W").GetSize()[2] == len(files) - 1


@needs_data
def test_a_folder_with_two_series_is_refused_unless_one_is_named(tmp_path):
    t2w, adc = DATA / "ProstateX-0000" / EXAMS["ProstateX-0000"][0], DATA / "ProstateX-0000" / EXAMS["ProstateX-0000"][1]
    folder = tmp_path / "mixed"
    folder.mkdir()
    for source, prefix in ((t2w, "t2w_"), (adc, "adc_")):
        for f in source.glob("*.dcm"):
            shutil.copy(f, folder / (prefix + f.name))
    with pytest.raises(InputError) as info:
        read_volume(folder, name="T2W")
    message = str(info.value)
    assert str(folder) in message and "holds 2 DICOM series" in message
    assert "--study FOLDER --series ROLE=NUMBER" in message  # a way that exists: --study reads a folder of series
    uid = _header(next(adc.glob("*.dcm"))).GetMetaData("0020|000e").strip()
    named = read_volume(folder, name="ADC", series_uid=uid)
    direct = read_volume(adc, name="ADC")
    assert named.GetSize() == direct.GetSize() and np.allclose(named.GetOrigin(), direct.GetOrigin())
    assert np.array_equal(sitk.GetArrayViewFromImage(named), sitk.GetArrayViewFromImage(direct))


@needs_data
def test_missing_and_duplicated_slices_are_refused_naming_the_folder(tmp_path):
    source = DATA / "ProstateX-0000" / EXAMS["ProstateX-0000"][1]
    files = sorted(source.glob("*.dcm"), key=lambda f: _floats(_header(f).GetMetaData("0020|0032")) @
                   np.cross(*_floats(_header(f).GetMetaData("0020|0037")).reshape(2, 3)))
    missing = tmp_path / "missing"
    missing.mkdir()
    for f in files[:9] + files[10:]:  # leave out a middle slice
        shutil.copy(f, missing / f.name)
    with pytest.raises(InputError) as info:
        read_volume(missing, name="ADC")
    assert str(missing) in str(info.value) and "missing slices" in str(info.value)
    duplicated = tmp_path / "duplicated"
    shutil.copytree(source, duplicated)
    shutil.copy(files[9], duplicated / ("copy_" + files[9].name))
    with pytest.raises(InputError) as info:
        read_volume(duplicated, name="ADC")
    assert str(duplicated) in str(info.value) and "duplicate slice positions" in str(info.value)


# ------------------------------------------------------------------------------------------------ registration

def _rotation(axis, angle_deg) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    a = np.radians(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def sphere_points(center, radius=REGION_RADIUS_MM, step=4.0) -> np.ndarray:
    grid = np.arange(-radius, radius + 1e-9, step)
    offsets = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    return np.asarray(center) + offsets[np.linalg.norm(offsets, axis=1) <= radius]


def apply(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    return np.array([transform.TransformPoint(tuple(float(v) for v in p)) for p in points])


def perturbed(image: sitk.Image, rotation: np.ndarray, shift, center) -> sitk.Image:
    """The same voxels moved rigidly in physical space by P(x) = R (x - c) + c + t (exactly: origin and
    direction change, the voxel values do not)."""
    moved = sitk.Image(image)
    c = np.asarray(center, dtype=float)
    moved.SetOrigin(tuple(rotation @ (np.asarray(image.GetOrigin()) - c) + c + np.asarray(shift)))
    moved.SetDirection(tuple((rotation @ np.asarray(image.GetDirection()).reshape(3, 3)).ravel()))
    return moved


@pytest.fixture(scope="module")
def exams():
    loaded = {}
    for patient, (t2w, adc, pd) in EXAMS.items():
        fixed = read_volume(DATA / patient / t2w, name="T2W")
        loaded[patient] = {"t2w": fixed, "adc": read_volume(DATA / patient / adc, name="ADC"),
                           "pd": read_volume(DATA / patient / pd, name="PD"), "center": field_of_view_center(fixed)}
    return loaded


@pytest.fixture(scope="module")
def unperturbed(exams):
    """Registration of each unperturbed series (computed once, reused as the reference T0)."""
    return {(p, m): register_rigid(e["t2w"], e[m], m, e["center"]) for p, e in exams.items() for m in ("adc", "pd")}


PD_0001_LIMITATION = pytest.mark.xfail(
    reason="known limitation: the PD reference scan of ProstateX-0001 (tfl3d, strong coil shading, almost no gland "
           "contrast) drifted under intensity MI over every voxel; the guard rejected that and the edge "
           "(gradient-magnitude) retry corrected it by 3.9 mm / 1.3°, beyond this test's 3 mm bound for an "
           "unperturbed series (whether that is the scan's true motion is unknown; see docs/preprocessing.md). "
           "Since the PD's metric takes the exact gradient on a seeded random sample, the intensity registration "
           "is applied, 2.87 mm from the scanner alignment: inside the bound by 0.13 mm only, so the mark stays "
           "(not strict)", strict=False)
CASES = [(p, m) for p in sorted(EXAMS) for m in ("adc", "pd")]
UNPERTURBED_CASES = [pytest.param(p, m, marks=PD_0001_LIMITATION if (p, m) == ("ProstateX-0001", "pd") else ())
                     for p, m in CASES]


@needs_data
@pytest.mark.parametrize("patient, modality", UNPERTURBED_CASES)
def test_unperturbed_series_stay_near_the_scanner_alignment(exams, unperturbed, patient, modality):
    result = unperturbed[(patient, modality)]
    points = sphere_points(exams[patient]["center"])
    displacement = np.linalg.norm(apply(result.transform, points) - points, axis=1)
    RESULTS[f"{patient} {modality} unperturbed: mean |T0 - identity|"] = float(displacement.mean())
    assert displacement.mean() < 3.0, (result.reason, displacement.mean())
    assert result.applied or "implausibly" not in result.reason, result.reason


# Where the prostate model finds each gland: the centre dcediff synthesize registers about.
GLAND_CENTRES = {patient: centre for patient, (_, centre, _) in TAPS_REFERENCE.items()}


@needs_data
@pytest.mark.parametrize("patient", sorted(GLAND_CENTRES))
def test_the_real_pds_self_check_agrees_at_the_gland_centre(exams, patient):
    """The PD as dcediff synthesize registers it (gland centre, self-check on) must pass its own self-check.
    ProstateX-0001's PD reference scan (coil shading, no gland contrast) disagreed by 2.45 mm (tolerance 1.5 mm)
    until the PD's metric took the exact gradient on a seeded random sample (0.67 mm since; ProstateX-0000 0.34 ->
    0.06 mm; docs/preprocessing.md, "The PD on the same set-up")."""
    exam = exams[patient]
    result = register_rigid(exam["t2w"], exam["pd"], "pd", GLAND_CENTRES[patient], check=True)
    RESULTS[f"{patient} pd at the gland centre: self-check disagreement"] = result.self_check["mean_disagreement_mm"]
    assert result.applied, result.reason
    assert result.self_check["agrees"] is True, result.self_check


@needs_data
@pytest.mark.parametrize("perturbation", sorted(PERTURBATIONS))
@pytest.mark.parametrize("patient, modality", CASES)
def test_registration_recovers_known_rigid_perturbations(exams, unperturbed, patient, modality, perturbation):
    exam = exams[patient]
    axis, angle, shift = PERTURBATIONS[perturbation]
    rotation = _rotation(axis, angle)
    moving = perturbed(exam[modality], rotation, shift, exam["center"])
    result = register_rigid(exam["t2w"], moving, modality, exam["center"])
    points = sphere_points(exam["center"])
    c = np.asarray(exam["center"])
    reference = apply(unperturbed[(patient, modality)].transform, points)        # T0(q)
    expected = (reference - c) @ rotation.T + c + np.asarray(shift)             # P(T0(q))
    error = np.linalg.norm(apply(result.transform, points) - expected, axis=1)
    RESULTS[f"{patient} {modality} {perturbation}: mean error"] = float(error.mean())
    assert result.applied, result.reason
    assert error.mean() < 1.5, f"mean error {error.mean():.2f} mm (max {error.max():.2f} mm)"


# ------------------------------------------------------------------------------------------------ phantom

@pytest.fixture(scope="module")
def phantom_case():
    if not (PHANTOM_CASE / "case.json").is_file():
        pytest.skip(f"version-1 phantom test case missing in {PHANTOM_CASE}")
    meta = json.loads((PHANTOM_CASE / "case.json").read_text(encoding="utf-8"))
    images = {m: read_volume(PHANTOM_CASE / f"{m}.nii.gz", name=m) for m in ("t2w", "pd", "adc", "t1pre")}
    return meta, images


# Mean errors over the 40 mm sphere after registration (SimpleITK 2.5, deterministic since issue 16): PD 0.24
# (0.96 before it was registered in a 60 mm sphere, 2026-12-07),
# T1-pre 0.30 and ADC 0.19 mm since their metric takes the exact gradient on a seeded random sample
# (registration.SAMPLED_EXACT_GRADIENT_SERIES; before: T1-pre 1.12, ADC 0.43; T1-pre 1.70 before its optimiser stopped
# at 0.01 mm and lost its translation stage; T1-pre 2.14 and ADC 1.42 before both were registered in an 80 mm
# sphere); doing nothing (the scanner alignment): 1.25, 2.47, 1.79 mm. Every bound lies below the error of doing
# nothing (asserted), so a registration that does nothing fails; the T1-pre's and the ADC's bounds fail the
# registration before the sampled exact gradient.
@pytest.mark.parametrize("modality, limit", [("pd", 0.6), ("t1pre", 0.6), ("adc", 0.3)])
def test_phantom_registration_matches_the_true_motion(phantom_case, modality, limit):
    meta, images = phantom_case
    center = field_of_view_center(images["t2w"])  # what preprocess_case uses by default
    result = register_rigid(images["t2w"], images[modality], modality, center)
    gland = np.asarray(meta["anatomy"]["gland_centre_lps"], dtype=float)
    points = sphere_points(gland)
    truth = true_series_points(meta, modality, points)  # the T1-pre moves with the DCE series
    error = np.linalg.norm(apply(result.transform, points) - truth, axis=1)
    before = np.linalg.norm(points - truth, axis=1)
    RESULTS[f"phantom {modality}: mean error (scanner alignment {before.mean():.2f})"] = float(error.mean())
    assert limit < before.mean(), f"{modality}: bound {limit} mm does not beat doing nothing ({before.mean():.2f} mm)"
    assert error.mean() < limit, f"{modality}: mean error {error.mean():.2f} mm (before {before.mean():.2f} mm)"


def teardown_module(module):
    if RESULTS:
        print("\nregistration errors (mm, mean over the 40 mm sphere):")
        for key, value in RESULTS.items():
            print(f"  {key}: {value:.2f}")
