"""Real-anatomy templates: label maps derived from real exams, placed into a phantom patient by a random warp.

A template (``Resources/Anatomy/<name>_labels.nii.gz``, legend :data:`~DCEDiffLib.phantom.anatomy.LABEL_LEGEND`,
derived by ``scripts/derive_anatomy_templates.py``) is turned into signed distance maps of a few *structures*
(unions of labels: body, muscle, gland, ...). A :class:`TemplateWarp` maps the phantom's local coordinates (mm,
LPS axes, origin at the gland centre, see :mod:`~DCEDiffLib.phantom.anatomy`) into the template: a random affine
(scale, rotation, translation about the template's gland centre) plus a smooth random elastic displacement, all
drawn from the case's random generator. A :class:`TemplateShape` is one structure seen through the warp, so the
rasteriser and the lesion placement treat it like the analytic shapes.

The distance maps are sampled with ``torch.nn.functional.grid_sample`` (all structures in one call; ``torch`` is
imported only when a template is used). Outside the template's field of view (the real exams' fields of view cut
through the body, and the phantom's DCE field of view is larger) the anatomy is mirrored at the border: continuing
the border values instead drew long streaks across the wide DCE and PD fields of view.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.errors import InputError
from DCEDiffLib.phantom.anatomy import INF, LABEL_LEGEND, Shape

TEMPLATE_NAMES = ("prostatex_0000", "prostatex_0001")

# structure → labels it unites (the rasteriser paints them in the order the anatomy lists its layers)
STRUCTURES: Dict[str, Tuple[str, ...]] = {
    "body": tuple(name for name in LABEL_LEGEND if name != "background"),
    "muscle": ("muscle",),
    "bone": ("bone",),
    "vessel": ("vessel",),
    "bladder": ("bladder",),
    "rectum": ("rectum",),
    "seminal_vesicle": ("seminal_vesicle",),
    "gland": ("peripheral_zone", "transition_zone", "lesion", "anterior_fibromuscular_stroma"),
    "transition_zone": ("transition_zone",),
}
FAR_MM = 50.0  # distances are clipped here (only the neighbourhood of a surface matters)


def templates_dir() -> Path:
    """``DCEDiffLib/_resources/Anatomy`` in an installed wheel, else ``Resources/Anatomy`` of the repository (or the
    Slicer extension), as for the shipped models (:mod:`DCEDiffLib.model_registry`)."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_resources" / "Anatomy"
    if packaged.is_dir():
        return packaged
    return package.parent / "Resources" / "Anatomy"


def template_path(name: str) -> Path:
    """The label-map file of template ``name``; InputError for an unknown name or a missing file."""
    if name not in TEMPLATE_NAMES:
        raise InputError(f"anatomy template {name!r}: expected one of {', '.join(TEMPLATE_NAMES)}")
    path = templates_dir() / f"{name}_labels.nii.gz"
    if not path.is_file():
        raise InputError(f"anatomy template {name!r}: {path} is missing (the Resources/Anatomy files are part of the "
                         "package; reinstall it)")
    return path


