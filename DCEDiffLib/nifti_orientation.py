"""A NIfTI file whose two placements (qform and sform) disagree.

A NIfTI-1 header can place the volume twice: the qform (a rotation, pixel sizes and an offset) and the sform (a
general affine). Registration tools often rewrite one and leave the other, and readers differ in which they trust:
ITK uses the sform when its code is 1 (scanner) and the qform when the sform's code is 2 (aligned to another scan),
nibabel and FSL prefer the sform. A volume read 30 mm away from where the user's viewer shows it gave a synthesis
3 dB worse with no word on the cause. This compares the two placements at the volume's corners and names the one the
image was read with.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.nifti_nonfinite import header_kind, read_header, transform_codes

DISAGREEMENT_MM = 1.0  # corners further apart than this: the two placements are not the same volume position


def _qform(header: bytes, order: str) -> np.ndarray:
    """The qform as a 4×4 RAS affine (NIfTI-1 method 2)."""
    pixdim = struct.unpack(order + "8f", header[76:108])
    b, c, d = struct.unpack(order + "3f", header[256:268])
    offset = struct.unpack(order + "3f", header[268:280])
    a = float(np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d))))
    rotation = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                         [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                         [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([pixdim[1], pixdim[2], qfac * pixdim[3]])
    affine[:3, 3] = offset
    return affine


def _sform(header: bytes, order: str) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :] = np.asarray(struct.unpack(order + "12f", header[280:328]), dtype=float).reshape(3, 4)
    return affine


def _image_affine(image: sitk.Image) -> np.ndarray:
    """The image's index → physical affine in RAS (ITK's geometry is LPS)."""
    dim = 3
    matrix = np.asarray(image.GetDirection(), dtype=float).reshape(image.GetDimension(), -1)[:dim, :dim]
    affine = np.eye(4)
    affine[:3, :3] = matrix @ np.diag(image.GetSpacing()[:dim])
    affine[:3, 3] = image.GetOrigin()[:dim]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def _corner_distance(first: np.ndarray, second: np.ndarray, size) -> float:
    corners = np.array([[i, j, k, 1.0] for i in (0, size[0] - 1) for j in (0, size[1] - 1)
                        for k in (0, size[2] - 1)]).T
    return float(np.max(np.linalg.norm((first @ corners - second @ corners)[:3], axis=0)))


def placement_disagreement(path, image: sitk.Image) -> Optional[str]:
    """Words for a NIfTI-1 file whose qform and sform both place the volume and disagree by more than
    :data:`DISAGREEMENT_MM` at its corners, naming the placement ``image`` was read with; None otherwise (one or no
    placement, NIfTI-2, a header this cannot parse)."""
    path = Path(path)
    header = read_header(path)
    kind = header_kind(header) if header is not None else None
    if kind is None or kind[1] != 348 or len(header) < 348:  # NIfTI-1 only
        return None
    order = kind[0]
    qform_code, sform_code = transform_codes(header)
    if qform_code <= 0 or sform_code <= 0:
        return None
    size = [max(1, int(v)) for v in image.GetSize()[:3]] + [1] * max(0, 3 - image.GetDimension())
    qform, sform = _qform(header, order), _sform(header, order)
    apart = _corner_distance(qform, sform, size)
    if apart <= DISAGREEMENT_MM:
        return None
    used = _image_affine(image)
    which = "sform" if _corner_distance(used, sform, size) < _corner_distance(used, qform, size) else "qform"
    return (f"{path.name}: its NIfTI qform and sform place the volume {apart:.1f} mm apart (codes {qform_code} and "
            f"{sform_code}); it was read with the {which}, as ITK does. Viewers that use the other (nibabel and "
            "FSL prefer the sform) show it elsewhere: check that the synthesis lies where you expect, or fix the "
            "header so both agree")


def placement_not_read(path, image: sitk.Image) -> Optional[str]:
    """Words for a NIfTI-1 file that ``image`` (as ITK read it) lies more than :data:`DISAGREEMENT_MM` from at its
    corners by every placement the header sets (qform, sform): e.g. pixdim 0 or NaN beside a valid sform, where ITK
    takes a 1 mm voxel with the sform's axes, or a NaN quaternion. Such a volume is misplaced and mis-sized, and its
    refusal used to blame a wrong series. None when a placement matches, or none is set (``missing_placement``)."""
    path = Path(path)
    header = read_header(path)
    kind = header_kind(header) if header is not None else None
    if kind is None or kind[1] != 348 or len(header) < 348 or image.GetDimension() < 3:  # NIfTI-1 volumes only
        return None
    order = kind[0]
    qform_code, sform_code = transform_codes(header)
    size = [max(1, int(v)) for v in image.GetSize()[:3]]
    used = _image_affine(image)
    apart = {name: _corner_distance(used, affine, size) for name, code, affine in
             (("sform", sform_code, _sform(header, order)), ("qform", qform_code, _qform(header, order)))
             if code > 0}
    if not apart or any(distance <= DISAGREEMENT_MM for distance in apart.values()):  # NaN: no match
        return None
    pixdim = tuple(round(float(v), 4) for v in struct.unpack(order + "3f", header[80:92]))
    read = tuple(round(float(v), 4) for v in image.GetSpacing()[:3])
    distances = " and ".join(f"{d:.1f} mm from its {name}'s placement" if np.isfinite(d) else
                             f"off its {name}'s placement (the {name} holds NaN)" for name, d in apart.items())
    return (f"{path.name}: its NIfTI header is inconsistent (pixdim 0 or NaN, or a damaged quaternion): the volume "
            f"as read (voxel size {read} mm; header pixdim {pixdim}) lies {distances}; expected pixel sizes and "
            "placements that agree (re-export the file)")
