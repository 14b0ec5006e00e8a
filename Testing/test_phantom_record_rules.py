"""The phantom's records and draws: case seeds, dataset.json and case.json, the same patient in both domains, the
exam plan's motion and fields of view, tissue draws, and the realism regions.

From the session-56 mutation audit, round 14. Each test asserts what follows from the documented rule (docstrings of
``generator``, ``acquisition``, ``tissues`` and ``realism``, docs/phantom.md), from arithmetic or from geometry, not
a value copied from the current output. Per test, the mutation it kills:

- ``test_case_seeds_never_repeat_across_cases_and_dataset_seeds``: the case seed derived from seed + index.
- ``test_mixed_anatomy_draws_both_templates``: the template drawn from the family's stream (every mixed real-anatomy
  case then had the first template).
- ``test_a_dataset_starting_at_a_later_index_records_that_cases_seed_everywhere``: ``first_index`` left out of the
  case seed or of case.json's dataset index; dataset.json recording the dataset seed as each case's seed.
- ``test_one_seed_is_one_patient_in_both_domains``: the patient's random stream depending on the domain.
- ``test_the_t1pre_and_the_dce_images_are_the_series_frames_case_json_names``: the T1-pre taken from frame 1.
- ``test_series_motion_stays_within_the_documented_bounds``: the translation drawn up to twice its bound.
- ``test_each_field_of_view_centre_lies_within_its_offset_range_in_the_slice_axes``: the grid origin placed without
  the exam's orientation.
- ``test_a_random_field_has_unit_variance``: the field's norm √(1/modes) instead of √(2/modes).
- ``test_tissue_draws_lie_in_their_ranges_in_seconds``: the flow/inflow defaults written over a vessel's own flow.
- ``test_lesion_kinetics_follow_their_kind``: kep recorded as ve/Ktrans, a less-enhancing lesion above its zone.
- ``test_a_core_voxel_needs_six_of_its_eight_sub_points``: the core rule made strict (7 of 8).
- ``test_urine_is_the_bladder_deeper_than_six_mm_on_an_anisotropic_grid``: the label grid's spacing in (x, y, z) order.
- ``test_a_lesions_ring_is_its_own_zone_two_to_eight_mm_from_it``: the ring taken from any label, not the lesion's
  zone.
- ``test_case_json_grids_are_the_written_files_geometry_with_the_direction_listed_by_axis``: case.json's grid
  direction written row by row (session-64 audit).
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.phantom import acquisition
from DCEDiffLib.phantom.anatomy import LABEL_LEGEND, build_anatomy
from DCEDiffLib.phantom.generator import case_anatomy, case_seed, generate_case, generate_dataset
from DCEDiffLib.phantom.tissues import (TISSUE_RANGES, SmoothRandomField, sample_lesion_tissue, sample_tissues)


def test_case_seeds_never_repeat_across_cases_and_dataset_seeds():
    seeds = {(s, i): case_seed(s, i) for s in range(25) for i in range(25)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= v < 2 ** 31 for v in seeds.values())


def test_mixed_anatomy_draws_both_templates():
    drawn = [case_anatomy(seed, "mixed") for seed in range(200)]
    families = {family for family, _ in drawn}
    templates = {template for family, template in drawn if family == "prostatex"}
    assert families == {"procedural", "prostatex"}
    assert templates == {"prostatex_0000", "prostatex_0001"}


def test_a_dataset_starting_at_a_later_index_records_that_cases_seed_everywhere(tmp_path):
    out = tmp_path / "data"
    generate_dataset(out, 1, "A", seed=7, first_index=2, include_series=False)
    case = json.loads((out / "case_002" / "case.json").read_text())
    listed = json.loads((out / "dataset.json").read_text())["cases"]
    assert case["seed"] == case_seed(7, 2)                      # "Case i uses case_seed(seed, i)"
    assert case["dataset"] == {"seed": 7, "index": 2}
    assert [(c["case_id"], c["seed"]) for c in listed] == [("case_002", case_seed(7, 2))]


@pytest.fixture(scope="module")
def both_domains():
    return generate_case(11, "A", lesion_count=2), generate_case(11, "B", lesion_count=2)


def test_one_seed_is_one_patient_in_both_domains(both_domains):
    # generator: "The same seed in domains A and B is the same patient scanned at two sites."
    a, b = (case.params for case in both_domains)
    # the balloon empties the rectum in domain B (pd 0); every other tissue is the patient's own
    assert {k: v for k, v in a["tissues"].items() if k != "rectal_content"} == \
        {k: v for k, v in b["tissues"].items() if k != "rectal_content"}
    keys = ("kind", "zone", "diameter_mm", "ktrans_per_min", "adc")
    assert [{k: l[k] for k in keys} for l in a["lesions"]] == [{k: l[k] for k in keys} for l in b["lesions"]]
    assert a["anatomy"]["gland_semi_axes_mm"][0] == b["anatomy"]["gland_semi_axes_mm"][0]


def test_the_t1pre_and_the_dce_images_are_the_series_frames_case_json_names(both_domains):
    for case in both_domains:
        frames = sitk.GetArrayFromImage(case.dce_series)           # (t, k, j, i)
        dce = case.params["dce"]
        for key, frame in (("t1pre", dce["t1pre_frame"]), ("dce_early", dce["early_frame"]),
                           ("dce_late", dce["late_frame"])):
            assert np.array_equal(sitk.GetArrayFromImage(case.images[key]), frames[frame]), key
        assert dce["t1pre_frame"] == 0 and dce["late_frame"] == dce["frames"] - 1


def _plans(count=30):
    for seed in range(count):
        rng = np.random.default_rng(seed)
        anatomy = build_anatomy(rng, sample_tissues(rng), lesion_count=0)
        yield acquisition.plan_exam(np.random.default_rng([seed, 2]), "AB"[seed % 2], anatomy), anatomy


def test_series_motion_stays_within_the_documented_bounds():
    # "Between series the patient moves a little (rigid, ≤ 2° and ≤ 2.5 mm, recorded in case.json)"
    for plan, anatomy in _plans():
        for name, series in plan.series.items():
            summary = series.motion_summary(anatomy.centre_lps)
            assert summary["rotation_angle_deg"] <= acquisition.MAX_ROTATION_DEG + 1e-6
            assert summary["translation_norm_mm"] <= acquisition.MAX_TRANSLATION_MM + 1e-6


def test_each_field_of_view_centre_lies_within_its_offset_range_in_the_slice_axes():
    for plan, anatomy in _plans():
        for name, series in plan.series.items():
            grid = series.grid
            centre = np.asarray(grid.origin) + grid.matrix() @ ((np.asarray(grid.size) - 1) / 2.0)
            offset = plan.orientation.T @ (centre - anatomy.centre_lps)  # in the exam's slice axes
            ranges = plan.domain.series[name].fov_offset_mm
            for value, (low, high) in zip(offset, ranges):
                assert low - 1e-6 <= value <= high + 1e-6, (name, offset)


def test_a_random_field_has_unit_variance():
    values = []
    for seed in range(20):
        field = SmoothRandomField(np.random.default_rng(seed), 5.0)
        points = np.random.default_rng(100 + seed).uniform(-2000, 2000, (3, 5000)).astype(np.float32)
        values.append(field(*points))
    values = np.concatenate(values)
    assert np.mean(values ** 2) == pytest.approx(1.0, abs=0.1)       # "zero-mean, unit-variance"
    assert np.mean(values) == pytest.approx(0.0, abs=0.1)


def test_tissue_draws_lie_in_their_ranges_in_seconds():
    for seed in range(5):
        tissues = sample_tissues(np.random.default_rng(seed))
        for name, spec in TISSUE_RANGES.items():
            for key, value in spec.items():
                low, high = (value, value) if not isinstance(value, tuple) else value
                scale = 1000.0 if key in ("t1", "t2") else 1.0    # the table is in ms, the tissues in s
                got = tissues[name].values[key] * scale
                assert low - 1e-9 <= got <= high + 1e-9, (name, key, got)


def test_lesion_kinetics_follow_their_kind():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        tissues = sample_tissues(rng)
        zone = tissues["peripheral_zone" if seed % 2 else "transition_zone"]
        for kind in ("textbook", "less_enhancing"):
            tissue, info = sample_lesion_tissue(rng, "lesion_1", kind, zone)
            v = tissue.values
            assert info["kep_per_min"] == pytest.approx(v["ktrans"] / v["ve"], abs=1e-4)   # Tofts: kep = Ktrans / ve
            if kind == "less_enhancing":                   # "enhances less than the gland"
                assert tissue.values["ktrans"] < zone.values["ktrans"]
            else:
                assert tissue.values["ktrans"] > zone.values["ktrans"]


# --- realism's regions --------------------------------------------------------------------------------------------

def _image(array, spacing, origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(np.asarray(array))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def _fake_case(labels, spacing, reference=None):
    label_image = _image(labels.astype(np.uint8), spacing)
    t2w = _image(np.zeros(labels.shape, np.int16), spacing)
    images = {"t2w": t2w, "t1pre": reference if reference is not None else t2w}
    params = {"label_legend": dict(LABEL_LEGEND), "lesions": [], "series": {"t2w": {}, "dce": {}}}
    return types.SimpleNamespace(params=params, images=images, labels=label_image)


def test_a_core_voxel_needs_six_of_its_eight_sub_points():
    from DCEDiffLib.phantom.realism import region_masks

    labels = np.full((8, 8, 8), LABEL_LEGEND["fat"], dtype=np.uint8)
    # DCE voxels twice the label voxels, centred on label-voxel corners: each DCE voxel's 2×2×2 sub-points are the
    # centres of 8 label voxels. DCE voxel (1, 1, 1) covers label voxels 2..3 on each axis.
    labels[2, 2, 2:4] = LABEL_LEGEND["muscle"]                 # 6 of 8 fat: a fat core voxel
    labels[2, 2, 6:8] = LABEL_LEGEND["muscle"]
    labels[3, 2, 6] = LABEL_LEGEND["muscle"]                   # DCE voxel (1, 1, 3): 5 of 8 fat: not a core voxel
    reference = _image(np.zeros((4, 4, 4), np.int16), (2.0, 2.0, 2.0), (0.5, 0.5, 0.5))
    fat = region_masks(_fake_case(labels, (1.0, 1.0, 1.0), reference), "dce")["fat"]
    assert fat[1, 1, 1]
    assert not fat[1, 1, 3]
    assert fat[0, 0, 0] and fat.sum() == 63


def test_urine_is_the_bladder_deeper_than_six_mm_on_an_anisotropic_grid():
    from DCEDiffLib.phantom.realism import URINE_DEPTH_MM, region_masks

    labels = np.zeros((14, 40, 40), dtype=np.uint8)            # (k, j, i); voxels 1 × 1 mm in-plane, 3 mm thick
    labels[2:12, 5:35, 5:35] = LABEL_LEGEND["bladder"]
    urine = region_masks(_fake_case(labels, (1.0, 1.0, 3.0)), "t2w")["urine"]
    # depth of a box voxel: the distance to the nearest outside voxel centre, the least over the axes
    k, j, i = np.indices(labels.shape)
    depth = np.minimum.reduce([(np.minimum(k - 2, 11 - k) + 1) * 3.0, np.minimum(j - 5, 34 - j) + 1.0,
                               np.minimum(i - 5, 34 - i) + 1.0])
    expected = (labels > 0) & (depth > URINE_DEPTH_MM)
    assert expected.any()
    assert np.array_equal(urine, expected)


def test_a_lesions_ring_is_its_own_zone_two_to_eight_mm_from_it(both_domains):
    from scipy import ndimage

    from DCEDiffLib.phantom.realism import RING_MM, region_masks

    case = both_domains[0]
    labels = sitk.GetArrayFromImage(case.labels)
    spacing = np.asarray(case.labels.GetSpacing())[::-1]
    masks = region_masks(case, "t2w")
    assert case.params["lesions"]
    for info in case.params["lesions"]:
        lesion, ring = masks[f"lesion_{info['id']}"], masks[f"around_{info['id']}"]
        assert lesion.any() and ring.any()
        assert np.all(labels[ring] == LABEL_LEGEND[info["zone"]])
        distance = ndimage.distance_transform_edt(~lesion, sampling=spacing)[ring]
        assert distance.min() > RING_MM[0] and distance.max() <= RING_MM[1] + 1e-9


def test_case_json_grids_are_the_written_files_geometry_with_the_direction_listed_by_axis(tmp_path):
    """case.json's ``series.<name>.grid`` is the geometry of the file written for that series; its ``direction`` lists
    the three axis vectors (column by column), i.e. the transpose of SimpleITK's row-major ``GetDirection()``.

    From the session-64 audit (throwaway seed 777392): a reader comparing the two without the transpose finds every
    oblique series "different". Locks the documented convention (docs/phantom.md); no code was changed."""
    out = tmp_path / "data"
    generate_dataset(out, 1, "B", seed=777392, include_series=False, anatomy="mixed")
    case_dir = out / "case_000"
    params = json.loads((case_dir / "case.json").read_text())
    files = {"t2w": "t2w", "pd": "pd", "adc": "adc", "dce": "dce_early", "labels": "labels"}
    for series, name in files.items():
        grid = params["series"]["t2w" if series == "labels" else series]["grid"]
        image = sitk.ReadImage(str(case_dir / f"{name}.nii.gz"))
        rows = np.asarray(image.GetDirection()).reshape(3, 3)
        assert list(image.GetSize()) == grid["size"], series
        assert np.allclose(image.GetSpacing(), grid["spacing"], atol=1e-5), series
        assert np.allclose(image.GetOrigin(), grid["origin"], atol=1e-4), series
        assert np.allclose(rows.ravel(order="F"), grid["direction"], atol=1e-6), series
        assert not np.allclose(rows, rows.T, atol=1e-3), series  # oblique: the order of the listing matters
