"""The fat_gain and centre_dark augmentations (training/augmentation.py): what they brighten or darken, that T1-pre
and the DCE share one field (the enhancement relative to the T1-pre stays), that crops of one grid see one field,
that the batches find the fat in the label map, and that runs without them keep their batches."""

import numpy as np
import pytest
import torch

from DCEDiffLib.training.augmentation import augment_slice, centre_dark_field, check_augmentation, soft_mask
from DCEDiffLib.training.batches import SliceBatches
from DCEDiffLib.training.case_data import CaseArrays

from test_training import tiny_case

CHANNELS = ["t2w", "pd", "adc", "t1pre"]


def _flat(value=0.0, size=24):
    return np.full((4, size, size), value, np.float32), np.full((2, size, size), 0.5, np.float32)


def test_fat_gain_brightens_only_fat_and_keeps_the_enhancement_ratio():
    settings = check_augmentation({"fat_gain": 1.0})
    fat = np.zeros((24, 24), bool)
    fat[:, :8] = True
    gains = []
    for seed in range(20):
        cond, target = augment_slice(np.random.default_rng(seed), *_flat(), CHANNELS, settings, fat_mask=fat)
        intensity = cond + 1
        assert np.allclose(intensity[:, :, 16:], 1.0)              # far from the fat: untouched
        assert np.allclose(intensity[2], 1.0)                      # the ADC has no fat gain
        gain = intensity[3, 5, 2]
        assert 1.0 <= gain <= 2.0 + 1e-6                            # fat up to 1 + fat_gain
        assert np.allclose((target + 1) / intensity[3], 1.5, atol=1e-5)  # T1-pre and DCE scaled together
        gains.append(gain)
    assert max(gains) > 1.6 and min(gains) < 1.2                    # the gain is drawn, not fixed
    # the PD gets its own draw
    assert any(not np.isclose(augment_slice(np.random.default_rng(s), *_flat(), CHANNELS, settings,
                                            fat_mask=fat)[0][1, 5, 2], gains[s]) for s in range(20))


def test_soft_mask_ramps_over_two_pixels():
    mask = np.zeros((6, 10), bool)
    mask[:, :5] = True
    row = soft_mask(mask)[3]
    assert row[0] == 1.0 and row[-1] == 0.0
    assert np.all(np.diff(row) <= 1e-7) and 0 < row[4] < 1 and 0 < row[5] < 1


def test_centre_dark_darkens_the_grid_centre_and_crops_share_the_field():
    full = centre_dark_field(np.random.default_rng(4), (160, 160), (slice(None), slice(None)), 1.0)
    assert full.max() <= 1.0 + 1e-6 and full.min() >= 0.5 - 1e-6       # at most 1 + amplitude darker
    assert full[80, 80] < full[0, 80] and full[80, 80] < full[80, 0] + 1e-6
    crop = centre_dark_field(np.random.default_rng(4), (160, 160), (slice(30, 126), slice(40, 136)), 1.0)
    assert np.allclose(full[30:126, 40:136], crop)
    darkest = min(centre_dark_field(np.random.default_rng(s), (64, 64), (slice(None), slice(None)), 1.0)[32, 32]
                  for s in range(30))
    assert darkest < 0.6


def test_centre_dark_keeps_the_enhancement_ratio_in_a_crop():
    settings = check_augmentation({"centre_dark": 1.0})
    cond, target = augment_slice(np.random.default_rng(1), *_flat(), CHANNELS, settings,
                                 grid_shape=(64, 64), window=(slice(20, 44), slice(20, 44)))
    assert (cond[3] + 1).min() < 0.99                               # the centre was darkened
    assert np.allclose((target + 1) / (cond[3] + 1), 1.5, atol=1e-5)


def test_new_keys_are_checked_and_off_by_default():
    assert check_augmentation({})["fat_gain"] == 0.0 and check_augmentation({})["centre_dark"] == 0.0
    with pytest.raises(ValueError, match="fat_gain"):
        check_augmentation({"fat_gain": 3.0})
    with pytest.raises(ValueError, match="centre_dark"):
        check_augmentation({"centre_dark": -0.1})


