"""DICOM image files written one slice at a time with SimpleITK (GDCM), each slice placed so that SimpleITK's series
reader stacks the files back onto the volume's own grid (origin, spacing, direction).

Shared by the phantom's exports (:mod:`DCEDiffLib.phantom.dicom_export`, :mod:`DCEDiffLib.phantom.study_export`)
and the results written as DICOM (:mod:`DCEDiffLib.dicom_results`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np
import SimpleITK as sitk

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def ds(value: float, digits: int = 6) -> str:
    """A DICOM decimal string (DS) of ``value`` with at most ``digits`` decimals, trailing zeros dropped."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def slice_geometry_tags(image: sitk.Image, k: int) -> Dict[str, str]:
    """The placement tags of slice ``k`` of the 3D ``image``: ImagePositionPatient, ImageOrientationPatient,
    SliceLocation, PixelSpacing (row spacing first), SliceThickness and SpacingBetweenSlices."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = image.GetSpacing()
    position = image.TransformIndexToPhysicalPoint((0, 0, k))
    return {
        "0020|0032": "\\".join(ds(v, 6) for v in position),
        "0020|0037": "\\".join(ds(v, 8) for v in np.r_[direction[:, 0], direction[:, 1]]),
        "0020|1041": ds(float(np.dot(position, direction[:, 2])), 6),
        "0028|0030": f"{ds(spacing[1], 6)}\\{ds(spacing[0], 6)}",
        "0018|0050": ds(spacing[2], 6),
        "0018|0088": ds(spacing[2], 6),
    }


def write_slice(image: sitk.Image, k: int, tags: Dict[str, str], path: Path,
                writer: Optional[sitk.ImageFileWriter] = None, slice_spacing: bool = False,
                slice_thickness: Optional[str] = None) -> None:
    """Write slice ``k`` of the 3D ``image`` (its pixel type as it is) to ``path`` with ``tags`` ("gggg|eeee" →
    value; the UIDs in them are kept) and :func:`slice_geometry_tags`. Any file name: the DICOM writer is named.

    ``slice_spacing``: the slice goes to GDCM as a one-slice volume, so that SpacingBetweenSlices is the stack's;
    given a 2D slice GDCM writes "1" over the tag (the phantom's files say 1, and stay as they are).
    ``slice_thickness``: SliceThickness as given (a source series' nominal thickness) instead of the spacing."""
    slice_image = image[:, :, k:k + 1] if slice_spacing else image[:, :, k]
    for tag, value in tags.items():
        slice_image.SetMetaData(tag, value)
    for tag, value in slice_geometry_tags(image, k).items():
        slice_image.SetMetaData(tag, value)
    if slice_thickness:
        slice_image.SetMetaData("0018|0050", slice_thickness)
    if writer is None:
        writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")   # a file name without the .dcm extension is DICOM too
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    writer.Execute(slice_image)
