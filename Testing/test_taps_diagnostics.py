"""The diagnostics behind docs/phantom.md's "Why TAPS finds no procedural gland" (scripts/taps_dice_on_phantom.py,
scripts/taps_context_probe.py): their image surgery does what the table says it does."""

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from taps_context_probe import paste  # noqa: E402
from taps_dice_on_phantom import procedural_variant  # noqa: E402

from DCEDiffLib.phantom import LABEL_LEGEND, generate_case  # noqa: E402


def test_paste_moves_the_region_scales_it_and_leaves_the_rest():
    target = np.zeros((3, 6, 6), np.float32)
    source = np.arange(3 * 6 * 6, dtype=np.float32).reshape(3, 6, 6)
    region = np.zeros((3, 6, 6), bool)
    region[1, 1:3, 1:3] = True
    out, moved = paste(target, source, region, np.array([0, 2, 3]), 2.0)
    assert moved.sum() == 4 and moved[1, 3:5, 4:6].all()
    assert np.array_equal(out[1, 3:5, 4:6], 2.0 * source[1, 1:3, 1:3])
    assert out[~moved].max() == 0 and target.max() == 0  # the input is not modified
    # what would fall outside the volume is dropped, not wrapped around
    out, moved = paste(target, source, region, np.array([0, 4, 4]), 1.0)
    assert moved.sum() == 1 and out[1, 5, 5] == source[1, 1, 1]


def test_pelvis_compartments_make_the_body_muscle_with_fat_around_gland_and_rectum():
    with procedural_variant(False, False, compartments=True):
        variant = generate_case(5, "A", anatomy="procedural", lesion_count=0)
    plain = generate_case(5, "A", anatomy="procedural", lesion_count=0)
    labels_variant = sitk.GetArrayFromImage(variant.labels)
    labels_plain = sitk.GetArrayFromImage(plain.labels)
    muscle, fat = LABEL_LEGEND["muscle"], LABEL_LEGEND["fat"]
    assert (labels_variant == muscle).sum() > 2 * (labels_plain == muscle).sum()
    assert (labels_variant == fat).sum() < (labels_plain == fat).sum()
    # the gland, bladder and rectum are painted as before (the compartments go under them)
    for name in ("peripheral_zone", "bladder", "rectum"):
        value = LABEL_LEGEND[name]
        assert np.array_equal(labels_variant == value, labels_plain == value), name
