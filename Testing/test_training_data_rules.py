"""What the training data are made of: loss weights on the right pixels, augmentation fields in their documented
ranges, case folders, checkpoints that name what they train.

From the session-56 mutation audit, round 14. Each test asserts what follows from the documented rule (docstrings of
``training/batches.py``, ``augmentation.py``, ``case_data.py``, ``checkpoint.py``, ``config.py``) or from geometry,
not a value copied from the current output. Per test, the mutation it kills:

- ``test_loss_weights_follow_their_region_through_crops_and_flips``: the weights left unflipped when the crop is
  flipped (the lesion weight then lies on other pixels than the lesion), a region weight that replaces the weight 1
  instead of adding to it.
- ``test_the_urine_weight_is_the_bladder_deeper_than_six_mm_on_thick_slices``: the grid's spacing handed to the
  urine rule in (x, y, z) order instead of (k, j, i).
- ``test_a_bias_field_stays_within_its_amplitude``: the polynomial field left unnormalised.
- ``test_adc_scale_multiplies_the_adc_intensities_by_one_factor_within_its_range``: the factor drawn beyond 1 + a.
- ``test_a_folder_without_a_t2w_or_preprocess_json_is_not_a_case``: every sub-folder taken for a case.
- ``test_a_checkpoint_and_a_run_must_train_the_same_companions``: a checkpoint's extra companion accepted, a missing
  one accepted (left at its random start).
- ``test_a_negative_region_weight_is_refused``: negative weights accepted (a region would be un-learned).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from DCEDiffLib.errors import InputError
from DCEDiffLib.training.augmentation import _bias_field, augment_slice, check_augmentation
from DCEDiffLib.training.batches import SliceBatches, region_weight_map
from DCEDiffLib.training.case_data import CaseArrays

from test_training import tiny_case

LESION, BLADDER = 9, 4


def _case(labels, targets=None, spacing=(1.0, 1.0, 1.0), name="a"):
    k, h, w = labels.shape
    cond = np.random.default_rng(0).uniform(-1, 1, (4, k, h, w)).astype(np.float32)
    if targets is None:
        targets = np.zeros((2, k, h, w), np.float32)
    return CaseArrays(name, cond, targets, labels.astype(np.int16), {"lesion": LESION, "bladder": BLADDER},
                      tiny_case(name, 0).norm, {"spacing": list(spacing)})


def test_loss_weights_follow_their_region_through_crops_and_flips():
    labels = np.zeros((3, 24, 24), np.int16)
    labels[:, 3:9, 2:7] = LESION                                  # off-centre: a flip moves it
    targets = np.where(labels == LESION, 0.5, -0.5).astype(np.float32)[None].repeat(2, 0)
    batches = SliceBatches([_case(labels, targets)], batch_size=8, crop_size=16, seed=3,
                           region_weights={"lesion": 4.0}, flip_left_right=True)
    seen = 0
    for step in range(6):
        _, target, weights = batches.weighted_batch(step)
        in_lesion = target[:, 0] > 0
        assert torch.all(weights[in_lesion] == 5.0)                # "1 everywhere plus region_weights[name]"
        assert torch.all(weights[~in_lesion] == 1.0)
        seen += int(in_lesion.sum())
    assert seen > 0


def test_the_urine_weight_is_the_bladder_deeper_than_six_mm_on_thick_slices():
    from DCEDiffLib.phantom.realism import URINE_DEPTH_MM

    labels = np.zeros((14, 40, 40), np.int16)                     # (k, j, i); spacing (x, y, z) = (1, 1, 3) mm
    labels[2:12, 5:35, 5:35] = BLADDER
    weight = region_weight_map(_case(labels, spacing=(1.0, 1.0, 3.0)), {"urine": 2.0})
    k, j, i = np.indices(labels.shape)
    depth = np.minimum.reduce([(np.minimum(k - 2, 11 - k) + 1) * 3.0, np.minimum(j - 5, 34 - j) + 1.0,
                               np.minimum(i - 5, 34 - i) + 1.0])
    urine = (labels == BLADDER) & (depth > URINE_DEPTH_MM)
    assert urine.any()
    assert np.array_equal(weight, np.where(urine, 3.0, 1.0).astype(np.float32))


def test_a_bias_field_stays_within_its_amplitude():
    # "exp of a random 2nd-order polynomial over [-1, 1]², scaled so it stays within about ±amplitude"
    for seed in range(30):
        field = _bias_field(np.random.default_rng(seed), (32, 40), 0.3)
        assert field.min() >= 1 / 1.3 - 1e-5 and field.max() <= 1.3 + 1e-5


def test_adc_scale_multiplies_the_adc_intensities_by_one_factor_within_its_range():
    settings = check_augmentation({"adc_scale": 0.2})
    channels = ["t2w", "pd", "adc", "t1pre"]
    cond = np.random.default_rng(1).uniform(-0.9, 0.9, (4, 8, 8)).astype(np.float32)
    target = np.random.default_rng(2).uniform(-0.9, 0.9, (2, 8, 8)).astype(np.float32)
    factors = []
    for seed in range(60):
        new_cond, new_target = augment_slice(np.random.default_rng(seed), cond, target, channels, settings)
        ratio = (new_cond[2] + 1) / (cond[2] + 1)
        assert np.allclose(ratio, ratio.flat[0], rtol=1e-5)       # one factor for the whole ADC
        factors.append(float(ratio.flat[0]))
        assert np.array_equal(np.delete(new_cond, 2, axis=0), np.delete(cond, 2, axis=0))
        assert np.array_equal(new_target, target)
    assert 0.8 - 1e-5 <= min(factors) and max(factors) <= 1.2 + 1e-5
    assert min(factors) < 0.9 and max(factors) > 1.1                # the range is used, both ways


def test_a_folder_without_a_t2w_or_preprocess_json_is_not_a_case(tmp_path):
    from DCEDiffLib.training.case_data import list_case_dirs

    (tmp_path / "case_000").mkdir()
    (tmp_path / "case_000" / "t2w.nii.gz").write_bytes(b"")
    (tmp_path / "case_001").mkdir()
    (tmp_path / "case_001" / "preprocess.json").write_text("{}")
    (tmp_path / "no_dce").mkdir()                                  # e.g. dcediff dataset's folder of DCE-less cases
    (tmp_path / "no_dce" / "notes.txt").write_text("x")
    (tmp_path / "runs").mkdir()
    assert [p.name for p in list_case_dirs(tmp_path)] == ["case_000", "case_001"]


def test_a_checkpoint_and_a_run_must_train_the_same_companions(tmp_path):
    from DCEDiffLib.training.checkpoint import load_checkpoint, save_checkpoint
    from DCEDiffLib.training.ema import EMA

    def parts():
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 2)
        return net, EMA(net, 0.9), torch.optim.Adam(net.parameters(), lr=1e-3)

    net, ema, opt = parts()
    save_checkpoint(tmp_path / "with", 5, net, ema, opt, {}, companions={"head": torch.nn.Linear(2, 2)})
    save_checkpoint(tmp_path / "without", 5, net, ema, opt, {})
    with pytest.raises(InputError, match="head"):
        load_checkpoint(tmp_path / "with", *parts())
    with pytest.raises(InputError, match="head"):
        load_checkpoint(tmp_path / "without", *parts(), companions={"head": torch.nn.Linear(2, 2)})
    head = torch.nn.Linear(2, 2)
    assert load_checkpoint(tmp_path / "with", *parts(), companions={"head": head})["step"] == 5


def test_a_negative_region_weight_is_refused():
    from DCEDiffLib.training.config import make_config

    with pytest.raises(InputError, match="region_weights"):
        make_config({"region_weights": {"lesion": -0.5}})
    assert make_config({"region_weights": {"lesion": 0.0}})["region_weights"] == {"lesion": 0.0}
