"""The phantom's recorded geometry, as a reader finds it (found by a mutation audit, session 53): an oblique series
exported as DICOM reads back in place, DCE temporal positions run from 1 to N, and each lesion's recorded LPS centre
is where the rasterizer draws it."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.phantom.anatomy import _inside, build_anatomy
from DCEDiffLib.phantom.dicom_export import write_dicom_modality
from shared_phantom_case import generated_case
from DCEDiffLib.phantom.rasterize import Grid, local_mapping
from DCEDiffLib.phantom.tissues import sample_tissues


@pytest.fixture(scope="module")
def dicom_case():
    return generated_case(3)


def _read_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _read_tag(path: Path, tag: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOn()
    reader.ReadImageInformation()
    return reader.GetMetaData(tag).strip()


# ------------------------------------------------------------------------------------------------

def test_a_dicom_exported_oblique_series_reads_back_with_the_same_geometry(dicom_case, tmp_path):
    """The module promises that SimpleITK's ImageSeriesReader reads the series back with the same geometry. The
    phantom's slices are oblique (draw_orientation tilts up to 20 degrees), so a direction written transposed
    (rows instead of columns in ImageOrientationPatient) reads back as another direction."""
    image = dicom_case.images["t2w"]
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    assert not np.allclose(direction, direction.T, atol=1e-3)  # the test only bites on an oblique grid
    folder = write_dicom_modality(image, tmp_path / "t2w", "t2w", dicom_case)
    back = _read_series(folder)
    assert back.GetSize() == image.GetSize()
    assert np.allclose(back.GetDirection(), image.GetDirection(), atol=1e-5)
    assert np.allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-3)
    assert np.allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-4)
    # the far corner lands where the original puts it, too
    corner = [s - 1 for s in image.GetSize()]
    assert np.allclose(back.TransformIndexToPhysicalPoint(corner), image.TransformIndexToPhysicalPoint(corner),
                       atol=1e-2)


def test_dce_series_temporal_position_identifiers_run_from_1_to_n(dicom_case, tmp_path):
    """DICOM Temporal Position Identifier (0020,0100) is 1-based (1 = first temporal position; PS3.3 C.7.6.2) and
    Number of Temporal Positions (0020,0105) is N; the module docstring says TemporalPositionIdentifier 1…N."""
    series = dicom_case.dce_series
    frames = series.GetSize()[3]
    folder = write_dicom_modality(series, tmp_path / "dce_series", "dce_series", dicom_case)
    seen = []
    for f in range(frames):
        files = sorted((folder / f"frame_{f:03d}").glob("*.dcm"))
        assert files, f
        seen.append(int(_read_tag(files[0], "0020|0100")))
        assert int(_read_tag(files[-1], "0020|0105")) == frames
    assert seen == list(range(1, frames + 1))


# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_recorded_lesion_centre_lps_is_the_lesion_centre_as_the_rasterizer_places_it(seed):
    """case.json records each lesion's centre in scanner LPS. Mapping that point to local anatomy coordinates
    with the rasterizer's own convention (rasterize.local_mapping, which is how the label map is drawn) must give
    the recorded local centre, and that local point must lie inside the lesion's shape."""
    rng = np.random.default_rng([seed, 1])
    tissues = sample_tissues(rng)
    anatomy = build_anatomy(rng, tissues, endorectal_coil=False, lesion_count=3)
    rotation = np.asarray(anatomy.rotation)
    assert not np.allclose(rotation, np.eye(3), atol=1e-3)  # a patient rotation is drawn
    assert anatomy.lesions
    shapes = {layer.name: layer.shape for layer in anatomy.layers}
    for lesion in anatomy.lesions:
        point = np.asarray(lesion["centre_lps"], dtype=float)
        grid = Grid((1, 1, 1), (1.0, 1.0, 1.0), tuple(point), ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
        local, _ = local_mapping(grid, anatomy, (np.eye(3), np.zeros(3)))
        assert np.allclose(local, lesion["centre_local_mm"], atol=0.01), (lesion["id"], local)
        assert _inside(shapes[f"lesion_{lesion['id']}"], local), lesion["id"]
