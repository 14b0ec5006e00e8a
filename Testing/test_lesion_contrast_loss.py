"""The lesion-contrast loss (regression objective): lesion-minus-ring contrast per crop, its masks and its config."""

import json

import numpy as np
import pytest
import torch

from DCEDiffLib.diffusion.objectives import lesion_contrast, lesion_contrast_loss, regression_loss
from DCEDiffLib.errors import InputError
from DCEDiffLib.training.batches import SliceBatches, lesion_and_ring
from DCEDiffLib.training.case_data import CaseArrays
from DCEDiffLib.training.config import make_config

from test_training import make_trainer, tiny_case, tiny_config

LEGEND = {"peripheral_zone": 2, "transition_zone": 3, "lesion": 7}


def _masks(lesion_box, ring_box, shape=(1, 2, 12, 12)):
    masks = torch.zeros(shape)
    masks[:, 1][(slice(None),) + ring_box] = 1
    masks[:, 1][(slice(None),) + lesion_box] = 0
    masks[:, 0][(slice(None),) + lesion_box] = 1
    return masks


def test_contrast_is_the_lesion_mean_minus_the_ring_mean():
    image = torch.zeros(1, 2, 12, 12)
    image[:, 0, 4:6, 4:6] = 0.5      # early: the lesion is 0.5 above the ring
    image[:, 1, 2:8, 2:8] = 0.2      # late: lesion and ring both at 0.2: no contrast
    masks = _masks((slice(4, 6), slice(4, 6)), (slice(2, 8), slice(2, 8)))
    assert torch.allclose(lesion_contrast(image, masks), torch.tensor([[0.5, 0.0]]), atol=1e-6)


def test_loss_is_zero_for_the_target_and_the_missed_contrast_otherwise():
    target = torch.zeros(2, 2, 12, 12)
    target[:, :, 4:6, 4:6] = 0.4
    masks = _masks((slice(4, 6), slice(4, 6)), (slice(2, 8), slice(2, 8)), shape=(2, 2, 12, 12))
    masks[1] = 0  # the second crop has no lesion: it must not count
    assert float(lesion_contrast_loss(target, target, masks)) == 0.0
    flat = torch.zeros_like(target, requires_grad=True)  # a prediction that leaves the lesion at the ring's level
    loss = lesion_contrast_loss(flat, target, masks)
    assert abs(float(loss.detach()) - 0.4) < 1e-6  # the whole contrast is missed, in both channels
    loss.backward()
    grad = flat.grad
    assert float(grad[0, :, 4:6, 4:6].sum()) < 0 and float(grad[0, :, 0:2, 0:2].abs().sum()) == 0
    assert float(grad[1].abs().sum()) == 0        # no gradient from the crop without a lesion
    no_lesion = torch.zeros_like(masks)
    assert float(lesion_contrast_loss(flat.detach(), target, no_lesion)) == 0.0


class ConstantNetwork(torch.nn.Module):
    """A regression network whose output is a fixed image (a stand-in with a known answer, not a mock)."""

    out_channels = 2

    def __init__(self, image):
        super().__init__()
        self.image = image

    def forward(self, x, gamma):
        return self.image.expand(x.shape[0], -1, -1, -1)


def test_regression_loss_adds_the_weighted_contrast_term():
    target = torch.zeros(1, 2, 12, 12)
    target[:, :, 4:6, 4:6] = 0.4
    masks = _masks((slice(4, 6), slice(4, 6)), (slice(2, 8), slice(2, 8)))
    net = ConstantNetwork(torch.zeros(1, 2, 12, 12))
    cond = torch.zeros(1, 4, 12, 12)
    plain = regression_loss(net, cond, target)
    with_term = regression_loss(net, cond, target, contrast_masks=masks, contrast_weight=2.0)
    assert abs(float(with_term - plain) - 2.0 * 0.4) < 1e-6
    assert torch.equal(regression_loss(net, cond, target, contrast_masks=masks, contrast_weight=0.0), plain)


def _case_with_lesion(name, seed):
    case = tiny_case(name, seed, size=32, slices=4)
    labels = np.zeros(case.conditions.shape[1:], np.int16)
    labels[:, 8:24, 8:24] = 2          # peripheral zone
    labels[:, 14:24, 8:24] = 3         # transition zone
    labels[1:3, 12:16, 12:16] = 7      # a lesion on two slices
    return CaseArrays(name, case.conditions, case.targets, labels, dict(LEGEND), case.norm, {})


def run_on_cases_with_a_lesion(trainer, tmp_path, lesion_ring_px, **batch_options):
    """Runs ``trainer`` (``make_trainer(tmp_path, ...)``) on three cases with a lesion (p0, p1, p2), in batches of 2
    crops of 16 with lesion masks (half the crops on a lesion slice; ``batch_options``: SliceBatches' others).
    Returns the training recipe on the model card the run wrote."""
    cases = [_case_with_lesion(f"p{i}", i) for i in range(3)]
    trainer.batches = SliceBatches(cases, 2, 16, seed=0, lesion_slice_share=0.5, lesion_ring_px=lesion_ring_px,
                                   **batch_options)
    trainer.run()
    return json.loads((tmp_path / "run" / "model.json").read_text(encoding="utf-8"))["training"]["recipe"]


def test_ring_is_gland_around_the_lesion_in_plane_and_masks_follow_the_crops():
    case = _case_with_lesion("a", 1)
    masks = lesion_and_ring(case, 2)
    lesion, ring = masks[0].astype(bool), masks[1].astype(bool)
    assert np.array_equal(lesion, case.labels == 7)
    assert not (lesion & ring).any() and np.isin(case.labels[ring], [2, 3]).all()
    assert ring[1, 10:18, 10:18].sum() == 8 * 8 - 16 and not ring[0].any()  # in-plane only: not on slice 0
    batches = SliceBatches([case], 4, 16, seed=0, region_weights={"lesion": 3.0}, lesion_slice_share=0.9,
                           lesion_ring_px=2)
    for step in range(5):
        cond, target, weights, crop_masks = batches.contrast_batch(step)
        c2, t2, w2 = batches.weighted_batch(step)  # the same crops
        assert torch.equal(cond, c2) and torch.equal(target, t2) and torch.equal(weights, w2)
        assert torch.equal(crop_masks[:, 0] > 0, weights > 1)  # the lesion mask is where the lesion weight is
    with pytest.raises(ValueError, match="lesion_ring_px"):
        SliceBatches([case], 2, 16, seed=0).contrast_batch(0)


def test_config_checks_and_a_training_run_with_the_term(tmp_path):
    with pytest.raises(InputError, match="lesion_contrast_weight"):
        make_config({"lesion_contrast_weight": -1})
    with pytest.raises(InputError, match="needs objective 'regression'"):
        make_config({"lesion_contrast_weight": 1.0})  # the paper recipe is a diffusion objective
    with pytest.raises(InputError, match="lesion_ring_px"):
        make_config({"objective": "regression", "lesion_contrast_weight": 1.0, "lesion_ring_px": 0})
    config = tiny_config(iterations=4, objective="regression", lesion_contrast_weight=1.0, lesion_ring_px=2,
                         lesion_slice_share=0.5)  # the lesion weight is the batches' below (labelled cases)
    recipe = run_on_cases_with_a_lesion(make_trainer(tmp_path, config), tmp_path, lesion_ring_px=2,
                                        region_weights={"lesion": 2.0})
    assert recipe["lesion_contrast_weight"] == 1.0
    assert recipe["lesion_ring_px"] == 2
