"""Analytic pelvic anatomy around the prostate: shapes with approximate signed distances, and one case's layout.

Coordinates are *local* millimetres: origin at the gland centre, axes along LPS (x → patient left, y → posterior,
z → superior); :class:`Anatomy` maps them to scanner LPS with the patient's position and small rotation.
Each structure is a :class:`Layer` (a shape painted with a tissue and a label); layers are painted in order, later
ones over earlier ones, so e.g. the gland is drawn over fat and lesions over the gland. Shapes return an
approximate signed distance (mm, negative inside) and its unit normal, which the rasteriser turns into partial
volume at edges without a fine grid.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from DCEDiffLib.phantom.tissues import LESION_KINDS, Tissue, sample_lesion_tissue

LABEL_LEGEND: Dict[str, int] = {
    "background": 0, "fat": 1, "muscle": 2, "bone": 3, "bladder": 4, "rectum": 5, "vessel": 6,
    "peripheral_zone": 7, "transition_zone": 8, "lesion": 9, "seminal_vesicle": 10,
    "anterior_fibromuscular_stroma": 11,
}
INF = 1e9


def rotation_matrix(degrees_xyz: Sequence[float]) -> np.ndarray:
    """Rotation R = Rz·Ry·Rx for angles (degrees) about the x, y and z axes."""
    ax, ay, az = np.deg2rad(degrees_xyz)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


class Shape:
    """A solid with an approximate signed distance (mm, negative inside) and its outward unit normal."""

    def bbox(self) -> Tuple[np.ndarray, np.ndarray]:
        """Conservative local bounding box (low, high corners)."""
        raise NotImplementedError

    def evaluate(self, x, y, z):
        """(signed distance, (nx, ny, nz)) at local points."""
        raise NotImplementedError


class Ellipsoid(Shape):
    """An ellipsoid with semi-axes ``axes`` along the columns of ``rotation``, optionally tapered (wider at +z when
    ``taper`` > 0, like the prostate base) and with smooth random bumps (``bumps``: (wave vectors (M, 3),
    phases (M,), amplitudes (M,)) on the unit sphere, relative to the radius)."""

    def __init__(self, centre, axes, rotation=None, taper: float = 0.0, bumps=None):
        self.centre = np.asarray(centre, dtype=np.float64)
        self.axes = np.asarray(axes, dtype=np.float64)
        self.rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
        self.taper = float(taper)
        self.bumps = bumps
        self._bump_max = float(np.sum(np.abs(bumps[2]))) if bumps is not None else 0.0

    def bbox(self):
        grow = (1.0 + abs(self.taper)) * (1.0 + self._bump_max)
        half = np.abs(self.rotation) @ (self.axes * grow)
        return self.centre - half, self.centre + half

    def evaluate(self, x, y, z):
        dx, dy, dz = x - np.float32(self.centre[0]), y - np.float32(self.centre[1]), z - np.float32(self.centre[2])
        r = self.rotation.astype(np.float32)
        q = [(r[0, j] * dx + r[1, j] * dy + r[2, j] * dz) / np.float32(self.axes[j]) for j in range(3)]
        if self.taper:
            widen = 1.0 + np.float32(self.taper) * np.clip(q[2], -1.0, 1.0)
            q[0] = q[0] / widen
            q[1] = q[1] / widen
        rho = np.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]) + np.float32(1e-6)
        radius = np.float32(1.0)
        if self.bumps is not None:
            k, phase, amp = self.bumps
            bump = np.zeros_like(rho)
            for (kx, ky, kz), ph, a in zip(k.astype(np.float32), phase, amp):
                bump += np.float32(a) * np.cos((kx * q[0] + ky * q[1] + kz * q[2]) / rho + np.float32(ph))
            radius = radius + bump
        scale = np.sqrt(dx * dx + dy * dy + dz * dz) / rho
        scale = np.maximum(scale, np.float32(self.axes.min() * 0.5))
        sdf = (rho - radius) * scale
        g = [q[j] / np.float32(self.axes[j]) for j in range(3)]
        n = [r[i, 0] * g[0] + r[i, 1] * g[1] + r[i, 2] * g[2] for i in range(3)]
        norm = np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]) + np.float32(1e-9)
        return sdf, (n[0] / norm, n[1] / norm, n[2] / norm)


class EllipticCylinder(Shape):
    """An elliptic cylinder along local z (body outline, big muscles, the levator sling), its cross-section
    rotated by ``angle_deg`` about z, with angular bumps r(θ) = 1 + Σ aₘ cos(mθ + φₘ) (``bumps``: (m, a, φ)).
    Cheaper than an ellipsoid: the bumps are polynomials of the in-plane direction, no trigonometry per voxel."""

    def __init__(self, centre_xy, axes, angle_deg: float = 0.0, bumps: Sequence[Tuple[int, float, float]] = ()):
        self.centre = np.asarray(centre_xy, dtype=np.float64)
        self.axes = np.asarray(axes, dtype=np.float64)
        self.angle = np.deg2rad(angle_deg)
        self.bumps = list(bumps)
        self._grow = 1.0 + sum(abs(a) for _, a, _ in self.bumps)

    def bbox(self):
        c, s = abs(np.cos(self.angle)), abs(np.sin(self.angle))
        half = np.array([c * self.axes[0] + s * self.axes[1], s * self.axes[0] + c * self.axes[1]]) * self._grow
        return np.r_[self.centre - half, -INF], np.r_[self.centre + half, INF]

    def evaluate(self, x, y, z):
        c, s = np.float32(np.cos(self.angle)), np.float32(np.sin(self.angle))
        dx, dy = x - np.float32(self.centre[0]), y - np.float32(self.centre[1])
        qx = (c * dx + s * dy) / np.float32(self.axes[0])
        qy = (c * dy - s * dx) / np.float32(self.axes[1])
        rho = np.sqrt(qx * qx + qy * qy) + np.float32(1e-6)
        radius = np.float32(1.0)
        if self.bumps:
            ex, ey = qx / rho, qy / rho
            re, im = ex, ey
            power = 1
            bump = np.zeros_like(rho)
            for m, a, ph in sorted(self.bumps):
                while power < m:  # (ex + i·ey)^m without trigonometry
                    re, im = re * ex - im * ey, re * ey + im * ex
                    power += 1
                bump += np.float32(a * np.cos(ph)) * re - np.float32(a * np.sin(ph)) * im
            radius = radius + bump
        scale = np.maximum(np.sqrt(dx * dx + dy * dy) / rho, np.float32(self.axes.min() * 0.5))
        sdf = (rho - radius) * scale
        gx, gy = qx / np.float32(self.axes[0]), qy / np.float32(self.axes[1])
        nx, ny = c * gx - s * gy, s * gx + c * gy
        norm = np.sqrt(nx * nx + ny * ny) + np.float32(1e-9)
        return sdf, (nx / norm, ny / norm, np.zeros_like(sdf))


class Capsule(Shape):
    """A tube of radius ``radius`` around the segment p0–p1 with rounded ends (vessels, femoral neck)."""

    def __init__(self, p0, p1, radius: float):
        self.p0 = np.asarray(p0, dtype=np.float64)
        self.p1 = np.asarray(p1, dtype=np.float64)
        self.radius = float(radius)

    def bbox(self):
        return np.minimum(self.p0, self.p1) - self.radius, np.maximum(self.p0, self.p1) + self.radius

    def evaluate(self, x, y, z):
        a = self.p0.astype(np.float32)
        d = (self.p1 - self.p0).astype(np.float32)
        dd = np.float32(max(float(d @ d), 1e-9))
        vx, vy, vz = x - a[0], y - a[1], z - a[2]
        t = np.clip((vx * d[0] + vy * d[1] + vz * d[2]) / dd, 0.0, 1.0)
        vx, vy, vz = vx - t * d[0], vy - t * d[1], vz - t * d[2]
        dist = np.sqrt(vx * vx + vy * vy + vz * vz) + np.float32(1e-6)
        return dist - np.float32(self.radius), (vx / dist, vy / dist, vz / dist)


class HalfSpace(Shape):
    """Points on the side of the plane through ``point`` opposite to the unit ``normal``."""

    def __init__(self, point, normal):
        self.point = np.asarray(point, dtype=np.float64)
        n = np.asarray(normal, dtype=np.float64)
        self.normal = n / np.linalg.norm(n)

    def bbox(self):
        return np.full(3, -INF), np.full(3, INF)

    def evaluate(self, x, y, z):
        n = self.normal.astype(np.float32)
        sdf = (x - np.float32(self.point[0])) * n[0] + (y - np.float32(self.point[1])) * n[1] \
            + (z - np.float32(self.point[2])) * n[2]
        ones = np.ones_like(sdf)
        return sdf, (ones * n[0], ones * n[1], ones * n[2])


class Offset(Shape):
    """``shape`` shrunk by ``distance`` mm (grown if negative)."""

    def __init__(self, shape: Shape, distance: float):
        self.shape, self.distance = shape, float(distance)

    def bbox(self):
        lo, hi = self.shape.bbox()
        grow = max(-self.distance, 0.0)
        return lo - grow, hi + grow

    def evaluate(self, x, y, z):
        sdf, n = self.shape.evaluate(x, y, z)
        return sdf + np.float32(self.distance), n


class Shell(Shape):
    """A layer of ``thickness`` mm centred on the surface of ``shape``."""

    def __init__(self, shape: Shape, thickness: float):
        self.shape, self.thickness = shape, float(thickness)

    def bbox(self):
        lo, hi = self.shape.bbox()
        return lo - self.thickness, hi + self.thickness

    def evaluate(self, x, y, z):
        sdf, n = self.shape.evaluate(x, y, z)
        sign = np.where(sdf >= 0, np.float32(1.0), np.float32(-1.0))
        return np.abs(sdf) - np.float32(self.thickness / 2), (n[0] * sign, n[1] * sign, n[2] * sign)


class Affine(Shape):
    """``shape`` deformed by the linear map ``matrix`` about ``centre`` (e.g. a gland compressed by an endorectal
    balloon). The signed distance is rescaled along the normal, which is exact for uniform scaling and close
    for mild anisotropy."""

    def __init__(self, shape: Shape, matrix, centre=(0.0, 0.0, 0.0)):
        self.shape = shape
        self.matrix = np.asarray(matrix, dtype=np.float64)
        self.inverse = np.linalg.inv(self.matrix)
        self.centre = np.asarray(centre, dtype=np.float64)

    def bbox(self):
        lo, hi = self.shape.bbox()
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        mapped = (corners - self.centre) @ self.matrix.T + self.centre
        return mapped.min(axis=0), mapped.max(axis=0)

    def evaluate(self, x, y, z):
        inv = self.inverse.astype(np.float32)
        c = self.centre.astype(np.float32)
        d = (x - c[0], y - c[1], z - c[2])
        q = [inv[i, 0] * d[0] + inv[i, 1] * d[1] + inv[i, 2] * d[2] + c[i] for i in range(3)]
        sdf, n = self.shape.evaluate(*q)
        # Normals transform with the inverse transpose; the distance scales with its length.
        m = [inv[0, i] * n[0] + inv[1, i] * n[1] + inv[2, i] * n[2] for i in range(3)]
        length = np.sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]) + np.float32(1e-9)
        return sdf / length, (m[0] / length, m[1] / length, m[2] / length)


class Intersection(Shape):
    """Points inside every shape (the normal is that of the shape whose surface is nearest)."""

    def __init__(self, *shapes: Shape):
        self.shapes = shapes

    def bbox(self):
        boxes = [s.bbox() for s in self.shapes]
        return np.max([b[0] for b in boxes], axis=0), np.min([b[1] for b in boxes], axis=0)

    def evaluate(self, x, y, z):
        sdf, n = self.shapes[0].evaluate(x, y, z)
        n = list(n)
        for shape in self.shapes[1:]:
            other, m = shape.evaluate(x, y, z)
            take = other > sdf
            sdf = np.where(take, other, sdf)
            n = [np.where(take, m[i], n[i]) for i in range(3)]
        return sdf, tuple(n)


@dataclasses.dataclass
class Layer:
    """One painted structure: ``shape`` filled with ``tissue`` (key into the case's tissues) and ``label``;
    ``blur_mm`` widens its edge beyond the voxel's partial volume (ill-defined lesion margins)."""

    name: str
    shape: Shape
    tissue: str
    label: str
    blur_mm: float = 0.0


@dataclasses.dataclass
class Anatomy:
    """One case's anatomy: ordered layers, tissues (lesion tissues included), placement in LPS and a summary."""

    layers: List[Layer]
    tissues: Dict[str, Tissue]
    centre_lps: np.ndarray          # gland centre (local origin) in scanner LPS mm
    rotation: np.ndarray            # local axes in LPS (columns)
    summary: Dict[str, object]
    lesions: List[Dict[str, object]]
    coil_axis_local: Optional[Tuple[np.ndarray, np.ndarray]] = None  # endorectal coil segment (local mm)
    body_axes: Tuple[float, float, float] = (170.0, 115.0, 20.0)     # body half-widths and centre y (local)
    template_warp: Optional[object] = None  # real-anatomy family: the TemplateWarp its TemplateShapes share


def _bumps(rng: np.random.Generator, modes: int, amplitude: float, frequency: Tuple[float, float] = (1.5, 3.0)):
    directions = rng.normal(size=(modes, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    k = directions * rng.uniform(*frequency, size=(modes, 1))
    return k, rng.uniform(0, 2 * np.pi, modes), rng.uniform(0.3, 1.0, modes) * amplitude / np.sqrt(modes)


def _angular_bumps(rng: np.random.Generator, amplitude: float, orders: Sequence[int] = (2, 3, 4, 5)):
    return [(m, float(rng.uniform(0.3, 1.0)) * amplitude / np.sqrt(len(orders)), float(rng.uniform(0, 2 * np.pi)))
            for m in orders]


def _u(rng, low, high):
    return float(rng.uniform(low, high))


def _bone(layers: List[Layer], name: str, shape: Shape, cortex_mm: float) -> None:
    layers.append(Layer(name + "_cortex", shape, "cortical_bone", "bone"))
    layers.append(Layer(name + "_marrow", Offset(shape, cortex_mm), "marrow", "bone"))


def _sample_inside(rng, accept, sampler, tries: int = 400):
    for _ in range(tries):
        point = sampler()
        if accept(point):
            return point
    return None


def _inside(shape: Shape, point, margin: float = 0.0) -> bool:
    p = np.asarray(point, dtype=np.float32).reshape(3, 1)
    sdf, _ = shape.evaluate(p[0], p[1], p[2])
    return bool(sdf[0] < -margin)


def build_anatomy(rng: np.random.Generator, tissues: Dict[str, Tissue], endorectal_coil: bool = False,
                  lesion_count: Optional[int] = None) -> Anatomy:
    """Draw one case's anatomy (sizes, shapes, positions, lesions) around a random gland centre.

    ``endorectal_coil`` distends the rectum with a balloon and flattens the gland against it (domain B); every
    random draw is made either way, so the same seed gives the same patient with or without the coil.
    ``lesion_count`` forces the number of lesions (else 0–3, mostly 1).
    """
    tissues = dict(tissues)
    layers: List[Layer] = []
    s_lr = (-1.0, 1.0)  # patient right (−x), left (+x)

    # --- patient placement
    centre_lps = np.array([_u(rng, -10, 10), _u(rng, -10, 30), _u(rng, -40, 40)])
    patient_rotation = rotation_matrix([_u(rng, -4, 4), _u(rng, -3, 3), _u(rng, -4, 4)])

    # --- gland
    bph = _u(rng, 0.0, 1.0)  # benign enlargement grade: larger, more nodular transition zone
    ax, ay, az = _u(rng, 19, 26) * (1 + 0.3 * bph), _u(rng, 13, 18) * (1 + 0.25 * bph), _u(rng, 16, 23) * (1 + 0.3 * bph)
    gland_tilt = [_u(rng, -5, 25), _u(rng, -5, 5), _u(rng, -6, 6)]
    taper = _u(rng, 0.06, 0.2)
    gland_bumps = _bumps(rng, 6, 0.10)
    rectum_gap = _u(rng, 1.5, 4.0)
    rr = [_u(rng, 12, 18), _u(rng, 8, 13)]
    balloon = [_u(rng, 22, 26), _u(rng, 15, 19)]
    gland_rot = rotation_matrix(gland_tilt)
    # The endorectal balloon flattens the gland antero-posteriorly; all gland structures are drawn (and lesions
    # placed) in the uncompressed gland and then deformed, so the same seed gives the same patient either way.
    flatten = 0.85 if endorectal_coil else 1.0
    compression = gland_rot @ np.diag([1.0, flatten, 1.0]) @ gland_rot.T
    deform = (lambda shape: Affine(shape, compression)) if endorectal_coil else (lambda shape: shape)
    gland = Ellipsoid([0, 0, 0], [ax, ay, az], gland_rot, taper, gland_bumps)

    # --- body outline and big muscles
    body_c = [_u(rng, -5, 5), _u(rng, 15, 30), 0.0]
    body_axes = [_u(rng, 150, 195), _u(rng, 100, 130), 1000.0]
    body = EllipticCylinder(body_c[:2], body_axes[:2], 0.0, _angular_bumps(rng, 0.04))
    layers.append(Layer("body", body, "fat", "fat"))
    inner_body = Offset(body, _u(rng, 10, 25))  # subcutaneous fat stays fat
    for s in s_lr:
        glut = EllipticCylinder([s * _u(rng, 60, 85), _u(rng, 70, 95)], [_u(rng, 40, 55), _u(rng, 25, 35)],
                                s * _u(rng, 20, 40), _angular_bumps(rng, 0.08))
        layers.append(Layer(f"gluteus_{s:+.0f}", Intersection(glut, inner_body), "muscle", "muscle"))
        hip = EllipticCylinder([s * _u(rng, 105, 125), _u(rng, 5, 30)], [_u(rng, 30, 40), _u(rng, 40, 50)],
                               0.0, _angular_bumps(rng, 0.08))
        layers.append(Layer(f"hip_muscles_{s:+.0f}", Intersection(hip, inner_body), "muscle", "muscle"))
        front = body_c[1] - body_axes[1]
        rectus = EllipticCylinder([s * _u(rng, 28, 45), front + _u(rng, 22, 32)], [_u(rng, 22, 32), _u(rng, 5, 8)],
                                  s * _u(rng, -10, 10))
        layers.append(Layer(f"rectus_{s:+.0f}", rectus, "muscle", "muscle"))

    # --- pelvic side walls: obturator internus, bones
    obturators = []
    for s in s_lr:
        oc = [s * (ax + _u(rng, 22, 32)), _u(rng, -5, 10), _u(rng, -5, 5)]
        obt = Ellipsoid(oc, [_u(rng, 6, 9), _u(rng, 28, 38), _u(rng, 35, 50)],
                        rotation_matrix([0, 0, s * _u(rng, 5, 20)]), 0.0, _bumps(rng, 4, 0.08))
        obturators.append(oc)
        layers.append(Layer(f"obturator_internus_{s:+.0f}", obt, "muscle", "muscle"))
    for s in s_lr:
        head_c = np.array([s * _u(rng, 85, 100), _u(rng, -5, 10), az * _u(rng, 0.3, 0.8) + _u(rng, 5, 15)])
        head_r = _u(rng, 21, 26)
        cortex = _u(rng, 1.8, 3.0)
        _bone(layers, f"acetabulum_{s:+.0f}", Ellipsoid(head_c - [s * 18, 0, 0], [12, 30, 30]), cortex)
        neck_end = head_c + [s * 40, 5, -25]
        _bone(layers, f"femoral_neck_{s:+.0f}", Capsule(head_c, neck_end, _u(rng, 13, 17)), cortex)
        _bone(layers, f"femoral_head_{s:+.0f}", Ellipsoid(head_c, [head_r] * 3), cortex)
        isch = Ellipsoid([s * (ax + _u(rng, 38, 46)), _u(rng, 5, 20), _u(rng, -25, -5)],
                         [_u(rng, 9, 13), _u(rng, 18, 26), _u(rng, 25, 35)], None, 0.0, _bumps(rng, 4, 0.06))
        _bone(layers, f"ischium_{s:+.0f}", isch, cortex)
        pubis = Ellipsoid([s * _u(rng, 11, 16), -(ay + _u(rng, 18, 28)), _u(rng, -15, 0)],
                          [_u(rng, 10, 14), _u(rng, 8, 11), _u(rng, 18, 25)],
                          rotation_matrix([0, 0, s * _u(rng, 20, 40)]), 0.0, _bumps(rng, 4, 0.05))
        _bone(layers, f"pubic_body_{s:+.0f}", pubis, cortex)
        ramus = Ellipsoid([s * _u(rng, 45, 60), -(ay + _u(rng, 12, 22)), _u(rng, 10, 25)],
                          [_u(rng, 30, 40), _u(rng, 8, 11), _u(rng, 8, 11)],
                          rotation_matrix([0, 0, s * _u(rng, 10, 25)]))
        _bone(layers, f"superior_pubic_ramus_{s:+.0f}", ramus, cortex)

    # --- levator ani: a U-shaped muscular sling behind and beside the gland and rectum
    sling_front, sling_back = -0.5 * ay, ay + rectum_gap + 2 * rr[1] + _u(rng, 4, 10)
    sling = EllipticCylinder([0, (sling_front + sling_back) / 2],
                             [ax + _u(rng, 6, 12), (sling_back - sling_front) / 2], 0.0, _angular_bumps(rng, 0.04))
    levator = Intersection(Shell(sling, _u(rng, 3.5, 5.5)), HalfSpace([0, -0.3 * ay, 0], [0, -1, 0]),
                           HalfSpace([0, 0, az * _u(rng, 0.0, 0.5)], [0, 0.3, 1]))
    layers.append(Layer("levator_ani", levator, "muscle", "muscle"))

    # --- large vessels (external iliac / femoral), obturator and internal pudendal vessels
    vessel_summary = []
    for s, oc in zip(s_lr, obturators):
        x_art = s * _u(rng, 60, 75)
        y_art = -(ay + _u(rng, 25, 40))
        p0 = np.array([x_art, y_art, -70.0])
        p1 = np.array([x_art + _u(rng, -8, 8), y_art + _u(rng, -6, 6), 70.0])
        art_r, vein_r = _u(rng, 3.5, 4.5), _u(rng, 5.0, 7.0)
        shift = np.array([-s * _u(rng, 9, 13), _u(rng, -2, 3), 0])
        layers.append(Layer(f"external_iliac_artery_{s:+.0f}", Capsule(p0, p1, art_r), "artery", "vessel"))
        layers.append(Layer(f"external_iliac_vein_{s:+.0f}", Capsule(p0 + shift, p1 + shift, vein_r), "vein", "vessel"))
        ob = np.array([oc[0] - s * 9, oc[1] - _u(rng, 10, 20), 0])
        layers.append(Layer(f"obturator_vessel_{s:+.0f}",
                            Capsule(ob + [0, 0, -40], ob + [0, _u(rng, -5, 5), 40], _u(rng, 1.5, 2.5)), "vein", "vessel"))
        pud = np.array([oc[0] - s * 6, oc[1] + _u(rng, 20, 30), _u(rng, -20, 0)])
        layers.append(Layer(f"pudendal_vessel_{s:+.0f}",
                            Capsule(pud + [0, 0, -30], pud + [0, 0, 30], _u(rng, 1.2, 2.2)), "artery", "vessel"))
        vessel_summary.append({"side": "left" if s > 0 else "right", "artery_radius_mm": round(art_r, 2),
                               "vein_radius_mm": round(vein_r, 2)})

    # --- small pelvic vessels scattered in the fat
    for i in range(int(rng.integers(15, 30))):
        while True:
            centre = np.array([_u(rng, -90, 90), _u(rng, -70, 70), _u(rng, -40, 40)])
            if np.linalg.norm(centre / [ax + 8, ay + 8, az + 8]) > 1.0:
                break
        axis = np.array([rng.normal(0, 0.5), rng.normal(0, 0.5), 1.0])
        axis *= _u(rng, 8, 30) / np.linalg.norm(axis)
        kind = "vein" if rng.uniform() < 0.7 else "artery"
        layers.append(Layer(f"small_vessel_{i}", Capsule(centre - axis, centre + axis, _u(rng, 0.6, 1.6)), kind,
                            "vessel"))

    # --- bladder (above and anterior), rectum (behind), seminal vesicles
    rb = [_u(rng, 30, 50), _u(rng, 22, 38), _u(rng, 20, 38)]
    bladder_c = [_u(rng, -3, 3), -0.3 * ay - _u(rng, 0, 10), az * 0.85 + rb[2] * 0.95]
    bladder = Ellipsoid(bladder_c, rb, rotation_matrix([_u(rng, -10, 10), 0, _u(rng, -5, 5)]), 0.0,
                        _bumps(rng, 5, 0.08))
    bladder_wall = _u(rng, 3, 5)
    layers.append(Layer("bladder_wall", bladder, "bladder_wall", "bladder"))
    layers.append(Layer("urine", Offset(bladder, bladder_wall), "urine", "bladder"))

    rectal_tilt = _u(rng, 10, 30)
    rectal_x = _u(rng, -4, 4)
    rectal_wall = _u(rng, 2.5, 4.0)
    radii = balloon if endorectal_coil else rr
    rect_c = [rectal_x, ay * flatten + rectum_gap + radii[1], 0.0]
    rectum = Ellipsoid(rect_c, [radii[0], radii[1], 90.0], rotation_matrix([-rectal_tilt, 0, 0]), 0.0,
                       _bumps(rng, 4, 0.03 if endorectal_coil else 0.12))
    layers.append(Layer("rectal_wall", rectum, "rectal_wall", "rectum"))
    layers.append(Layer("rectal_content", Offset(rectum, 2.0 if endorectal_coil else rectal_wall),
                        "rectal_content", "rectum"))
    coil_axis = None
    if endorectal_coil:
        tissues["rectal_content"] = dataclasses.replace(
            tissues["rectal_content"], values=dict(tissues["rectal_content"].values, pd=0.0))
        front = np.array([rectal_x, ay * flatten + rectum_gap + 4.0, 0.0])
        coil_axis = (front + [0, 0, -22.0], front + [0, 0, 22.0])

    for s in s_lr:
        sv = Ellipsoid([s * _u(rng, 12, 20), ay * _u(rng, 0.3, 0.7), az + _u(rng, 4, 10)],
                       [_u(rng, 15, 25), _u(rng, 5, 8), _u(rng, 6, 10)],
                       rotation_matrix([_u(rng, 10, 30), 0, s * _u(rng, 20, 40)]), 0.0, _bumps(rng, 5, 0.15, (3, 6)))
        layers.append(Layer(f"seminal_vesicle_{s:+.0f}", sv, "seminal_vesicle", "seminal_vesicle"))

    # --- periprostatic vessels: capsular arteries, neurovascular bundles, venous plexus
    n_pp = int(rng.integers(6, 11))
    for i in range(n_pp):
        sector = rng.choice(["anterior", "anterolateral", "posterolateral"], p=[0.2, 0.4, 0.4])
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        angle = {"anterior": _u(rng, -20, 20), "anterolateral": side * _u(rng, 35, 75),
                 "posterolateral": side * _u(rng, 115, 150)}[sector]
        zc = _u(rng, -0.7, 0.7) * az
        direction = np.array([np.sin(np.deg2rad(angle)), -np.cos(np.deg2rad(angle)), 0.0])  # 0° = anterior
        radius_here = 1.0 / np.sqrt((direction[0] / ax) ** 2 + (direction[1] / ay) ** 2) * np.sqrt(
            max(1 - (zc / az) ** 2, 0.15))
        centre = gland_rot @ (direction * (radius_here + _u(rng, 1.5, 4.0)) + [0, 0, zc])
        half = _u(rng, 8, 18)
        tilt = rng.normal(0, 0.25, 2)
        axis = np.array([tilt[0], tilt[1], 1.0])
        axis /= np.linalg.norm(axis)
        layers.append(Layer(f"periprostatic_vessel_{i}", deform(Capsule(centre - axis * half, centre + axis * half,
                                                                        _u(rng, 0.8, 2.0))),
                            "periprostatic_vessel", "vessel"))

    # --- prostate: PZ (whole gland first), anterior fibromuscular stroma, transition zone, BPH nodules
    layers.append(Layer("gland", deform(gland), "peripheral_zone", "peripheral_zone"))
    afs_plane = HalfSpace(gland_rot @ [0, -_u(rng, 0.55, 0.7) * ay, 0], gland_rot @ [0, 1, _u(rng, -0.3, 0.3)])
    layers.append(Layer("anterior_fibromuscular_stroma", deform(Intersection(gland, afs_plane)),
                        "anterior_fibromuscular_stroma", "anterior_fibromuscular_stroma"))
    tz_frac = 0.45 + 0.35 * bph + _u(rng, -0.05, 0.05)
    tz_c = gland_rot @ [0, -0.22 * ay, 0.18 * az]
    tz_axes = [ax * tz_frac * 1.05, ay * tz_frac * 0.95, az * tz_frac]
    tz_ellipsoid = Ellipsoid(tz_c, tz_axes, gland_rot, 0.0, _bumps(rng, 5, 0.12))
    tz = Intersection(tz_ellipsoid, Offset(gland, 1.5))
    layers.append(Layer("transition_zone", deform(tz), "transition_zone", "transition_zone"))
    n_nodules = int(round(bph * 12 + _u(rng, 0, 3)))
    for i in range(n_nodules):
        u = rng.normal(size=3)
        u *= rng.uniform() ** (1 / 3) * 0.8 / np.linalg.norm(u)
        nc = tz_c + gland_rot @ (u * tz_axes)
        kind = "bph_stromal" if rng.uniform() < 0.4 else "bph_glandular"
        r = _u(rng, 2.5, 4.0 + 6.0 * bph)
        nod = Ellipsoid(nc, [r * _u(rng, 0.8, 1.2), r * _u(rng, 0.8, 1.2), r * _u(rng, 0.8, 1.2)],
                        rotation_matrix(rng.uniform(-90, 90, 3)), 0.0, _bumps(rng, 4, 0.12))
        layers.append(Layer(f"bph_nodule_{i}", deform(Intersection(nod, tz)), kind, "transition_zone",
                            _u(rng, 0.3, 1.0)))

    # --- lesions: 0–3, mostly in the PZ, mostly of the textbook kind
    pz_region = lambda p: _inside(gland, p, 2.0) and not _inside(Offset(tz_ellipsoid, -1.0), p) \
        and not _inside(afs_plane, p, -1.0)
    tz_region = lambda p: _inside(tz, p, 2.5)
    sampler = lambda: gland_rot @ (rng.uniform(-1, 1, 3) * [ax, ay, az] * 0.95)
    lesions = place_lesions(rng, tissues, layers, lesion_count, gland, pz_region, tz_region, sampler,
                            deform=deform, compression=compression, patient_rotation=patient_rotation,
                            centre_lps=centre_lps)

    summary = {
        "gland_centre_lps": [round(v, 3) for v in centre_lps],
        "patient_rotation": [[round(v, 6) for v in row] for row in patient_rotation],
        "gland_semi_axes_mm": [round(ax, 2), round(ay * flatten, 2), round(az, 2)],
        "gland_tilt_deg": [round(v, 2) for v in gland_tilt],
        "gland_volume_ml": round(4 / 3 * np.pi * ax * ay * flatten * az / 1000, 1),
        "bph_grade": round(bph, 3), "transition_zone_fraction": round(tz_frac, 3), "bph_nodules": n_nodules,
        "bladder_semi_axes_mm": [round(v, 1) for v in rb], "rectum_semi_axes_mm": [round(v, 1) for v in radii],
        "endorectal_coil": bool(endorectal_coil), "periprostatic_vessels": n_pp, "large_vessels": vessel_summary,
        "body_semi_axes_mm": [round(v, 1) for v in body_axes[:2]],
    }
    return Anatomy(layers, tissues, centre_lps, patient_rotation, summary, lesions, coil_axis,
                   (body_axes[0], body_axes[1], body_c[1]))


def place_lesions(rng: np.random.Generator, tissues: Dict[str, Tissue], layers: List[Layer],
                  lesion_count: Optional[int], gland: Shape, pz_region, tz_region, sampler, *,
                  deform=lambda shape: shape, compression=None, patient_rotation=None,
                  centre_lps=None) -> List[Dict[str, object]]:
    """Draw 0–3 lesions (mostly one, mostly in the peripheral zone, mostly of the textbook kind) in ``gland`` and
    append their layers and tissues; shared by every anatomy family so lesions are drawn the same way. Each lesion is
    clipped to the gland grown by 0–1.5 mm (``Offset`` with a negative distance), so a peripheral lesion may bulge
    slightly through the capsule, as such cancers do; its centre always lies in its zone.

    ``pz_region(p)`` / ``tz_region(p)`` tell whether a local point may hold a lesion centre of that zone;
    ``sampler()`` draws a candidate centre (local mm); ``deform`` maps a shape to its final form (the endorectal
    coil's compression, whose matrix ``compression`` moves the recorded centre); ``patient_rotation`` and
    ``centre_lps`` place the recorded centre in scanner LPS. Returns the lesion descriptions of case.json.
    """
    compression = np.eye(3) if compression is None else compression
    patient_rotation = np.eye(3) if patient_rotation is None else patient_rotation
    centre_lps = np.zeros(3) if centre_lps is None else centre_lps
    if lesion_count is None:
        lesion_count = int(rng.choice([0, 1, 2, 3], p=[0.12, 0.5, 0.26, 0.12]))
    lesions: List[Dict[str, object]] = []
    for i in range(lesion_count):
        zone = "peripheral_zone" if rng.uniform() < 0.75 else "transition_zone"
        kind = LESION_KINDS[0] if rng.uniform() < 0.7 else LESION_KINDS[1]
        diameter = _u(rng, 3.0, 15.0)
        # Lesions do not touch each other (each stays one connected region of the label map).
        apart = lambda p: all(np.linalg.norm(p - o["_nominal"]) > (diameter + o["diameter_mm"]) * 0.65 + 3.0
                              for o in lesions)
        centre = _sample_inside(rng, lambda p: apart(p) and (pz_region if zone == "peripheral_zone" else tz_region)(p),
                                sampler)
        if centre is None:
            zone = "transition_zone" if zone == "peripheral_zone" else "peripheral_zone"
            centre = _sample_inside(rng, lambda p: apart(p) and (pz_region if zone == "peripheral_zone"
                                                                 else tz_region)(p), sampler)
        if centre is None:
            continue
        semi = np.array([diameter / 2 * _u(rng, 0.8, 1.2) for _ in range(3)])
        shape = Intersection(Ellipsoid(centre, semi, rotation_matrix(rng.uniform(-90, 90, 3)), 0.0,
                                       _bumps(rng, 5, 0.15, (2, 4))),
                             Offset(gland, -_u(rng, 0.0, 1.5)))
        name = f"lesion_{len(lesions) + 1}"
        tissue, info = sample_lesion_tissue(rng, name, kind, tissues[zone])
        tissues[name] = tissue
        layers.append(Layer(name, deform(shape), name, "lesion", _u(rng, 0.3, 0.8)))
        placed = compression @ centre
        info.update({"id": len(lesions) + 1, "zone": zone, "diameter_mm": round(diameter, 2),
                     "semi_axes_mm": [round(float(v), 2) for v in semi],
                     "centre_lps": [round(float(v), 3) for v in (patient_rotation @ placed + centre_lps)],
                     "centre_local_mm": [round(float(v), 3) for v in placed], "_nominal": centre})
        lesions.append(info)

    for info in lesions:
        info.pop("_nominal")
    return lesions
