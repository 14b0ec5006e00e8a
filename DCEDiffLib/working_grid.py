"""The working grid the model sees: 160×160×16 voxels of 1.5×1.5×3.0 mm, oriented like the T2W.

Every input is resampled onto it in physical (LPS) space, with its registration transform; results are pasted
back onto any other grid (e.g. the original T2W). Transforms follow the SimpleITK convention: they map a point
of the output grid's space to the input image's space.

Where the source and target lattices coincide (same spacing and direction, origins a whole number of voxels
apart), values are copied, not interpolated, so cropping and pasting back are exact.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.errors import InputError

GRID_SIZE = (160, 160, 16)          # SimpleITK order (i, j, k)
GRID_SPACING = (1.5, 1.5, 3.0)      # mm

INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}
_LATTICE_TOLERANCE = 1e-3           # voxels: origins closer than this to a lattice point coincide
_GEOMETRY_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class WorkingGrid:
    """A 3D voxel grid in LPS mm: ``size`` (i, j, k), ``spacing`` (mm), ``origin`` (centre of voxel 0) and
    ``direction`` (row-major 3×3, columns are the i, j, k axes)."""

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: Tuple[float, ...]

    def reference_image(self, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
        """An all-zero image with this geometry (a resampling reference)."""
        image = sitk.Image([int(s) for s in self.size], pixel_type)
        image.SetSpacing([float(s) for s in self.spacing])
        image.SetOrigin([float(o) for o in self.origin])
        image.SetDirection([float(d) for d in self.direction])
        return image

    @property
    def center_lps(self) -> Tuple[float, float, float]:
        """Physical centre of the grid's voxel box (LPS mm)."""
        matrix = np.asarray(self.direction, dtype=float).reshape(3, 3)
        half = (np.asarray(self.size, dtype=float) - 1.0) / 2.0 * np.asarray(self.spacing, dtype=float)
        return tuple(float(v) for v in np.asarray(self.origin) + matrix @ half)

    @property
    def array_shape(self) -> Tuple[int, int, int]:
        """Shape of a numpy array on this grid, (k, j, i)."""
        return tuple(int(s) for s in reversed(self.size))

    def to_dict(self) -> dict:
        """Plain JSON-ready description (lists of numbers)."""
        return {"size": [int(s) for s in self.size], "spacing": [float(s) for s in self.spacing],
                "origin": [float(o) for o in self.origin], "direction": [float(d) for d in self.direction],
                "center_lps": list(self.center_lps)}

    @classmethod
    def from_dict(cls, data: dict) -> "WorkingGrid":
        """Inverse of :meth:`to_dict` (extra keys such as ``center_lps`` are ignored)."""
        try:
            grid = cls(size=tuple(int(s) for s in data["size"]), spacing=tuple(float(s) for s in data["spacing"]),
                       origin=tuple(float(o) for o in data["origin"]),
                       direction=tuple(float(d) for d in data["direction"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"working grid description {data!r}: expected size, spacing, origin and direction"
                             ) from exc
        if len(grid.size) != 3 or len(grid.spacing) != 3 or len(grid.origin) != 3 or len(grid.direction) != 9:
            raise InputError(f"working grid description {data!r}: expected a 3D grid")
        return grid

    @classmethod
    def from_image(cls, image: sitk.Image) -> "WorkingGrid":
        """The grid of an existing 3D image."""
        return cls(tuple(int(s) for s in image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(o) for o in image.GetOrigin()), tuple(float(d) for d in image.GetDirection()))


def field_of_view_center(image: sitk.Image) -> Tuple[float, float, float]:
    """Physical centre (LPS mm) of an image's voxel box."""
    half = [(s - 1) / 2.0 for s in image.GetSize()]
    return tuple(float(v) for v in image.TransformContinuousIndexToPhysicalPoint(half))


def _inside_box(image: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Boolean per physical point (N×3): inside the image's voxel box (half a voxel beyond the outer centres)."""
    dim = image.GetDimension()
    matrix = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim) @ np.diag(image.GetSpacing())
    index = np.linalg.solve(matrix, (points - np.asarray(image.GetOrigin())).T).T
    size = np.asarray(image.GetSize(), dtype=float)
    return np.all((index >= -0.5) & (index <= size - 0.5), axis=1)


def lps_axis_order(direction: Sequence[float]) -> Tuple[int, int, int]:
    """For each patient axis (x → left, y → posterior, z → superior), the image axis that goes with it: the
    assignment of a 3×3 direction matrix (row-major) with the largest alignment."""
    import itertools

    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    return max(itertools.permutations(range(3)), key=lambda p: sum(abs(matrix[a, p[a]]) for a in range(3)))


def closest_to_lps(direction: Sequence[float]) -> Tuple[float, ...]:
    """``direction`` (a 3×3 direction matrix, row-major) with its axes reordered and their signs flipped so that
    axis i points closest to patient left, j to posterior and k to superior (LPS): the same physical frame, the
    obliquity kept, but axial slices stored as the model was trained on. A T2W stored in another axis order
    (rows reversed, as some converters write it; transposed) or acquired coronal or sagittal gave the model other
    slices (a coronal T2W: 15.9 dB against 29.8 dB for the same exam, without a warning)."""
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    order = lps_axis_order(direction)
    columns = [matrix[:, order[a]] * (1.0 if matrix[a, order[a]] >= 0 else -1.0) for a in range(3)]
    return tuple(float(v) for v in np.stack(columns, axis=1).ravel())


def make_working_grid(t2w: sitk.Image, center_lps: Optional[Sequence[float]] = None,
                      size: Sequence[int] = GRID_SIZE, spacing: Sequence[float] = GRID_SPACING) -> WorkingGrid:
    """The working grid oriented like ``t2w`` (its direction matrix, its axes ordered and signed closest to LPS:
    :func:`closest_to_lps`, so the slices are axial whatever the T2W's storage or plane), centred on
    ``center_lps`` (LPS mm) or, by default, on the T2W field-of-view centre.

    Raises :class:`InputError` if the centre lies outside the T2W field of view or the grid does not overlap
    the T2W at all (a partial overlap is fine; :func:`coverage_fraction` says how much).
    """
    size = tuple(int(s) for s in size)
    spacing = tuple(float(s) for s in spacing)
    if len(size) != 3 or min(size) < 1:
        raise InputError(f"working grid size {size}: expected three positive voxel counts")
    if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise InputError(f"working grid spacing {spacing}: expected three positive millimetre values")
    direction = closest_to_lps(t2w.GetDirection())
    if center_lps is None:
        center = np.asarray(field_of_view_center(t2w))
    else:
        center = np.asarray([float(c) for c in center_lps], dtype=float)
        if center.shape != (3,) or not np.all(np.isfinite(center)):
            raise InputError(f"centre {tuple(center_lps)}: expected three finite LPS millimetre coordinates")
        if not _inside_box(t2w, center[None, :])[0]:
            fov = field_of_view_center(t2w)
            raise InputError(f"centre ({center[0]:.1f}, {center[1]:.1f}, {center[2]:.1f}) LPS mm is outside the "
                             f"T2W field of view (centred at ({fov[0]:.1f}, {fov[1]:.1f}, {fov[2]:.1f})); expected "
                             "the prostate centre, a point inside the T2W volume")
    matrix = np.asarray(direction).reshape(3, 3)
    half = (np.asarray(size, dtype=float) - 1.0) / 2.0 * np.asarray(spacing)
    origin = tuple(float(v) for v in center - matrix @ half)
    grid = WorkingGrid(size, spacing, origin, direction)
    if coverage_fraction(grid, t2w) == 0.0:
        raise InputError("the working grid does not overlap the T2W field of view; expected a centre inside the T2W")
    return grid


def coverage_fraction(grid: WorkingGrid, image: sitk.Image, transform: Optional[sitk.Transform] = None) -> float:
    """Fraction of the grid's voxels that fall inside ``image`` (after ``transform``, grid → image space)."""
    return float(np.mean(coverage_mask(grid, image, transform)))


def coverage_mask(grid: WorkingGrid, image: sitk.Image, transform: Optional[sitk.Transform] = None) -> np.ndarray:
    """Boolean array (k, j, i) on the grid: True where the voxel falls inside ``image``'s field of view."""
    ones = sitk.Image(image.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(image)
    reference = grid.reference_image(sitk.sitkUInt8)
    moved = sitk.Resample(ones, reference, transform or sitk.Transform(3, sitk.sitkIdentity),
                          sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayViewFromImage(moved) > 0


def resample_to_grid(image: sitk.Image, grid: Union[WorkingGrid, sitk.Image], transform: Optional[sitk.Transform] = None,
                     interpolator: str = "linear", default_value: float = 0.0, name: str = "volume",
                     antialias: bool = True) -> sitk.Image:
    """Resample ``image`` onto ``grid`` (a :class:`WorkingGrid` or a reference image) in physical space.

    ``transform`` maps grid points to ``image`` points (a registration result); None means the scanner
    alignment. Returns float32, except that ``nearest`` on an integer image keeps its pixel type (label maps keep
    their values). With ``antialias``, an image finer than the grid is Gaussian-smoothed first so that
    downsampling does not alias. Raises :class:`InputError` if ``image`` does not overlap the grid at all.
    """
    if isinstance(grid, WorkingGrid):
        grid = grid.reference_image()
    if interpolator not in INTERPOLATORS:
        raise InputError(f"interpolator {interpolator!r}: expected one of {', '.join(INTERPOLATORS)}")
    if transform is not None and _is_identity(transform):
        transform = None
    if not np.any(coverage_mask(WorkingGrid.from_image(grid), image, transform)):
        raise InputError(f"volume {name} does not overlap the T2W working grid; expected a volume of the same "
                         "exam (same frame of reference) that covers the prostate")
    return _resample(image, grid, transform, interpolator, default_value, antialias)


def paste_back(image_on_grid: sitk.Image, reference: Union[sitk.Image, WorkingGrid], interpolator: str = "linear",
               default_value: float = 0.0, antialias: bool = True) -> sitk.Image:
    """Resample a working-grid image onto any ``reference`` grid (e.g. the original T2W) in physical space.

    Voxels of ``reference`` outside the working grid get ``default_value``. Exact copy where lattices coincide.
    """
    if isinstance(reference, WorkingGrid):
        reference = reference.reference_image()
    if interpolator not in INTERPOLATORS:
        raise InputError(f"interpolator {interpolator!r}: expected one of {', '.join(INTERPOLATORS)}")
    if not np.any(coverage_mask(WorkingGrid.from_image(reference), image_on_grid)):
        raise InputError("the working-grid image does not overlap the reference grid it is pasted onto; expected "
                         "a reference of the same exam (e.g. the T2W the grid was made from)")
    if _lattice_offset(image_on_grid, reference) is not None:
        return _resample(image_on_grid, reference, None, interpolator, default_value, antialias)
    # The grid's outer faces often lie exactly on the reference's slice planes (16 × 3 mm slices centred in a T2W
    # of 3 mm slices): ITK's inside test then turned on rounding at 1e-9 mm, and an edge slice came out partly
    # filled. Resample from the grid with its edge voxels repeated once, then keep what lies inside its box with a
    # tolerance: an edge slice is filled or empty, whole.
    padded = sitk.ZeroFluxNeumannPad(image_on_grid, [1, 1, 1], [1, 1, 1])
    out = _resample(padded, reference, None, interpolator, default_value, antialias)
    inside = inside_lattice(image_on_grid, reference, EDGE_TOLERANCE_VOXELS)
    if not inside.all():
        values = sitk.GetArrayFromImage(out)
        values[~inside] = default_value
        result = sitk.GetImageFromArray(values)
        result.CopyInformation(out)
        return result
    return out


EDGE_TOLERANCE_VOXELS = 1e-3  # a reference voxel this close to the grid's box (in grid voxels) counts as inside


def inside_lattice(image: sitk.Image, reference: sitk.Image, tolerance: float) -> np.ndarray:
    """(k, j, i) booleans: the voxel centres of ``reference`` inside ``image``'s voxel box (half a voxel beyond its
    outer centres), ``tolerance`` voxels more. Built axis by axis: the index is affine in the reference's."""
    to_index = np.linalg.inv(np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
                             @ np.diag(image.GetSpacing()))
    step = to_index @ np.asarray(reference.GetDirection(), dtype=float).reshape(3, 3) @ np.diag(reference.GetSpacing())
    start = to_index @ (np.asarray(reference.GetOrigin(), dtype=float) - np.asarray(image.GetOrigin(), dtype=float))
    i, j, k = (np.arange(n, dtype=float) for n in reference.GetSize())
    inside = np.ones(tuple(reversed(reference.GetSize())), dtype=bool)
    for axis in range(3):
        index = (start[axis] + step[axis, 2] * k[:, None, None] + step[axis, 1] * j[None, :, None]
                 + step[axis, 0] * i[None, None, :])
        inside &= (index >= -0.5 - tolerance) & (index <= image.GetSize()[axis] - 0.5 + tolerance)
    return inside


def _is_identity(transform: sitk.Transform) -> bool:
    probe = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 100.0, 0.0], [0.0, 0.0, 100.0]])
    try:
        return all(np.allclose(transform.TransformPoint(tuple(p)), p, atol=1e-9) for p in probe)
    except RuntimeError:
        return False


def _output_pixel_type(image: sitk.Image, interpolator: str) -> int:
    integer = image.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
                                     sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64)
    return image.GetPixelID() if integer and interpolator == "nearest" else sitk.sitkFloat32


