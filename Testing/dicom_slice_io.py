"""Test helpers: one DICOM slice read with every header tag kept on the image, so that a test can change a few
tags (or the pixels) and write the slice again as a variant of a real export; a header, a tag and a series read
back (the tests of the results written as DICOM)."""
from pathlib import Path

import SimpleITK as sitk


def read_slice_with_tags(path: Path) -> sitk.Image:
    """The slice at ``path`` as an image that carries all of the file's header tags as metadata."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    image = reader.Execute()
    for key in reader.GetMetaDataKeys():
        image.SetMetaData(key, reader.GetMetaData(key))
    return image


# How the DCEDiff Slicer module tags a result for Slicer's DICOM export (DCEDiffSlicerLib/scene_io.py
# tag_for_dicom_export), with what Slicer's CreateDICOMSeries adds (ImageType, its default series number 301).
SLICER_EXPORT_TAGS = {"0008|103e": "SYNTHETIC [OOD-WARNING] early DCE (DCEDiff)",
                      "0008|0070": "DCEDiff (SYNTHETIC image, not acquired)",
                      "0008|1090": "DCEDiff model dcediff_cpu_phantom", "0008|0060": "MR",
                      "0008|0008": "ORIGINAL\\PRIMARY\\MPR", "0020|0011": "301"}


def write_retagged_series(paths, folder: Path, tags) -> Path:
    """Copy the DICOM slices ``paths`` into ``folder`` (new) as a series of its own: a new SeriesInstanceUID and
    SOPInstanceUIDs, ``tags`` ("gggg|eeee" → value) set on every file, everything else (study, geometry, times)
    kept. E.g. a series exported from Slicer into the same study, as a PACS gives it back."""
    import uuid

    folder = Path(folder)
    folder.mkdir(parents=True)
    series_uid = f"2.25.{uuid.uuid4().int}"
    for index, path in enumerate(sorted(paths)):
        image = read_slice_with_tags(Path(path))
        for key, value in dict(tags, **{"0020|000e": series_uid, "0008|0018": f"2.25.{uuid.uuid4().int}"}).items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"{index:04d}.dcm"))
        writer.Execute(image)
    return folder


def header(path) -> sitk.ImageFileReader:
    """The header of the DICOM file ``path`` read by GDCM (no pixels)."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def tag(reader: sitk.ImageFileReader, key: str) -> str:
    """The tag ``key`` ("gggg|eeee") of a header read by :func:`header`, stripped; "" when absent."""
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def read_series(folder: Path) -> sitk.Image:
    """The DICOM series in ``folder`` read back with SimpleITK's series reader (its own slice order)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()
