"""The registration self-check's arithmetic at its definition (DCEDiffLib/registration_check.py), with the copy's
registration given exactly: the copy must land on P∘T0 (the perturbation after the series' correction, not before
it), the mean distance is judged against AGREEMENT_MM itself, and transform_points is ITK's TransformPoint for many
points (found by a mutation audit)."""

import math

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.registration_check import (AGREEMENT_MM, check_perturbation, self_check, sphere_points,
                                           transform_points)

CENTRE = np.array([10.0, -20.0, 5.0])


def _series():
    image = sitk.Image(8, 8, 4, sitk.sitkFloat32)
    image.SetSpacing((5.0, 5.0, 5.0))
    image.SetOrigin(tuple(CENTRE - 17.5))
    return image


def _series_correction():
    """T0: 8 degrees about an axis through a point 30 mm from the gland centre, and a 10 mm shift."""
    return sitk.Euler3DTransform(tuple(CENTRE + (30.0, 0.0, 0.0)), math.radians(5.0), math.radians(-4.0),
                                 math.radians(4.0), (6.0, -8.0, 0.0))


def _after(rotation, shift, centre, t0):
    """The Euler transform x -> P(T0(x)), P(y) = R (y - c) + c + t, written out."""
    m0 = np.asarray(t0.GetMatrix()).reshape(3, 3)
    c0, t_0 = np.asarray(t0.GetCenter()), np.asarray(t0.GetTranslation())
    euler = sitk.Euler3DTransform()
    euler.SetCenter(tuple(c0))
    euler.SetMatrix(tuple((rotation @ m0).ravel()))
    euler.SetTranslation(tuple(rotation @ (c0 + t_0 - centre) + centre + shift - c0))
    return euler


class _Found:
    """What the copy's registration returns, as far as the check reads it."""

    def __init__(self, transform):
        self.transform, self.applied, self.reason = transform, True, ""


def test_a_copy_that_lands_exactly_on_the_perturbation_after_the_correction_agrees_to_zero():
    """self_check: "A registration that holds finds P∘T0 for the copy" - T0 applied first, then P. Given exactly
    that, the disagreement is 0; given T0∘P (the other order, ~1 mm away here) it is not."""
    rotation, shift, _ = check_perturbation()
    t0 = _series_correction()
    exact = _after(rotation, shift, CENTRE, t0)
    outcome = self_check(_series(), CENTRE, t0, lambda copy: _Found(exact), radius_mm=40.0)
    assert outcome.mean_mm < 1e-6 and outcome.max_mm < 1e-6 and outcome.agrees
    points = sphere_points(CENTRE, 40.0)
    other_order = transform_points(t0, (points - CENTRE) @ rotation.T + CENTRE + shift)
    expected = transform_points(exact, points)
    assert np.linalg.norm(other_order - expected, axis=1).mean() > 0.5  # the orders differ by ~1 mm here


@pytest.mark.parametrize("off_mm, agrees", [(0.9 * AGREEMENT_MM, True), (1.1 * AGREEMENT_MM, False),
                                            (2.0 * AGREEMENT_MM - 0.01, False)])
def test_the_check_agrees_within_the_tolerance_only(off_mm, agrees):
    """self_check: it agrees when the mean distance over the sphere is within AGREEMENT_MM (1.5 mm). A copy that
    lands P∘T0 followed by a pure shift of ``off_mm`` is that far from P∘T0 at every point: the mean is ``off_mm``."""
    rotation, shift, _ = check_perturbation()
    t0 = _series_correction()
    exact = _after(rotation, shift, CENTRE, t0)
    off = _after(np.eye(3), np.array([0.0, 0.0, off_mm]), CENTRE, exact)
    outcome = self_check(_series(), CENTRE, t0, lambda copy: _Found(off), radius_mm=40.0)
    assert outcome.mean_mm == pytest.approx(off_mm, abs=1e-6)
    assert outcome.agrees is agrees
    assert outcome.summary.startswith("agrees" if agrees else "DISAGREES")


def test_transform_points_is_itks_transform_point():
    """transform_points: "Apply an affine (Euler3D, identity) transform to many points at once" - the same points
    as ITK's TransformPoint one by one, for a rotation about a centre other than the origin."""
    t0 = _series_correction()
    points = sphere_points(CENTRE, 40.0, 10.0)
    one_by_one = np.array([t0.TransformPoint(tuple(float(v) for v in p)) for p in points])
    assert np.abs(transform_points(t0, points) - one_by_one).max() < 1e-9
    generic = sitk.Transform(t0)  # the same Euler transform seen as a plain sitk.Transform
    assert np.abs(transform_points(generic, points) - one_by_one).max() < 1e-9