def _resample(image: sitk.Image, reference: sitk.Image, transform: Optional[sitk.Transform], interpolator: str,
              default_value: float, antialias: bool) -> sitk.Image:
    pixel_type = _output_pixel_type(image, interpolator)
    if transform is None:
        offset = _lattice_offset(image, reference)
        if offset is not None:
            return _copy_on_lattice(image, reference, offset, pixel_type, default_value)
    source = image
    if antialias and interpolator != "nearest":
        source = _antialias(image, reference)
    if pixel_type == sitk.sitkFloat32 and source.GetPixelID() != sitk.sitkFloat32:
        source = sitk.Cast(source, sitk.sitkFloat32)
    return sitk.Resample(source, reference, transform or sitk.Transform(3, sitk.sitkIdentity),
                         INTERPOLATORS[interpolator], float(default_value), pixel_type)


def _lattice_offset(image: sitk.Image, reference: sitk.Image) -> Optional[np.ndarray]:
    """Index of ``reference``'s voxel 0 in ``image`` (i, j, k) if both lattices coincide, else None."""
    if not np.allclose(image.GetSpacing(), reference.GetSpacing(), rtol=_GEOMETRY_TOLERANCE, atol=0):
        return None
    if not np.allclose(image.GetDirection(), reference.GetDirection(), atol=_GEOMETRY_TOLERANCE):
        return None
    matrix = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3) @ np.diag(image.GetSpacing())
    offset = np.linalg.solve(matrix, np.asarray(reference.GetOrigin()) - np.asarray(image.GetOrigin()))
    whole = np.round(offset)
    if np.max(np.abs(offset - whole)) > _LATTICE_TOLERANCE:
        return None
    return whole.astype(int)