class AnatomyTemplate:
    """One template: its label map (k, j, i), geometry and (lazily) the signed distance maps of its structures."""

    def __init__(self, name: str, image: sitk.Image):
        self.name = name
        self.labels = sitk.GetArrayFromImage(image).astype(np.uint8)
        self.spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
        self.origin = np.asarray(image.GetOrigin(), dtype=np.float64)
        self.direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
        self._image = image
        self._sdf: Dict[str, np.ndarray] = {}
        self._stack = None
        gland = np.isin(self.labels, [LABEL_LEGEND[n] for n in STRUCTURES["gland"]])
        if not gland.any():
            raise InputError(f"anatomy template {name!r}: no prostate labels")
        self.gland_centre_index = np.argwhere(gland).mean(axis=0)[::-1]          # (i, j, k)
        self.gland_centre_lps = self.index_to_lps(self.gland_centre_index)
        self.present = [s for s, labels in STRUCTURES.items()
                        if np.isin(self.labels, [LABEL_LEGEND[n] for n in labels]).any()]

    def index_to_lps(self, index) -> np.ndarray:
        """LPS mm of continuous index (i, j, k)."""
        return self.origin + self.direction @ (np.asarray(index, dtype=np.float64) * self.spacing)

    def mask(self, structure: str) -> np.ndarray:
        """Boolean (k, j, i) mask of a structure."""
        return np.isin(self.labels, [LABEL_LEGEND[n] for n in STRUCTURES[structure]])

    def sdf(self, structure: str) -> np.ndarray:
        """Signed distance (mm, negative inside, zero half a voxel outside the last inside voxel centre), clipped
        to ±:data:`FAR_MM`; (k, j, i) float32."""
        if structure not in self._sdf:
            mask = self.mask(structure)
            if not mask.any():
                self._sdf[structure] = np.full(self.labels.shape, FAR_MM, dtype=np.float32)
            else:
                # Distance of each outside voxel to the nearest inside voxel centre, and of each inside voxel to
                # the nearest outside one; half a voxel less puts the zero level midway between the two (the
                # surface a partial-volume rendering expects), also across the thick slices.
                outside = self._distance(mask)
                inside = self._distance(~mask)
                half = np.float32(0.5 * self.spacing[:2].mean())
                array = np.where(mask, -(inside - half), outside - half)
                self._sdf[structure] = np.clip(array, -FAR_MM, FAR_MM)
        return self._sdf[structure]

    def _distance(self, mask: np.ndarray) -> np.ndarray:
        """Distance (mm) of every voxel outside ``mask`` to the nearest voxel inside it (0 inside)."""
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.SetSpacing(tuple(self.spacing))
        dist = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True, backgroundValue=0)
        # Maurer's distance is to the object's boundary voxels, i.e. to the nearest inside voxel for outside voxels.
        return np.maximum(sitk.GetArrayFromImage(dist), 0.0).astype(np.float32)

    def stack(self):
        """All structures' distance maps as one torch tensor (1, S, k, j, i) (for :meth:`TemplateWarp.sample`)."""
        if self._stack is None:
            import torch

            self._stack = torch.from_numpy(np.stack([self.sdf(s) for s in STRUCTURES]))[None]
        return self._stack

    def structure_box(self, structure: str) -> Optional[Tuple[np.ndarray, np.ndarray, bool]]:
        """(low, high) index corners (i, j, k) of a structure and whether it touches the field-of-view border."""
        idx = np.argwhere(self.mask(structure))
        if idx.size == 0:
            return None
        lo, hi = idx.min(axis=0)[::-1], idx.max(axis=0)[::-1]
        shape = np.asarray(self.labels.shape)[::-1]
        touches = bool(np.any(lo == 0) or np.any(hi == shape - 1))
        return lo.astype(float), hi.astype(float), touches


@functools.lru_cache(maxsize=None)
def load_template(name: str) -> AnatomyTemplate:
    """The template ``name`` (read once per process; no network)."""
    path = template_path(name)
    try:
        image = sitk.ReadImage(str(path), sitk.sitkUInt8)
    except RuntimeError as exc:
        raise InputError(f"anatomy template {name!r}: cannot read {path}: {exc}") from exc
    return AnatomyTemplate(name, image)


