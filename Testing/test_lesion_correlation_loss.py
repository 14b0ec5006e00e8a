"""The lesion-correlation loss (regression objective): 1 − Pearson r of the enhancement inside the lesion, checked
against numpy on analytic maps, its gradient, the regression loss that adds it, its config and a training run."""

import numpy as np
import pytest
import torch

from DCEDiffLib.diffusion.objectives import lesion_correlation_loss, masked_correlation, regression_loss
from DCEDiffLib.errors import InputError
from DCEDiffLib.training.config import make_config

from test_lesion_contrast_loss import ConstantNetwork, run_on_cases_with_a_lesion
from test_training import make_trainer, tiny_config


def _lesion(shape=(1, 1, 12, 12), box=(slice(3, 9), slice(3, 9))):
    mask = torch.zeros(shape)
    mask[(slice(None), slice(None)) + box] = 1
    return mask


def test_correlation_equals_numpy_inside_the_mask_only():
    rng = np.random.default_rng(0)
    predicted = torch.from_numpy(rng.normal(size=(2, 2, 12, 12))).float()
    target = torch.from_numpy(rng.normal(size=(2, 2, 12, 12))).float()
    mask = _lesion((2, 1, 12, 12))
    r = masked_correlation(predicted, target, mask)
    inside = mask[0, 0].bool().numpy()
    for b in range(2):
        for c in range(2):
            expected = np.corrcoef(predicted[b, c].numpy()[inside], target[b, c].numpy()[inside])[0, 1]
            assert abs(float(r[b, c]) - expected) < 1e-5
    # What lies outside the mask does not count
    changed = predicted.clone()
    changed[:, :, 0, 0] = 1e3
    assert torch.allclose(masked_correlation(changed, target, mask), r, atol=1e-6)


def test_loss_is_blind_to_scale_and_offset_and_counts_only_crops_with_a_lesion():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.normal(size=(3, 2, 12, 12))).float()
    lesion = _lesion((3, 1, 12, 12))
    lesion[2] = 0                                    # the third crop has no lesion
    assert float(lesion_correlation_loss(0.3 * target + 5.0, target, lesion)) < 1e-5
    assert abs(float(lesion_correlation_loss(-target, target, lesion)) - 2.0) < 1e-5
    small = _lesion((3, 1, 12, 12), (slice(3, 5), slice(3, 5)))  # 4 pixels: below min_voxels
    flat = torch.zeros_like(target, requires_grad=True)
    loss = lesion_correlation_loss(flat, target, small)
    assert float(loss.detach()) == 0.0
    loss.backward()                                  # a gradient path even when nothing counts
    assert float(flat.grad.abs().sum()) == 0.0


def test_a_gradient_step_raises_the_lesion_r_and_leaves_the_rest_alone():
    rng = np.random.default_rng(2)
    target = torch.from_numpy(rng.normal(size=(1, 2, 12, 12))).float()
    lesion = _lesion()
    predicted = (0.2 * target + torch.from_numpy(rng.normal(size=(1, 2, 12, 12))).float()).requires_grad_(True)
    before = lesion_correlation_loss(predicted, target, lesion)
    before.backward()
    assert float(predicted.grad[..., 0:3, :].abs().sum()) == 0.0   # rows outside the lesion get no gradient
    stepped = (predicted - 5.0 * predicted.grad).detach()
    assert float(lesion_correlation_loss(stepped, target, lesion)) < float(before.detach()) - 0.05


def test_regression_loss_adds_the_weighted_term_on_the_enhancement():
    rng = np.random.default_rng(3)
    base = torch.from_numpy(rng.normal(size=(1, 2, 12, 12))).float()
    enhancement = torch.from_numpy(rng.normal(size=(1, 2, 12, 12))).float()
    target = base + enhancement
    masks = torch.cat([_lesion(), torch.zeros(1, 1, 12, 12)], 1)   # (lesion, ring)
    # The network draws the enhancement negated: the image r may be positive (the base), the enhancement r is −1
    net = ConstantNetwork(-enhancement)
    cond = torch.zeros(1, 4, 12, 12)
    plain = regression_loss(net, cond, target, base)
    with_term = regression_loss(net, cond, target, base, contrast_masks=masks, correlation_weight=0.5)
    assert abs(float(with_term - plain) - 0.5 * 2.0) < 1e-4
    assert torch.equal(regression_loss(net, cond, target, base, contrast_masks=masks, correlation_weight=0.0), plain)


