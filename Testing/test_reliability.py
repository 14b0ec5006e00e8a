"""The bad-input matrix (issue 7): every unusable input is refused by every public entry point with a message that
names the input and says what was expected, a non-zero exit code from the commands, no partial output and
untouched inputs. Also: atomic outputs when a write crashes, and synthetic labelling of every output.

Entry points: ``read_volume`` (file-level cases), ``preprocess_case`` + ``write_preprocessed``,
``synthesize_to_folder``, ``dcediff preprocess`` and ``dcediff synthesize``. Inputs are tiny synthetic volumes
(48×48×12 voxels of 5×5×4 mm, covering the whole working grid) so the matrix runs in seconds; registration is
skipped (registration accuracy is tested in test_preprocess_realdata.py) and the sampler takes one step. The
model is a small network whose U-Net bottleneck is 20×20: the ``tiny`` preset downsamples once only, so on the
160×160 grid its middle attention spans 80×80 = 6400 positions (over 6 GB of memory and minutes per sampler
step on a CPU). Bad inputs must be refused before any sampling; the matrix checks that too.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.cli import main
from DCEDiffLib.errors import DCEDiffError, InputError
from DCEDiffLib.volume_io import read_volume
from random_model import save_random_model

SIZE = (48, 48, 12)
SPACING = (5.0, 5.0, 4.0)
ORIGIN = tuple(-(n - 1) / 2.0 * s for n, s in zip(SIZE, SPACING))
MODALITIES = ("t2w", "pd", "adc", "t1pre")


# ------------------------------------------------------------------------------------------------ helpers

def volume(key: str, seed: int = 0, dtype=np.float32) -> sitk.Image:
    """A smooth, positive synthetic volume with contrast (different per modality)."""
    rng = np.random.default_rng(seed + MODALITIES.index(key) if key in MODALITIES else seed)
    k, j, i = np.meshgrid(*(np.linspace(-1, 1, n) for n in reversed(SIZE)), indexing="ij")
    blob = np.exp(-((i / 0.5) ** 2 + (j / 0.4) ** 2 + (k / 0.8) ** 2))
    base = {"t2w": 400, "pd": 900, "adc": 1500, "t1pre": 300}.get(key, 500)
    array = base * (0.5 + blob + 0.3 * i * j) + rng.normal(0, base * 0.02, blob.shape)
    image = sitk.GetImageFromArray(np.maximum(array, 1.0).astype(dtype))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    return image


def write(image: sitk.Image, path: Path) -> str:
    sitk.WriteImage(image, str(path))
    return str(path)


def write_dicom_series(image: sitk.Image, folder: Path, series_uid: str, prefix: str = "IM") -> Path:
    """Write a 3D image as a classic one-file-per-slice DICOM series (MR, int16)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    orientation = "\\".join(f"{v:.8f}" for v in np.r_[direction[:, 0], direction[:, 1]])
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetSize()[2]):
        slice_image = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (("0008|0060", "MR"), ("0020|000e", series_uid), ("0020|000d", "1.2.826.0.1.3680043.2.1"),
                           ("0020|0011", series_uid.split(".")[-1]), ("0008|103e", f"test {series_uid[-3:]}"),
                           ("0020|0032", "\\".join(f"{v:.6f}" for v in position)), ("0020|0037", orientation),
                           ("0028|0030", f"{image.GetSpacing()[1]:.6f}\\{image.GetSpacing()[0]:.6f}"),
                           ("0018|0050", f"{image.GetSpacing()[2]:.6f}"), ("0020|0013", str(k + 1)),
                           ("0008|0018", f"{series_uid}.{k + 1}")):
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{k + 1:04d}.dcm"))
        writer.Execute(slice_image)
    return folder