def _case_with_fat(name, seed):
    case = tiny_case(name, seed, size=32, slices=4)
    labels = np.zeros(case.conditions.shape[1:], np.int16)
    labels[:, :, :10] = 1                                           # fat on the left
    return CaseArrays(name, case.conditions, case.targets, labels, {"background": 0, "fat": 1}, case.norm, {})


def test_batches_give_the_fat_of_each_crop_and_old_runs_keep_their_batches():
    cases = [_case_with_fat("a", 1), _case_with_fat("b", 2)]
    plain = SliceBatches(cases, 3, 16, seed=5, augment={"gamma": 0.3})
    same = SliceBatches(cases, 3, 16, seed=5, augment={"gamma": 0.3, "fat_gain": 0.0})
    for step in range(3):
        assert all(torch.equal(x, y) for x, y in zip(plain.batch(step), same.batch(step)))
    gained = SliceBatches(cases, 8, 32, seed=5, augment={"fat_gain": 1.0}, flip_left_right=False)
    cond, target = gained.batch(0)
    base = np.stack([c.conditions[:, k] for c in cases for k in range(4)])
    # crops are the whole 32×32 slice here; the fat columns changed, the columns away from it did not
    for b in range(cond.shape[0]):
        t1 = cond[b, 3].numpy()
        matches = [i for i in range(len(base)) if np.allclose(base[i][3][:, 20:], t1[:, 20:], atol=1e-6)]
        assert matches, "columns away from the fat must be unchanged"
    assert not torch.equal(cond, SliceBatches(cases, 8, 32, seed=5, flip_left_right=False).batch(0)[0])


def test_t1_level_lowers_t1pre_and_targets_together_in_about_half_the_slices():
    settings = check_augmentation({"t1_level": 0.6})
    factors = []
    for seed in range(200):
        cond, target = augment_slice(np.random.default_rng(seed), *_flat(0.2), CHANNELS, settings)
        factor = float(cond[3, 0, 0] + 1) / 1.2
        assert np.allclose(cond[:3], 0.2)                                # T2W, PD, ADC untouched
        assert np.allclose((target + 1) / (cond[3] + 1), 1.5 / 1.2, atol=1e-5)  # the relative step stays
        assert 0.4 - 1e-6 <= factor <= 1.0 + 1e-6
        factors.append(factor)
    lowered = np.array(factors) < 1 - 1e-6
    assert 0.35 < lowered.mean() < 0.65 and min(factors) < 0.5
    # the other draws are those of a run without it: a slice left at factor 1 is the unaugmented one exactly
    plain = check_augmentation({"gamma": 0.3, "noise": 0.02})
    both = check_augmentation({"gamma": 0.3, "noise": 0.02, "t1_level": 0.6})
    for seed in range(10):
        a = augment_slice(np.random.default_rng(seed), *_flat(0.1), CHANNELS, plain)
        b = augment_slice(np.random.default_rng(seed), *_flat(0.1), CHANNELS, both)
        assert np.array_equal(a[0][:3], b[0][:3])
    with pytest.raises(ValueError, match="t1_level"):
        check_augmentation({"t1_level": 1.0})


def test_drop_pd_is_the_probability_that_pd_is_missing():
    """augment.drop_pd: 'the probability that the PD channel is missing'. With 0.1, about a tenth of 3000 slices
    lose their PD (binomial sd 0.55 %): 7–13 %, never 90 %."""
    from DCEDiffLib.modalities import MISSING_INPUT_VALUE
    from DCEDiffLib.training.augmentation import augment_slice, check_augmentation

    settings = check_augmentation({"drop_pd": 0.1})
    cond = np.full((4, 8, 8), 0.5, dtype=np.float32)
    target = np.zeros((2, 8, 8), dtype=np.float32)
    rng = np.random.default_rng(0)
    names = ("t2w", "pd", "adc", "t1pre")
    dropped = sum(bool(np.all(augment_slice(rng, cond, target, names, settings)[0][1] == MISSING_INPUT_VALUE))
                  for _ in range(3000))
    assert 0.07 < dropped / 3000 < 0.13
