"""The phantom's anatomy rules: lesions in their zone and in the gland, apart, the coil's compression, the records.

From the session-56 mutation audit, round 14. Each test asserts what follows from the documented rule (the
docstrings of ``anatomy.place_lesions`` and ``build_anatomy``, docs/phantom.md) or from geometry, not a value copied
from the current output. Per test, the mutation it kills:

- ``test_a_lesion_centre_lies_in_its_zone``: the peripheral-zone region without its transition-zone exclusion or its
  anterior-stroma exclusion, the transition-zone margin's sign flipped, ``_inside``'s margin with the wrong sign,
  the fallback that keeps the zone's name when it samples the other zone, the TZ painted before (under) the PZ;
  the same in the real-anatomy family (``template_anatomy``'s PZ region without its TZ exclusion).
- ``test_a_lesion_whose_zone_has_no_room_is_placed_and_recorded_in_the_other_zone``: the fallback that samples the
  other zone but keeps the first zone's name (the random cases rarely need the fallback).
- ``test_a_lesion_stays_inside_the_gland_grown_by_at_most_one_and_a_half_mm``: a lesion not clipped to the gland.
- ``test_lesions_do_not_overlap``: the lesions' distance rule dropped (they must not touch).
- ``test_the_coil_compresses_the_recorded_lesion_centre_with_the_gland``: the recorded centre left uncompressed, and
  the summary's semi-axes without the flattening.
- ``test_the_gland_volume_is_that_of_its_recorded_semi_axes``: the volume's mm³ → ml conversion.
- ``test_the_label_legend_gives_every_structure_its_own_value``: two labels sharing a value.
- ``test_a_templates_gland_centre_and_index_to_lps_follow_its_image_geometry``: the template's gland centre taken in
  (k, j, i) order, ``index_to_lps`` with the transposed direction (the templates' slices are oblique).
- ``test_a_templates_distance_is_zero_midway_between_inside_and_outside_voxels``: the zero level a whole voxel out.
- ``test_a_ball_rasterises_to_its_volume_and_its_symmetry``: labels painted wherever a layer covers any part of a
  voxel (not at least half of it), the index block one short at its high end.
"""

from __future__ import annotations

import numpy as np
import pytest

from DCEDiffLib.phantom.anatomy import LABEL_LEGEND, build_anatomy, rotation_matrix
from DCEDiffLib.phantom.tissues import sample_tissues

SEEDS = range(12)
ZONE_SEEDS = range(24)  # seeds 15, 19, 20, 21 would put a PZ lesion in the anterior stroma without its exclusion


def _anatomy(seed, coil=False, count=3):
    rng = np.random.default_rng([seed, 1])
    return build_anatomy(rng, sample_tissues(rng), endorectal_coil=coil, lesion_count=count)


def _sdf(shape, points):
    p = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    return shape.evaluate(p[:, 0], p[:, 1], p[:, 2])[0]


def _zone_under(anatomy, point):
    """The label a point gets from the layers below the lesions: the last non-lesion layer that contains it."""
    label = "background"
    for layer in anatomy.layers:
        if layer.label != "lesion" and _sdf(layer.shape, point)[0] < 0:
            label = layer.label
    return label


def _lesion_layers(anatomy):
    return {layer.name: layer for layer in anatomy.layers if layer.label == "lesion"}


