"""Phantom geometry rules at their definition: an ellipsoid's semi-axes lie along the *columns* of its rotation, the
rotation is Rz·Ry·Rx, an intersection is inside every shape, and a series' motion moves the anatomy by
x ↦ R(x − c) + c + t (found by a mutation audit; the phantom tests caught some of these only through statistics)."""

import types

import numpy as np
import pytest


def _sdf(shape, point):
    p = np.asarray(point, dtype=np.float32).reshape(3, 1)
    sdf, normal = shape.evaluate(p[0], p[1], p[2])
    return float(sdf[0]), np.array([float(n[0]) for n in normal])


def test_an_ellipsoids_semi_axes_lie_along_the_columns_of_its_rotation():
    """Ellipsoid: "semi-axes ``axes`` along the columns of ``rotation``". Long axis 10 mm, rotated 30° about z: the
    long axis is column 0 = (cos 30°, sin 30°, 0); 8 mm along it is inside, 8 mm along the mirrored direction
    (cos 30°, −sin 30°, 0) (the row, i.e. the transpose) is outside, and the normal at the tip is the column."""
    from DCEDiffLib.phantom.anatomy import Ellipsoid, rotation_matrix

    rot = rotation_matrix([0, 0, 30])
    shape = Ellipsoid([1.0, 2.0, 3.0], [10.0, 2.0, 2.0], rot)
    column, row = rot[:, 0], rot[0, :]
    assert _sdf(shape, [1.0, 2.0, 3.0] + 8 * column)[0] < 0
    assert _sdf(shape, [1.0, 2.0, 3.0] + 8 * row)[0] > 0
    sdf, normal = _sdf(shape, [1.0, 2.0, 3.0] + 10 * column)
    assert abs(sdf) < 0.05
    assert normal == pytest.approx(column, abs=1e-4)
    lo, hi = shape.bbox()
    for sign in (-1, 1):
        assert np.all(lo <= [1.0, 2.0, 3.0] + sign * 10 * column) and np.all([1.0, 2.0, 3.0] + sign * 10 * column <= hi)


def test_the_rotation_is_rz_ry_rx_and_right_handed():
    """rotation_matrix: "R = Rz·Ry·Rx for angles about the x, y and z axes": x first, then y, then z."""
    from DCEDiffLib.phantom.anatomy import rotation_matrix

    assert rotation_matrix([0, 0, 90]) @ [1, 0, 0] == pytest.approx([0, 1, 0], abs=1e-12)   # right-handed about z
    assert rotation_matrix([90, 0, 0]) @ [0, 1, 0] == pytest.approx([0, 0, 1], abs=1e-12)   # and about x
    # x by 90° takes y to z, which z by 90° leaves alone (z first would take y to −x, which x leaves alone)
    assert rotation_matrix([90, 0, 90]) @ [0, 1, 0] == pytest.approx([0, 0, 1], abs=1e-12)
    a, b, c = 20.0, -35.0, 50.0
    composed = rotation_matrix([0, 0, c]) @ rotation_matrix([0, b, 0]) @ rotation_matrix([a, 0, 0])
    assert rotation_matrix([a, b, c]) == pytest.approx(composed, abs=1e-12)


def test_an_intersection_is_inside_every_shape_only():
    """Intersection: "points inside every shape"; its signed distance is the largest of the shapes'."""
    from DCEDiffLib.phantom.anatomy import Ellipsoid, Intersection

    left, right = Ellipsoid([-3.0, 0, 0], [5.0, 5.0, 5.0]), Ellipsoid([3.0, 0, 0], [5.0, 5.0, 5.0])
    both = Intersection(left, right)
    assert _sdf(both, [0, 0, 0])[0] < 0          # in both
    assert _sdf(both, [-6.0, 0, 0])[0] > 0       # in the left one only
    assert _sdf(both, [6.0, 0, 0])[0] > 0        # in the right one only
    point = [1.0, 1.0, 0.0]
    assert _sdf(both, point)[0] == pytest.approx(max(_sdf(left, point)[0], _sdf(right, point)[0]))


def test_a_series_motion_moves_the_anatomy_about_the_gland_centre():
    """rasterize.local_mapping: the series sees the reference anatomy moved by x ↦ R(x − c) + c + t. The reference
    point with local coordinates q (LPS c + A·q, A the anatomy's rotation) is seen at p = R·A·q + c + t, and the
    mapping takes p back to q."""
    from DCEDiffLib.phantom.anatomy import rotation_matrix
    from DCEDiffLib.phantom.rasterize import Grid, local_mapping

    centre = np.array([5.0, -4.0, 12.0])
    anatomy = types.SimpleNamespace(centre_lps=centre, rotation=rotation_matrix([3, -2, 4]))
    direction = rotation_matrix([0, 10, 0])
    grid = Grid((10, 12, 8), (0.7, 0.7, 3.0), (-20.0, -15.0, -5.0), tuple(map(tuple, direction)))
    rot, trans = rotation_matrix([2, -3, 5]), np.array([2.0, -1.0, 0.5])
    a0, steps = local_mapping(grid, anatomy, (rot, trans))
    for q in ([0.0, 0.0, 0.0], [8.0, -3.0, 6.0]):
        p = rot @ anatomy.rotation @ q + centre + trans
        index = np.linalg.solve(grid.matrix(), p - np.asarray(grid.origin))
        assert a0 + steps @ index == pytest.approx(q, abs=1e-9)
