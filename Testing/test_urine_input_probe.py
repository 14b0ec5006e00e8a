"""scripts/urine_input_probe.py: the urine mask (the bladder without its outer URINE_DEPTH_MM) and the one-channel
replacement that leaves the rest of the conditions as they were."""

import numpy as np

from script_module import load_script


def test_urine_is_the_bladder_deeper_than_the_margin_and_replacement_touches_one_channel_inside_it():
    script = load_script("urine_input_probe")
    labels = np.zeros((3, 30, 30), np.int16)
    labels[:, 5:25, 5:25] = 4                                  # a 20 × 20 mm bladder at 1 mm
    urine = script.urine_mask(labels, 4, (100.0, 1.0, 1.0))
    assert urine[1, 15, 15] and not urine[1, 6, 15]            # the centre is urine, 2 mm from the edge is wall
    assert urine.sum() == 3 * 8 * 8                             # deeper than 6 mm: the inner 8 × 8 of each slice
    conditions = np.zeros((4, 3, 30, 30), np.float32)
    replaced = script.with_channel_replaced(conditions, 2, urine, 0.5)
    assert (replaced[2][urine] == 0.5).all() and (replaced[2][~urine] == 0).all()
    assert not replaced[[0, 1, 3]].any() and not conditions.any()   # other channels and the input untouched
