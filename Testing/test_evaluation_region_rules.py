"""Evaluation region rules at their definition: the reference tissue prefers fat to muscle, and the body mask's
closing does not leave dark voxels on the grid's edge out of a body that fills the grid (found by a mutation
audit)."""

import numpy as np


def test_the_reference_tissue_is_fat_when_the_legend_names_fat_and_muscle():
    """case_evaluation: REFERENCE_TISSUE_WORDS = non-enhancing reference tissue "in order": fat first, muscle only
    when the legend names no fat."""
    from DCEDiffLib.evaluation.case_evaluation import REFERENCE_TISSUE_WORDS, region_masks

    assert REFERENCE_TISSUE_WORDS[0] == "fat"
    labels = np.zeros((2, 6, 6), dtype=np.uint8)
    labels[:, :3] = 1   # fat
    labels[:, 3:] = 2   # muscle
    masks, _ = region_masks(labels, {"background": 0, "muscle": 2, "fat": 1}, labels.shape)
    assert np.array_equal(masks["reference_tissue"], labels == 1)
    masks, _ = region_masks(labels, {"background": 0, "Muscle": 2}, labels.shape)
    assert np.array_equal(masks["reference_tissue"], labels == 2)


def test_a_body_that_fills_the_grid_keeps_the_dark_voxels_on_its_edge():
    """derive_body_mask: closing per slice with *edge* padding, "so that closing does not erode tissue that touches
    the edge of the grid" (the working grid may be all tissue). A grid filled with tissue and single dark voxels
    (below 0.1 × the 99.5th percentile) along its edges and inside: the closed, hole-filled mask is the whole grid."""
    from DCEDiffLib.evaluation.case_evaluation import derive_body_mask

    volume = np.full((3, 24, 24), 100.0)
    for k in range(3):
        volume[k, 0, 2::5] = 1.0      # dark voxels on the top edge
        volume[k, 2::5, -1] = 1.0     # on the right edge
        volume[k, 12, 12] = 1.0       # and one inside (a hole)
    mask = derive_body_mask(volume)
    assert mask.all()