def digest_tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A smaller random-weight model (8 channels, four levels of equal width): quick enough for many runs."""
    return save_random_model(tmp_path_factory.mktemp("model"), inner_channels=8, channel_mults=[1, 1, 1, 1])


@pytest.fixture(scope="module")
def good_case(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    for key in MODALITIES:
        write(volume(key), folder / f"{key}.nii.gz")
    return folder


# ------------------------------------------------------------------------------------------------ the cases
# Each builder gets (tmp, good_case, tiny_model) and returns a dict: inputs (modality → path), options (center,
# model, out), expect (message fragments; None = must succeed), level ("file": read_volume applies too;
# "case"; "synthesize": only the synthesize entry points; "output": the writing entry points).

def _inputs(good: Path, **override) -> dict:
    inputs = {m: str(good / f"{m}.nii.gz") for m in MODALITIES}
    inputs.update({k: str(v) for k, v in override.items()})
    return inputs


def case_missing_file(tmp, good, model):
    return dict(inputs=_inputs(good, t2w=tmp / "nowhere" / "t2w.nii.gz"), level="file",
                expect=["(t2w)", "nowhere", "does not exist", "expected a DICOM series folder or a NIfTI"])


def case_folder_without_dicom(tmp, good, model):
    folder = tmp / "notdicom"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here", encoding="utf-8")
    return dict(inputs=_inputs(good, pd=folder), level="file", expect=["(pd)", "notdicom", "contains no DICOM series"])


def case_folder_with_two_series(tmp, good, model):
    folder = tmp / "two_series"
    write_dicom_series(volume("pd"), folder, "1.2.826.0.1.3680043.2.1.101", prefix="A")
    write_dicom_series(volume("t1pre"), folder, "1.2.826.0.1.3680043.2.1.102", prefix="B")
    return dict(inputs=_inputs(good, pd=folder), level="file",
                expect=["(pd)", "two_series", "holds 2 DICOM series", "expected one series"])


def case_dicom_missing_slice(tmp, good, model):
    folder = write_dicom_series(volume("adc"), tmp / "missing_slice", "1.2.826.0.1.3680043.2.1.103")
    (folder / "IM0006.dcm").unlink()
    return dict(inputs=_inputs(good, adc=folder), level="file",
                expect=["(adc)", "missing_slice", "missing slices", "expected a complete series"])


def case_dicom_duplicated_slice(tmp, good, model):
    folder = write_dicom_series(volume("adc"), tmp / "dup_slice", "1.2.826.0.1.3680043.2.1.104")
    shutil.copy(folder / "IM0006.dcm", folder / "IM0006_copy.dcm")
    return dict(inputs=_inputs(good, adc=folder), level="file",
                expect=["(adc)", "dup_slice", "duplicate slice positions", "one image per slice position"])


def case_not_an_image(tmp, good, model):
    path = tmp / "notes.nii.gz"
    path.write_text("this is not an image", encoding="utf-8")
    return dict(inputs=_inputs(good, t1pre=path), level="file", expect=["(t1pre)", "notes.nii.gz", "not a readable image"])


def case_2d_image(tmp, good, model):
    image = sitk.GetImageFromArray(np.random.default_rng(1).random((40, 40)).astype(np.float32))
    return dict(inputs=_inputs(good, pd=write(image, tmp / "flat.nii.gz")), level="file",
                expect=["(pd)", "flat.nii.gz", "2D image", "expected a 3D volume"])


def case_4d_image(tmp, good, model):
    image = sitk.JoinSeries([volume("pd"), volume("pd", seed=5)])
    return dict(inputs=_inputs(good, pd=write(image, tmp / "series4d.nii.gz")), level="file",
                expect=["(pd)", "series4d.nii.gz", "4D image with 2 volumes", "expected a single 3D volume"])


def case_single_voxel(tmp, good, model):
    image = sitk.Image([1, 1, 1], sitk.sitkFloat32) + 5.0
    return dict(inputs=_inputs(good, t2w=write(image, tmp / "voxel.nii.gz")), level="file",
                expect=["(t2w)", "single voxel", "expected a 3D volume"])


def case_zero_size(tmp, good, model):
    # A MetaImage header with an empty dimension (no data): readers must refuse it, not crash.
    header = tmp / "empty.mha"
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 0 4 4\nElementSpacing = 1 1 1\n"
                      "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n", encoding="utf-8")
    return dict(inputs=_inputs(good, t2w=header), level="file", expect=["(t2w)", "empty.mha"])


def _with_values(key, values_fn, name, tmp, dtype=np.float32):
    image = volume(key)
    array = values_fn(sitk.GetArrayFromImage(image).astype(np.float64)).astype(dtype)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return write(out, tmp / name)


def _one_nan(a):
    a[5, 10, 10] = np.nan
    return a


def case_nan_voxels(tmp, good, model):
    return dict(inputs=_inputs(good, adc=_with_values("adc", _one_nan, "nan.nrrd", tmp)), level="file",
                expect=["(adc)", "nan.nrrd", "NaN or infinite", "expected finite"])


def case_inf_voxels(tmp, good, model):
    def poison(a):
        a[3, 1, 2] = np.inf
        return a
    return dict(inputs=_inputs(good, t1pre=_with_values("t1pre", poison, "inf.mha", tmp)), level="file",
                expect=["(t1pre)", "inf.mha", "NaN or infinite"])


def case_nan_voxels_nifti(tmp, good, model):
    # ITK's NIfTI reader gives NaN voxels as 0: only the file itself shows them
    return dict(inputs=_inputs(good, t2w=_with_values("t2w", _one_nan, "nan.nii.gz", tmp)), level="file",
                expect=["(t2w)", "nan.nii.gz", "NaN or infinite", "expected finite"])


def case_all_nan_nifti_float64(tmp, good, model):
    return dict(inputs=_inputs(good, adc=_with_values("adc", lambda a: np.full_like(a, np.nan), "allnan.nii", tmp,
                                                      np.float64)), level="file",
                expect=["(adc)", "allnan.nii", "NaN or infinite"])


def case_constant_image(tmp, good, model):
    return dict(inputs=_inputs(good, pd=_with_values("pd", lambda a: np.full_like(a, 7.0), "const.nii.gz", tmp)),
                level="file", expect=["(pd)", "const.nii.gz", "is constant", "expected an image with contrast"])


def case_int32_full_range(tmp, good, model):
    def stretch(a):  # the contrast spread over nearly the whole int32 range
        scaled = (a - a.min()) / (a.max() - a.min())
        return np.round(-2147483000.0 + scaled * 4294966000.0)
    return dict(inputs=_inputs(good, pd=_with_values("pd", stretch, "int32.nrrd", tmp, np.int32)), level="file",
                expect=None)


def case_uint16_full_range(tmp, good, model):
    def stretch(a):
        return np.round((a - a.min()) / (a.max() - a.min()) * 65535.0)
    return dict(inputs=_inputs(good, t2w=_with_values("t2w", stretch, "uint16.nii.gz", tmp, np.uint16)), level="file",
                expect=None)


def case_negative_adc(tmp, good, model):
    return dict(inputs=_inputs(good, adc=_with_values("adc", lambda a: a - 1800.0, "neg_adc.nii.gz", tmp)),
                level="case", expect=["(adc)", "negative", "expected an ADC map"])


def case_no_overlap(tmp, good, model):
    image = volume("pd")
    image.SetOrigin(tuple(o + 1000.0 for o in ORIGIN))
    return dict(inputs=_inputs(good, pd=write(image, tmp / "far.nii.gz")), level="case",
                expect=["(pd)", "does not contain the crop centre", "expected series of one exam"])


def case_t1pre_off_the_centre(tmp, good, model):
    # another region (e.g. an abdominal series 150 mm up): refused before registration, which used to end in an
    # ITK error naming no series (the DCE frames are registered through the T1-pre)
    image = volume("t1pre")
    image.SetOrigin(tuple(o + d for o, d in zip(ORIGIN, (0.0, 0.0, 150.0))))
    return dict(inputs=_inputs(good, t1pre=write(image, tmp / "abdomen.nii.gz")), level="case",
                expect=["(t1pre)", "does not contain the crop centre", "--series ROLE=NUMBER"])


def case_spacing_tiny(tmp, good, model):
    image = volume("t1pre")
    image.SetSpacing((0.01, 0.01, 0.01))
    return dict(inputs=_inputs(good, t1pre=write(image, tmp / "tiny_spacing.nii.gz")), level="case",
                expect=["(t1pre)", "0.01", "outside 0.05–20 mm", "plausible voxel sizes"])


def case_spacing_huge(tmp, good, model):
    image = volume("pd")
    image.SetSpacing((50.0, 50.0, 50.0))
    return dict(inputs=_inputs(good, pd=write(image, tmp / "huge_spacing.nii.gz")), level="case",
                expect=["(pd)", "50.0", "outside 0.05–20 mm"])


def case_center_outside(tmp, good, model):
    return dict(inputs=_inputs(good), center=(500.0, 0.0, 0.0), level="case",
                expect=["centre (500.0, 0.0, 0.0)", "outside the T2W field of view", "expected the prostate centre"])


def case_card_wrong_modality_order(tmp, good, model):
    folder = tmp / "model"
    folder.mkdir()
    shutil.copy(model, folder / model.name)
    card = json.loads(model.with_suffix(".json").read_text(encoding="utf-8"))
    card["conditions"] = ["pd", "t2w", "adc", "t1pre"]
    (folder / model.with_suffix(".json").name).write_text(json.dumps(card), encoding="utf-8")
    return dict(inputs=_inputs(good), model=folder / model.name, level="synthesize",
                expect=["model card", "tiny.json", "conditions", "in that order"])


def case_output_under_a_file(tmp, good, model):
    blocker = tmp / "a_file"
    blocker.write_text("I am a file, not a folder", encoding="utf-8")
    return dict(inputs=_inputs(good), out=blocker / "sub", level="output",
                expect=["output folder", str(blocker / "sub"), "expected a writable folder"])


def case_output_exists(tmp, good, model):
    out = tmp / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("user data", encoding="utf-8")
    return dict(inputs=_inputs(good), out=out, level="output", expect=["output folder", "already exists",
                                                                        "--overwrite"])


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}
ENTRY_POINTS = ("read_volume", "preprocess_case", "synthesize_to_folder", "cli_preprocess", "cli_synthesize")
APPLIES = {"file": set(ENTRY_POINTS), "case": set(ENTRY_POINTS) - {"read_volume"},
           "synthesize": {"synthesize_to_folder", "cli_synthesize"}, "output": set(ENTRY_POINTS) - {"read_volume"}}


def _run(entry: str, spec: dict, out: Path, model: Path, capsys):
    """Run one entry point; returns (exit code or None, error message or None)."""
    from DCEDiffLib.pipeline import synthesize_to_folder
    from DCEDiffLib.preprocess import preprocess_case, write_preprocessed

    inputs, center, model = spec["inputs"], spec.get("center"), spec.get("model", model)
    if entry == "read_volume":
        key = next(k for k in MODALITIES if not inputs[k].startswith(str(spec["good"])))
        from DCEDiffLib.preprocess import _name
        try:
            read_volume(inputs[key], name=_name(key))
        except InputError as exc:
            return None, str(exc)
        return None, None
    if entry.startswith("cli_"):
        args = [entry[4:], "--no-register", "--out", str(out)]
        for key in MODALITIES:
            args += [f"--{key}", inputs[key]]
        if center is not None:
            args += ["--center", ",".join(str(c) for c in center)]
        if entry == "cli_synthesize":
            args += ["--model", str(model), "--steps", "1", "--progress-lines"]
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err
        return code, (err if code else None)
    try:
        if entry == "preprocess_case":
            write_preprocessed(preprocess_case(inputs, center_lps=center, register=False), out)
        else:
            synthesize_to_folder(inputs, out, model_path=str(model), steps=1, center_lps=center, register=False)
    except DCEDiffError as exc:
        return None, str(exc)
    return None, None


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_matrix(case, entry, tmp_path, good_case, tiny_model, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    spec = CASES[case](work, good_case, tiny_model)
    spec["good"] = good_case
    if entry not in APPLIES[spec["level"]]:
        pytest.skip(f"{case} does not apply to {entry}")
    if spec["expect"] is not None:  # bad input is refused before any slow work: no registration, no sampling
        import DCEDiffLib.diffusion.synthesis as synthesis
        import DCEDiffLib.registration_schedule as registration_schedule

        def too_late(*args, **kwargs):
            raise AssertionError(f"{case}: slow work started before the bad input was refused")

        monkeypatch.setattr(synthesis, "synthesize_volume", too_late)
        monkeypatch.setattr(registration_schedule, "start_rigid", too_late)
        monkeypatch.setattr(registration_schedule, "start_through", too_late)
    out = spec.get("out", tmp_path / "results" / "out")
    before_inputs = {**digest_tree(good_case), **digest_tree(work)}
    code, message = _run(entry, spec, out, tiny_model, capsys)
    after_inputs = {**digest_tree(good_case), **digest_tree(work)}
    assert after_inputs == before_inputs, "inputs were modified"
    if spec["expect"] is None:  # must work: no silent overflow, sane results
        assert message is None, message
        assert code in (None, 0)
        if entry != "read_volume":
            assert out.is_dir()
            for image in out.glob("*.nii.gz"):
                assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(image)))).all()
        return
    assert message is not None, f"{case} was not refused by {entry}"
    for fragment in spec["expect"]:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    if code is not None:
        assert code == 2
        # one error line; warnings printed before the refusal (e.g. the crop-centre fallback) may precede it
        lines = [line for line in message.strip().splitlines() if not line.startswith("dcediff: warning:")]
        assert len(lines) == 1 and lines[0].startswith(f"dcediff {entry[4:]}: error: "), message
        assert "Traceback" not in message
    if case == "output_exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists(), f"partial output left in {out}"
    parent = out.parent if out.parent.exists() and out.parent.is_dir() else tmp_path
    leftovers = [p for p in parent.iterdir() if "partial" in p.name]
    assert not leftovers, leftovers


def test_dicom_series_can_be_named_in_a_folder_with_two(tmp_path):
    folder = tmp_path / "two"
    write_dicom_series(volume("pd"), folder, "1.2.826.0.1.3680043.2.1.201", prefix="A")
    write_dicom_series(volume("t1pre"), folder, "1.2.826.0.1.3680043.2.1.202", prefix="B")
    image = read_volume(folder, name="PD", series_uid="1.2.826.0.1.3680043.2.1.202")
    expected = sitk.GetArrayFromImage(sitk.Cast(volume("t1pre"), sitk.sitkInt16)).astype(np.float32)
    assert np.array_equal(sitk.GetArrayFromImage(image), expected)
    assert np.allclose(image.GetOrigin(), ORIGIN, atol=1e-4) and np.allclose(image.GetSpacing(), SPACING)


def test_integer_ranges_keep_their_contrast_without_overflow(tmp_path):
    array = np.linspace(-2 ** 31, 2 ** 31 - 1, 48 * 48 * 12).reshape(12, 48, 48).astype(np.int32)
    image = sitk.GetImageFromArray(array)
    loaded = read_volume(write(image, tmp_path / "int32.nrrd"), name="PD")
    values = sitk.GetArrayFromImage(loaded)
    assert values.dtype == np.float32 and values.min() < -2.1e9 and values.max() > 2.1e9
    assert np.all(np.diff(values.ravel()) >= 0)  # monotone: nothing wrapped around
    full = np.round(np.linspace(0, 65535, 48 * 48 * 12)).astype(np.uint16).reshape(12, 48, 48)  # 0 … 65535
    loaded = read_volume(write(sitk.GetImageFromArray(full), tmp_path / "u16.nii.gz"), name="T2W")
    assert sitk.GetArrayFromImage(loaded).max() == 65535.0 and sitk.GetArrayFromImage(loaded).min() == 0.0


# ------------------------------------------------------------------------------------------------ atomic outputs

@pytest.fixture(scope="module")
def synthesis_output(good_case, tiny_model):
    from DCEDiffLib.pipeline import synthesize_case

    inputs = _inputs(good_case)
    return synthesize_case(inputs, model_path=str(tiny_model), steps=2, samples=2, seed=7, register=False)


def test_crash_in_the_middle_of_writing_leaves_nothing(synthesis_output, tmp_path, monkeypatch):
    import DCEDiffLib.volume_io as volume_io
    from DCEDiffLib.pipeline import write_outputs

    real = volume_io.write_volume
    calls = []

    def crashing(image, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:  # a few files are already written: the crash is mid-way
            raise RuntimeError("simulated crash (disk full, power cut)")
        return real(image, path, *args, **kwargs)

    monkeypatch.setattr(volume_io, "write_volume", crashing)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_outputs(synthesis_output, out, t2w_grid=True)
    assert len(calls) == 3
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder or .partial file left


def test_crash_while_writing_one_file_leaves_no_partial_file(tmp_path, monkeypatch):
    from DCEDiffLib.volume_io import write_volume

    def half_write(image, path, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("simulated crash during the write")

    monkeypatch.setattr(sitk, "WriteImage", half_write)
    with pytest.raises(InputError, match="could not be written"):
        write_volume(volume("t2w"), tmp_path / "result.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_every_output_is_labelled_synthetic_with_model_sampler_steps_and_seed(synthesis_output, tmp_path,
                                                                             monkeypatch):
    import DCEDiffLib.evaluation.report_figure as report_figure
    from DCEDiffLib.pipeline import write_outputs

    seen = {}
    real = report_figure.write_report_png

    def spy(path, rows, *args, **kwargs):
        seen["provenance"] = kwargs.get("provenance")
        return real(path, rows, *args, **kwargs)

    monkeypatch.setattr(report_figure, "write_report_png", spy)
    out = write_outputs(synthesis_output, tmp_path / "out", t2w_grid=True)
    expected = ["SYNTHETIC", "model tiny", "sampler dpmpp", "2 steps", "seed 7"]
    compact = ["SYNTHETIC", "model=tiny", "sampler=dpmpp", "steps=2", "seed=7"]
    images = sorted(out.rglob("*.nii.gz"))
    assert len(images) == 8  # synthetic + uncertainty, early + late, working grid + T2W grid
    for path in images:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        descrip = reader.GetMetaData("descrip")
        for fragment in compact:
            assert fragment in descrip, (path, descrip)
    side = json.loads((out / "synthesis.json").read_text(encoding="utf-8"))
    assert side["provenance"]["synthetic"] is True
    assert {k: side["provenance"][k] for k in ("model", "sampler", "steps", "seed")} == \
        {"model": "tiny", "sampler": "dpmpp", "steps": 2, "seed": 7}
    for fragment in expected:
        assert fragment in side["label"]
        assert fragment in seen["provenance"]
    assert (out / "report.png").stat().st_size > 10_000


def test_overwrite_replaces_an_existing_folder_whole(synthesis_output, tmp_path):
    from DCEDiffLib.pipeline import write_outputs

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old result", encoding="utf-8")
    # a user's folder is never replaced
    with pytest.raises(InputError, match="was not written by this kind of DCEDiff command"):
        write_outputs(synthesis_output, out, overwrite=True, report=False)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    (out / "synthesis.json").write_text("{}", encoding="utf-8")  # an earlier DCEDiff result is
    write_outputs(synthesis_output, out, overwrite=True, report=False)
    names = {p.name for p in out.iterdir()}
    assert "old.txt" not in names and "synthetic_early.nii.gz" in names
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_reading_never_modifies_the_callers_image():
    image = volume("pd", dtype=np.int16)
    before = sitk.GetArrayFromImage(image).copy()
    loaded = read_volume(image, name="PD")
    sitk.GetArrayViewFromImage(loaded)
    loaded[0, 0, 0] = -5.0
    assert image.GetPixelID() == sitk.sitkInt16 and np.array_equal(sitk.GetArrayFromImage(image), before)



def test_nifti_label_keeps_model_sampler_steps_and_seed_even_for_a_long_model_name():
    from DCEDiffLib.pipeline import provenance_descrip

    text = provenance_descrip({"model": "a-very-long-model-name-from-a-hyperparameter-sweep-run-0042-ema",
                               "sampler": "ddpm", "steps": 1000, "seed": 123456})
    assert len(text.encode("utf-8")) <= 79 and text.startswith("SYNTHETIC")
    assert "sampler=ddpm steps=1000 seed=123456" in text and "model=a-very" in text


def _dicom_slices(folder: Path, z_positions, spacing=(0.8, 0.8), size=(12, 10), uid="1.2.826.0.1.3680043.2.1.901",
                  x_positions=None, orientations=None):
    """One DICOM file per slice (MR, int16), axial unless ``orientations`` gives each slice's six
    ImageOrientationPatient values, at the given z positions (mm) and x positions (default 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    rng = np.random.default_rng(0)
    for k, z in enumerate(z_positions):
        image = sitk.GetImageFromArray(rng.integers(10, 1000, size=(size[1], size[0])).astype(np.int16))
        image.SetSpacing(spacing)
        for tag, value in (("0008|0060", "MR"), ("0020|000e", uid), ("0020|000d", "1.2.826.0.1.3680043.2.1"),
                           ("0020|0011", "7"), ("0008|103e", "test"),
                           ("0020|0032", f"{0.0 if x_positions is None else x_positions[k]:.6f}\\0\\{z:.6f}"),
                           ("0020|0037", "1\\0\\0\\0\\1\\0" if orientations is None
                            else "\\".join(f"{v:.8f}" for v in orientations[k])),
                           ("0028|0030", f"{spacing[1]}\\{spacing[0]}"),
                           ("0018|0050", "3"), ("0020|0013", str(k + 1)), ("0008|0018", f"{uid}.{k + 1}")):
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{k + 1:04d}.dcm"))
        writer.Execute(image)
    return folder


def test_unevenly_spaced_slices_are_not_called_missing(tmp_path):
    """read_dicom_series names 'missing slices' only when the big gaps are whole multiples of an otherwise regular
    spacing; one slice moved 0.5 mm (gaps 3, …, 2.5, 3.5, 3) is an uneven stack, and a gap that is too small
    cannot be a missing slice."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.volume_io import read_volume

    folder = _dicom_slices(tmp_path / "uneven", [0.0, 3.0, 6.0, 9.0, 12.0, 14.5, 18.0, 21.0])
    with pytest.raises(InputError, match="unevenly spaced slices"):
        read_volume(folder, name="ADC")
    gap = _dicom_slices(tmp_path / "gap", [0.0, 3.0, 6.0, 12.0, 15.0, 18.0])  # one slice (9 mm) missing
    with pytest.raises(InputError, match="missing slices"):
        read_volume(gap, name="ADC")


def test_a_slice_displaced_beyond_the_rounding_tolerance_is_refused_and_rounding_is_not(tmp_path):
    """volume_io: slice positions may differ from a regular stack only by the rounding of the position tags, 0.01 mm
    or 1 % of the slice spacing (0.03 mm for 3 mm slices). A slice 0.1 mm off (gaps 3, 3, 3.1, 2.9, 3) is an uneven
    stack and refused; 0.005 mm of rounding is read as a regular 3 mm stack."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.volume_io import read_volume

    folder = _dicom_slices(tmp_path / "shifted", [0.0, 3.0, 6.0, 9.1, 12.0, 15.0])
    with pytest.raises(InputError, match="unevenly spaced slices"):
        read_volume(folder, name="ADC")
    rounded = read_volume(_dicom_slices(tmp_path / "rounded", [0.0, 3.0, 6.005, 9.0, 12.0, 15.0]), name="ADC")
    assert rounded.GetSize()[2] == 6 and abs(rounded.GetSpacing()[2] - 3.0) < 0.01


def test_a_sheared_slice_stack_is_refused(tmp_path):
    """read_dicom_series refuses 'slices not stacked along their normal': axial slices 3 mm apart whose positions
    also step 0.5 mm to the side (a tilted or sheared stack) cannot be one regular volume of those axial slices."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.volume_io import read_volume

    z = [0.0, 3.0, 6.0, 9.0, 12.0]
    folder = _dicom_slices(tmp_path / "sheared", z, x_positions=[0.5 * k for k in range(5)])
    with pytest.raises(InputError, match="not stacked along the slice normal"):
        read_volume(folder, name="ADC")
    straight = read_volume(_dicom_slices(tmp_path / "straight", z, x_positions=[0.5] * 5), name="ADC")
    assert straight.GetSize()[2] == 5 and straight.GetOrigin()[0] == pytest.approx(0.5)


def test_a_nifti_description_is_cut_on_a_character_boundary(tmp_path):
    """write_volume: the NIfTI descrip field holds 79 bytes; a longer UTF-8 description is cut 'on a character
    boundary'. 78 ASCII characters then 'é' (2 bytes): the field must hold exactly the 78 characters, valid UTF-8,
    with no replacement character or half a character."""
    from DCEDiffLib.volume_io import write_volume

    image = sitk.GetImageFromArray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    path = write_volume(image, tmp_path / "d.nii", {"description": "a" * 78 + "é and more"}, compress=False)
    field = path.read_bytes()[148:228].split(b"\0")[0]
    assert field.decode("utf-8") == "a" * 78
