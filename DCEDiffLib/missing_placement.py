"""A NIfTI or NRRD file that stores no placement (no position or orientation in the scanner's frame).

A NIfTI whose qform_code and sform_code are both 0 (nibabel's ``Nifti1Image(data, None)``, some Analyze-era tools)
or a NRRD without ``space directions`` (a hand-written header, a converter that dropped it) is read by ITK at origin
0 with identity axes. Such a series lines up with the others only if they were all saved on one grid the same way;
otherwise it lies metres off, and the run ended in a refusal blaming a wrong series ("the field of view does not
contain the crop centre") or, with the centre inside by chance, in a registration from a meaningless start. This
names the file and the missing fields before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from DCEDiffLib.nifti_nonfinite import is_nifti, read_header, transform_codes
from DCEDiffLib.nrrd_header import read_nrrd_header


def _nifti_has_no_placement(path: Path) -> bool:
    header = read_header(path)
    codes = transform_codes(header) if header is not None else None
    return codes is not None and codes[0] <= 0 and codes[1] <= 0


def _nrrd_has_no_placement(path: Path) -> bool:
    try:
        header = read_nrrd_header(path)
    except OSError:
        return False
    # a header cut at HEADER_LIMIT may hold them further on (ITK reads them there): no warning rather than a false one
    return header is not None and not header.cut and "space directions" not in header.fields


def missing_placement(path) -> Optional[str]:
    """Words for a NIfTI (both transform codes 0) or NRRD (no ``space directions``) file that stores no placement;
    None for any other file or one that this cannot read."""
    path = Path(path)
    if is_nifti(path) and _nifti_has_no_placement(path):
        what = "its NIfTI qform_code and sform_code are both 0"
    elif path.name.lower().endswith((".nrrd", ".nhdr")) and _nrrd_has_no_placement(path):
        what = "its NRRD header has no 'space directions'"
    else:
        return None
    return (f"{path.name} stores no position or orientation ({what}): it is read at origin 0 with identity axes, "
            "so it lines up with the other series only if they were all saved on one grid the same way. Expected "
            "the scanner geometry: convert the DICOM series again (dcm2niix, 3D Slicer) or keep its header's "
            "placement")
