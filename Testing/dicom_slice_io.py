"""A test helper: one DICOM slice read with every header tag kept on the image, so that a test can change a few
tags (or the pixels) and write the slice again as a variant of a real export."""
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