def _copy_on_lattice(image: sitk.Image, reference: sitk.Image, offset: np.ndarray, pixel_type: int,
                     default_value: float) -> sitk.Image:
    """Copy voxel values between coinciding lattices (no interpolation): bit-exact crops and paste-backs."""
    source = sitk.GetArrayViewFromImage(image)
    dtype = np.float32 if pixel_type == sitk.sitkFloat32 else source.dtype
    out = np.full(tuple(reversed(reference.GetSize())), default_value, dtype=dtype)
    dst_slices, src_slices = [], []
    for axis in range(3):  # i, j, k
        lo = max(0, -offset[axis])
        hi = min(reference.GetSize()[axis], image.GetSize()[axis] - offset[axis])
        if hi <= lo:
            result = sitk.GetImageFromArray(out)
            result.CopyInformation(reference)
            return result
        dst_slices.append(slice(lo, hi))
        src_slices.append(slice(lo + offset[axis], hi + offset[axis]))
    out[tuple(reversed(dst_slices))] = source[tuple(reversed(src_slices))]
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(reference)
    return result


def _antialias(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Gaussian-smooth ``image`` along the axes where it is finer than ``reference`` (FWHM ≈ target spacing)."""
    image_axes = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    ref_axes = np.asarray(reference.GetDirection(), dtype=float).reshape(3, 3)
    ref_spacing = np.asarray(reference.GetSpacing(), dtype=float)
    result = image
    for axis in range(3):
        # Reference spacing seen along this image axis (exact when the axes are aligned).
        target = float(np.abs(image_axes[:, axis] @ ref_axes) @ ref_spacing)
        own = image.GetSpacing()[axis]
        if target <= own * 1.01 or image.GetSize()[axis] < 4:
            continue
        sigma = np.sqrt(target ** 2 - own ** 2) / 2.3548
        smoother = sitk.RecursiveGaussianImageFilter()
        smoother.SetSigma(float(sigma))
        smoother.SetDirection(axis)
        smoother.SetOrder(0)
        if result.GetPixelID() != sitk.sitkFloat32:
            result = sitk.Cast(result, sitk.sitkFloat32)
        result = smoother.Execute(result)
    return result