class TemplateWarp:
    """Local phantom coordinates → template: ``p = c + A (x − t) + u(x)``, with c the template's gland centre
    (LPS), A = Rᵀ·diag(1/s) the inverse of a random scaling then rotation, t a translation and u a smooth random
    displacement (a sum of a few cosine waves per component, wavelengths of several centimetres, so the map stays
    one-to-one). Drawn from ``rng``: scale ±``scale`` per axis, rotation ±``rotation_deg`` about each axis,
    translation ±``translation_mm``, displacement of about ``elastic_mm`` (RMS per component)."""

    def __init__(self, template: AnatomyTemplate, rng: np.random.Generator, scale: float = 0.10,
                 rotation_deg: float = 4.0, translation_mm: float = 3.0, elastic_mm: float = 1.5,
                 elastic_length_mm: float = 60.0, modes: int = 4):
        from DCEDiffLib.phantom.anatomy import rotation_matrix

        self.template = template
        self.scale = rng.uniform(1.0 - scale, 1.0 + scale, 3)
        self.rotation_deg = rng.uniform(-rotation_deg, rotation_deg, 3)
        self.translation = rng.uniform(-translation_mm, translation_mm, 3)
        rotation = rotation_matrix(self.rotation_deg)
        self.forward = rotation @ np.diag(self.scale)           # template offsets → local offsets
        self.inverse = np.linalg.inv(self.forward)              # local offsets → template offsets
        self.k = (rng.normal(size=(3, modes, 3)) / elastic_length_mm).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, (3, modes)).astype(np.float32)
        self.amplitude = (rng.uniform(0.5, 1.0, (3, modes)) * elastic_mm * np.sqrt(2.0 / modes)).astype(np.float32)
        self.max_displacement = float(np.abs(self.amplitude).sum(axis=1).max())
        # index = M x + b + N u(x)
        to_index = np.diag(1.0 / template.spacing) @ template.direction.T
        self._m = (to_index @ self.inverse).astype(np.float32)
        self._b = (to_index @ (template.gland_centre_lps - template.origin - self.inverse @ self.translation))
        self._n = to_index.astype(np.float32)

    def displacement(self, x, y, z):
        """The elastic displacement u (template mm, LPS) at local points."""
        out = []
        for c in range(3):
            u = np.zeros(np.broadcast(x, y, z).shape, dtype=np.float32)
            for (kx, ky, kz), ph, a in zip(self.k[c], self.phase[c], self.amplitude[c]):
                u += a * np.cos(kx * x + ky * y + kz * z + ph)
            out.append(u)
        return out

    def index(self, x, y, z):
        """Continuous template index (i, j, k) of local points (float32 arrays)."""
        u = self.displacement(x, y, z)
        m, n, b = self._m, self._n, self._b.astype(np.float32)
        return [m[r, 0] * x + m[r, 1] * y + m[r, 2] * z + b[r] + n[r, 0] * u[0] + n[r, 1] * u[1] + n[r, 2] * u[2]
                for r in range(3)]

    def to_local(self, lps_template) -> np.ndarray:
        """Approximate local point of a template LPS point (the affine part inverted; u is small)."""
        return self.forward @ (np.asarray(lps_template, dtype=np.float64) - self.template.gland_centre_lps) \
            + self.translation

    def sample(self, x, y, z) -> Dict[str, np.ndarray]:
        """Signed distances (mm, local scale) of every structure at local points: {structure: array}."""
        import torch
        import torch.nn.functional as F

        shape = np.broadcast(x, y, z).shape
        x, y, z = (np.broadcast_to(np.asarray(a, dtype=np.float32), shape) for a in (x, y, z))
        idx = self.index(x, y, z)
        size = np.asarray(self.template.labels.shape)[::-1]  # (i, j, k)
        grid = np.stack([idx[a] * np.float32(2.0 / max(size[a] - 1, 1)) - np.float32(1.0) for a in range(3)],
                        axis=-1).reshape(1, 1, 1, -1, 3)
        with torch.no_grad():
            out = F.grid_sample(self.template.stack(), torch.from_numpy(np.ascontiguousarray(grid)),
                                mode="bilinear", padding_mode="reflection", align_corners=True)
        values = out.numpy().reshape(len(STRUCTURES), *shape)
        # Distances are in template mm; the local scale differs by the warp's scaling (mean factor).
        factor = np.float32(np.cbrt(np.prod(self.scale)))
        return {s: values[i] * factor for i, s in enumerate(STRUCTURES)}

    def summary(self) -> Dict[str, object]:
        """case.json description of the warp."""
        return {"scale": [round(float(v), 4) for v in self.scale],
                "rotation_deg": [round(float(v), 3) for v in self.rotation_deg],
                "translation_mm": [round(float(v), 3) for v in self.translation],
                "elastic_max_displacement_mm": round(self.max_displacement, 3),
                "elastic_wave_vectors_per_mm": np.round(self.k, 5).tolist(),
                "elastic_phases": np.round(self.phase, 5).tolist(),
                "elastic_amplitudes_mm": np.round(self.amplitude, 4).tolist()}


class TemplateShape(Shape):
    """One structure of a warped template (shrunk by ``offset`` mm, grown if negative), as a :class:`Shape`.
    The rasteriser samples all structures of the warp at once for the whole grid; :meth:`evaluate` serves the
    point tests of the lesion placement and intersections with analytic shapes (normals by finite differences)."""

    def __init__(self, warp: TemplateWarp, structure: str, offset: float = 0.0):
        if structure not in STRUCTURES:
            raise ValueError(f"template structure {structure!r}: expected one of {', '.join(STRUCTURES)}")
        self.warp, self.structure, self.offset = warp, structure, float(offset)

    def bbox(self):
        box = self.warp.template.structure_box(self.structure)
        if box is None:
            return np.zeros(3), -np.ones(3)  # empty
        lo, hi, touches = box
        if touches:
            return np.full(3, -INF), np.full(3, INF)
        t = self.warp.template
        corners = np.array([t.index_to_lps([a, b, c]) for a in (lo[0] - 1, hi[0] + 1) for b in (lo[1] - 1, hi[1] + 1)
                            for c in (lo[2] - 1, hi[2] + 1)])
        local = np.array([self.warp.to_local(p) for p in corners])
        grow = self.warp.max_displacement * 1.2 + 2.0 + max(-self.offset, 0.0)
        return local.min(axis=0) - grow, local.max(axis=0) + grow

    def evaluate(self, x, y, z):
        h = np.float32(0.5)
        x, y, z = np.broadcast_arrays(*(np.asarray(a, dtype=np.float32) for a in (x, y, z)))
        xs = np.stack([x, x + h, x, x])
        ys = np.stack([y, y, y + h, y])
        zs = np.stack([z, z, z, z + h])
        d = self.warp.sample(xs, ys, zs)[self.structure]
        n = [(d[i] - d[0]) / h for i in (1, 2, 3)]
        norm = np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]) + np.float32(1e-6)
        return d[0] + np.float32(self.offset), (n[0] / norm, n[1] / norm, n[2] / norm)