def test_config_checks_and_a_training_run_with_the_term(tmp_path):
    with pytest.raises(InputError, match="lesion_correlation_weight"):
        make_config({"objective": "regression", "lesion_correlation_weight": -1})
    with pytest.raises(InputError, match="lesion_correlation_weight"):
        make_config({"objective": "regression", "lesion_correlation_weight": True})
    with pytest.raises(InputError, match="needs objective 'regression'"):
        make_config({"lesion_correlation_weight": 1.0})
    with pytest.raises(InputError, match="one of them"):
        make_config({"objective": "regression", "lesion_correlation_weight": 1.0, "aux_segmentation_weight": 0.1})
    config = tiny_config(iterations=4, objective="regression", parameterization="enhancement",
                         lesion_correlation_weight=0.5, lesion_slice_share=0.5)
    trainer = make_trainer(tmp_path, config)
    assert trainer.batches.lesion_ring_px > 0        # the trainer asked the batches for lesion masks
    recipe = run_on_cases_with_a_lesion(trainer, tmp_path, lesion_ring_px=3, region_weights={"lesion": 2.0})
    assert recipe["lesion_correlation_weight"] == 0.5


def test_the_lesion_and_ring_region_prices_the_lesion_level_against_its_ring():
    rng = np.random.default_rng(4)
    base = torch.zeros(1, 2, 12, 12)
    lesion = _lesion()
    ring = _lesion(box=(slice(1, 11), slice(1, 11))) - lesion
    masks = torch.cat([lesion, ring], 1)
    # Acquired: the lesion enhances 1.0 above its ring, with an inner pattern; the ring has its own texture
    target = 0.1 * torch.from_numpy(rng.normal(size=(1, 2, 12, 12))).float() + lesion
    # Predicted: the same inner pattern, but the lesion drawn 1.0 *below* its ring (the CNR sign wrong)
    predicted = target - 2 * lesion
    cond = torch.zeros(1, 4, 12, 12)
    net = ConstantNetwork(predicted)
    plain = regression_loss(net, cond, target, base)

    def term(region):
        return float(regression_loss(net, cond, target, base, contrast_masks=masks, correlation_weight=1.0,
                                     correlation_region=region) - plain)

    assert term("lesion") < 1e-4                     # the inner pattern is right: blind to the level
    assert term("lesion_and_ring") > 1.0             # over lesion and ring the flipped level is anti-correlated
    exact = ConstantNetwork(0.5 * target + 0.2)
    for region in ("lesion", "lesion_and_ring"):
        assert float(regression_loss(exact, cond, target, base, contrast_masks=masks, correlation_weight=1.0,
                                     correlation_region=region)
                     - regression_loss(exact, cond, target, base)) < 1e-4
    with pytest.raises(ValueError, match="correlation region"):
        regression_loss(net, cond, target, base, contrast_masks=masks, correlation_weight=1.0,
                        correlation_region="ring")


def test_the_region_is_checked_in_the_config_and_recorded_on_the_card(tmp_path):
    with pytest.raises(InputError, match="lesion_correlation_region"):
        make_config({"objective": "regression", "lesion_correlation_weight": 0.5,
                     "lesion_correlation_region": "gland"})
    config = tiny_config(iterations=2, objective="regression", parameterization="enhancement",
                         lesion_correlation_weight=0.5, lesion_correlation_region="lesion_and_ring",
                         lesion_slice_share=0.5)
    recipe = run_on_cases_with_a_lesion(make_trainer(tmp_path, config), tmp_path, lesion_ring_px=3)
    assert recipe["lesion_correlation_region"] == "lesion_and_ring"