def _box_points(shape, step=0.6):
    lo, hi = shape.bbox()
    axes = [np.arange(a, b + step, step) for a, b in zip(lo, hi)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


@pytest.mark.parametrize("coil", [False, True])
def test_a_lesion_centre_lies_in_its_zone(coil):
    # place_lesions: "its centre always lies in its zone" (what the label map shows there without the lesion)
    checked = {"peripheral_zone": 0, "transition_zone": 0}
    for seed in ZONE_SEEDS:
        anatomy = _anatomy(seed, coil)
        for info in anatomy.lesions:
            assert _zone_under(anatomy, info["centre_local_mm"]) == info["zone"], (seed, info["id"])
            checked[info["zone"]] += 1
    assert min(checked.values()) >= 3  # both zones were tested


def test_a_lesion_centre_lies_in_its_zone_in_the_real_anatomy_family():
    from DCEDiffLib.phantom.template_anatomy import build_template_anatomy
    from DCEDiffLib.phantom.templates import TEMPLATE_NAMES

    checked = {"peripheral_zone": 0, "transition_zone": 0}
    for seed in range(6):
        rng = np.random.default_rng([seed, 1])
        anatomy = build_template_anatomy(rng, sample_tissues(rng), TEMPLATE_NAMES[seed % 2], lesion_count=3)
        for info in anatomy.lesions:
            assert _zone_under(anatomy, info["centre_local_mm"]) == info["zone"], (seed, info["id"])
            checked[info["zone"]] += 1
    assert min(checked.values()) >= 1


def test_a_lesion_whose_zone_has_no_room_is_placed_and_recorded_in_the_other_zone():
    from DCEDiffLib.phantom.anatomy import Ellipsoid, place_lesions

    gland = Ellipsoid([0, 0, 0], [20, 15, 18])
    for full, free in (("peripheral_zone", "transition_zone"), ("transition_zone", "peripheral_zone")):
        rng = np.random.default_rng(5)
        tissues = sample_tissues(rng)
        allowed = {"peripheral_zone": lambda p: p[1] > 4 and full != "peripheral_zone",
                   "transition_zone": lambda p: p[1] < -4 and full != "transition_zone"}
        sampler = lambda: rng.uniform(-1, 1, 3) * [18, 13, 16]
        lesions = place_lesions(rng, tissues, [], 3, gland, allowed["peripheral_zone"], allowed["transition_zone"],
                                sampler)
        assert len(lesions) >= 2
        for info in lesions:
            assert info["zone"] == free
            assert allowed[free](np.asarray(info["centre_local_mm"]))


def test_a_lesion_stays_inside_the_gland_grown_by_at_most_one_and_a_half_mm():
    # place_lesions: each lesion is clipped to the gland grown by 0–1.5 mm
    for seed in SEEDS:
        anatomy = _anatomy(seed)
        gland = next(layer.shape for layer in anatomy.layers if layer.name == "gland")
        for name, layer in _lesion_layers(anatomy).items():
            points = _box_points(layer.shape)
            inside = points[_sdf(layer.shape, points) < 0]
            assert len(inside), (seed, name)
            assert _sdf(gland, inside).max() <= 1.5 + 1e-3, (seed, name)


def test_lesions_do_not_overlap():
    # "Lesions do not touch each other (each stays one connected region of the label map)"
    for seed in SEEDS:
        anatomy = _anatomy(seed)
        layers = list(_lesion_layers(anatomy).values())
        for a in range(len(layers)):
            points = _box_points(layers[a].shape, 0.5)
            points = points[_sdf(layers[a].shape, points) < 0]
            for b in range(a + 1, len(layers)):
                assert not np.any(_sdf(layers[b].shape, points) < 0), (seed, layers[a].name, layers[b].name)


def test_the_coil_compresses_the_recorded_lesion_centre_with_the_gland():
    # Domain B is the same patient as domain A (same draws); the balloon flattens the gland antero-posteriorly along
    # the gland's own axes, and every gland structure, the lesions' recorded centres included, moves with it.
    for seed in SEEDS:
        plain, coil = _anatomy(seed, False), _anatomy(seed, True)
        flatten = coil.summary["gland_semi_axes_mm"][1] / plain.summary["gland_semi_axes_mm"][1]
        assert 0.5 < flatten < 1.0
        assert coil.summary["gland_semi_axes_mm"][0] == plain.summary["gland_semi_axes_mm"][0]
        gland_rot = rotation_matrix(plain.summary["gland_tilt_deg"])
        compression = gland_rot @ np.diag([1.0, flatten, 1.0]) @ gland_rot.T
        assert len(coil.lesions) == len(plain.lesions)
        for a, b in zip(plain.lesions, coil.lesions):
            assert a["zone"] == b["zone"] and a["diameter_mm"] == b["diameter_mm"]
            expected = compression @ np.asarray(a["centre_local_mm"])
            np.testing.assert_allclose(b["centre_local_mm"], expected, atol=0.05)


def test_the_gland_volume_is_that_of_its_recorded_semi_axes():
    for seed in SEEDS:
        summary = _anatomy(seed, seed % 2 == 1).summary
        a, b, c = summary["gland_semi_axes_mm"]
        assert summary["gland_volume_ml"] == pytest.approx(4 / 3 * np.pi * a * b * c / 1000.0, abs=0.1)


def test_the_label_legend_gives_every_structure_its_own_value():
    values = list(LABEL_LEGEND.values())
    assert len(set(values)) == len(values)
    assert LABEL_LEGEND["background"] == 0


def _template_from(labels, spacing=(1.0, 1.0, 3.0), direction=None):
    import SimpleITK as sitk

    from DCEDiffLib.phantom.templates import AnatomyTemplate

    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetOrigin((-20.0, 5.0, 7.0))
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, dtype=float).ravel()))
    return AnatomyTemplate("test", image), image


