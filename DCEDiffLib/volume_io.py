"""Reading and writing volumes: DICOM series folders, NIfTI, NRRD and MHA, with geometry kept exactly.

Images are SimpleITK images in LPS physical space; arrays from them are (k, j, i).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import SimpleITK as sitk

from DCEDiffLib.atomic import atomic_path
from DCEDiffLib.errors import InputError

WRITABLE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def write_volume(image: sitk.Image, path: str | os.PathLike,
                 metadata: Optional[Dict[str, str]] = None, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` atomically (temporary name, then rename), with optional key/value metadata.

    NRRD and MHA store the metadata as key/value fields; NIfTI stores ``metadata['description']`` (if given) in
    its 80-character ``descrip`` header field. Returns the final path.
    """
    path = Path(path)
    if not str(path).endswith(WRITABLE_SUFFIXES):
        raise InputError(f"output file {path}: unsupported extension; expected one of {', '.join(WRITABLE_SUFFIXES)}")
    image = sitk.Image(image)  # never modify the caller's image
    for key, value in (metadata or {}).items():
        if str(path).endswith((".nii", ".nii.gz")):
            if key == "description":
                image.SetMetaData("descrip", str(value)[:79])
        else:
            image.SetMetaData(key, str(value))
    try:
        with atomic_path(path) as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
    except RuntimeError as exc:
        raise InputError(f"output file {path}: could not be written ({str(exc).strip().splitlines()[-1]})") from exc
    return path
