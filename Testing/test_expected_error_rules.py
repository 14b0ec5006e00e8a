"""Expected-error map and voxel-corrector rules at their definitions (found by a mutation audit): a voxel on a shell
boundary belongs to one radial shell, an enhancement bin's node is its median, a factor table has as many factors as
nodes, the corrector's features measure against the central gland and count slices from the grid's centre, a
correction never leaves [-1, 1], tree indices point inside the nodes and the features cover what the trees read."""

import numpy as np
import pytest

from DCEDiffLib import ood
from DCEDiffLib.diffusion import voxel_corrector as vc
from DCEDiffLib.diffusion.error_map import fit_enhancement_factor, fit_radial_factor


def test_a_voxel_on_a_shell_boundary_counts_in_one_shell_only():
    """fit_radial_factor: per shell [low, high) of the radii, mean |error| / mean estimate, the shell's mean radius
    its node. Voxels at r = 0.25 (error twice the estimate), exactly 0.5 and 0.75 (error equal to it): the first
    shell holds only the r = 0.25 voxels (factor 2, node 0.25); the r = 0.5 voxels are the second shell's, with the
    r = 0.75 ones (factor 1, node 0.625)."""
    radii = np.repeat([0.25, 0.5, 0.75], 300)
    estimates = np.full(radii.size, 0.1)
    errors = np.where(radii == 0.25, 0.2, 0.1)
    table = fit_radial_factor([estimates], [errors], [radii], min_voxels=200)
    assert table["nodes"] == pytest.approx([0.25, 0.625])
    assert table["factor"] == pytest.approx([2.0, 1.0])


def test_an_enhancement_bins_node_is_its_median_enhancement():
    """fit_enhancement_factor: each bin's node is 'the bin's median enhancement'. Two bins of 300 voxels, skewed:
    (200 × 0.0, 100 × 0.3) and (200 × 1.0, 100 × 4.0): medians 0.0 and 1.0 (their means would be 0.1 and 2.0)."""
    drawn = np.concatenate([np.zeros(200), np.full(100, 0.3), np.full(200, 1.0), np.full(100, 4.0)])
    estimates = np.full(drawn.size, 0.1)
    errors = np.where(drawn < 0.5, 0.05, 0.3)
    table = fit_enhancement_factor([estimates], [errors], [drawn], bins=2, min_voxels=200)
    assert table["nodes"] == pytest.approx([0.0, 1.0])
    assert table["factor"] == pytest.approx([0.5, 3.0])


def _features(conditions, enhancement, region):
    radius = ood.gland_radius(conditions.shape[1:])
    return vc.voxel_features(conditions, enhancement, radius, region)


