"""scripts/target_range_exceedance.py: the share of each region above the targets' range top, on hand-made volumes
whose answer is known."""

import numpy as np

from script_module import load_script


def test_counts_per_target_and_region():
    script = load_script("target_range_exceedance")
    legend = {"vessel": 6, "peripheral_zone": 7, "transition_zone": 8}     # no lesion label: no lesion row
    labels = np.zeros((1, 4, 4), np.int16)
    labels[0, 0, :2] = 6
    labels[0, 1, :] = 7
    targets = np.zeros((2, 1, 4, 4), np.float32)
    targets[0, 0, 0, 0] = 1.5          # one of two vessel voxels above the top early
    targets[1, 0, 1, :] = 1.0          # the gland exactly at the top late: not above
    counts = script.above_top_counts(targets, labels, legend, ("dce_early", "dce_late"))
    assert counts[("dce_early", "vessel")] == (1, 2)
    assert counts[("dce_early", "all")] == (1, 16)
    assert counts[("dce_late", "gland")] == (0, 4)
    assert not any(region == "lesion" for _, region in counts)