def test_a_templates_gland_centre_and_index_to_lps_follow_its_image_geometry():
    labels = np.zeros((8, 30, 40), dtype=np.uint8)                       # (k, j, i)
    labels[2:5, 6:12, 20:34] = LABEL_LEGEND["peripheral_zone"]
    direction = rotation_matrix([18.0, 0.0, 0.0])                         # oblique slices, as the real templates
    template, image = _template_from(labels, direction=direction)
    for index in ([0, 0, 0], [3.5, 7.25, 1.0], [39, 29, 7]):
        np.testing.assert_allclose(template.index_to_lps(index),
                                   image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index]), atol=1e-9)
    centroid = np.mean([image.TransformIndexToPhysicalPoint([int(i), int(j), int(k)])
                        for k, j, i in np.argwhere(labels > 0)], axis=0)
    np.testing.assert_allclose(template.gland_centre_lps, centroid, atol=1e-9)


def test_a_templates_distance_is_zero_midway_between_inside_and_outside_voxels():
    labels = np.zeros((6, 20, 20), dtype=np.uint8)
    labels[1:5, 5:15, 5:15] = LABEL_LEGEND["transition_zone"]
    template, _ = _template_from(labels)
    row = template.sdf("gland")[2, 10, :]                                 # along i, 1 mm voxels
    # the last inside voxel (i = 14) and the first outside one (i = 15) are half a voxel from the surface
    assert row[14] == pytest.approx(-0.5, abs=1e-5)
    assert row[15] == pytest.approx(0.5, abs=1e-5)
    assert row[16] == pytest.approx(1.5, abs=1e-5)
    assert row[5] == pytest.approx(-0.5, abs=1e-5) and row[4] == pytest.approx(0.5, abs=1e-5)


def _ball_maps(grid, radius):
    from DCEDiffLib.phantom.anatomy import Anatomy, Ellipsoid, Layer
    from DCEDiffLib.phantom.rasterize import rasterize

    tissues = sample_tissues(np.random.default_rng(0))
    anatomy = Anatomy([Layer("ball", Ellipsoid([0, 0, 0], [radius] * 3), "urine", "bladder")], tissues,
                      np.zeros(3), np.eye(3), {}, [])
    return rasterize(anatomy, grid, (np.eye(3), np.zeros(3)), ("pd",), labels=True)


def test_a_ball_rasterises_to_its_volume_and_its_symmetry():
    from DCEDiffLib.phantom.rasterize import Grid

    size, spacing, radius = (23, 23, 23), (1.0, 1.0, 1.0), 8.0
    origin = tuple(-(n - 1) / 2 * s for n, s in zip(size, spacing))      # voxel centres symmetric about the ball
    grid = Grid(size, spacing, origin, tuple(map(tuple, np.eye(3))))
    maps, labels = _ball_maps(grid, radius)
    voxel_volume = float(np.prod(spacing))
    volume = 4 / 3 * np.pi * radius ** 3
    pd = maps["pd"]                                                       # urine: pd 1, no texture; air: 0
    assert pd.sum() * voxel_volume == pytest.approx(volume, rel=0.03)      # partial volume keeps the volume
    assert np.count_nonzero(labels) * voxel_volume == pytest.approx(volume, rel=0.08)  # ≥ half a voxel: labelled
    for axis in range(3):
        np.testing.assert_allclose(pd, np.flip(pd, axis=axis), atol=1e-5)
        assert np.array_equal(labels, np.flip(labels, axis=axis))