def test_vs_gland_features_are_measured_against_the_central_gland():
    """voxel_features: '<channel>_vs_gland' is the value minus the median of the central gland (radius ≤ 1), not of
    the whole grid. A T2W of 0.5 inside the central ellipsoid and -0.5 around it (most of the grid): a gland voxel is
    0 against the gland, a voxel outside -1."""
    k, size = 8, 48
    radius = ood.gland_radius((k, size, size))
    conditions = np.zeros((4, k, size, size), np.float32)
    conditions[0] = np.where(radius <= 1.0, 0.5, -0.5)
    assert np.median(conditions[0]) == -0.5  # the whole grid's median is the outside's
    enhancement = np.zeros((2, k, size, size), np.float32)
    region = np.zeros(radius.shape, bool)
    region[k // 2, size // 2, size // 2] = True    # the centre (raster order: first row)
    region[k // 2, 1, 1] = True                    # a corner, far outside the gland
    names = vc.feature_names()
    features = _features(conditions, enhancement, region)
    column = names.index("t2w_vs_gland")
    assert features[:, column].tolist() == pytest.approx([-1.0, 0.0])


def test_the_slice_offset_counts_from_the_grids_centre_slice():
    """voxel_features' 'slice_offset': the slice's distance from the grid's centre slice, as ood.gland_radius
    measures from the centre: 0 on the middle slice of an odd number of slices, opposite on mirrored slices."""
    k, size = 5, 32
    conditions = np.random.default_rng(0).uniform(-1, 1, (4, k, size, size)).astype(np.float32)
    enhancement = np.zeros((2, k, size, size), np.float32)
    region = np.zeros((k, size, size), bool)
    region[:, size // 2, size // 2] = True  # one voxel per slice, in slice order
    offsets = _features(conditions, enhancement, region)[:, vc.feature_names().index("slice_offset")]
    assert offsets.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    even = _features(conditions[:, :4], enhancement[:, :4], region[:4])[:, -1]
    assert even.tolist() == [-1.5, -0.5, 0.5, 1.5]


def _constant_tree(value: float) -> vc.TreeEnsemble:
    return vc.TreeEnsemble(feature=np.array([0]), threshold=np.array([0.0]), left=np.array([0]), right=np.array([0]),
                           is_leaf=np.array([True]), missing_left=np.array([False]), value=np.array([value]),
                           roots=np.array([0]), baseline=0.0)


def test_a_correction_never_leaves_the_targets_range():
    """VoxelCorrector.correct: the synthetic images 'plus the predicted correction ..., clipped to [-1, 1]' (the
    model's target range): a +0.5 correction of a voxel at 0.8 gives 1.0, a -0.5 one of a voxel at -0.8 gives -1."""
    k, size = 8, 48
    conditions = np.random.default_rng(1).uniform(-1, 1, (4, k, size, size)).astype(np.float32)
    synthetic = np.stack([np.full((k, size, size), 0.8, np.float32), np.full((k, size, size), -0.8, np.float32)])
    zero = np.full((k, size, size), -0.9, np.float32)
    corrector = vc.VoxelCorrector({"dce_early": _constant_tree(0.5), "dce_late": _constant_tree(-0.5)},
                                  ("dce_early", "dce_late"))
    out = corrector.correct(synthetic, conditions, zero)
    centre = ood.gland_radius((k, size, size)) <= vc.REGION_RADIUS - vc.TAPER
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert np.all(out[0][centre] == 1.0) and np.all(out[1][centre] == -1.0)


def test_a_factor_table_with_more_nodes_than_factors_is_refused_at_load_time():
    """error_models_of_card: a factor table needs '≥ 2 increasing nodes and as many finite positive factors'; three
    nodes with two factors is a malformed card (np.interp would fail only in the middle of a synthesis)."""
    from DCEDiffLib.diffusion.error_map import ENHANCEMENT_FEATURE, ERROR_MODEL_VERSION, LEVEL_FEATURE, \
        error_models_of_card
    from DCEDiffLib.errors import ModelFileError

    table = {"nodes": [0.0, 0.1, 0.3], "mean_abs_error": [0.01, 0.02, 0.05]}
    for key, feature in (("radial", None), ("t1pre_level_factor", LEVEL_FEATURE),
                         ("enhancement_factor", ENHANCEMENT_FEATURE)):
        good = {"nodes": [0.2, 0.5, 1.0], "factor": [2.0, 1.5, 1.0]}
        if feature is not None:
            good["feature"] = feature
        card = {"targets": ["dce_early"], "conditions": ["t2w", "pd", "adc", "t1pre"],
                "error_model": {"version": ERROR_MODEL_VERSION, "targets": {"dce_early": dict(table, **{key: good})}}}
        assert error_models_of_card(card, ["dce_early"])["dce_early"][key]["factor"] == [2.0, 1.5, 1.0]
        card["error_model"]["targets"]["dce_early"][key] = dict(good, factor=[2.0, 1.0])
        with pytest.raises(ModelFileError, match=key):
            error_models_of_card(card, ["dce_early"])


def _stump_tensors():
    """One split (feature 1 ≤ 0 → leaf 1, else leaf 2) as the arrays of a tree file, three nodes."""
    tree = vc.TreeEnsemble(feature=np.array([1, 0, 0]), threshold=np.array([0.0, 0.0, 0.0]),
                           left=np.array([1, 0, 0]), right=np.array([2, 0, 0]), is_leaf=np.array([False, True, True]),
                           missing_left=np.array([False, False, False]), value=np.array([0.0, -1.0, 1.0]),
                           roots=np.array([0]), baseline=0.0)
    return tree, tree.tensors("t")


def test_a_child_index_one_past_the_last_node_is_refused():
    """TreeEnsemble.from_tensors: child and root indices must point inside the nodes (0 … n - 1); with 3 nodes, an
    index of 3 is outside."""
    _, tensors = _stump_tensors()
    for name, bad in (("left", [3, 0, 0]), ("right", [3, 0, 0]), ("roots", [3])):
        broken = dict(tensors, **{f"t.{name}": np.array(bad)})
        with pytest.raises(ValueError, match=f"{name} points outside the 3 nodes"):
            vc.TreeEnsemble.from_tensors(broken, "t", 0.0)


def test_features_with_too_few_columns_for_the_trees_are_refused():
    """TreeEnsemble.predict: (N, F) features with F greater than the largest feature index the trees read; a tree
    reading feature 1 needs two columns."""
    tree, _ = _stump_tensors()
    assert tree.predict(np.array([[0.0, -1.0], [0.0, 1.0]])).tolist() == [-1.0, 1.0]
    with pytest.raises(ValueError, match="F > 1"):
        tree.predict(np.zeros((4, 1)))
